#include "runtime/batch_scheduler.h"

#include <algorithm>
#include <bit>
#include <chrono>

#include "runtime/speculative.h"
#include "support/error.h"

namespace moat::runtime {

// A request holding a sequence: prefilling (next_prompt < prompt size) or decoding.
struct BatchScheduler::Running {
  std::shared_ptr<BatchRequest> request;
  int64_t sequence = 0;
  Sampler sampler;
  std::vector<int32_t> history;  // prompt + generated (for the penalties)
  size_t next_prompt = 0;        // prompt tokens evaluated or reused so far
  int32_t pending = -1;          // chosen, not evaluated yet (-1: none)
  BatchResult result;
};

namespace {

// Seconds since `start`, less the session's compile and packing time since then
// (`setup_ms_before`): the time passes took to run.
double run_seconds(std::chrono::steady_clock::time_point start, const Session& session, double setup_ms_before) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::max(0.0, elapsed - (session.stats().setup_ms() - setup_ms_before) / 1000.0);
}

// Tokens at the start of `prompt` that `held` holds too.
size_t common_prefix(const std::vector<int32_t>& held, const std::vector<int32_t>& prompt) {
  return static_cast<size_t>(std::mismatch(held.begin(), held.end(), prompt.begin(), prompt.end()).first - held.begin());
}

}  // namespace

BatchScheduler::BatchScheduler(Session& session, int64_t max_queue, int64_t prompt_chunk, int64_t draft_tokens)
    : session_(session), max_queue_(max_queue), prompt_chunk_(std::max<int64_t>(1, prompt_chunk)), draft_tokens_(draft_tokens) {
  if (draft_tokens_ > 0 && !session.drafts())
    user_error("speculative decoding needs a session with the model's draft module (one sequence)");
  if (draft_tokens_ > 0) session.check_draft_length(draft_tokens_);
  running_.resize(static_cast<size_t>(session.sequences()));
  held_.resize(static_cast<size_t>(session.sequences()));
  metrics_.sequences = session.sequences();
  metrics_.cache_tokens_capacity = session.sequences() * session.context();
  metrics_.plans_compiled = static_cast<uint64_t>(session.stats().plans);
  thread_ = std::thread([this] { loop(); });
}

BatchScheduler::~BatchScheduler() { drain(); }

int64_t BatchScheduler::prepare_passes(Session& session, int64_t prompt_chunk,
                                       const std::function<void(int64_t done, int64_t total)>& progress) {
  if (session.drafts()) return 0;
  const int64_t most = std::min(prompt_chunk, session.max_batch()), context = session.context();
  const int64_t sequences = std::min(session.sequences(), session.max_batch());
  const std::vector<int32_t> zeros(static_cast<size_t>(std::max(most, sequences)), 0);
  auto tokens = [&](int64_t n) { return std::span<const int32_t>(zeros.data(), static_cast<size_t>(n)); };
  struct Pass {
    std::vector<SequenceTokens> work;
    int64_t cached;  // tokens each of its sequences holds
  };
  std::vector<Pass> passes;
  // (decode_group, and mixed passes of one token each) a token of each of d sequences:
  // one sequence's after its prompt, several any time (a one-token prompt's included)
  for (int64_t d = 1; d <= sequences; ++d) {
    if (d == 1 && context < 2) continue;
    Pass p{{}, d == 1 ? 1 : 0};
    for (int64_t s = 0; s < d; ++s) p.work.push_back({s, tokens(1)});
    passes.push_back(std::move(p));
  }
  // (mixed_tokens) a decoded token beside prompt tokens, a power of two in all, those
  // spread over as many sequences as their context needs
  for (int64_t n = 4; session.mixes_chunks() && n <= most; n *= 2) {
    Pass p{{{0, tokens(1)}}, 0};
    int64_t left = n - 1;
    for (int64_t s = 1; s < session.sequences() && left > 0; ++s) {
      const int64_t take = std::min(left, context);
      p.work.push_back({s, tokens(take)});
      left -= take;
    }
    if (left == 0) passes.push_back(std::move(p));
  }
  for (int64_t n = 1; n <= most && n <= context; n *= 2) {  // a prompt's chunks (prefill_chunk), first and later
    passes.push_back({{{0, tokens(n)}}, 0});
    if (n > 1 && n + 1 <= context) passes.push_back({{{0, tokens(n)}}, 1});  // (one token: a decode pass)
  }
  session.keep_plans(passes.size() + kMaxPlans);  // room for them beside the passes of other shapes
  const size_t room = session.max_plans() - std::min(session.max_plans(), session.plans_held());
  if (passes.size() > room) passes.resize(room);
  int64_t prepared = 0;
  for (size_t i = 0; i < passes.size(); ++i) {
    const size_t held = session.plans_held();
    session.prepare_pass(passes[i].work, passes[i].cached);
    prepared += session.plans_held() > held;
    if (progress) progress(static_cast<int64_t>(i + 1), static_cast<int64_t>(passes.size()));
  }
  return prepared;
}

