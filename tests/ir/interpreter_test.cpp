// The reference interpreter against hand-computed values: every primitive op, the
// dtypes the type rules allow, binding and index errors.
//
// Tolerances: results of plain f32 math are compared with a relative / absolute
// tolerance of 1e-6 (kTol); exactly representable results are compared exactly.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "ir/builder.h"
#include "ir/interpreter.h"
#include "ir/quant.h"
#include "ir/tensor.h"
#include "support/error.h"
#include "support/half.h"

using namespace moat::ir;
using moat::UserError;
using moat::bf16_to_f32;
using moat::f16_to_f32;
using moat::f32_to_bf16;
using moat::f32_to_f16;

namespace {

constexpr float kTol = 1e-6f;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

HostTensor f32t(std::vector<int64_t> shape, std::vector<float> values, DType dtype = DType::f32) {
  return HostTensor::from_f32(std::move(shape), values, dtype);
}
HostTensor i64t(std::vector<int64_t> shape, std::vector<int64_t> values, DType dtype = DType::i64) {
  return HostTensor::from_i64(std::move(shape), values, dtype);
}
TensorType tt(DType dtype, std::vector<int64_t> dims) { return TensorType{dtype, static_shape(dims)}; }

HostTensor run1(Graph& g, NodeId out, Bindings bindings = {}) {
  g.outputs = {out};
  auto results = interpret(g, bindings);
  REQUIRE(results.size() == 1);
  return results[0];
}

void check_values(const std::vector<float>& got, const std::vector<float>& want, float tol = kTol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element ", i, ": got ", got[i], ", want ", want[i]);
    if (std::isnan(want[i])) {
      CHECK(std::isnan(got[i]));
    } else if (std::isinf(want[i])) {
      CHECK(got[i] == want[i]);
    } else {
      CHECK(std::fabs(got[i] - want[i]) <= tol * std::max(1.0f, std::fabs(want[i])));
    }
  }
}

// Deterministic pseudo-random values in [-1, 1).
std::vector<float> random_values(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  for (float& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<float>(seed >> 8) / static_cast<float>(1 << 23) - 1.0f;
  }
  return v;
}

// out[m, n] = sum_k a[m, k] * w[n, k] in f32, k ascending.
std::vector<float> naive_matmul_bt(const std::vector<float>& a, const std::vector<float>& w, int64_t m, int64_t n,
                                   int64_t k) {
  std::vector<float> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int64_t kk = 0; kk < k; ++kk) acc += a[static_cast<size_t>(i * k + kk)] * w[static_cast<size_t>(j * k + kk)];
      out[static_cast<size_t>(i * n + j)] = acc;
    }
  return out;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no UserError)";
}

}  // namespace

TEST_CASE("HostTensor: encodings, borrowing and byte checks") {
  auto h = f32t({2}, {1.0f + 3.0f / 4096.0f, 65520.0f}, DType::f16);
  check_values(h.to_f32(), {1.0f + 1.0f / 1024.0f, kInf}, 0.0f);  // rounded to f16
  auto b = f32t({1}, {1.0f + 3.0f / 512.0f}, DType::bf16);
  CHECK(b.to_f32()[0] == 1.0f + 1.0f / 128.0f);
  CHECK(f32t({1}, {0.3f}, DType::f8_e4m3).to_f32()[0] == 0.3125f);
  CHECK(i64t({3}, {-1, 300, 7}, DType::i8).to_i64() == std::vector<int64_t>{-1, 44, 7});  // wraps
  CHECK(f32t({3}, {-2.7f, 1e10f, kNaN}, DType::i32).to_i64() == std::vector<int64_t>{-2, INT32_MAX, 0});
  CHECK(i64t({3}, {0, 5, -1}, DType::boolean).to_f32() == std::vector<float>{0, 1, 1});

  std::vector<uint8_t> raw(3 * 34, 0);
  auto borrowed = HostTensor::borrowed(DType::q8_0, {3, 32}, raw);
  CHECK(borrowed.is_borrowed());
  CHECK(borrowed.bytes().data() == raw.data());  // not copied
  CHECK(borrowed.to_f32() == std::vector<float>(96, 0.0f));
  CHECK_THROWS_AS(HostTensor::borrowed(DType::q8_0, {3, 32}, std::span(raw).first(100)), UserError);
  CHECK_THROWS_AS(HostTensor::zeros(DType::q4_k, {2, 100}), UserError);  // not whole blocks
  CHECK_THROWS_AS(f32t({2}, {1, 2}).to_i64(), UserError);
  CHECK_THROWS_AS(f32t({2}, {1}), UserError);
  CHECK(HostTensor::zeros(DType::q6_k, {2, 256}).to_f32() == std::vector<float>(512, 0.0f));
  auto r = f32t({2, 3}, {1, 2, 3, 4, 5, 6}).reshaped({3, 2});
  CHECK(r.shape() == std::vector<int64_t>{3, 2});
  CHECK_THROWS_AS(r.reshaped({4}), UserError);
}

