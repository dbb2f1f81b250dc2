// Perplexity of a model on a text: the exponential of the mean negative log-likelihood
// the model gives each token after the ones before it.
//
// Method (stated in `moat perplexity --help` and docs/): the ids are cut into
// consecutive, non-overlapping windows of `window` tokens (a shorter last window is
// kept when it has at least 2 tokens); each window is evaluated from an empty cache and
// every position but its first is scored, so each scored token sees 1..window-1 tokens
// of context. Log-softmax in double precision.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <span>

#include "runtime/session.h"

namespace moat::runtime {

struct PerplexityResult {
  int64_t scored_tokens = 0;
  int64_t windows = 0;
  double nll_sum = 0;  // natural log
  double perplexity() const { return scored_tokens ? std::exp(nll_sum / static_cast<double>(scored_tokens)) : 0.0; }
};

// `session` is rewound to empty before each window; `window` <= session.context().
// `on_window(done, total)` (optional) after each window. UserError when fewer than 2
// ids are given.
PerplexityResult perplexity(Session& session, std::span<const int32_t> ids, int64_t window, int64_t batch,
                            const std::function<void(int64_t, int64_t)>& on_window = {});

}  // namespace moat::runtime
