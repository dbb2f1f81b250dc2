#include "runtime/expert_shards.h"

#include <charconv>

#include "ir/builder.h"
#include "ir/expand.h"
#include "support/error.h"

namespace moat::runtime {

namespace {

constexpr std::string_view kMarker = "@experts:";

}  // namespace

ExpertShare expert_share(int64_t experts, int rank, int ranks) {
  MOAT_INTERNAL_CHECK(ranks >= 1 && rank >= 0 && rank < ranks, "rank ", rank, " of ", ranks);
  return {experts * rank / ranks, experts * (rank + 1) / ranks};
}

std::string share_weight_name(const std::string& name, ExpertShare share) {
  return cat(name, kMarker, share.first, "-", share.end);
}

std::optional<std::pair<std::string, ExpertShare>> parse_share_weight_name(const std::string& name) {
  const size_t at = name.rfind(kMarker);
  if (at == std::string::npos) return std::nullopt;
  const std::string range = name.substr(at + kMarker.size());
  const size_t dash = range.find('-');
  if (dash == std::string::npos) return std::nullopt;
  ExpertShare share;
  const char* begin = range.data();
  if (std::from_chars(begin, begin + dash, share.first).ec != std::errc() ||
      std::from_chars(begin + dash + 1, begin + range.size(), share.end).ec != std::errc() || share.first < 0 ||
      share.end <= share.first)
    return std::nullopt;
  return std::pair{name.substr(0, at), share};
}

ir::Graph share_experts(const ir::Graph& graph, int rank, int ranks, std::vector<ShareRole>& roles) {
  ir::Graph out;
  out.name = graph.name;
  out.symbols = graph.symbols;
  ir::Builder b(out);
  std::vector<ir::NodeId> id(graph.nodes.size(), -1);
  roles.clear();
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& node = graph.nodes[i];
    std::vector<ir::NodeId> ops;
    for (ir::NodeId o : node.operands) ops.push_back(id[static_cast<size_t>(o)]);
    if (node.op != ir::Op::moe) {
      ir::Node copy = node;
      copy.operands = ops;
      out.nodes.push_back(std::move(copy));
      id[i] = static_cast<ir::NodeId>(out.nodes.size() - 1);
      roles.push_back(ShareRole::none);
      continue;
    }
    const int64_t experts = graph.type(node.operands[1]).shape[0].value;
    if (experts < ranks)
      user_error("--mpi expert over ", ranks, " ranks needs at least one routed expert per rank, and the model's layers have ", experts,
                 "; use fewer ranks or --mpi pipeline");
    const ExpertShare share = expert_share(experts, rank, ranks);
    for (int w = 2; w <= 4; ++w) {  // gate, up, down: this rank's experts only
      const ir::Node& weight = graph.node(node.operands[static_cast<size_t>(w)]);
      if (weight.op != ir::Op::param)
        MOAT_INTERNAL_ERROR("graph ", graph.name, ": ", ir::describe(graph, static_cast<ir::NodeId>(i)),
                            " reads expert weights that are not params");
      ir::TensorType type = weight.type;
      type.shape[0] = ir::Dim::of(share.end - share.first);
      ops[static_cast<size_t>(w)] = b.param(share_weight_name(ir::attr_string(weight, "name"), share), type);
    }
    roles.resize(out.nodes.size(), ShareRole::none);
    const ir::MoeRouting routing = ir::expand_moe_routing(b, node, ops);
    roles.resize(out.nodes.size(), ShareRole::routing);
    id[i] = ir::expand_moe_experts(b, node, ops, routing, share.first);
    roles.resize(out.nodes.size(), ShareRole::share);
  }
  for (ir::NodeId o : graph.outputs) out.outputs.push_back(id[static_cast<size_t>(o)]);
  return out;
}

}  // namespace moat::runtime
