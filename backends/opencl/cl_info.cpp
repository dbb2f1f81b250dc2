#include "backends/opencl/cl_info.h"

#include <algorithm>
#include <climits>
#include <set>

#include "backends/opencl/opencl.h"
#include "support/error.h"

namespace moat::backends::opencl {

namespace {

// Sub-group size assumed where a device reports sub-groups but no vendor query gives
// the width (cl_khr_subgroups fixes it per kernel only): the common warp width.
constexpr int kDefaultSubGroupSize = 32;
// Preferred Intel sub-group width when several are offered (8/16/32 on Intel GPUs; 16
// is the one every Intel GPU supports for every kernel).
constexpr size_t kPreferredIntelSubGroupSize = 16;

// Extensions that change what the OpenCL emitter may generate or which artifact
// formats the device takes; reported as features.
constexpr const char* kFeatureExtensions[] = {
    "cl_khr_fp16",       "cl_khr_fp64",        "cl_khr_subgroups",           "cl_intel_subgroups",
    "cl_intel_required_subgroup_size",         "cl_khr_il_program",          "cl_khr_spir",
    "cl_khr_int64_base_atomics",               "cl_khr_global_int32_base_atomics"};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ' || s.back() == '\n')) s.pop_back();
  size_t b = s.find_first_not_of(' ');
  return b == std::string::npos ? std::string() : s.substr(b);
}

std::set<std::string> split(const std::string& text) {
  std::set<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t space = text.find(' ', at);
    if (space == std::string::npos) space = text.size();
    if (space > at) out.insert(text.substr(at, space - at));
    at = space + 1;
  }
  return out;
}

std::string platform_string(const ClApi& api, cl_platform_id platform, cl_platform_info param, const char* what) {
  size_t size = 0;
  cl_check(api.clGetPlatformInfo(platform, param, 0, nullptr, &size), "clGetPlatformInfo", what);
  std::string out(size, '\0');
  cl_check(api.clGetPlatformInfo(platform, param, size, out.data(), nullptr), "clGetPlatformInfo", what);
  return trim(std::move(out));
}

// A string the device may not know (IL version on an OpenCL 1.2 device): "" then.
std::string device_string(const ClApi& api, cl_device_id device, cl_device_info param, const char* what,
                          bool optional = false) {
  size_t size = 0;
  cl_int code = api.clGetDeviceInfo(device, param, 0, nullptr, &size);
  if (optional && code != CL_SUCCESS) return {};
  cl_check(code, "clGetDeviceInfo", what);
  std::string out(size, '\0');
  cl_check(api.clGetDeviceInfo(device, param, size, out.data(), nullptr), "clGetDeviceInfo", what);
  return trim(std::move(out));
}

template <class T>
T device_value(const ClApi& api, cl_device_id device, cl_device_info param, const char* what) {
  T value{};
  cl_check(api.clGetDeviceInfo(device, param, sizeof value, &value, nullptr), "clGetDeviceInfo", what);
  return value;
}

int clamp_int(uint64_t value) { return static_cast<int>(std::min<uint64_t>(value, INT_MAX)); }

// Work-items per sub-group for kernels that use sub-group functions; 1 when the device
// has no OpenCL C sub-group functions (PoCL's CPU device: then reductions go through
// local memory).
int sub_group_size(const ClApi& api, cl_device_id device, const std::set<std::string>& extensions) {
  if (extensions.count("cl_intel_subgroups")) {
    size_t size = 0;
    std::vector<size_t> sizes;
    if (api.clGetDeviceInfo(device, CL_DEVICE_SUB_GROUP_SIZES_INTEL, 0, nullptr, &size) == CL_SUCCESS && size) {
      sizes.resize(size / sizeof(size_t));
      if (api.clGetDeviceInfo(device, CL_DEVICE_SUB_GROUP_SIZES_INTEL, size, sizes.data(), nullptr) != CL_SUCCESS)
        sizes.clear();
    }
    if (std::count(sizes.begin(), sizes.end(), kPreferredIntelSubGroupSize)) return kPreferredIntelSubGroupSize;
    if (!sizes.empty()) return clamp_int(*std::max_element(sizes.begin(), sizes.end()));
    return static_cast<int>(kPreferredIntelSubGroupSize);
  }
  if (!extensions.count("cl_khr_subgroups")) return 1;
  cl_uint width = 0;
  if (extensions.count("cl_nv_device_attribute_query"))
    api.clGetDeviceInfo(device, CL_DEVICE_WARP_SIZE_NV, sizeof width, &width, nullptr);
  else if (extensions.count("cl_amd_device_attribute_query"))
    api.clGetDeviceInfo(device, CL_DEVICE_WAVEFRONT_WIDTH_AMD, sizeof width, &width, nullptr);
  return width > 0 ? static_cast<int>(width) : kDefaultSubGroupSize;
}