TEST_CASE("unary ops on f32, and neg / abs on integers (wrapping)") {
  const std::vector<float> x = {0.0f, 1.0f, 4.0f, -2.0f, 0.5f};
  struct Case {
    Op op;
    double (*f)(double);
  };
  const Case cases[] = {
      {Op::neg, [](double v) { return -v; }},
      {Op::abs, [](double v) { return std::fabs(v); }},
      {Op::exp, [](double v) { return std::exp(v); }},
      {Op::log, [](double v) { return std::log(v); }},
      {Op::sqrt, [](double v) { return std::sqrt(v); }},
      {Op::rsqrt, [](double v) { return 1.0 / std::sqrt(v); }},
      {Op::recip, [](double v) { return 1.0 / v; }},
      {Op::sin, [](double v) { return std::sin(v); }},
      {Op::cos, [](double v) { return std::cos(v); }},
      {Op::tanh, [](double v) { return std::tanh(v); }},
      {Op::sigmoid, [](double v) { return 1.0 / (1.0 + std::exp(-v)); }},
      {Op::silu, [](double v) { return v / (1.0 + std::exp(-v)); }},
  };
  for (const Case& c : cases) {
    INFO(op_name(c.op));
    Graph g;
    Builder b(g);
    NodeId in = b.input("x", tt(DType::f32, {5}));
    std::vector<float> want;
    for (float v : x) want.push_back(static_cast<float>(c.f(v)));
    check_values(run1(g, b.unary(c.op, in), {{{"x", f32t({5}, x)}}}).to_f32(), want);
  }
  Graph g;
  Builder b(g);
  NodeId in = b.input("x", tt(DType::i8, {3}));
  NodeId neg = b.unary(Op::neg, in), abs = b.unary(Op::abs, in);
  g.outputs = {neg, abs};
  auto out = interpret(g, {{{"x", i64t({3}, {-128, 5, -7}, DType::i8)}}});
  CHECK(out[0].dtype() == DType::i8);
  CHECK(out[0].to_i64() == std::vector<int64_t>{-128, -5, 7});  // -(-128) wraps in i8
  CHECK(out[1].to_i64() == std::vector<int64_t>{-128, 5, 7});
}

TEST_CASE("binary ops: numpy broadcasting, NaN rules, comparisons give bool") {
  Graph g;
  Builder b(g);
  NodeId a = b.input("a", tt(DType::f32, {2, 3}));
  NodeId row = b.input("row", tt(DType::f32, {3}));
  NodeId col = b.input("col", tt(DType::f32, {2, 1}));
  Bindings in{{{"a", f32t({2, 3}, {1, 2, 3, 4, 5, 6})},
               {"row", f32t({3}, {10, kNaN, -1})},
               {"col", f32t({2, 1}, {2, -3})}}};
  auto eval = [&](NodeId out) { return run1(g, out, in).to_f32(); };
  check_values(eval(b.add(a, row)), {11, kNaN, 2, 14, kNaN, 5});
  check_values(eval(b.sub(col, row)), {-8, kNaN, 3, -13, kNaN, -2});  // [2,1] - [3] -> [2,3]
  check_values(eval(b.mul(a, col)), {2, 4, 6, -12, -15, -18});
  check_values(eval(b.div(a, col)), {0.5f, 1, 1.5f, -4.0f / 3, -5.0f / 3, -2});
  check_values(eval(b.binary(Op::max, a, row)), {10, kNaN, 3, 10, kNaN, 6});
  check_values(eval(b.binary(Op::min, a, row)), {1, kNaN, -1, 4, kNaN, -1});
  check_values(eval(b.binary(Op::pow, a, col)), {1, 4, 9, 1.0f / 64, 1.0f / 125, 1.0f / 216});
  check_values(eval(b.add(a, b.scalar(DType::f32, 0.5))), {1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f});
  HostTensor lt = run1(g, b.binary(Op::cmp_lt, a, row), in);
  CHECK(lt.dtype() == DType::boolean);
  CHECK(lt.to_i64() == std::vector<int64_t>{1, 0, 0, 1, 0, 0});  // NaN compares false
  CHECK(run1(g, b.binary(Op::cmp_le, a, b.scalar(DType::f32, 3)), in).to_i64() ==
        std::vector<int64_t>{1, 1, 1, 0, 0, 0});
  CHECK(run1(g, b.binary(Op::cmp_eq, row, row), in).to_i64() == std::vector<int64_t>{1, 0, 1});
}

