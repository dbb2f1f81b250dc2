// Expert parallelism across processes: rank r of R holds a contiguous share of every
// MoE layer's routed experts, computes every other node of the pass itself, and the
// ranks add their shares' outputs (StageLink::sum) — the dispatch and combine of expert
// parallelism, done as an all-to-all exchange of each MoE layer's partial outputs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"

namespace moat::runtime {

struct ExpertShare {
  int64_t first = 0, end = 0;  // experts first..end-1
};

// Rank `rank` of `ranks`: experts [E * rank / ranks, E * (rank + 1) / ranks).
ExpertShare expert_share(int64_t experts, int rank, int ranks);

// The name a share of weight `name` binds ("blk.3.ffn_up_exps.weight@experts:8-16"), and
// back (nullopt for any other name).
std::string share_weight_name(const std::string& name, ExpertShare share);
std::optional<std::pair<std::string, ExpertShare>> parse_share_weight_name(const std::string& name);

// `graph` with every moe node replaced by the expansion of this rank's share
// (ir::expand_moe_share) over params of the share's expert weights. `in_share`: per node
// of the result, whether it belongs to a share (its outputs are added over the ranks).
// InternalError for a moe whose expert weights are not params.
ir::Graph share_experts(const ir::Graph& graph, int rank, int ranks, std::vector<bool>& in_share);

}  // namespace moat::runtime
