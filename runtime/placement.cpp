#include "runtime/placement.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include "support/error.h"

namespace moat::runtime {

namespace {

bool is_source(ir::Op op) { return ir::op_kind(op) == ir::OpKind::Source; }

// The device that runs decoder layer `layer` (below 0: the first layer's; past the last:
// the last layer's, e.g. an MTP layer).
int device_of_layer(const PlacementSpec& spec, int64_t layer) {
  if (spec.layers_per_device.empty()) return 0;
  int first = -1, last = -1;
  int64_t end = 0;
  for (size_t d = 0; d < spec.layers_per_device.size(); ++d) {
    if (spec.layers_per_device[d] == 0) continue;
    if (first < 0) first = static_cast<int>(d);
    last = static_cast<int>(d);
    end += spec.layers_per_device[d];
    if (layer >= 0 && layer < end) return static_cast<int>(d);
  }
  return layer < 0 ? first : last;
}

}  // namespace

int64_t weight_layer(const std::string& name) {
  const size_t prefix = name.starts_with("blk.") ? 4 : name.starts_with("layers.") ? 7 : 0;
  if (prefix == 0) return -1;
  int64_t layer = 0;
  size_t i = prefix;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) {
    layer = layer * 10 + (name[i] - '0');
    if (layer > (int64_t{1} << 40)) return -1;
  }
  return i < name.size() && name[i] == '.' ? layer : -1;
}

std::vector<int64_t> split_layers(int64_t layers, const std::vector<double>& shares) {
  double total = 0;
  for (double s : shares) {
    if (!(s >= 0) || !std::isfinite(s)) user_error("--split layers: a device's share must be a number >= 0, got ", s);
    total += s;
  }
  if (shares.empty() || !(total > 0)) user_error("--split layers: give at least one device a share above 0");
  std::vector<int64_t> counts;
  double cumulative = 0;
  int64_t before = 0;
  for (double s : shares) {
    cumulative += s;
    const auto upto = static_cast<int64_t>(std::llround(cumulative / total * static_cast<double>(layers)));
    counts.push_back(upto - before);
    before = upto;
  }
  return counts;
}

void check_placement(const PlacementSpec& spec, int devices, int64_t layers) {
  if (!spec.layers_per_device.empty()) {
    if (static_cast<int>(spec.layers_per_device.size()) != devices)
      user_error("--split layers gives ", spec.layers_per_device.size(), " shares for ", devices, " devices; give one per device");
    const int64_t sum = std::accumulate(spec.layers_per_device.begin(), spec.layers_per_device.end(), int64_t{0});
    if (sum != layers || std::any_of(spec.layers_per_device.begin(), spec.layers_per_device.end(), [](int64_t n) { return n < 0; }))
      user_error("the layer split gives ", sum, " layers to the devices and the model has ", layers);
  }
  if (spec.moe_device >= devices) user_error("the routed experts' device is number ", spec.moe_device, " of ", devices);
}

NodePlacement place_nodes(const ir::Graph& graph, const PlacementSpec& spec, int devices, int64_t layers,
                          const SupportsNode& supports) {
  MOAT_INTERNAL_CHECK(devices >= 1, "a placement over no devices");
  check_placement(spec, devices, layers);
  const size_t n = graph.nodes.size();
  NodePlacement placement;
  placement.device.assign(n, -1);
  std::vector<int64_t> layer(n, -1);
  // Whether a node depends on a weight, and on a run's inputs (tokens, positions, cache):
  // a node that depends on both is placed, any other replicated.
  std::vector<bool> on_weights(n, false), on_inputs(n, false);
  std::vector<int> on_cache(n, -1);  // a cache written in place, or a view of one: its device
  for (size_t i = 0; i < n; ++i) {
    const ir::Node& node = graph.nodes[i];
    if (node.op == ir::Op::param) layer[i] = weight_layer(ir::attr_string(node, "name"));
    on_weights[i] = node.op == ir::Op::param;
    on_inputs[i] = node.op == ir::Op::input;
    for (ir::NodeId o : node.operands) {
      layer[i] = std::max(layer[i], layer[static_cast<size_t>(o)]);
      on_weights[i] = on_weights[i] || on_weights[static_cast<size_t>(o)];
      on_inputs[i] = on_inputs[i] || on_inputs[static_cast<size_t>(o)];
    }
    if (is_source(node.op) || !on_weights[i] || !on_inputs[i]) continue;
    int device = device_of_layer(spec, layer[i]);
    if (node.op == ir::Op::moe && spec.moe_device >= 0 && (spec.moe_layers < 0 || layer[i] < spec.moe_layers))
      device = spec.moe_device;
    // A cache updated in place (write_rows) and whatever reads it, directly or through
    // views, stay on one device: the cache is not copied between devices.
    int cache_device = -1;
    for (ir::NodeId o : node.operands) cache_device = std::max(cache_device, on_cache[static_cast<size_t>(o)]);
    if (cache_device >= 0) {
      device = cache_device;
      if (node.op == ir::Op::write_rows || ir::op_kind(node.op) == ir::OpKind::View) on_cache[i] = device;
    } else if (!supports(device, graph, static_cast<ir::NodeId>(i))) {
      for (int step = 1; step < devices; ++step) {
        const int other = (device + step) % devices;
        if (!supports(other, graph, static_cast<ir::NodeId>(i))) continue;
        placement.fallbacks.push_back({static_cast<ir::NodeId>(i), device, other});
        device = other;
        break;
      }
    }
    if (node.op == ir::Op::write_rows) on_cache[i] = device;
    placement.device[i] = device;
  }
  return placement;
}

}  // namespace moat::runtime
