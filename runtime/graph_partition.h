// A pass graph cut into stages, one device each, run in order (placement.h says which
// device computes each node). A value computed in one stage and used in a later one is
// a *transfer*: an output of the stage that computes it and an input "xfer.<node>" of
// each stage that uses it, read to the host and written to the next device between the
// stages. Replicated nodes (placement.h: those that depend on the weights alone or on the
// run's inputs alone, never on a placed node) are copied into every stage that uses them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace moat::runtime {

struct Stage {
  int device = 0;
  ir::Graph graph;
  // Per output of `graph`: the node of the whole graph it computes.
  std::vector<ir::NodeId> computes;
  // Per transfer input of `graph` ("xfer.<node>"): the node of the whole graph it holds.
  std::vector<ir::NodeId> receives;
};

struct Partition {
  std::vector<Stage> stages;  // in run order; a node's stage precedes its users'
  // Bytes that cross between devices in one run: every transfer, once per stage on
  // another device than its producer's that receives it.
  uint64_t transfer_bytes = 0;
};

// The name of the transfer input that holds `node` of the whole graph.
std::string transfer_name(ir::NodeId node);

// Cuts `graph` at every change of device along its (topological) node order; `device`
// per node, -1 for replicated nodes. A placement with one stage keeps `graph` as it is.
// The graph's outputs are outputs of the stages that compute them. InternalError when a
// value that a kernel updates in place (write_rows) would cross devices or a cache input
// would be read on two devices: the cache lives on one device.
Partition partition_graph(const ir::Graph& graph, const std::vector<int>& device);

}  // namespace moat::runtime
