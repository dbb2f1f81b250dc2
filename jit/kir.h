// Kernel IR: the target-neutral form every emitter renders (LLVM IR, PTX, OpenCL C,
// HIP C++, SPIR-V). A kernel is a list of parameters (buffers and scalars), a launch
// grid of work-groups x work-items, and a body of structured statements over typed
// scalar and short-vector values.
//
// Values are immutable expression trees (shared, so a subexpression may be reused);
// statements bind them to names (`let`, SSA), to mutable variables (`var` / `assign`,
// for loop-carried values such as accumulators), or store them to memory. Control flow
// is structured: `for` loops and `if`. Memory is global (kernel parameters) or
// work-group-local (declared by the kernel, shared by a group's work-items and ordered
// by `barrier`).
//
// Semantics every emitter must keep (the reference interpreter of the Tensor IR is the
// oracle of every lowered kernel):
//   - integer arithmetic is i64 unless a node says otherwise; div / rem truncate; shr of
//     a signed type is arithmetic
//   - float arithmetic is IEEE f32 (f16 / bf16 / f8 values are converted with `cast`;
//     emitters may contract a*b+c only where the node is `fma`; an f64 `fma` is fused,
//     the math rules depend on it)
//   - `load` / `store` index in elements of the buffer's element type; a vector load of
//     N lanes reads N consecutive elements. A buffer of a block-quantised dtype is bytes:
//     it is accessed as u8, i8, f16 or i32 values, indexed in units of the value's type
//     (the block formats keep every f16 field 2-byte aligned; an i32 access must be
//     4-byte aligned). A u8, f16 or bf16 buffer may be read as i32 words too (packed weights, weight rows)
//   - narrow integers (i8, u8) wrap in casts; arithmetic on them must not overflow (the
//     C-like targets compute it in int)
//   - `dequant`, `qscale`, `qdot` and `quantize` are numerics that `legalize_numerics`
//     (legalize.h) rewrites into loads, stores and arithmetic before any printer sees
//     them, from the block formats of jit/block_formats.h:
//   - `dequant` decodes 32 consecutive elements (or one element) of a block-quantised
//     buffer (ggml layouts, ir/quant.h) to f32 in ggml's order of operations
//   - `quantize` encodes 32 f32 values as one q8_0 block exactly as ir/quant.h's
//     quantize_row_q8_0 (d = amax / 127 stored as f16, q = round(x * (1 / d)), ties
//     away from zero); a block with a NaN gets unspecified bytes, never UB. Into q8_k
//     (256 per block) it encodes group g of 16 values given the block's signed max v
//     (its first element of largest |x|; the kernel finds it): q = min(127,
//     round-half-even(x * (-127 / v))), the group's sum, d = 1 / (-127 / v), exactly as
//     quantize_row_q8_k
//   - `dot4` is vpdpbusd / dp4a (`dot4_words` the same on one word of packed bytes): 4-byte dot products (u8 x i8, exact; the i32 sum wraps)
//     added to an accumulator lane; a 4-lane b is the same 4 bytes for every lane
//   - `qdot` is the integer dot product of a q8_0 block with a block that has an integer
//     form (jit/block_formats.h's `integers`: q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, mxfp4),
//     in lanes of 4 elements: lane g of block t is f32(d_a * scale_b) * f32(sum over the 4
//     products qa[4g + i] * qb[4g + i]) (the integer sum is exact; q4_0's qb = nibble - 8,
//     q5_0's the 5-bit value - 16), plus f32(d_a * min_b) * f32(the 4 qa's sum) for the
//     formats with a min (q4_1, q5_1). With a q8_k A and a super-block B that has an
//     integer form (`sub_integers`: q4_k, q6_k, iq4_xs and the grid IQ types), 16 lanes
//     per super-block: lane g (of 4 elements in each 64) is
//     d_a * sum of (s * sum(u * qa) - m * sum(qa)) with B's per-group scale s and min m.
//     The sum over all lanes is the blocks' dot product as llama.cpp computes it; scalar
//     targets may compute each lane from dequantised values instead (the same value
//     within f32 rounding)
//   - a bool buffer element is one byte (0 / 1); an i1 value stored to it becomes 0 / 1
//   - a constant table (Kernel::tables) is read-only data of the kernel, known when it is
//     built (e.g. a quantisation type's codebook); `table_load` reads it like a buffer that
//     is never written. An index outside the table is a lowering bug (undefined)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ir/dtype.h"

