// moat devices [--json]: the devices this machine offers and the state of each backend.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backends/registry.h"
#include "samples/moat/commands.h"
#include "support/strings.h"

namespace moat::cli {

namespace {

int run_devices(const ParsedArgs& args) {
  backends::DeviceReport report = backends::enumerate_devices();
  if (args.has("--json")) {
    nlohmann::json out;
    out["devices"] = nlohmann::json::array();
    for (const auto& d : report.devices)
      out["devices"].push_back({{"id", d.id},
                                {"backend", d.backend},
                                {"name", d.name},
                                {"vendor", d.vendor},
                                {"arch", d.arch},
                                {"memory_bytes", d.memory_bytes},
                                {"compute_units", d.compute_units},
                                {"threads", d.threads},
                                {"features", d.features}});
    out["backends"] = nlohmann::json::array();
    for (const auto& b : report.backends)
      out["backends"].push_back({{"backend", b.backend}, {"available", b.available}, {"detail", b.detail}});
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::printf("devices:\n");
  for (const auto& d : report.devices) {
    std::printf("  %-10s %s (%s, %s)\n", d.id.c_str(), d.name.c_str(), d.vendor.c_str(), d.arch.c_str());
    std::printf("  %-10s %d cores, %d threads, %.1f GiB memory\n", "", d.compute_units, d.threads,
                static_cast<double>(d.memory_bytes) / (1024.0 * 1024.0 * 1024.0));
    if (!d.features.empty()) std::printf("  %-10s features: %s\n", "", join(d.features, " ").c_str());
  }
  std::printf("backends:\n");
  for (const auto& b : report.backends) std::printf("  %-10s %s\n", b.backend.c_str(), b.detail.c_str());
  return 0;
}

const Command kDevices{{"devices", "[--json]", "list the devices moatless can run on",
                        {{"--json", "", "print one JSON object"}}},
                       run_devices};

}  // namespace

const Command& devices_command() { return kDevices; }

}  // namespace moat::cli
