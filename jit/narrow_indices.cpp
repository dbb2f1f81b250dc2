// Index arithmetic in 32 bits where the kernel's shapes allow, and divisions by
// constants as shifts or a multiply-high (legalize.h: narrow_index_arithmetic).
//
// Kernel IR computes indices in i64 (kir.h). A GPU's integer units are 32-bit: an i64
// add is two instructions, an i64 multiply three or four, and an i64 division or
// remainder a call of a software routine (ptxas: __cuda_sm20_div_s64, ~70 instructions).
// The value range of every integer expression is known from the kernel itself — the
// launch grid bounds group_id / item_id, constant loop bounds bound counters, `let`s
// carry their value's range, narrow types and constant tables bound what they load —
// so each computation whose every intermediate value lies in i32 is done in i32 and
// widened once where an i64 is wanted (an address, a loop bound).
#include <algorithm>
#include <climits>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "jit/legalize.h"
#include "support/error.h"

namespace moat::jit {

namespace {

// An inclusive interval of integer values.
struct Range {
  int64_t lo = INT64_MIN, hi = INT64_MAX;
  bool within(int64_t a, int64_t b) const { return lo >= a && hi <= b; }
};

constexpr Range kAny{};
constexpr Range kInt32{INT32_MIN, INT32_MAX};

Range of_type(Type t) {
  switch (t.scalar) {
    case Scalar::i32: return kInt32;
    case Scalar::i8: return {INT8_MIN, INT8_MAX};
    case Scalar::u8: return {0, UINT8_MAX};
    case Scalar::i1: return {0, 1};
    default: return kAny;
  }
}

// [lo, hi] when it is a range of type t, else everything t holds (the value wrapped).
Range fitted(__int128 lo, __int128 hi, Type t) {
  const Range type = of_type(t);
  if (lo < type.lo || hi > type.hi) return type;
  return {static_cast<int64_t>(lo), static_cast<int64_t>(hi)};
}

bool is_integer(Type t) { return !is_float(t.scalar); }

bool is_const_int(const NodeRef& e) { return e->kind == NodeKind::constant && is_integer(e->type); }

// Integer arithmetic whose operands and result are of one type (not comparisons).
bool is_arithmetic(const Node& n) {
  if (!is_integer(n.type)) return false;
  if (n.kind == NodeKind::select) return true;
  if (n.kind == NodeKind::unary) return n.op == static_cast<uint8_t>(UnaryOp::neg) || n.op == static_cast<uint8_t>(UnaryOp::abs);
  if (n.kind != NodeKind::binary) return false;
  switch (static_cast<BinaryOp>(n.op)) {
    case BinaryOp::lt: case BinaryOp::le: case BinaryOp::eq: case BinaryOp::ne: case BinaryOp::pow: return false;
    default: return true;
  }
}

bool is_comparison(const Node& n) { return n.kind == NodeKind::binary && is_comparison(static_cast<BinaryOp>(n.op)); }

bool is_index(const NodeRef& e) { return e->type == kI64; }

int log2_exact(int64_t c) { return c > 0 && (c & (c - 1)) == 0 ? __builtin_ctzll(static_cast<unsigned long long>(c)) : -1; }

NodeRef with_args(const Node& n, std::vector<NodeRef> args) {
  Node copy = n;
  copy.args = std::move(args);
  return std::make_shared<const Node>(std::move(copy));
}

class IndexNarrower {
 public:
  explicit IndexNarrower(const Kernel& k) : k_(k) {}

  Kernel run() {
    Kernel out = k_;
    out.body = statement(k_.body);
    verify(out);
    return out;
  }

 private:
  // --- Value ranges -------------------------------------------------------------------

  Range range(const NodeRef& e) {
    if (!is_integer(e->type)) return kAny;
    if (auto it = ranges_.find(e.get()); it != ranges_.end()) return it->second;
    const Range r = compute_range(*e);
    ranges_.emplace(e.get(), r);
    return r;
  }

