// Enumeration of OpenCL platforms and devices, and what each device reports
// (internal to backends/opencl).
#pragma once

#include <string>
#include <vector>

#include "backends/device.h"
#include "backends/opencl/cl_api.h"

namespace moat::backends::opencl {

struct ClDeviceEntry {
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  DeviceProperties properties;  // info.id "opencl:N"
  std::string platform_name;
  std::string platform_version;  // "OpenCL 3.0 PoCL 3.1+debian ..."
  std::string device_version;    // "OpenCL 3.0 ..."
  std::string driver_version;    // "3.1+debian"
  std::string il_version;        // "SPIR-V_1.2 ..."; "" when the device takes no IL
};

// Every device of every platform, in enumeration order. No platform (the loader has no
// driver registered) gives an empty list; a failing query throws (cl_check).
std::vector<ClDeviceEntry> enumerate_cl_devices(const ClApi& api);

}  // namespace moat::backends::opencl
