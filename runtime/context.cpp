#include "runtime/context.h"

#include <algorithm>
#include <sstream>

#include "runtime/session.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::runtime {

ContextChoice choose_context(int64_t requested, int64_t model_context, uint64_t bytes_per_token,
                             uint64_t available_bytes) {
  const uint64_t budget = available_bytes / 2;  // the rest: weights, activations, everyone else
  const int64_t fits = bytes_per_token == 0 || available_bytes == 0
                           ? INT64_MAX
                           : static_cast<int64_t>(std::min<uint64_t>(budget / bytes_per_token, INT64_MAX));
  ContextChoice choice;
  std::ostringstream report;
  if (requested > 0) {
    if (requested > fits)
      user_error("--ctx ", requested, " needs ", mib(static_cast<uint64_t>(requested) * bytes_per_token),
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
  report << ", latent cache " << mib(static_cast<uint64_t>(choice.tokens) * bytes_per_token);
  choice.report = report.str();
  return choice;
}

}  // namespace moat::runtime
