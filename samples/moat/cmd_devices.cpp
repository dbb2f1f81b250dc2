// moat devices [--json]: the devices this machine offers and the state of each backend.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backends/device.h"
#include "backends/registry.h"
#include "samples/moat/commands.h"
#include "support/strings.h"

namespace moat::cli {

namespace {

// What a device reports once opened (the properties schedules are chosen from).
struct OpenedDevice {
  backends::DeviceProperties properties;
  std::string compile_fingerprint;
};

OpenedDevice open_for_report(const backends::DeviceInfo& info) {
  backends::CpuOptions cpu_options;
  cpu_options.threads = 1;  // no worker threads: nothing is launched here
  std::unique_ptr<backends::Device> device = backends::open_device(info.id, cpu_options);
  return {device->properties(), device->compile_fingerprint()};
}

nlohmann::json properties_json(const OpenedDevice& opened) {
  const backends::DeviceProperties& p = opened.properties;
  return {{"max_work_group_size", p.max_work_group_size},
          {"local_memory_bytes", p.local_memory_bytes},
          {"sub_group_size", p.sub_group_size},
          {"vector_bits", p.vector_bits},
          {"dtypes", p.dtypes},
          {"compile_fingerprint", opened.compile_fingerprint}};
}

int run_devices(const ParsedArgs& args) {
  backends::DeviceReport report = backends::enumerate_devices();
  std::vector<OpenedDevice> opened;
  for (const auto& d : report.devices) opened.push_back(open_for_report(d));
  if (args.has("--json")) {
    nlohmann::json out;
    out["devices"] = nlohmann::json::array();
    for (size_t i = 0; i < report.devices.size(); ++i) {
      const backends::DeviceInfo& d = report.devices[i];
      out["devices"].push_back({{"id", d.id},
                                {"backend", d.backend},
                                {"name", d.name},
                                {"vendor", d.vendor},
                                {"arch", d.arch},
                                {"memory_bytes", d.memory_bytes},
                                {"compute_units", d.compute_units},
                                {"threads", d.threads},
                                {"features", d.features},
                                {"properties", properties_json(opened[i])}});
    }
    out["backends"] = nlohmann::json::array();
    for (const auto& b : report.backends)
      out["backends"].push_back({{"backend", b.backend}, {"available", b.available}, {"detail", b.detail}});
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::printf("devices:\n");
  for (size_t i = 0; i < report.devices.size(); ++i) {
    const backends::DeviceInfo& d = report.devices[i];
    const backends::DeviceProperties& p = opened[i].properties;
    std::printf("  %-10s %s (%s, %s)\n", d.id.c_str(), d.name.c_str(), d.vendor.c_str(), d.arch.c_str());
    double gib = static_cast<double>(d.memory_bytes) / (1024.0 * 1024.0 * 1024.0);
    if (d.threads > 0) std::printf("  %-10s %d cores, %d threads, %.1f GiB memory\n", "", d.compute_units, d.threads, gib);
    else std::printf("  %-10s %d compute units, %.1f GiB memory\n", "", d.compute_units, gib);
    if (!d.features.empty()) std::printf("  %-10s features: %s\n", "", join(d.features, " ").c_str());
    std::printf("  %-10s work-groups of up to %d items, %lld KiB local memory, sub-group %d, %d-bit vectors\n", "",
                p.max_work_group_size, static_cast<long long>(p.local_memory_bytes / 1024), p.sub_group_size,
                p.vector_bits);
    std::printf("  %-10s dtypes: %s\n", "", join(p.dtypes, " ").c_str());
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
