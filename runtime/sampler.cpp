#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "support/error.h"

namespace moat::runtime {

Sampler::Sampler(const SamplingOptions& o) : o_(o), rng_(o.seed) {
  if (!(o.temperature >= 0)) user_error("--temp must be >= 0, got ", o.temperature);
  if (o.top_k < 0) user_error("--top-k must be >= 0, got ", o.top_k);
  if (!(o.top_p > 0 && o.top_p <= 1)) user_error("--top-p must be in (0, 1], got ", o.top_p);
  if (!(o.min_p >= 0 && o.min_p < 1)) user_error("--min-p must be in [0, 1), got ", o.min_p);
  if (!(o.repeat_penalty > 0)) user_error("--repeat-penalty must be > 0, got ", o.repeat_penalty);
  if (!std::isfinite(o.frequency_penalty)) user_error("--frequency-penalty must be a finite number");
  if (!std::isfinite(o.presence_penalty)) user_error("--presence-penalty must be a finite number");
  if (o.repeat_last_n < -1) user_error("--repeat-last-n must be -1 (the whole history), 0 (off) or a count, got ", o.repeat_last_n);
}

void Sampler::apply_penalties(std::vector<float>& logits, std::span<const int32_t> history) const {
  if (o_.repeat_penalty == 1.0 && o_.frequency_penalty == 0.0 && o_.presence_penalty == 0.0) return;
  const size_t window = o_.repeat_last_n < 0 ? history.size() : static_cast<size_t>(o_.repeat_last_n);
  const size_t from = history.size() > window ? history.size() - window : 0;
  std::unordered_map<int32_t, int64_t> counts;
  for (size_t i = from; i < history.size(); ++i)
    if (history[i] >= 0 && static_cast<size_t>(history[i]) < logits.size()) ++counts[history[i]];
  for (const auto& [token, count] : counts) {
    float& v = logits[static_cast<size_t>(token)];
    // llama.cpp's rule: positive logits divided, negative multiplied, once per token
    v = v > 0 ? static_cast<float>(v / o_.repeat_penalty) : static_cast<float>(v * o_.repeat_penalty);
    v -= static_cast<float>(static_cast<double>(count) * o_.frequency_penalty + o_.presence_penalty);
  }
}

double TokenDistribution::probability(int32_t id) const {
  double total = 0, mine = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    total += weights[i];
    if (ids[i] == id) mine = weights[i];
  }
  return total > 0 ? mine / total : 0.0;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  return draw(distribution(logits, history));
}

int32_t Sampler::draw(const TokenDistribution& d) {
  MOAT_INTERNAL_CHECK(!d.ids.empty() && d.ids.size() == d.weights.size(), "drawing from an empty distribution");
  if (greedy()) return d.ids[0];  // no random number: greedy decoding leaves the generator as it was
  std::discrete_distribution<size_t> pick(d.weights.begin(), d.weights.end());
  return d.ids[pick(rng_)];
}

double Sampler::uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

namespace {

// The first index of the largest value, as std::max_element finds it (a NaN never wins
// over an earlier value; a NaN first wins), in two passes the compiler vectorises: the
// largest value over 16 independent lanes, then the first index holding it.
// std::max_element's compare-and-move chain costs ~8 cycles an element: 10 us for a
// vocabulary of 4096, 8% of a decode step of the demo model.
size_t argmax(std::span<const float> v) {
  if (std::isnan(v[0])) return 0;
  constexpr size_t kLanes = 16;
  float lanes[kLanes];
  std::fill(std::begin(lanes), std::end(lanes), v[0]);
  size_t i = 0;
  for (; i + kLanes <= v.size(); i += kLanes)
    for (size_t l = 0; l < kLanes; ++l) lanes[l] = v[i + l] > lanes[l] ? v[i + l] : lanes[l];
  float best = v[0];
  for (float x : lanes) best = x > best ? x : best;
  for (; i < v.size(); ++i) best = v[i] > best ? v[i] : best;
  return static_cast<size_t>(std::find(v.begin(), v.end(), best) - v.begin());
}

}  // namespace

TokenDistribution Sampler::distribution(std::span<const float> logits, std::span<const int32_t> history) const {
  const size_t n = logits.size();
  MOAT_INTERNAL_CHECK(n > 0, "sampling from an empty row");
  const bool penalised = o_.repeat_penalty != 1.0 || o_.frequency_penalty != 0.0 || o_.presence_penalty != 0.0;
  if (o_.temperature == 0 && !penalised) return {{static_cast<int32_t>(argmax(logits))}, {1.0}};
  std::vector<float> l(logits.begin(), logits.end());
  apply_penalties(l, history);
  if (o_.temperature == 0) return {{static_cast<int32_t>(argmax(l))}, {1.0}};

  // candidates by descending logit (ties: lower id first)
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  size_t keep = o_.top_k > 0 ? std::min(n, static_cast<size_t>(o_.top_k)) : n;
  const auto by_logit = [&](int32_t a, int32_t b) {
    return l[static_cast<size_t>(a)] > l[static_cast<size_t>(b)] || (l[static_cast<size_t>(a)] == l[static_cast<size_t>(b)] && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(), by_logit);
  const double top = l[static_cast<size_t>(ids[0])];
  // the untempered softmax of the kept candidates, for top-p and min-p
  std::vector<double> p(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp(l[static_cast<size_t>(ids[i])] - top);
  if (o_.top_p < 1.0) {
    double acc = 0;
    size_t i = 0;
    while (i < keep && acc < o_.top_p * sum) acc += p[i++];
    keep = std::max<size_t>(i, 1);
  }
  if (o_.min_p > 0) {
    size_t i = 1;
    while (i < keep && p[i] >= o_.min_p * p[0]) ++i;
    keep = i;
  }
  // the temperature reshapes what is left
  for (size_t i = 0; i < keep; ++i) p[i] = std::exp((l[static_cast<size_t>(ids[i])] - top) / o_.temperature);
  ids.resize(keep);
  p.resize(keep);
  return {std::move(ids), std::move(p)};
}

}  // namespace moat::runtime
