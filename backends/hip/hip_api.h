// The HIP runtime and hiprtc entry points moatless calls, loaded with dlopen (internal
// to backends/hip). Declarations: third_party/hip/hip_runtime.h.
#pragma once

#include <string>
#include <string_view>

#include "third_party/hip/hip_runtime.h"

namespace moat::backends::hip {

using namespace moat::hip_runtime;

// X(symbol): every runtime entry point (libamdhip64), listed once.
#define MOAT_HIP_FUNCTIONS(X) \
  X(hipInit)                  \
  X(hipDriverGetVersion)      \
  X(hipRuntimeGetVersion)     \
  X(hipGetErrorName)          \
  X(hipGetErrorString)        \
  X(hipGetDeviceCount)        \
  X(hipSetDevice)             \
  X(hipDeviceGetName)         \
  X(hipDeviceGetAttribute)    \
  X(hipDeviceTotalMem)        \
  X(hipGetDeviceProperties)   \
  X(hipModuleLoadData)        \
  X(hipModuleUnload)          \
  X(hipModuleGetFunction)     \
  X(hipMalloc)                \
  X(hipFree)                  \
  X(hipMemcpyHtoDAsync)       \
  X(hipMemcpyDtoHAsync)       \
  X(hipStreamCreate)          \
  X(hipStreamDestroy)         \
  X(hipStreamSynchronize)     \
  X(hipEventCreate)           \
  X(hipEventRecord)           \
  X(hipEventSynchronize)      \
  X(hipEventElapsedTime)      \
  X(hipEventDestroy)          \
  X(hipModuleLaunchKernel)

// X(symbol): every hiprtc entry point, listed once.
#define MOAT_HIPRTC_FUNCTIONS(X) \
  X(hiprtcVersion)               \
  X(hiprtcGetErrorString)        \
  X(hiprtcCreateProgram)         \
  X(hiprtcCompileProgram)        \
  X(hiprtcGetProgramLogSize)     \
  X(hiprtcGetProgramLog)         \
  X(hiprtcGetCodeSize)           \
  X(hiprtcGetCode)               \
  X(hiprtcDestroyProgram)

struct HipApi {
  std::string library;       // the file dlopen found: "libamdhip64.so.5"
  int runtime_version = 0;   // hipRuntimeGetVersion: 50221153 for 5.2.21153
#define MOAT_HIP_POINTER(symbol) decltype(&hip_runtime::symbol) symbol = nullptr;
  MOAT_HIP_FUNCTIONS(MOAT_HIP_POINTER)
#undef MOAT_HIP_POINTER
};

struct HiprtcApi {
  std::string library;  // "libhiprtc.so.6", or "libamdhip64.so.5" where hiprtc lives in the runtime
  int major = 0, minor = 0;  // hiprtcVersion
#define MOAT_HIPRTC_POINTER(symbol) decltype(&hip_runtime::symbol) symbol = nullptr;
  MOAT_HIPRTC_FUNCTIONS(MOAT_HIPRTC_POINTER)
#undef MOAT_HIPRTC_POINTER
};

// The runtime, loaded and initialised (hipInit) once per process and never unloaded,
// or nullptr with `why` saying why not ("libamdhip64 not found (no ROCm runtime)").
// Thread-safe; never throws.
const HipApi* load_hip_api(std::string& why);

// hiprtc, loaded once (it needs no GPU), or nullptr with `why`. Thread-safe; never throws.
const HiprtcApi* load_hiprtc_api(std::string& why);

// "hipErrorOutOfMemory (out of memory)"; "HIP error 999" when the runtime does not know it.
std::string hip_error_name(const HipApi& api, hipError_t code);

// Throws when `code` is not hipSuccess, naming `call` and `what` it acted on: UserError
// when the device is out of memory, InternalError otherwise (a bug of moatless).
void hip_check(const HipApi& api, hipError_t code, std::string_view call, std::string_view what);

// "5.2" for 50221153 (major * 10^7 + minor * 10^5 + patch).
std::string hip_version_text(int version);

}  // namespace moat::backends::hip
