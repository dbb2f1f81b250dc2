// The OpenCL entry points moatless calls, loaded from the ICD loader with dlopen
// (internal to backends/opencl: it includes <CL/cl.h>).
//
// Types and constants come from Khronos' <CL/cl.h> (Debian: opencl-c-headers); the
// functions never do: each pointer's type is decltype(&::clFoo) of the header's
// declaration (unevaluated, so nothing links against libOpenCL) and its value comes
// from dlsym. A loader or driver missing a REQUIRED entry point is "not available".
#pragma once

#define CL_TARGET_OPENCL_VERSION 300
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS  // clCreateCommandQueue: present in every loader
#include <CL/cl.h>
#include <CL/cl_ext.h>

#include <string>
#include <string_view>

namespace moat::backends::opencl {

// X(name): every entry point, listed once. OPTIONAL ones may be absent (an OpenCL 1.2
// loader has no clCreateProgramWithIL): their pointer is then nullptr.
#define MOAT_OPENCL_FUNCTIONS(REQUIRED, OPTIONAL) \
  REQUIRED(clGetPlatformIDs)                      \
  REQUIRED(clGetPlatformInfo)                     \
  REQUIRED(clGetDeviceIDs)                        \
  REQUIRED(clGetDeviceInfo)                       \
  REQUIRED(clCreateContext)                       \
  REQUIRED(clReleaseContext)                      \
  REQUIRED(clCreateCommandQueue)                  \
  REQUIRED(clReleaseCommandQueue)                 \
  REQUIRED(clCreateBuffer)                        \
  REQUIRED(clCreateSubBuffer)                     \
  REQUIRED(clReleaseMemObject)                    \
  REQUIRED(clEnqueueWriteBuffer)                  \
  REQUIRED(clEnqueueReadBuffer)                   \
  REQUIRED(clCreateProgramWithSource)             \
  REQUIRED(clCreateProgramWithBinary)             \
  REQUIRED(clBuildProgram)                        \
  REQUIRED(clGetProgramInfo)                      \
  REQUIRED(clGetProgramBuildInfo)                 \
  REQUIRED(clReleaseProgram)                      \
  REQUIRED(clCreateKernel)                        \
  REQUIRED(clReleaseKernel)                       \
  REQUIRED(clSetKernelArg)                        \
  REQUIRED(clEnqueueNDRangeKernel)                \
  REQUIRED(clFinish)                              \
  OPTIONAL(clCreateProgramWithIL)

struct ClApi {
  std::string library;  // the file dlopen found, e.g. "libOpenCL.so.1"
#define MOAT_CL_POINTER(name) decltype(&::name) name = nullptr;
  MOAT_OPENCL_FUNCTIONS(MOAT_CL_POINTER, MOAT_CL_POINTER)
#undef MOAT_CL_POINTER

  // Makes the calling thread fit to call into the driver; cheap after the first time on
  // a thread. The driver lives in a link-map namespace of its own, with its own libc
  // (cl_api.cpp), whose per-thread ctype tables only the thread that loaded it has: any
  // other thread (a server's scheduler, a caller's worker) would crash in the driver's
  // first isspace (PoCL parses build options with it). This sets them up for the thread.
  void enter_thread() const;
  void (*namespace_ctype_init)() = nullptr;  // that libc's __ctype_init (nullptr: not found)
};

// The entry points of `library`, loaded once per process and never unloaded (ICD
// loaders do not support dlclose), or nullptr with `why` saying what is missing.
// Thread-safe; never throws.
const ClApi* load_cl_api(const char* library, std::string& why);

// "CL_OUT_OF_RESOURCES" for -5; "CL error -9999" for a code the table does not know.
std::string cl_error_name(cl_int code);

// Throws when `code` is not CL_SUCCESS, naming `call` ("clCreateBuffer") and `what`
// (the object it acted on): UserError for resource exhaustion (out of device or host
// memory, device unavailable: the user can pick a smaller model or another device),
// InternalError otherwise (an invalid argument is a bug of moatless).
void cl_check(cl_int code, std::string_view call, std::string_view what);

}  // namespace moat::backends::opencl
