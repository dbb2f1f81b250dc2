// legalize_numerics, in two walks: `dequant`, `qscale`, `qdot` and `quantize` become
// the loads, stores and arithmetic of their block formats' rules (jit/block_formats.h);
// then casts from and to narrow floats a target does not convert natively become
// jit/float_formats.h's integer arithmetic (the first walk's rules emit such casts),
// and, without native math, the math functions jit/math_functions.h's rules. Values a
// rule shares are bound to lets placed just before the statement that used the node.
#include "jit/block_formats.h"
#include "jit/float_formats.h"
#include "jit/legalize.h"
#include "jit/math_functions.h"
#include "support/error.h"
#include "support/half.h"

#include <unordered_map>

namespace moat::jit {

namespace {

NodeRef rebuilt(const Node& n, std::vector<NodeRef> args) {
  Node copy = n;
  copy.args = std::move(args);
  return std::make_shared<const Node>(std::move(copy));
}

// Balanced concatenation of equal-width parts (pairwise, so each level's halves match).
NodeRef concat_all(std::vector<NodeRef> parts) {
  while (parts.size() > 1) {
    std::vector<NodeRef> next;
    for (size_t i = 0; i + 1 < parts.size(); i += 2) next.push_back(concat(parts[i], parts[i + 1]));
    if (parts.size() % 2 == 1) next.push_back(parts.back());
    parts = std::move(next);
  }
  return parts[0];
}

enum class Walk { formats, conversions };

class NumericsLegalizer {
 public:
  // `k`: the kernel being legalised (its body is rewritten from `stmts`' result; the
  // formats' tables are added to it).
  NumericsLegalizer(Kernel& k, Walk walk, NumericsOptions options) : k_(k), walk_(walk), options_(options) {}

  std::vector<NodeRef> stmts(const std::vector<NodeRef>& in) {
    std::vector<NodeRef> out;
    for (const NodeRef& s : in) stmt(s, out);
    return out;
  }

 private:
  const BlockFormat& format_of(int buffer) const {
    const BlockFormat* f = find_block_format(k_.buffers.at(static_cast<size_t>(buffer)).dtype);
    MOAT_INTERNAL_CHECK(f != nullptr, "legalize_numerics: %", k_.buffers[buffer].name, " (",
                        ir::dtype_name(k_.buffers[buffer].dtype), ") has no block format (kernel ", k_.name, ")");
    return *f;
  }

  // Access to block `block` of `buffer`; shared values become lets in `pending_`.
  BlockAccess access(int buffer, NodeRef block) {
    return BlockAccess(k_, buffer, format_of(buffer), std::move(block), [this](NodeRef v) { return bind(std::move(v)); });
  }

  NodeRef bind(NodeRef v) {
    if (v->kind == NodeKind::constant || v->kind == NodeKind::ref) return v;
    std::string name = (walk_ == Walk::formats ? "nq" : "nc") + std::to_string(next_name_++);
    pending_->push_back(let(name, v));
    return ref(std::move(name), v->type);
  }

  NodeRef expr(const NodeRef& e) {
    auto memo = memo_.find(e.get());
    if (memo != memo_.end()) return memo->second;
    NodeRef out = compute(e);
    memo_[e.get()] = out;
    return out;
  }

  NodeRef compute(const NodeRef& e) {
    if (walk_ == Walk::conversions) return conversion(e);
    const Node& n = *e;
    switch (n.kind) {
      case NodeKind::dequant: {
        BlockAccess b = access(static_cast<int>(n.i), expr(n.args[0]));
        return n.type.lanes == 32 ? b.format().chunk(b, expr(n.args[1])) : b.format().one(b, expr(n.args[1]));
      }
      case NodeKind::qscale: return access(static_cast<int>(n.i), expr(n.args[0])).f16("d");
      case NodeKind::qdot: return qdot_rule(n);
      case NodeKind::dot4_words:
        if (!options_.native_dot4_words) return dot4_words_rule(expr(n.args[0]), bind(expr(n.args[1])), bind(expr(n.args[2])));
        break;
      case NodeKind::extract: {  // a dynamic lane of a decoded chunk: decode that one element
        const Node& x = *n.args[0];
        if (x.kind == NodeKind::dequant && n.args[1]->kind != NodeKind::constant) {
          BlockAccess b = access(static_cast<int>(x.i), expr(x.args[0]));
          return b.format().one(b, add(expr(x.args[1]), expr(n.args[1])));
        }
        break;
      }
      default: break;
    }
    return with_args(e);
  }

