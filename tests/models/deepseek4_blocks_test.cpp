// DeepSeek-V4's hyper-connection blocks (frontend/models/deepseek4_blocks.h) against a
// direct transcription of transformers' DeepseekV4HyperConnection / DeepseekV4HyperHead
// and DeepseekV4DecoderLayer's mixing, in double precision.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "frontend/models/deepseek4_blocks.h"
#include "ir/interpreter.h"

using namespace moat;
using ir::Dim;
using ir::DType;
using ir::HostTensor;
using ir::NodeId;

namespace {

constexpr int64_t kT = 3, kN = 4, kD = 8;
constexpr double kRmsEps = 1e-6, kHcEps = 1e-6;

std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  for (float& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = lo + (hi - lo) * static_cast<float>(seed >> 8) / static_cast<float>(1 << 24);
  }
  return v;
}

void check_close(const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element ", i, ": got ", got[i], ", want ", want[i]);
    CHECK(std::fabs(got[i] - want[i]) <= 2e-5 * std::max(1.0, std::fabs(want[i])));
  }
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// transformers' mix for token t: unweighted RMSNorm of the flattened streams, then fn.
std::vector<double> naive_mix(const std::vector<float>& x, const std::vector<float>& fn, int64_t t, int64_t rows) {
  double ss = 0;
  for (int64_t i = 0; i < kN * kD; ++i) ss += double(x[static_cast<size_t>(t * kN * kD + i)]) * x[static_cast<size_t>(t * kN * kD + i)];
  const double r = 1.0 / std::sqrt(ss / (kN * kD) + kRmsEps);
  std::vector<double> mix(static_cast<size_t>(rows), 0.0);
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t i = 0; i < kN * kD; ++i)
      mix[static_cast<size_t>(o)] += x[static_cast<size_t>(t * kN * kD + i)] * r * fn[static_cast<size_t>(o * kN * kD + i)];
  return mix;
}

struct NaiveMix {
  std::vector<double> post, comb, collapsed, streams_after;  // [T, N], [T, N, N], [T, D], [T, N, D]
};

NaiveMix naive_hyper(const std::vector<float>& x, const std::vector<float>& fn, const std::vector<float>& base,
                     const std::vector<float>& scale, const std::vector<float>& block, int64_t iters) {
  NaiveMix out;
  for (int64_t t = 0; t < kT; ++t) {
    const std::vector<double> mix = naive_mix(x, fn, t, (2 + kN) * kN);
    std::vector<double> pre(kN), post(kN), comb(kN * kN);
    for (int64_t j = 0; j < kN; ++j) {
      pre[static_cast<size_t>(j)] = sigmoid(mix[static_cast<size_t>(j)] * scale[0] + base[static_cast<size_t>(j)]) + kHcEps;
      post[static_cast<size_t>(j)] = 2 * sigmoid(mix[static_cast<size_t>(kN + j)] * scale[1] + base[static_cast<size_t>(kN + j)]);
    }
    for (int64_t j = 0; j < kN; ++j) {  // softmax over k of row j
      double mx = -INFINITY, sum = 0;
      for (int64_t k = 0; k < kN; ++k) {
        const size_t i = static_cast<size_t>(j * kN + k);
        comb[i] = mix[static_cast<size_t>(2 * kN) + i] * scale[2] + base[static_cast<size_t>(2 * kN) + i];
        mx = std::max(mx, comb[i]);
      }
      for (int64_t k = 0; k < kN; ++k) sum += std::exp(comb[static_cast<size_t>(j * kN + k)] - mx);
      for (int64_t k = 0; k < kN; ++k) {
        double& c = comb[static_cast<size_t>(j * kN + k)];
        c = std::exp(c - mx) / sum + kHcEps;
      }
    }
    auto normalise = [&](bool columns) {
      for (int64_t a = 0; a < kN; ++a) {
        double sum = 0;
        for (int64_t c = 0; c < kN; ++c) sum += comb[static_cast<size_t>(columns ? c * kN + a : a * kN + c)];
        for (int64_t c = 0; c < kN; ++c) comb[static_cast<size_t>(columns ? c * kN + a : a * kN + c)] /= sum + kHcEps;
      }
    };
    normalise(true);
    for (int64_t i = 1; i < iters; ++i) normalise(false), normalise(true);
    for (int64_t d = 0; d < kD; ++d) {
      double c = 0;
      for (int64_t j = 0; j < kN; ++j) c += pre[static_cast<size_t>(j)] * x[static_cast<size_t>((t * kN + j) * kD + d)];
      out.collapsed.push_back(c);
    }
    for (int64_t k = 0; k < kN; ++k)
      for (int64_t d = 0; d < kD; ++d) {
        double v = post[static_cast<size_t>(k)] * block[static_cast<size_t>(t * kD + d)];
        for (int64_t j = 0; j < kN; ++j) v += comb[static_cast<size_t>(j * kN + k)] * x[static_cast<size_t>((t * kN + j) * kD + d)];
        out.streams_after.push_back(v);
      }
    out.post.insert(out.post.end(), post.begin(), post.end());
    out.comb.insert(out.comb.end(), comb.begin(), comb.end());
  }
  return out;
}

}  // namespace

