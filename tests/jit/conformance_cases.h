// The conformance cases shared by every executable backend: every op family over
// dtypes and shape families (size 1, odd sizes, sizes that are not a multiple of the
// vector width, larger ones), each compared with the reference interpreter.
// Tolerances: tests/jit/conformance.h. tests/jit/conformance_test.cpp runs each family on
// every device; emit_targets_test and ptx_test collect their kernels for the validators.
#pragma once

#include <array>
#include <cmath>
#include <limits>
#include <optional>

#include "jit/block_formats.h"
#include "support/error.h"
#include "tests/jit/conformance.h"

namespace moat::testing::cases {

using namespace moat::ir;

inline std::string shape_text(const std::vector<int64_t>& s) { return to_string(static_shape(s)); }

// A graph of one op over inputs of the given types; runs it and compares.
template <class Build>
void check_op(BackendUnderTest& be, const std::string& what, const std::vector<std::pair<DType, std::vector<int64_t>>>& inputs,
              Build&& build, uint32_t seed = 1) {
  Graph g;
  Builder b(g);
  Bindings bindings;
  std::vector<NodeId> ids;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string name = "x" + std::to_string(i);
    ids.push_back(b.input(name, tensor_type(inputs[i].first, inputs[i].second)));
    bindings.tensors[name] = random_tensor(inputs[i].first, inputs[i].second, seed + static_cast<uint32_t>(i));
  }
  b.output(build(b, ids));
  be.check(g, bindings, what);
}

inline const std::vector<std::vector<int64_t>> kShapes = {{1}, {37}, {3, 70}, {2, 3, 129}};

// unary ops: every float op over f32 / f16 / bf16 and shape families
inline void unary(BackendUnderTest& be) {
  for (Op op : {Op::neg, Op::abs, Op::exp, Op::log, Op::sqrt, Op::rsqrt, Op::recip, Op::sin, Op::cos, Op::tanh,
                Op::sigmoid, Op::silu}) {
    for (DType d : {DType::f32, DType::f16, DType::bf16}) {
      for (const auto& shape : kShapes) {
        check_op(be, std::string(op_name(op)) + " " + std::string(dtype_name(d)) + shape_text(shape), {{d, shape}},
                 [&](Builder& b, const std::vector<NodeId>& x) { return b.unary(op, x[0]); });
      }
    }
  }
  // Rows of transcendental functions split over several CPU work-groups by their cost
  // (lower_kernels.cpp): SwiGLU over 40 rows of 512, the last group partial.
  check_op(be, "silu(x) * y [40, 512]", {{DType::f32, {40, 512}}, {DType::f32, {40, 512}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.mul(b.unary(Op::silu, x[0]), x[1]); });
  for (DType d : {DType::i32, DType::i64, DType::i8})
    for (Op op : {Op::neg, Op::abs})
      check_op(be, std::string(op_name(op)) + " " + std::string(dtype_name(d)), {{d, {5, 9}}},
               [&](Builder& b, const std::vector<NodeId>& x) { return b.unary(op, x[0]); });
}

// binary ops with numpy broadcasting over float and integer dtypes
inline void binary(BackendUnderTest& be) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{1}, {1}}, {{65}, {65}}, {{4, 1, 5}, {3, 1}}, {{7, 33}, {}}, {{2, 17}, {2, 1}}};
  for (Op op : {Op::add, Op::sub, Op::mul, Op::div, Op::max, Op::min, Op::pow, Op::cmp_lt, Op::cmp_le, Op::cmp_eq}) {
    for (DType d : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64}) {
      if (op == Op::pow && !is_float(d)) continue;
      for (const auto& [sa, sb] : shapes) {
        const std::string what = std::string(op_name(op)) + " " + std::string(dtype_name(d)) + shape_text(sa) + shape_text(sb);
        check_op(be, what, {{d, sa}, {d, sb}}, [&](Builder& b, const std::vector<NodeId>& x) {
          NodeId rhs = x[1];
          // integer division: keep the divisor away from zero (the interpreter rejects it)
          if (op == Op::div && !is_float(d)) rhs = b.add(b.unary(Op::abs, rhs), b.scalar(d, 1));
          return b.binary(op, x[0], rhs);
        });
      }
    }
  }
}

// select with broadcast condition and branches
inline void select(BackendUnderTest& be) {
  check_op(be, "select", {{DType::boolean, {4, 5}}, {DType::f32, {4, 5}}, {DType::f32, {5}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.select(x[0], x[1], x[2]); });
  check_op(be, "select i32", {{DType::boolean, {3, 1}}, {DType::i32, {3, 8}}, {DType::i32, {1, 8}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.select(x[0], x[1], x[2]); });
}

// cast between every pair of plain dtypes, with saturation and specials
inline void cast(BackendUnderTest& be) {
  const DType all[] = {DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::i64,
                       DType::i32, DType::i8,  DType::u8,   DType::boolean};
  for (DType from : all) {
    for (DType to : all) {
      Graph g;
      Builder b(g);
      b.output(b.cast(b.input("x", tensor_type(from, {41})), to));
      Bindings bindings;
      if (is_float(from)) {
        // wide range: saturation of narrow ints and of f8 (|x| > 448), plus specials
        std::vector<float> v = moat::testing::random_values(41, 7, -600.0f, 600.0f);
        v[0] = 0.0f, v[1] = -0.0f, v[2] = 0.4999f, v[3] = -2.5f, v[4] = 1e-3f;
        v[5] = std::numeric_limits<float>::infinity(), v[6] = -v[5], v[7] = std::numeric_limits<float>::quiet_NaN();
        v[8] = 448.0f, v[9] = 460.0f, v[10] = 1.0f / 1024.0f;
        bindings.tensors["x"] = HostTensor::from_f32({41}, v, from);
      } else {
        bindings.tensors["x"] = random_tensor(from, {41}, 3);
      }
      be.check(g, bindings, "cast " + std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)));
    }
  }
}