namespace moat::jit {

// Scalar types of values. f16 / bf16 / f8 (E4M3FN) are storage types: values of these
// types are only loaded, stored and cast. f64 is an intermediate of the math functions
// legalize_numerics writes out (never loaded or stored; only for targets with f64).
enum class Scalar : uint8_t { f32, f16, bf16, f8, i64, i32, i8, u8, i1, f64 };

struct Type {
  Scalar scalar = Scalar::f32;
  int lanes = 1;  // 1: a scalar; 2..64: a short vector
  bool operator==(const Type&) const = default;
  Type with_lanes(int n) const { return {scalar, n}; }
};
inline constexpr Type kF32{Scalar::f32, 1};
inline constexpr Type kI64{Scalar::i64, 1};
inline constexpr Type kI32{Scalar::i32, 1};
inline constexpr Type kBool{Scalar::i1, 1};

bool is_float(Scalar s);
bool is_signed(Scalar s);  // i64, i32, i8 (u8 and i1 are unsigned)
int scalar_bits(Scalar s);
std::string_view scalar_name(Scalar s);
std::string type_name(Type t);  // "f32", "f32x8"

// The scalar type a buffer of Tensor IR dtype `d` holds (bool -> u8); quantised
// dtypes are byte buffers (u8) read with `dequant`.
Scalar storage_scalar(ir::DType d);

// rint: to the nearest integer, ties to even (f32 / f64).
enum class UnaryOp : uint8_t { neg, abs, exp, log, sqrt, rsqrt, recip, sin, cos, tanh, lnot, isnan, rint };
// mulhi: i32 only, the high 32 bits of the unsigned 64-bit product of its operands' bits
// (PTX mul.hi.u32, OpenCL mul_hi on uint, HIP __umulhi).
enum class BinaryOp : uint8_t { add, sub, mul, div, rem, min, max, pow, land, lor, shl, shr, mulhi, lt, le, eq, ne };
enum class ReduceOp : uint8_t { add, max, min };
enum class Builtin : uint8_t { group_id, item_id, num_groups, group_size };
std::string_view unary_name(UnaryOp op);
std::string_view binary_name(BinaryOp op);
std::string_view reduce_name(ReduceOp op);
std::string_view builtin_name(Builtin b);
bool is_comparison(BinaryOp op);

// Every node: X(name, is_statement). Operands live in Node::args in the order given.
#define MOAT_KIR_NODES(X)                                                                          \
  /* expressions */                                                                                \
  X(constant, false)   /* value in i (integers, i1) or f (floats) */                              \
  X(scalar_arg, false) /* the scalar kernel parameter number i */                                  \
  X(ref, false)        /* the value of let / var / loop variable `name` */                         \
  X(builtin, false)    /* op: Builtin, i: dimension 0..2; i64 */                                   \
  X(unary, false)      /* op: UnaryOp; args: x (lane-wise) */                                      \
  X(binary, false)     /* op: BinaryOp; args: a, b (same type; comparisons give i1) */            \
  X(fma, false)        /* args: a, b, c -> a * b + c (floats) */                                   \
  X(select, false)     /* args: cond (i1, scalar or same lanes), a, b */                           \
  X(cast, false)       /* args: x -> type (lane-wise numeric conversion, see kir.cpp) */          \
  X(bitcast, false)    /* args: x -> type: the same bits; f32 <-> i32, f64 <-> i64, f16 / bf16 / f8 <-> i32 */ \
                       /* (the narrow float's bits zero-extended; back: the low bits) */           \
  X(broadcast, false)  /* args: scalar x -> type.lanes copies */                                  \
  X(extract, false)    /* args: vector x, lane (i64, in range) */                                   \
  X(concat, false)     /* args: a, b (one type) -> a's lanes, then b's */                           \
  X(reduce, false)     /* op: ReduceOp; args: vector x -> scalar (horizontal) */                  \
  X(subgroup_reduce, false) /* op: ReduceOp; args: x -> over the work-items of a sub-group, or with */ \
                       /* i = c > 0 over each cluster of c consecutive sub-group lanes (c a power of two) */ \
  X(load, false)       /* i: buffer; args: element index (i64) -> type (lanes consecutive) */     \
  X(table_load, false) /* i: constant table; args: index (i64: `lanes` consecutive elements, */     \
                       /* or i64 x N: element index[l] in lane l) -> the table's scalar */        \
  X(dequant, false)    /* i: buffer (quantised); args: block (i64), element in the block (i64): */ \
                       /* f32 x 32 from that element (a multiple of 32), or one f32 (type f32) */   \
  X(dot4, false)       /* args: acc (i32 x N), a (u8 x 4N), b (i8 x 4N, or i8 x 4 for every lane) */ \
                       /* -> i32 x N: lane j = acc[j] + sum over i < 4 of a[4j + i] * b[4j + i] */ \
  X(dot4_words, false) /* args: acc, a, b (i32) -> i32: acc + sum over bytes i < 4 of u8(a's byte i) x */ \
                       /* i8(b's byte i) (little-endian; PTX dp4a.u32.s32); written out by legalize_numerics */ \
                       /* for targets without it */                                                  \
  X(qscale, false)     /* i: buffer (q8_0 / q4_0 / q5_0); args: block (i64) -> f32: the block's scale d */ \
  X(qdot, false)       /* i: buffer A (q8_0 / q8_k), j: buffer B (a format with integers; q8_k A: sub_integers); */ \
                       /* args: A block, B block (i64) -> f32 x 8t (q8_k A: 16t): t blocks of each */ \
  /* statements */                                                                                 \
  X(block, true)       /* body: statements in order */                                             \
  X(let, true)         /* name = args[0] (immutable, visible to the rest of the enclosing block) */ \
  X(var, true)         /* mutable name : type = args[0] */                                         \
  X(assign, true)      /* name = args[0] (a var) */                                                \
  X(store, true)       /* i: buffer; args: element index, value */                                 \
  X(for_loop, true)    /* for name = args[0]; name < args[1]; name += args[2] { body } (i64) */   \
  X(if_then, true)     /* if args[0] { body } else { else_body } */                                \
  X(barrier, true)     /* work-group barrier over local memory */                                 \
  X(load_vector, true) /* i: global buffer; args: element index (i64, a multiple of type.lanes); type: i32 / f32 */ \
                       /* x 2 or 4 -> binds name_l0 .. name_l{lanes-1}: one aligned load of 8 / 16 bytes */ \
                       /* (PTX ld.global.nc.v4; the buffer is not written while the kernel runs) */  \
  X(quantize, true)    /* i: buffer (q8_0); args: block (i64), value (f32 x 32) -> that block; */ \
                       /* q8_k: block, value (f32 x 16), group (i64), the block's signed max (f32) */

enum class NodeKind : uint8_t {
#define MOAT_X(name, stmt) name,
  MOAT_KIR_NODES(MOAT_X)
#undef MOAT_X
};
std::string_view node_kind_name(NodeKind kind);
bool is_statement(NodeKind kind);

struct Node;
using NodeRef = std::shared_ptr<const Node>;

struct Node {
  NodeKind kind = NodeKind::constant;
  Type type;                  // expressions: the value's type
  uint8_t op = 0;             // UnaryOp / BinaryOp / ReduceOp / Builtin
  int64_t i = 0;              // integer constant, buffer, scalar-arg number, lane, dimension
  int64_t j = 0;              // a second buffer (qdot: B)
  double f = 0;               // float constant
  std::string name;           // let / var / assign / for_loop / ref
  std::vector<NodeRef> args;  // operand expressions
  std::vector<NodeRef> body;  // nested statements (block, for_loop, if_then)
  std::vector<NodeRef> else_body;
  // ref of an index that is known to lie in [range_lo, range_hi] wherever it is used (a
  // loop counter with constant bounds); range_lo > range_hi: unknown. Not printed: it
  // only lets the lowering simplify index arithmetic.
  int64_t range_lo = 0, range_hi = -1;
};

enum class Space : uint8_t { global, local };

struct BufferDecl {
  std::string name;
  ir::DType dtype = ir::DType::f32;  // element type (quantised: read with dequant)
  Space space = Space::global;
  int64_t elements = 0;              // local: elements allocated per work-group; global: extent (bounds, docs)
  bool written = false;              // global: the kernel stores to it
};

// A constant table: read-only values of the kernel (a codebook, a lattice grid),
// emitted as initialised constant data by every target. Scalars i8, u8, i32, i64; each
// value lies in its scalar's range (unsigned 32- / 64-bit data is stored as the i32 /
// i64 of the same bits). The name is an identifier, unique within the kernel.
struct TableDecl {
  std::string name;
  Scalar scalar = Scalar::i32;
  std::vector<int64_t> values;
  bool operator==(const TableDecl&) const = default;
};

struct ScalarDecl {
  std::string name;
  Scalar scalar = Scalar::i64;  // i64 or f32
};

// Parameters in ABI order: each entry is a global buffer or a scalar.
struct Param {
  bool is_buffer = true;
  int index = 0;  // into Kernel::buffers or Kernel::scalars
};

struct Kernel {
  std::string name;
  std::vector<BufferDecl> buffers;  // globals (parameters) and locals, referenced by index
  std::vector<ScalarDecl> scalars;
  std::vector<TableDecl> tables;    // constant tables, referenced by index (table_load)
  std::vector<Param> params;
  int64_t groups[3] = {1, 1, 1};
  int64_t items[3] = {1, 1, 1};
  NodeRef body;  // a block

