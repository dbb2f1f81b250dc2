// The Tensor IR op set: one X-macro lists every op with its kind and operand count.
//
// Semantics (the reference interpreter, ir/interpreter.cpp, is the executable
// definition; composites are defined by their expansion in ir/expand.cpp):
//   Source     input, param (bound by name), constant (attr `value`: one value
//              broadcast, or every element row-major), iota (1-D, 0..n-1).
//   Unary      float math elementwise; neg/abs also on integers.
//   Binary     numpy broadcasting, both operands of one dtype; cmp_* give bool.
//   Ternary    select(cond: bool, a, b), broadcasting.
//   Reduce     over attr `axis`, kept as a dimension of size 1; f32 accumulation.
//   Matmul     A[..., M, K] x B -> [..., M, N], batch dims broadcast. attr
//              `b_transposed`: B is [..., N, K] (the weight layout; required when B is
//              quantised or f8_e4m3) else [..., K, N]. A third operand, the f32 block
//              scales of an f8_e4m3 B ([..., ceil(N/bn), ceil(K/bk)], attr `block` =
//              [bn, bk]), makes B's value fp8(B) * scale. A may be q8_0 (quantised
//              activations): its dequantised value is used and the result is f32.
//   Gather     gather(table[V, ...], idx[int ...]) -> idx.shape + table.shape[1:]
//              (rows may be quantised); take_along(x[..., N], idx[..., k]) -> [..., k].
//   Update     write_rows(dst[R, ...], rows[T, ...], at int[T]) -> dst's type: dst with
//              row at[i] replaced by rows[i] (i ascending, so a repeated index keeps the
//              last). rows has dst's dtype and trailing dims (a quantised dst: rows of
//              whole blocks, copied as bytes). The JIT writes the rows into
//              dst's own buffer (a cache updated in place) when dst is an input whose
//              other readers all come before the write_rows node in the graph.
//   View       reshape / broadcast (to the node's type), permute (attr `perm`), slice
//              (attrs `axis`, `start`, `end`), concat (attr `axis`, >= 2 operands).
//   Cast       to the node's dtype; quantised -> float dequantises; float -> q8_0
//              quantises each 32 elements of the last axis (ir/quant.h's
//              quantize_row_q8_0), float -> q8_k each 256 (quantize_row_q8_k):
//              activations for int8 dot products (no other quantised target).
//   TopK       topk(x[..., N], attr k) -> i32 indices [..., k] of the k largest values,
//              largest first, ties to the lower index. kth_largest(x[..., N], attr k) ->
//              x's dtype [..., 1]: the k-th largest value of each row (topk's last
//              value; NaN ranks above every number).
//   Composite  rms_norm, softmax, rope, attention, moe (see ir/expand.h).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace moat::ir {

enum class OpKind : uint8_t { Source, Unary, Binary, Ternary, Reduce, Matmul, Gather, Update, View, Cast, TopK, Composite };

constexpr int kVariadic = 1 << 20;

// X(op, kind, min operands, max operands)
#define MOAT_IR_OPS(X)                   \
  X(input, Source, 0, 0)                 \
  X(param, Source, 0, 0)                 \
  X(constant, Source, 0, 0)              \
  X(iota, Source, 0, 0)                  \
  X(neg, Unary, 1, 1)                    \
  X(abs, Unary, 1, 1)                    \
  X(exp, Unary, 1, 1)                    \
  X(log, Unary, 1, 1)                    \
  X(sqrt, Unary, 1, 1)                   \
  X(rsqrt, Unary, 1, 1)                  \
  X(recip, Unary, 1, 1)                  \
  X(sin, Unary, 1, 1)                    \
  X(cos, Unary, 1, 1)                    \
  X(tanh, Unary, 1, 1)                   \
  X(sigmoid, Unary, 1, 1)                \
  X(silu, Unary, 1, 1)                   \
  X(add, Binary, 2, 2)                   \
  X(sub, Binary, 2, 2)                   \
  X(mul, Binary, 2, 2)                   \
  X(div, Binary, 2, 2)                   \
  X(max, Binary, 2, 2)                   \
  X(min, Binary, 2, 2)                   \
  X(pow, Binary, 2, 2)                   \
  X(cmp_lt, Binary, 2, 2)                \
  X(cmp_le, Binary, 2, 2)                \
  X(cmp_eq, Binary, 2, 2)                \
  X(select, Ternary, 3, 3)               \
  X(reduce_sum, Reduce, 1, 1)            \
  X(reduce_max, Reduce, 1, 1)            \
  X(matmul, Matmul, 2, 3)                \
  X(gather, Gather, 2, 2)                \
  X(take_along, Gather, 2, 2)            \
  X(write_rows, Update, 3, 3)            \
  X(reshape, View, 1, 1)                 \
  X(permute, View, 1, 1)                 \
  X(slice, View, 1, 1)                   \
  X(concat, View, 2, kVariadic)          \
  X(broadcast, View, 1, 1)               \
  X(cast, Cast, 1, 1)                    \
  X(topk, TopK, 1, 1)                    \
  X(kth_largest, TopK, 1, 1)             \
  X(rms_norm, Composite, 2, 2)           \
  X(softmax, Composite, 1, 1)            \
  X(rope, Composite, 2, 2)               \
  X(attention, Composite, 4, 7)          \
  X(moe, Composite, 5, 6)

enum class Op : uint8_t {
#define MOAT_X(op, kind, lo, hi) op,
  MOAT_IR_OPS(MOAT_X)
#undef MOAT_X
};

std::string_view op_name(Op op);
std::optional<Op> parse_op(std::string_view name);
OpKind op_kind(Op op);
int op_min_operands(Op op);
int op_max_operands(Op op);

// Ops whose result type is given, not inferred: the node's declared type is their
// attribute (name and shape of an input, target shape of a reshape, dtype of a cast).
bool op_takes_declared_type(Op op);

// Attribute schema: the attributes an op with `n_operands` operands requires (no
// others are allowed). Only matmul's schema depends on the count (`block` with scales).
enum class AttrKind : uint8_t { Int, Float, Bool, String, IntList, FloatList };
struct AttrSpec {
  std::string_view name;
  AttrKind kind;
};
std::span<const AttrSpec> op_attr_specs(Op op, size_t n_operands);
std::string_view attr_kind_name(AttrKind kind);

}  // namespace moat::ir
