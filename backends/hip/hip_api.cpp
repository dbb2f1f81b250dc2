#include "backends/hip/hip_api.h"

#include <dlfcn.h>

#include <initializer_list>

#include "support/error.h"

namespace moat::backends::hip {

namespace {

constexpr std::initializer_list<const char*> kRuntimeLibraries = {"libamdhip64.so", "libamdhip64.so.6",
                                                                  "libamdhip64.so.5"};
// ROCm 6 ships hiprtc apart; ROCm 5 (Debian 12) has it inside the runtime.
constexpr std::initializer_list<const char*> kHiprtcLibraries = {"libhiprtc.so", "libhiprtc.so.6", "libhiprtc.so.5",
                                                                 "libamdhip64.so", "libamdhip64.so.6",
                                                                 "libamdhip64.so.5"};

// Opens the first of `libraries` that dlopen finds; `found` names it.
void* open_first(std::initializer_list<const char*> libraries, std::string& found) {
  for (const char* library : libraries) {
    if (void* handle = ::dlopen(library, RTLD_NOW | RTLD_LOCAL)) {
      found = library;
      return handle;
    }
  }
  return nullptr;
}

template <class Api>
struct Loaded {
  Api api;
  std::string why;  // empty when usable
};

Loaded<HipApi> load_runtime() {
  Loaded<HipApi> loaded;
  HipApi& api = loaded.api;
  void* handle = open_first(kRuntimeLibraries, api.library);
  if (!handle) {
    loaded.why = "libamdhip64 not found (no ROCm runtime)";
    return loaded;
  }
  std::string missing;
#define MOAT_HIP_LOAD(symbol)                                                        \
  api.symbol = reinterpret_cast<decltype(api.symbol)>(::dlsym(handle, #symbol));    \
  if (!api.symbol) missing += missing.empty() ? #symbol : ", " #symbol;
  MOAT_HIP_FUNCTIONS(MOAT_HIP_LOAD)
#undef MOAT_HIP_LOAD
  if (!missing.empty()) {
    loaded.why = cat(api.library, " lacks ", missing, " (ROCm too old; install ROCm 5 or later)");
    return loaded;
  }
  if (hipError_t rc = api.hipInit(0); rc != hipSuccess) {
    loaded.why = cat(api.library, " loaded, but hipInit failed: ", hip_error_name(api, rc), " (no usable AMD GPU)");
    return loaded;
  }
  api.hipRuntimeGetVersion(&api.runtime_version);
  return loaded;
}

Loaded<HiprtcApi> load_hiprtc() {
  Loaded<HiprtcApi> loaded;
  HiprtcApi& api = loaded.api;
  for (const char* library : kHiprtcLibraries) {
    void* handle = ::dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!handle) continue;
    if (!::dlsym(handle, "hiprtcCreateProgram")) {  // a ROCm 6 runtime without hiprtc: keep looking
      ::dlclose(handle);
      continue;
    }
    api.library = library;
    std::string missing;
#define MOAT_HIPRTC_LOAD(symbol)                                                     \
  api.symbol = reinterpret_cast<decltype(api.symbol)>(::dlsym(handle, #symbol));    \
  if (!api.symbol) missing += missing.empty() ? #symbol : ", " #symbol;
    MOAT_HIPRTC_FUNCTIONS(MOAT_HIPRTC_LOAD)
#undef MOAT_HIPRTC_LOAD
    if (!missing.empty()) {
      loaded.why = cat(library, " lacks ", missing);
      return loaded;
    }
    api.hiprtcVersion(&api.major, &api.minor);
    return loaded;
  }
  loaded.why = "hiprtc not found (install ROCm's hiprtc: Debian's libamdhip64-5 and libhiprtc-builtins5)";
  return loaded;
}

}  // namespace

const HipApi* load_hip_api(std::string& why) {
  static const Loaded<HipApi>* loaded = new Loaded<HipApi>(load_runtime());  // thread-safe; never destroyed
  why = loaded->why;
  return loaded->why.empty() ? &loaded->api : nullptr;
}

const HiprtcApi* load_hiprtc_api(std::string& why) {
  static const Loaded<HiprtcApi>* loaded = new Loaded<HiprtcApi>(load_hiprtc());
  why = loaded->why;
  return loaded->why.empty() ? &loaded->api : nullptr;
}

std::string hip_error_name(const HipApi& api, hipError_t code) {
  const char* name = api.hipGetErrorName ? api.hipGetErrorName(code) : nullptr;
  const char* text = api.hipGetErrorString ? api.hipGetErrorString(code) : nullptr;
  if (!name) return cat("HIP error ", code);
  if (!text || std::string_view(text) == name) return name;
  return cat(name, " (", text, ")");
}

void hip_check(const HipApi& api, hipError_t code, std::string_view call, std::string_view what) {
  if (code == hipSuccess) return;
  std::string error = hip_error_name(api, code);
  if (code == hipErrorOutOfMemory)
    user_error(call, " (", what, "): ", error, "; use a smaller model or context, or another device");
  MOAT_INTERNAL_ERROR(call, " (", what, ") failed: ", error);
}

std::string hip_version_text(int version) { return cat(version / 10000000, ".", version / 100000 % 100); }

}  // namespace moat::backends::hip