  // e with its operands rewritten.
  NodeRef with_args(const NodeRef& e) {
    bool changed = false;
    std::vector<NodeRef> args;
    for (const NodeRef& a : e->args) {
      args.push_back(expr(a));
      changed = changed || args.back() != a;
    }
    return changed ? rebuilt(*e, std::move(args)) : e;
  }

  bool native(Scalar s) const { return !is_narrow_float(s) || (s == Scalar::f16 && options_.native_f16); }

  // A narrow-float constant as its bits, rounded here by support/half.h.
  static NodeRef narrow_constant(const Node& n) {
    const float v = static_cast<float>(n.f);
    const uint32_t bits = n.type.scalar == Scalar::f16    ? f32_to_f16(v)
                          : n.type.scalar == Scalar::bf16 ? f32_to_bf16(v)
                                                          : f32_to_fp8_e4m3(v);
    return bitcast(n.type, c_i32(bits));
  }

  // A math function written out (targets without native math).
  NodeRef math(const NodeRef& e) {
    const Node& n = *e;
    const Binder binder = [this](NodeRef v) { return bind(std::move(v)); };
    if (n.kind == NodeKind::unary && n.type.scalar == Scalar::f32) {
      switch (static_cast<UnaryOp>(n.op)) {
        case UnaryOp::exp: return exp_rule(n.args[0], binder);
        case UnaryOp::log: return log_rule(n.args[0], binder);
        case UnaryOp::sin: return sin_rule(n.args[0], binder);
        case UnaryOp::cos: return cos_rule(n.args[0], binder);
        case UnaryOp::tanh: return tanh_rule(n.args[0], binder);
        default: return e;
      }
    }
    if (n.kind == NodeKind::binary && n.type.scalar == Scalar::f32) {
      if (static_cast<BinaryOp>(n.op) == BinaryOp::pow) return pow_rule(n.args[0], n.args[1], binder);
      if (static_cast<BinaryOp>(n.op) == BinaryOp::rem)
        return fmod_rule(n.args[0], n.args[1], binder, [this](NodeRef s) { pending_->push_back(std::move(s)); },
                         [this] { return "nm" + std::to_string(next_name_++); });
    }
    return e;
  }

  // A cast through f32 where its source or destination is a narrow float to write out.
  NodeRef conversion(const NodeRef& e) {
    NodeRef out = with_args(e);
    if (!options_.native_math) out = math(out);
    if (out->kind == NodeKind::constant && !native(out->type.scalar)) return narrow_constant(*out);
    if (out->kind != NodeKind::cast) return out;
    const Scalar from = out->args[0]->type.scalar, to = out->type.scalar;
    if (native(from) && native(to)) return out;
    const Binder binder = [this](NodeRef v) { return bind(std::move(v)); };
    NodeRef v = out->args[0];
    if (!native(from)) v = narrow_to_f32(v, binder);
    if (!native(to)) return f32_to_narrow(cast(kF32.with_lanes(v->type.lanes), v), to, binder);
    return cast(out->type, v);
  }

  // kir.h's dot4_words in i32 arithmetic: byte i of a (unsigned) times byte i of b
  // sign-extended as t - 2 (t & 128), which no C-like target can find undefined.
  static NodeRef dot4_words_rule(NodeRef acc, const NodeRef& a, const NodeRef& b) {
    const NodeRef byte_mask = c_i32(255);
    for (int i = 0; i < 4; ++i) {
      auto byte = [&](const NodeRef& w) {
        return binary(BinaryOp::land, i == 0 ? w : binary(BinaryOp::shr, w, c_i32(8 * i)), byte_mask);
      };
      NodeRef bu = byte(b);
      NodeRef bs = sub(bu, binary(BinaryOp::shl, binary(BinaryOp::land, bu, c_i32(128)), c_i32(1)));
      acc = add(acc, mul(byte(a), bs));
    }
    return acc;
  }

