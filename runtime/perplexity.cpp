#include "runtime/perplexity.h"

#include <algorithm>

#include "support/error.h"

namespace moat::runtime {

namespace {

// -log softmax(row)[target], in double.
double negative_log_likelihood(std::span<const float> row, int32_t target) {
  const float top = *std::max_element(row.begin(), row.end());
  double sum = 0;
  for (float v : row) sum += std::exp(static_cast<double>(v) - top);
  return std::log(sum) - (static_cast<double>(row[static_cast<size_t>(target)]) - top);
}

}  // namespace

PerplexityResult perplexity(Session& session, std::span<const int32_t> ids, int64_t window, int64_t batch,
                            int32_t bos, const std::function<void(int64_t, int64_t)>& on_window) {
  if (ids.size() < 2) user_error("perplexity needs a text of at least 2 tokens, got ", ids.size());
  if (window < 2) user_error("the perplexity window must hold at least 2 tokens, got ", window);
  if (window > session.context())
    user_error("the perplexity window of ", window, " tokens passes the context of ", session.context(), "; lower --ctx");
  const auto n = static_cast<int64_t>(ids.size());
  const int64_t total = (n + window - 1) / window;
  PerplexityResult result;
  std::vector<int32_t> input;
  for (int64_t start = 0; start < n; start += window) {
    const int64_t len = std::min(window, n - start);
    const std::span<const int32_t> chunk = ids.subspan(static_cast<size_t>(start), static_cast<size_t>(len));
    // Row i of the logits predicts target i: with BOS, [BOS] + chunk[..len-1] predicts
    // all of chunk; without, chunk predicts chunk[1..].
    input.clear();
    if (bos >= 0) input.push_back(bos);
    input.insert(input.end(), chunk.begin(), chunk.end() - (bos >= 0 ? 1 : 0));
    const std::span<const int32_t> targets = bos >= 0 ? chunk : chunk.subspan(1);
    if (targets.empty()) continue;  // a last window of one id, without BOS
    session.rewind(0);
    const std::vector<float> logits = session.evaluate(input, batch);
    const size_t vocab = logits.size() / input.size();
    for (size_t i = 0; i < targets.size(); ++i) {
      result.nll_sum += negative_log_likelihood(std::span<const float>(logits.data() + i * vocab, vocab), targets[i]);
      ++result.scored_tokens;
    }
    ++result.windows;
    if (on_window) on_window(result.windows, total);
  }
  return result;
}

}  // namespace moat::runtime
