#include "backends/opencl/cl_api.h"

#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>

#include "support/error.h"

namespace moat::backends::opencl {

namespace {

struct Loaded {
  std::unique_ptr<ClApi> api;  // nullptr: the library is unusable
  std::string why;             // why not
};

// The loader and the drivers it loads go into a link-map namespace of their own
// (dlmopen): a driver's own LLVM (PoCL 3.1 on Debian 12: LLVM 15) must never bind to
// the LLVM 14 this process links for the CPU backend. In one namespace, vague-linkage
// symbols of libclang-cpp.so.15 resolve to libLLVM-14 and PoCL's compiler crashes
// (SIGSEGV in llvm::VerifierPass) on the first OpenCL C build. Nothing allocated by
// the driver is freed here or the other way round, so the second libc is harmless.
void* open_isolated(const char* library) { return ::dlmopen(LM_ID_NEWLM, library, RTLD_NOW | RTLD_LOCAL); }

Loaded load_uncached(const char* library) {
  Loaded out;
  void* handle = open_isolated(library);
  if (!handle) {
    const char* error = ::dlerror();
    out.why = cat(library, " not found (install an OpenCL ICD loader and a driver, e.g. Debian's ocl-icd-libopencl1 and "
                           "pocl-opencl-icd)",
                  error ? cat(": ", error) : std::string());
    return out;
  }
  auto api = std::make_unique<ClApi>();
  api->library = library;
  std::string missing;
  // A loader too old for a REQUIRED entry point cannot drive any device; an OPTIONAL one stays nullptr.
#define MOAT_CL_REQUIRED(name)                                                     \
  api->name = reinterpret_cast<decltype(api->name)>(::dlsym(handle, #name));      \
  if (!api->name) missing += cat(missing.empty() ? "" : ", ", #name);
#define MOAT_CL_OPTIONAL(name) api->name = reinterpret_cast<decltype(api->name)>(::dlsym(handle, #name));
  MOAT_OPENCL_FUNCTIONS(MOAT_CL_REQUIRED, MOAT_CL_OPTIONAL)
#undef MOAT_CL_REQUIRED
#undef MOAT_CL_OPTIONAL
  if (!missing.empty()) {
    out.why = cat(library, " lacks ", missing, " (install an OpenCL 1.2 or newer ICD loader)");
    return out;  // the handle stays open: unloading ICD loaders is not supported
  }
  // The namespace's own libc: its __ctype_init (GLIBC_PRIVATE, exported) sets up a
  // thread's ctype tables (ClApi::enter_thread).
  Lmid_t namespace_id = 0;
  if (::dlinfo(handle, RTLD_DI_LMID, &namespace_id) == 0)
    if (void* libc = ::dlmopen(namespace_id, "libc.so.6", RTLD_NOW | RTLD_NOLOAD))
      api->namespace_ctype_init = reinterpret_cast<void (*)()>(::dlsym(libc, "__ctype_init"));
  api->enter_thread();  // the loading thread has them already; harmless
  out.api = std::move(api);
  return out;
}

}  // namespace

void ClApi::enter_thread() const {
  // The APIs this thread has entered. Plain data: destructors of static objects (devices
  // cached for the process) call in here at exit, after a thread_local with a destructor
  // would be gone. A thread past kRemembered APIs sets the tables up again each time
  // (harmless, only slower).
  constexpr int kRemembered = 8;
  thread_local const ClApi* entered[kRemembered] = {};
  thread_local int count = 0;
  if (!namespace_ctype_init || std::find(entered, entered + count, this) != entered + count) return;
  namespace_ctype_init();
  if (count < kRemembered) entered[count++] = this;
}

const ClApi* load_cl_api(const char* library, std::string& why) {
  static std::mutex mutex;
  static std::map<std::string, Loaded>* loaded = new std::map<std::string, Loaded>;  // never destroyed
  try {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = loaded->find(library);
    if (it == loaded->end()) it = loaded->emplace(library, load_uncached(library)).first;
    why = it->second.why;
    return it->second.api.get();
  } catch (const std::exception& e) {
    why = cat("loading ", library, " failed: ", e.what());
    return nullptr;
  }
}

std::string cl_error_name(cl_int code) {
  switch (code) {
#define MOAT_CL_CASE(name) \
  case name: return #name;
    MOAT_CL_CASE(CL_SUCCESS)
    MOAT_CL_CASE(CL_DEVICE_NOT_FOUND)
    MOAT_CL_CASE(CL_DEVICE_NOT_AVAILABLE)
    MOAT_CL_CASE(CL_COMPILER_NOT_AVAILABLE)
    MOAT_CL_CASE(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    MOAT_CL_CASE(CL_OUT_OF_RESOURCES)
    MOAT_CL_CASE(CL_OUT_OF_HOST_MEMORY)
    MOAT_CL_CASE(CL_PROFILING_INFO_NOT_AVAILABLE)
    MOAT_CL_CASE(CL_MEM_COPY_OVERLAP)
    MOAT_CL_CASE(CL_IMAGE_FORMAT_MISMATCH)
    MOAT_CL_CASE(CL_IMAGE_FORMAT_NOT_SUPPORTED)
    MOAT_CL_CASE(CL_BUILD_PROGRAM_FAILURE)
    MOAT_CL_CASE(CL_MAP_FAILURE)
    MOAT_CL_CASE(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    MOAT_CL_CASE(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    MOAT_CL_CASE(CL_COMPILE_PROGRAM_FAILURE)
    MOAT_CL_CASE(CL_LINKER_NOT_AVAILABLE)
    MOAT_CL_CASE(CL_LINK_PROGRAM_FAILURE)
    MOAT_CL_CASE(CL_DEVICE_PARTITION_FAILED)
    MOAT_CL_CASE(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)
    MOAT_CL_CASE(CL_INVALID_VALUE)
    MOAT_CL_CASE(CL_INVALID_DEVICE_TYPE)
    MOAT_CL_CASE(CL_INVALID_PLATFORM)
    MOAT_CL_CASE(CL_INVALID_DEVICE)
    MOAT_CL_CASE(CL_INVALID_CONTEXT)
    MOAT_CL_CASE(CL_INVALID_QUEUE_PROPERTIES)
    MOAT_CL_CASE(CL_INVALID_COMMAND_QUEUE)
    MOAT_CL_CASE(CL_INVALID_HOST_PTR)
    MOAT_CL_CASE(CL_INVALID_MEM_OBJECT)
    MOAT_CL_CASE(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
    MOAT_CL_CASE(CL_INVALID_IMAGE_SIZE)
    MOAT_CL_CASE(CL_INVALID_SAMPLER)
    MOAT_CL_CASE(CL_INVALID_BINARY)
    MOAT_CL_CASE(CL_INVALID_BUILD_OPTIONS)
    MOAT_CL_CASE(CL_INVALID_PROGRAM)
    MOAT_CL_CASE(CL_INVALID_PROGRAM_EXECUTABLE)
    MOAT_CL_CASE(CL_INVALID_KERNEL_NAME)
    MOAT_CL_CASE(CL_INVALID_KERNEL_DEFINITION)
    MOAT_CL_CASE(CL_INVALID_KERNEL)
    MOAT_CL_CASE(CL_INVALID_ARG_INDEX)
    MOAT_CL_CASE(CL_INVALID_ARG_VALUE)
    MOAT_CL_CASE(CL_INVALID_ARG_SIZE)
    MOAT_CL_CASE(CL_INVALID_KERNEL_ARGS)
    MOAT_CL_CASE(CL_INVALID_WORK_DIMENSION)
    MOAT_CL_CASE(CL_INVALID_WORK_GROUP_SIZE)
    MOAT_CL_CASE(CL_INVALID_WORK_ITEM_SIZE)
    MOAT_CL_CASE(CL_INVALID_GLOBAL_OFFSET)
    MOAT_CL_CASE(CL_INVALID_EVENT_WAIT_LIST)
    MOAT_CL_CASE(CL_INVALID_EVENT)
    MOAT_CL_CASE(CL_INVALID_OPERATION)
    MOAT_CL_CASE(CL_INVALID_GL_OBJECT)
    MOAT_CL_CASE(CL_INVALID_BUFFER_SIZE)
    MOAT_CL_CASE(CL_INVALID_MIP_LEVEL)
    MOAT_CL_CASE(CL_INVALID_GLOBAL_WORK_SIZE)
    MOAT_CL_CASE(CL_INVALID_PROPERTY)
    MOAT_CL_CASE(CL_INVALID_IMAGE_DESCRIPTOR)
    MOAT_CL_CASE(CL_INVALID_COMPILER_OPTIONS)
    MOAT_CL_CASE(CL_INVALID_LINKER_OPTIONS)
    MOAT_CL_CASE(CL_INVALID_DEVICE_PARTITION_COUNT)
    MOAT_CL_CASE(CL_INVALID_PIPE_SIZE)
    MOAT_CL_CASE(CL_INVALID_DEVICE_QUEUE)
    MOAT_CL_CASE(CL_INVALID_SPEC_ID)
    MOAT_CL_CASE(CL_MAX_SIZE_RESTRICTION_EXCEEDED)
    MOAT_CL_CASE(CL_PLATFORM_NOT_FOUND_KHR)
#undef MOAT_CL_CASE
    default: return cat("CL error ", code);
  }
}

void cl_check(cl_int code, std::string_view call, std::string_view what) {
  if (code == CL_SUCCESS) return;
  std::string failure = cat(call, " failed with ", cl_error_name(code), " (", code, ") for ", what);
  switch (code) {
    case CL_OUT_OF_RESOURCES:
    case CL_OUT_OF_HOST_MEMORY:
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_DEVICE_NOT_AVAILABLE:
      user_error("OpenCL: ", failure,
                 ": the device is out of memory or resources; use a smaller model, context or batch, or another "
                 "device (`moat devices` lists them)");
    default: MOAT_INTERNAL_ERROR("OpenCL: ", failure);
  }
}

}  // namespace moat::backends::opencl
