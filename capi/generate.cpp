// moat_generate: runtime::generate over a session, streaming each token to a C callback.
#include <algorithm>
#include <atomic>
#include <string>

#include "capi/boundary.h"
#include "capi/handles.h"
#include "runtime/generate.h"

namespace moat::capi {

namespace {

moat_stop_reason stop_reason(runtime::StopReason reason, bool callback_stopped) {
  switch (reason) {
    case runtime::StopReason::limit: return MOAT_STOP_LIMIT;
    case runtime::StopReason::stop_token: return MOAT_STOP_EOS;
    case runtime::StopReason::context_full: return MOAT_STOP_CONTEXT_FULL;
    case runtime::StopReason::cancelled: return callback_stopped ? MOAT_STOP_CALLBACK : MOAT_STOP_LIMIT;
  }
  return MOAT_STOP_LIMIT;
}

// Makes the session's token record what its cache holds after a generation that
// extended `history` (and may have stopped half-way, by an exception): the first
// cached tokens of it; a cache holding more than the record (a prompt evaluated in part)
// is rewound to the record (or emptied, where the cut is too long: Model::cache_rewind_limit).
void sync_tokens(moat_session& session, std::vector<int32_t>& history) {
  int64_t held = std::min<int64_t>(session.session->cached_tokens(), static_cast<int64_t>(history.size()));
  held = session.session->rewind(held);
  history.resize(static_cast<size_t>(held));
  session.tokens = std::move(history);
}

}  // namespace

}  // namespace moat::capi

extern "C" {

moat_status moat_generate(moat_session* session, const int32_t* prompt, size_t n_prompt,
                          const moat_sampling_options* sampling, int64_t max_tokens, int stop_at_eos,
                          moat_token_callback callback, void* user_data, moat_generation_result* result) {
  return moat::capi::guarded(__func__, MOAT_CAPI_BODY {
    namespace runtime = moat::runtime;
    MOAT_CAPI_NOT_NULL(session);
    MOAT_CAPI_NOT_NULL(prompt);
    MOAT_CAPI_NOT_NULL(sampling);
    MOAT_CAPI_REQUIRE(n_prompt >= 1, "n_prompt is 0; give at least one token");
    MOAT_CAPI_REQUIRE(max_tokens >= 0, "max_tokens is ", max_tokens, "; give the most tokens to generate (>= 0)");
    const moat::capi::ModelState& model = *session->model;
    const int64_t vocab = model.model->vocab_size();
    for (size_t i = 0; i < n_prompt; ++i)
      MOAT_CAPI_REQUIRE(prompt[i] >= 0 && prompt[i] < vocab, "prompt[", i, "] = ", prompt[i],
                        " is outside the vocabulary of ", vocab, " tokens");
    runtime::Sampler sampler = moat::capi::make_sampler(*sampling);

    // The callback's nonzero return stops generation through the runtime's cancel
    // flag, which is read before the next token is chosen (this one is evaluated).
    std::atomic<bool> stop{false};
    runtime::GenerationOptions options;
    options.max_tokens = max_tokens;
    options.batch = session->batch;
    if (stop_at_eos) options.stop_ids = model.stop_ids;
    options.cancel = &stop;
    std::vector<int32_t> history = session->tokens;  // the penalties' look-back; extended by generate
    std::string piece;
    runtime::GenerationStats stats;
    try {
      stats = runtime::generate(
        *session->session, sampler, std::span<const int32_t>(prompt, n_prompt), history, options, [&](int32_t id) {
          if (!callback || stop.load(std::memory_order_relaxed)) return;
          piece = model.tokenizer && static_cast<size_t>(id) < model.tokenizer->vocab_size()
                      ? model.tokenizer->token_bytes(id, /*render_special=*/false)
                      : std::string();
          if (callback(id, piece.data(), piece.size(), user_data) != 0) stop.store(true, std::memory_order_relaxed);
        });
    } catch (...) {
      moat::capi::sync_tokens(*session, history);
      throw;
    }
    // The cache holds the prompt and every generated token (but one left unevaluated
    // when the context filled).
    moat::capi::sync_tokens(*session, history);
    if (result) *result = {stats.generated_tokens, moat::capi::stop_reason(stats.stop, stop.load())};
    return MOAT_OK;
  });
}

}  // extern "C"