  int add_buffer(BufferDecl decl);  // a global parameter or a local allocation
  int add_scalar(ScalarDecl decl);
  // The table's index; a table of the same name is added once (an internal error when
  // its type or values differ).
  int add_table(TableDecl decl);
};

// --- Construction helpers (expressions check their operands' types: a mismatch is a
// lowering bug and raises InternalError naming the node).
NodeRef c_i64(int64_t v);
NodeRef c_i32(int64_t v);
NodeRef c_f32(double v);
NodeRef c_f64(double v);
NodeRef c_bool(bool v);
NodeRef constant(Type t, double v);  // floats from v, integers from (int64) v
NodeRef scalar_arg(const Kernel& k, int index);
NodeRef ref(std::string name, Type t);
// An i64 ref whose values lie in [lo, hi] (see Node::range_lo).
NodeRef bounded_ref(std::string name, int64_t lo, int64_t hi);
NodeRef builtin(Builtin b, int dim);
NodeRef unary(UnaryOp op, NodeRef x);
NodeRef binary(BinaryOp op, NodeRef a, NodeRef b);
NodeRef fma(NodeRef a, NodeRef b, NodeRef c);
NodeRef select(NodeRef cond, NodeRef a, NodeRef b);
NodeRef cast(Type to, NodeRef x);
NodeRef bitcast(Type to, NodeRef x);
NodeRef broadcast(NodeRef x, int lanes);
NodeRef extract(NodeRef x, NodeRef lane);
NodeRef concat(NodeRef a, NodeRef b);
NodeRef reduce(ReduceOp op, NodeRef x);
// Over the sub-group, or (cluster > 0) over clusters of `cluster` consecutive lanes.
NodeRef subgroup_reduce(ReduceOp op, NodeRef x, int cluster = 0);
// i32 acc + the 4 products of a's unsigned and b's signed bytes (kir.h dot4_words).
NodeRef dot4_words(NodeRef acc, NodeRef a, NodeRef b);
NodeRef load(const Kernel& k, int buffer, NodeRef index, int lanes = 1);
// A load of type t: the buffer's storage type, or u8 / i8 / f16 / f32 from a quantised buffer.
NodeRef load_as(const Kernel& k, int buffer, NodeRef index, Type t);
// Whether a buffer of dtype `buffer` is loaded and stored as values of scalar s.
bool accessible_as(ir::DType buffer, Scalar s);
// Element(s) of constant table `table`: from a scalar i64 index, `lanes` consecutive
// elements; from an i64 x N index, element index[l] in lane l (a gather; lanes = N).
NodeRef table_load(const Kernel& k, int table, NodeRef index, int lanes = 1);
NodeRef dequant(const Kernel& k, int buffer, NodeRef block, NodeRef first, int lanes = 32);
NodeRef dot4(NodeRef acc, NodeRef a, NodeRef b);
NodeRef qscale(const Kernel& k, int buffer, NodeRef block);
// `blocks` (1, 2, 4, 8) consecutive blocks of A (q8_0) from a_block and of B from b_block:
// f32 x 8 * blocks; a q8_k A (1, 2 or 4 super-blocks): f32 x 16 * blocks.
NodeRef qdot(const Kernel& k, int a, NodeRef a_block, int b, NodeRef b_block, int blocks = 1);

inline NodeRef add(NodeRef a, NodeRef b) { return binary(BinaryOp::add, std::move(a), std::move(b)); }
inline NodeRef sub(NodeRef a, NodeRef b) { return binary(BinaryOp::sub, std::move(a), std::move(b)); }
inline NodeRef mul(NodeRef a, NodeRef b) { return binary(BinaryOp::mul, std::move(a), std::move(b)); }
inline NodeRef div(NodeRef a, NodeRef b) { return binary(BinaryOp::div, std::move(a), std::move(b)); }
inline NodeRef rem(NodeRef a, NodeRef b) { return binary(BinaryOp::rem, std::move(a), std::move(b)); }
inline NodeRef lt(NodeRef a, NodeRef b) { return binary(BinaryOp::lt, std::move(a), std::move(b)); }
inline NodeRef min_(NodeRef a, NodeRef b) { return binary(BinaryOp::min, std::move(a), std::move(b)); }
inline NodeRef max_(NodeRef a, NodeRef b) { return binary(BinaryOp::max, std::move(a), std::move(b)); }

// A rewrite's way to share a value: binds it to a fresh `let` placed before the
// statement being rewritten and returns a ref to it (legalize_numerics provides it).
using Binder = std::function<NodeRef(NodeRef value)>;

NodeRef block(std::vector<NodeRef> stmts);
NodeRef let(std::string name, NodeRef value);
NodeRef var(std::string name, NodeRef init);
NodeRef assign(std::string name, NodeRef value);
NodeRef store(const Kernel& k, int buffer, NodeRef index, NodeRef value);
NodeRef for_loop(std::string name, NodeRef begin, NodeRef end, NodeRef step, std::vector<NodeRef> body);
NodeRef if_then(NodeRef cond, std::vector<NodeRef> then_body, std::vector<NodeRef> else_body = {});
NodeRef barrier();
// Binds name_l0 .. name_l{lanes-1} to `lanes` (2 or 4) consecutive i32 / f32 values of
// global buffer `buffer` from element `index` (a multiple of lanes).
NodeRef load_vector(const Kernel& k, std::string name, int buffer, NodeRef index, Type t);
// The name load_vector (and scalarize) give lane i of `name`.
std::string lane_name(const std::string& name, int lane);
NodeRef quantize(const Kernel& k, int buffer, NodeRef block, NodeRef value);
// Group `group` (i64, 0..15) of 16 values of a q8_k block whose signed max is `vmax` (f32).
NodeRef quantize_group(const Kernel& k, int buffer, NodeRef block, NodeRef value, NodeRef group, NodeRef vmax);

// Stable text of a kernel (golden tests, cache keys, `moat emit --target kir`).
std::string print(const Kernel& k);
// Checks names are bound before use and not rebound, buffer / scalar indices and
// spaces, stores only to written globals or locals, loop and condition types. Throws
// InternalError naming the kernel and the offending statement.
void verify(const Kernel& k);

}  // namespace moat::jit
