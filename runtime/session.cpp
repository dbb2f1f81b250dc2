#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "jit/lower.h"
#include "jit/schedule.h"
#include "ir/tensor.h"
#include "runtime/device_target.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "support/memory.h"

namespace moat::runtime {

Session::Session(const models::Model& model, backends::Device& device, runtime::KernelCache& cache,
                 const SessionOptions& options)
    : model_(model), device_(device), cache_(cache), progress_(options.progress) {
  context_ = options.context > 0 ? options.context : std::max<int64_t>(model.training_context(), 1);
  cache_parts_ = model.cache_layout();
  if (options.draft) {
    if (!model.has_draft()) user_error("cannot draft with the model's own module: ", model.why_no_draft());
    if (options.sequences > 1) user_error("drafting (--spec) runs one sequence; a session of ", options.sequences, " cannot");
    for (const models::CachePart& part : model.draft_cache_layout()) cache_parts_.push_back(part);
    pass_.hidden = true;
  }
  for (const models::CachePart& part : cache_parts_)
    if (part.width % ir::dtype_block_elems(options.cache_dtype) != 0)
      user_error("a ", ir::dtype_name(options.cache_dtype), " cache needs rows of whole ", ir::dtype_block_elems(options.cache_dtype),
                 "-element blocks, and this model's ", part.input, " rows have ", part.width,
                 " elements; use --cache-type f16 (or f32, bf16)");
  arena_ = std::make_unique<Arena>(device);
  if (options.sequences < 1) user_error("a session needs at least one sequence, got ", options.sequences);
  cached_.assign(static_cast<size_t>(options.sequences), 0);
  pass_.cache_rows = context_ * options.sequences;
  pass_.cache_dtype = options.cache_dtype;
  pass_.batched = options.sequences > 1;
  max_batch_ = std::max<int64_t>(1, std::min(options.max_batch, context_));
  check_memory(options);
  // The latent cache lives on the device for the whole context: written in place by the
  // passes (write_rows), never copied to or from the host. Pages are touched as rows
  // are written (CPU: address space until then).
  for (const models::CachePart& part : cache_parts_) {
    caches_.push_back(device.allocate(static_cast<uint64_t>(
        ir::tensor_bytes(pass_.cache_dtype, {pass_.cache_rows * part.rows_per_token, part.width}))));
    resident_[part.input] = caches_.back().get();
  }
  // Weights go to the device once (zero-copy where it shares host memory).
  const auto total = static_cast<int64_t>(model.tensors().size());
  for (const auto& [name, tensor] : model.tensors()) {
    weight_buffers_.push_back(device.wrap_host(tensor.bytes().data(), tensor.bytes().size()));
    resident_[name] = weight_buffers_.back().get();
    if (progress_) progress_("upload", static_cast<int64_t>(weight_buffers_.size()), total);
  }
}

void Session::rewind(int64_t sequence, int64_t tokens) {
  int64_t& cached = cached_.at(static_cast<size_t>(sequence));
  cached = std::clamp<int64_t>(tokens, 0, cached);
  if (sequence != 0 || !drafts()) return;
  // The draft rows and hidden states kept are those of positions before `cached`.
  draft_cached_ = std::min(draft_cached_, cached);
  pending_hidden_.resize(static_cast<size_t>((cached - draft_cached_) * model_.hidden_size()));
}

void Session::prepare(int64_t prompt_tokens, int64_t batch, models::LogitRows rows) {
  if (batch < 1) user_error("--batch must be at least 1, got ", batch);
  batch = std::min(batch, max_batch_);
  // Plans of sequence 0's passes; their warm-up runs (where the driver compiles at first
  // launch) write rows past what it holds, which the real passes write again.
  const int64_t held = cached_[0];
  std::vector<int32_t> zeros(static_cast<size_t>(batch), 0);
  for (int64_t left = prompt_tokens; left > 0;) {
    const int64_t n = std::min(left, batch);
    const SequenceTokens work{0, std::span<const int32_t>(zeros.data(), static_cast<size_t>(n))};
    plan_for(key_for({&work, 1}, rows), [&](Executor& e) { run_pass(e, {&work, 1}, rows); });
    cached_[0] += n;
    left -= n;
  }
  if (cached_[0] < context_) {
    const SequenceTokens work{0, std::span<const int32_t>(zeros.data(), 1)};
    plan_for(key_for({&work, 1}, models::LogitRows::all), [&](Executor& e) { run_pass(e, {&work, 1}, models::LogitRows::all); });
  }
  cached_[0] = held;
}

Session::~Session() = default;

jit::Plan Session::lower_pass(const PlanKey& key) const {
  models::PassSpec pass = pass_;
  std::tie(pass.tokens, pass.first, pass.rows, pass.outputs, pass.draft) = key;
  return jit::lower(model_.pass_graph(pass), {}, schedule_for(device_.properties()));
}

void Session::check_memory(const SessionOptions& options) {
  for (const auto& [name, tensor] : model_.tensors()) needs_.weights += tensor.bytes().size();
  needs_.cache = static_cast<uint64_t>(context_) * static_cast<uint64_t>(sequences()) * cache_bytes_per_token();
  // The largest passes: a full batch (first and later) and one token; lowered once here
  // and compiled when first used.
  const auto start = std::chrono::steady_clock::now();
  std::vector<PlanKey> largest = {PlanKey{max_batch_, true, models::LogitRows::all, 1, false},
                                  PlanKey{max_batch_, false, models::LogitRows::all, 1, false},
                                  PlanKey{1, false, models::LogitRows::all, 1, false}};
  if (drafts()) largest.push_back(PlanKey{max_batch_, false, models::LogitRows::all, 1, true});
  for (const PlanKey& key : largest) {
    jit::Plan plan = lower_pass(key);
    needs_.activations = std::max(needs_.activations, plan_memory(plan).bytes);
    lowered_.emplace(key, std::move(plan));
  }
  stats_.compile_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const backends::DeviceProperties& p = device_.properties();
  needs_.available = options.memory_budget > 0 ? options.memory_budget
                     : p.host_memory            ? available_host_memory()
                                                : p.info.memory_bytes;
  if (needs_.available == 0 || needs_.total() <= needs_.available) return;
  user_error("the model does not fit ", p.info.id, ": it needs ", mib(needs_.total()), " (weights ", mib(needs_.weights),
             ", latent cache ", mib(needs_.cache), " for ", context_, " tokens",
             sequences() > 1 ? cat(" x ", sequences(), " sequences") : std::string(), " of ", ir::dtype_name(pass_.cache_dtype),
             ", activations ", mib(needs_.activations), " for passes of ", max_batch_, " tokens) and ",
             options.memory_budget > 0 ? "the budget (--memory-budget) is " : "has ", mib(needs_.available),
             "; lower --ctx", sequences() > 1 ? ", --parallel" : "", " or --batch", pass_.cache_dtype == ir::DType::f32 ? ", use --cache-type f16" : "",
             ", or use a smaller model file");
}

uint64_t Session::cache_bytes_per_token() const {
  uint64_t bytes = 0;
  for (const models::CachePart& part : cache_parts_)
    bytes += static_cast<uint64_t>(ir::tensor_bytes(pass_.cache_dtype, {part.rows_per_token, part.width}));
  return bytes;
}

void Session::check_tokens(std::span<const int32_t> tokens) const {
  for (int32_t t : tokens)
    if (t < 0 || t >= model_.vocab_size())
      user_error("token id ", t, " is outside the vocabulary of ", model_.vocab_size(), " tokens");
}

std::vector<float> Session::evaluate(std::span<const int32_t> tokens, int64_t batch, models::LogitRows rows) {
  return evaluate(0, tokens, batch, rows);
}

std::vector<float> Session::evaluate(int64_t sequence, std::span<const int32_t> tokens, int64_t batch, models::LogitRows rows) {
  if (batch < 1) user_error("--batch must be at least 1, got ", batch);
  if (sequence < 0 || sequence >= sequences()) user_error("sequence ", sequence, " of a session of ", sequences());
  batch = std::min(batch, max_batch_);
  const int64_t cached = cached_[static_cast<size_t>(sequence)];
  if (cached + static_cast<int64_t>(tokens.size()) > context_)
    user_error(cached, " cached + ", tokens.size(), " new tokens pass the context of ", context_,
               " tokens; shorten the prompt or -n, or raise --ctx");
  check_tokens(tokens);
  std::vector<float> logits;
  for (size_t start = 0; start < tokens.size(); start += static_cast<size_t>(batch)) {
    const size_t n = std::min<size_t>(static_cast<size_t>(batch), tokens.size() - start);
    const SequenceTokens work{sequence, tokens.subspan(start, n)};
    std::vector<float> chunk = forward({&work, 1}, rows);
    if (rows == models::LogitRows::last) logits.clear();  // only the last chunk's last row is kept
    logits.insert(logits.end(), chunk.begin(), chunk.end());
  }
  return logits;
}

std::vector<float> Session::evaluate_sequences(std::span<const SequenceTokens> work) {
  if (work.empty()) return {};
  if (work.size() > 1 && !pass_.batched)
    user_error("a pass over ", work.size(), " sequences needs a session of several (SessionOptions::sequences)");
  int64_t total = 0;
  std::vector<bool> seen(cached_.size(), false);
  for (const SequenceTokens& w : work) {
    if (w.sequence < 0 || w.sequence >= sequences()) user_error("sequence ", w.sequence, " of a session of ", sequences());
    if (seen[static_cast<size_t>(w.sequence)]) user_error("sequence ", w.sequence, " appears twice in one pass");
    seen[static_cast<size_t>(w.sequence)] = true;
    if (w.tokens.empty()) user_error("sequence ", w.sequence, " has no new tokens");
    const int64_t cached = cached_[static_cast<size_t>(w.sequence)];
    if (cached + static_cast<int64_t>(w.tokens.size()) > context_)
      user_error("sequence ", w.sequence, ": ", cached, " cached + ", w.tokens.size(), " new tokens pass the context of ",
                 context_, " tokens");
    check_tokens(w.tokens);
    total += static_cast<int64_t>(w.tokens.size());
  }
  if (total > max_batch_) user_error("a pass of ", total, " tokens passes the batch of ", max_batch_);
  return forward(work, models::LogitRows::last);
}

std::vector<ir::Graph> session_graphs(const models::Model& model, int64_t prompt_tokens, int64_t context,
                                     ir::DType cache_dtype) {
  if (!model.has_draft())
    return {model.pass_graph({prompt_tokens, true, models::LogitRows::last, context, cache_dtype}),
            model.pass_graph({1, false, models::LogitRows::all, context, cache_dtype})};
  // A drafting session's passes also return hidden states; the draft module catches up
  // with the prompt, drafts a token, and the model verifies it with the chosen one.
  auto pass = [&](int64_t tokens, bool first, models::LogitRows rows, bool draft) {
    models::PassSpec p{tokens, first, rows, context, cache_dtype};
    p.hidden = true;
    p.draft = draft;
    return model.pass_graph(p);
  };
  return {pass(prompt_tokens, true, models::LogitRows::last, false), pass(1, false, models::LogitRows::all, false),
          pass(prompt_tokens, false, models::LogitRows::last, true), pass(1, false, models::LogitRows::all, true),
          pass(2, false, models::LogitRows::all, false)};
}

// The compiled pass for `work`: a first pass (one sequence over an empty cache) may take
// the expanded form; every later one the absorbed form over the cache. Neither depends
// on how many tokens are cached.
Session::PlanKey Session::key_for(std::span<const SequenceTokens> work, models::LogitRows rows) const {
  int64_t new_tokens = 0;
  for (const SequenceTokens& w : work) new_tokens += static_cast<int64_t>(w.tokens.size());
  const bool first = work.size() == 1 && cached_[static_cast<size_t>(work[0].sequence)] == 0;
  int64_t outputs = 1;
  if (pass_.batched && rows == models::LogitRows::last) outputs = static_cast<int64_t>(work.size());
  if (new_tokens == outputs) rows = models::LogitRows::all, outputs = 1;  // every token's logits: the same pass
  return {new_tokens, first, rows, outputs, false};
}

Executor& Session::plan_for(const PlanKey& key, const std::function<void(Executor&)>& warm_up) {
  auto plan = plans_.find(key);
  if (plan != plans_.end()) {
    plan->second.last_use = ++uses_;
    return *plan->second.executor;
  }
  const auto start = std::chrono::steady_clock::now();
  auto lowered = lowered_.find(key);
  jit::Plan lowered_plan = lowered != lowered_.end() ? std::move(lowered->second) : lower_pass(key);
  if (lowered != lowered_.end()) lowered_.erase(lowered);
  ExecutorOptions options;
  options.arena = arena_.get();
  if (progress_) options.progress = [this](int64_t done, int64_t total) { progress_("compile", done, total); };
  const uint64_t compiles_before = cache_.stats().compiles;
  auto exec = std::make_unique<Executor>(device_, cache_, std::move(lowered_plan), options);
  const auto pack_start = std::chrono::steady_clock::now();
  for (const jit::PlanBuffer& b : exec->plan().buffers) {  // packed weights: made once, kept on the device
    if (b.role != jit::PlanBuffer::Role::param || resident_.count(b.name)) continue;
    if (const ir::HostTensor* t = packed_.find(b.name, model_.tensors())) {
      weight_buffers_.push_back(device_.wrap_host(t->bytes().data(), t->bytes().size()));
      resident_[b.name] = weight_buffers_.back().get();
    }
  }
  // A bounded set: the least recently used plan goes when there are too many (prompts
  // of many lengths end in chunks of many sizes).
  if (plans_.size() >= max_plans()) {
    auto oldest = std::min_element(plans_.begin(), plans_.end(),
                                   [](const auto& a, const auto& b) { return a.second.last_use < b.second.last_use; });
    plans_.erase(oldest);
  }
  plan = plans_.emplace(key, CachedPlan{std::move(exec), ++uses_}).first;
  const auto end = std::chrono::steady_clock::now();
  stats_.compile_ms += std::chrono::duration<double, std::milli>(pack_start - start).count();
  stats_.pack_ms += std::chrono::duration<double, std::milli>(end - pack_start).count();
  ++stats_.plans;
  // A driver that compiles at first launch does so for kernels new to it: those this
  // process compiled (its binaries from the kernel cache were launched before, and the
  // driver keeps its own cache). Their first launch is a warm-up pass here, not timed.
  if (device_.properties().first_launch_compiles && cache_.stats().compiles > compiles_before) {
    warm_up(*plan->second.executor);
    stats_.compile_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - end).count();
  }
  return *plan->second.executor;
}