// reductions over every axis, including size 1 and long rows
inline void reduce(BackendUnderTest& be) {
  for (Op op : {Op::reduce_sum, Op::reduce_max}) {
    for (DType d : {DType::f32, DType::f16, DType::i32}) {
      for (int64_t axis : {0, 1, 2, -1})
        check_op(be, std::string(op_name(op)) + " " + std::string(dtype_name(d)) + " axis " + std::to_string(axis),
                 {{d, {3, 50, 7}}}, [&](Builder& b, const std::vector<NodeId>& x) { return b.reduce(op, x[0], axis); });
      check_op(be, std::string(op_name(op)) + " [1]", {{d, {1}}},
               [&](Builder& b, const std::vector<NodeId>& x) { return b.reduce(op, x[0], 0); });
    }
    check_op(be, std::string(op_name(op)) + " [300, 1000]", {{DType::f32, {300, 1000}}},
             [&](Builder& b, const std::vector<NodeId>& x) { return b.reduce(op, x[0], 1); });
    check_op(be, std::string(op_name(op)) + " of exp [64, 300]", {{DType::f32, {64, 300}}},
             [&](Builder& b, const std::vector<NodeId>& x) { return b.reduce(op, b.unary(Op::exp, x[0]), 1); });
    // MoE's combine: rows weighted by a broadcast per (token, expert), summed over the
    // experts; inner rows longer than the CPU's chunk
    check_op(be, std::string(op_name(op)) + " of weighted rows [5, 4, 600] axis 1",
             {{DType::f32, {5, 4, 600}}, {DType::f32, {5, 4, 1}}}, [&](Builder& b, const std::vector<NodeId>& x) {
               return b.reduce(op, b.mul(x[0], b.div(x[1], b.scalar(DType::f32, 3.0))), 1);
             });
  }
}

// matmul with f32 / f16 / bf16 B, transposed or not, batched and broadcast
// x[t, K] against 2 of 4 experts [4, N, K] of dtype bd chosen per token (a fixed mix, so
// that the experts get different slot counts), gathered from the table in place.
inline void check_experts(BackendUnderTest& be, DType bd, int64_t t, int64_t n, int64_t k) {
  Graph g;
  Builder b(g);
  const int64_t e = 4;
  NodeId x = b.input("x", tensor_type(DType::f32, {t, 1, 1, k}));
  NodeId idx = b.input("idx", tensor_type(DType::i32, {t, 2}));
  NodeId w = b.param("experts", tensor_type(bd, {e, n, k}));
  b.output(b.matmul_weight(x, b.gather(w, idx)));
  Bindings bindings;
  bindings.tensors["x"] = random_tensor(DType::f32, {t, 1, 1, k}, 3);
  std::vector<int64_t> ids(static_cast<size_t>(2 * t));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 7 + i / 3) % e);
  bindings.tensors["idx"] = HostTensor::from_i64({t, 2}, ids, DType::i32);
  bindings.tensors["experts"] = random_tensor(bd, {e, n, k}, 4);
  be.check(g, bindings,
           "matmul param experts " + std::string(dtype_name(bd)) + " t" + std::to_string(t) + " n" + std::to_string(n));
}

// out = A[batch.., m, K] x W^T for a weight param W [batch.., n, K] of dtype bd (the
// lowering may pack or tile a param, jit/weight_packing.h); `second_use`: W read by a
// second matmul too, of -A, added.
inline void check_weight_param(BackendUnderTest& be, DType bd, int64_t batch, int64_t m, int64_t n, int64_t k,
                               bool second_use = false) {
  Graph g;
  Builder b(g);
  std::vector<int64_t> a_shape{m, k}, w_shape{n, k};
  if (batch > 1) {
    a_shape.insert(a_shape.begin(), batch);
    w_shape.insert(w_shape.begin(), batch);
  }
  NodeId a = b.input("a", tensor_type(DType::f32, a_shape));
  NodeId w = b.param("w", tensor_type(bd, w_shape));
  NodeId out = b.matmul_weight(a, w);
  if (second_use) out = b.add(out, b.matmul_weight(b.unary(Op::neg, a), w));
  b.output(out);
  Bindings bindings;
  bindings.tensors["a"] = random_tensor(DType::f32, a_shape, 1);
  bindings.tensors["w"] = random_tensor(bd, w_shape, 2);
  be.check(g, bindings, "matmul param B " + std::string(dtype_name(bd)) + " b" + std::to_string(batch) + " m" +
                            std::to_string(m) + " n" + std::to_string(n) + " k" + std::to_string(k) +
                            (second_use ? " read twice" : ""));
}

