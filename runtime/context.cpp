#include "runtime/context.h"

#include <algorithm>
#include <sstream>

#include "runtime/session.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::runtime {

namespace {

// The most tokens whose cache takes at most `budget` bytes (cache_bytes is monotone).
int64_t tokens_within(const CacheBytes& cache_bytes, uint64_t budget) {
  constexpr int64_t kMost = int64_t{1} << 40;  // tokens: past any context a model names
  if (cache_bytes(kMost) <= budget) return INT64_MAX;
  int64_t low = 0, high = kMost;  // cache_bytes(low) <= budget < cache_bytes(high), or low 0
  while (high - low > 1) {
    const int64_t mid = low + (high - low) / 2;
    (cache_bytes(mid) <= budget ? low : high) = mid;
  }
  return low;
}

}  // namespace

ContextChoice choose_context(int64_t requested, int64_t model_context, uint64_t bytes_per_token,
                             uint64_t available_bytes) {
  return choose_context(
      requested, model_context, [bytes_per_token](int64_t tokens) { return static_cast<uint64_t>(tokens) * bytes_per_token; },
      available_bytes);
}

ContextChoice choose_context(int64_t requested, int64_t model_context, const CacheBytes& cache_bytes,
                             uint64_t available_bytes) {
  const uint64_t budget = available_bytes / 2;  // the rest: weights, activations, everyone else
  const int64_t fits = available_bytes == 0 ? INT64_MAX : tokens_within(cache_bytes, budget);
  ContextChoice choice;
  std::ostringstream report;
  if (requested > 0) {
    if (requested > fits)
      user_error("--ctx ", requested, " needs ", mib(cache_bytes(requested)),
                 " of latent cache, more than half of the ", mib(available_bytes),
                 " of memory available; lower --ctx (at most ", fits, " here)");
    choice.tokens = requested;
    report << "context " << choice.tokens << " tokens (--ctx)";
    if (model_context > 0 && requested > model_context)
      choice.warning = cat("--ctx ", requested, " passes the ", model_context,
                           " tokens the model was trained for: past them its predictions degrade (for perplexity, "
                           "keep --window within ", model_context, ")");
  } else {
    const int64_t model = std::max<int64_t>(model_context, 1);
    choice.tokens = model;
    if (model > fits) {
      constexpr int64_t kStep = 64;  // a round number of tokens
      choice.tokens = std::max<int64_t>(fits / kStep * kStep, kStep);
      report << "context " << choice.tokens << " tokens (the model's " << model << " capped to fit half of the "
             << mib(available_bytes) << " of memory available; raise it with --ctx)";
    } else {
      report << "context " << choice.tokens << " tokens (the model's)";
    }
  }
  report << ", cache " << mib(cache_bytes(choice.tokens));
  choice.report = report.str();
  return choice;
}

}  // namespace moat::runtime
