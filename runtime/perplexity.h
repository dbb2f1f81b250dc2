// Perplexity of a model on a text: the exponential of the mean negative log-likelihood
// the model gives each token after the ones before it.
//
// Method (stated in `moat perplexity --help` and docs/): the ids are cut into
// consecutive, non-overlapping windows, each evaluated from an empty cache. With a BOS
// token (models whose tokenizer adds one, as llama.cpp's perplexity does): windows of
// `window` ids, each run as [BOS] + its ids but the last, and every id scored. Without:
// windows of `window` ids (a shorter last one kept when it has at least 2), every id
// but a window's first scored. Log-softmax in double precision.
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
// `bos`: the BOS id, or -1 for none. `on_window(done, total)` (optional) after each
// window. UserError when fewer than 2 ids are given.
PerplexityResult perplexity(Session& session, std::span<const int32_t> ids, int64_t window, int64_t batch,
                            int32_t bos = -1, const std::function<void(int64_t, int64_t)>& on_window = {});

}  // namespace moat::runtime