TEST_CASE("binary ops on integers: wrap-around, truncating division, division by zero") {
  Graph g;
  Builder b(g);
  NodeId a = b.input("a", tt(DType::i32, {4}));
  NodeId c = b.input("c", tt(DType::i32, {4}));
  NodeId u = b.input("u", tt(DType::u8, {2}));
  NodeId v = b.input("v", tt(DType::u8, {2}));
  Bindings in{{{"a", i64t({4}, {-7, 7, INT32_MAX, 9}, DType::i32)},
               {"c", i64t({4}, {2, -2, 1, 3}, DType::i32)},
               {"u", i64t({2}, {3, 250}, DType::u8)},
               {"v", i64t({2}, {5, 10}, DType::u8)}}};
  CHECK(run1(g, b.div(a, c), in).to_i64() == std::vector<int64_t>{-3, -3, INT32_MAX, 3});
  CHECK(run1(g, b.add(a, c), in).to_i64() == std::vector<int64_t>{-5, 5, INT32_MIN, 12});
  CHECK(run1(g, b.mul(a, c), in).to_i64() == std::vector<int64_t>{-14, -14, INT32_MAX, 27});
  CHECK(run1(g, b.binary(Op::max, a, c), in).to_i64() == std::vector<int64_t>{2, 7, INT32_MAX, 9});
  CHECK(run1(g, b.sub(u, v), in).to_i64() == std::vector<int64_t>{254, 240});
  CHECK(run1(g, b.add(u, v), in).to_i64() == std::vector<int64_t>{8, 4});
  CHECK(run1(g, b.binary(Op::cmp_lt, u, v), in).to_i64() == std::vector<int64_t>{1, 0});
  NodeId zero = b.scalar(DType::i32, 0);
  std::string msg = error_of([&] { run1(g, b.div(a, zero), in); });
  CHECK(msg.find("division by zero") != std::string::npos);
  CHECK(msg.find("(div)") != std::string::npos);

  Graph g64;
  Builder b64(g64);
  NodeId x = b64.input("x", tt(DType::i64, {2}));
  NodeId bools = b64.input("p", tt(DType::boolean, {2}));
  Bindings in64{{{"x", i64t({2}, {INT64_MIN, 3000000000LL})}, {"p", i64t({2}, {1, 0}, DType::boolean)}}};
  CHECK(run1(g64, b64.div(x, b64.scalar(DType::i64, -1)), in64).to_i64() ==
        std::vector<int64_t>{INT64_MIN, -3000000000LL});
  CHECK(run1(g64, b64.mul(x, b64.scalar(DType::i64, 2)), in64).to_i64() == std::vector<int64_t>{0, 6000000000LL});
  CHECK(run1(g64, b64.binary(Op::cmp_eq, bools, b64.scalar(DType::boolean, 1)), in64).to_i64() ==
        std::vector<int64_t>{1, 0});
}

TEST_CASE("f16 and bf16 results are rounded to their dtype") {
  Graph g;
  Builder b(g);
  NodeId h = b.input("h", tt(DType::f16, {3}));
  NodeId bf = b.input("bf", tt(DType::bf16, {2}));
  Bindings in{{{"h", f32t({3}, {1.0f, 1.0f, 1000.0f}, DType::f16)}, {"bf", f32t({2}, {1.0f, 3.0f}, DType::bf16)}}};
  // 1 + 2^-11 is a tie -> even (1.0); 1 + 3*2^-12 rounds up to 1 + 2^-10; 1000 + 0.2 -> 1000.
  HostTensor hs = run1(g, b.add(h, b.constant(tt(DType::f16, {3}), {1.0 / 2048, 3.0 / 4096, 0.2})), in);
  CHECK(hs.dtype() == DType::f16);
  CHECK(hs.to_f32() == std::vector<float>{1.0f, 1.0f + 1.0f / 1024, 1000.0f});
  // 3 * (1 + 2^-7) = 3.0234375 lies halfway between bf16 neighbours: even -> 3.03125.
  HostTensor bs = run1(g, b.mul(bf, b.constant(tt(DType::bf16, {2}), {1.0 + 1.0 / 128, 1.0 + 1.0 / 128})), in);
  CHECK(bs.dtype() == DType::bf16);
  CHECK(bs.to_f32() == std::vector<float>{1.0078125f, 3.03125f});
  HostTensor ex = run1(g, b.unary(Op::exp, b.cast(h, DType::bf16)), in);
  CHECK(ex.to_f32()[0] == bf16_to_f32(f32_to_bf16(std::exp(1.0f))));
}