SubmitResult BatchScheduler::submit(std::shared_ptr<BatchRequest> request) {
  {
    std::lock_guard lock(mutex_);
    if (draining_) return SubmitResult::draining;
    if (static_cast<int64_t>(queue_.size()) >= max_queue_) return SubmitResult::queue_full;
    queue_.push_back(std::move(request));
    metrics_.queued = static_cast<int64_t>(queue_.size());
  }
  wake_.notify_one();
  return SubmitResult::queued;
}

void BatchScheduler::drain() {
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

BatchMetrics BatchScheduler::metrics() const {
  std::lock_guard lock(mutex_);
  return metrics_;
}

void BatchScheduler::loop() {
  for (;;) {
    std::vector<std::shared_ptr<BatchRequest>> joining;
    {
      std::unique_lock lock(mutex_);
      const auto busy = [&] {
        return std::any_of(running_.begin(), running_.end(), [](const auto& r) { return r != nullptr; });
      };
      wake_.wait(lock, [&] { return !queue_.empty() || busy() || draining_; });
      if (draining_ && queue_.empty() && !busy()) return;
      const auto free_slots = std::count(running_.begin(), running_.end(), nullptr);
      while (!queue_.empty() && static_cast<int64_t>(joining.size()) < free_slots) {
        joining.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      metrics_.queued = static_cast<int64_t>(queue_.size());
    }
    for (auto& request : joining) admit(std::move(request));
    step();
  }
}

int64_t BatchScheduler::free_sequence_for(const std::vector<int32_t>& prompt) const {
  int64_t best = -1;
  size_t best_common = 0;
  for (size_t s = 0; s < running_.size(); ++s) {
    if (running_[s]) continue;
    const size_t common = common_prefix(held_[s], prompt);
    if (best < 0 || common > best_common) best = static_cast<int64_t>(s), best_common = common;
  }
  return best;
}

void BatchScheduler::admit(std::shared_ptr<BatchRequest> request) {
  const int64_t sequence = free_sequence_for(request->prompt);
  MOAT_INTERNAL_CHECK(sequence >= 0, "a request admitted without a free sequence");
  const auto s = static_cast<size_t>(sequence);
  auto r = std::make_unique<Running>(Running{request, sequence, Sampler(SamplingOptions{}), {}, 0, -1, {}});
  r->result.prompt_tokens = static_cast<int64_t>(request->prompt.size());
  running_[s] = std::move(r);
  Running& run = *running_[s];
  {
    std::lock_guard lock(mutex_);
    ++metrics_.running;
  }
  try {
    run.sampler = Sampler(request->sampling);
    if (request->prompt.empty()) user_error("the prompt is empty");
    if (static_cast<int64_t>(request->prompt.size()) > session_.context())
      user_error("the prompt (", request->prompt.size(), " tokens) does not fit the context of ", session_.context(), " tokens");
    session_.check_tokens(request->prompt);  // here, not in a pass it shares with other requests
  } catch (const std::exception& e) {
    finish(run, FinishReason::error, e.what());
    return;
  }
  // Reuse the rows of the longest common prefix, but evaluate at least the prompt's last
  // token (its logits choose the first generated one); a cut longer than the model's
  // cache takes back (Model::cache_rewind_limit) keeps none.
  const size_t reusable = std::min(common_prefix(held_[s], request->prompt), request->prompt.size() - 1);
  const auto common = static_cast<size_t>(session_.rewind(sequence, static_cast<int64_t>(reusable)));
  held_[s].resize(common);
  run.next_prompt = common;
  run.result.cached_prompt_tokens = static_cast<int64_t>(common);
  run.history.assign(request->prompt.begin(), request->prompt.end());
}

void BatchScheduler::count_pass(double seconds, size_t decode_tokens) {
  int64_t used = 0;
  for (int64_t q = 0; q < session_.sequences(); ++q) used += session_.cached_tokens(q);
  const auto plans = static_cast<uint64_t>(session_.stats().plans);
  std::lock_guard lock(mutex_);
  metrics_.plans_compiled = plans;
  metrics_.busy_seconds += seconds;
  ++metrics_.passes;
  if (decode_tokens > 0) ++metrics_.decode_passes;
  metrics_.decode_tokens += decode_tokens;
  metrics_.cache_tokens_used = used;
}

void BatchScheduler::step() {
  std::vector<Running*> prefilling, decoding;
  for (auto& r : running_) {
    if (!r) continue;
    if (r->next_prompt < r->request->prompt.size()) prefilling.push_back(r.get());
    else if (r->pending >= 0) decoding.push_back(r.get());
  }
  if (!prefilling.empty() && draft_tokens_ == 0 && session_.mixes_chunks())
    if (const size_t tokens = mixed_tokens(decoding.size(), prompt_left(prefilling)); tokens > 0)
      return mixed_pass(decoding, prefilling, tokens);
  // At most one prompt chunk per step (the request on the first sequence), then a decode
  // pass over every request with a chosen token.
  if (!prefilling.empty()) prefill_chunk(*prefilling.front());
  decode_pass();
}

std::vector<float> BatchScheduler::run_pass(std::span<Running* const> members, std::span<const SequenceTokens> work,
                                           size_t decode_tokens) {
  const auto start = std::chrono::steady_clock::now();
  const double setup_ms = session_.stats().setup_ms();
  std::vector<float> logits;
  try {
    logits = session_.evaluate_sequences(work);
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mutex_);
      metrics_.plans_compiled = static_cast<uint64_t>(session_.stats().plans);  // a plan made before the pass failed
    }
    for (Running* r : members) finish(*r, FinishReason::error, e.what());
    return {};
  }
  count_pass(run_seconds(start, session_, setup_ms), decode_tokens);
  return logits;
}

