// KernelBuilder: values of inlined nodes as Kernel IR expressions (the fusion of
// elementwise chains, views and gathers into the kernel that consumes them).
#include "jit/lower_builder.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <limits>

#include "ir/interpreter.h"
#include "support/error.h"

namespace moat::jit {

using ir::DType;
using ir::Op;

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Type value_type(DType d) {
  switch (d) {
    case DType::i64: return kI64;
    case DType::i32: return kI32;
    case DType::i8: return {Scalar::i8, 1};
    case DType::u8: return {Scalar::u8, 1};
    case DType::boolean: return kBool;
    default: return kF32;  // floats and quantised
  }
}

namespace {

bool is_const(const NodeRef& n, int64_t v) { return n->kind == NodeKind::constant && n->type == kI64 && n->i == v; }

bool is_int_const(const NodeRef& n) { return n->kind == NodeKind::constant && n->type.scalar != Scalar::f32; }

bool is_binary(const NodeRef& n, BinaryOp op) {
  return n->kind == NodeKind::binary && static_cast<BinaryOp>(n->op) == op && n->args.size() == 2;
}

// Values an integer index expression can take, when they can be bounded: constants,
// loop counters made with bounded_ref, work-group / item ids (non-negative) and +, *,
// / and % of those. Bounds stay far from overflow (|v| < 2^40) or are dropped.
struct Range {
  int64_t lo, hi;
};
constexpr int64_t kRangeLimit = int64_t{1} << 40;

std::optional<Range> checked(int64_t lo, int64_t hi) {
  if (lo < -kRangeLimit || hi > kRangeLimit || lo > hi) return std::nullopt;
  return Range{lo, hi};
}

std::optional<Range> range_of(const NodeRef& e) {
  switch (e->kind) {
    case NodeKind::constant:
      return is_int_const(e) ? checked(e->i, e->i) : std::nullopt;
    case NodeKind::ref:
      return e->range_lo <= e->range_hi ? checked(e->range_lo, e->range_hi) : std::nullopt;
    case NodeKind::builtin:
      return Range{0, int64_t{1} << 31};
    case NodeKind::cast:
    {
      if (e->type.scalar != Scalar::i64 && e->type.scalar != Scalar::i32) return std::nullopt;
      if (e->args[0]->type.scalar != Scalar::i64 && e->args[0]->type.scalar != Scalar::i32) return std::nullopt;
      const std::optional<Range> r = range_of(e->args[0]);
      if (r && e->type.scalar == Scalar::i32 && (r->lo < INT32_MIN || r->hi > INT32_MAX)) return std::nullopt;  // wraps
      return r;
    }
    case NodeKind::binary: {
      if (e->args.size() != 2) return std::nullopt;
      const std::optional<Range> a = range_of(e->args[0]), b = range_of(e->args[1]);
      if (!a || !b) return std::nullopt;
      switch (static_cast<BinaryOp>(e->op)) {
        case BinaryOp::add: return checked(a->lo + b->lo, a->hi + b->hi);
        case BinaryOp::sub: return checked(a->lo - b->hi, a->hi - b->lo);
        case BinaryOp::mul: {
          const int64_t p[4] = {a->lo * b->lo, a->lo * b->hi, a->hi * b->lo, a->hi * b->hi};
          return checked(*std::min_element(p, p + 4), *std::max_element(p, p + 4));
        }
        case BinaryOp::div:
          if (a->lo < 0 || b->lo <= 0) return std::nullopt;
          return checked(a->lo / b->hi, a->hi / b->lo);
        case BinaryOp::rem:
          if (a->lo < 0 || b->lo <= 0) return std::nullopt;
          return a->hi < b->lo ? a : checked(0, std::min(a->hi, b->hi - 1));
        case BinaryOp::min: return checked(std::min(a->lo, b->lo), std::min(a->hi, b->hi));
        case BinaryOp::max: return checked(std::max(a->lo, b->lo), std::max(a->hi, b->hi));
        default: return std::nullopt;
      }
    }
    default:
      return std::nullopt;
  }
}

bool non_negative(const NodeRef& e) {
  const std::optional<Range> r = range_of(e);
  return r && r->lo >= 0;
}

void add_terms(const NodeRef& e, std::vector<NodeRef>& terms) {
  if (is_binary(e, BinaryOp::add) && e->type == kI64) {
    add_terms(e->args[0], terms);
    add_terms(e->args[1], terms);
  } else {
    terms.push_back(e);
  }
}

// The terms of a sum that are multiples of f (constants and products by a multiple of
// f) go to `quotient`, divided by f; the others to `rest`. True when some term went to
// the quotient.
bool divide_terms(const std::vector<NodeRef>& terms, int64_t f, NodeRef& quotient, NodeRef& rest) {
  quotient = c_i64(0);
  rest = c_i64(0);
  bool found = false;
  for (const NodeRef& t : terms) {
    if (is_const(t, t->i) && t->i % f == 0) {
      quotient = iadd(quotient, c_i64(t->i / f));
      found = true;
      continue;
    }
    bool scaled = false;
    if (is_binary(t, BinaryOp::mul))
      for (int side = 0; side < 2 && !scaled; ++side) {
        const NodeRef& m = t->args[side];
        if (is_const(m, m->i) && m->i % f == 0) {
          quotient = iadd(quotient, imul(t->args[1 - side], c_i64(m->i / f)));
          scaled = true;
        }
      }
    if (scaled) found = true;
    else rest = iadd(rest, t);
  }
  return found;
}

// The terms of the sum `a`, or none unless every term is non-negative (then truncating
// division and remainder split exactly).
std::vector<NodeRef> non_negative_terms(const NodeRef& a) {
  std::vector<NodeRef> terms;
  add_terms(a, terms);
  for (const NodeRef& t : terms)
    if (!non_negative(t)) return {};
  return terms;
}

// a = c * quotient + rest, found term by term in the sum `a`. False unless every term is
// non-negative and some term is a multiple of c.
bool split_multiples(const NodeRef& a, int64_t c, NodeRef& quotient, NodeRef& rest) {
  const std::vector<NodeRef> terms = non_negative_terms(a);
  return !terms.empty() && divide_terms(terms, c, quotient, rest);
}

// a = k * quotient + rest with k a divisor of c and 0 <= rest < k, found term by term in
// the sum `a` for the first k (> 1) among its products' constant factors that works:
// then a / c = quotient / (c / k) and a % c = k * (quotient % (c / k)) + rest, as
// (16 r + j) / 64 = r / 4 for j in [0, 15]. False unless every term is non-negative.
bool split_scaled(const NodeRef& a, int64_t c, int64_t& k, NodeRef& quotient, NodeRef& rest) {
  const std::vector<NodeRef> terms = non_negative_terms(a);
  for (const NodeRef& t : terms)
    if (is_binary(t, BinaryOp::mul))
      for (const NodeRef& side : t->args)
        if (is_const(side, side->i) && side->i > 1 && c % side->i == 0) {
          divide_terms(terms, side->i, quotient, rest);
          if (const std::optional<Range> r = range_of(rest); r && r->lo >= 0 && r->hi < side->i) {
            k = side->i;
            return true;
          }
        }
  return false;
}

// (x / c) * c + x % c, in either order: x.
const NodeRef* undivided(const NodeRef& a, const NodeRef& b) {
  if (!is_binary(a, BinaryOp::mul) || !is_binary(b, BinaryOp::rem)) return nullptr;
  const NodeRef& c = b->args[1];
  if (!is_const(c, c->i)) return nullptr;
  for (int side = 0; side < 2; ++side) {
    const NodeRef& quotient = a->args[side];
    const NodeRef& k = a->args[1 - side];
    if (is_const(k, c->i) && is_binary(quotient, BinaryOp::div) && is_const(quotient->args[1], c->i) &&
        quotient->args[0] == b->args[0])
      return &b->args[0];
  }
  return nullptr;
}

}  // namespace

NodeRef iadd(NodeRef a, NodeRef b) {
  if (is_const(a, 0)) return b;
  if (is_const(b, 0)) return a;
  if (a->kind == NodeKind::constant && b->kind == NodeKind::constant) return c_i64(a->i + b->i);
  if (const NodeRef* x = undivided(a, b)) return *x;
  if (const NodeRef* x = undivided(b, a)) return *x;
  return add(std::move(a), std::move(b));
}

NodeRef imul(NodeRef a, NodeRef b) {
  if (is_const(a, 1)) return b;
  if (is_const(b, 1)) return a;
  if (is_const(a, 0) || is_const(b, 0)) return c_i64(0);
  if (a->kind == NodeKind::constant && b->kind == NodeKind::constant) return c_i64(a->i * b->i);
  return mul(std::move(a), std::move(b));
}

NodeRef idiv(NodeRef a, int64_t b) {
  if (b == 1) return a;
  if (a->kind == NodeKind::constant) return c_i64(a->i / b);
  if (const std::optional<Range> r = range_of(a); r && r->lo >= 0 && r->hi < b) return c_i64(0);
  if (is_binary(a, BinaryOp::div) && is_const(a->args[1], a->args[1]->i) && a->args[1]->i > 0 && non_negative(a) &&
      a->args[1]->i <= kRangeLimit / b)
    return idiv(a->args[0], a->args[1]->i * b);  // (x / c) / b = x / (c b) for x >= 0
  NodeRef quotient, rest;
  if (split_multiples(a, b, quotient, rest)) return iadd(quotient, idiv(rest, b));
  if (int64_t k = 0; split_scaled(a, b, k, quotient, rest)) return idiv(quotient, b / k);
  return div(std::move(a), c_i64(b));
}

NodeRef irem(NodeRef a, int64_t b) {
  if (b == 1) return c_i64(0);
  if (a->kind == NodeKind::constant) return c_i64(a->i % b);
  if (const std::optional<Range> r = range_of(a); r && r->lo >= 0 && r->hi < b) return a;
  NodeRef quotient, rest;
  if (split_multiples(a, b, quotient, rest)) return irem(rest, b);
  if (int64_t k = 0; split_scaled(a, b, k, quotient, rest)) return iadd(imul(irem(quotient, b / k), c_i64(k)), rest);
  return rem(std::move(a), c_i64(b));
}

NodeRef isub(NodeRef a, int64_t b) {
  if (b == 0) return a;
  std::vector<NodeRef> terms;
  add_terms(a, terms);
  for (NodeRef& t : terms)
    if (t->kind == NodeKind::constant && t->type == kI64) {
      t = c_i64(t->i - b);
      NodeRef sum = c_i64(0);
      for (const NodeRef& u : terms) sum = iadd(sum, u);
      return sum;
    }
  return sub(std::move(a), c_i64(b));
}

NodeRef linear_index(const std::vector<NodeRef>& idx, const std::vector<int64_t>& shape) {
  MOAT_INTERNAL_CHECK(idx.size() == shape.size(), "index rank ", idx.size(), " for a rank ", shape.size(), " shape");
  NodeRef linear = c_i64(0);
  for (size_t d = 0; d < shape.size(); ++d) linear = iadd(imul(linear, c_i64(shape[d])), idx[d]);
  return linear;
}

std::vector<NodeRef> delinearize(NodeRef linear, const std::vector<int64_t>& shape) {
  std::vector<NodeRef> idx(shape.size());
  int64_t inner = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = d == 0 ? idiv(linear, inner) : irem(idiv(linear, inner), shape[d]);
    inner *= shape[d];
  }
  return idx;
}