ClDeviceEntry describe(const ClApi& api, cl_platform_id platform, cl_device_id device, size_t index) {
  ClDeviceEntry e;
  e.platform = platform;
  e.device = device;
  e.platform_name = platform_string(api, platform, CL_PLATFORM_NAME, "the platform name");
  e.platform_version = platform_string(api, platform, CL_PLATFORM_VERSION, "the platform version");
  e.device_version = device_string(api, device, CL_DEVICE_VERSION, "the device version");
  e.driver_version = device_string(api, device, CL_DRIVER_VERSION, "the driver version");
  std::set<std::string> extensions = split(device_string(api, device, CL_DEVICE_EXTENSIONS, "the device extensions"));
  // CL_DEVICE_IL_VERSION (OpenCL 2.1+) and CL_DEVICE_IL_VERSION_KHR (cl_khr_il_program) are the same query.
  e.il_version = device_string(api, device, CL_DEVICE_IL_VERSION, "the IL version", /*optional=*/true);

  DeviceProperties& p = e.properties;
  DeviceInfo& info = p.info;
  info.id = cat("opencl:", index);
  info.backend = "opencl";
  info.name = device_string(api, device, CL_DEVICE_NAME, "the device name");
  info.vendor = device_string(api, device, CL_DEVICE_VENDOR, "the device vendor");
  info.arch = e.device_version;
  info.memory_bytes = device_value<cl_ulong>(api, device, CL_DEVICE_GLOBAL_MEM_SIZE, "the global memory size");
  info.compute_units = clamp_int(device_value<cl_uint>(api, device, CL_DEVICE_MAX_COMPUTE_UNITS, "compute units"));
  for (const char* extension : kFeatureExtensions)
    if (extensions.count(extension)) info.features.emplace_back(extension);
  for (const std::string& il : split(e.il_version)) info.features.push_back("il:" + il);  // "il:SPIR-V_1.2"
  bool fp64 = extensions.count("cl_khr_fp64") ||
              device_value<cl_device_fp_config>(api, device, CL_DEVICE_DOUBLE_FP_CONFIG, "the fp64 config") != 0;
  if (fp64) info.features.emplace_back("fp64");
  if (extensions.count("cl_khr_fp16")) info.features.emplace_back("fp16_arith");  // else f16 is storage only

  p.max_work_group_size =
      clamp_int(device_value<size_t>(api, device, CL_DEVICE_MAX_WORK_GROUP_SIZE, "the max work-group size"));
  p.local_memory_bytes = static_cast<int64_t>(std::min<cl_ulong>(
      device_value<cl_ulong>(api, device, CL_DEVICE_LOCAL_MEM_SIZE, "the local memory size"), INT64_MAX));
  p.sub_group_size = sub_group_size(api, device, extensions);
  cl_uint floats = device_value<cl_uint>(api, device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, "the float vector width");
  p.vector_bits = 32 * static_cast<int>(std::clamp<cl_uint>(floats, 1, 64));
  // The OpenCL C emitter carries f16 / bf16 / f8 as bits and dequantises blocks with
  // integer code, so every dtype runs without device extensions.
  p.dtypes = {"f32", "f16", "bf16", "i64", "i32", "i8", "u8", "bool"};
  // OpenCL has no query for memory bandwidth: a CPU device (PoCL) computes from host
  // DRAM, whose bandwidth is measured; a GPU's stays unknown (0).
  p.host_memory = (device_value<cl_device_type>(api, device, CL_DEVICE_TYPE, "the device type") & CL_DEVICE_TYPE_CPU) != 0;
  p.first_launch_compiles = true;  // clEnqueueNDRangeKernel may build the kernel for its work-group size
  return e;
}

}  // namespace

std::vector<ClDeviceEntry> enumerate_cl_devices(const ClApi& api) {
  cl_uint n_platforms = 0;
  cl_int code = api.clGetPlatformIDs(0, nullptr, &n_platforms);
  if (code == CL_PLATFORM_NOT_FOUND_KHR || (code == CL_SUCCESS && n_platforms == 0)) return {};
  cl_check(code, "clGetPlatformIDs", "the platform count");
  std::vector<cl_platform_id> platforms(n_platforms);
  cl_check(api.clGetPlatformIDs(n_platforms, platforms.data(), nullptr), "clGetPlatformIDs", "the platforms");

  std::vector<ClDeviceEntry> out;
  for (cl_platform_id platform : platforms) {
    cl_uint n_devices = 0;
    code = api.clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 0, nullptr, &n_devices);
    if (code == CL_DEVICE_NOT_FOUND || n_devices == 0) continue;
    cl_check(code, "clGetDeviceIDs", "the device count");
    std::vector<cl_device_id> devices(n_devices);
    cl_check(api.clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, n_devices, devices.data(), nullptr), "clGetDeviceIDs",
             "the devices");
    for (cl_device_id device : devices) out.push_back(describe(api, platform, device, out.size()));
  }
  return out;
}

Probe probe(const char* library) {
  Probe out;
  out.status.backend = "opencl";
  std::string why;
  const ClApi* api = load_cl_api(library, why);
  if (!api) {
    out.status.detail = "not available: " + why;
    return out;
  }
  try {
    std::set<std::string> platforms;
    for (ClDeviceEntry& entry : enumerate_cl_devices(*api)) {
      platforms.insert(entry.platform_name);
      out.devices.push_back(std::move(entry.properties.info));
    }
    if (out.devices.empty()) {
      out.status.detail = cat("not available: ", library,
                              " found, but no OpenCL platform offers a device (install a driver, e.g. Debian's "
                              "pocl-opencl-icd for the CPU)");
      return out;
    }
    out.status.available = true;
    out.status.detail = cat(library, ": ", out.devices.size(), out.devices.size() == 1 ? " device" : " devices",
                            " on ", join(platforms, ", "));
  } catch (const std::exception& e) {
    out.devices.clear();
    out.status.detail = cat("not available: the OpenCL driver failed: ", e.what());
  }
  return out;
}

}  // namespace moat::backends::opencl
