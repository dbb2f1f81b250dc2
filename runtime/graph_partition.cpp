#include "runtime/graph_partition.h"

#include <algorithm>
#include <map>
#include <set>

#include "ir/tensor.h"
#include "support/error.h"

namespace moat::runtime {

namespace {

uint64_t value_bytes(const ir::TensorType& type) {
  if (!ir::is_static(type.shape)) return 0;  // sized per run (StagedPlan counts what it moves)
  std::vector<int64_t> dims;
  for (const ir::Dim& d : type.shape) dims.push_back(d.value);
  return static_cast<uint64_t>(ir::tensor_bytes(type.dtype, dims));
}

// Copies the nodes of one stage into a graph of its own.
class StageBuilder {
 public:
  StageBuilder(const ir::Graph& whole, const std::vector<int>& device, const std::vector<int>& stage_of, int stage)
      : whole_(whole), device_(device), stage_of_(stage_of), stage_(stage) {
    out_.device = -1;
    out_.graph.name = whole.name + ".stage" + std::to_string(stage);
    out_.graph.symbols = whole.symbols;
  }

  // The stage's node for `id` of the whole graph: a copy of a replicated node (with its
  // operands), the stage's own node, or a transfer input for a node of an earlier stage.
  ir::NodeId get(ir::NodeId id) {
    auto it = local_.find(id);
    if (it != local_.end()) return it->second;
    const auto i = static_cast<size_t>(id);
    if (device_[i] >= 0) {
      MOAT_INTERNAL_CHECK(stage_of_[i] < stage_, "graph ", whole_.name, ": ", ir::describe(whole_, id),
                          " is used before it is computed");
      ir::Node input;
      input.op = ir::Op::input;
      input.attrs = {{"name", transfer_name(id)}};
      input.type = whole_.type(id);
      out_.receives.push_back(id);
      return local_[id] = add(std::move(input));
    }
    return copy(id);
  }

  ir::NodeId copy(ir::NodeId id) {
    ir::Node node = whole_.node(id);
    for (ir::NodeId& o : node.operands) o = get(o);
    return local_[id] = add(std::move(node));
  }

  void output(ir::NodeId id) {
    if (std::find(out_.computes.begin(), out_.computes.end(), id) != out_.computes.end()) return;
    out_.graph.outputs.push_back(get(id));
    out_.computes.push_back(id);
  }

  Stage& stage() { return out_; }

 private:
  ir::NodeId add(ir::Node node) {
    out_.graph.nodes.push_back(std::move(node));
    return static_cast<ir::NodeId>(out_.graph.nodes.size() - 1);
  }

  const ir::Graph& whole_;
  const std::vector<int>& device_;
  const std::vector<int>& stage_of_;
  int stage_;
  Stage out_;
  std::map<ir::NodeId, ir::NodeId> local_;
};

}  // namespace

std::string transfer_name(ir::NodeId node) { return "xfer." + std::to_string(node); }

Partition partition_graph(const ir::Graph& graph, const std::vector<int>& device) {
  const size_t n = graph.nodes.size();
  MOAT_INTERNAL_CHECK(device.size() == n, "a placement of ", device.size(), " nodes for a graph of ", n);
  std::vector<int> stage_of(n, -1), stage_device;
  for (size_t i = 0; i < n; ++i) {
    if (device[i] < 0) continue;
    if (stage_device.empty() || stage_device.back() != device[i]) stage_device.push_back(device[i]);
    stage_of[i] = static_cast<int>(stage_device.size()) - 1;
  }
  Partition partition;
  if (stage_device.size() <= 1) {
    partition.stages.push_back({stage_device.empty() ? 0 : stage_device[0], graph, graph.outputs, {}});
    return partition;
  }

  // Values used by a later stage, and the destinations written in place.
  std::vector<bool> crosses(n, false);
  std::set<ir::NodeId> updated;
  for (size_t j = 0; j < n; ++j) {
    const ir::Node& node = graph.nodes[j];
    if (node.op == ir::Op::write_rows) updated.insert(node.operands[0]);
    if (device[j] < 0) continue;
    for (ir::NodeId o : node.operands)
      if (device[static_cast<size_t>(o)] >= 0 && stage_of[static_cast<size_t>(o)] != stage_of[j])
        crosses[static_cast<size_t>(o)] = true;
  }
  std::set<ir::NodeId> outputs(graph.outputs.begin(), graph.outputs.end());
  const int last = static_cast<int>(stage_device.size()) - 1;
  std::map<ir::NodeId, int> updated_on;  // destination -> device of the stage that holds it
  for (int s = 0; s <= last; ++s) {
    StageBuilder builder(graph, device, stage_of, s);
    for (size_t i = 0; i < n; ++i)
      if (stage_of[i] == s) builder.copy(static_cast<ir::NodeId>(i));
    for (size_t i = 0; i < n; ++i) {
      const auto id = static_cast<ir::NodeId>(i);
      const bool placed_here = stage_of[i] == s, replicated_output = device[i] < 0 && s == last;
      if ((placed_here && (crosses[i] || outputs.count(id))) || (replicated_output && outputs.count(id))) builder.output(id);
      if (placed_here && crosses[i] && graph.nodes[i].op == ir::Op::write_rows)
        MOAT_INTERNAL_ERROR("graph ", graph.name, ": ", ir::describe(graph, id), " updates a cache in place and is read on another device");
    }
    Stage& stage = builder.stage();
    stage.device = stage_device[static_cast<size_t>(s)];
    for (const ir::Node& node : stage.graph.nodes) {
      if (node.op != ir::Op::input) continue;
      for (ir::NodeId dst : updated) {
        const ir::Node& original = graph.node(dst);
        if (original.op != ir::Op::input || ir::attr_string(original, "name") != ir::attr_string(node, "name")) continue;
        auto [it, fresh] = updated_on.emplace(dst, stage.device);
        if (!fresh && it->second != stage.device)
          MOAT_INTERNAL_ERROR("graph ", graph.name, ": the cache input ", ir::attr_string(node, "name"),
                         " would be read on two devices");
      }
    }
    for (ir::NodeId r : stage.receives)
      if (stage_device[static_cast<size_t>(stage_of[static_cast<size_t>(r)])] != stage.device)
        partition.transfer_bytes += value_bytes(graph.type(r));
    partition.stages.push_back(std::move(stage));
  }
  return partition;
}

}  // namespace moat::runtime
