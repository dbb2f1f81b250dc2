// Which device computes each node of a pass graph when a model runs on several devices
// in one process (`--device cpu,opencl:0 --split layers`, `--moe-device cpu`).
//
// A node's *layer* is the highest decoder layer among the weights it reads (params named
// "blk.L.*") and its operands' layers, so the residual stream carries layer L from the
// first node that reads a layer-L weight until layer L+1 begins, and the output norm and
// head carry the last layer. Layers map to devices in contiguous runs (`layers_per_device`);
// a `moe` node (the routed experts) of the first `moe_layers` layers goes to `moe_device`.
//
// Nodes that depend on the weights alone (casts of weights) or on the run's inputs alone
// (RoPE tables and masks from the positions, views of a cache) are *replicated*: every
// stage that uses one computes it (graph_partition.h), so nothing derived from positions
// crosses devices. Every node that depends on both (the token embedding onward) is placed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace moat::runtime {

struct PlacementSpec {
  // Decoder layers per device, in layer order (device i runs the next layers_per_device[i]
  // layers; 0: none). Empty: every layer on device 0.
  std::vector<int64_t> layers_per_device;
  int moe_device = -1;      // device of the routed experts (-1: their layer's device)
  int64_t moe_layers = -1;  // only the first N layers' routed experts go to moe_device (-1: all)
};

// Layers split in contiguous runs in proportion to `shares` (one per device, each >= 0,
// at least one > 0): device i gets round(cumulative share) - round(previous), so the
// counts add up to `layers`. UserError for a bad share list.
std::vector<int64_t> split_layers(int64_t layers, const std::vector<double>& shares);

// Whether device `device` can run `node` (Device::supports_op over its dtypes).
using SupportsNode = std::function<bool(int device, const ir::Graph& graph, ir::NodeId node)>;

// A node that could not run on the device its layer maps to, and where it went instead.
struct Fallback {
  ir::NodeId node = -1;
  int from = -1, to = -1;
};

struct NodePlacement {
  // Per node: the device index, or -1 for a replicated node.
  std::vector<int> device;
  std::vector<Fallback> fallbacks;
};

// Places every node of `graph` for `devices` devices and a model of `layers` decoder
// layers. A node its device cannot run (`supports`) goes to the next device in the list
// that can (wrapping), recorded in `fallbacks`; when none can it stays (the lowering
// then names the op). A cache updated in place (write_rows) never moves: whatever reads
// it, directly or through views, runs on the write's device. InternalError for a spec that does not fit (checked by
// check_placement first).
NodePlacement place_nodes(const ir::Graph& graph, const PlacementSpec& spec, int devices, int64_t layers,
                          const SupportsNode& supports);

// UserError naming what is wrong: layer counts that do not add up to `layers` or do not
// match the device count, a moe device out of range.
void check_placement(const PlacementSpec& spec, int devices, int64_t layers);

// The decoder layer of the weight `name` ("blk.12.attn_q_a.weight" -> 12; DeepSeek-V4's
// released names: "layers.12.attn.wq_a.weight" -> 12), or -1.
int64_t weight_layer(const std::string& name);

}  // namespace moat::runtime
