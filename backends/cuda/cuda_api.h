// The CUDA driver entry points moatless calls, loaded from libcuda.so.1 with dlopen
// (internal to backends/cuda). Declarations: third_party/cuda/cuda_driver.h.
#pragma once

#include <string>
#include <string_view>

#include "third_party/cuda/cuda_driver.h"

namespace moat::backends::cuda {

using namespace moat::cuda_driver;

// X(symbol): every entry point, listed once, by the symbol the driver exports.
#define MOAT_CUDA_FUNCTIONS(X)   \
  X(cuInit)                      \
  X(cuDriverGetVersion)          \
  X(cuGetErrorName)              \
  X(cuGetErrorString)            \
  X(cuDeviceGetCount)            \
  X(cuDeviceGet)                 \
  X(cuDeviceGetName)             \
  X(cuDeviceGetAttribute)        \
  X(cuDeviceTotalMem_v2)         \
  X(cuDevicePrimaryCtxRetain)    \
  X(cuDevicePrimaryCtxRelease_v2) \
  X(cuCtxPushCurrent_v2)         \
  X(cuCtxPopCurrent_v2)          \
  X(cuModuleLoadDataEx)          \
  X(cuModuleUnload)              \
  X(cuModuleGetFunction)         \
  X(cuLinkCreate_v2)             \
  X(cuLinkAddData_v2)            \
  X(cuLinkComplete)              \
  X(cuLinkDestroy)               \
  X(cuMemAlloc_v2)               \
  X(cuMemFree_v2)                \
  X(cuMemcpyHtoDAsync_v2)        \
  X(cuMemcpyDtoHAsync_v2)        \
  X(cuStreamCreate)              \
  X(cuStreamDestroy_v2)          \
  X(cuStreamSynchronize)         \
  X(cuEventCreate)               \
  X(cuEventRecord)               \
  X(cuEventSynchronize)          \
  X(cuEventElapsedTime)          \
  X(cuEventDestroy_v2)           \
  X(cuLaunchKernel)

struct CudaApi {
  std::string library;      // the file dlopen found: "libcuda.so.1"
  int driver_version = 0;   // cuDriverGetVersion: 12040 for CUDA 12.4
#define MOAT_CUDA_POINTER(symbol) decltype(&cuda_driver::symbol) symbol = nullptr;
  MOAT_CUDA_FUNCTIONS(MOAT_CUDA_POINTER)
#undef MOAT_CUDA_POINTER
};

// The driver, loaded and initialised (cuInit) once per process and never unloaded, or
// nullptr with `why` saying why not ("libcuda.so.1 not found (no NVIDIA driver)").
// Thread-safe; never throws.
const CudaApi* load_cuda_api(std::string& why);

// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)"; "CUDA error 999" when the driver does
// not know the code.
std::string cuda_error_name(const CudaApi& api, CUresult code);

// Throws when `code` is not CUDA_SUCCESS, naming `call` and `what` it acted on:
// UserError when the device is out of memory (pick a smaller model or another device),
// InternalError otherwise (a bad argument or a faulting kernel is a bug of moatless).
void cuda_check(const CudaApi& api, CUresult code, std::string_view call, std::string_view what);

// "12.4" for 12040.
std::string cuda_version_text(int version);

}  // namespace moat::backends::cuda
