// The sampler: greedy, the filters, the repetition penalty, determinism by seed, and
// sampled frequencies against the softmax they should follow.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "runtime/sampler.h"
#include "support/error.h"

using moat::runtime::Sampler;
using moat::runtime::SamplingOptions;

namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};

}  // namespace

TEST_CASE("greedy takes the largest logit, ties to the lower id") {
  Sampler s(SamplingOptions{});
  CHECK(s.sample(kLogits, {}) == 1);
}

TEST_CASE("top-k 1, or a tiny top-p, leaves only the best token at any temperature") {
  SamplingOptions o;
  o.temperature = 5.0;
  o.top_k = 1;
  Sampler k1(o);
  for (int i = 0; i < 50; ++i) CHECK(k1.sample(kLogits, {}) == 1);
  o.top_k = 0;
  o.top_p = 0.01;
  Sampler p(o);
  for (int i = 0; i < 50; ++i) CHECK(p.sample(kLogits, {}) == 1);
}

TEST_CASE("min-p drops tokens far below the best") {
  SamplingOptions o;
  o.temperature = 1.0;
  o.min_p = 0.5;  // keeps ids 1 and 3 (equal best), drops 2 (e^-1 = 0.37 of the best)
  Sampler s(o);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = s.sample(kLogits, {});
    CHECK((t == 1 || t == 3));
  }
}

TEST_CASE("the repetition penalty moves greedy away from recent tokens") {
  SamplingOptions o;
  o.repeat_penalty = 2.0;
  Sampler s(o);
  CHECK(s.sample(kLogits, std::vector<int32_t>{1}) == 3);
  CHECK(s.sample(kLogits, std::vector<int32_t>{1, 3}) == 2);  // 3/2 < 2
}

TEST_CASE("the same seed gives the same tokens, frequencies follow the softmax") {
  SamplingOptions o;
  o.temperature = 1.0;
  o.seed = 42;
  Sampler a(o), b(o);
  std::vector<int> counts(kLogits.size(), 0);
  const int draws = 40000;
  for (int i = 0; i < draws; ++i) {
    const int32_t t = a.sample(kLogits, {});
    CHECK(t == b.sample(kLogits, {}));
    ++counts[static_cast<size_t>(t)];
  }
  double z = 0;
  for (float l : kLogits) z += std::exp(static_cast<double>(l));
  for (size_t i = 0; i < kLogits.size(); ++i) {
    const double want = std::exp(static_cast<double>(kLogits[i])) / z;
    CHECK(std::fabs(counts[i] / static_cast<double>(draws) - want) < 0.01);
  }
}

TEST_CASE("out-of-range options are errors naming the option") {
  SamplingOptions o;
  o.top_p = 0;
  CHECK_THROWS_WITH_AS(Sampler{o}, doctest::Contains("--top-p"), moat::UserError);
  o = {};
  o.temperature = -1;
  CHECK_THROWS_WITH_AS(Sampler{o}, doctest::Contains("--temp"), moat::UserError);
}

TEST_CASE("frequency and presence penalties subtract per occurrence and once per token") {
  SamplingOptions o;
  o.frequency_penalty = 1.0;
  Sampler f(o);
  CHECK(f.sample(kLogits, std::vector<int32_t>{1}) == 3);     // 3 - 1 = 2 < 3
  CHECK(f.sample(kLogits, std::vector<int32_t>{3, 1, 1}) == 2);  // id 1: 3 - 2, id 3: 3 - 1, id 2: 2 (ties to the lower id)
  o = {};
  o.presence_penalty = 0.5;
  Sampler p(o);
  CHECK(p.sample(kLogits, std::vector<int32_t>{1, 1, 1}) == 3);  // once, not per occurrence: 2.5 < 3
  CHECK(p.sample(kLogits, std::vector<int32_t>{1, 3}) == 1);     // 2.5 = 2.5 > 2: the lower id
}

TEST_CASE("repeat-last-n bounds the penalties' window: 0 turns them off, -1 looks at everything") {
  SamplingOptions o;
  o.presence_penalty = 5.0;
  o.repeat_last_n = 1;
  CHECK(Sampler(o).sample(kLogits, std::vector<int32_t>{1, 4}) == 1);  // id 1 is outside the window
  o.repeat_last_n = 0;
  CHECK(Sampler(o).sample(kLogits, std::vector<int32_t>{1}) == 1);
  o.repeat_last_n = -1;
  CHECK(Sampler(o).sample(kLogits, std::vector<int32_t>{1, 4, 4, 4}) == 3);
  o.repeat_last_n = -2;
  CHECK_THROWS_WITH_AS(Sampler{o}, doctest::Contains("--repeat-last-n"), moat::UserError);
}

TEST_CASE("top-p and min-p filter the untempered distribution - the temperature only reshapes what is left") {
  // untempered: p = 0.665, 0.245, 0.090; top-p 0.7 keeps ids 0 and 1 whatever the temperature
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f};
  SamplingOptions o;
  o.temperature = 100.0;
  o.top_p = 0.7;
  o.seed = 5;
  Sampler s(o);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 2000; ++i) ++counts[static_cast<size_t>(s.sample(logits, {}))];
  CHECK(counts[2] == 0);
  CHECK(counts[0] > 900);  // nearly uniform over the two kept at this temperature
  CHECK(counts[1] > 900);
  o.top_p = 1.0;
  o.min_p = 0.3;  // 0.245 / 0.665 = 0.37 keeps id 1, 0.135 drops id 2
  Sampler m(o);
  for (int i = 0; i < 500; ++i) CHECK(m.sample(logits, {}) != 2);
}