// Runs `plan` for `work`, each sequence's tokens after those it holds: their cache rows
// are written in place (a warm-up's rows are written again by the real pass).
std::vector<ir::HostTensor> Session::run_pass(Executor& plan, std::span<const SequenceTokens> work, models::LogitRows rows) {
  std::vector<int64_t> ids, positions, cache_at, key_starts, logit_rows;
  for (const SequenceTokens& w : work) {
    const int64_t past = cached_[static_cast<size_t>(w.sequence)], first_row = w.sequence * context_;
    for (size_t i = 0; i < w.tokens.size(); ++i) {
      ids.push_back(w.tokens[i]);
      positions.push_back(past + static_cast<int64_t>(i));
      cache_at.push_back(first_row + past + static_cast<int64_t>(i));
      key_starts.push_back(first_row);
    }
    logit_rows.push_back(static_cast<int64_t>(ids.size()) - 1);
  }
  const int64_t T = static_cast<int64_t>(ids.size());
  ir::Bindings bindings;
  bindings.tensors["tokens"] = ir::HostTensor::from_i64({T}, ids, ir::DType::i32);
  bindings.tensors["positions"] = ir::HostTensor::from_i64({T}, positions, ir::DType::i32);
  if (pass_.batched) {
    bindings.tensors["cache_at"] = ir::HostTensor::from_i64({T}, cache_at, ir::DType::i32);
    bindings.tensors["key_starts"] = ir::HostTensor::from_i64({T}, key_starts, ir::DType::i32);
    if (std::get<2>(key_for(work, rows)) == models::LogitRows::last)
      bindings.tensors["logit_rows"] = ir::HostTensor::from_i64({static_cast<int64_t>(logit_rows.size())}, logit_rows, ir::DType::i32);
  }
  return plan.run(bindings, &resident_);
}