KernelBuilder::KernelBuilder(LowerContext& ctx) : ctx_(ctx) {}

int KernelBuilder::use(int plan_buffer, bool written) {
  // Reshape aliases share their target's memory: address the target.
  plan_buffer = ctx_.plan.root_of(plan_buffer);
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == plan_buffer) {
      if (written) kernel_.buffers[static_cast<size_t>(arg_buffers_[i])].written = true;
      return arg_buffers_[i];
    }
  }
  const PlanBuffer& pb = ctx_.plan.buffers[static_cast<size_t>(plan_buffer)];
  BufferDecl decl;
  decl.name = "b" + std::to_string(args_.size());  // positional: identical kernels print identically
  decl.dtype = pb.dtype;
  decl.elements = numel(pb.shape);
  decl.written = written;
  args_.push_back(plan_buffer);
  arg_buffers_.push_back(kernel_.add_buffer(std::move(decl)));  // local buffers may sit between globals
  return arg_buffers_.back();
}

std::string KernelBuilder::fresh(std::string_view prefix) { return std::string(prefix) + std::to_string(counter_++); }

NodeRef KernelBuilder::load_value(int buffer, const std::vector<NodeRef>& idx) {
  const PlanBuffer& pb = ctx_.plan.buffers.at(static_cast<size_t>(buffer));
  const int k = use(buffer, false);
  if (ir::is_quantised(pb.dtype)) {
    // Element (row, col) of a quantised matrix: lane col % 32 of the 32-element chunk.
    const int64_t cols = pb.shape.back(), per_block = ir::dtype_block_elems(pb.dtype);
    std::vector<NodeRef> row_idx(idx.begin(), idx.end() - 1);
    std::vector<int64_t> row_shape(pb.shape.begin(), pb.shape.end() - 1);
    NodeRef row = linear_index(row_idx, row_shape);
    NodeRef col = idx.back();
    NodeRef block = iadd(imul(row, c_i64(cols / per_block)), idiv(col, per_block));
    NodeRef in_block = irem(col, per_block);
    return dequant(kernel_, k, block, in_block, 1);
  }
  NodeRef raw = load(kernel_, k, linear_index(idx, pb.shape));
  return cast(value_type(pb.dtype), raw);
}