  Range compute_range(const Node& n) {
    const Type t = n.type;
    switch (n.kind) {
      case NodeKind::constant: return {n.i, n.i};
      case NodeKind::builtin: {
        const int d = static_cast<int>(n.i);
        switch (static_cast<Builtin>(n.op)) {
          case Builtin::group_id: return {0, k_.groups[d] - 1};
          case Builtin::item_id: return {0, k_.items[d] - 1};
          case Builtin::num_groups: return {k_.groups[d], k_.groups[d]};
          case Builtin::group_size: return {k_.items[d], k_.items[d]};
        }
        return of_type(t);
      }
      case NodeKind::ref: {
        Range r = of_type(t);
        if (auto it = names_.find(n.name); it != names_.end()) r = it->second;
        if (n.range_lo <= n.range_hi) r = {std::max(r.lo, n.range_lo), std::min(r.hi, n.range_hi)};
        return r;
      }
      case NodeKind::cast: {
        if (!is_integer(n.args[0]->type)) return of_type(t);
        const Range r = range(n.args[0]);
        return fitted(r.lo, r.hi, t);
      }
      case NodeKind::table_load: {
        const std::vector<int64_t>& values = k_.tables[static_cast<size_t>(n.i)].values;
        const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
        return {*lo, *hi};
      }
      case NodeKind::broadcast:
      case NodeKind::extract: return range(n.args[0]);
      case NodeKind::select: {
        const Range a = range(n.args[1]), b = range(n.args[2]);
        return {std::min(a.lo, b.lo), std::max(a.hi, b.hi)};
      }
      case NodeKind::unary: {
        const Range x = range(n.args[0]);
        const __int128 lo = x.lo, hi = x.hi;
        if (n.op == static_cast<uint8_t>(UnaryOp::neg)) return fitted(-hi, -lo, t);
        if (n.op == static_cast<uint8_t>(UnaryOp::abs))
          return x.lo >= 0 ? x : x.hi <= 0 ? fitted(-hi, -lo, t) : fitted(0, std::max(-lo, hi), t);
        return of_type(t);
      }
      case NodeKind::binary: return binary_range(n);
      default: return of_type(t);
    }
  }

  Range binary_range(const Node& n) {
    const Type t = n.type;
    const Range a = range(n.args[0]), b = range(n.args[1]);
    const __int128 alo = a.lo, ahi = a.hi, blo = b.lo, bhi = b.hi;
    const bool b_const = is_const_int(n.args[1]);
    switch (static_cast<BinaryOp>(n.op)) {
      case BinaryOp::add: return fitted(alo + blo, ahi + bhi, t);
      case BinaryOp::sub: return fitted(alo - bhi, ahi - blo, t);
      case BinaryOp::mul: {
        const __int128 p[4] = {alo * blo, alo * bhi, ahi * blo, ahi * bhi};
        return fitted(*std::min_element(p, p + 4), *std::max_element(p, p + 4), t);
      }
      case BinaryOp::div:  // truncation is monotonic in the dividend for a positive divisor
        if (b_const && b.lo > 0) return fitted(alo / blo, ahi / blo, t);
        if (b.lo > 0) return {std::min<int64_t>(a.lo, 0), std::max<int64_t>(a.hi, 0)};
        return fitted(-std::max(-alo, ahi), std::max(-alo, ahi), t);  // |a / b| <= |a| for any b != 0
      case BinaryOp::rem:
        if (b_const && b.lo > 0) {
          const Range r{a.lo >= 0 ? 0 : std::max(a.lo, 1 - b.lo), a.hi <= 0 ? 0 : std::min(a.hi, b.lo - 1)};
          return a.lo >= 0 && a.hi < b.lo ? a : r;
        }
        return {std::min<int64_t>(a.lo, 0), std::max<int64_t>(a.hi, 0)};  // the dividend's sign, |a % b| <= |a|
      case BinaryOp::min: return {std::min(a.lo, b.lo), std::min(a.hi, b.hi)};
      case BinaryOp::max: return {std::max(a.lo, b.lo), std::max(a.hi, b.hi)};
      case BinaryOp::shl:
        if (b_const && b.lo >= 0 && b.lo < 63) return fitted(alo << b.lo, ahi << b.lo, t);
        return of_type(t);
      case BinaryOp::shr:
        if (b_const && b.lo >= 0 && b.lo < 64 && (a.lo >= 0 || is_signed(t.scalar))) return {a.lo >> b.lo, a.hi >> b.lo};
        return of_type(t);
      case BinaryOp::land:
        if (a.lo >= 0 && b.lo >= 0) return {0, std::min(a.hi, b.hi)};
        if (a.lo >= 0) return {0, a.hi};
        if (b.lo >= 0) return {0, b.hi};
        return of_type(t);
      case BinaryOp::lor:
        if (a.lo >= 0 && b.lo >= 0) {
          int64_t mask = 1;
          while (mask <= std::max(a.hi, b.hi) && mask < (int64_t{1} << 62)) mask <<= 1;
          return {0, std::max(mask - 1, std::max(a.hi, b.hi))};
        }
        return of_type(t);
      default: return of_type(t);
    }
  }

