// Composites (interpreted through their expansion) against independent naive
// implementations written here from the formulas of ir/expand.h, and
// expand_composites(graph) against the composite graph.
//
// Tolerances (relative to max(1, |expected|)):
//   kTol      1e-5  rms_norm, softmax, attention, moe (f32 math vs double references)
//   kRopeTol  1e-4  rope (the reference computes angles ggml's way, iteratively in f32)
//   f16 / bf16 outputs: one ulp of the dtype (the reference rounds the same way, but
//   may land on the other side of a rounding boundary).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "ir/builder.h"
#include "ir/expand.h"
#include "ir/interpreter.h"
#include "ir/quant.h"
#include "ir/tensor.h"
#include "ir/verify.h"
#include "support/half.h"

using namespace moat::ir;

namespace {

constexpr double kTol = 1e-5;
constexpr double kRopeTol = 1e-4;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  for (float& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = lo + (hi - lo) * static_cast<float>(seed >> 8) / static_cast<float>(1 << 24);
  }
  return v;
}

HostTensor f32t(std::vector<int64_t> shape, const std::vector<float>& values, DType dtype = DType::f32) {
  return HostTensor::from_f32(std::move(shape), values, dtype);
}
HostTensor i32t(std::vector<int64_t> shape, std::vector<int64_t> values) {
  return HostTensor::from_i64(std::move(shape), values, DType::i32);
}

void check_close(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element ", i, ": got ", got[i], ", want ", want[i]);
    CHECK(std::fabs(got[i] - want[i]) <= tol * std::max(1.0, std::fabs(want[i])));
  }
}

// Interprets `g` with output `out`, both through the composite and through
// expand_composites(g), checks they agree bit for bit, and returns the result.
HostTensor run_both(Graph& g, NodeId out, const Bindings& in) {
  g.outputs = {out};
  HostTensor a = interpret(g, in).at(0);
  Graph expanded = expand_composites(g);
  verify(expanded);
  for (const Node& node : expanded.nodes) CHECK(op_kind(node.op) != OpKind::Composite);
  HostTensor b = interpret(expanded, in).at(0);
  CHECK(a.dtype() == b.dtype());
  CHECK(a.shape() == b.shape());
  CHECK(std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin(), b.bytes().end()));
  return a;
}

std::vector<float> round_to(DType t, std::vector<float> v) { return f32t({static_cast<int64_t>(v.size())}, v, t).to_f32(); }

// ---- naive references -------------------------------------------------------------

std::vector<double> naive_rms_norm(const std::vector<float>& x, const std::vector<float>& w, size_t d, double eps) {
  std::vector<double> out(x.size());
  for (size_t r = 0; r < x.size() / d; ++r) {
    double ss = 0;
    for (size_t i = 0; i < d; ++i) ss += double(x[r * d + i]) * x[r * d + i];
    double inv = 1.0 / std::sqrt(ss / double(d) + eps);
    for (size_t i = 0; i < d; ++i) out[r * d + i] = x[r * d + i] * inv * w[i];
  }
  return out;
}

std::vector<double> naive_softmax(const std::vector<double>& x, size_t n) {
  std::vector<double> out(x.size());
  for (size_t r = 0; r < x.size() / n; ++r) {
    double m = kNegInf, s = 0;
    for (size_t i = 0; i < n; ++i) m = std::max(m, x[r * n + i]);
    for (size_t i = 0; i < n; ++i) s += std::exp(x[r * n + i] - m);
    for (size_t i = 0; i < n; ++i) out[r * n + i] = std::exp(x[r * n + i] - m) / s;
  }
  return out;
}