NodeRef KernelBuilder::to_storage(NodeRef value, DType d) const {
  const Type t{storage_scalar(d), value->type.lanes};
  return cast(t, std::move(value));
}

NodeRef KernelBuilder::store_value(int buffer, const std::vector<NodeRef>& idx, NodeRef value) {
  const PlanBuffer& pb = ctx_.plan.buffers.at(static_cast<size_t>(buffer));
  const int k = use(buffer, true);
  return store(kernel_, k, linear_index(idx, pb.shape), to_storage(std::move(value), pb.dtype));
}

NodeRef KernelBuilder::value_at(ir::NodeId id, const std::vector<NodeRef>& idx) {
  const int buffer = ctx_.buffer_of[static_cast<size_t>(id)];
  if (buffer >= 0) return load_value(buffer, idx);
  return compute_at(id, idx);
}

NodeRef KernelBuilder::compute_at(ir::NodeId id, const std::vector<NodeRef>& idx) {
  const ir::Node& node = ctx_.node(id);
  switch (ir::op_kind(node.op)) {
    case ir::OpKind::Unary:
    case ir::OpKind::Binary:
    case ir::OpKind::Ternary:
    case ir::OpKind::Cast:
    case ir::OpKind::Source: return elementwise(node, id, idx);
    case ir::OpKind::View:
    case ir::OpKind::Gather: return view(node, id, idx);
    default: break;
  }
  MOAT_INTERNAL_ERROR("lowering: ", ir::describe(ctx_.graph, id), " is not materialised and cannot be inlined");
}

