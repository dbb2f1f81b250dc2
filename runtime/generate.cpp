#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

#include "runtime/speculative.h"
#include "support/error.h"

namespace moat::runtime {

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

GenerationStats generate(Session& session, Sampler& sampler, std::span<const int32_t> prompt,
                         std::vector<int32_t>& history, const GenerationOptions& options,
                         const std::function<void(int32_t)>& on_token, std::vector<float>* logits_out) {
  if (options.draft_tokens > 0 && !session.drafts())
    user_error("speculative decoding needs a session with the model's draft module (SessionOptions::draft)");
  if (options.draft_tokens > 0) session.check_draft_length(options.draft_tokens);
  if (prompt.empty()) user_error("the prompt is empty: give at least one token");
  if (session.cached_tokens() + static_cast<int64_t>(prompt.size()) > session.context())
    user_error("the prompt (", prompt.size(), " tokens) after ", session.cached_tokens(),
               " tokens already in the context does not fit the context of ", session.context(),
               " tokens; shorten it or raise --ctx");
  GenerationStats stats;
  stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  const double setup_before = session.stats().setup_ms(), compile_before = session.stats().compile_ms;

  auto start = std::chrono::steady_clock::now();
  std::vector<float> logits =
      session.evaluate(prompt, options.batch, logits_out ? models::LogitRows::all : models::LogitRows::last);
  const double prompt_compile = session.stats().compile_ms - compile_before;
  stats.prompt_ms = ms_since(start) - (session.stats().setup_ms() - setup_before);
  history.insert(history.end(), prompt.begin(), prompt.end());
  const size_t vocab = logits_out ? logits.size() / prompt.size() : logits.size();
  if (logits_out) logits_out->insert(logits_out->end(), logits.begin(), logits.end());
  std::vector<float> last(logits.end() - static_cast<std::ptrdiff_t>(vocab), logits.end());

  start = std::chrono::steady_clock::now();
  const double compile_start = session.stats().compile_ms, setup_start = session.stats().setup_ms();
  if (options.draft_tokens > 0)
    decode_speculative(session, sampler, last, history, options, on_token, logits_out, stats);
  while (options.draft_tokens <= 0 && stats.generated_tokens < options.max_tokens) {
    if (options.cancel && options.cancel->load(std::memory_order_relaxed)) {
      stats.stop = StopReason::cancelled;
      break;
    }
    const int32_t next = sampler.sample(last, history);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) {
      stats.stop = StopReason::stop_token;
      break;
    }
    history.push_back(next);
    ++stats.generated_tokens;
    on_token(next);
    if (session.cached_tokens() >= session.context()) {  // chosen, but no room to evaluate it
      if (stats.generated_tokens < options.max_tokens) stats.stop = StopReason::context_full;
      break;
    }
    last = session.evaluate(std::span<const int32_t>(&next, 1), 1);
    if (logits_out) logits_out->insert(logits_out->end(), last.begin(), last.end());
  }
  stats.compile_ms = prompt_compile + (session.stats().compile_ms - compile_start);
  stats.generate_ms = ms_since(start) - (session.stats().setup_ms() - setup_start);
  return stats;
}

}  // namespace moat::runtime
