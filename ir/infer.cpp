#include "ir/infer.h"

#include <algorithm>

#include "ir/quant.h"
#include "support/error.h"

namespace moat::ir {

namespace {

const TensorType& operand(const Graph& graph, const Node& node, size_t i) {
  return graph.node(node.operands[i]).type;
}

void check_attrs(const Node& node) {
  auto specs = op_attr_specs(node.op, node.operands.size());
  for (const AttrSpec& spec : specs) {
    auto it = node.attrs.find(std::string(spec.name));
    if (it == node.attrs.end()) user_error("missing attribute ", spec.name);
    if (attr_kind(it->second) != spec.kind)
      user_error("attribute ", spec.name, " must be a ", attr_kind_name(spec.kind), ", got a ",
                 attr_kind_name(attr_kind(it->second)));
  }
  for (const auto& attr : node.attrs) {
    const std::string& key = attr.first;
    bool known = std::any_of(specs.begin(), specs.end(), [&key](const AttrSpec& s) { return s.name == key; });
    if (!known) user_error("unknown attribute ", key, " for ", op_name(node.op));
  }
}

bool is_plain_float(DType t) { return is_float(t) && t != DType::f8_e4m3; }
bool is_index(DType t) { return t == DType::i32 || t == DType::i64; }

void require(bool ok, const std::string& message) {
  if (!ok) throw UserError(message);
}

// Dims equal: same static value or same symbol.
bool same_dim(const Dim& a, const Dim& b) { return a == b; }

TensorType infer_source(const Node& node) {
  const TensorType& t = node.type;
  switch (node.op) {
    case Op::input:
    case Op::param:
      require(!attr_string(node, "name").empty(), "name must not be empty");
      return t;
    case Op::constant: {
      require(!is_quantised(t.dtype), "a constant cannot be quantised");
      size_t n = attr_floats(node, "value").size();
      if (n != 1) {
        require(is_static(t.shape), "a constant with more than one value needs a static shape");
        require(static_elems(t.shape) == static_cast<int64_t>(n),
                cat("constant has ", n, " values for shape ", to_string(t.shape)));
      }
      return t;
    }
    case Op::iota:
      require(t.shape.size() == 1, "iota is 1-D");
      require(is_index(t.dtype) || is_plain_float(t.dtype), "iota must be i32, i64 or a float type");
      return t;
    default:
      break;
  }
  throw InternalError("not a source op");
}

TensorType infer_elementwise(const Graph& graph, const Node& node) {
  const TensorType& a = operand(graph, node, 0);
  for (size_t i = 0; i < node.operands.size(); ++i)
    require(!is_quantised(operand(graph, node, i).dtype) && operand(graph, node, i).dtype != DType::f8_e4m3,
            cat("operand ", i, " is ", dtype_name(operand(graph, node, i).dtype),
                ": cast quantised tensors to a float type first"));
  switch (op_kind(node.op)) {
    case OpKind::Unary:
      if (node.op == Op::neg || node.op == Op::abs)
        require(a.dtype != DType::boolean, "neg/abs of bool");
      else
        require(is_plain_float(a.dtype), cat(op_name(node.op), " needs a float operand, got ", dtype_name(a.dtype)));
      return a;
    case OpKind::Binary: {
      const TensorType& b = operand(graph, node, 1);
      require(a.dtype == b.dtype, cat("operand dtypes differ: ", dtype_name(a.dtype), " and ", dtype_name(b.dtype)));
      auto shape = broadcast_shapes(a.shape, b.shape);
      require(shape.has_value(), cat("shapes ", to_string(a.shape), " and ", to_string(b.shape), " do not broadcast"));
      bool compare = node.op == Op::cmp_lt || node.op == Op::cmp_le || node.op == Op::cmp_eq;
      if (!compare) require(a.dtype != DType::boolean, "arithmetic on bool");
      if (node.op == Op::pow) require(is_plain_float(a.dtype), "pow needs float operands");
      return TensorType{compare ? DType::boolean : a.dtype, *shape};
    }
    case OpKind::Ternary: {
      const TensorType& b = operand(graph, node, 1);
      const TensorType& c = operand(graph, node, 2);
      require(a.dtype == DType::boolean, "select's condition must be bool");
      require(b.dtype == c.dtype, "select's branches have different dtypes");
      auto shape = broadcast_shapes(a.shape, b.shape);
      if (shape) shape = broadcast_shapes(*shape, c.shape);
      require(shape.has_value(), "select's operands do not broadcast");
      return TensorType{b.dtype, *shape};
    }
    default:
      break;
  }
  throw InternalError("not an elementwise op");
}

TensorType infer_reduce(const Graph& graph, const Node& node) {
  TensorType t = operand(graph, node, 0);
  require(is_plain_float(t.dtype) || is_int(t.dtype), "reductions need a float or integer operand");
  int64_t axis = normalise_axis(attr_int(node, "axis"), t.shape.size());
  t.shape[static_cast<size_t>(axis)] = Dim::of(1);
  return t;
}

TensorType infer_matmul(const Graph& graph, const Node& node) {
  const TensorType& a = operand(graph, node, 0);
  const TensorType& b = operand(graph, node, 1);
  bool b_transposed = attr_bool(node, "b_transposed");
  require(is_plain_float(a.dtype) || is_activation_dtype(a.dtype),
          cat("A must be f32, f16, bf16, q8_0 or q8_k (quantised activations), got ", dtype_name(a.dtype)));
  require(is_float(b.dtype) || is_quantised(b.dtype), cat("B must be a float or quantised type, got ", dtype_name(b.dtype)));
  require(a.shape.size() >= 2 && b.shape.size() >= 2, "A and B need at least 2 dimensions");
  bool blocked_b = is_quantised(b.dtype) || b.dtype == DType::f8_e4m3;
  if (blocked_b) require(b_transposed, cat("a ", dtype_name(b.dtype), " B must be [..., N, K] (b_transposed = true)"));
  size_t ra = a.shape.size(), rb = b.shape.size();
  const Dim& m = a.shape[ra - 2];
  const Dim& ka = a.shape[ra - 1];
  const Dim& kb = b_transposed ? b.shape[rb - 1] : b.shape[rb - 2];
  const Dim& n = b_transposed ? b.shape[rb - 2] : b.shape[rb - 1];
  require(same_dim(ka, kb), cat("inner dimensions differ: A is ", to_string(a.shape), ", B is ", to_string(b.shape)));
  if (is_quantised(b.dtype))
    require(kb.is_static() && kb.value % dtype_block_elems(b.dtype) == 0,
            cat("K = ", to_string(kb), " is not a multiple of the ", dtype_name(b.dtype), " block size ",
                dtype_block_elems(b.dtype)));
  Shape batch_a(a.shape.begin(), a.shape.end() - 2), batch_b(b.shape.begin(), b.shape.end() - 2);
  auto batch = broadcast_shapes(batch_a, batch_b);
  require(batch.has_value(), cat("batch dimensions ", to_string(batch_a), " and ", to_string(batch_b), " do not broadcast"));
  if (node.operands.size() == 3) {
    require(b.dtype == DType::f8_e4m3, "block scales (a third operand) are only for f8_e4m3 B");
    const TensorType& s = operand(graph, node, 2);
    const auto& block = attr_ints(node, "block");
    require(block.size() == 2 && block[0] > 0 && block[1] > 0, "block must be [rows, cols], both positive");
    require(s.dtype == DType::f32, "block scales must be f32");
    require(n.is_static() && kb.is_static(), "f8_e4m3 B needs static N and K");
    Shape expected(b.shape.begin(), b.shape.end() - 2);
    expected.push_back(Dim::of((n.value + block[0] - 1) / block[0]));
    expected.push_back(Dim::of((kb.value + block[1] - 1) / block[1]));
    require(s.shape == expected, cat("block scales are ", to_string(s.shape), ", expected ", to_string(expected)));
  } else {
    require(b.dtype != DType::f8_e4m3, "an f8_e4m3 B needs its block scales as a third operand");
  }
  Shape out = *batch;
  out.push_back(m);
  out.push_back(n);
  return TensorType{is_activation_dtype(a.dtype) ? DType::f32 : a.dtype, out};
}

TensorType infer_gather(const Graph& graph, const Node& node) {
  const TensorType& x = operand(graph, node, 0);
  const TensorType& idx = operand(graph, node, 1);
  require(is_index(idx.dtype), cat("indices must be i32 or i64, got ", dtype_name(idx.dtype)));
  if (node.op == Op::gather) {
    require(!x.shape.empty(), "gather needs a table of at least one dimension");
    Shape out = idx.shape;
    out.insert(out.end(), x.shape.begin() + 1, x.shape.end());
    if (is_quantised(x.dtype)) require(x.shape.size() >= 2, "a quantised table needs rows of blocks");
    return TensorType{x.dtype, out};
  }
  require(!is_quantised(x.dtype), "take_along on a quantised tensor");
  require(!x.shape.empty() && x.shape.size() == idx.shape.size(), "take_along: x and indices need the same rank");
  for (size_t i = 0; i + 1 < x.shape.size(); ++i)
    require(same_dim(x.shape[i], idx.shape[i]), cat("take_along: leading dimensions differ: ", to_string(x.shape),
                                                    " and ", to_string(idx.shape)));
  Shape out = x.shape;
  out.back() = idx.shape.back();
  return TensorType{x.dtype, out};
}

TensorType infer_update(const Graph& graph, const Node& node) {
  const TensorType& dst = operand(graph, node, 0);
  const TensorType& rows = operand(graph, node, 1);
  const TensorType& at = operand(graph, node, 2);
  require(is_index(at.dtype), cat("write_rows: indices must be i32 or i64, got ", dtype_name(at.dtype)));
  require(!dst.shape.empty() && rows.shape.size() == dst.shape.size(), "write_rows: rows need dst's rank");
  require(rows.dtype == dst.dtype, cat("write_rows: rows are ", dtype_name(rows.dtype), ", dst is ", dtype_name(dst.dtype)));
  if (is_quantised(dst.dtype)) {  // whole blocks per row: a row is a byte range
    const Dim& last = dst.shape.back();
    require(dst.shape.size() >= 2 && last.is_static() && last.value % dtype_block_elems(dst.dtype) == 0,
            cat("write_rows into ", dtype_name(dst.dtype), " needs rows of whole blocks, got ", to_string(dst.shape)));
  }
  for (size_t i = 1; i < dst.shape.size(); ++i)
    require(same_dim(dst.shape[i], rows.shape[i]), cat("write_rows: row shapes differ: ", to_string(dst.shape), " and ",
                                                       to_string(rows.shape)));
  require(at.shape.size() == 1 && same_dim(at.shape[0], rows.shape[0]),
          cat("write_rows: one index per row, got ", to_string(at.shape), " for ", to_string(rows.shape)));
  return dst;
}

// Sorted symbols of a shape, and the product of its static dims.
std::vector<std::string> symbols_of(const Shape& shape) {
  std::vector<std::string> out;
  for (const Dim& d : shape)
    if (!d.is_static()) out.push_back(d.symbol);
  std::sort(out.begin(), out.end());
  return out;
}

TensorType infer_view(const Graph& graph, const Node& node) {
  const TensorType& x = operand(graph, node, 0);
  switch (node.op) {
    case Op::reshape: {
      const TensorType& t = node.type;
      require(t.dtype == x.dtype, "reshape keeps the dtype");
      require(static_elems(t.shape) == static_elems(x.shape) && symbols_of(t.shape) == symbols_of(x.shape),
              cat("cannot reshape ", to_string(x.shape), " to ", to_string(t.shape), ": element counts differ"));
      if (is_quantised(x.dtype))
        require(!t.shape.empty() && !x.shape.empty() && t.shape.back() == x.shape.back(),
                "reshaping a quantised tensor must keep its last (blocked) dimension");
      return t;
    }
    case Op::broadcast: {
      const TensorType& t = node.type;
      require(t.dtype == x.dtype, "broadcast keeps the dtype");
      auto shape = broadcast_shapes(x.shape, t.shape);
      require(shape == t.shape, cat("cannot broadcast ", to_string(x.shape), " to ", to_string(t.shape)));
      return t;
    }
    case Op::permute: {
      const auto& perm = attr_ints(node, "perm");
      require(perm.size() == x.shape.size(), cat("perm has ", perm.size(), " entries for rank ", x.shape.size()));
      std::vector<bool> seen(perm.size(), false);
      Shape out;
      for (int64_t p : perm) {
        require(p >= 0 && static_cast<size_t>(p) < perm.size() && !seen[static_cast<size_t>(p)],
                "perm must be a permutation of 0..rank-1");
        seen[static_cast<size_t>(p)] = true;
        out.push_back(x.shape[static_cast<size_t>(p)]);
      }
      if (is_quantised(x.dtype))
        require(perm.back() == static_cast<int64_t>(perm.size()) - 1, "a quantised tensor's last dimension stays last");
      return TensorType{x.dtype, out};
    }
    case Op::slice: {
      int64_t axis = normalise_axis(attr_int(node, "axis"), x.shape.size());
      const Dim& d = x.shape[static_cast<size_t>(axis)];
      int64_t start = attr_int(node, "start"), end = attr_int(node, "end");
      require(d.is_static(), "slicing a symbolic dimension");
      require(0 <= start && start <= end && end <= d.value,
              cat("slice [", start, ", ", end, ") out of range for a dimension of ", d.value));
      if (is_quantised(x.dtype) && static_cast<size_t>(axis) == x.shape.size() - 1)
        require(start % dtype_block_elems(x.dtype) == 0 && end % dtype_block_elems(x.dtype) == 0,
                "slicing a quantised row must keep whole blocks");
      Shape out = x.shape;
      out[static_cast<size_t>(axis)] = Dim::of(end - start);
      return TensorType{x.dtype, out};
    }
    case Op::concat: {
      int64_t axis = normalise_axis(attr_int(node, "axis"), x.shape.size());
      require(!is_quantised(x.dtype), "concat of quantised tensors");
      int64_t total = 0;
      for (size_t i = 0; i < node.operands.size(); ++i) {
        const TensorType& t = operand(graph, node, i);
        require(t.dtype == x.dtype && t.shape.size() == x.shape.size(), "concat operands differ in dtype or rank");
        for (size_t d = 0; d < t.shape.size(); ++d) {
          if (static_cast<int64_t>(d) == axis) {
            require(t.shape[d].is_static(), "concat along a symbolic dimension");
            total += t.shape[d].value;
          } else {
            require(same_dim(t.shape[d], x.shape[d]),
                    cat("concat operand ", i, " is ", to_string(t.shape), ", operand 0 is ", to_string(x.shape)));
          }
        }
      }
      Shape out = x.shape;
      out[static_cast<size_t>(axis)] = Dim::of(total);
      return TensorType{x.dtype, out};
    }
    default:
      break;
  }
  throw InternalError("not a view op");
}

TensorType infer_composite(const Graph& graph, const Node& node) {
  const TensorType& x = operand(graph, node, 0);
  auto require_float = [&](const TensorType& t, const char* what) {
    require(is_plain_float(t.dtype), cat(what, " must be f32, f16 or bf16, got ", dtype_name(t.dtype)));
  };
  require_float(x, "the input");
  require(!x.shape.empty(), "the input needs at least one dimension");
  switch (node.op) {
    case Op::softmax:
      return x;
    case Op::rms_norm: {
      const TensorType& w = operand(graph, node, 1);
      require_float(w, "the weight");
      require(w.shape.size() == 1 && same_dim(w.shape[0], x.shape.back()),
              cat("weight ", to_string(w.shape), " does not match the rows of ", to_string(x.shape)));
      return x;
    }
    case Op::rope: {
      const TensorType& pos = operand(graph, node, 1);
      require(x.shape.size() >= 3, "rope input is [..., T, H, D]");
      require(pos.dtype == DType::i32 && pos.shape.size() == 1 && same_dim(pos.shape[0], x.shape[x.shape.size() - 3]),
              cat("positions must be i32[T] for input ", to_string(x.shape), ", got ", to_string(pos)));
      int64_t n_dims = attr_int(node, "n_dims");
      const Dim& d = x.shape.back();
      require(d.is_static() && n_dims > 0 && n_dims % 2 == 0 && n_dims <= d.value,
              cat("n_dims = ", n_dims, " must be even and at most the head size ", to_string(d)));
      return x;
    }
    case Op::attention: {
      const TensorType& k = operand(graph, node, 1);
      const TensorType& v = operand(graph, node, 2);
      const TensorType& pos = operand(graph, node, 3);
      for (const auto& [t, what] : {std::pair{&k, "k"}, std::pair{&v, "v"}})  // a q8_0 cache is decoded
        if (t->dtype != DType::q8_0) require_float(*t, what);
      require(x.shape.size() == 3 && k.shape.size() == 3 && v.shape.size() == 3,
              "attention takes q [T, H, Dk], k [S, Hkv, Dk], v [S, Hkv, Dv]");
      require(same_dim(x.shape[2], k.shape[2]), "q and k head sizes differ");
      require(same_dim(k.shape[0], v.shape[0]) && same_dim(k.shape[1], v.shape[1]), "k and v disagree on [S, Hkv]");
      const Dim& h = x.shape[1];
      const Dim& hkv = k.shape[1];
      require(h.is_static() && hkv.is_static() && hkv.value > 0 && h.value % hkv.value == 0,
              "the number of query heads must be a multiple of the number of kv heads");
      require(pos.dtype == DType::i32 && pos.shape.size() == 1 && same_dim(pos.shape[0], x.shape[0]),
              "query positions must be i32[T]");
      require(!attr_bool(node, "sinks") || node.operands.size() > 4, "attention with sinks needs the sinks operand");
      const AttentionOperands at = attention_operands(node);
      if (at.key_starts >= 0) {
        const TensorType& start = operand(graph, node, static_cast<size_t>(at.key_starts));
        require(start.dtype == DType::i32 && start.shape.size() == 1 && same_dim(start.shape[0], x.shape[0]),
                "key starts must be i32[T]");
      }
      if (at.key_bias >= 0) {
        const TensorType& bias = operand(graph, node, static_cast<size_t>(at.key_bias));
        require(bias.dtype == DType::f32 && bias.shape.size() == 2 && same_dim(bias.shape[0], x.shape[0]) &&
                    same_dim(bias.shape[1], k.shape[0]),
                "the key bias must be f32[T, S]");
      }
      if (at.sinks >= 0) {
        const TensorType& sinks = operand(graph, node, static_cast<size_t>(at.sinks));
        require(sinks.dtype == DType::f32 && sinks.shape == Shape{h}, "the sinks must be f32[H], one per query head");
      }
      return TensorType{x.dtype, Shape{x.shape[0], h, v.shape[2]}};
    }
    case Op::moe: {
      // x [T, D], router [E, D], gate/up [E, F, D], down [E, D, F], bias [E]
      const TensorType& router = operand(graph, node, 1);
      const TensorType& gate = operand(graph, node, 2);
      const TensorType& up = operand(graph, node, 3);
      const TensorType& down = operand(graph, node, 4);
      require(x.shape.size() == 2, "moe input is [T, D]");
      const Dim& dm = x.shape[1];
      require(router.shape.size() == 2 && router.shape[1] == dm && router.shape[0].is_static(), "router is [E, D]");
      const Dim& e = router.shape[0];
      require(gate.shape.size() == 3 && gate.shape[0] == e && gate.shape[2] == dm, "expert gate weights are [E, F, D]");
      require(up.shape == gate.shape && up.dtype == gate.dtype, "expert up weights must match the gate weights");
      require(down.shape.size() == 3 && down.shape[0] == e && down.shape[1] == dm && down.shape[2] == gate.shape[1],
              "expert down weights are [E, D, F]");
      int64_t n_used = attr_int(node, "n_used"), groups = attr_int(node, "n_groups"),
              topk_groups = attr_int(node, "topk_groups");
      const std::string& scoring = attr_string(node, "scoring");
      const std::string& method = attr_string(node, "method");
      if (node.operands.size() == 6 && method == "given") {
        const TensorType& experts = operand(graph, node, 5);
        require(experts.dtype == DType::i32 && experts.shape.size() == 2 && same_dim(experts.shape[0], x.shape[0]) &&
                    experts.shape[1] == Dim::of(n_used),
                "the given experts are i32[T, n_used]");
      } else if (node.operands.size() == 6) {
        const TensorType& bias = operand(graph, node, 5);
        require(bias.dtype == DType::f32 && bias.shape == Shape{e}, "the score-correction bias is f32[E]");
      }
      require(scoring == "softmax" || scoring == "sigmoid" || scoring == "sqrtsoftplus",
              cat("scoring must be softmax, sigmoid or sqrtsoftplus, got ", scoring));
      require(method == "greedy" || method == "group_limited_greedy" || method == "noaux_tc" || method == "given",
              cat("method must be greedy, group_limited_greedy, noaux_tc or given, got ", method));
      require(method != "given" || node.operands.size() == 6, "method given needs the experts i32[T, n_used] operand");
      require(attr_float(node, "swiglu_limit") >= 0, "swiglu_limit must be >= 0 (0: no clamp)");
      require(method != "noaux_tc" || node.operands.size() == 6, "noaux_tc needs the score-correction bias");
      require(groups >= 1 && e.value % groups == 0, cat("n_groups = ", groups, " must divide E = ", e.value));
      require(topk_groups >= 1 && topk_groups <= groups, "topk_groups must be in 1..n_groups");
      require(n_used >= 1 && n_used <= e.value / groups * topk_groups, "n_used must be in 1..(experts in the kept groups)");
      return x;
    }
    default:
      break;
  }
  throw InternalError("not a composite op");
}

}  // namespace

int64_t normalise_axis(int64_t axis, size_t rank) {
  int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) user_error("axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + r : axis;
}

std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const Dim* da = i < a.size() ? &a[a.size() - 1 - i] : nullptr;
    const Dim* db = i < b.size() ? &b[b.size() - 1 - i] : nullptr;
    Dim& o = out[rank - 1 - i];
    if (!da) o = *db;
    else if (!db) o = *da;
    else if (*da == *db) o = *da;
    else if (da->is_one()) o = *db;
    else if (db->is_one()) o = *da;
    else return std::nullopt;
  }
  return out;
}