TEST_CASE("select broadcasts its condition and copies either branch exactly") {
  Graph g;
  Builder b(g);
  NodeId cond = b.input("c", tt(DType::boolean, {2, 1}));
  NodeId x = b.input("x", tt(DType::i32, {2, 3}));
  NodeId y = b.scalar(DType::i32, -1);
  Bindings in{{{"c", i64t({2, 1}, {0, 1}, DType::boolean)}, {"x", i64t({2, 3}, {1, 2, 3, 4, 5, 6}, DType::i32)}}};
  HostTensor out = run1(g, b.select(cond, x, y), in);
  CHECK(out.dtype() == DType::i32);
  CHECK(out.to_i64() == std::vector<int64_t>{-1, -1, -1, 4, 5, 6});
  NodeId hf = b.cast(x, DType::f16);
  CHECK(run1(g, b.select(cond, b.scalar(DType::f16, 0.5), hf), in).to_f32() == std::vector<float>{1, 2, 3, 0.5f, 0.5f, 0.5f});
}

TEST_CASE("reductions keep the axis as size 1, negative axes, integers, NaN propagates in max") {
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", tt(DType::f32, {2, 3, 2}));
  Bindings in{{{"x", f32t({2, 3, 2}, {1, 2, 3, 4, 5, 6, -1, -2, -3, -4, kNaN, 0})}}};
  HostTensor s1 = run1(g, b.reduce(Op::reduce_sum, x, 1), in);
  CHECK(s1.shape() == std::vector<int64_t>{2, 1, 2});
  check_values(s1.to_f32(), {9, 12, kNaN, -6});
  HostTensor m = run1(g, b.reduce(Op::reduce_max, x, -1), in);
  CHECK(m.shape() == std::vector<int64_t>{2, 3, 1});
  check_values(m.to_f32(), {2, 4, 6, -1, -3, kNaN});
  check_values(run1(g, b.reduce(Op::reduce_sum, x, -3), in).to_f32(), {0, 0, 0, 0, kNaN, 6});

  NodeId i = b.input("i", tt(DType::i8, {1, 3}));
  Bindings ini{{{"x", f32t({2, 3, 2}, std::vector<float>(12, 0))}, {"i", i64t({1, 3}, {100, 100, -7}, DType::i8)}}};
  CHECK(run1(g, b.reduce(Op::reduce_sum, i, 1), ini).to_i64() == std::vector<int64_t>{-63});  // 193 wraps in i8
  CHECK(run1(g, b.reduce(Op::reduce_max, i, 0), ini).to_i64() == std::vector<int64_t>{100, 100, -7});

  NodeId h = b.input("h", tt(DType::f16, {1, 2}));
  Bindings inh = ini;
  inh.tensors.emplace("h", f32t({1, 2}, {2048, 1}, DType::f16));
  CHECK(run1(g, b.reduce(Op::reduce_sum, h, 1), inh).to_f32() == std::vector<float>{2048});  // 2049 -> f16 2048
}

TEST_CASE("matmul: plain, transposed, batch broadcasting, f16 / bf16 operands") {
  Graph g;
  Builder b(g);
  NodeId a = b.input("a", tt(DType::f32, {2, 3}));
  NodeId kn = b.input("kn", tt(DType::f32, {3, 2}));
  NodeId nk = b.input("nk", tt(DType::bf16, {2, 3}));
  Bindings in{{{"a", f32t({2, 3}, {1, 2, 3, 4, 5, 6})},
               {"kn", f32t({3, 2}, {1, 0, 0, 1, 1, -1})},
               {"nk", f32t({2, 3}, {1, 0, 1, 0, 1, -1}, DType::bf16)}}};
  check_values(run1(g, b.matmul(a, kn, false), in).to_f32(), {4, -1, 10, -1});
  check_values(run1(g, b.matmul(a, nk, true), in).to_f32(), {4, -1, 10, -1});

  // [2, 1, 1, 3] x [3, 2, 3]^T -> [2, 3, 1, 2]
  NodeId ab = b.input("ab", tt(DType::f32, {2, 1, 1, 3}));
  NodeId bb = b.input("bb", tt(DType::f32, {3, 2, 3}));
  in.tensors.emplace("ab", f32t({2, 1, 1, 3}, {1, 1, 1, 1, 2, 3}));
  in.tensors.emplace("bb", f32t({3, 2, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 2, 0, 0, 0, 0, 2}));
  HostTensor out = run1(g, b.matmul(ab, bb, true), in);
  CHECK(out.shape() == std::vector<int64_t>{2, 3, 1, 2});
  check_values(out.to_f32(), {1, 1, 1, 3, 2, 2, 1, 2, 3, 6, 2, 6});

  NodeId h = b.input("h", tt(DType::f16, {1, 2}));
  NodeId w = b.input("w", tt(DType::f32, {1, 2}));
  in.tensors.emplace("h", f32t({1, 2}, {1, 1}, DType::f16));
  in.tensors.emplace("w", f32t({1, 2}, {1, 1.0f / 2048}));
  HostTensor hr = run1(g, b.matmul(h, w, true), in);
  CHECK(hr.dtype() == DType::f16);
  CHECK(hr.to_f32() == std::vector<float>{1.0f});  // 1 + 2^-11 in f32, rounded to f16
}

