#include "backends/registry.h"

#include "backends/cuda/cuda_backend.h"
#include "backends/hip/hip_backend.h"
#include "backends/opencl/opencl.h"

namespace moat::backends {

DeviceReport enumerate_devices() {
  DeviceReport report;
  report.devices.push_back(describe_host_cpu());
  report.backends.push_back({"cpu", true, "host CPU"});
  report.backends.push_back(probe_cuda(report.devices));
  report.backends.push_back(probe_hip(report.devices));
  opencl::Probe opencl = opencl::probe();
  report.devices.insert(report.devices.end(), opencl.devices.begin(), opencl.devices.end());
  report.backends.push_back(opencl.status);
  return report;
}

}  // namespace moat::backends
