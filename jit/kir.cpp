// Kernel IR construction helpers with operand type checks (a mismatch is a lowering
// bug: InternalError naming the node).
#include "jit/kir.h"

#include "jit/block_formats.h"
#include "support/error.h"

namespace moat::jit {

bool is_float(Scalar s) {
  return s == Scalar::f32 || s == Scalar::f64 || s == Scalar::f16 || s == Scalar::bf16 || s == Scalar::f8;
}
bool is_signed(Scalar s) { return s == Scalar::i64 || s == Scalar::i32 || s == Scalar::i8; }

int scalar_bits(Scalar s) {
  switch (s) {
    case Scalar::f32: case Scalar::i32: return 32;
    case Scalar::f16: case Scalar::bf16: return 16;
    case Scalar::f8: case Scalar::i8: case Scalar::u8: return 8;
    case Scalar::i64: case Scalar::f64: return 64;
    case Scalar::i1: return 1;
  }
  return 0;
}

std::string_view scalar_name(Scalar s) {
  switch (s) {
    case Scalar::f32: return "f32";
    case Scalar::f16: return "f16";
    case Scalar::bf16: return "bf16";
    case Scalar::f8: return "f8";
    case Scalar::i64: return "i64";
    case Scalar::i32: return "i32";
    case Scalar::i8: return "i8";
    case Scalar::u8: return "u8";
    case Scalar::i1: return "i1";
    case Scalar::f64: return "f64";
  }
  return "?";
}

std::string type_name(Type t) {
  std::string s(scalar_name(t.scalar));
  if (t.lanes != 1) s += "x" + std::to_string(t.lanes);
  return s;
}

Scalar storage_scalar(ir::DType d) {
  switch (d) {
    case ir::DType::f32: return Scalar::f32;
    case ir::DType::f16: return Scalar::f16;
    case ir::DType::bf16: return Scalar::bf16;
    case ir::DType::f8_e4m3: return Scalar::f8;
    case ir::DType::i64: return Scalar::i64;
    case ir::DType::i32: return Scalar::i32;
    case ir::DType::i8: return Scalar::i8;
    default: return Scalar::u8;  // u8, bool, quantised blocks
  }
}

std::string_view unary_name(UnaryOp op) {
  static constexpr std::string_view names[] = {"neg", "abs", "exp", "log", "sqrt", "rsqrt",
                                               "recip", "sin", "cos", "tanh", "not", "isnan", "rint"};
  return names[static_cast<int>(op)];
}
std::string_view binary_name(BinaryOp op) {
  static constexpr std::string_view names[] = {"add", "sub", "mul", "div", "rem", "min", "max", "pow",
                                               "and", "or", "shl", "shr", "mulhi", "lt", "le", "eq", "ne"};
  return names[static_cast<int>(op)];
}
std::string_view reduce_name(ReduceOp op) {
  static constexpr std::string_view names[] = {"add", "max", "min"};
  return names[static_cast<int>(op)];
}
std::string_view builtin_name(Builtin b) {
  static constexpr std::string_view names[] = {"group_id", "item_id", "num_groups", "group_size"};
  return names[static_cast<int>(b)];
}
bool is_comparison(BinaryOp op) { return op >= BinaryOp::lt; }

std::string_view node_kind_name(NodeKind kind) {
  switch (kind) {
#define MOAT_X(name, stmt) \
  case NodeKind::name: return #name;
    MOAT_KIR_NODES(MOAT_X)
#undef MOAT_X
  }
  return "?";
}

bool is_statement(NodeKind kind) {
  switch (kind) {
#define MOAT_X(name, stmt) \
  case NodeKind::name: return stmt;
    MOAT_KIR_NODES(MOAT_X)
#undef MOAT_X
  }
  return false;
}

int Kernel::add_buffer(BufferDecl decl) {
  buffers.push_back(std::move(decl));
  int index = static_cast<int>(buffers.size()) - 1;
  if (buffers.back().space == Space::global) params.push_back({true, index});
  return index;
}

int Kernel::add_scalar(ScalarDecl decl) {
  MOAT_INTERNAL_CHECK(decl.scalar == Scalar::i64 || decl.scalar == Scalar::f32, "scalar parameters are i64 or f32");
  scalars.push_back(std::move(decl));
  int index = static_cast<int>(scalars.size()) - 1;
  params.push_back({false, index});
  return index;
}

int Kernel::add_table(TableDecl decl) {
  for (size_t t = 0; t < tables.size(); ++t) {
    if (tables[t].name != decl.name) continue;
    MOAT_INTERNAL_CHECK(tables[t] == decl, "kernel ", name, ": table ", decl.name, " is declared twice, differently");
    return static_cast<int>(t);
  }
  const Scalar s = decl.scalar;
  MOAT_INTERNAL_CHECK(s == Scalar::i8 || s == Scalar::u8 || s == Scalar::i32 || s == Scalar::i64, "kernel ", name,
                      ": table ", decl.name, " of ", scalar_name(s), " (tables hold i8, u8, i32 or i64)");
  tables.push_back(std::move(decl));
  return static_cast<int>(tables.size()) - 1;
}

namespace {

NodeRef make(Node n) { return std::make_shared<const Node>(std::move(n)); }

void expect(bool ok, NodeKind kind, const std::string& what) {
  MOAT_INTERNAL_CHECK(ok, "kernel IR ", node_kind_name(kind), ": ", what);
}

}  // namespace

NodeRef constant(Type t, double v) {
  Node n{.kind = NodeKind::constant, .type = t};
  if (is_float(t.scalar)) n.f = v;
  else n.i = static_cast<int64_t>(v);
  return make(std::move(n));
}
NodeRef c_i64(int64_t v) { return make(Node{.kind = NodeKind::constant, .type = kI64, .i = v}); }
NodeRef c_i32(int64_t v) { return make(Node{.kind = NodeKind::constant, .type = kI32, .i = v}); }
NodeRef c_f32(double v) { return make(Node{.kind = NodeKind::constant, .type = kF32, .f = v}); }
NodeRef c_f64(double v) { return make(Node{.kind = NodeKind::constant, .type = {Scalar::f64, 1}, .f = v}); }
NodeRef c_bool(bool v) { return make(Node{.kind = NodeKind::constant, .type = kBool, .i = v ? 1 : 0}); }

NodeRef scalar_arg(const Kernel& k, int index) {
  expect(index >= 0 && index < static_cast<int>(k.scalars.size()), NodeKind::scalar_arg, "no such scalar");
  return make(Node{.kind = NodeKind::scalar_arg, .type = {k.scalars[index].scalar, 1}, .i = index});
}

NodeRef ref(std::string name, Type t) { return make(Node{.kind = NodeKind::ref, .type = t, .name = std::move(name)}); }

NodeRef bounded_ref(std::string name, int64_t lo, int64_t hi) {
  return make(Node{.kind = NodeKind::ref, .type = kI64, .name = std::move(name), .range_lo = lo, .range_hi = hi});
}

NodeRef builtin(Builtin b, int dim) {
  expect(dim >= 0 && dim < 3, NodeKind::builtin, "dimension out of range");
  return make(Node{.kind = NodeKind::builtin, .type = kI64, .op = static_cast<uint8_t>(b), .i = dim});
}

NodeRef unary(UnaryOp op, NodeRef x) {
  Type t = x->type;
  if (op == UnaryOp::lnot) expect(t.scalar == Scalar::i1, NodeKind::unary, "not takes i1");
  else if (op == UnaryOp::isnan) {
    expect(t.scalar == Scalar::f32 || t.scalar == Scalar::f64, NodeKind::unary, "isnan takes f32 or f64");
    t.scalar = Scalar::i1;
  } else if (op == UnaryOp::rint) {
    expect(t.scalar == Scalar::f32 || t.scalar == Scalar::f64, NodeKind::unary, "rint takes f32 or f64");
  } else if (op != UnaryOp::neg && op != UnaryOp::abs) {
    expect(t.scalar == Scalar::f32, NodeKind::unary, std::string(unary_name(op)) + " takes f32, got " + type_name(t));
  }
  return make(Node{.kind = NodeKind::unary, .type = t, .op = static_cast<uint8_t>(op), .args = {std::move(x)}});
}

NodeRef binary(BinaryOp op, NodeRef a, NodeRef b) {
  expect(a->type == b->type, NodeKind::binary,
         std::string(binary_name(op)) + " of " + type_name(a->type) + " and " + type_name(b->type));
  Type t = a->type;
  if (is_comparison(op)) t.scalar = Scalar::i1;
  if (op == BinaryOp::pow) expect(t.scalar == Scalar::f32, NodeKind::binary, "pow takes f32");
  if (op == BinaryOp::land || op == BinaryOp::lor || op == BinaryOp::shl || op == BinaryOp::shr)
    expect(!is_float(t.scalar), NodeKind::binary, "bit operations take integers");
  if (op == BinaryOp::mulhi) expect(t == kI32, NodeKind::binary, "mulhi takes i32");
  return make(Node{.kind = NodeKind::binary, .type = t, .op = static_cast<uint8_t>(op), .args = {std::move(a), std::move(b)}});
}

NodeRef fma(NodeRef a, NodeRef b, NodeRef c) {
  expect(a->type == b->type && b->type == c->type && (a->type.scalar == Scalar::f32 || a->type.scalar == Scalar::f64),
         NodeKind::fma, "operands are one f32 or f64 type");
  Type t = a->type;
  return make(Node{.kind = NodeKind::fma, .type = t, .args = {std::move(a), std::move(b), std::move(c)}});
}

NodeRef select(NodeRef cond, NodeRef a, NodeRef b) {
  expect(a->type == b->type, NodeKind::select, "branches differ: " + type_name(a->type) + " vs " + type_name(b->type));
  expect(cond->type.scalar == Scalar::i1 && (cond->type.lanes == 1 || cond->type.lanes == a->type.lanes),
         NodeKind::select, "condition must be i1 (scalar or one per lane)");
  Type t = a->type;
  return make(Node{.kind = NodeKind::select, .type = t, .args = {std::move(cond), std::move(a), std::move(b)}});
}

NodeRef cast(Type to, NodeRef x) {
  expect(to.lanes == x->type.lanes, NodeKind::cast, "lane counts differ");
  if (to == x->type) return x;
  return make(Node{.kind = NodeKind::cast, .type = to, .args = {std::move(x)}});
}

NodeRef bitcast(Type to, NodeRef x) {
  expect(to.lanes == x->type.lanes, NodeKind::bitcast, "lane counts differ");
  const Scalar a = x->type.scalar, b = to.scalar;
  const bool f32_bits = (a == Scalar::f32 && b == Scalar::i32) || (a == Scalar::i32 && b == Scalar::f32) ||
                        (a == Scalar::f64 && b == Scalar::i64) || (a == Scalar::i64 && b == Scalar::f64);
  auto narrow = [](Scalar s) { return s == Scalar::f16 || s == Scalar::bf16 || s == Scalar::f8; };
  const bool narrow_bits = (narrow(a) && b == Scalar::i32) || (a == Scalar::i32 && narrow(b));
  expect(f32_bits || narrow_bits, NodeKind::bitcast, type_name(x->type) + " to " + type_name(to));
  return make(Node{.kind = NodeKind::bitcast, .type = to, .args = {std::move(x)}});
}

NodeRef broadcast(NodeRef x, int lanes) {
  expect(x->type.lanes == 1, NodeKind::broadcast, "takes a scalar");
  if (lanes == 1) return x;
  Type t = x->type.with_lanes(lanes);
  return make(Node{.kind = NodeKind::broadcast, .type = t, .args = {std::move(x)}});
}

NodeRef extract(NodeRef x, NodeRef lane) {
  expect(lane->type == kI64, NodeKind::extract, "lane must be i64");
  if (x->type.lanes == 1) return x;
  Type t = x->type.with_lanes(1);
  return make(Node{.kind = NodeKind::extract, .type = t, .args = {std::move(x), std::move(lane)}});
}

NodeRef concat(NodeRef a, NodeRef b) {
  expect(a->type == b->type, NodeKind::concat, "operands differ: " + type_name(a->type) + " vs " + type_name(b->type));
  const Type t = a->type.with_lanes(a->type.lanes + b->type.lanes);
  expect(t.lanes <= 64, NodeKind::concat, "more than 64 lanes");
  return make(Node{.kind = NodeKind::concat, .type = t, .args = {std::move(a), std::move(b)}});
}

NodeRef reduce(ReduceOp op, NodeRef x) {
  if (x->type.lanes == 1) return x;
  Type t = x->type.with_lanes(1);
  return make(Node{.kind = NodeKind::reduce, .type = t, .op = static_cast<uint8_t>(op), .args = {std::move(x)}});
}

NodeRef subgroup_reduce(ReduceOp op, NodeRef x, int cluster) {
  expect(cluster >= 0 && (cluster & (cluster - 1)) == 0, NodeKind::subgroup_reduce, "clusters are a power of two lanes");
  Type t = x->type;
  return make(Node{.kind = NodeKind::subgroup_reduce, .type = t, .op = static_cast<uint8_t>(op), .i = cluster, .args = {std::move(x)}});
}

NodeRef dot4_words(NodeRef acc, NodeRef a, NodeRef b) {
  expect(acc->type == kI32 && a->type == kI32 && b->type == kI32, NodeKind::dot4_words, "operands are i32");
  return make(Node{.kind = NodeKind::dot4_words, .type = kI32, .args = {std::move(acc), std::move(a), std::move(b)}});
}

std::string lane_name(const std::string& name, int lane) { return name + "_l" + std::to_string(lane); }

NodeRef load_vector(const Kernel& k, std::string name, int buffer, NodeRef index, Type t) {
  expect(buffer >= 0 && buffer < static_cast<int>(k.buffers.size()), NodeKind::load_vector, "no such buffer");
  expect(k.buffers[buffer].space == Space::global && !k.buffers[buffer].written, NodeKind::load_vector,
         "reads a global buffer the kernel does not write");
  expect(index->type == kI64, NodeKind::load_vector, "index must be i64");
  expect((t.scalar == Scalar::i32 || t.scalar == Scalar::f32) && (t.lanes == 2 || t.lanes == 4), NodeKind::load_vector,
         "loads 2 or 4 lanes of i32 / f32, not " + type_name(t));
  expect(accessible_as(k.buffers[buffer].dtype, t.scalar), NodeKind::load_vector,
         type_name(t) + " from a " + std::string(ir::dtype_name(k.buffers[buffer].dtype)) + " buffer");
  return make(Node{.kind = NodeKind::load_vector, .type = t, .i = buffer, .name = std::move(name), .args = {std::move(index)}});
}

NodeRef load(const Kernel& k, int buffer, NodeRef index, int lanes) {
  expect(buffer >= 0 && buffer < static_cast<int>(k.buffers.size()), NodeKind::load, "no such buffer");
  return load_as(k, buffer, std::move(index), {storage_scalar(k.buffers[buffer].dtype), lanes});
}

bool accessible_as(ir::DType buffer, Scalar s) {
  if (s == storage_scalar(buffer)) return true;
  if (s == Scalar::i32 && (buffer == ir::DType::u8 || buffer == ir::DType::f16 || buffer == ir::DType::bf16)) return true;  // as words
  return ir::is_quantised(buffer) && (s == Scalar::u8 || s == Scalar::i8 || s == Scalar::f16 || s == Scalar::f32 || s == Scalar::i32);
}

NodeRef load_as(const Kernel& k, int buffer, NodeRef index, Type t) {
  expect(buffer >= 0 && buffer < static_cast<int>(k.buffers.size()), NodeKind::load, "no such buffer");
  expect(index->type == kI64, NodeKind::load, "index must be i64");
  expect(accessible_as(k.buffers[buffer].dtype, t.scalar), NodeKind::load,
         type_name(t) + " from a " + std::string(ir::dtype_name(k.buffers[buffer].dtype)) + " buffer");
  return make(Node{.kind = NodeKind::load, .type = t, .i = buffer, .args = {std::move(index)}});
}

NodeRef table_load(const Kernel& k, int table, NodeRef index, int lanes) {
  expect(table >= 0 && table < static_cast<int>(k.tables.size()), NodeKind::table_load, "no such table");
  expect(index->type.scalar == Scalar::i64, NodeKind::table_load, "the index must be i64");
  expect(index->type.lanes == 1 || lanes == 1, NodeKind::table_load, "a vector index gathers one element per lane");
  const Type t{k.tables[table].scalar, index->type.lanes == 1 ? lanes : index->type.lanes};
  return make(Node{.kind = NodeKind::table_load, .type = t, .i = table, .args = {std::move(index)}});
}

NodeRef dequant(const Kernel& k, int buffer, NodeRef block, NodeRef first, int lanes) {
  expect(lanes == 32 || lanes == 1, NodeKind::dequant, "decodes 32 elements or one");
  expect(buffer >= 0 && buffer < static_cast<int>(k.buffers.size()), NodeKind::dequant, "no such buffer");
  expect(ir::is_quantised(k.buffers[buffer].dtype), NodeKind::dequant, "buffer is not block-quantised");
  expect(block->type == kI64 && first->type == kI64, NodeKind::dequant, "block and element must be i64");
  return make(Node{.kind = NodeKind::dequant, .type = {Scalar::f32, lanes}, .i = buffer, .args = {std::move(block), std::move(first)}});
}

NodeRef dot4(NodeRef acc, NodeRef a, NodeRef b) {
  const int n = acc->type.lanes;
  expect(acc->type.scalar == Scalar::i32, NodeKind::dot4, "the accumulator must be i32");
  expect(a->type == Type{Scalar::u8, 4 * n}, NodeKind::dot4, "a must be u8 with 4 lanes per accumulator lane");
  expect(b->type.scalar == Scalar::i8 && (b->type.lanes == 4 * n || b->type.lanes == 4), NodeKind::dot4,
         "b must be i8 with 4 lanes per accumulator lane, or 4 lanes for all");
  Type t = acc->type;
  return make(Node{.kind = NodeKind::dot4, .type = t, .args = {std::move(acc), std::move(a), std::move(b)}});
}

NodeRef qscale(const Kernel& k, int buffer, NodeRef block) {
  expect(buffer >= 0 && buffer < static_cast<int>(k.buffers.size()), NodeKind::qscale, "no such buffer");
  const ir::DType d = k.buffers[buffer].dtype;
  expect(has_integer_form(d), NodeKind::qscale, "buffer has no integer form (q8_0, q4_0, q5_0)");
  expect(block->type == kI64, NodeKind::qscale, "block must be i64");
  return make(Node{.kind = NodeKind::qscale, .type = kF32, .i = buffer, .args = {std::move(block)}});
}

NodeRef qdot(const Kernel& k, int a, NodeRef a_block, int b, NodeRef b_block, int blocks) {
  const int n = static_cast<int>(k.buffers.size());
  expect(a >= 0 && a < n && b >= 0 && b < n, NodeKind::qdot, "no such buffer");
  int lanes_per_block = 8;
  if (k.buffers[a].dtype == ir::DType::q8_k) {
    const BlockFormat* f = find_block_format(k.buffers[b].dtype);
    expect(f != nullptr && f->sub_integers != nullptr, NodeKind::qdot, "a q8_k A needs a B with sub_integers (jit/block_formats.h)");
    expect(blocks == 1 || blocks == 2 || blocks == 4, NodeKind::qdot, "1, 2 or 4 super-blocks");
    lanes_per_block = 16;
  } else {
    expect(k.buffers[a].dtype == ir::DType::q8_0, NodeKind::qdot, "A must be a q8_0 or q8_k buffer");
    expect(has_integer_form(k.buffers[b].dtype), NodeKind::qdot, "B must have an integer form (q8_0, q4_0, q5_0)");
    expect(blocks == 1 || blocks == 2 || blocks == 4 || blocks == 8, NodeKind::qdot, "1, 2, 4 or 8 blocks");
  }
  expect(a_block->type == kI64 && b_block->type == kI64, NodeKind::qdot, "block indices must be i64");
  return make(Node{.kind = NodeKind::qdot, .type = {Scalar::f32, lanes_per_block * blocks}, .i = a, .j = b,
                   .args = {std::move(a_block), std::move(b_block)}});
}

NodeRef block(std::vector<NodeRef> stmts) { return make(Node{.kind = NodeKind::block, .body = std::move(stmts)}); }
NodeRef let(std::string name, NodeRef value) {
  Type t = value->type;
  return make(Node{.kind = NodeKind::let, .type = t, .name = std::move(name), .args = {std::move(value)}});
}
NodeRef var(std::string name, NodeRef init) {
  Type t = init->type;
  return make(Node{.kind = NodeKind::var, .type = t, .name = std::move(name), .args = {std::move(init)}});
}
NodeRef assign(std::string name, NodeRef value) {
  Type t = value->type;
  return make(Node{.kind = NodeKind::assign, .type = t, .name = std::move(name), .args = {std::move(value)}});
}

NodeRef store(const Kernel& k, int buffer, NodeRef index, NodeRef value) {
  expect(buffer >= 0 && buffer < static_cast<int>(k.buffers.size()), NodeKind::store, "no such buffer");
  expect(index->type == kI64, NodeKind::store, "index must be i64");
  Scalar s = storage_scalar(k.buffers[buffer].dtype);
  if (value->type.scalar == Scalar::i1 && s == Scalar::u8) value = cast({Scalar::u8, value->type.lanes}, value);
  expect(accessible_as(k.buffers[buffer].dtype, value->type.scalar), NodeKind::store,
         "value " + type_name(value->type) + " into a " + std::string(ir::dtype_name(k.buffers[buffer].dtype)) + " buffer");
  return make(Node{.kind = NodeKind::store, .i = buffer, .args = {std::move(index), std::move(value)}});
}

NodeRef for_loop(std::string name, NodeRef begin, NodeRef end, NodeRef step, std::vector<NodeRef> body) {
  expect(begin->type == kI64 && end->type == kI64 && step->type == kI64, NodeKind::for_loop, "bounds must be i64");
  return make(Node{.kind = NodeKind::for_loop, .type = kI64, .name = std::move(name),
                   .args = {std::move(begin), std::move(end), std::move(step)}, .body = std::move(body)});
}

NodeRef if_then(NodeRef cond, std::vector<NodeRef> then_body, std::vector<NodeRef> else_body) {
  expect(cond->type == kBool, NodeKind::if_then, "condition must be a scalar i1");
  return make(Node{.kind = NodeKind::if_then, .args = {std::move(cond)}, .body = std::move(then_body),
                   .else_body = std::move(else_body)});
}

NodeRef barrier() { return make(Node{.kind = NodeKind::barrier}); }

NodeRef quantize(const Kernel& k, int buffer, NodeRef block, NodeRef value) {
  expect(buffer >= 0 && buffer < static_cast<int>(k.buffers.size()), NodeKind::quantize, "no such buffer");
  expect(k.buffers[buffer].dtype == ir::DType::q8_0, NodeKind::quantize, "buffer is not q8_0");
  expect(block->type == kI64, NodeKind::quantize, "block must be i64");
  expect(value->type == kF32.with_lanes(32), NodeKind::quantize, "value must be f32x32");
  return make(Node{.kind = NodeKind::quantize, .i = buffer, .args = {std::move(block), std::move(value)}});
}

NodeRef quantize_group(const Kernel& k, int buffer, NodeRef block, NodeRef value, NodeRef group, NodeRef vmax) {
  expect(buffer >= 0 && buffer < static_cast<int>(k.buffers.size()), NodeKind::quantize, "no such buffer");
  expect(k.buffers[buffer].dtype == ir::DType::q8_k, NodeKind::quantize, "buffer is not q8_k");
  expect(block->type == kI64 && group->type == kI64, NodeKind::quantize, "block and group must be i64");
  expect(value->type == kF32.with_lanes(16) && vmax->type == kF32, NodeKind::quantize, "value must be f32x16, vmax f32");
  return make(Node{.kind = NodeKind::quantize, .i = buffer,
                   .args = {std::move(block), std::move(value), std::move(group), std::move(vmax)}});
}

}  // namespace moat::jit