TEST_CASE("matmul with quantised B matches dequantize_row + a naive f32 matmul") {
  const int64_t m = 3, k = 512, n = 5;
  std::vector<float> av = random_values(static_cast<size_t>(m * k), 1);
  std::vector<float> wv = random_values(static_cast<size_t>(n * k), 2);
  // q4_k / q6_k from raw blocks: random bytes with sane f16 scales.
  auto raw_blocks = [&](DType t, uint32_t seed) {
    std::vector<uint8_t> raw(static_cast<size_t>(*dtype_row_bytes(t, k) * n));
    for (uint8_t& byte : raw) byte = static_cast<uint8_t>((seed = seed * 1664525u + 1013904223u) >> 24);
    for (size_t blk = 0; blk < raw.size() / static_cast<size_t>(dtype_block_bytes(t)); ++blk) {
      uint8_t* base = raw.data() + blk * static_cast<size_t>(dtype_block_bytes(t));
      uint16_t d = f32_to_f16(0.01f), dmin = f32_to_f16(0.02f);
      if (t == DType::q4_k) {
        std::memcpy(base, &d, 2);
        std::memcpy(base + 2, &dmin, 2);
      } else {
        std::memcpy(base + 208, &d, 2);  // q6_k: d is the last field
      }
    }
    return HostTensor::from_bytes(t, {n, k}, raw);
  };
  const HostTensor weights[] = {f32t({n, k}, wv, DType::q8_0), f32t({n, k}, wv, DType::q4_0),
                                raw_blocks(DType::q4_k, 3), raw_blocks(DType::q6_k, 4)};
  for (const HostTensor& w : weights) {
    INFO(dtype_name(w.dtype()));
    Graph g;
    Builder b(g);
    NodeId a = b.input("a", tt(DType::f32, {m, k}));
    NodeId p = b.param("w", tt(w.dtype(), {n, k}));
    HostTensor out = run1(g, b.matmul(a, p, true), {{{"a", f32t({m, k}, av)}, {"w", w}}});
    std::vector<float> deq(static_cast<size_t>(n * k));
    for (int64_t r = 0; r < n; ++r)
      dequantize_row(w.dtype(), w.bytes().data() + r * *dtype_row_bytes(w.dtype(), k), deq.data() + r * k, k);
    std::vector<float> want = naive_matmul_bt(av, deq, m, n, k);
    check_values(out.to_f32(), want, 1e-5f);
    if (w.dtype() == DType::q8_0 || w.dtype() == DType::q4_0) {  // and near the unquantised product
      std::vector<float> got = out.to_f32(), exact = naive_matmul_bt(av, wv, m, n, k);
      double err = 0, norm = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        err += (got[i] - exact[i]) * (got[i] - exact[i]);
        norm += exact[i] * exact[i];
      }
      CHECK(std::sqrt(err / norm) < (w.dtype() == DType::q8_0 ? 0.01 : 0.15));  // relative RMS error
    }
  }
}

TEST_CASE("matmul with an f8_e4m3 B and f32 block scales") {
  Graph g;
  Builder b(g);
  NodeId a = b.input("a", tt(DType::f32, {2, 1, 4}));
  NodeId w = b.param("w", tt(DType::f8_e4m3, {2, 3, 4}));
  NodeId s = b.param("s", tt(DType::f32, {2, 2, 2}));
  std::vector<float> rows = {1, 0.5f, -2, 1.5f, 0.25f, 1, 1, -1, 2, 2, 0.5f, 0.75f};
  std::vector<float> wv = rows;
  wv.insert(wv.end(), rows.begin(), rows.end());
  Bindings in{{{"a", f32t({2, 1, 4}, {1, 2, 3, 4, 1, 2, 3, 4})},
               {"w", f32t({2, 3, 4}, wv, DType::f8_e4m3)},
               {"s", f32t({2, 2, 2}, {2, 10, 0.5f, -1, 1, 1, 1, 1})}}};
  // value = fp8(w[n, k]) * s[n / 2][k / 3]; batch 1 has unit scales.
  HostTensor out = run1(g, b.matmul_fp8(a, w, s, 2, 3), in);
  CHECK(out.shape() == std::vector<int64_t>{2, 1, 3});
  check_values(out.to_f32(), {52, -29.5f, 0.75f, 2, 1.25f, 10.5f});
}