inline void matmul_float(BackendUnderTest& be) {
  // m 2..8 with K a multiple of the vector width: the CPU's blocks of columns
  // (tiled_columns.cpp), with N not a multiple of the block
  const std::vector<std::array<int64_t, 3>> mkn = {{1, 64, 64}, {3, 37, 17}, {5, 300, 33}, {1, 1, 1},  {9, 1024, 40},
                                                   {2, 64, 37}, {3, 128, 10}, {4, 32, 8},   {5, 64, 37}, {6, 32, 9},
                                                   {7, 48, 5},  {8, 64, 33}};
  for (DType bd : {DType::f32, DType::f16, DType::bf16}) {
    for (auto [m, k, n] : mkn) {
      const std::string what = "matmul B " + std::string(dtype_name(bd)) + " m" + std::to_string(m) + " k" +
                               std::to_string(k) + " n" + std::to_string(n);
      check_op(be, what, {{DType::f32, {m, k}}, {bd, {n, k}}},
               [](Builder& b, const std::vector<NodeId>& x) { return b.matmul(x[0], x[1], true); });
      check_op(be, what + " not transposed", {{DType::f32, {m, k}}, {bd, {k, n}}},
               [](Builder& b, const std::vector<NodeId>& x) { return b.matmul(x[0], x[1], false); });
    }
  }
  check_op(be, "matmul f16 A", {{DType::f16, {3, 40}}, {DType::f32, {6, 40}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.matmul(x[0], x[1], true); });
  check_op(be, "batched matmul, B broadcast over the outer batch", {{DType::f32, {2, 3, 4, 16}}, {DType::f32, {3, 5, 16}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.matmul(x[0], x[1], true); });
  check_op(be, "batched matmul, A broadcast", {{DType::f32, {1, 4, 19}}, {DType::f32, {3, 19, 6}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.matmul(x[0], x[1], false); });
  check_op(be, "batched matmul, B [K, N] broadcast over the outer batch, N past whole vectors",
           {{DType::f32, {2, 3, 5, 20}}, {DType::f16, {3, 20, 37}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.matmul(x[0], x[1], false); });
  // Float expert tables gathered by index, N not in tiles of 16 (read as the file has
  // them): few slots (a GEMV each) and grouped: 5 tokens (experts of 1 to 4 slots: passes
  // of two sharing each converted chunk, then the odd one), 10 (3 to 7 slots, N not a
  // multiple of the 4 rows a pass takes) and 25 (8 to 17 slots: rows staged in local
  // memory).
  // N in tiles of 16 (the CPU reads them tiled, float_expert_tiles.cpp): a work-group per
  // slot (2 tokens), and grouped in passes of 4, 2 and 1 slots over blocks of 1 tile (N
  // 48), 4 (N 64) and 8 (N 256: passes of 4 slots take 4 tiles at a time); K of any length.
  for (DType bd : {DType::f32, DType::f16, DType::bf16}) {
    for (auto [t, n] : {std::pair<int64_t, int64_t>{2, 36}, {5, 36}, {10, 34}, {25, 36}})
      check_experts(be, bd, t, n, 96);
    for (auto [t, n, k] : {std::array<int64_t, 3>{2, 32, 96}, {5, 48, 96}, {10, 64, 37}, {25, 256, 40}})
      check_experts(be, bd, t, n, k);
  }
  // Float weights as params read whole, N in tiles of 16 (the CPU reads them tiled,
  // float_tiles.cpp, on AVX-512): one row over blocks of 8 tiles (N 2048), of 2 (N 256:
  // blocks shrunk to give 8 work-groups) and of 1 (N 80, 5 tiles); row blocks of 8 and 5
  // in passes of 8, then 4 and 1 (m 13), with the weight also read by a second matmul;
  // blocks of 1 tile and 8 rows (m 8, a decode step of 8 sequences, and m 70); blocks of
  // 64 rows, 8 passes of 8 each, and a partial one of 2 (m 130); per-head matrices
  // (batch 3) in passes of 4 and 1; K of any length.
  for (DType bd : {DType::f32, DType::f16, DType::bf16}) {
    for (auto [batch, m, n, k] : std::vector<std::array<int64_t, 4>>{
             {1, 1, 2048, 16}, {1, 1, 256, 40}, {1, 1, 80, 33}, {1, 13, 48, 37}, {1, 8, 128, 64}, {1, 70, 32, 9},
             {1, 130, 256, 8}, {3, 5, 32, 16}})
      check_weight_param(be, bd, batch, m, n, k, m == 13);
  }
}

// matmul with quantised B dequantised in registers: every block-quantised dtype. The
// strategies do not depend on the format beyond its block size, and kir_test checks every
// decode rule against the reference: Q8_0 / Q4_0 / Q4_K / Q6_K run every shape, the other
// formats (issue 16) one and two blocks of K, GEMV and a partial 8-row tile, to keep the
// suite fast.
inline void matmul_quantised(BackendUnderTest& be) {
  for (DType bd : kAllDTypes) {
    if (!is_quantised(bd)) continue;
    const int64_t block = dtype_block_elems(bd);
    const bool every_shape = bd == DType::q8_0 || bd == DType::q4_0 || bd == DType::q4_k || bd == DType::q6_k;
    const std::vector<int64_t> ks = every_shape ? std::vector<int64_t>{block, 2 * block, 4 * block}
                                                : std::vector<int64_t>{block, 2 * block};
    using Shapes = std::vector<std::pair<int64_t, int64_t>>;
    for (int64_t k : ks) {
      // m 21: the CPU's 8-row tiles for quantised B (prefill) with a partial last tile
      for (auto [m, n] : every_shape ? Shapes{{1, 1}, {1, 37}, {3, 16}, {6, 7}, {21, 18}} : Shapes{{1, 37}, {21, 18}}) {
        const std::string what = "matmul B " + std::string(dtype_name(bd)) + " m" + std::to_string(m) + " k" +
                                 std::to_string(k) + " n" + std::to_string(n);
        check_op(be, what, {{DType::f32, {m, k}}, {bd, {n, k}}},
                 [](Builder& b, const std::vector<NodeId>& x) { return b.matmul(x[0], x[1], true); });
      }
    }
  }
  // Activations quantised to q8_0 (ir/quant.h): k 32 (one block: single-block int8
  // products), 64 and 160 (pairs of blocks, and an odd count); m 1 (the CPU's int8 GEMV)
  // and m > 1 (A's rows dequantised once per tile); a batch of 3 sharing one weight.
  // The other types with q8_0 activations (q4_1 / q5_1 with a min, iq4_nl and mxfp4 through
  // codebooks) take the m 1 int8 GEMV and the f32 tiles, on fewer shapes.
  for (DType bd : {DType::q4_1, DType::q5_1, DType::iq4_nl, DType::mxfp4}) {
    for (auto [m, n, k] : std::vector<std::array<int64_t, 3>>{{1, 37, 32}, {1, 5, 160}, {6, 7, 64}}) {
      const std::string what = "matmul q8_0 activations B " + std::string(dtype_name(bd)) + " m" + std::to_string(m) +
                               " k" + std::to_string(k) + " n" + std::to_string(n);
      check_op(be, what, {{DType::f32, {m, k}}, {bd, {n, k}}},
               [](Builder& b, const std::vector<NodeId>& x) { return b.matmul_weight(x[0], x[1]); });
    }
  }
  for (DType bd : {DType::q8_0, DType::q4_0, DType::q5_0}) {
    for (int64_t k : {32, 64, 160}) {
      for (auto [m, n] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 37}, {6, 7}, {21, 18}}) {
        const std::string what = "matmul q8_0 activations B " + std::string(dtype_name(bd)) + " m" + std::to_string(m) +
                                 " k" + std::to_string(k) + " n" + std::to_string(n);
        check_op(be, what, {{DType::f32, {m, k}}, {bd, {n, k}}},
                 [](Builder& b, const std::vector<NodeId>& x) { return b.matmul_weight(x[0], x[1]); });
      }
    }
    check_op(be, "matmul q8_0 activations batched B " + std::string(dtype_name(bd)), {{DType::f32, {3, 1, 64}}, {bd, {5, 64}}},
             [](Builder& b, const std::vector<NodeId>& x) { return b.matmul_weight(x[0], x[1]); });
    // per-head weights (MLA's attn_k_b / attn_v_b): A [H, T, K] x B [H, N, K]
    for (auto [t, n, k] : std::vector<std::array<int64_t, 3>>{{8, 16, 32}, {8, 8, 16 * 2}, {5, 32, 64}, {1, 16, 32}}) {
      check_op(be, "matmul q8_0 activations per-head B " + std::string(dtype_name(bd)) + " t" + std::to_string(t) + " n" +
                       std::to_string(n) + " k" + std::to_string(k),
               {{DType::f32, {4, t, k}}, {bd, {4, n, k}}},
               [](Builder& b, const std::vector<NodeId>& x) { return b.matmul_weight(x[0], x[1]); });
    }
  }
  // Activations quantised to q8_k for K-quant weights: k 256 (one super-block), 512 (a
  // pair) and 768 (an odd count); m 1 (the CPU's int8 GEMV) and m > 1 (f32 tiles).
  for (DType bd : {DType::q2_k, DType::q3_k, DType::q4_k, DType::q5_k, DType::q6_k}) {
    for (int64_t k : {256, 512, 768}) {
      for (auto [m, n] : std::vector<std::pair<int64_t, int64_t>>{{1, 37}, {6, 7}}) {
        const std::string what = "matmul q8_k activations B " + std::string(dtype_name(bd)) + " m" + std::to_string(m) +
                                 " k" + std::to_string(k) + " n" + std::to_string(n);
        check_op(be, what, {{DType::f32, {m, k}}, {bd, {n, k}}},
                 [](Builder& b, const std::vector<NodeId>& x) { return b.matmul_weight(x[0], x[1]); });
      }
    }
    check_op(be, "matmul q8_k activations batched B " + std::string(dtype_name(bd)), {{DType::f32, {3, 1, 256}}, {bd, {5, 256}}},
             [](Builder& b, const std::vector<NodeId>& x) { return b.matmul_weight(x[0], x[1]); });
  }
  // The IQ types with q8_k activations (the int8 GEMV from their grids and codebooks at
  // m 1, f32 tiles at m > 1).
  for (DType bd : {DType::iq4_xs, DType::iq3_xxs, DType::iq3_s, DType::iq2_xxs, DType::iq2_xs, DType::iq2_s, DType::iq1_s,
                   DType::iq1_m}) {
    for (auto [m, n, k] : std::vector<std::array<int64_t, 3>>{{1, 37, 512}, {1, 3, 768}, {6, 7, 256}}) {
      const std::string what = "matmul q8_k activations B " + std::string(dtype_name(bd)) + " m" + std::to_string(m) +
                               " k" + std::to_string(k) + " n" + std::to_string(n);
      check_op(be, what, {{DType::f32, {m, k}}, {bd, {n, k}}},
               [](Builder& b, const std::vector<NodeId>& x) { return b.matmul_weight(x[0], x[1]); });
    }
  }
  // Weights as params (the CPU packs Q8_0 / Q4_0 / Q5_0 / Q4_1 / Q5_1 / IQ4_NL / MXFP4 and Q2_K .. Q6_K, IQ4_XS params read only by
  // int8 matmuls into 16-row tiles, jit/weight_packing.h): GEMV (m 1), GEMM (m > 1),
  // per-head batches, and experts gathered by index, few slots (one GEMV each) and many
  // (grouped).
  for (DType bd : {DType::q8_0, DType::q4_0, DType::q5_0, DType::q4_1, DType::q5_1, DType::iq4_nl, DType::mxfp4, DType::q2_k,
                   DType::q3_k, DType::q4_k, DType::q5_k, DType::q6_k, DType::iq4_xs}) {
    const int64_t kk = ir::dtype_block_elems(bd) / 32;  // K below in blocks of 32 (super-blocks for Q4_K / Q6_K)
    for (auto [batch, m, n, k] : std::vector<std::array<int64_t, 4>>{{1, 1, 16, 32}, {1, 1, 144, 256}, {1, 7, 32, 64},
                                                                    {1, 21, 48, 96}, {3, 5, 16, 64}, {3, 1, 32, 32}})
      check_weight_param(be, bd, batch, m, n, k * kk);
    for (int64_t t : {2, 24}) check_experts(be, bd, t, 32, 64 * kk);  // 24 tokens x 2 of 4 experts: grouped
  }
  // The quantisation itself, read back: f32 and f16 sources, rows of several blocks.
  for (DType from : {DType::f32, DType::f16}) {
    check_op(be, "cast " + std::string(dtype_name(from)) + " -> q8_0 -> f32", {{from, {3, 96}}},
             [](Builder& b, const std::vector<NodeId>& x) { return b.cast(b.cast(x[0], DType::q8_0), DType::f32); });
  }
}

// matmul with fp8 e4m3 B and 128x128 block scales, including partial blocks
inline void matmul_fp8(BackendUnderTest& be) {
  for (auto [m, n, k] : std::vector<std::array<int64_t, 3>>{{1, 130, 256}, {3, 64, 200}, {2, 7, 100}}) {
    Graph g;
    Builder b(g);
    const int64_t sr = (n + 127) / 128, sc = (k + 127) / 128;
    NodeId a = b.input("a", tensor_type(DType::f32, {m, k}));
    NodeId w = b.input("w", tensor_type(DType::f8_e4m3, {n, k}));
    NodeId s = b.input("s", tensor_type(DType::f32, {sr, sc}));
    b.output(b.matmul_fp8(a, w, s));
    Bindings bindings;
    bindings.tensors["a"] = random_tensor(DType::f32, {m, k}, 1);
    bindings.tensors["w"] = random_tensor(DType::f8_e4m3, {n, k}, 2);
    bindings.tensors["s"] = HostTensor::from_f32({sr, sc}, moat::testing::random_values(static_cast<size_t>(sr * sc), 3, 0.5f, 2.0f));
    be.check(g, bindings, "matmul fp8 m" + std::to_string(m) + " n" + std::to_string(n) + " k" + std::to_string(k));
  }
}

// gather and take_along, including quantised tables
inline void gather(BackendUnderTest& be) {
  for (DType d : {DType::f32, DType::f16, DType::q8_0, DType::q4_k}) {
    const int64_t cols = d == DType::q4_k ? 256 : 64;
    Graph g;
    Builder b(g);
    NodeId table = b.input("table", tensor_type(d, {10, cols}));
    NodeId idx = b.input("idx", tensor_type(DType::i32, {3, 2}));
    b.output(b.cast(b.gather(table, idx), DType::f32));
    Bindings bindings;
    bindings.tensors["table"] = random_tensor(d, {10, cols}, 5);
    bindings.tensors["idx"] = HostTensor::from_i64({3, 2}, std::vector<int64_t>{0, 9, 3, 3, 7, 1}, DType::i32);
    be.check(g, bindings, "gather " + std::string(dtype_name(d)));
  }
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", tensor_type(DType::f32, {4, 9}));
  NodeId idx = b.input("idx", tensor_type(DType::i64, {4, 3}));
  b.output(b.take_along(x, idx));
  Bindings bindings;
  bindings.tensors["x"] = random_tensor(DType::f32, {4, 9}, 2);
  bindings.tensors["idx"] = HostTensor::from_i64({4, 3}, std::vector<int64_t>{0, 8, 4, 1, 1, 2, 7, 6, 5, 3, 0, 8});
  be.check(g, bindings, "take_along");
}

// topk: largest first, ties to the lower index, NaN ranked first (the CPU ranks rows of
// up to 256, selects in longer ones)
inline void topk(BackendUnderTest& be) {
  std::vector<float> v = moat::testing::random_values(5 * 40, 9);
  for (float& x : v) x = std::round(x * 10.0f) / 10.0f;  // many ties
  v[3] = std::numeric_limits<float>::quiet_NaN();
  v[50] = std::numeric_limits<float>::quiet_NaN();
  v[51] = std::numeric_limits<float>::quiet_NaN();
  for (int64_t k : {1, 6, 40}) {
    Graph g;
    Builder b(g);
    b.output(b.topk(b.input("x", tensor_type(DType::f32, {5, 40})), k));
    Bindings bindings;
    bindings.tensors["x"] = HostTensor::from_f32({5, 40}, v);
    be.check(g, bindings, "topk k=" + std::to_string(k));
  }
  {  // rows longer than the CPU ranks (selection), with ties
    Graph g;
    Builder b(g);
    b.output(b.topk(b.input("x", tensor_type(DType::f32, {2, 300})), 5));
    std::vector<float> w = moat::testing::random_values(2 * 300, 10);
    for (float& x : w) x = std::round(x * 10.0f) / 10.0f;
    Bindings bindings;
    bindings.tensors["x"] = HostTensor::from_f32({2, 300}, w);
    be.check(g, bindings, "topk of 300, k=5");
  }
  // kth_largest: topk's last value by bisection over the f32 bits: ties, NaNs (a row
  // whose k-th is NaN for k = 1, 2), infinities, +-0 and an f16 row.
  v[100] = std::numeric_limits<float>::infinity();
  v[101] = -std::numeric_limits<float>::infinity();
  v[102] = -0.0f;
  v[103] = 0.0f;
  v[160] = -std::numeric_limits<float>::infinity();
  for (DType dtype : {DType::f32, DType::f16})
    for (int64_t k : {1, 2, 6, 39, 40}) {
      Graph g;
      Builder b(g);
      b.output(b.kth_largest(b.input("x", tensor_type(dtype, {5, 40})), k));
      Bindings bindings;
      bindings.tensors["x"] = HostTensor::from_f32({5, 40}, v, dtype);
      be.check(g, bindings, moat::cat("kth_largest k=", k, " ", dtype_name(dtype)));
    }
}

// views: reshape, permute, slice, concat, broadcast, fused into their consumer
inline void views(BackendUnderTest& be) {
  check_op(be, "permute + slice + reshape", {{DType::f32, {4, 6, 10}}}, [](Builder& b, const std::vector<NodeId>& x) {
    NodeId p = b.permute(x[0], {2, 0, 1});   // [10, 4, 6]
    NodeId s = b.slice(p, 0, 3, 9);          // [6, 4, 6]
    return b.mul(b.reshape(s, {Dim::of(24), Dim::of(6)}), b.scalar(DType::f32, 2.0));
  });
  check_op(be, "concat of three", {{DType::f32, {3, 2}}, {DType::f32, {3, 5}}, {DType::f32, {3, 1}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.concat({x[0], x[1], x[2]}, 1); });
  // Computed parts (a loop per part on the CPU), a part that is itself a concat, and a
  // concat along an inner axis (one loop with selects).
  check_op(be, "concat of computed parts, last axis", {{DType::f32, {2, 3, 4}}, {DType::f32, {2, 3, 6}}},
           [](Builder& b, const std::vector<NodeId>& x) {
             NodeId inner = b.concat({b.unary(Op::exp, x[1]), b.slice(x[0], 2, 1, 3)}, -1);  // [2, 3, 8]
             return b.concat({b.mul(x[0], b.scalar(DType::f32, 2.0)), inner, b.unary(Op::neg, x[0])}, 2);
           });
  check_op(be, "concat of computed parts, middle axis", {{DType::f32, {2, 3, 4}}, {DType::f32, {2, 5, 4}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.concat({b.unary(Op::exp, x[0]), b.unary(Op::neg, x[1])}, 1); });
  check_op(be, "broadcast", {{DType::f16, {3, 1}}}, [](Builder& b, const std::vector<NodeId>& x) {
    return b.broadcast(x[0], static_shape({4, 3, 5}));
  });
  check_op(be, "reshape of a materialised value is an alias", {{DType::f32, {6, 8}}}, [](Builder& b, const std::vector<NodeId>& x) {
    NodeId s = b.reduce(Op::reduce_sum, x[0], 1);  // [6, 1]
    return b.add(b.reshape(s, {Dim::of(2), Dim::of(3)}), b.scalar(DType::f32, 1.0));
  });
}

// sources, constants, iota, and outputs that are inputs or repeated
inline void sources(BackendUnderTest& be) {
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", tensor_type(DType::f32, {2, 3}));
  NodeId c = b.constant(tensor_type(DType::f32, {2, 3}), {1, 2, 3, 4, 5, 6});
  NodeId i = b.cast(b.iota(DType::i32, Dim::of(3)), DType::f32);
  NodeId y = b.add(b.add(x, c), i);
  b.output(y);
  b.output(x);
  b.output(y);
  b.output(b.scalar(DType::f16, 0.1));
  Bindings bindings;
  bindings.tensors["x"] = random_tensor(DType::f32, {2, 3}, 4);
  be.check(g, bindings, "sources");
}

// symbolic dimensions bound to 1 and to odd sizes
inline void symbolic(BackendUnderTest& be) {
  for (int64_t t : {1, 7, 64}) {
    Graph g;
    Builder b(g);
    Dim T = b.symbol("T");
    NodeId x = b.input("x", TensorType{DType::f32, {T, Dim::of(48)}});
    NodeId w = b.input("w", tensor_type(DType::q8_0, {20, 64}));
    NodeId w2 = b.input("w2", tensor_type(DType::f32, {20, 48}));
    (void)w;
    b.output(b.softmax(b.matmul(x, w2, true)));
    Bindings bindings;
    bindings.tensors["x"] = random_tensor(DType::f32, {t, 48}, 1);
    bindings.tensors["w"] = random_tensor(DType::q8_0, {20, 64}, 2);
    bindings.tensors["w2"] = random_tensor(DType::f32, {20, 48}, 3);
    bindings.symbols["T"] = t;
    be.check(g, bindings, "T=" + std::to_string(t));
  }
}

// composites: rms_norm, softmax, rope (interleaved, NeoX, YaRN), attention, moe; write_rows
inline void composites(BackendUnderTest& be) {
  check_op(be, "rms_norm", {{DType::f32, {5, 64}}, {DType::f32, {64}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.rms_norm(x[0], x[1], 1e-6); });
  check_op(be, "rms_norm f16", {{DType::f16, {3, 40}}, {DType::f32, {40}}},
           [](Builder& b, const std::vector<NodeId>& x) { return b.rms_norm(x[0], x[1], 1e-5); });
  check_op(be, "softmax", {{DType::f32, {3, 100}}}, [](Builder& b, const std::vector<NodeId>& x) { return b.softmax(x[0]); });
  for (bool interleaved : {true, false}) {
    for (double ext : {0.0, 1.0}) {
      Graph g;
      Builder b(g);
      NodeId x = b.input("x", tensor_type(DType::f32, {4, 2, 16}));
      NodeId pos = b.input("pos", tensor_type(DType::i32, {4}));
      RopeParams p;
      p.n_dims = 8;
      p.interleaved = interleaved;
      p.ext_factor = ext;
      p.freq_scale = ext > 0 ? 0.25 : 1.0;
      p.orig_ctx = 64;
      b.output(b.rope(x, pos, p));
      Bindings bindings;
      bindings.tensors["x"] = random_tensor(DType::f32, {4, 2, 16}, 3);
      bindings.tensors["pos"] = HostTensor::from_i64({4}, std::vector<int64_t>{0, 1, 5, 100}, DType::i32);
      be.check(g, bindings, std::string("rope ") + (interleaved ? "interleaved" : "neox") + (ext > 0 ? " yarn" : ""));
    }
  }
  {
    Graph g;
    Builder b(g);
    NodeId q = b.input("q", tensor_type(DType::f32, {3, 4, 16}));
    NodeId k = b.input("k", tensor_type(DType::f32, {5, 2, 16}));
    NodeId v = b.input("v", tensor_type(DType::f32, {5, 2, 8}));
    NodeId pos = b.input("pos", tensor_type(DType::i32, {3}));
    b.output(b.attention(q, k, v, pos, 0.25, true));
    Bindings bindings;
    bindings.tensors["q"] = random_tensor(DType::f32, {3, 4, 16}, 1);
    bindings.tensors["k"] = random_tensor(DType::f32, {5, 2, 16}, 2);
    bindings.tensors["v"] = random_tensor(DType::f32, {5, 2, 8}, 3);
    bindings.tensors["pos"] = HostTensor::from_i64({3}, std::vector<int64_t>{2, 3, 4}, DType::i32);
    be.check(g, bindings, "attention");
  }
  // Streaming attention (lower_attention.cpp): decode over many keys split across
  // work-groups (positions past the keys, partial blocks), prefill in one split
  // without a mask, and the absorbed MLA form: one shared f16 key head whose first
  // columns are the values (a slice read in place), after write_rows stored new rows.
  // (1, 3000): on the CPU a split takes at least ~32k multiply-adds' keys, so only a long
  // key axis has several splits there: full ones, a partial one and empty ones.
  for (auto [t, s, causal] : {std::tuple{int64_t{1}, int64_t{100}, true}, std::tuple{int64_t{1}, int64_t{3000}, true},
                              std::tuple{int64_t{2}, int64_t{37}, true}, std::tuple{int64_t{20}, int64_t{40}, false},
                              std::tuple{int64_t{20}, int64_t{40}, true}}) {
    Graph g;
    Builder b(g);
    NodeId q = b.input("q", tensor_type(DType::f32, {t, 4, 24}));
    NodeId k = b.input("k", tensor_type(DType::f32, {s, 4, 24}));
    NodeId v = b.input("v", tensor_type(DType::f32, {s, 4, 12}));
    NodeId pos = b.input("pos", tensor_type(DType::i32, {t}));
    b.output(b.attention(q, k, v, pos, 0.2, causal));
    Bindings bindings;
    bindings.tensors["q"] = random_tensor(DType::f32, {t, 4, 24}, 4);
    bindings.tensors["k"] = random_tensor(DType::f32, {s, 4, 24}, 5);
    bindings.tensors["v"] = random_tensor(DType::f32, {s, 4, 12}, 6);
    std::vector<int64_t> p(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) p[static_cast<size_t>(i)] = t == 1 ? s * 6 / 10 : t == 2 ? 36 + 5 * i : i + 3;
    bindings.tensors["pos"] = HostTensor::from_i64({t}, p, DType::i32);
    be.check(g, bindings, moat::cat("attention t", t, " s", s, causal ? " causal" : ""));
  }
  // Sparse attention (V3.2's indexer selection): a key bias that keeps each query's
  // `top` best-scored keys (the k-th best score as a threshold) and sets the others to
  // -inf, so whole blocks of keys, and whole splits of a decode, are unselected.
  for (auto [t, s, top] : {std::tuple{int64_t{1}, int64_t{100}, int64_t{5}}, std::tuple{int64_t{20}, int64_t{40}, int64_t{6}}}) {
    Graph g;
    Builder b(g);
    NodeId q = b.input("q", tensor_type(DType::f32, {t, 4, 24}));
    NodeId k = b.input("k", tensor_type(DType::f32, {s, 1, 24}));
    NodeId v = b.input("v", tensor_type(DType::f32, {s, 1, 12}));
    NodeId pos = b.input("pos", tensor_type(DType::i32, {t}));
    NodeId score = b.input("score", tensor_type(DType::f32, {t, s}));
    NodeId minus_inf = b.scalar(DType::f32, -INFINITY);
    NodeId future = b.binary(Op::cmp_lt, b.reshape(pos, static_shape({t, 1})), b.iota(DType::i32, Dim::of(s)));  // [t, s]
    NodeId masked = b.select(future, minus_inf, score);                                                       // [t, s]
    NodeId kth = b.kth_largest(masked, top);                                                                  // [t, 1]
    NodeId bias = b.select(b.binary(Op::cmp_le, kth, masked), b.scalar(DType::f32, 0), minus_inf);            // [t, s]
    b.output(b.attention(q, k, v, pos, 0.2, true, std::nullopt, bias));
    Bindings bindings;
    bindings.tensors["q"] = random_tensor(DType::f32, {t, 4, 24}, 13);
    bindings.tensors["k"] = random_tensor(DType::f32, {s, 1, 24}, 14);
    bindings.tensors["v"] = random_tensor(DType::f32, {s, 1, 12}, 15);
    bindings.tensors["score"] = random_tensor(DType::f32, {t, s}, 16);
    std::vector<int64_t> p(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) p[static_cast<size_t>(i)] = t == 1 ? 90 : i + 3;
    bindings.tensors["pos"] = HostTensor::from_i64({t}, p, DType::i32);
    be.check(g, bindings, moat::cat("sparse attention t", t, " s", s, " top ", top));
  }
  // Attention sinks (DeepSeek-V4): a logit per head in each softmax's denominator, once
  // however the keys are split; with key starts past a query's position (t 3: no keys
  // at all) the output is 0; with a sparse selection (a key bias) as well.
  for (auto [t, s, biased] : {std::tuple{int64_t{1}, int64_t{100}, false}, std::tuple{int64_t{3}, int64_t{40}, false},
                              std::tuple{int64_t{20}, int64_t{40}, true}}) {
    Graph g;
    Builder b(g);
    NodeId q = b.input("q", tensor_type(DType::f32, {t, 4, 24}));
    NodeId k = b.input("k", tensor_type(DType::f32, {s, 1, 24}));
    NodeId v = b.input("v", tensor_type(DType::f32, {s, 1, 12}));
    NodeId pos = b.input("pos", tensor_type(DType::i32, {t}));
    NodeId start = b.input("start", tensor_type(DType::i32, {t}));
    NodeId sinks = b.input("sinks", tensor_type(DType::f32, {4}));
    std::optional<NodeId> bias;
    if (biased) bias = b.input("bias", tensor_type(DType::f32, {t, s}));
    b.output(b.attention(q, k, v, pos, 0.2, true, start, bias, sinks));
    Bindings bindings;
    bindings.tensors["q"] = random_tensor(DType::f32, {t, 4, 24}, 17);
    bindings.tensors["k"] = random_tensor(DType::f32, {s, 1, 24}, 18);
    bindings.tensors["v"] = random_tensor(DType::f32, {s, 1, 12}, 19);
    bindings.tensors["sinks"] = HostTensor::from_f32({4}, std::vector<float>{-1.5f, 0.0f, 0.7f, 3.0f});
    std::vector<int64_t> p(static_cast<size_t>(t)), first(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) {
      p[static_cast<size_t>(i)] = t == 1 ? 90 : i + 17;
      first[static_cast<size_t>(i)] = t == 3 && i == 1 ? p[static_cast<size_t>(i)] + 1 : i % 5;
    }
    bindings.tensors["pos"] = HostTensor::from_i64({t}, p, DType::i32);
    bindings.tensors["start"] = HostTensor::from_i64({t}, first, DType::i32);
    if (biased) {
      std::vector<float> bv(static_cast<size_t>(t * s));
      for (size_t i = 0; i < bv.size(); ++i) bv[i] = (i * 7) % 3 == 0 ? -INFINITY : 0.0f;
      bindings.tensors["bias"] = HostTensor::from_f32({t, s}, bv);
    }
    be.check(g, bindings, moat::cat("attention with sinks t", t, " s", s, biased ? " sparse" : ""));
  }
  for (DType cache_type : {DType::f32, DType::f16, DType::q8_0}) {
    Graph g;
    Builder b(g);
    const int64_t rows = 50, w = 64, l = 32, t = 3;
    NodeId cache = b.input("cache", tensor_type(cache_type, {rows, w}));
    NodeId fresh = b.input("fresh", tensor_type(DType::f32, {t, w}));
    NodeId pos = b.input("pos", tensor_type(DType::i32, {t}));
    NodeId q = b.input("q", tensor_type(DType::f32, {t, 4, w}));
    NodeId stored = cache_type == DType::f32 ? fresh : b.cast(fresh, cache_type);
    NodeId updated = b.write_rows(cache, stored, pos);                            // [rows, w]
    NodeId keys = b.reshape(updated, static_shape({rows, 1, w}));                  // [rows, 1, w]
    b.output(b.attention(q, keys, b.slice(keys, 2, 0, l), pos, 0.3, true));       // [t, 4, l]
    b.output(cache_type == DType::q8_0 ? b.cast(updated, DType::f32) : updated);  // q8_0: compared decoded
    Bindings bindings;
    bindings.tensors["cache"] = random_tensor(cache_type, {rows, w}, 7);
    bindings.tensors["fresh"] = random_tensor(DType::f32, {t, w}, 8);
    bindings.tensors["q"] = random_tensor(DType::f32, {t, 4, w}, 9);
    bindings.tensors["pos"] = HostTensor::from_i64({t}, std::vector<int64_t>{20, 21, 22}, DType::i32);
    be.check(g, bindings, moat::cat("write_rows + absorbed attention, ", dtype_name(cache_type), " cache"));
  }
  // Several sequences in one cache (continuous batching): each query reads its own
  // sequence's rows key_start..pos, decode (split over keys) and a longer pass.
  for (auto [t, splits_matter] : {std::pair{int64_t{4}, true}, std::pair{int64_t{24}, false}}) {
    Graph g;
    Builder b(g);
    const int64_t rows = 96, w = 64, l = 32;
    NodeId cache = b.input("cache", tensor_type(DType::f16, {rows, w}));
    NodeId fresh = b.input("fresh", tensor_type(DType::f32, {t, w}));
    NodeId at = b.input("at", tensor_type(DType::i32, {t}));
    NodeId start = b.input("start", tensor_type(DType::i32, {t}));
    NodeId q = b.input("q", tensor_type(DType::f32, {t, 4, w}));
    NodeId updated = b.write_rows(cache, b.cast(fresh, DType::f16), at);          // [rows, w]
    NodeId keys = b.reshape(updated, static_shape({rows, 1, w}));                  // [rows, 1, w]
    b.output(b.attention(q, keys, b.slice(keys, 2, 0, l), at, 0.3, true, start));  // [t, 4, l]
    Bindings bindings;
    bindings.tensors["cache"] = random_tensor(DType::f16, {rows, w}, 10);
    bindings.tensors["fresh"] = random_tensor(DType::f32, {t, w}, 11);
    bindings.tensors["q"] = random_tensor(DType::f32, {t, 4, w}, 12);
    std::vector<int64_t> at_rows, starts;  // sequence i % 4 owns rows 24 i .. 24 i + 23
    for (int64_t i = 0; i < t; ++i) {
      const int64_t seq = i % 4, past = splits_matter ? 3 + 5 * seq : i / 4;
      at_rows.push_back(24 * seq + past);
      starts.push_back(24 * seq);
    }
    bindings.tensors["at"] = HostTensor::from_i64({t}, at_rows, DType::i32);
    bindings.tensors["start"] = HostTensor::from_i64({t}, starts, DType::i32);
    be.check(g, bindings, moat::cat("attention from key starts, t", t));
  }
  {  // rows that are a rounded concat of computed parts (MLA's normalised latent | roped
     // key): one loop per part on the CPU
    Graph g;
    Builder b(g);
    NodeId dst = b.input("dst", tensor_type(DType::f16, {6, 7}));
    NodeId a = b.input("a", tensor_type(DType::f32, {2, 4}));
    NodeId c = b.input("c", tensor_type(DType::f32, {2, 3}));
    NodeId at = b.input("at", tensor_type(DType::i32, {2}));
    NodeId row = b.concat({b.mul(a, b.scalar(DType::f32, 3.0)), b.unary(Op::exp, c)}, 1);  // [2, 7]
    b.output(b.write_rows(dst, b.cast(b.unary(Op::neg, row), DType::f16), at));
    Bindings bindings;
    bindings.tensors["dst"] = random_tensor(DType::f16, {6, 7}, 1);
    bindings.tensors["a"] = random_tensor(DType::f32, {2, 4}, 2);
    bindings.tensors["c"] = random_tensor(DType::f32, {2, 3}, 3);
    bindings.tensors["at"] = HostTensor::from_i64({2}, std::vector<int64_t>{5, 0}, DType::i32);
    be.check(g, bindings, "write_rows of a concat's parts");
  }
  {  // write_rows whose destination is read again: a copy, then the rows
    Graph g;
    Builder b(g);
    NodeId dst = b.input("dst", tensor_type(DType::f32, {6, 5}));
    NodeId rows = b.input("rows", tensor_type(DType::f32, {2, 5}));
    NodeId at = b.input("at", tensor_type(DType::i32, {2}));
    b.output(b.write_rows(dst, rows, at));
    b.output(b.add(dst, dst));
    Bindings bindings;
    bindings.tensors["dst"] = random_tensor(DType::f32, {6, 5}, 1);
    bindings.tensors["rows"] = random_tensor(DType::f32, {2, 5}, 2);
    bindings.tensors["at"] = HostTensor::from_i64({2}, std::vector<int64_t>{4, 1}, DType::i32);
    be.check(g, bindings, "write_rows, not in place");
  }
  // "v4": DeepSeek-V4's top-k layers (sqrt(softplus) scores, noaux_tc, clamped SwiGLU);
  // "given": its hash layers (each token's experts an input)
  for (const char* method : {"greedy", "group_limited_greedy", "noaux_tc", "v4", "given"}) {
    // 3 tokens: an expert's slots one by one; 16 tokens (48 slots of 8 experts): the
    // CPU groups the slots of each expert (lower_matmul.cpp, grouped_experts).
    for (auto [wd, t] : {std::pair{DType::f32, int64_t{3}}, std::pair{DType::q8_0, int64_t{3}},
                         std::pair{DType::f32, int64_t{16}}, std::pair{DType::q8_0, int64_t{16}}}) {
      Graph g;
      Builder b(g);
      const int64_t d = 32, f = 32, e = 8;
      NodeId x = b.input("x", tensor_type(DType::f32, {t, d}));
      NodeId router = b.input("router", tensor_type(DType::f32, {e, d}));
      NodeId gate = b.input("gate", tensor_type(wd, {e, f, d}));
      NodeId up = b.input("up", tensor_type(wd, {e, f, d}));
      NodeId down = b.input("down", tensor_type(wd, {e, d, f}));
      std::optional<NodeId> bias;
      MoeParams p;
      p.n_used = 3;
      p.method = method;
      p.n_groups = 4;
      p.topk_groups = 2;
      p.norm_topk = true;
      p.scale = 2.5;
      std::optional<NodeId> experts;
      if (std::string(method) == "noaux_tc") {
        bias = b.input("bias", tensor_type(DType::f32, {e}));
        p.scoring = "sigmoid";
      } else if (std::string(method) == "v4" || std::string(method) == "given") {
        p.scoring = "sqrtsoftplus";
        p.swiglu_limit = 0.5;
        p.method = std::string(method) == "v4" ? "noaux_tc" : "given";
        if (p.method == "noaux_tc") bias = b.input("bias", tensor_type(DType::f32, {e}));
        else experts = b.input("experts", tensor_type(DType::i32, {t, p.n_used}));
      }
      b.output(b.moe(x, router, gate, up, down, bias, p, experts));
      Bindings bindings;
      bindings.tensors["x"] = random_tensor(DType::f32, {t, d}, 1);
      bindings.tensors["router"] = random_tensor(DType::f32, {e, d}, 2);
      bindings.tensors["gate"] = random_tensor(wd, {e, f, d}, 3);
      bindings.tensors["up"] = random_tensor(wd, {e, f, d}, 4);
      bindings.tensors["down"] = random_tensor(wd, {e, d, f}, 5);
      if (bias) bindings.tensors["bias"] = random_tensor(DType::f32, {e}, 6);
      if (experts) {
        std::vector<int64_t> ids(static_cast<size_t>(t * p.n_used));
        for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 5 + i / 3) % e);
        bindings.tensors["experts"] = HostTensor::from_i64({t, p.n_used}, ids, DType::i32);
      }
      be.check(g, bindings,
               std::string("moe ") + method + " " + std::string(dtype_name(wd)) + " t" + std::to_string(t));
    }
  }
}

}  // namespace moat::testing::cases
