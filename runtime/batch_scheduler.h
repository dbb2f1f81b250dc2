// Continuous batching over a session of several sequences (SessionOptions::sequences):
// requests wait in a bounded queue, join the running batch between steps, and every step
// decodes one token of each running request in one pass over the weights.
//
// A request that joins takes a free sequence: the one whose cached tokens share the
// longest prefix with its prompt (a conversation continued reuses its rows), then its
// prompt's remaining tokens are evaluated in chunks. Where the session's passes take a
// chunk beside other sequences' tokens (Session::mixes_chunks), a step is one pass: a
// token of each decoding request and as many prompt tokens (of the requests prefilling,
// first sequence first) as make a power of two in all, at most `prompt_chunk` (a bounded
// set of plans whatever the prompts' lengths), or one prompt token where no power of two
// fits beside the decoded ones and few are left (mixed_tokens). Otherwise a step is a
// chunk of a power of two tokens of one prompt, then a decode pass. Either way a long
// prompt never stalls the others for long.
// One thread (started by the constructor) drives the session; submit, drain and metrics
// may be called from any thread. Callbacks run on that thread and must not block long.
//
// A scheduler over a drafting session (one sequence, SessionOptions::draft) decodes by
// speculative decoding (runtime/speculative.h): each step drafts up to `draft_tokens`
// with the model's MTP layer and verifies them in one pass.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/session.h"

namespace moat::runtime {

enum class FinishReason { length, stop, context_full, cancelled, error };

struct BatchResult {
  FinishReason reason = FinishReason::length;
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose rows were reused, not evaluated
  int64_t generated_tokens = 0;
  std::string error;  // FinishReason::error: what went wrong
};

struct BatchRequest {
  std::vector<int32_t> prompt;  // at least one token, fitting the session's context
  SamplingOptions sampling;
  int64_t max_tokens = 16;
  std::vector<int32_t> stop_ids;  // tokens that end the request (not passed to on_token)
  // Each generated token as soon as it is chosen; false ends the request
  // (FinishReason::cancelled: a stop string matched, the client went away).
  std::function<bool(int32_t)> on_token;
  std::function<void(const BatchResult&)> on_done;  // exactly once, last
};

struct BatchMetrics {
  uint64_t requests_total = 0;   // finished
  uint64_t prompt_tokens_total = 0, cached_prompt_tokens_total = 0, generated_tokens_total = 0;
  int64_t running = 0, queued = 0;
  int64_t sequences = 0;              // running at most
  int64_t cache_tokens_used = 0;      // rows holding tokens, every sequence
  int64_t cache_tokens_capacity = 0;  // sequences x context
  double busy_seconds = 0;            // time spent running passes (compilation excluded)
  uint64_t passes = 0, decode_passes = 0, decode_tokens = 0;  // decode_tokens / decode_passes: the mean batch
  uint64_t drafted_tokens_total = 0, accepted_drafts_total = 0;  // speculative decoding
  // Pass shapes the session has compiled (SessionStats::plans), those of prepare_passes
  // included: a rise while serving is a pass that waited for its compilation.
  uint64_t plans_compiled = 0;
};

enum class SubmitResult { queued, queue_full, draining };

class BatchScheduler {
 public:
  // draft_tokens > 0: speculative decoding, which needs a drafting session (UserError).
  BatchScheduler(Session& session, int64_t max_queue, int64_t prompt_chunk, int64_t draft_tokens = 0);
  ~BatchScheduler();  // drains
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Compiles, before a scheduler over `session` with prompt chunks of at most
  // `prompt_chunk` tokens serves, the passes it takes (Session::prepare_pass), so that
  // no request waits for a compilation (seconds with a cold kernel cache, the lowering
  // with a warm one) and a pass whose activations do not fit fails now: decode passes of
  // 1 .. sequences() tokens, a prompt's chunks of a power of two (its first, over an
  // empty cache, and later ones) and, where the session mixes chunks with decoded tokens,
  // passes of a power of two tokens mixing them; the session keeps them all, with room
  // for others (Session::keep_plans). Call it before any pass (UserError where a
  // sequence holds tokens). A drafting session's speculative passes compile at first
  // use. `progress` (optional) gets the passes done of those to prepare after each.
  // Returns the passes prepared (those of shapes not compiled before).
  static int64_t prepare_passes(Session& session, int64_t prompt_chunk,
                                const std::function<void(int64_t done, int64_t total)>& progress = {});

  SubmitResult submit(std::shared_ptr<BatchRequest> request);
  // Takes no more requests, finishes those queued and running, then stops the thread.
  void drain();
  BatchMetrics metrics() const;

 private:
  struct Running;
  void loop();
  void step();
  void count_pass(double seconds, size_t decode_tokens);  // metrics after a pass
  // One pass over `work` (an entry per member, in order), counted: the logits of each
  // entry's last token, or none after finishing every member with the pass's error.
  std::vector<float> run_pass(std::span<Running* const> members, std::span<const SequenceTokens> work,
                              size_t decode_tokens);
  void admit(std::shared_ptr<BatchRequest> request);
  void prefill_chunk(Running& r);
  // One pass of `tokens` (mixed_tokens, > 0): a token of each of `decoding` and prompt
  // tokens of `prefilling` (in order) for the rest.
  void mixed_pass(std::span<Running* const> decoding, std::span<Running* const> prefilling, size_t tokens);
  size_t mixed_tokens(size_t decoding, size_t prompt_left) const;
  static size_t prompt_left(std::span<Running* const> prefilling);  // prompt tokens not yet evaluated
  void decode_pass();
  void decode_group(std::span<Running* const> members);  // one pass of a token of each
  void speculative_pass(Running& r);
  // After a token's logits: choose the next token, pass it on, or finish.
  void advance(Running& r, std::span<const float> logits);
  // Passes `token` on, or finishes the request (then false: `r` is gone). An `evaluated`
  // token (an accepted draft) is in the cache already; another becomes r.pending.
  bool deliver(Running& r, int32_t token, bool evaluated);
  void finish(Running& r, FinishReason reason, std::string error = {});
  int64_t free_sequence_for(const std::vector<int32_t>& prompt) const;

  // A prompt's last few tokens ride one a step beside decoded ones where no power of two
  // fits; more go in chunks of their own.
  static constexpr size_t kCrawlTokens = 4;

  Session& session_;
  const int64_t max_queue_, prompt_chunk_, draft_tokens_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<BatchRequest>> queue_;
  bool draining_ = false;
  std::vector<std::unique_ptr<Running>> running_;  // by sequence; null: free
  std::vector<std::vector<int32_t>> held_;         // per sequence: the tokens its cache rows hold
  BatchMetrics metrics_;
  std::thread thread_;
};

}  // namespace moat::runtime