TensorType infer_type(const Graph& graph, const Node& node) {
  int n = static_cast<int>(node.operands.size());
  if (n < op_min_operands(node.op) || n > op_max_operands(node.op))
    user_error(op_name(node.op), " takes ", op_min_operands(node.op),
               op_max_operands(node.op) == op_min_operands(node.op) ? "" : " or more", " operands, got ", n);
  for (NodeId id : node.operands)
    if (id < 0 || static_cast<size_t>(id) >= graph.nodes.size()) user_error("operand %", id, " is not defined before use");
  check_attrs(node);
  switch (op_kind(node.op)) {
    case OpKind::Source: return infer_source(node);
    case OpKind::Unary:
    case OpKind::Binary:
    case OpKind::Ternary: return infer_elementwise(graph, node);
    case OpKind::Reduce: return infer_reduce(graph, node);
    case OpKind::Matmul: return infer_matmul(graph, node);
    case OpKind::Gather: return infer_gather(graph, node);
    case OpKind::Update: return infer_update(graph, node);
    case OpKind::View: return infer_view(graph, node);
    case OpKind::Cast: {
      const TensorType& x = operand(graph, node, 0);
      require(node.type.shape == x.shape, "cast keeps the shape");
      if (is_quantised(node.type.dtype)) {  // activation quantisation (ir/quant.h)
        require(is_activation_dtype(node.type.dtype) && is_plain_float(x.dtype),
                cat("only a float tensor can be cast to a quantised type, and only to q8_0 or q8_k (got ",
                    dtype_name(x.dtype), " to ", dtype_name(node.type.dtype), ")"));
        const Dim& last = x.shape.empty() ? Dim::of(0) : x.shape.back();
        const int64_t block = dtype_block_elems(node.type.dtype);
        require(!x.shape.empty() && last.is_static() && last.value % block == 0,
                cat("a cast to ", dtype_name(node.type.dtype), " needs a static last dimension that is a multiple of ",
                    block, ", got ", to_string(x.shape)));
      }
      require(!is_quantised(x.dtype) || !is_quantised(node.type.dtype), "a cast between quantised types");
      return node.type;
    }
    case OpKind::TopK: {
      const TensorType& x = operand(graph, node, 0);
      const std::string name(op_name(node.op));
      require(is_float(x.dtype) && x.dtype != DType::f8_e4m3, name + " needs a float operand");
      require(!x.shape.empty(), name + " needs at least one dimension");
      int64_t k = attr_int(node, "k");
      const Dim& last = x.shape.back();
      require(k >= 1 && (!last.is_static() || k <= last.value), cat("k = ", k, " out of range for ", to_string(x.shape)));
      Shape out = x.shape;
      out.back() = Dim::of(node.op == Op::topk ? k : 1);
      return TensorType{node.op == Op::topk ? DType::i32 : x.dtype, out};
    }
    case OpKind::Composite: return infer_composite(graph, node);
  }
  throw InternalError("unknown op kind");
}

}  // namespace moat::ir