size_t BatchScheduler::prompt_left(std::span<Running* const> prefilling) {
  size_t left = 0;
  for (const Running* r : prefilling) left += r->request->prompt.size() - r->next_prompt;
  return left;
}

// Tokens of a mixed pass: a power of two in all where the prompts left allow one above the
// decoded tokens (a bounded set of plans), else one more than those (the plan of a decode
// pass one larger; 0 where that would take more than kCrawlTokens steps: the prompt then
// goes in chunks of its own).
size_t BatchScheduler::mixed_tokens(size_t decoding, size_t left) const {
  const size_t most = static_cast<size_t>(std::min(prompt_chunk_, session_.max_batch()));
  if (decoding >= most) return 0;
  const size_t total = std::bit_floor(std::min(most, decoding + left));
  if (total > decoding) return total;
  return left <= kCrawlTokens ? decoding + 1 : 0;
}

void BatchScheduler::mixed_pass(std::span<Running* const> decoding, std::span<Running* const> prefilling, size_t tokens) {
  size_t budget = tokens - decoding.size();
  std::vector<SequenceTokens> work;
  std::vector<Running*> members(decoding.begin(), decoding.end());
  for (Running* r : decoding) work.push_back({r->sequence, std::span<const int32_t>(&r->pending, 1)});
  for (Running* r : prefilling) {
    if (budget == 0) break;
    const size_t n = std::min(budget, r->request->prompt.size() - r->next_prompt);
    work.push_back({r->sequence, std::span<const int32_t>(r->request->prompt.data() + r->next_prompt, n)});
    members.push_back(r);
    budget -= n;
  }
  const std::vector<float> logits = run_pass(members, work, decoding.size());
  if (logits.empty()) return;
  const size_t vocab = logits.size() / work.size();
  for (size_t i = 0; i < members.size(); ++i) {
    Running& r = *members[i];
    std::vector<int32_t>& held = held_[static_cast<size_t>(r.sequence)];
    held.insert(held.end(), work[i].tokens.begin(), work[i].tokens.end());
    const std::span<const float> row(logits.data() + i * vocab, vocab);
    if (i < decoding.size()) {
      r.pending = -1;
      advance(r, row);
    } else {
      r.next_prompt += work[i].tokens.size();
      if (r.next_prompt == r.request->prompt.size()) advance(r, row);
    }
  }
}

void BatchScheduler::prefill_chunk(Running& r) {
  const std::vector<int32_t>& prompt = r.request->prompt;
  // Chunks of a power of two tokens: prompts of every length share at most
  // log2(batch) + 1 prefill plans, compiled once, instead of one plan (and a compile on
  // the request's time) per length.
  const size_t n = std::bit_floor(std::min<size_t>(static_cast<size_t>(std::min(prompt_chunk_, session_.max_batch())),
                                                   prompt.size() - r.next_prompt));
  const std::span<const int32_t> chunk(prompt.data() + r.next_prompt, n);
  Running* const member = &r;
  const SequenceTokens work{r.sequence, chunk};
  const std::vector<float> logits = run_pass({&member, 1}, {&work, 1}, 0);
  if (logits.empty()) return;
  held_[static_cast<size_t>(r.sequence)].insert(held_[static_cast<size_t>(r.sequence)].end(), chunk.begin(), chunk.end());
  r.next_prompt += n;
  if (r.next_prompt == prompt.size()) advance(r, logits);
}