  // kir.h's qdot from B's integer form: per pair of blocks, dot4(u_B, q_A) less the
  // offset's products dot4(offset, q_A) (u8 x i8 as vpdpbusd / dp4a take them), then
  // lanes 8t .. 8t + 7 times block t's d_A * scale_B; a format with a min adds
  // d_A * min_B times the lane's sum of q_A (llama.cpp's q8_1 sums, here from dot4(1, q_A)).
  NodeRef qdot_rule(const Node& n) {
    const int a = static_cast<int>(n.i), b = static_cast<int>(n.j);
    if (k_.buffers.at(static_cast<size_t>(a)).dtype == ir::DType::q8_k) return k_qdot_rule(n);
    const BlockFormat& b_format = format_of(b);
    MOAT_INTERNAL_CHECK(b_format.integers != nullptr, "qdot: ", ir::dtype_name(b_format.dtype), " has no integer form");
    const bool with_min = b_format.integer_min != nullptr;
    const int blocks = n.type.lanes / 8;
    NodeRef a_first = expr(n.args[0]), b_first = expr(n.args[1]);
    auto plus = [](const NodeRef& x, int t) { return t == 0 ? x : add(x, c_i64(t)); };
    std::vector<NodeRef> a_ints, b_ints, scales, mins;
    for (int t = 0; t < blocks; ++t) {
      BlockAccess ab = access(a, plus(a_first, t)), bb = access(b, plus(b_first, t));
      a_ints.push_back(bind(ab.bytes("qs", c_i64(0), Scalar::i8, 32)));
      b_ints.push_back(bind(b_format.integers(bb)));
      NodeRef d_a = bind(ab.f16("d"));
      NodeRef scale_b = b_format.integer_scale != nullptr ? b_format.integer_scale(bb) : bb.f16("d");
      scales.push_back(broadcast(bind(mul(d_a, scale_b)), 8));
      if (with_min) mins.push_back(broadcast(bind(mul(d_a, b_format.integer_min(bb))), 8));
    }
    std::vector<NodeRef> sums, a_sums;
    for (int t = 0; t < blocks; t += 2) {
      const int pair = std::min(2, blocks - t);
      NodeRef qa = pair == 2 ? concat(a_ints[t], a_ints[t + 1]) : a_ints[t];
      NodeRef ub = pair == 2 ? concat(b_ints[t], b_ints[t + 1]) : b_ints[t];
      NodeRef zero = broadcast(c_i32(0), 8 * pair);
      NodeRef products = dot4(zero, ub, qa);
      if (b_format.integer_offset != 0) {
        NodeRef offset = broadcast(constant({Scalar::u8, 1}, static_cast<double>(b_format.integer_offset)), 32 * pair);
        products = sub(products, dot4(zero, offset, qa));
      }
      sums.push_back(products);
      if (with_min) a_sums.push_back(dot4(zero, broadcast(constant({Scalar::u8, 1}, 1.0), 32 * pair), qa));
    }
    const Type lanes = kF32.with_lanes(8 * blocks);
    NodeRef out = mul(cast(lanes, concat_all(std::move(sums))), concat_all(std::move(scales)));
    if (!with_min) return out;
    return add(out, mul(cast(lanes, concat_all(std::move(a_sums))), concat_all(std::move(mins))));
  }