// ggml_compute_forward_rope, written from its description: angles iteratively in f32.
std::vector<double> naive_rope(const std::vector<float>& x, int64_t rows_before_t, int64_t t_count, int64_t heads,
                               int64_t d, const std::vector<int64_t>& pos, const RopeParams& p) {
  const float theta_scale = std::pow(static_cast<float>(p.theta), -2.0f / static_cast<float>(p.n_dims));
  auto corr_dim = [&](double beta) {
    return static_cast<float>(p.n_dims) *
           std::log(static_cast<float>(p.orig_ctx) / (static_cast<float>(beta) * 2.0f * 3.14159265358979f)) /
           (2.0f * std::log(static_cast<float>(p.theta)));
  };
  const float lo = std::max(0.0f, std::floor(corr_dim(p.beta_fast)));
  const float hi = std::min(static_cast<float>(p.n_dims - 1), std::ceil(corr_dim(p.beta_slow)));
  std::vector<double> out(x.begin(), x.end());
  for (int64_t r = 0; r < rows_before_t; ++r)
    for (int64_t t = 0; t < t_count; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t base = ((r * t_count + t) * heads + h) * d;
        float theta_extrap = static_cast<float>(pos[static_cast<size_t>(t)]);
        for (int64_t i0 = 0; i0 < p.n_dims; i0 += 2) {
          const float fs = static_cast<float>(p.freq_scale), ext = static_cast<float>(p.ext_factor);
          float theta = fs * theta_extrap;
          float mscale = static_cast<float>(p.attn_factor);
          if (ext != 0.0f) {
            float y = (static_cast<float>(i0 / 2) - lo) / std::max(0.001f, hi - lo);
            float ramp_mix = (1.0f - std::min(1.0f, std::max(0.0f, y))) * ext;
            theta = fs * theta_extrap * (1 - ramp_mix) + theta_extrap * ramp_mix;
            mscale *= 1.0f + 0.1f * std::log(1.0f / fs);
          }
          const double c = std::cos(double(theta)) * mscale, s = std::sin(double(theta)) * mscale;
          const int64_t a = p.interleaved ? i0 : i0 / 2, b = p.interleaved ? i0 + 1 : i0 / 2 + p.n_dims / 2;
          const double x0 = x[static_cast<size_t>(base + a)], x1 = x[static_cast<size_t>(base + b)];
          out[static_cast<size_t>(base + a)] = x0 * c - x1 * s;
          out[static_cast<size_t>(base + b)] = x0 * s + x1 * c;
          theta_extrap *= theta_scale;
        }
      }
  return out;
}

struct AttnDims {
  int64_t t, s, h, hkv, dk, dv;
};

// `sinks`: one logit per query head in each softmax's denominator (none when empty).
std::vector<double> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, const std::vector<int64_t>& pos, const AttnDims& n,
                                    double scale, bool causal, const std::vector<float>& sinks = {}) {
  std::vector<double> out(static_cast<size_t>(n.t * n.h * n.dv), 0.0);
  for (int64_t t = 0; t < n.t; ++t)
    for (int64_t h = 0; h < n.h; ++h) {
      const int64_t kvh = h / (n.h / n.hkv);
      std::vector<double> sc(static_cast<size_t>(n.s));
      for (int64_t j = 0; j < n.s; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < n.dk; ++e)
          dot += double(q[static_cast<size_t>((t * n.h + h) * n.dk + e)]) * k[static_cast<size_t>((j * n.hkv + kvh) * n.dk + e)];
        sc[static_cast<size_t>(j)] = causal && j > pos[static_cast<size_t>(t)] ? kNegInf : dot * scale;
      }
      if (!sinks.empty()) sc.push_back(sinks[static_cast<size_t>(h)]);  // the sink's share is dropped below
      std::vector<double> p = naive_softmax(sc, sc.size());
      for (int64_t j = 0; j < n.s; ++j)
        for (int64_t e = 0; e < n.dv; ++e)
          out[static_cast<size_t>((t * n.h + h) * n.dv + e)] +=
              p[static_cast<size_t>(j)] * v[static_cast<size_t>((j * n.hkv + kvh) * n.dv + e)];
    }
  return out;
}

// Indices of the k largest values, largest first, ties to the lower index.
std::vector<size_t> top_indices(const std::vector<double>& v, size_t k) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] > v[b]; });
  order.resize(k);
  return order;
}

struct MoeWeights {
  int64_t t, d, e, f;
  std::vector<float> x, router, gate, up, down, bias;  // dequantised values
};

// Values rounded through q8_0 as the activations of a Q8_0 / Q4_0 expert matmul are
// (ir/quant.h): quantised and dequantised by the reference code, 32 at a time.
std::vector<double> through_q8_0(const std::vector<double>& v) {
  std::vector<float> f(v.begin(), v.end()), back(v.size());
  std::vector<uint8_t> blocks(v.size() / 32 * sizeof(BlockQ8_0));
  quantize_row_q8_0(f.data(), blocks.data(), static_cast<int64_t>(v.size()));
  dequantize_row(DType::q8_0, blocks.data(), back.data(), static_cast<int64_t>(v.size()));
  return {back.begin(), back.end()};
}