NodeRef KernelBuilder::operand_at(ir::NodeId operand, const std::vector<NodeRef>& out_idx) {
  const std::vector<int64_t>& shape = ctx_.shape(operand);
  std::vector<NodeRef> idx(shape.size());
  const size_t offset = out_idx.size() - shape.size();  // numpy: align on the right
  for (size_t d = 0; d < shape.size(); ++d) idx[d] = shape[d] == 1 ? c_i64(0) : out_idx[offset + d];
  return value_at(operand, idx);
}

namespace {

// A float value rounded through a narrower float dtype (f16 / bf16 / f8 results are
// rounded: part of the meaning).
NodeRef round_through(NodeRef v, DType d) {
  if (!ir::is_float(d) || d == DType::f32) return v;
  return cast(kF32, cast({storage_scalar(d), 1}, std::move(v)));
}

NodeRef f32_unary(Op op, NodeRef x) {
  auto one = [] { return c_f32(1.0); };
  switch (op) {
    case Op::exp: return unary(UnaryOp::exp, x);
    case Op::log: return unary(UnaryOp::log, x);
    case Op::sqrt: return unary(UnaryOp::sqrt, x);
    case Op::rsqrt: return unary(UnaryOp::rsqrt, x);
    case Op::recip: return unary(UnaryOp::recip, x);
    case Op::sin: return unary(UnaryOp::sin, x);
    case Op::cos: return unary(UnaryOp::cos, x);
    case Op::tanh: return unary(UnaryOp::tanh, x);
    case Op::sigmoid: return div(one(), add(one(), unary(UnaryOp::exp, unary(UnaryOp::neg, x))));
    case Op::silu: return div(x, add(one(), unary(UnaryOp::exp, unary(UnaryOp::neg, x))));
    default: break;
  }
  MOAT_INTERNAL_ERROR("lowering: ", ir::op_name(op), " is not a float unary op");
}

BinaryOp binary_of(Op op) {
  switch (op) {
    case Op::add: return BinaryOp::add;
    case Op::sub: return BinaryOp::sub;
    case Op::mul: return BinaryOp::mul;
    case Op::div: return BinaryOp::div;
    case Op::max: return BinaryOp::max;
    case Op::min: return BinaryOp::min;
    case Op::pow: return BinaryOp::pow;
    case Op::cmp_lt: return BinaryOp::lt;
    case Op::cmp_le: return BinaryOp::le;
    case Op::cmp_eq: return BinaryOp::eq;
    default: break;
  }
  MOAT_INTERNAL_ERROR("lowering: ", ir::op_name(op), " is not a binary op");
}

}  // namespace