std::vector<float> Session::forward(std::span<const SequenceTokens> work, models::LogitRows rows) {
  Executor& plan = plan_for(key_for(work, rows), [&](Executor& e) { run_pass(e, work, rows); });
  std::vector<ir::HostTensor> out = run_pass(plan, work, rows);
  for (const SequenceTokens& w : work) cached_[static_cast<size_t>(w.sequence)] += static_cast<int64_t>(w.tokens.size());
  if (pass_.hidden) {
    const std::vector<float> hidden = out.back().to_f32();
    pending_hidden_.insert(pending_hidden_.end(), hidden.begin(), hidden.end());
  }
  return out[0].to_f32();
}

std::vector<float> Session::draft_catch_up(std::span<const int32_t> next_tokens, models::LogitRows rows) {
  if (!drafts()) user_error("this session does not draft (SessionOptions::draft)");
  const int64_t behind = cached_[0] - draft_cached_;
  if (behind < 1 || static_cast<int64_t>(next_tokens.size()) != behind)
    user_error("the draft module is ", behind, " position(s) behind the model and was given ", next_tokens.size(),
               " next token(s); it takes one per position");
  draft_steps_ = 0;
  std::vector<float> logits = run_draft(next_tokens, pending_hidden_, rows);
  draft_cached_ += behind;
  pending_hidden_.clear();
  return logits;
}