  // kir.h's qdot of a q8_k A and a super-block B, from B's sub_integers / sub_scales: per
  // pair of 32-element sub-blocks (64 bytes), dot4(u_B, q_A) and dot4(1, q_A) (the sum
  // the min multiplies; llama.cpp takes it from bsums), s * f32(dot) - m * f32(sum) per
  // lane, summed over the 4 pairs, times d_A: f32 x 16 per super-block.
  NodeRef k_qdot_rule(const Node& n) {
    const int a = static_cast<int>(n.i), b = static_cast<int>(n.j);
    const BlockFormat& b_format = format_of(b);
    const int blocks = n.type.lanes / 16;
    NodeRef a_first = expr(n.args[0]), b_first = expr(n.args[1]);
    auto plus = [](const NodeRef& x, int t) { return t == 0 ? x : add(x, c_i64(t)); };
    const Type f32x16 = kF32.with_lanes(16);
    NodeRef zero = broadcast(c_i32(0), 16), ones = broadcast(constant({Scalar::u8, 1}, 1.0), 64);
    std::vector<NodeRef> per_block;
    for (int t = 0; t < blocks; ++t) {
      BlockAccess ab = access(a, bind(plus(a_first, t))), bb = access(b, bind(plus(b_first, t)));
      NodeRef acc;
      for (int c = 0; c < 8; c += 2) {
        NodeRef qa = bind(ab.bytes("qs", c_i64(32 * c), Scalar::i8, 64));
        NodeRef ub = concat(b_format.sub_integers(bb, c), b_format.sub_integers(bb, c + 1));
        const SubScales s0 = b_format.sub_scales(bb, c), s1 = b_format.sub_scales(bb, c + 1);
        NodeRef dot = cast(f32x16, dot4(zero, ub, qa)), sum = cast(f32x16, dot4(zero, ones, qa));
        NodeRef term = sub(mul(concat(s0.scale, s1.scale), dot), mul(concat(s0.min, s1.min), sum));
        acc = acc ? add(acc, term) : term;
      }
      per_block.push_back(mul(acc, broadcast(bind(ab.f32("d")), 16)));
    }
    return concat_all(std::move(per_block));
  }

  void stmt(const NodeRef& s, std::vector<NodeRef>& out) {
    const Node& n = *s;
    std::vector<NodeRef> pending;
    std::vector<NodeRef>* outer = pending_;
    pending_ = &pending;
    memo_.clear();
    std::vector<NodeRef> args;
    for (const NodeRef& a : n.args) args.push_back(expr(a));
    NodeRef result;
    std::vector<NodeRef> encoded;
    switch (n.kind) {
      case NodeKind::block: result = block(stmts(n.body)); break;
      case NodeKind::for_loop: result = for_loop(n.name, args[0], args[1], args[2], stmts(n.body)); break;
      case NodeKind::if_then: result = if_then(args[0], stmts(n.body), stmts(n.else_body)); break;
      case NodeKind::quantize: {
        pending_ = &pending;  // the bodies above may have moved it
        BlockAccess b = access(static_cast<int>(n.i), args[0]);
        MOAT_INTERNAL_CHECK(b.format().encode != nullptr, "quantize into ", ir::dtype_name(b.format().dtype));
        encoded = b.format().encode(b, std::vector<NodeRef>(args.begin() + 1, args.end()));
        break;
      }
      default: result = rebuilt(n, std::move(args)); break;
    }
    pending_ = outer;
    out.insert(out.end(), pending.begin(), pending.end());
    if (result) out.push_back(result);
    out.insert(out.end(), encoded.begin(), encoded.end());
  }

  Kernel& k_;
  Walk walk_;
  NumericsOptions options_;
  int next_name_ = 0;
  std::vector<NodeRef>* pending_ = nullptr;          // lets to place before the current statement
  std::unordered_map<const Node*, NodeRef> memo_;    // rewritten expressions of the current statement
};

}  // namespace

Kernel legalize_numerics(const Kernel& kernel, const NumericsOptions& options) {
  Kernel legal = kernel;
  std::vector<NodeRef> decoded = NumericsLegalizer(legal, Walk::formats, options).stmts(kernel.body->body);
  legal.body = block(std::move(decoded));
  Kernel converted = legal;
  std::vector<NodeRef> converted_body = NumericsLegalizer(converted, Walk::conversions, options).stmts(legal.body->body);
  converted.body = block(std::move(converted_body));
  verify(converted);
  return converted;
}

}  // namespace moat::jit
