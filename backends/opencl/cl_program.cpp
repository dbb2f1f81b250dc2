#include "backends/opencl/cl_program.h"

#include <algorithm>
#include <set>

#include "backends/opencl/clbin.h"
#include "support/error.h"

namespace moat::backends::opencl {

namespace {

std::string kernels_of(const Artifact& artifact) {
  return artifact.kernels.empty() ? std::string("(no kernels listed)") : join(artifact.kernels, ", ");
}

std::string build_log(const ClTarget& t, cl_program program) {
  size_t size = 0;
  if (t.api->clGetProgramBuildInfo(program, t.device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &size) != CL_SUCCESS)
    return "(the driver gives no build log)";
  std::string log(size, '\0');
  if (t.api->clGetProgramBuildInfo(program, t.device, CL_PROGRAM_BUILD_LOG, size, log.data(), nullptr) != CL_SUCCESS)
    return "(the driver gives no build log)";
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n' || log.back() == ' ')) log.pop_back();
  return log.empty() ? std::string("(empty build log)") : log;
}

// clBuildProgram; a failed build is the kernel's fault (UserError with the log), any
// other failure the driver's or ours (cl_check).
void build(const ClTarget& t, cl_program program, const std::string& options, const Artifact& artifact,
           const char* format) {
  cl_int code = t.api->clBuildProgram(program, 1, &t.device, options.c_str(), nullptr, nullptr);
  if (code == CL_BUILD_PROGRAM_FAILURE || code == CL_COMPILE_PROGRAM_FAILURE || code == CL_LINK_PROGRAM_FAILURE ||
      code == CL_INVALID_BINARY || code == CL_INVALID_BUILD_OPTIONS)
    user_error("OpenCL build of kernel(s) ", kernels_of(artifact), " (", format, ", options \"", options, "\") for ",
               t.device_id, " (", t.device_name, ") failed with ", cl_error_name(code),
               "; fix the kernel source (if moatless emitted it, report a bug with the output of `moat emit`). "
               "Build log:\n",
               build_log(t, program));
  cl_check(code, "clBuildProgram", cat("kernel(s) ", kernels_of(artifact)));
}

// UserError when the built program lacks one of the artifact's kernels.
void check_kernels(const ClTarget& t, cl_program program, const Artifact& artifact) {
  size_t size = 0;
  cl_check(t.api->clGetProgramInfo(program, CL_PROGRAM_KERNEL_NAMES, 0, nullptr, &size), "clGetProgramInfo",
           "the kernel names");
  std::string names(size, '\0');
  cl_check(t.api->clGetProgramInfo(program, CL_PROGRAM_KERNEL_NAMES, size, names.data(), nullptr), "clGetProgramInfo",
           "the kernel names");
  std::set<std::string> has;
  size_t at = 0;
  names.resize(std::min(names.size(), names.find('\0')));
  while (at <= names.size()) {
    size_t end = std::min(names.find(';', at), names.size());
    if (end > at) has.insert(names.substr(at, end - at));
    at = end + 1;
  }
  std::vector<std::string> missing;
  for (const std::string& k : artifact.kernels)
    if (!has.count(k)) missing.push_back(k);
  if (!missing.empty())
    user_error("OpenCL program for ", t.device_id, " has no kernel ", join(missing, ", "),
               " (it defines: ", has.empty() ? std::string("none") : join(has, ", "),
               "); list the __kernel functions the source defines");
}

// The program's device binary (CL_PROGRAM_BINARIES) for its one device.
std::vector<uint8_t> program_binary(const ClTarget& t, cl_program program, const Artifact& source) {
  size_t size = 0;
  cl_check(t.api->clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, nullptr),
           "clGetProgramInfo", "the program binary size");
  if (size == 0)
    user_error("the OpenCL driver of ", t.device_id, " (", t.device_name, ") returns no binary for kernel(s) ",
               kernels_of(source), "; this device cannot use compiled OpenCL kernels");
  std::vector<uint8_t> binary(size);
  unsigned char* pointer = binary.data();
  cl_check(t.api->clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof pointer, &pointer, nullptr),
           "clGetProgramInfo", "the program binary");
  return binary;
}

