// Device enumeration: what the machine has, found at run time. Vendor runtimes are
// probed with dlopen, so one binary runs on any machine; a missing driver is reported
// as "not available: <reason>", never an error.
//
// The registry level of the unified device API (registry -> device -> stream ->
// buffer); backends/device.h opens what it lists.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moat::backends {

struct DeviceInfo {
  std::string id;       // "cpu", "opencl:0", "cuda:0", "hip:0"
  std::string backend;  // "cpu", "opencl", "cuda", "hip"
  std::string name;
  std::string vendor;
  std::string arch;          // "x86_64", "sm_90", "gfx90a"
  uint64_t memory_bytes = 0;  // bytes usable by the device
  int compute_units = 0;      // physical cores / SMs / CUs (CPU: cores this process may run on)
  int threads = 0;            // hardware threads (CPU: those in this process's affinity mask)
  std::vector<std::string> features;  // ISA features that change code generation
  bool has_feature(std::string_view f) const {
    for (const std::string& have : features)
      if (have == f) return true;
    return false;
  }
};

struct BackendStatus {
  std::string backend;
  bool available = false;
  std::string detail;  // why not, or which driver library was found
};

struct DeviceReport {
  std::vector<DeviceInfo> devices;
  std::vector<BackendStatus> backends;
};

DeviceReport enumerate_devices();

// The host CPU (backends/cpu/cpu_info.cpp).
DeviceInfo describe_host_cpu();

}  // namespace moat::backends
