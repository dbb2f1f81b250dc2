#include "samples/moat/placement_options.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "cluster/mpi_link.h"
#include "support/error.h"
#include "support/memory.h"
#include "support/strings.h"

namespace moat::cli {

namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    items.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

}  // namespace

std::vector<OptionSpec> with_placement_options(std::vector<OptionSpec> options, bool mpi) {
  std::vector<OptionSpec> placement = {
      {"--device", "ID[,ID...]", "cpu (default), opencl:N, cuda:N or hip:N (see moat devices); several: the model's layers "
                                 "split over them in this order (--split)"},
      {"--split", "layers[:R,...]", "with several --device: contiguous layers per device in proportion R1:R2:... "
                                    "(default: equal shares to the devices other than --moe-device's); activations pass "
                                    "from device to device"},
      {"--moe-device", "ID", "run the routed experts on ID (e.g. cpu, as llama.cpp's --cpu-moe), the rest on --device"},
      {"--n-moe-device", "N", "only the first N layers' routed experts on --moe-device (llama.cpp's --n-cpu-moe)"}};
  if (mpi) {
    placement.push_back({"--mpi", "pipeline|expert",
                         "under mpirun: the ranks run one model together, each on its --device (one for all, or one per "
                         "rank): pipeline splits the layers over the ranks (--split), expert gives every rank a share of "
                         "each layer's routed experts"});
    placement.push_back({"--mpi-timeout", "S", "with --mpi: seconds a rank waits for a silent rank before it stops with an error (default 30)"});
  }
  auto model = std::find_if(options.begin(), options.end(), [](const OptionSpec& o) { return o.name == "-m"; });
  options.insert(model == options.end() ? options.begin() : model + 1, placement.begin(), placement.end());
  return options;
}

std::vector<double> layer_shares(const std::string& split, size_t devices) {
  if (split == "layers") return std::vector<double>(devices, 1.0);
  if (!split.starts_with("layers:"))
    user_error("--split ", split, ": the one split is by layers: --split layers, or layers:R1,R2,... (a ratio per --device)");
  std::vector<double> shares;
  for (const std::string& item : split_commas(split.substr(7))) {
    char* end = nullptr;
    errno = 0;
    const double share = std::strtod(item.c_str(), &end);
    if (item.empty() || errno != 0 || end != item.c_str() + item.size() || !(share >= 0))
      user_error("--split ", split, ": '", item, "' is not a ratio (a number >= 0)");
    shares.push_back(share);
  }
  if (shares.size() != devices)
    user_error("--split ", split, " gives ", shares.size(), " ratios for ", devices, " devices (--device); give one per device");
  return shares;
}

DevicePlacement placement_options(const ParsedArgs& args, int64_t layers) {
  const std::string devices = args.value_or("--device", "cpu");
  std::vector<std::string> ids = split_commas(devices);
  for (const std::string& id : ids)
    if (id.empty()) user_error("--device ", devices, ": an empty device id");
  return placement_for(std::move(ids), args, layers);
}

DevicePlacement placement_for(std::vector<std::string> ids, const ParsedArgs& args, int64_t layers) {
  DevicePlacement out;
  out.ids = std::move(ids);
  for (size_t i = 0; i < out.ids.size(); ++i)
    if (std::find(out.ids.begin(), out.ids.begin() + static_cast<std::ptrdiff_t>(i), out.ids[i]) != out.ids.begin() + static_cast<std::ptrdiff_t>(i))
      user_error("--device lists ", out.ids[i], " twice; give each device once");
  if (args.has("--n-moe-device") && !args.has("--moe-device"))
    user_error("--n-moe-device says how many layers' routed experts go to --moe-device; give --moe-device too");
  const bool moe = args.has("--moe-device");
  const std::string moe_id = moe ? args.value("--moe-device") : "";
  // Without --split, the layers go in equal shares to the listed devices other than the
  // experts' device; with it, one ratio per listed device.
  const size_t listed = out.ids.size();
  if (args.has("--split") || listed > 1) {
    std::vector<double> shares = layer_shares(args.value_or("--split", "layers"), listed);
    if (!args.has("--split") && moe && listed > 1)
      for (size_t i = 0; i < listed; ++i) shares[i] = out.ids[i] == moe_id ? 0.0 : 1.0;
    out.spec.layers_per_device = runtime::split_layers(layers, shares);
  }
  if (moe) {
    auto it = std::find(out.ids.begin(), out.ids.end(), moe_id);
    if (it == out.ids.end()) {
      out.ids.push_back(moe_id);
      if (out.spec.layers_per_device.empty()) out.spec.layers_per_device = {layers};
      out.spec.layers_per_device.push_back(0);
      it = out.ids.end() - 1;
    }
    out.spec.moe_device = static_cast<int>(it - out.ids.begin());
    out.spec.moe_layers = args.integer("--n-moe-device", -1, 0, 1 << 20);
  }
  return out;
}

