// OpenCL programs from artifacts: compile() and load() of the OpenCL device
// (internal to backends/opencl; formats in opencl.h).
#pragma once

#include <memory>
#include <string>
#include <type_traits>

#include "backends/device.h"
#include "backends/opencl/cl_api.h"

namespace moat::backends::opencl {

// Build options per input format; recorded in the clbin and in compile_fingerprint().
inline constexpr const char* kSourceOptions = "-cl-std=CL1.2";      // "cl": no -cl-fast-relaxed-math
inline constexpr const char* kSpirOptions = "-x spir -spir-std=1.2";  // "bc-spir"
inline constexpr const char* kSpirvOptions = "";                      // "spv"

// The device a program is built for.
struct ClTarget {
  const ClApi* api = nullptr;
  cl_context context = nullptr;
  cl_device_id device = nullptr;
  std::string device_id;    // "opencl:0", for messages
  std::string device_name;  // for messages
  bool takes_spir = false;  // cl_khr_spir
  std::string il_version;   // "SPIR-V_1.2 ..."; "" when the device takes no IL
};

struct ProgramRelease {
  const ClApi* api = nullptr;
  void operator()(cl_program program) const {
    api->enter_thread();
    api->clReleaseProgram(program);
  }
};
using ProgramRef = std::unique_ptr<std::remove_pointer_t<cl_program>, ProgramRelease>;

// "cl" / "bc-spir" / "spv" -> "clbin" with the same kernel names. UserError with the
// kernel names and the driver's full build log when the build fails, naming the
// kernels that the program lacks, or saying which formats the device takes.
Artifact compile_program(const ClTarget& target, const Artifact& source);

// A "clbin" from compile_program, built for `target` with the options it records.
// UserError when it is not a clbin, when the driver rejects the binary (another device
// or driver version: compile again), or when a listed kernel is missing.
ProgramRef load_program(const ClTarget& target, const Artifact& binary);

}  // namespace moat::backends::opencl