TEST_CASE("gather: rows of any dtype, quantised rows stay blocks, out-of-range index is a UserError") {
  Graph g;
  Builder b(g);
  NodeId table = b.param("t", tt(DType::f32, {3, 2}));
  NodeId qt = b.param("q", tt(DType::q8_0, {4, 32}));
  NodeId idx = b.input("i", tt(DType::i64, {2, 2}));
  std::vector<float> qv = random_values(128, 7);
  HostTensor q = f32t({4, 32}, qv, DType::q8_0);
  Bindings in{{{"t", f32t({3, 2}, {1, 2, 3, 4, 5, 6})}, {"q", q}, {"i", i64t({2, 2}, {2, 0, 1, 2})}}};
  HostTensor rows = run1(g, b.gather(table, idx), in);
  CHECK(rows.shape() == std::vector<int64_t>{2, 2, 2});
  CHECK(rows.to_f32() == std::vector<float>{5, 6, 1, 2, 3, 4, 5, 6});

  NodeId idx32 = b.input("j", tt(DType::i32, {2}));
  in.tensors.emplace("j", i64t({2}, {3, 1}, DType::i32));
  HostTensor qrows = run1(g, b.gather(qt, idx32), in);
  CHECK(qrows.dtype() == DType::q8_0);
  CHECK(std::equal(qrows.bytes().begin(), qrows.bytes().begin() + 34, q.bytes().begin() + 3 * 34));
  std::vector<float> all = q.to_f32(), got = run1(g, b.cast(b.gather(qt, idx32), DType::f32), in).to_f32();
  CHECK(std::equal(got.begin(), got.begin() + 32, all.begin() + 96));
  CHECK(std::equal(got.begin() + 32, got.end(), all.begin() + 32));

  in.tensors.at("i") = i64t({2, 2}, {0, 1, 3, 0});
  std::string msg = error_of([&] { run1(g, b.gather(table, idx), in); });
  CHECK(msg.find("index 3 is out of range [0, 3)") != std::string::npos);
  CHECK(msg.find("(gather)") != std::string::npos);
  in.tensors.at("i") = i64t({2, 2}, {0, -1, 0, 0});
  CHECK(error_of([&] { run1(g, b.gather(table, idx), in); }).find("index -1") != std::string::npos);
}

TEST_CASE("take_along along the last axis, an out-of-range index is a UserError") {
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", tt(DType::f32, {2, 3}));
  NodeId i = b.input("i", tt(DType::i32, {2, 2}));
  Bindings in{{{"x", f32t({2, 3}, {1, 2, 3, 4, 5, 6})}, {"i", i64t({2, 2}, {2, 2, 0, 1}, DType::i32)}}};
  CHECK(run1(g, b.take_along(x, i), in).to_f32() == std::vector<float>{3, 3, 4, 5});
  in.tensors.at("i") = i64t({2, 2}, {0, 0, 3, 0}, DType::i32);
  CHECK(error_of([&] { run1(g, b.take_along(x, i), in); }).find("index 3 is out of range [0, 3)") !=
        std::string::npos);
}