// `q8_activations`: the experts' inputs go through q8_0 (quantised expert weights).
// `given`: with method "given", each token's experts (n_used per token).
std::vector<double> naive_moe(const MoeWeights& m, const MoeParams& p, bool q8_activations = false,
                              const std::vector<int32_t>& given = {}) {
  std::vector<double> out(static_cast<size_t>(m.t * m.d), 0.0);
  auto at = [](const std::vector<float>& v, int64_t i) { return double(v[static_cast<size_t>(i)]); };
  for (int64_t t = 0; t < m.t; ++t) {
    std::vector<double> scores(static_cast<size_t>(m.e));
    for (int64_t e = 0; e < m.e; ++e) {
      double logit = 0;
      for (int64_t i = 0; i < m.d; ++i) logit += at(m.x, t * m.d + i) * at(m.router, e * m.d + i);
      scores[static_cast<size_t>(e)] = logit;
    }
    if (p.scoring == "softmax") scores = naive_softmax(scores, scores.size());
    else if (p.scoring == "sigmoid") for (double& s : scores) s = 1.0 / (1.0 + std::exp(-s));
    else for (double& s : scores) s = std::sqrt(std::log1p(std::exp(s)));  // sqrtsoftplus
    std::vector<double> sel = scores;
    for (size_t e = 0; e < m.bias.size(); ++e) sel[e] += m.bias[e];
    if (p.method != "greedy" && p.n_groups > 1) {
      const size_t per = static_cast<size_t>(m.e / p.n_groups);
      std::vector<double> group_score(static_cast<size_t>(p.n_groups));
      for (size_t g = 0; g < group_score.size(); ++g) {
        std::vector<double> members(sel.begin() + static_cast<long>(g * per), sel.begin() + static_cast<long>((g + 1) * per));
        std::sort(members.rbegin(), members.rend());
        group_score[g] = p.method == "group_limited_greedy" ? members[0] : members[0] + (per > 1 ? members[1] : 0.0);
      }
      std::vector<size_t> kept = top_indices(group_score, static_cast<size_t>(p.topk_groups));
      for (size_t e = 0; e < sel.size(); ++e)
        if (std::find(kept.begin(), kept.end(), e / per) == kept.end()) sel[e] = kNegInf;
    }
    std::vector<size_t> idx = top_indices(sel, static_cast<size_t>(p.n_used));
    if (p.method == "given")
      for (int64_t j = 0; j < p.n_used; ++j) idx[static_cast<size_t>(j)] = static_cast<size_t>(given[static_cast<size_t>(t * p.n_used + j)]);
    std::vector<double> w;
    for (size_t e : idx) w.push_back(scores[e]);
    if (p.norm_topk) {
      double sum = std::accumulate(w.begin(), w.end(), 0.0) + (p.scoring != "softmax" ? 1e-20 : 0.0);
      for (double& x : w) x /= sum;
    }
    for (size_t j = 0; j < idx.size(); ++j) {
      const int64_t e = static_cast<int64_t>(idx[j]);
      std::vector<double> hidden(static_cast<size_t>(m.f));
      std::vector<double> xt(m.x.begin() + t * m.d, m.x.begin() + (t + 1) * m.d);
      if (q8_activations) xt = through_q8_0(xt);
      for (int64_t f = 0; f < m.f; ++f) {
        double g = 0, u = 0;
        for (int64_t i = 0; i < m.d; ++i) {
          g += at(m.gate, (e * m.f + f) * m.d + i) * xt[static_cast<size_t>(i)];
          u += at(m.up, (e * m.f + f) * m.d + i) * xt[static_cast<size_t>(i)];
        }
        if (p.swiglu_limit > 0) g = std::min(g, p.swiglu_limit), u = std::clamp(u, -p.swiglu_limit, p.swiglu_limit);
        hidden[static_cast<size_t>(f)] = g / (1.0 + std::exp(-g)) * u;
      }
      if (q8_activations) hidden = through_q8_0(hidden);
      for (int64_t i = 0; i < m.d; ++i) {
        double o = 0;
        for (int64_t f = 0; f < m.f; ++f) o += at(m.down, (e * m.d + i) * m.f + f) * hidden[static_cast<size_t>(f)];
        out[static_cast<size_t>(t * m.d + i)] += w[j] * p.scale * o;
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("rms_norm: f32 with a symbolic row count, f16 in / out, symbolic D") {
  Graph g;
  Builder b(g);
  Dim t = b.symbol("T");
  NodeId x = b.input("x", {DType::f32, {t, Dim::of(7)}});
  NodeId w = b.param("w", {DType::f32, {Dim::of(7)}});
  std::vector<float> xv = random_values(21, 1, -3, 3), wv = random_values(7, 2);
  Bindings in{{{"x", f32t({3, 7}, xv)}, {"w", f32t({7}, wv)}}};
  check_close(run_both(g, b.rms_norm(x, w, 1e-5), in).to_f32(), naive_rms_norm(xv, wv, 7, 1e-5), kTol);

  NodeId xh = b.input("xh", {DType::f16, {t, Dim::of(7)}});
  in.tensors.emplace("xh", f32t({3, 7}, xv, DType::f16));
  HostTensor h = run_both(g, b.rms_norm(xh, w, 0.5), in);
  CHECK(h.dtype() == DType::f16);
  std::vector<double> want = naive_rms_norm(round_to(DType::f16, xv), wv, 7, 0.5);
  check_close(h.to_f32(), want, 1.0 / 1024);

  Graph gs;
  Builder bs(gs);
  Dim d = bs.symbol("D");
  NodeId xs = bs.input("x", {DType::f32, {Dim::of(3), d}});
  NodeId ws = bs.param("w", {DType::f32, {d}});
  check_close(run_both(gs, bs.rms_norm(xs, ws, 1e-5), {{{"x", f32t({3, 7}, xv)}, {"w", f32t({7}, wv)}}}).to_f32(),
              naive_rms_norm(xv, wv, 7, 1e-5), kTol);
}

TEST_CASE("softmax over the last axis: odd sizes, size 1, -inf entries, bf16") {
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", {DType::f32, static_shape({2, 3, 5})});
  NodeId one = b.input("one", {DType::f32, static_shape({4, 1})});
  std::vector<float> xv = random_values(30, 3, -20, 20);
  xv[7] = -std::numeric_limits<float>::infinity();
  xv[8] = -std::numeric_limits<float>::infinity();
  Bindings in{{{"x", f32t({2, 3, 5}, xv)}, {"one", f32t({4, 1}, {3, -1, 0, 100})}}};
  std::vector<double> xd(xv.begin(), xv.end());
  std::vector<float> got = run_both(g, b.softmax(x), in).to_f32();
  check_close(got, naive_softmax(xd, 5), kTol);
  CHECK(got[7] == 0.0f);
  CHECK(run_both(g, b.softmax(one), in).to_f32() == std::vector<float>{1, 1, 1, 1});

  NodeId xb = b.input("xb", {DType::bf16, static_shape({2, 3, 5})});
  in.tensors.emplace("xb", f32t({2, 3, 5}, xv, DType::bf16));
  std::vector<float> rounded = round_to(DType::bf16, xv);
  check_close(run_both(g, b.softmax(xb), in).to_f32(), naive_softmax({rounded.begin(), rounded.end()}, 5), 1.0 / 128);
}

TEST_CASE("rope: interleaved and NeoX, with and without YaRN, pass-through dims, leading batch dims") {
  const int64_t batch = 2, t = 3, heads = 2, d = 20;
  std::vector<float> xv = random_values(static_cast<size_t>(batch * t * heads * d), 4);
  const std::vector<int64_t> pos = {0, 17, 5};
  RopeParams plain;
  plain.n_dims = 16;
  plain.theta = 10000;
  RopeParams yarn = plain;
  yarn.freq_scale = 0.25;
  yarn.ext_factor = 1.0;
  yarn.attn_factor = 0.9;
  yarn.beta_fast = 32;
  yarn.beta_slow = 1;
  yarn.orig_ctx = 64;  // corr dims [0, 3]: a partial ramp over the first pairs
  for (bool interleaved : {true, false})
    for (const RopeParams* base : {&plain, &yarn}) {
      RopeParams p = *base;
      p.interleaved = interleaved;
      INFO("interleaved ", interleaved, ", ext_factor ", p.ext_factor);
      Graph g;
      Builder b(g);
      Dim tt = b.symbol("T");
      NodeId x = b.input("x", {DType::f32, {Dim::of(batch), tt, Dim::of(heads), Dim::of(d)}});
      NodeId ps = b.input("pos", {DType::i32, {tt}});
      Bindings in{{{"x", f32t({batch, t, heads, d}, xv)}, {"pos", i32t({t}, pos)}}};
      std::vector<float> got = run_both(g, b.rope(x, ps, p), in).to_f32();
      std::vector<double> want = naive_rope(xv, batch, t, heads, d, pos, p);
      check_close(got, want, kRopeTol);
      for (size_t i = 16; i < 20; ++i) CHECK(got[i] == xv[i]);  // pass-through, exact
    }
  // The YaRN magnitude scale and ramp are really applied: mscale = 0.9 (1 + 0.1 ln 4).
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", {DType::f32, static_shape({1, 1, 16})});
  NodeId ps = b.input("pos", {DType::i32, static_shape({1})});
  RopeFactors f = rope_factors(g.node(b.rope(x, ps, yarn)));
  CHECK(f.mscale == doctest::Approx(0.9 * (1 + 0.1 * std::log(4.0))));
  CHECK(f.freq[0] == doctest::Approx(1.0));                                // ramp 1: extrapolation
  CHECK(f.freq[7] == doctest::Approx(0.25 * std::pow(10000.0, -14.0 / 16)));  // ramp 0: interpolation
}

TEST_CASE("rope of f16 input rounds the result to f16") {
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", {DType::f16, static_shape({2, 1, 4})});
  NodeId ps = b.input("pos", {DType::i32, static_shape({2})});
  std::vector<float> xv = round_to(DType::f16, random_values(8, 5));
  RopeParams p;
  p.n_dims = 4;
  HostTensor out = run_both(g, b.rope(x, ps, p), {{{"x", f32t({2, 1, 4}, xv, DType::f16)}, {"pos", i32t({2}, {3, 1})}}});
  CHECK(out.dtype() == DType::f16);
  check_close(out.to_f32(), naive_rope(xv, 1, 2, 1, 4, {3, 1}, p), 1.0 / 1024);
}

TEST_CASE("attention: GQA, causal with T < S (query offsets), non-causal, f16 q") {
  const AttnDims n{3, 5, 4, 2, 6, 3};
  std::vector<float> q = random_values(static_cast<size_t>(n.t * n.h * n.dk), 6);
  std::vector<float> k = random_values(static_cast<size_t>(n.s * n.hkv * n.dk), 7);
  std::vector<float> v = random_values(static_cast<size_t>(n.s * n.hkv * n.dv), 8);
  const std::vector<int64_t> pos = {2, 3, 4};
  for (bool causal : {true, false}) {
    INFO("causal ", causal);
    Graph g;
    Builder b(g);
    Dim t = b.symbol("T"), s = b.symbol("S");
    NodeId qn = b.input("q", {DType::f32, {t, Dim::of(n.h), Dim::of(n.dk)}});
    NodeId kn = b.input("k", {DType::f32, {s, Dim::of(n.hkv), Dim::of(n.dk)}});
    NodeId vn = b.input("v", {DType::f32, {s, Dim::of(n.hkv), Dim::of(n.dv)}});
    NodeId pn = b.input("pos", {DType::i32, {t}});
    Bindings in{{{"q", f32t({n.t, n.h, n.dk}, q)},
                 {"k", f32t({n.s, n.hkv, n.dk}, k)},
                 {"v", f32t({n.s, n.hkv, n.dv}, v)},
                 {"pos", i32t({n.t}, pos)}}};
    HostTensor out = run_both(g, b.attention(qn, kn, vn, pn, 0.4, causal), in);
    CHECK(out.shape() == std::vector<int64_t>{n.t, n.h, n.dv});
    check_close(out.to_f32(), naive_attention(q, k, v, pos, n, 0.4, causal), kTol);
  }
  // Sinks: a logit per head that only adds to the denominator.
  {
    Graph g;
    Builder b(g);
    Dim t = b.symbol("T"), s = b.symbol("S");
    NodeId qn = b.input("q", {DType::f32, {t, Dim::of(n.h), Dim::of(n.dk)}});
    NodeId kn = b.input("k", {DType::f32, {s, Dim::of(n.hkv), Dim::of(n.dk)}});
    NodeId vn = b.input("v", {DType::f32, {s, Dim::of(n.hkv), Dim::of(n.dv)}});
    NodeId pn = b.input("pos", {DType::i32, {t}});
    NodeId sn = b.input("sinks", {DType::f32, {Dim::of(n.h)}});
    const std::vector<float> sinks{-2.0f, 0.5f, 1.0f, 4.0f};
    Bindings in{{{"q", f32t({n.t, n.h, n.dk}, q)},
                 {"k", f32t({n.s, n.hkv, n.dk}, k)},
                 {"v", f32t({n.s, n.hkv, n.dv}, v)},
                 {"pos", i32t({n.t}, pos)},
                 {"sinks", f32t({n.h}, sinks)}}};
    HostTensor out = run_both(g, b.attention(qn, kn, vn, pn, 0.4, true, std::nullopt, std::nullopt, sn), in);
    check_close(out.to_f32(), naive_attention(q, k, v, pos, n, 0.4, true, sinks), kTol);
  }
  // Query 0 at position 0 sees key 0 only: its output is v[0] of its kv head.
  Graph g;
  Builder b(g);
  NodeId qn = b.input("q", {DType::f16, static_shape({1, n.h, n.dk})});
  NodeId kn = b.input("k", {DType::f32, static_shape({n.s, n.hkv, n.dk})});
  NodeId vn = b.input("v", {DType::f32, static_shape({n.s, n.hkv, n.dv})});
  NodeId pn = b.input("pos", {DType::i32, static_shape({1})});
  Bindings in{{{"q", f32t({1, n.h, n.dk}, std::vector<float>(q.begin(), q.begin() + n.h * n.dk), DType::f16)},
               {"k", f32t({n.s, n.hkv, n.dk}, k)},
               {"v", f32t({n.s, n.hkv, n.dv}, v)},
               {"pos", i32t({1}, {0})}}};
  HostTensor out = run_both(g, b.attention(qn, kn, vn, pn, 1.0, true), in);
  CHECK(out.dtype() == DType::f16);
  std::vector<float> got = out.to_f32();
  for (int64_t h = 0; h < n.h; ++h)
    for (int64_t e = 0; e < n.dv; ++e)
      CHECK(got[static_cast<size_t>(h * n.dv + e)] ==
            round_to(DType::f16, {v[static_cast<size_t>((h / 2) * n.dv + e)]})[0]);
}

namespace {

MoeWeights moe_weights(uint32_t seed, int64_t t, int64_t d, int64_t e, int64_t f, bool bias) {
  MoeWeights m{t, d, e, f, {}, {}, {}, {}, {}, {}};
  m.x = random_values(static_cast<size_t>(t * d), seed);
  m.router = random_values(static_cast<size_t>(e * d), seed + 1);
  m.gate = random_values(static_cast<size_t>(e * f * d), seed + 2);
  m.up = random_values(static_cast<size_t>(e * f * d), seed + 3);
  m.down = random_values(static_cast<size_t>(e * d * f), seed + 4);
  if (bias) m.bias = random_values(static_cast<size_t>(e), seed + 5, -0.2f, 0.2f);
  return m;
}

// Builds x -> moe with weights of `wtype` and returns the composite's output; `given`:
// the experts of method "given", n_used per token.
HostTensor run_moe(MoeWeights& m, const MoeParams& p, DType wtype, const std::vector<int32_t>& given = {}) {
  Graph g;
  Builder b(g);
  Dim t = b.symbol("T");
  const Dim d = Dim::of(m.d), e = Dim::of(m.e), f = Dim::of(m.f);
  NodeId x = b.input("x", {DType::f32, {t, d}});
  NodeId router = b.param("router", {DType::f32, {e, d}});
  NodeId gate = b.param("gate", {wtype, {e, f, d}});
  NodeId up = b.param("up", {wtype, {e, f, d}});
  NodeId down = b.param("down", {wtype, {e, d, f}});
  std::optional<NodeId> bias;
  if (!m.bias.empty()) bias = b.param("bias", {DType::f32, {e}});
  Bindings in{{{"x", f32t({m.t, m.d}, m.x)},
               {"router", f32t({m.e, m.d}, m.router)},
               {"gate", f32t({m.e, m.f, m.d}, m.gate, wtype)},
               {"up", f32t({m.e, m.f, m.d}, m.up, wtype)},
               {"down", f32t({m.e, m.d, m.f}, m.down, wtype)}}};
  if (bias) in.tensors.emplace("bias", f32t({m.e}, m.bias));
  // The reference reads the weights as the interpreter sees them (dequantised).
  m.gate = in.tensors.at("gate").to_f32();
  m.up = in.tensors.at("up").to_f32();
  m.down = in.tensors.at("down").to_f32();
  std::optional<NodeId> experts;
  if (p.method == "given") {
    experts = b.input("experts", {DType::i32, {t, Dim::of(p.n_used)}});
    in.tensors.emplace("experts", i32t({m.t, p.n_used}, std::vector<int64_t>(given.begin(), given.end())));
  }
  return run_both(g, b.moe(x, router, gate, up, down, bias, p, experts), in);
}

}  // namespace

TEST_CASE("moe: each routing method, softmax / sigmoid scoring, groups, norm_topk on and off") {
  struct Case {
    const char* method;
    const char* scoring;
    int64_t groups, topk_groups, n_used;
    bool norm, bias;
    double scale;
  };
  const Case cases[] = {
      {"greedy", "softmax", 1, 1, 3, false, false, 1.0},
      {"greedy", "sigmoid", 4, 2, 2, true, true, 1.5},  // greedy ignores groups, still adds the bias
      {"group_limited_greedy", "softmax", 4, 2, 3, true, false, 2.5},
      {"group_limited_greedy", "sigmoid", 2, 1, 2, false, false, 1.0},
      {"noaux_tc", "sigmoid", 4, 2, 3, true, true, 2.5},
      {"noaux_tc", "softmax", 2, 1, 4, false, true, 1.0},
      {"noaux_tc", "sigmoid", 8, 3, 2, true, true, 1.0},  // one-expert groups: top-1 group score
  };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    INFO(c.method, " ", c.scoring, " groups ", c.groups, " norm ", c.norm);
    MoeParams p;
    p.method = c.method;
    p.scoring = c.scoring;
    p.n_groups = c.groups;
    p.topk_groups = c.topk_groups;
    p.n_used = c.n_used;
    p.norm_topk = c.norm;
    p.scale = c.scale;
    MoeWeights m = moe_weights(seed += 10, 5, 6, 8, 4, c.bias);
    HostTensor out = run_moe(m, p, DType::f32);
    CHECK(out.shape() == std::vector<int64_t>{5, 6});
    check_close(out.to_f32(), naive_moe(m, p), kTol);
  }
}

TEST_CASE("moe: DeepSeek-V4's routing - sqrt(softplus) scores, experts given per token, clamped SwiGLU") {
  MoeParams p;
  p.scoring = "sqrtsoftplus";
  p.method = "noaux_tc";
  p.n_used = 3;
  p.norm_topk = true;
  p.scale = 1.5;
  p.swiglu_limit = 0.6;  // the random projections reach about +-2: many are clamped
  MoeWeights m = moe_weights(300, 5, 6, 8, 4, true);
  // logits far below and above 0: softplus's two tails (e^z and z) must both hold
  for (int64_t i = 0; i < m.d; ++i) m.router[static_cast<size_t>(i)] = -12.0f, m.router[static_cast<size_t>(m.d + i)] = 9.0f;
  check_close(run_moe(m, p, DType::f32).to_f32(), naive_moe(m, p), kTol);
  MoeParams unclamped = p;
  unclamped.swiglu_limit = 0;
  CHECK(run_moe(m, unclamped, DType::f32).to_f32() != run_moe(m, p, DType::f32).to_f32());

  // hash routing: the experts are given (repeats and any order allowed), the weights
  // still come from the scores; no bias
  p.method = "given";
  m.bias.clear();
  const std::vector<int32_t> given{0, 7, 3, 1, 1, 2, 6, 5, 4, 2, 0, 7, 3, 3, 3};
  check_close(run_moe(m, p, DType::f32, given).to_f32(), naive_moe(m, p, false, given), kTol);
}

TEST_CASE("moe: quantised experts are gathered by index, unselected experts are never read") {
  MoeParams p;
  p.method = "group_limited_greedy";
  p.n_groups = 2;
  p.topk_groups = 1;
  p.n_used = 2;
  p.norm_topk = true;
  MoeWeights m = moe_weights(77, 3, 32, 4, 32, false);
  HostTensor out = run_moe(m, p, DType::q8_0);
  check_close(out.to_f32(), naive_moe(m, p, true), kTol);  // Q8_0 experts take q8_0 activations

  // Positive inputs and a strongly negative router row: expert 3 is never selected, so
  // its NaN weights must not reach the output.
  MoeParams greedy;
  greedy.n_used = 2;
  MoeWeights n = moe_weights(91, 4, 6, 4, 4, false);
  n.x = random_values(n.x.size(), 5, 0.5f, 1.0f);
  for (int64_t i = 0; i < n.d; ++i) n.router[static_cast<size_t>(3 * n.d + i)] = -10.0f;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::fill(n.gate.begin() + 3 * n.f * n.d, n.gate.end(), nan);
  std::fill(n.down.begin() + 3 * n.d * n.f, n.down.end(), nan);
  std::vector<float> got = run_moe(n, greedy, DType::f32).to_f32();
  for (float v : got) CHECK(std::isfinite(v));
  check_close(got, naive_moe(n, greedy), kTol);
}

TEST_CASE("expand_composites keeps the inputs, output types and results of a graph using every composite") {
  Graph g;
  g.name = "block";
  Builder b(g);
  Dim t = b.symbol("T");
  NodeId x = b.input("x", {DType::bf16, {t, Dim::of(32)}});
  NodeId pos = b.input("pos", {DType::i32, {t}});
  NodeId norm = b.param("norm", {DType::f32, {Dim::of(32)}});
  NodeId h = b.rms_norm(x, norm, 1e-6);                                   // [T, 32]
  NodeId qkv = b.reshape(b.cast(h, DType::f32), {t, Dim::of(2), Dim::of(16)});  // [T, 2, 16]
  RopeParams rp;
  rp.n_dims = 8;
  rp.interleaved = false;
  NodeId q = b.rope(qkv, pos, rp);                                        // [T, 2, 16]
  NodeId attn = b.attention(q, q, qkv, pos, 0.25, true);                  // [T, 2, 16]
  NodeId flat = b.softmax(b.reshape(attn, {t, Dim::of(32)}));             // [T, 32]
  MoeParams mp;
  mp.n_used = 2;
  mp.method = "noaux_tc";
  mp.scoring = "sigmoid";
  mp.n_groups = 2;
  mp.norm_topk = true;
  NodeId router = b.param("router", {DType::f32, static_shape({4, 32})});
  NodeId gate = b.param("gate", {DType::q4_0, static_shape({4, 32, 32})});
  NodeId down = b.param("down", {DType::f16, static_shape({4, 32, 32})});
  NodeId bias = b.param("bias", {DType::f32, static_shape({4})});
  NodeId out = b.moe(flat, router, gate, gate, down, bias, mp);           // [T, 32]
  g.outputs = {out, attn};

  Graph e = expand_composites(g);
  verify(e);
  CHECK(e.name == "block");
  CHECK(e.symbols == g.symbols);
  REQUIRE(e.outputs.size() == 2);
  CHECK(e.type(e.outputs[0]) == g.type(out));
  CHECK(e.type(e.outputs[1]) == g.type(attn));
  for (const Node& node : e.nodes) CHECK(op_kind(node.op) != OpKind::Composite);

  Bindings in{{{"x", f32t({3, 32}, random_values(96, 1), DType::bf16)},
               {"pos", i32t({3}, {4, 5, 6})},
               {"norm", f32t({32}, random_values(32, 2))},
               {"router", f32t({4, 32}, random_values(128, 3))},
               {"gate", f32t({4, 32, 32}, random_values(4096, 4), DType::q4_0)},
               {"down", f32t({4, 32, 32}, random_values(4096, 5), DType::f16)},
               {"bias", f32t({4}, random_values(4, 6))}}};
  auto a = interpret(g, in), c = interpret(e, in);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(a[i].shape() == c[i].shape());
    CHECK(std::equal(a[i].bytes().begin(), a[i].bytes().end(), c[i].bytes().begin(), c[i].bytes().end()));
  }
  for (float v : a[0].to_f32()) CHECK(std::isfinite(v));
}