std::vector<float> Session::draft_step(int32_t token) {
  if (!drafts() || draft_hidden_.empty()) user_error("a draft step follows a draft catch-up or step");
  const auto width = static_cast<size_t>(model_.hidden_size());
  const std::vector<float> hidden(draft_hidden_.end() - static_cast<std::ptrdiff_t>(width), draft_hidden_.end());
  std::vector<float> logits = run_draft({&token, 1}, hidden, models::LogitRows::all);
  ++draft_steps_;
  return logits;
}

// The draft module over tokens.size() positions from draft_cached_ + draft_steps_, in
// passes of at most max_batch_; draft_hidden_ becomes their output hidden states.
std::vector<float> Session::run_draft(std::span<const int32_t> tokens, std::span<const float> hidden, models::LogitRows rows) {
  const auto width = static_cast<size_t>(model_.hidden_size());
  MOAT_INTERNAL_CHECK(hidden.size() == tokens.size() * width, "a draft pass without a hidden state per position");
  const int64_t first = draft_cached_ + draft_steps_;
  if (first + static_cast<int64_t>(tokens.size()) > context_)
    user_error("the draft module's cache holds ", first, " positions; ", tokens.size(), " more pass the context of ", context_);
  check_tokens(tokens);
  std::vector<float> logits;
  draft_hidden_.clear();
  for (size_t start = 0; start < tokens.size(); start += static_cast<size_t>(max_batch_)) {
    const size_t n = std::min<size_t>(static_cast<size_t>(max_batch_), tokens.size() - start);
    const std::span<const int32_t> chunk = tokens.subspan(start, n);
    const std::span<const float> chunk_hidden = hidden.subspan(start * width, n * width);
    const int64_t at = first + static_cast<int64_t>(start);
    const models::LogitRows chunk_rows = n == 1 ? models::LogitRows::all : rows;  // one row: the same pass
    const PlanKey key{static_cast<int64_t>(n), false, chunk_rows, 1, true};
    Executor& plan = plan_for(key, [&](Executor& e) { run_draft_pass(e, at, chunk, chunk_hidden); });
    std::vector<ir::HostTensor> out = run_draft_pass(plan, at, chunk, chunk_hidden);
    const std::vector<float> chunk_logits = out[0].to_f32(), out_hidden = out.back().to_f32();
    if (rows == models::LogitRows::last) logits.clear();
    logits.insert(logits.end(), chunk_logits.begin(), chunk_logits.end());
    draft_hidden_.insert(draft_hidden_.end(), out_hidden.begin(), out_hidden.end());
  }
  return logits;
}

// The draft pass at positions first_position..: its cache rows are written in place.
std::vector<ir::HostTensor> Session::run_draft_pass(Executor& plan, int64_t first_position, std::span<const int32_t> tokens,
                                                    std::span<const float> hidden) {
  const auto T = static_cast<int64_t>(tokens.size());
  std::vector<int64_t> ids(tokens.begin(), tokens.end()), positions;
  for (int64_t i = 0; i < T; ++i) positions.push_back(first_position + i);
  ir::Bindings bindings;
  bindings.tensors["tokens"] = ir::HostTensor::from_i64({T}, ids, ir::DType::i32);
  bindings.tensors["positions"] = ir::HostTensor::from_i64({T}, positions, ir::DType::i32);
  bindings.tensors["hidden"] = ir::HostTensor::from_f32({T, model_.hidden_size()}, hidden);
  return plan.run(bindings, &resident_);
}

}  // namespace moat::runtime
