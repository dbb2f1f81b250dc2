// HIP C++ -> AMD GPU code object ("hsaco") with hiprtc, for the HIP device and for
// offline checks on machines without a GPU (every HIP kernel the JIT emits is compiled
// for gfx90a and gfx1030 in the tests).
//
// hiprtc runs in a forked child process that sends the code object back through a
// pipe: Debian's ROCm 5.2 hiprtc aborts the whole process when asked for a target it
// does not know (gfx1100, gfx942), and a crash of the child is reported as a compile
// error naming the target instead. Kernels are `extern "C" __global__` functions (no
// name mangling), so they are found by the names the Artifact lists.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends/device.h"

namespace moat::backends::hip {

// Whether hiprtc can be loaded (it needs no GPU), and why not when it cannot.
bool hip_compiler_available();
std::string hip_compiler_unavailable_reason();

// "hiprtc 9.0 (libamdhip64.so.5)"; "" when absent. Part of the compile fingerprint.
std::string hip_compiler_version();

struct HipCompileResult {
  bool ok = false;
  std::vector<uint8_t> code;  // the code object when ok
  std::string log;            // hiprtc's log, or why the compiler failed (a crash, a timeout)
};

// Compiles `source` for `arch` ("gfx90a"; target features after ':' are allowed,
// "gfx90a:xnack-"). UserError when hiprtc is absent or `arch` is not a gfx name.
HipCompileResult compile_hip_source(std::string_view source, std::string_view arch);

// "" when `source` compiles for `arch`, else the log (never empty on failure).
std::string check_hip(std::string_view source, std::string_view arch);

// A "hip" Artifact -> an "hsaco" Artifact for `arch`. UserError with the log when it
// does not compile.
Artifact compile_hip(const Artifact& source, std::string_view arch);

}  // namespace moat::backends::hip
