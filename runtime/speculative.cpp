#include "runtime/speculative.h"

#include <algorithm>
#include <unordered_map>

#include "support/error.h"

namespace moat::runtime {

namespace {

// max(0, p - q) normalised: what a rejected draft is replaced by. When p <= q everywhere
// (only possible through rounding), p itself.
// Linear in the candidates (a whole vocabulary without top-k).
TokenDistribution residual(const TokenDistribution& p, const TokenDistribution& q) {
  double p_total = 0, q_total = 0;
  for (double w : p.weights) p_total += w;
  std::unordered_map<int32_t, double> q_of;
  for (size_t i = 0; i < q.ids.size(); ++i) q_total += q.weights[i], q_of[q.ids[i]] += q.weights[i];
  TokenDistribution r;
  for (size_t i = 0; i < p.ids.size(); ++i) {
    const auto in_q = q_of.find(p.ids[i]);
    const double w = p.weights[i] / p_total - (in_q == q_of.end() ? 0.0 : in_q->second / q_total);
    if (w > 0) r.ids.push_back(p.ids[i]), r.weights.push_back(w);
  }
  return r.ids.empty() ? p : r;
}

// Row `row` of a row-major [rows, vocab] block.
std::span<const float> row_of(const std::vector<float>& logits, size_t row, size_t vocab) {
  return std::span<const float>(logits).subspan(row * vocab, vocab);
}

}  // namespace

Verdict verify_drafts(Sampler& sampler, std::span<const int32_t> drafts, std::span<const TokenDistribution> q,
                      std::span<const TokenDistribution> p) {
  MOAT_INTERNAL_CHECK(q.size() == drafts.size() && p.size() == drafts.size() + 1, "verifying drafts without their distributions");
  Verdict v;
  for (size_t i = 0; i < drafts.size(); ++i) {
    const double pd = p[i].probability(drafts[i]), qd = q[i].probability(drafts[i]);
    // p(d) >= q(d) keeps d without a random number (greedy: the model's argmax)
    const bool keep = pd >= qd || (pd > 0 && sampler.uniform() * qd < pd);
    if (!keep) {
      v.next = sampler.draw(residual(p[i], q[i]));
      return v;
    }
    ++v.accepted;
  }
  v.next = sampler.draw(p[drafts.size()]);
  return v;
}

SpeculativeStep speculative_step(Session& session, Sampler& sampler, std::span<const int32_t> history, int32_t next,
                                 int64_t max_drafts) {
  SpeculativeStep step;
  step.held = session.cached_tokens();
  // The draft module first catches up with the positions the model evaluated since its
  // last drafts; their next tokens are the last of the history (`next` the very last).
  const int64_t behind = step.held - session.draft_cached_tokens();
  const int64_t room = std::min(max_drafts, session.context() - step.held - 1);
  std::vector<int32_t> drafts;
  std::vector<TokenDistribution> q, p;
  std::vector<int32_t> context_so_far(history.begin(), history.end());
  if (room > 0 && behind <= static_cast<int64_t>(history.size())) {  // else a history that is not the session's: no drafts
    std::vector<float> draft_logits = session.draft_catch_up(history.last(static_cast<size_t>(behind)));
    for (int64_t k = 0; k < room; ++k) {
      if (k > 0) draft_logits = session.draft_step(drafts.back());
      q.push_back(sampler.distribution(draft_logits, context_so_far));
      drafts.push_back(sampler.draw(q.back()));
      context_so_far.push_back(drafts.back());
    }
  }
  // Verify: one pass over `next` and the drafts; row i holds p of the token after it,
  // whose history is `history` and the first i drafts (a prefix of context_so_far).
  std::vector<int32_t> pass{next};
  pass.insert(pass.end(), drafts.begin(), drafts.end());
  step.logits = session.evaluate(pass, static_cast<int64_t>(pass.size()), models::LogitRows::all);
  const size_t vocab = step.logits.size() / pass.size();
  for (size_t i = 0; i <= drafts.size(); ++i)
    p.push_back(sampler.distribution(row_of(step.logits, i, vocab), std::span(context_so_far).first(history.size() + i)));
  const Verdict verdict = verify_drafts(sampler, drafts, q, p);
  step.drafted = static_cast<int64_t>(drafts.size());
  step.accepted.assign(drafts.begin(), drafts.begin() + verdict.accepted);
  step.next = verdict.next;
  return step;
}

void decode_speculative(Session& session, Sampler& sampler, std::span<const float> last, std::vector<int32_t>& history,
                        const GenerationOptions& options, const std::function<void(int32_t)>& on_token,
                        std::vector<float>* logits_out, GenerationStats& stats) {
  if (!session.drafts()) user_error("speculative decoding needs a session with the model's draft module (SessionOptions::draft)");
  const size_t vocab = last.size();
  const auto is_stop = [&](int32_t t) {
    return std::find(options.stop_ids.begin(), options.stop_ids.end(), t) != options.stop_ids.end();
  };
  // `next`: chosen, not yet streamed nor evaluated.
  int32_t next = sampler.sample(last, history);
  // The same order of checks as generate(), so that both stop alike; the last token is
  // evaluated too (the session holds every streamed token).
  while (stats.generated_tokens < options.max_tokens) {
    if (options.cancel && options.cancel->load(std::memory_order_relaxed)) {
      stats.stop = StopReason::cancelled;
      break;
    }
    if (is_stop(next)) {
      stats.stop = StopReason::stop_token;
      break;
    }
    history.push_back(next);
    ++stats.generated_tokens;
    on_token(next);
    const int64_t held = session.cached_tokens();
    if (held >= session.context()) {  // chosen, but no room to evaluate it
      if (stats.generated_tokens < options.max_tokens) stats.stop = StopReason::context_full;
      break;
    }
    // Drafts: as many as the token limit leaves room for (the step bounds them by the context).
    const SpeculativeStep step = speculative_step(session, sampler, history, next,
                                                  std::min(options.draft_tokens, options.max_tokens - stats.generated_tokens));
    if (step.drafted > 0) ++stats.draft_passes;
    stats.drafted += step.drafted;
    stats.accepted += static_cast<int64_t>(step.accepted.size());
    // Accepted drafts stream as plain decoding would stream them; a stop token ends
    // generation unstreamed and unevaluated.
    bool stopped = false;
    int64_t kept = 0;
    for (int32_t t : step.accepted) {
      if (options.cancel && options.cancel->load(std::memory_order_relaxed)) {
        stats.stop = StopReason::cancelled, stopped = true;
      } else if (is_stop(t)) {
        stats.stop = StopReason::stop_token, stopped = true;
      } else {
        history.push_back(t);
        ++stats.generated_tokens;
        on_token(t);
        ++kept;
        continue;
      }
      break;
    }
    // The model keeps `next` and the streamed drafts; the rest of the pass is forgotten.
    session.rewind(held + 1 + kept);
    if (logits_out)
      logits_out->insert(logits_out->end(), step.logits.begin(),
                         step.logits.begin() + static_cast<std::ptrdiff_t>((1 + kept) * static_cast<int64_t>(vocab)));
    if (stopped) break;
    next = step.next;
  }
}

}  // namespace moat::runtime
