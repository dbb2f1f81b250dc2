// Placement of a pass graph over several devices (runtime/placement.h) and its cut into
// stages (runtime/graph_partition.h), checked without devices: which node goes where,
// fallbacks for ops a device cannot run, and that running the stages one after another
// through the reference interpreter, handing the transfers over, gives the whole
// graph's outputs bit for bit.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "frontend/models/deepseek_weights.h"
#include "ir/interpreter.h"
#include "runtime/graph_partition.h"
#include "runtime/placement.h"
#include "support/error.h"
#include "tests/runtime/demo_session.h"

namespace moat {

namespace {

const models::DeepSeekModel& demo() { return testing::demo_model(); }

runtime::SupportsNode every_op() {
  return [](int, const ir::Graph&, ir::NodeId) { return true; };
}

// A decode-sized pass of the demo model: T new tokens over a cache of 16 rows.
ir::Graph demo_pass(int64_t tokens, bool first) {
  models::PassSpec pass;
  pass.tokens = tokens;
  pass.first = first;
  pass.cache_rows = 16;
  pass.cache_dtype = ir::DType::f32;
  return demo().pass_graph(pass);
}

ir::Bindings demo_bindings(const ir::Graph& graph, int64_t tokens) {
  ir::Bindings b;
  for (const auto& [name, tensor] : demo().tensors()) b.tensors.emplace(name, tensor);
  std::vector<int64_t> ids, positions;
  for (int64_t i = 0; i < tokens; ++i) ids.push_back(10 + 7 * i), positions.push_back(i);
  b.tensors["tokens"] = ir::HostTensor::from_i64({tokens}, ids, ir::DType::i32);
  b.tensors["positions"] = ir::HostTensor::from_i64({tokens}, positions, ir::DType::i32);
  for (const ir::Node& node : graph.nodes) {
    if (node.op != ir::Op::input || !ir::attr_string(node, "name").starts_with("cache.")) continue;
    std::vector<int64_t> shape;
    for (const ir::Dim& d : node.type.shape) shape.push_back(d.value);
    std::vector<float> zeros(static_cast<size_t>(shape[0] * shape[1]), 0.0f);
    b.tensors[ir::attr_string(node, "name")] = ir::HostTensor::from_f32(shape, zeros);
  }
  return b;
}

// Runs the stages in order through the interpreter, as StagedPlan does on devices.
std::vector<ir::HostTensor> run_stages(const runtime::Partition& partition, const ir::Graph& whole, const ir::Bindings& bindings) {
  std::map<ir::NodeId, ir::HostTensor> values;
  for (const runtime::Stage& stage : partition.stages) {
    ir::Bindings b = bindings;
    for (ir::NodeId r : stage.receives) b.tensors[runtime::transfer_name(r)] = values.at(r);
    std::vector<ir::HostTensor> out = ir::interpret(stage.graph, b);
    REQUIRE(out.size() == stage.computes.size());
    for (size_t k = 0; k < out.size(); ++k) values.insert_or_assign(stage.computes[k], out[k]);
  }
  std::vector<ir::HostTensor> outputs;
  for (ir::NodeId o : whole.outputs) outputs.push_back(values.at(o));
  return outputs;
}

std::string param_name_of(const ir::Graph& g, ir::NodeId id) {
  const ir::Node& node = g.node(id);
  return node.op == ir::Op::param ? ir::attr_string(node, "name") : "";
}

}  // namespace

TEST_CASE("split_layers gives contiguous counts in proportion that add up to the layers") {
  CHECK(runtime::split_layers(4, {1, 1}) == std::vector<int64_t>{2, 2});
  CHECK(runtime::split_layers(27, {1, 1}) == std::vector<int64_t>{14, 13});
  CHECK(runtime::split_layers(4, {1, 3}) == std::vector<int64_t>{1, 3});
  CHECK(runtime::split_layers(61, {0, 1, 2}) == std::vector<int64_t>{0, 20, 41});
  CHECK_THROWS_AS(runtime::split_layers(4, {0, 0}), UserError);
  CHECK_THROWS_AS(runtime::split_layers(4, {1, -1}), UserError);
  CHECK_THROWS_AS(runtime::check_placement({{1, 2}, -1, -1}, 2, 4), UserError);  // 3 layers of 4
  CHECK_THROWS_AS(runtime::check_placement({{2, 2}, -1, -1}, 3, 4), UserError);  // 2 counts, 3 devices
  CHECK_THROWS_AS(runtime::check_placement({{4, 0}, 2, -1}, 2, 4), UserError);   // moe device 2 of 2
  CHECK(runtime::weight_layer("blk.12.attn_q_a.weight") == 12);
  CHECK(runtime::weight_layer("token_embd.weight") == -1);
  CHECK(runtime::weight_layer("blk.x.ffn") == -1);
  CHECK(runtime::weight_layer("layers.3.attn.wq_a.weight") == 3);
  CHECK(runtime::weight_layer("layers.3") == -1);
}

TEST_CASE("layers go to their devices, the routed experts to the experts' device, the head to the last layer's") {
  const ir::Graph g = demo_pass(3, false);
  const int64_t layers = demo().layers();
  REQUIRE(layers == 4);
  runtime::PlacementSpec spec{{1, 3, 0}, 2, -1};
  const runtime::NodePlacement p = runtime::place_nodes(g, spec, 3, layers, every_op());
  CHECK(p.fallbacks.empty());
  int moe_nodes = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& node = g.nodes[i];
    if (node.op == ir::Op::moe) {
      ++moe_nodes;
      CHECK(p.device[i] == 2);
      continue;
    }
    if (p.device[i] < 0) continue;
    for (ir::NodeId o : node.operands) {  // a placed node reading a layer's weight runs on that layer's device
      const int64_t l = runtime::weight_layer(param_name_of(g, o));
      if (l >= 0) CHECK_MESSAGE(p.device[i] == (l == 0 ? 0 : 1), ir::describe(g, static_cast<ir::NodeId>(i)));
    }
  }
  CHECK(moe_nodes == 3);  // the demo model's first layer is dense
  CHECK(p.device[static_cast<size_t>(g.outputs[0])] == 1);  // the logits