NodeRef KernelBuilder::elementwise(const ir::Node& node, ir::NodeId id, const std::vector<NodeRef>& idx) {
  const DType out = node.type.dtype;
  const Type vt = value_type(out);
  switch (node.op) {
    case Op::constant: {
      ir::HostTensor one = ir::evaluate_constant(node, {});
      if (ir::is_float(out)) return c_f32(static_cast<double>(one.to_f32()[0]));
      return constant(vt, static_cast<double>(one.to_i64()[0]));
    }
    case Op::iota: return cast(vt, idx[0]);
    case Op::select: {
      NodeRef c = operand_at(node.operands[0], idx);
      return select(c, operand_at(node.operands[1], idx), operand_at(node.operands[2], idx));
    }
    case Op::cast: {
      NodeRef x = operand_at(node.operands[0], idx);
      if (vt.scalar == Scalar::i1) {
        NodeRef zero = x->type.scalar == Scalar::f32 ? c_f32(0.0) : constant(x->type, 0);
        return binary(BinaryOp::ne, x, zero);
      }
      return round_through(cast(vt, x), out);
    }
    default: break;
  }
  if (ir::op_kind(node.op) == ir::OpKind::Unary) {
    NodeRef x = operand_at(node.operands[0], idx);
    if (node.op == Op::neg) return round_through(unary(UnaryOp::neg, x), out);
    if (node.op == Op::abs) return round_through(unary(UnaryOp::abs, x), out);
    return round_through(f32_unary(node.op, x), out);
  }
  if (ir::op_kind(node.op) == ir::OpKind::Binary) {
    NodeRef a = operand_at(node.operands[0], idx);
    NodeRef b = operand_at(node.operands[1], idx);
    const BinaryOp op = binary_of(node.op);
    if (a->type.scalar == Scalar::f32 || is_comparison(op)) return round_through(binary(op, a, b), out);
    // Integers: computed in i64 and wrapped to the node's width; x / 0 gives 0.
    NodeRef wa = cast(kI64, a), wb = cast(kI64, b);
    NodeRef r;
    if (op == BinaryOp::div) {
      NodeRef zero = binary(BinaryOp::eq, wb, c_i64(0));
      r = select(zero, c_i64(0), div(wa, select(zero, c_i64(1), wb)));
    } else {
      r = binary(op, wa, wb);
    }
    return cast(vt, r);
  }
  MOAT_INTERNAL_ERROR("lowering: cannot inline ", ir::describe(ctx_.graph, id));
}

