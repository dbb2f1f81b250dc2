// Speculative decoding with the model's own draft module (DeepSeek's MTP layer): each
// step drafts up to N tokens with the module, verifies them in one pass of the model over
// the cache (N + 1 tokens: the last chosen token and the drafts), keeps the longest
// accepted prefix and one token more, and forgets the cache rows of the rest.
//
// Acceptance is the standard speculative-sampling rule (Leviathan et al. 2023, Chen et
// al. 2023): draft token d, drawn from the draft's distribution q, is kept with
// probability min(1, p(d) / q(d)) under the model's distribution p; at the first
// rejection the token is drawn from max(0, p - q) normalised; after N acceptances one
// more is drawn from p. p and q are the sampler's distributions (penalties, filters and
// temperature included), so the output has the distribution of plain sampling; greedy
// decoding (both point masses) gives exactly the tokens of plain greedy decoding.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "runtime/generate.h"

namespace moat::runtime {

// generate()'s decoding after the prompt when GenerationOptions::draft_tokens > 0:
// `last` holds the logits of the last evaluated position. Fills the stats' generated
// tokens, stop reason and draft counts. UserError unless the session drafts.
void decode_speculative(Session& session, Sampler& sampler, std::span<const float> last, std::vector<int32_t>& history,
                        const GenerationOptions& options, const std::function<void(int32_t)>& on_token,
                        std::vector<float>* logits_out, GenerationStats& stats);

// One speculative step of sequence 0 of a drafting session. `history` ends with the
// token chosen last, `next` (streamed, not yet evaluated); the session holds every token
// before it. Drafts up to `max_drafts` tokens (0: none, a plain step), evaluates `next`
// and the drafts in one pass and applies the acceptance rule. The session then holds
// `next` and all the drafts; the caller streams `accepted` (in order, stopping where it
// must) and rewinds the session to held + 1 + the drafts it kept.
struct SpeculativeStep {
  int64_t held = 0;               // tokens the session held before `next`
  int64_t drafted = 0;
  std::vector<int32_t> accepted;  // the accepted prefix of the drafts
  int32_t next = 0;               // the token after them
  std::vector<float> logits;      // [1 + drafted, n_vocab]: row i, after `next` and i drafts
};
SpeculativeStep speculative_step(Session& session, Sampler& sampler, std::span<const int32_t> history, int32_t next,
                                 int64_t max_drafts);

// One verification: which drafted tokens the model keeps and the token after them.
struct Verdict {
  int64_t accepted = 0;  // drafts kept, a prefix
  int32_t next = 0;      // the token after them (from the residual, or the bonus from p)
};

// The acceptance rule over drafts d[0..N-1] with their draft distributions q[i] and the
// model's distributions p[0..N] (p[i] of the token at the position of d[i]; p[N] after
// the last draft).
Verdict verify_drafts(Sampler& sampler, std::span<const int32_t> drafts, std::span<const TokenDistribution> q,
                      std::span<const TokenDistribution> p);

}  // namespace moat::runtime