void BatchScheduler::decode_pass() {
  if (draft_tokens_ > 0) {  // one sequence
    if (running_[0] && running_[0]->pending >= 0) speculative_pass(*running_[0]);
    return;
  }
  std::vector<Running*> members;
  for (auto& r : running_)
    if (r && r->pending >= 0) members.push_back(r.get());
  // A pass holds at most the session's batch of tokens: more running requests than
  // that decode in several passes.
  const auto most = static_cast<size_t>(session_.max_batch());
  for (size_t first = 0; first < members.size(); first += most)
    decode_group(std::span<Running* const>(members).subspan(first, std::min(most, members.size() - first)));
}

void BatchScheduler::decode_group(std::span<Running* const> members) {
  std::vector<SequenceTokens> work;
  for (Running* r : members) work.push_back({r->sequence, std::span<const int32_t>(&r->pending, 1)});
  const std::vector<float> logits = run_pass(members, work, work.size());
  if (logits.empty()) return;
  const size_t vocab = logits.size() / work.size();
  for (size_t i = 0; i < members.size(); ++i) {
    Running& r = *members[i];
    held_[static_cast<size_t>(r.sequence)].push_back(r.pending);
    r.pending = -1;
    advance(r, std::span<const float>(logits.data() + i * vocab, vocab));
  }
}

// Drafts with the MTP layer and verifies them with the pending token in one pass; the
// accepted drafts are passed on as if decoded one by one, then the token after them.
void BatchScheduler::speculative_pass(Running& r) {
  const auto start = std::chrono::steady_clock::now();
  const double setup_ms = session_.stats().setup_ms();
  SpeculativeStep step;
  try {
    step = speculative_step(session_, r.sampler, r.history, r.pending,
                            std::min(draft_tokens_, r.request->max_tokens - r.result.generated_tokens));
  } catch (const std::exception& e) {
    return finish(r, FinishReason::error, e.what());
  }
  count_pass(run_seconds(start, session_, setup_ms), 1);
  {
    std::lock_guard lock(mutex_);
    metrics_.drafted_tokens_total += static_cast<uint64_t>(step.drafted);
    metrics_.accepted_drafts_total += static_cast<uint64_t>(step.accepted.size());
  }
  // The cache keeps the pending token and the accepted drafts (all evaluated).
  std::vector<int32_t>& held = held_[static_cast<size_t>(r.sequence)];
  session_.rewind(r.sequence, step.held + 1 + static_cast<int64_t>(step.accepted.size()));
  held.push_back(r.pending);
  held.insert(held.end(), step.accepted.begin(), step.accepted.end());
  r.pending = -1;
  for (int32_t t : step.accepted)
    if (!deliver(r, t, true)) return;
  deliver(r, step.next, false);
}

void BatchScheduler::advance(Running& r, std::span<const float> logits) {
  deliver(r, r.sampler.sample(logits, r.history), false);
}

bool BatchScheduler::deliver(Running& r, int32_t next, bool evaluated) {
  const std::vector<int32_t>& stops = r.request->stop_ids;
  if (std::find(stops.begin(), stops.end(), next) != stops.end()) return finish(r, FinishReason::stop), false;
  r.history.push_back(next);
  ++r.result.generated_tokens;
  {
    std::lock_guard lock(mutex_);
    ++metrics_.generated_tokens_total;
  }
  bool more = true;
  try {
    more = !r.request->on_token || r.request->on_token(next);
  } catch (const std::exception& e) {
    return finish(r, FinishReason::error, e.what()), false;
  }
  if (!more) return finish(r, FinishReason::cancelled), false;
  if (r.result.generated_tokens >= r.request->max_tokens) return finish(r, FinishReason::length), false;
  if (evaluated) return true;
  if (session_.cached_tokens(r.sequence) >= session_.context()) return finish(r, FinishReason::context_full), false;
  r.pending = next;
  return true;
}

void BatchScheduler::finish(Running& r, FinishReason reason, std::string error) {
  r.result.reason = reason;
  r.result.error = std::move(error);
  const BatchResult result = r.result;
  const std::shared_ptr<BatchRequest> request = r.request;
  const auto s = static_cast<size_t>(r.sequence);
  // The rows stay for a later prompt with the same prefix; what they hold is held_[s].
  held_[s].resize(static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(held_[s].size()), session_.cached_tokens(r.sequence))));
  running_[s].reset();  // r is gone from here on
  {
    std::lock_guard lock(mutex_);
    --metrics_.running;
    ++metrics_.requests_total;
    metrics_.prompt_tokens_total += static_cast<uint64_t>(result.prompt_tokens);
    metrics_.cached_prompt_tokens_total += static_cast<uint64_t>(result.cached_prompt_tokens);
  }
  if (request->on_done) {
    try {
      request->on_done(result);
    } catch (...) {  // a callback's failure must not take the scheduler down
    }
  }
}

}  // namespace moat::runtime