TEST_CASE("views: reshape, permute, slice, concat, broadcast, quantised views move whole blocks") {
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", tt(DType::f32, {2, 3, 2}));
  std::vector<float> xv = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  Bindings in{{{"x", f32t({2, 3, 2}, xv)}}};
  HostTensor r = run1(g, b.reshape(x, static_shape({3, 4})), in);
  CHECK(r.shape() == std::vector<int64_t>{3, 4});
  CHECK(r.to_f32() == xv);
  HostTensor p = run1(g, b.permute(x, {2, 0, 1}), in);
  CHECK(p.shape() == std::vector<int64_t>{2, 2, 3});
  CHECK(p.to_f32() == std::vector<float>{0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11});
  CHECK(run1(g, b.slice(x, -2, 1, 3), in).to_f32() == std::vector<float>{2, 3, 4, 5, 8, 9, 10, 11});
  CHECK(run1(g, b.slice(x, 0, 1, 1), in).numel() == 0);
  HostTensor c = run1(g, b.concat({b.slice(x, 1, 2, 3), x, b.slice(x, 1, 0, 1)}, 1), in);
  CHECK(c.shape() == std::vector<int64_t>{2, 5, 2});
  CHECK(c.to_f32() == std::vector<float>{4, 5, 0, 1, 2, 3, 4, 5, 0, 1, 10, 11, 6, 7, 8, 9, 10, 11, 6, 7});
  HostTensor bc = run1(g, b.broadcast(b.slice(x, 1, 0, 1), static_shape({2, 2, 2, 2})), in);
  CHECK(bc.to_f32() == std::vector<float>{0, 1, 0, 1, 6, 7, 6, 7, 0, 1, 0, 1, 6, 7, 6, 7});

  NodeId q = b.param("q", tt(DType::q4_0, {2, 3, 64}));
  std::vector<float> qv = random_values(384, 9);
  HostTensor qt = f32t({2, 3, 64}, qv, DType::q4_0);
  in.tensors.emplace("q", qt);
  const std::vector<float> deq = qt.to_f32();  // [2, 3, 64]
  HostTensor qs = run1(g, b.slice(q, -1, 32, 64), in);
  CHECK(qs.dtype() == DType::q4_0);
  std::vector<float> got = run1(g, b.cast(b.slice(q, -1, 32, 64), DType::f32), in).to_f32();
  for (int64_t row = 0; row < 6; ++row)
    for (int64_t j = 0; j < 32; ++j) CHECK(got[static_cast<size_t>(row * 32 + j)] == deq[static_cast<size_t>(row * 64 + 32 + j)]);
  got = run1(g, b.cast(b.permute(q, {1, 0, 2}), DType::f32), in).to_f32();  // [3, 2, 64]
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t e = 0; e < 64; ++e)
        CHECK(got[static_cast<size_t>((i * 2 + j) * 64 + e)] == deq[static_cast<size_t>((j * 3 + i) * 64 + e)]);
  got = run1(g, b.cast(b.reshape(q, static_shape({6, 64})), DType::f16), in).to_f32();
  CHECK(got[100] == f16_to_f32(f32_to_f16(deq[100])));
}

TEST_CASE("cast: truncation toward zero, saturation, wrap, bool, fp8, dequantisation") {
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", tt(DType::f32, {6}));
  NodeId i = b.input("i", tt(DType::i32, {3}));
  Bindings in{{{"x", f32t({6}, {-2.7f, 2.7f, 1e10f, kNaN, 0.3f, -0.0f})}, {"i", i64t({3}, {300, -1, 0}, DType::i32)}}};
  CHECK(run1(g, b.cast(x, DType::i32), in).to_i64() == std::vector<int64_t>{-2, 2, INT32_MAX, 0, 0, 0});
  CHECK(run1(g, b.cast(x, DType::u8), in).to_i64() == std::vector<int64_t>{0, 2, 255, 0, 0, 0});
  CHECK(run1(g, b.cast(x, DType::boolean), in).to_i64() == std::vector<int64_t>{1, 1, 1, 1, 1, 0});
  std::vector<float> f8 = run1(g, b.cast(x, DType::f8_e4m3), in).to_f32();
  CHECK(f8[0] == -2.75f);
  CHECK(f8[1] == 2.75f);
  CHECK(std::isnan(f8[3]));
  CHECK(f8[4] == 0.3125f);
  CHECK(f8[5] == 0.0f);
  CHECK(run1(g, b.cast(i, DType::i8), in).to_i64() == std::vector<int64_t>{44, -1, 0});
  CHECK(run1(g, b.cast(i, DType::f16), in).to_f32() == std::vector<float>{300, -1, 0});
  CHECK(run1(g, b.cast(b.cast(i, DType::boolean), DType::f32), in).to_f32() == std::vector<float>{1, 1, 0});
  CHECK(run1(g, b.cast(b.cast(x, DType::f8_e4m3), DType::bf16), in).dtype() == DType::bf16);
}

