#include "ir/ops.h"

#include <array>

namespace moat::ir {

namespace {
struct OpInfo {
  std::string_view name;
  OpKind kind;
  int min_operands;
  int max_operands;
};

constexpr OpInfo kOps[] = {
#define MOAT_X(op, kind, lo, hi) {#op, OpKind::kind, lo, hi},
    MOAT_IR_OPS(MOAT_X)
#undef MOAT_X
};

const OpInfo& info(Op op) { return kOps[static_cast<int>(op)]; }

using K = AttrKind;
constexpr AttrSpec kNamed[] = {{"name", K::String}};
constexpr AttrSpec kConstant[] = {{"value", K::FloatList}};
constexpr AttrSpec kAxis[] = {{"axis", K::Int}};
constexpr AttrSpec kMatmul[] = {{"b_transposed", K::Bool}};
constexpr AttrSpec kMatmulScaled[] = {{"b_transposed", K::Bool}, {"block", K::IntList}};
constexpr AttrSpec kPermute[] = {{"perm", K::IntList}};
constexpr AttrSpec kSlice[] = {{"axis", K::Int}, {"start", K::Int}, {"end", K::Int}};
constexpr AttrSpec kTopk[] = {{"k", K::Int}};
constexpr AttrSpec kRmsNorm[] = {{"eps", K::Float}};
// rope: YaRN-capable rotary embedding with llama.cpp / ggml_rope_ext parameters.
constexpr AttrSpec kRope[] = {{"n_dims", K::Int},       {"theta", K::Float},      {"interleaved", K::Bool},
                              {"freq_scale", K::Float}, {"ext_factor", K::Float}, {"attn_factor", K::Float},
                              {"beta_fast", K::Float},  {"beta_slow", K::Float},  {"orig_ctx", K::Int}};
constexpr AttrSpec kAttention[] = {{"scale", K::Float}, {"causal", K::Bool}, {"sinks", K::Bool}};
constexpr AttrSpec kMoe[] = {{"n_used", K::Int},      {"scoring", K::String},   {"method", K::String},
                             {"n_groups", K::Int},    {"topk_groups", K::Int},  {"norm_topk", K::Bool},
                             {"scale", K::Float},     {"swiglu_limit", K::Float}};
}  // namespace

std::string_view op_name(Op op) { return info(op).name; }
OpKind op_kind(Op op) { return info(op).kind; }
int op_min_operands(Op op) { return info(op).min_operands; }
int op_max_operands(Op op) { return info(op).max_operands; }

std::optional<Op> parse_op(std::string_view name) {
  for (size_t i = 0; i < std::size(kOps); ++i)
    if (kOps[i].name == name) return static_cast<Op>(i);
  return std::nullopt;
}

bool op_takes_declared_type(Op op) {
  switch (op) {
    case Op::input: case Op::param: case Op::constant: case Op::iota:
    case Op::reshape: case Op::broadcast: case Op::cast:
      return true;
    default:
      return false;
  }
}

std::span<const AttrSpec> op_attr_specs(Op op, size_t n_operands) {
  switch (op) {
    case Op::input: case Op::param: return kNamed;
    case Op::constant: return kConstant;
    case Op::reduce_sum: case Op::reduce_max: case Op::concat: return kAxis;
    case Op::matmul: return n_operands == 3 ? std::span<const AttrSpec>(kMatmulScaled) : kMatmul;
    case Op::permute: return kPermute;
    case Op::slice: return kSlice;
    case Op::topk:
    case Op::kth_largest: return kTopk;
    case Op::rms_norm: return kRmsNorm;
    case Op::rope: return kRope;
    case Op::attention: return kAttention;
    case Op::moe: return kMoe;
    default: return {};
  }
}

std::string_view attr_kind_name(AttrKind kind) {
  switch (kind) {
    case AttrKind::Int: return "int";
    case AttrKind::Float: return "float";
    case AttrKind::Bool: return "bool";
    case AttrKind::String: return "string";
    case AttrKind::IntList: return "int list";
    case AttrKind::FloatList: return "float list";
  }
  return "?";
}

}  // namespace moat::ir
