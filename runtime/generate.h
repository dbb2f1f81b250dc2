// The generation loop: evaluate a prompt, then sample, stream and evaluate one token at
// a time until a stop token, the token limit or a full context.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/session.h"

namespace moat::runtime {

struct GenerationOptions {
  int64_t max_tokens = 0;         // tokens to generate at most
  int64_t batch = 512;            // prompt tokens per forward pass
  std::vector<int32_t> stop_ids;  // tokens that end generation (not streamed, not evaluated)
  // When given and set (e.g. by a SIGINT handler), generation stops before choosing its
  // next token (StopReason::cancelled); the prompt is always evaluated whole. Read with
  // a relaxed load once per token.
  const std::atomic<bool>* cancel = nullptr;
  // > 0: speculative decoding with the model's draft module, up to this many drafted
  // tokens per verification pass (runtime/speculative.h; the session must draft).
  int64_t draft_tokens = 0;
};

enum class StopReason { limit, stop_token, context_full, cancelled };

struct GenerationStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prompt_ms = 0, generate_ms = 0;  // wall time of evaluation, compilation excluded
  double compile_ms = 0;                  // compilation on the way (new cache windows)
  StopReason stop = StopReason::limit;
  // Speculative decoding: tokens drafted, drafts the model accepted, passes that verified drafts.
  int64_t drafted = 0, accepted = 0, draft_passes = 0;
  double acceptance() const { return drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0; }
  // Tokens each verification pass yields: the accepted drafts and the model's own.
  double accepted_per_pass() const {
    return draft_passes > 0 ? 1.0 + static_cast<double>(accepted) / static_cast<double>(draft_passes) : 1.0;
  }
};

// Evaluates `prompt` after what `session` holds, then generates. `history` holds every
// token the session has seen (for the repetition penalty) and is extended with the
// prompt and the generated tokens. `on_token` receives each generated token as soon as
// it is chosen. `logits_out`, when given, receives the logits of every evaluated
// position, row-major [positions, n_vocab]. The context must hold the prompt (UserError
// otherwise, before any work); generation stops when it is full.
GenerationStats generate(Session& session, Sampler& sampler, std::span<const int32_t> prompt,
                         std::vector<int32_t>& history, const GenerationOptions& options,
                         const std::function<void(int32_t)>& on_token, std::vector<float>* logits_out = nullptr);

}  // namespace moat::runtime
