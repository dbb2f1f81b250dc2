// The OpenCL backend: every device of every OpenCL platform, driven through the ICD
// loader (libOpenCL.so.1) loaded with dlopen. Device "opencl:N" is the N-th device in
// enumeration order (platforms in the loader's order, each platform's devices in its
// order).
//
// Artifact formats (Device::compile input -> output "clbin", the only one load() takes):
//   "cl"       OpenCL C source, built with "-cl-std=CL1.2" (no fast-math: IEEE results)
//   "bc-spir"  LLVM bitcode for the spir64 triple (SPIR 1.2), built with
//              "-x spir -spir-std=1.2" (PoCL and drivers with cl_khr_spir)
//   "spv"      SPIR-V, where the device reports an IL version with SPIR-V
//   "clbin"    backends/opencl/clbin.h: device binary + the options it was built with
//
// Buffers are device memory (clCreateBuffer): host_pointer() is nullptr and wrap_host
// copies the host data into a new device buffer (CL_MEM_COPY_HOST_PTR): never
// CL_MEM_USE_HOST_PTR, whose alignment rules and caching differ per driver.
#pragma once

#include <memory>
#include <vector>

#include "backends/device.h"
#include "backends/registry.h"

namespace moat::backends::opencl {

inline constexpr const char* kLoaderLibrary = "libOpenCL.so.1";

struct Probe {
  BackendStatus status;             // "not available: <reason>" when no device can be opened
  std::vector<DeviceInfo> devices;  // ids "opencl:0", "opencl:1", ...
};

// The devices `library` (an ICD loader, by dlopen name) offers. Never throws: a
// missing library, platform or device, or a failing driver, is a reason in
// status.detail.
Probe probe(const char* library = kLoaderLibrary);

// Device "opencl:<index>", or nullptr when `library` cannot be loaded or has no such
// device (backends::open_device then lists the ones there are).
std::unique_ptr<Device> open_device(int index, const char* library = kLoaderLibrary);

}  // namespace moat::backends::opencl