TEST_CASE("DeepSeek-V4 hyper-connections: pre (Sinkhorn-normalised comb), post and the head equal transformers' formulas") {
  const int64_t rows = (2 + kN) * kN;
  const std::vector<float> x = random_values(kT * kN * kD, 1, -2.0f, 2.0f), fn = random_values(rows * kN * kD, 2),
                           base = random_values(rows, 3), scale{0.7f, 1.3f, 2.1f}, block = random_values(kT * kD, 4),
                           head_fn = random_values(kN * kN * kD, 5), head_base = random_values(kN, 6), head_scale{0.9f};
  ir::Graph g;
  ir::Builder b(g);
  const Dim t = b.symbol("T");
  NodeId streams = b.input("streams", {DType::f32, {t, Dim::of(kN), Dim::of(kD)}});
  NodeId out = b.input("block", {DType::f32, {t, Dim::of(kD)}});
  const models::HyperWeights w{b.param("fn", {DType::f32, {Dim::of(rows), Dim::of(kN * kD)}}),
                               b.param("base", {DType::f32, {Dim::of(rows)}}), b.param("scale", {DType::f32, {Dim::of(3)}})};
  const models::HyperWeights hw{b.param("head_fn", {DType::f32, {Dim::of(kN), Dim::of(kN * kD)}}),
                                b.param("head_base", {DType::f32, {Dim::of(kN)}}),
                                b.param("head_scale", {DType::f32, {Dim::of(1)}})};
  const models::HyperMix mix = models::hyper_pre(b, streams, w, kRmsEps, kHcEps, 20);
  NodeId after = models::hyper_post(b, mix, out, streams);
  g.outputs = {mix.post, mix.comb, mix.collapsed, after, models::hyper_head(b, after, hw, kRmsEps, kHcEps)};
  ir::Bindings in;
  in.tensors.emplace("streams", HostTensor::from_f32({kT, kN, kD}, x));
  in.tensors.emplace("block", HostTensor::from_f32({kT, kD}, block));
  in.tensors.emplace("fn", HostTensor::from_f32({rows, kN * kD}, fn));
  in.tensors.emplace("base", HostTensor::from_f32({rows}, base));
  in.tensors.emplace("scale", HostTensor::from_f32({3}, scale));
  in.tensors.emplace("head_fn", HostTensor::from_f32({kN, kN * kD}, head_fn));
  in.tensors.emplace("head_base", HostTensor::from_f32({kN}, head_base));
  in.tensors.emplace("head_scale", HostTensor::from_f32({1}, head_scale));
  const std::vector<HostTensor> got = ir::interpret(g, in);

  const NaiveMix want = naive_hyper(x, fn, base, scale, block, 20);
  check_close(got[0].to_f32(), want.post);
  check_close(got[1].to_f32(), want.comb);
  check_close(got[2].to_f32(), want.collapsed);
  check_close(got[3].to_f32(), want.streams_after);
  // Sinkhorn ends on columns: each sums to 1 (to its eps); rows only approach 1 in 20
  // steps (a few % off for these peaked softmaxes), as in transformers.
  const std::vector<float> comb = got[1].to_f32();
  for (int64_t tt = 0; tt < kT; ++tt)
    for (int64_t a = 0; a < kN; ++a) {
      double column = 0;
      for (int64_t c = 0; c < kN; ++c) column += comb[static_cast<size_t>((tt * kN + c) * kN + a)];
      CHECK(std::fabs(column - 1.0) < 1e-5);
    }
  // the head: pre only, from the streams after the block
  std::vector<float> after_f(want.streams_after.begin(), want.streams_after.end());
  std::vector<double> head;
  for (int64_t tt = 0; tt < kT; ++tt) {
    const std::vector<double> m = naive_mix(after_f, head_fn, tt, kN);
    for (int64_t d = 0; d < kD; ++d) {
      double c = 0;
      for (int64_t j = 0; j < kN; ++j)
        c += (sigmoid(m[static_cast<size_t>(j)] * head_scale[0] + head_base[static_cast<size_t>(j)]) + kHcEps) *
             want.streams_after[static_cast<size_t>((tt * kN + j) * kD + d)];
      head.push_back(c);
    }
  }
  check_close(got[4].to_f32(), head);
}