TEST_CASE("topk: largest first, ties to the lower index, NaN ranks highest") {
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", tt(DType::f32, {2, 5}));
  Bindings in{{{"x", f32t({2, 5}, {1, 3, 3, -1, 3, 0, kNaN, 2, kNaN, -kInf})}}};
  HostTensor top = run1(g, b.topk(x, 3), in);
  CHECK(top.dtype() == DType::i32);
  CHECK(top.shape() == std::vector<int64_t>{2, 3});
  CHECK(top.to_i64() == std::vector<int64_t>{1, 2, 4, 1, 3, 2});
  CHECK(run1(g, b.topk(x, 5), in).to_i64() == std::vector<int64_t>{1, 2, 4, 0, 3, 1, 3, 2, 0, 4});
  NodeId h = b.input("h", tt(DType::bf16, {1, 3}));
  in.tensors.emplace("h", f32t({1, 3}, {1.0f, 1.001f, 0.5f}, DType::bf16));  // 1.001 rounds to 1 in bf16: a tie
  CHECK(run1(g, b.topk(h, 1), in).to_i64() == std::vector<int64_t>{0});
}

TEST_CASE("constant and iota, with symbolic sizes bound from inputs") {
  Graph g;
  Builder b(g);
  Dim t = b.symbol("T");
  NodeId x = b.input("x", {DType::f32, {t, Dim::of(2)}});
  Bindings in{{{"x", f32t({3, 2}, {0, 0, 0, 0, 0, 0})}}};
  CHECK(run1(g, b.iota(DType::i32, t), in).to_i64() == std::vector<int64_t>{0, 1, 2});
  CHECK(run1(g, b.iota(DType::f16, Dim::of(4)), in).to_f32() == std::vector<float>{0, 1, 2, 3});
  HostTensor c = run1(g, b.add(x, b.constant({DType::f32, {Dim::of(1), Dim::of(2)}}, {1.5, -2})), in);
  CHECK(c.shape() == std::vector<int64_t>{3, 2});
  CHECK(c.to_f32() == std::vector<float>{1.5f, -2, 1.5f, -2, 1.5f, -2});
  HostTensor one = run1(g, b.constant({DType::i8, {t}}, {1000.7}), in);
  CHECK(one.to_i64() == std::vector<int64_t>{127, 127, 127});  // saturated
  CHECK(run1(g, b.constant(tt(DType::i64, {2}), {-3.9, 5e18}), in).to_i64() == std::vector<int64_t>{-3, 5000000000000000000LL});
  CHECK(run1(g, b.constant(tt(DType::boolean, {2}), {0.5, 0}), in).to_i64() == std::vector<int64_t>{1, 0});
}

TEST_CASE("binding errors: missing input, wrong dtype or shape, symbol conflict, unbound symbol") {
  Graph g;
  Builder b(g);
  Dim t = b.symbol("T");
  Dim s = b.symbol("S");
  NodeId x = b.input("x", {DType::f32, {t, Dim::of(4)}});
  NodeId y = b.param("y", {DType::f32, {t, Dim::of(4)}});
  NodeId sum = b.add(x, y);
  g.outputs = {sum};
  HostTensor good = f32t({2, 4}, std::vector<float>(8, 1.0f));
  CHECK(interpret(g, {{{"x", good}, {"y", good}}})[0].to_f32() == std::vector<float>(8, 2.0f));

  std::string msg = error_of([&] { interpret(g, {{{"x", good}}}); });
  CHECK(msg.find("param \"y\"") != std::string::npos);
  CHECK(msg.find("no tensor bound") != std::string::npos);

  msg = error_of([&] { interpret(g, {{{"x", good}, {"y", f32t({2, 4}, std::vector<float>(8, 1), DType::f16)}}}); });
  CHECK(msg.find("declared f32[T, 4] but bound to f16[2, 4]") != std::string::npos);
  msg = error_of([&] { interpret(g, {{{"x", good}, {"y", f32t({2, 5}, std::vector<float>(10, 1))}}}); });
  CHECK(msg.find("declared f32[T, 4] but bound to f32[2, 5]") != std::string::npos);
  msg = error_of([&] { interpret(g, {{{"x", good}, {"y", f32t({3, 4}, std::vector<float>(12, 1))}}}); });
  CHECK(msg.find("param \"y\" is declared f32[T, 4] but bound to f32[3, 4]") != std::string::npos);
  CHECK(msg.find("T = 3 here, but 2 from input \"x\"") != std::string::npos);
  msg = error_of([&] { interpret(g, {{{"x", good}, {"y", good}}, {{"T", 5}}}); });
  CHECK(msg.find("T = 2 here, but 5 from the explicit symbol values") != std::string::npos);

  g.outputs = {b.iota(DType::i32, s)};
  CHECK(error_of([&] { interpret(g, {{{"x", good}, {"y", good}}}); }).find("S has no value") != std::string::npos);
  CHECK(interpret(g, {{{"x", good}, {"y", good}}, {{"S", 2}}})[0].to_i64() == std::vector<int64_t>{0, 1});
}
