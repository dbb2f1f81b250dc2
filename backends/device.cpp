#include "backends/device.h"

#include "support/error.h"

namespace moat::backends {

Artifact Artifact::text(std::string format, std::string_view text, std::vector<std::string> kernels) {
  Artifact a;
  a.format = std::move(format);
  a.bytes.assign(text.begin(), text.end());
  a.kernels = std::move(kernels);
  return a;
}

std::unique_ptr<Device> open_device(std::string_view id, const CpuOptions& cpu_options) {
  if (id == "cpu") return open_cpu_device(cpu_options);
  // Other backends enumerate devices but cannot run work yet.
  DeviceReport report = enumerate_devices();
  std::vector<std::string> ids;
  for (const DeviceInfo& d : report.devices)
    if (d.backend == "cpu") ids.push_back(d.id);
  user_error("no device '", id, "' to run on (available: ", join(ids, ", "),
             "); `moat devices` lists the devices and the state of each backend");
}

}  // namespace moat::backends
