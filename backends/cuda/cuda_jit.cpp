#include "backends/cuda/cuda_jit.h"

#include <cstring>

#include "support/error.h"

namespace moat::backends::cuda {

namespace {

constexpr size_t kLogBytes = 16 * 1024;  // per log; the driver truncates longer logs

// The options that capture the JIT's error and info logs. The arrays and buffers must
// outlive the JIT call (for cuLink*: until cuLinkDestroy).
class JitLogs {
 public:
  JitLogs() : info_(kLogBytes, '\0'), error_(kLogBytes, '\0') {
    values_[0] = info_.data();
    values_[1] = reinterpret_cast<void*>(uintptr_t{kLogBytes});
    values_[2] = error_.data();
    values_[3] = reinterpret_cast<void*>(uintptr_t{kLogBytes});
    values_[4] = reinterpret_cast<void*>(uintptr_t{1});
  }
  JitLogs(const JitLogs&) = delete;
  JitLogs& operator=(const JitLogs&) = delete;

  unsigned count() const { return kCount; }
  CUjit_option* options() { return options_; }
  void** values() { return values_; }

  // The error log, then the info log; "" when both are empty.
  std::string text() const {
    std::string error(error_.c_str()), info(info_.c_str());
    if (error.empty() || info.empty()) return error + info;
    return error + "\n" + info;
  }

 private:
  static constexpr unsigned kCount = 5;
  std::string info_, error_;
  CUjit_option options_[kCount] = {CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES, CU_JIT_ERROR_LOG_BUFFER,
                                   CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, CU_JIT_LOG_VERBOSE};
  void* values_[kCount] = {};
};

// Destroys a link state when it goes out of scope.
struct LinkGuard {
  const CudaApi& api;
  CUlinkState state = nullptr;
  ~LinkGuard() {
    if (state) api.cuLinkDestroy(state);
  }
};

std::string log_suffix(const JitLogs& logs) {
  std::string text = logs.text();
  return text.empty() ? std::string() : ":\n" + text;
}

}  // namespace

std::vector<uint8_t> link_ptx(const CudaApi& api, std::string_view ptx, std::string_view what) {
  JitLogs logs;
  LinkGuard link{api};
  cuda_check(api, api.cuLinkCreate_v2(logs.count(), logs.options(), logs.values(), &link.state), "cuLinkCreate",
             what);
  std::string text(ptx);  // the driver reads PTX up to its NUL
  CUresult rc = api.cuLinkAddData_v2(link.state, CU_JIT_INPUT_PTX, text.data(), text.size() + 1, "moat.ptx", 0,
                                     nullptr, nullptr);
  void* cubin = nullptr;
  size_t size = 0;
  if (rc == CUDA_SUCCESS) rc = api.cuLinkComplete(link.state, &cubin, &size);
  if (rc != CUDA_SUCCESS)
    user_error("PTX of ", what, " does not compile for this device: ", cuda_error_name(api, rc), log_suffix(logs));
  MOAT_INTERNAL_CHECK(cubin && size > 0, "cuLinkComplete returned no cubin for ", what);
  const auto* bytes = static_cast<const uint8_t*>(cubin);
  return {bytes, bytes + size};  // copied: the cubin dies with the link state
}

CUmodule load_image(const CudaApi& api, std::string_view format, const std::vector<uint8_t>& bytes,
                    std::string_view what) {
  MOAT_INTERNAL_CHECK(format == "cubin" || format == "ptx", "load_image of format '", format, "'");
  std::vector<uint8_t> image = bytes;
  if (format == "ptx") image.push_back(0);  // PTX is read up to its NUL
  JitLogs logs;
  CUmodule module = nullptr;
  CUresult rc = api.cuModuleLoadDataEx(&module, image.data(), logs.count(), logs.options(), logs.values());
  if (rc == CUDA_ERROR_OUT_OF_MEMORY) cuda_check(api, rc, "cuModuleLoadDataEx", what);
  if (rc != CUDA_SUCCESS)
    user_error("cannot load the ", format, " of ", what, " on this device: ", cuda_error_name(api, rc),
               log_suffix(logs), "\n(a cubin runs only on the architecture it was compiled for: recompile it)");
  return module;
}

}  // namespace moat::backends::cuda