  // --- Rewriting ----------------------------------------------------------------------

  // Whether index expression e can be computed in i32: its value and every value it
  // is computed from (through arithmetic) lie in i32.
  bool narrowable(const NodeRef& e) {
    if (auto it = narrowable_.find(e.get()); it != narrowable_.end()) return it->second;
    bool ok = range(e).within(INT32_MIN, INT32_MAX);
    if (ok && e->kind == NodeKind::binary &&
        (e->op == static_cast<uint8_t>(BinaryOp::shl) || e->op == static_cast<uint8_t>(BinaryOp::shr)))
      ok = range(e->args[1]).within(0, 31);  // an i32 shift by 32 or more is undefined
    if (ok && e->kind == NodeKind::binary && e->op == static_cast<uint8_t>(BinaryOp::rem)) {
      // INT32_MIN % -1 is undefined in i32 (C) though its value, 0, fits
      const Range a = range(e->args[0]), b = range(e->args[1]);
      ok = a.lo > INT32_MIN || b.lo > -1 || b.hi < -1;
    }
    if (ok && is_arithmetic(*e)) {
      const size_t first = e->kind == NodeKind::select ? 1 : 0;
      for (size_t i = first; i < e->args.size(); ++i) ok = ok && narrowable(e->args[i]);
    }
    narrowable_.emplace(e.get(), ok);
    return ok;
  }

  // The i32 value of narrowable index expression e.
  NodeRef narrow(const NodeRef& e) {
    if (auto it = narrowed_.find(e.get()); it != narrowed_.end()) return it->second;
    NodeRef out;
    const Node& n = *e;
    if (n.kind == NodeKind::constant) {
      out = c_i32(n.i);
    } else if (n.kind == NodeKind::binary && is_arithmetic(n)) {
      out = narrow_binary(n);
    } else if (n.kind == NodeKind::select) {
      out = select(rewrite(n.args[0]), narrow(n.args[1]), narrow(n.args[2]));
    } else if (n.kind == NodeKind::unary) {
      out = unary(static_cast<UnaryOp>(n.op), narrow(n.args[0]));
    } else if (n.kind == NodeKind::cast && is_integer(n.args[0]->type) && scalar_bits(n.args[0]->type.scalar) <= 32) {
      out = cast(kI32, rewrite(n.args[0]));  // a widened narrow integer: the value itself
    } else {
      out = cast(kI32, rewrite(e));  // a leaf (ref, builtin, load, ...)
    }
    narrowed_.emplace(e.get(), out);
    return out;
  }

  NodeRef narrow_binary(const Node& n) {
    const auto op = static_cast<BinaryOp>(n.op);
    const NodeRef& divisor = n.args[1];
    if ((op == BinaryOp::div || op == BinaryOp::rem) && is_const_int(divisor) && divisor->i > 0 && range(n.args[0]).lo >= 0) {
      const NodeRef x = narrow(n.args[0]);
      const int64_t c = divisor->i;
      if (op == BinaryOp::div) return quotient(x, c);
      if (log2_exact(c) >= 0) return binary(BinaryOp::land, x, c_i32(c - 1));
      return sub(x, mul(quotient(x, c), c_i32(c)));
    }
    return binary(op, narrow(n.args[0]), narrow(n.args[1]));
  }

  // x / c for 0 <= x < 2^31 and c > 0, without a division: a shift for a power of two;
  // else the high word of x * m shifted, m = ceil(2^(31 + l) / c) with 2^(l-1) < c < 2^l
  // (m < 2^32; the error x * (m c - 2^(31+l)) / (c 2^(31+l)) stays below 1/c, so the
  // floor is exact for every x < 2^31: Granlund and Montgomery's method).
  static NodeRef quotient(const NodeRef& x, int64_t c) {
    if (c == 1) return x;
    if (const int s = log2_exact(c); s >= 0) return binary(BinaryOp::shr, x, c_i32(s));
    const int l = 64 - __builtin_clzll(static_cast<unsigned long long>(c));  // 2^(l-1) < c < 2^l
    const unsigned __int128 p = static_cast<unsigned __int128>(1) << (31 + l);
    const uint64_t m = static_cast<uint64_t>((p + static_cast<unsigned __int128>(c) - 1) / static_cast<unsigned __int128>(c));
    MOAT_INTERNAL_CHECK(m < (uint64_t{1} << 32), "narrow_index_arithmetic: multiplier of ", c, " does not fit 32 bits");
    const NodeRef high = binary(BinaryOp::mulhi, x, c_i32(static_cast<int32_t>(static_cast<uint32_t>(m))));
    return l == 1 ? high : binary(BinaryOp::shr, high, c_i32(l - 1));
  }

