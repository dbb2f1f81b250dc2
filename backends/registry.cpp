#include "backends/registry.h"

#include "backends/backend_table.h"

namespace moat::backends {

DeviceReport enumerate_devices() {
  DeviceReport report;
  for (const BackendEntry& backend : backend_table()) {
    if (backend.enabled && !backend.enabled()) continue;
    report.backends.push_back(backend.probe(report.devices));
  }
  return report;
}

}  // namespace moat::backends
