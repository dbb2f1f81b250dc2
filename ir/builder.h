// Graph builder: appends nodes to a Graph, inferring and checking each result type as
// it goes (a mistake is reported at the line that makes it, naming the node).
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace moat::ir {

// Parameters of the rope composite (llama.cpp's ggml_rope_ext conventions).
struct RopeParams {
  int64_t n_dims = 0;          // rotated dimensions (the first n_dims of each head)
  double theta = 10000.0;      // frequency base
  bool interleaved = true;     // rotate adjacent pairs (x0,x1) (DeepSeek / GPT-J); false: halves (NeoX)
  double freq_scale = 1.0;     // 1 / YaRN factor
  double ext_factor = 0.0;     // YaRN extrapolation mix; 0 disables YaRN
  double attn_factor = 1.0;    // multiplies cos and sin
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  int64_t orig_ctx = 0;        // the context the model was trained with (YaRN)
};

// Parameters of the moe composite (DeepSeek-V2/V3 routing).
struct MoeParams {
  int64_t n_used = 1;                // experts per token
  std::string scoring = "softmax";   // softmax | sigmoid | sqrtsoftplus (sqrt(softplus(logit)))
  // greedy | group_limited_greedy | noaux_tc | given (each token's experts are an
  // operand: DeepSeek-V4's hash layers look them up in a token -> experts table)
  std::string method = "greedy";
  int64_t n_groups = 1;
  int64_t topk_groups = 1;
  bool norm_topk = false;            // renormalise the selected weights to sum to 1
  double scale = 1.0;                // routed_scaling_factor
  // > 0: the experts' gate projections clamped above at it and their up projections to
  // [-limit, limit] before silu(gate) * up (DeepSeek-V4's swiglu_limit); 0: no clamp.
  double swiglu_limit = 0.0;
};

class Builder {
 public:
  explicit Builder(Graph& graph) : graph_(graph) {}
  Graph& graph() { return graph_; }
  const TensorType& type(NodeId id) const { return graph_.type(id); }

  // Declares a symbolic dimension (idempotent) and returns it.
  Dim symbol(const std::string& name);

  NodeId input(const std::string& name, TensorType type);
  NodeId param(const std::string& name, TensorType type);
  NodeId constant(TensorType type, std::vector<double> values);
  NodeId scalar(DType dtype, double value);  // a constant of shape []
  NodeId iota(DType dtype, Dim n);

  NodeId unary(Op op, NodeId x);
  NodeId binary(Op op, NodeId a, NodeId b);
  NodeId add(NodeId a, NodeId b) { return binary(Op::add, a, b); }
  NodeId sub(NodeId a, NodeId b) { return binary(Op::sub, a, b); }
  NodeId mul(NodeId a, NodeId b) { return binary(Op::mul, a, b); }
  NodeId div(NodeId a, NodeId b) { return binary(Op::div, a, b); }
  NodeId select(NodeId cond, NodeId a, NodeId b);
  NodeId reduce(Op op, NodeId x, int64_t axis);
  NodeId matmul(NodeId a, NodeId b, bool b_transposed = true);
  NodeId matmul_fp8(NodeId a, NodeId b, NodeId block_scales, int64_t block_rows = 128, int64_t block_cols = 128);
  // a[..., K] x w[..., N, K]^T as runtimes compute it with that weight: a Q8_0 / Q4_0 w
  // gets a cast to q8_0 first, a Q4_K / Q6_K w a cast to q8_k (quantised activations,
  // ir/quant.h's activation_dtype), other types a plain matmul. One cast per activation
  // and type: weights that share an input share its quantisation.
  NodeId matmul_weight(NodeId a, NodeId w);
  NodeId gather(NodeId table, NodeId indices);
  NodeId take_along(NodeId x, NodeId indices);
  NodeId write_rows(NodeId dst, NodeId rows, NodeId at);
  NodeId reshape(NodeId x, Shape shape);
  NodeId broadcast(NodeId x, Shape shape);
  NodeId permute(NodeId x, std::vector<int64_t> perm);
  NodeId slice(NodeId x, int64_t axis, int64_t start, int64_t end);
  NodeId concat(std::vector<NodeId> parts, int64_t axis);
  NodeId cast(NodeId x, DType dtype);
  NodeId topk(NodeId x, int64_t k);
  NodeId kth_largest(NodeId x, int64_t k);

  NodeId rms_norm(NodeId x, NodeId weight, double eps);
  NodeId softmax(NodeId x);
  NodeId rope(NodeId x, NodeId positions, const RopeParams& params);
  // `key_starts` (i32[T], optional): a causal query t reads keys key_starts[t]..q_pos[t]
  // only (several sequences in one cache, each in its own range of rows). `key_bias`
  // (f32[T, S], optional): added to the scaled scores, 0 or -inf (a sparse selection of
  // keys per query); a node with a bias and no key starts gets key starts of 0.
  // `sinks` (f32[H], optional): a logit per query head that joins each softmax's
  // denominator and no value (attention sinks, DeepSeek-V4).
  NodeId attention(NodeId q, NodeId k, NodeId v, NodeId q_positions, double scale, bool causal = true,
                   std::optional<NodeId> key_starts = std::nullopt, std::optional<NodeId> key_bias = std::nullopt,
                   std::optional<NodeId> sinks = std::nullopt);
  // `bias`: the score-correction bias f32[E] (noaux_tc's, optional elsewhere);
  // `experts`: with method "given", each token's experts i32[T, n_used] (no bias then).
  NodeId moe(NodeId x, NodeId router, NodeId gate, NodeId up, NodeId down, std::optional<NodeId> bias,
             const MoeParams& params, std::optional<NodeId> experts = std::nullopt);

  void output(NodeId id) { graph_.outputs.push_back(id); }

  // Appends a node of any op: checks it with infer_type and sets its type. `declared`
  // is the type of ops that take one (op_takes_declared_type). Throws UserError naming
  // the new node on a mismatch.
  NodeId add_node(Op op, std::vector<NodeId> operands, Attrs attrs = {}, TensorType declared = {});

 private:
  Graph& graph_;
  std::map<std::pair<NodeId, DType>, NodeId> quantised_of_;  // matmul_weight's casts, by operand and type
};

}  // namespace moat::ir