RankPlacement start_ranks(const ParsedArgs& args, int64_t layers, const backends::CpuOptions& cpu) {
  RankPlacement out;
  out.mode = args.value("--mpi");
  if (out.mode != "pipeline" && out.mode != "expert")
    user_error("--mpi ", out.mode, ": pipeline (layers split over the ranks) or expert (every rank a share of the routed experts)");
  if (args.has("--moe-device") || args.has("--n-moe-device"))
    user_error("--moe-device places experts inside one process; across ranks use --mpi expert");
  if (out.mode == "expert" && args.has("--split")) user_error("--split splits layers over --mpi pipeline's ranks, not --mpi expert's");
  const std::string listed = args.value_or("--device", "cpu");
  const std::vector<std::string> ids = split_commas(listed);
  for (const std::string& id : ids)
    if (id.empty() || id.find('+') != std::string::npos) user_error("--device ", listed, " with --mpi: one device id per rank, separated by commas");
  cluster::MpiOptions mpi;
  mpi.timeout_s = args.number("--mpi-timeout", 30, 0.1, 86400);
  out.link = cluster::start_mpi(mpi);
  const int rank = out.link->rank(), ranks = out.link->ranks();
  // PoCL's kernel cache is not safe for several processes at once (pocl/pocl#1480): ranks
  // on one machine each get their own, unless the user chose one.
  if (ranks > 1 && !std::getenv("POCL_CACHE_DIR")) {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    const std::string base = xdg && *xdg ? std::string(xdg) : home && *home ? std::string(home) + "/.cache" : "/tmp";
    setenv("POCL_CACHE_DIR", cat(base, "/pocl/moat-rank-", rank).c_str(), 1);
  }
  if (rank > 0 && !std::freopen("/dev/null", "w", stdout)) user_error("rank ", rank, ": cannot silence standard output");
  if (ids.size() != 1 && static_cast<int>(ids.size()) != ranks)
    user_error("--mpi with ", ranks, " ranks: give one --device for all of them or one per rank (rank r uses the r-th), not ", ids.size());
  for (int r = 0; r < ranks; ++r) out.placement.ids.push_back(ids[ids.size() == 1 ? 0 : static_cast<size_t>(r)]);
  out.device = backends::open_device(out.placement.ids[static_cast<size_t>(rank)], cpu);
  if (out.mode == "pipeline") {
    std::vector<double> shares(static_cast<size_t>(ranks), 1.0);
    if (args.has("--split")) shares = layer_shares(args.value("--split"), static_cast<size_t>(ranks));
    out.placement.spec.layers_per_device = runtime::split_layers(layers, shares);
  }
  return out;
}

std::vector<backends::Device*> RankPlacement::session_devices() const {
  if (mode == "expert") return {device.get()};
  std::vector<backends::Device*> slots(placement.ids.size(), nullptr);
  slots[static_cast<size_t>(link->rank())] = device.get();
  return slots;
}

std::string placement_report(const runtime::Session& session) {
  std::vector<std::string> parts;
  for (const runtime::DeviceShare& share : session.device_shares()) {
    std::vector<std::string> what;
    if (share.layers == 1) what.push_back(cat("layer ", share.first_layer));
    if (share.layers > 1) what.push_back(cat("layers ", share.first_layer, "-", share.first_layer + share.layers - 1));
    if (share.routed_experts) what.push_back("routed experts");
    if (what.empty()) what.push_back("no layers");
    parts.push_back(cat(share.device, ": ", join(what, ", "), " (weights ", mib(share.needs.weights), ", cache ", mib(share.needs.cache),
                        ", activations ", mib(share.needs.activations), ")"));
  }
  std::string report = cat("placement: ", join(parts, " | "), " | moved between devices: ", session.moved_bytes_per_token(),
                           " bytes per decoded token");
  for (const std::string& f : session.fallbacks()) report += cat("\nmoat: placement: ", f, " (the device cannot run it)");
  return report;
}

}  // namespace moat::cli