NodeRef KernelBuilder::view(const ir::Node& node, ir::NodeId id, const std::vector<NodeRef>& idx) {
  const std::vector<int64_t>& out_shape = ctx_.shape(id);
  const ir::NodeId src = node.operands.empty() ? -1 : node.operands[0];
  switch (node.op) {
    case Op::reshape: return value_at(src, delinearize(linear_index(idx, out_shape), ctx_.shape(src)));
    case Op::broadcast: return operand_at(src, idx);
    case Op::permute: {
      const auto& perm = ir::attr_ints(node, "perm");
      std::vector<NodeRef> in(idx.size());
      for (size_t d = 0; d < perm.size(); ++d) in[static_cast<size_t>(perm[d])] = idx[d];
      return value_at(src, in);
    }
    case Op::slice: {
      int64_t axis = ir::attr_int(node, "axis");
      if (axis < 0) axis += static_cast<int64_t>(out_shape.size());
      std::vector<NodeRef> in = idx;
      in[static_cast<size_t>(axis)] = iadd(idx[static_cast<size_t>(axis)], c_i64(ir::attr_int(node, "start")));
      return value_at(src, in);
    }
    case Op::gather: {
      // out[i..., j...] = table[idx[i...], j...]; the row is clamped to the table.
      const ir::NodeId indices = node.operands[1];
      const size_t k = ctx_.shape(indices).size();
      const int64_t rows = ctx_.shape(src)[0];
      std::vector<NodeRef> at_idx(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k));
      NodeRef row = cast(kI64, value_at(indices, at_idx));
      row = max_(c_i64(0), min_(row, c_i64(rows - 1)));
      std::vector<NodeRef> in{row};
      in.insert(in.end(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end());
      return value_at(src, in);
    }
    case Op::concat: {
      // The operand that holds the element, chosen by selects; every operand is read at
      // an index clamped into its own extent, so no load is out of bounds.
      int64_t axis = ir::attr_int(node, "axis");
      if (axis < 0) axis += static_cast<int64_t>(out_shape.size());
      const size_t a = static_cast<size_t>(axis);
      NodeRef result;
      int64_t offset = 0;
      if (concat_part.concat == id) {
        for (size_t p = 0; p < concat_part.part; ++p) offset += ctx_.shape(node.operands[p])[a];
        std::vector<NodeRef> in = idx;
        in[a] = isub(idx[a], offset);
        return value_at(node.operands[concat_part.part], in);
      }
      for (ir::NodeId part : node.operands) {
        const int64_t len = ctx_.shape(part)[a];
        std::vector<NodeRef> in = idx;
        in[a] = max_(c_i64(0), min_(binary(BinaryOp::sub, idx[a], c_i64(offset)), c_i64(len - 1)));
        NodeRef v = value_at(part, in);
        result = result ? select(lt(idx[a], c_i64(offset)), result, v) : v;
        offset += len;
      }
      return result;
    }
    case Op::take_along: {
      // out[..., j] = x[..., idx[..., j]], clamped to the last dimension.
      const int64_t n = ctx_.shape(src).back();
      NodeRef at = cast(kI64, operand_at(node.operands[1], idx));
      at = max_(c_i64(0), min_(at, c_i64(n - 1)));
      std::vector<NodeRef> in = idx;
      in.back() = at;
      return operand_at(src, in);
    }
    default: break;
  }
  MOAT_INTERNAL_ERROR("lowering: cannot inline ", ir::describe(ctx_.graph, id));
}

PlanKernel KernelBuilder::finish(std::string_view prefix, std::vector<NodeRef> body) {
  kernel_.body = block(std::move(body));
  kernel_.name = "k";
  uint64_t hash = 1469598103934665603ull;  // FNV-1a 64 of the text under a placeholder name
  for (char c : print(kernel_)) hash = (hash ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  kernel_.name = std::string(prefix) + "_" + hex;
  verify(kernel_);
  // Work-group-local buffers fit the device's local memory: a lowering that chose a
  // schedule whose buffers do not is a bug (its `applies` should have refused).
  int64_t local_bytes = 0;
  for (const BufferDecl& b : kernel_.buffers)
    if (b.space == Space::local) local_bytes += b.elements / ir::dtype_block_elems(b.dtype) * ir::dtype_block_bytes(b.dtype);
  MOAT_INTERNAL_CHECK(local_bytes <= ctx_.schedule.local_memory_bytes, "kernel ", kernel_.name, ": ", local_bytes,
                      " bytes of work-group-local memory exceed the schedule's ", ctx_.schedule.local_memory_bytes);
  return PlanKernel{std::move(kernel_), std::move(args_)};
}

}  // namespace moat::jit
