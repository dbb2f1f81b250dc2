#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "support/error.h"

namespace moat::runtime {

Sampler::Sampler(const SamplingOptions& o) : o_(o), rng_(o.seed) {
  if (!(o.temperature >= 0)) user_error("--temp must be >= 0, got ", o.temperature);
  if (o.top_k < 0) user_error("--top-k must be >= 0, got ", o.top_k);
  if (!(o.top_p > 0 && o.top_p <= 1)) user_error("--top-p must be in (0, 1], got ", o.top_p);
  if (!(o.min_p >= 0 && o.min_p < 1)) user_error("--min-p must be in [0, 1), got ", o.min_p);
  if (!(o.repeat_penalty > 0)) user_error("--repeat-penalty must be > 0, got ", o.repeat_penalty);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const size_t n = logits.size();
  MOAT_INTERNAL_CHECK(n > 0, "sampling from an empty row");
  std::vector<float> l(logits.begin(), logits.end());
  if (o_.repeat_penalty != 1.0) {
    // llama.cpp's rule: positive logits divided, negative multiplied, once per token
    const size_t from = history.size() > static_cast<size_t>(o_.repeat_last_n) ? history.size() - static_cast<size_t>(o_.repeat_last_n) : 0;
    std::vector<bool> seen(n, false);
    for (size_t i = from; i < history.size(); ++i) {
      const int32_t t = history[i];
      if (t < 0 || static_cast<size_t>(t) >= n || seen[static_cast<size_t>(t)]) continue;
      seen[static_cast<size_t>(t)] = true;
      float& v = l[static_cast<size_t>(t)];
      v = v > 0 ? static_cast<float>(v / o_.repeat_penalty) : static_cast<float>(v * o_.repeat_penalty);
    }
  }
  if (o_.temperature == 0) return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());

  // candidates by descending logit (ties: lower id first)
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return l[static_cast<size_t>(a)] > l[static_cast<size_t>(b)]; });
  size_t keep = o_.top_k > 0 ? std::min(n, static_cast<size_t>(o_.top_k)) : n;
  std::vector<double> p(keep);
  const double top = l[static_cast<size_t>(ids[0])];
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp((l[static_cast<size_t>(ids[i])] - top) / o_.temperature);
  for (double& x : p) x /= sum;
  if (o_.top_p < 1.0) {
    double acc = 0;
    size_t i = 0;
    while (i < keep && acc < o_.top_p) acc += p[i++];
    keep = std::max<size_t>(i, 1);
  }
  if (o_.min_p > 0) {
    size_t i = 1;
    while (i < keep && p[i] >= o_.min_p * p[0]) ++i;
    keep = i;
  }
  std::discrete_distribution<size_t> draw(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(keep));
  return ids[draw(rng_)];
}

}  // namespace moat::runtime
