#include "backends/registry.h"

#include <dlfcn.h>

namespace moat::backends {

namespace {

// Whether a vendor runtime can be loaded; the library stays loaded only while probed.
BackendStatus probe_driver(const char* backend, std::initializer_list<const char*> libraries, const char* missing_hint) {
  BackendStatus status{backend, false, {}};
  for (const char* library : libraries) {
    if (void* handle = ::dlopen(library, RTLD_LAZY | RTLD_LOCAL)) {
      ::dlclose(handle);
      status.detail = std::string("driver ") + library + " found; this build does not drive " + backend +
                      " devices yet";
      return status;
    }
  }
  status.detail = std::string("not available: ") + missing_hint;
  return status;
}

}  // namespace

DeviceReport enumerate_devices() {
  DeviceReport report;
  report.devices.push_back(describe_host_cpu());
  report.backends.push_back({"cpu", true, "host CPU"});
  report.backends.push_back(probe_driver("cuda", {"libcuda.so.1"}, "libcuda.so.1 not found (no NVIDIA driver)"));
  report.backends.push_back(
      probe_driver("hip", {"libamdhip64.so", "libamdhip64.so.5", "libamdhip64.so.6"}, "libamdhip64 not found (no ROCm runtime)"));
  report.backends.push_back(
      probe_driver("opencl", {"libOpenCL.so.1"}, "libOpenCL.so.1 not found (install an OpenCL ICD loader and driver)"));
  return report;
}

}  // namespace moat::backends
