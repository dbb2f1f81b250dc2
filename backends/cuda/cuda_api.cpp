#include "backends/cuda/cuda_api.h"

#include <dlfcn.h>


#include "support/error.h"

namespace moat::backends::cuda {

namespace {

constexpr const char* kLibrary = "libcuda.so.1";

struct Loaded {
  CudaApi api;
  std::string why;  // empty when the driver is usable
};

Loaded load() {
  Loaded loaded;
  CudaApi& api = loaded.api;
  void* handle = ::dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    loaded.why = cat(kLibrary, " not found (no NVIDIA driver)");
    return loaded;
  }
  api.library = kLibrary;
  std::string missing;
#define MOAT_CUDA_LOAD(symbol)                                                          \
  api.symbol = reinterpret_cast<decltype(api.symbol)>(::dlsym(handle, #symbol));       \
  if (!api.symbol) missing += missing.empty() ? #symbol : ", " #symbol;
  MOAT_CUDA_FUNCTIONS(MOAT_CUDA_LOAD)
#undef MOAT_CUDA_LOAD
  if (!missing.empty()) {
    // Kept loaded: unloading a driver library is not worth its risks.
    loaded.why = cat(kLibrary, " lacks ", missing, " (driver too old; install a current NVIDIA driver)");
    return loaded;
  }
  if (CUresult rc = api.cuInit(0); rc != CUDA_SUCCESS) {
    loaded.why = cat(kLibrary, " loaded, but cuInit failed: ", cuda_error_name(api, rc));
    return loaded;
  }
  api.cuDriverGetVersion(&api.driver_version);
  return loaded;
}

}  // namespace

const CudaApi* load_cuda_api(std::string& why) {
  static const Loaded* loaded = new Loaded(load());  // thread-safe; never destroyed
  why = loaded->why;
  return loaded->why.empty() ? &loaded->api : nullptr;
}

std::string cuda_error_name(const CudaApi& api, CUresult code) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (api.cuGetErrorName) api.cuGetErrorName(code, &name);
  if (api.cuGetErrorString) api.cuGetErrorString(code, &text);
  if (!name) {
    // The codes cuInit gives where the driver cannot name them (a stub library).
    switch (code) {
      case 34: return "CUDA_ERROR_STUB_LIBRARY (libcuda.so.1 is the toolkit's stub, not a driver)";
      case 35: return "CUDA_ERROR_INSUFFICIENT_DRIVER (the driver is older than the CUDA runtime)";
      case CUDA_ERROR_NO_DEVICE: return "CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)";
      default: return cat("CUDA error ", code);
    }
  }
  return text ? cat(name, " (", text, ")") : std::string(name);
}

void cuda_check(const CudaApi& api, CUresult code, std::string_view call, std::string_view what) {
  if (code == CUDA_SUCCESS) return;
  std::string error = cuda_error_name(api, code);
  if (code == CUDA_ERROR_OUT_OF_MEMORY)
    user_error(call, " (", what, "): ", error, "; use a smaller model or context, or another device");
  MOAT_INTERNAL_ERROR(call, " (", what, ") failed: ", error);
}

std::string cuda_version_text(int version) { return cat(version / 1000, ".", version % 1000 / 10); }

}  // namespace moat::backends::cuda