  // Only the first two layers' experts move; the third stays with its layer.
  spec.moe_layers = 2;
  const runtime::NodePlacement q = runtime::place_nodes(g, spec, 3, layers, every_op());
  std::vector<int> moe_devices;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].op == ir::Op::moe) moe_devices.push_back(q.device[i]);
  CHECK(moe_devices == std::vector<int>{2, 1, 1});
}

TEST_CASE("a node its device cannot run falls back to the next device that can, and is reported") {
  const ir::Graph g = demo_pass(2, false);
  const runtime::PlacementSpec spec{{2, 2}, -1, -1};
  auto no_moe_on_1 = [](int device, const ir::Graph& graph, ir::NodeId id) {
    return !(device == 1 && graph.node(id).op == ir::Op::moe);
  };
  const runtime::NodePlacement p = runtime::place_nodes(g, spec, 2, demo().layers(), no_moe_on_1);
  REQUIRE(p.fallbacks.size() == 2);  // the moe nodes of layers 2 and 3
  for (const runtime::Fallback& f : p.fallbacks) {
    CHECK(g.node(f.node).op == ir::Op::moe);
    CHECK(f.from == 1);
    CHECK(f.to == 0);
    CHECK(p.device[static_cast<size_t>(f.node)] == 0);
  }
  // Nothing can run it anywhere: it stays (the lowering names the op).
  auto nowhere = [](int, const ir::Graph& graph, ir::NodeId id) { return graph.node(id).op != ir::Op::moe; };
  CHECK(runtime::place_nodes(g, spec, 2, demo().layers(), nowhere).fallbacks.empty());
}

TEST_CASE("what reads a cache updated in place stays on the cache's device, even where a fallback would move it") {
  const ir::Graph g = demo_pass(2, false);
  const runtime::PlacementSpec spec{{2, 2}, -1, -1};
  auto no_attention_on_1 = [](int device, const ir::Graph& graph, ir::NodeId id) {
    return !(device == 1 && graph.node(id).op == ir::Op::attention);
  };
  const runtime::NodePlacement p = runtime::place_nodes(g, spec, 2, demo().layers(), no_attention_on_1);
  int attention_on_1 = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].op == ir::Op::attention) attention_on_1 += p.device[i] == 1;
  CHECK(attention_on_1 == 2);  // layers 2 and 3 keep their attention with their cache
  for (const runtime::Fallback& f : p.fallbacks) CHECK(g.node(f.node).op != ir::Op::attention);
  CHECK_NOTHROW(runtime::partition_graph(g, p.device));  // no cache crosses devices
}

TEST_CASE("stages run one after another give the whole graph's outputs exactly (interpreter)") {
  struct Case {
    runtime::PlacementSpec spec;
    int devices;
    uint64_t moved_per_token;  // f32 hidden states of 256: 1024 bytes each
  };
  const Case cases[] = {
      {{{2, 2}, -1, -1}, 2, 1024},       // one boundary
      {{{4, 0}, 1, -1}, 2, 3 * 2 * 1024},  // three MoE layers: in and out
      {{{1, 3, 0}, 2, 2}, 3, 1024 + 2048},  // layer 0 | layers 1-3, layer 1's experts on device 2
  };
  for (const Case& c : cases) {
    for (const auto& [tokens, first] : {std::pair<int64_t, bool>{3, true}, {1, false}}) {
      const ir::Graph g = demo_pass(tokens, first);
      const runtime::NodePlacement p = runtime::place_nodes(g, c.spec, c.devices, demo().layers(), every_op());
      const runtime::Partition partition = runtime::partition_graph(g, p.device);
      CHECK(partition.stages.size() > 1);
      CHECK(partition.transfer_bytes == c.moved_per_token * static_cast<uint64_t>(tokens));
      std::set<std::string> caches_seen;
      for (const runtime::Stage& s : partition.stages)
        for (const ir::Node& node : s.graph.nodes)
          if (node.op == ir::Op::input && ir::attr_string(node, "name").starts_with("cache."))
            CHECK_MESSAGE(caches_seen.insert(ir::attr_string(node, "name")).second, "a cache read by two stages");
      const ir::Bindings bindings = demo_bindings(g, tokens);
      const std::vector<ir::HostTensor> whole = ir::interpret(g, bindings);
      const std::vector<ir::HostTensor> staged = run_stages(partition, g, bindings);
      REQUIRE(whole.size() == staged.size());
      for (size_t i = 0; i < whole.size(); ++i) {
        CHECK(whole[i].shape() == staged[i].shape());
        CHECK_MESSAGE(std::vector<uint8_t>(whole[i].bytes().begin(), whole[i].bytes().end()) ==
                          std::vector<uint8_t>(staged[i].bytes().begin(), staged[i].bytes().end()),
                      "output ", i, " differs");
      }
    }
  }
}

TEST_CASE("one device: the graph is one stage, unchanged") {
  const ir::Graph g = demo_pass(2, false);
  const runtime::Partition p = runtime::partition_graph(g, runtime::place_nodes(g, {}, 1, demo().layers(), every_op()).device);
  REQUIRE(p.stages.size() == 1);
  CHECK(p.stages[0].graph.nodes.size() == g.nodes.size());
  CHECK(p.stages[0].computes == g.outputs);
  CHECK(p.transfer_bytes == 0);
}

}  // namespace moat