  // Expression e with its index arithmetic narrowed (the same type and value).
  NodeRef rewrite(const NodeRef& e) {
    if (auto it = rewritten_.find(e.get()); it != rewritten_.end()) return it->second;
    NodeRef out = rewrite_uncached(e);
    rewritten_.emplace(e.get(), out);
    return out;
  }

  NodeRef rewrite_uncached(const NodeRef& e) {
    const Node& n = *e;
    if (is_index(e) && is_arithmetic(n) && narrowable(e)) return cast(kI64, narrow(e));
    if (is_comparison(n) && is_index(n.args[0]) && (is_arithmetic(*n.args[0]) || is_arithmetic(*n.args[1])) &&
        narrowable(n.args[0]) && narrowable(n.args[1]))
      return binary(static_cast<BinaryOp>(n.op), narrow(n.args[0]), narrow(n.args[1]));
    std::vector<NodeRef> args;
    bool changed = false;
    for (const NodeRef& a : n.args) {
      args.push_back(rewrite(a));
      changed = changed || args.back() != a;
    }
    // A non-negative i64 dividend too wide for i32, divided by a power of two.
    if (is_index(e) && n.kind == NodeKind::binary && is_const_int(n.args[1]) && range(n.args[0]).lo >= 0) {
      const int s = log2_exact(n.args[1]->i);
      if (s >= 0 && n.op == static_cast<uint8_t>(BinaryOp::div)) return binary(BinaryOp::shr, args[0], c_i64(s));
      if (s >= 0 && n.op == static_cast<uint8_t>(BinaryOp::rem)) return binary(BinaryOp::land, args[0], c_i64(n.args[1]->i - 1));
    }
    return changed ? with_args(n, std::move(args)) : e;
  }

  // A statement with the expressions in it rewritten; records the ranges of the names it
  // binds before anything in its scope is rewritten.
  NodeRef statement(const NodeRef& s) {
    const Node& n = *s;
    if (n.kind == NodeKind::let) bind(n.name, range(n.args[0]));
    if (n.kind == NodeKind::var) bind(n.name, std::nullopt);
    if (n.kind == NodeKind::load_vector)
      for (int l = 0; l < n.type.lanes; ++l) bind(lane_name(n.name, l), std::nullopt);
    if (n.kind == NodeKind::for_loop) {
      const Range begin = range(n.args[0]), end = range(n.args[1]), step = range(n.args[2]);
      bind(n.name, step.lo > 0 ? std::optional<Range>(Range{begin.lo, std::max(begin.lo, end.hi - 1)}) : std::nullopt);
    }
    Node copy = n;
    for (NodeRef& a : copy.args) a = rewrite(a);
    for (NodeRef& b : copy.body) b = statement(b);
    for (NodeRef& b : copy.else_body) b = statement(b);
    return std::make_shared<const Node>(std::move(copy));
  }

  // A name's range from here on (none: its type's). A name bound again (in a sibling
  // scope, kir_verify allows it) makes every memo stale: refs to it are shared nodes.
  void bind(const std::string& name, std::optional<Range> r) {
    if (!bound_.insert(name).second) {
      ranges_.clear();
      narrowable_.clear();
      narrowed_.clear();
      rewritten_.clear();
    }
    if (r) names_[name] = *r;
    else names_.erase(name);
  }

  const Kernel& k_;
  std::unordered_map<std::string, Range> names_;  // let and loop-counter ranges
  std::unordered_set<std::string> bound_;         // every name bound so far
  std::unordered_map<const Node*, Range> ranges_;
  std::unordered_map<const Node*, bool> narrowable_;
  std::unordered_map<const Node*, NodeRef> narrowed_;
  std::unordered_map<const Node*, NodeRef> rewritten_;
};

}  // namespace

Kernel narrow_index_arithmetic(const Kernel& kernel) { return IndexNarrower(kernel).run(); }

}  // namespace moat::jit