ProgramRef from_binary(const ClTarget& t, std::span<const uint8_t> bytes, const Artifact& artifact,
                       const char* format) {
  const unsigned char* pointer = bytes.data();
  size_t size = bytes.size();
  cl_int status = CL_SUCCESS, code = CL_SUCCESS;
  cl_program program = t.api->clCreateProgramWithBinary(t.context, 1, &t.device, &size, &pointer, &status, &code);
  if (code == CL_INVALID_BINARY || status == CL_INVALID_BINARY) {
    if (program) t.api->clReleaseProgram(program);
    user_error("the driver of ", t.device_id, " (", t.device_name, ") rejects the ", format, " binary of kernel(s) ",
               kernels_of(artifact),
               " (CL_INVALID_BINARY: made for another device or driver version, or not a binary this device "
               "takes); compile the source again (clear the kernel cache directory if it came from there)");
  }
  cl_check(code, "clCreateProgramWithBinary", cat("kernel(s) ", kernels_of(artifact)));
  return ProgramRef(program, ProgramRelease{t.api});
}

// An unbuilt program from a source artifact, with the options to build it with.
ProgramRef create_from_source(const ClTarget& t, const Artifact& source, std::string& options) {
  if (source.format == "cl") {
    options = kSourceOptions;
    const char* text = reinterpret_cast<const char*>(source.bytes.data());
    size_t size = source.bytes.size();
    cl_int code = CL_SUCCESS;
    cl_program program = t.api->clCreateProgramWithSource(t.context, 1, &text, &size, &code);
    cl_check(code, "clCreateProgramWithSource", cat("kernel(s) ", kernels_of(source)));
    return ProgramRef(program, ProgramRelease{t.api});
  }
  if (source.format == "bc-spir") {
    if (!t.takes_spir)
      user_error(t.device_id, " (", t.device_name,
                 ") does not take SPIR modules (no cl_khr_spir); compile kernel(s) ", kernels_of(source),
                 " from OpenCL C (format \"cl\") instead");
    options = kSpirOptions;
    return from_binary(t, source.bytes, source, "SPIR");
  }
  if (source.format == "spv") {
    if (t.il_version.find("SPIR-V") == std::string::npos || !t.api->clCreateProgramWithIL)
      user_error(t.device_id, " (", t.device_name, ") does not take SPIR-V (",
                 t.api->clCreateProgramWithIL ? "the device reports no SPIR-V IL version"
                                              : "the OpenCL loader has no clCreateProgramWithIL",
                 "); compile kernel(s) ", kernels_of(source), " from OpenCL C (format \"cl\") or SPIR (\"bc-spir\")");
    options = kSpirvOptions;
    cl_int code = CL_SUCCESS;
    cl_program program = t.api->clCreateProgramWithIL(t.context, source.bytes.data(), source.bytes.size(), &code);
    if (code == CL_INVALID_VALUE || code == CL_INVALID_BINARY)
      user_error("the driver of ", t.device_id, " rejects the SPIR-V module of kernel(s) ", kernels_of(source), " (",
                 cl_error_name(code), "); validate it with spirv-val");
    cl_check(code, "clCreateProgramWithIL", cat("kernel(s) ", kernels_of(source)));
    return ProgramRef(program, ProgramRelease{t.api});
  }
  if (source.format == "clbin")
    user_error("kernel(s) ", kernels_of(source), " are already compiled (format \"clbin\"): load them instead");
  user_error("OpenCL devices compile formats \"cl\" (OpenCL C), \"bc-spir\" (spir64 LLVM bitcode) and \"spv\" "
             "(SPIR-V), not \"",
             source.format, "\" (kernel(s) ", kernels_of(source), ")");
}

}  // namespace

Artifact compile_program(const ClTarget& t, const Artifact& source) {
  std::string options;
  ProgramRef program = create_from_source(t, source, options);
  build(t, program.get(), options, source, source.format.c_str());
  check_kernels(t, program.get(), source);
  Artifact out;
  out.format = "clbin";
  out.bytes = encode_clbin({options, program_binary(t, program.get(), source)});
  out.kernels = source.kernels;
  return out;
}

ProgramRef load_program(const ClTarget& t, const Artifact& binary) {
  if (binary.format != "clbin")
    user_error("OpenCL devices load format \"clbin\" (the output of compile()), not \"", binary.format,
               "\" (kernel(s) ", kernels_of(binary), "); compile it first");
  ClBinary decoded = decode_clbin(binary.bytes);
  ProgramRef program = from_binary(t, decoded.binary, binary, "clbin");
  build(t, program.get(), decoded.options, binary, "clbin");
  check_kernels(t, program.get(), binary);
  return program;
}

}  // namespace moat::backends::opencl
