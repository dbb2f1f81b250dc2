#include "backends/backend_table.h"

#include <cstdlib>
#include <string_view>

#include "backends/cpu/cpu_backend.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/hip/hip_backend.h"
#include "backends/null/null_backend.h"
#include "backends/opencl/opencl.h"

namespace moat::backends {

namespace {

// An environment switch: set and not "0".
bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value && *value && std::string_view(value) != "0";
}

constexpr BackendEntry kBackends[] = {
    {.name = "cpu",
     .numbered = false,
     .probe = probe_cpu,
     .open = [](int, const CpuOptions& options) { return open_cpu_device(options); }},
    {.name = "cuda", .probe = probe_cuda, .open = [](int n, const CpuOptions&) { return open_cuda_device(n); }},
    {.name = "hip", .probe = probe_hip, .open = [](int n, const CpuOptions&) { return open_hip_device(n); }},
    {.name = "opencl",
     .probe = [](std::vector<DeviceInfo>& devices) {
       opencl::Probe probe = opencl::probe();
       devices.insert(devices.end(), probe.devices.begin(), probe.devices.end());
       return probe.status;
     },
     .open = [](int n, const CpuOptions&) { return opencl::open_device(n); }},
    // The template for a new driver: listed only with MOAT_NULL_BACKEND=1.
    {.name = "null",
     .enabled = [] { return env_flag("MOAT_NULL_BACKEND"); },
     .probe = probe_null,
     .open = [](int n, const CpuOptions&) { return open_null_device(n); }},
};

}  // namespace

std::span<const BackendEntry> backend_table() { return kBackends; }

}  // namespace moat::backends
