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

// What a node of share_experts' result computes.
enum class ShareRole : uint8_t {
  none,     // the rest of the model: every rank alike
  routing,  // a moe's routing: rank 0's is taken by every rank, so that all select alike
  share,    // this rank's share of a moe's experts: added over the ranks
};

// `graph` with every moe node replaced by its routing (ir::expand_moe_routing) and the
// expansion of this rank's share of its experts (ir::expand_moe_experts) over params of
// the share's expert weights; `roles` per node of the result. UserError when there are
// fewer experts than ranks; InternalError for a moe whose expert weights are not params.
ir::Graph share_experts(const ir::Graph& graph, int rank, int ranks, std::vector<ShareRole>& roles);

}  // namespace moat::runtime
