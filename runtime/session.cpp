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
  for (const models::CachePart& part : cache_parts_)
    if (part.width % ir::dtype_block_elems(options.cache_dtype) != 0)
      user_error("a ", ir::dtype_name(options.cache_dtype), " cache needs rows of whole ", ir::dtype_block_elems(options.cache_dtype),
                 "-element blocks, and this model's ", part.input, " rows have ", part.width,
                 " elements; use --cache-type f16 (or f32, bf16)");
  arena_ = std::make_unique<Arena>(device);
  pass_.cache_rows = context_;
  pass_.cache_dtype = options.cache_dtype;
  max_batch_ = std::max<int64_t>(1, std::min(options.max_batch, context_));
  check_memory(options);
  // The latent cache lives on the device for the whole context: written in place by the
  // passes (write_rows), never copied to or from the host. Pages are touched as rows
  // are written (CPU: address space until then).
  for (const models::CachePart& part : cache_parts_) {
    caches_.push_back(device.allocate(static_cast<uint64_t>(
        ir::tensor_bytes(pass_.cache_dtype, {context_ * part.rows_per_token, part.width}))));
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

void Session::rewind(int64_t tokens) { cached_ = std::clamp<int64_t>(tokens, 0, cached_); }

void Session::prepare(int64_t prompt_tokens, int64_t batch, models::LogitRows rows) {
  if (batch < 1) user_error("--batch must be at least 1, got ", batch);
  batch = std::min(batch, max_batch_);
  int64_t past = cached_;
  for (int64_t left = prompt_tokens; left > 0;) {
    const int64_t n = std::min(left, batch);
    plan_for(n, past, rows);
    past += n;
    left -= n;
  }
  if (past < context_) plan_for(1, past, models::LogitRows::all);
}

Session::~Session() = default;

jit::Plan Session::lower_pass(const PlanKey& key) const {
  models::PassSpec pass = pass_;
  std::tie(pass.tokens, pass.first, pass.rows) = key;
  return jit::lower(model_.pass_graph(pass), {}, schedule_for(device_.properties()));
}

void Session::check_memory(const SessionOptions& options) {
  for (const auto& [name, tensor] : model_.tensors()) needs_.weights += tensor.bytes().size();
  needs_.cache = static_cast<uint64_t>(context_) * cache_bytes_per_token();
  // The largest passes: a full batch (first and later) and one token; lowered once here
  // and compiled when first used.
  const auto start = std::chrono::steady_clock::now();
  for (const PlanKey& key : {PlanKey{max_batch_, true, models::LogitRows::all}, PlanKey{max_batch_, false, models::LogitRows::all},
                             PlanKey{1, false, models::LogitRows::all}}) {
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
             ", latent cache ", mib(needs_.cache), " for ", context_, " tokens of ", ir::dtype_name(pass_.cache_dtype),
             ", activations ", mib(needs_.activations), " for passes of ", max_batch_, " tokens) and ",
             options.memory_budget > 0 ? "the budget (--memory-budget) is " : "has ", mib(needs_.available),
             "; lower --ctx or --batch", pass_.cache_dtype == ir::DType::f32 ? ", use --cache-type f16" : "",
             ", or use a smaller model file");
}

uint64_t Session::cache_bytes_per_token() const {
  uint64_t bytes = 0;
  for (const models::CachePart& part : cache_parts_)
    bytes += static_cast<uint64_t>(ir::tensor_bytes(pass_.cache_dtype, {part.rows_per_token, part.width}));
  return bytes;
}

std::vector<float> Session::evaluate(std::span<const int32_t> tokens, int64_t batch, models::LogitRows rows) {
  if (batch < 1) user_error("--batch must be at least 1, got ", batch);
  batch = std::min(batch, max_batch_);
  if (cached_ + static_cast<int64_t>(tokens.size()) > context_)
    user_error(cached_, " cached + ", tokens.size(), " new tokens pass the context of ", context_,
               " tokens; shorten the prompt or -n, or raise --ctx");
  for (int32_t t : tokens)
    if (t < 0 || t >= model_.vocab_size())
      user_error("token id ", t, " is outside the vocabulary of ", model_.vocab_size(), " tokens");
  std::vector<float> logits;
  for (size_t start = 0; start < tokens.size(); start += static_cast<size_t>(batch)) {
    const size_t n = std::min<size_t>(static_cast<size_t>(batch), tokens.size() - start);
    std::vector<float> chunk = forward(tokens.subspan(start, n), rows);
    if (rows == models::LogitRows::last) logits.clear();  // only the last chunk's last row is kept
    logits.insert(logits.end(), chunk.begin(), chunk.end());
  }
  return logits;
}

std::vector<ir::Graph> session_graphs(const models::Model& model, int64_t prompt_tokens, int64_t context,
                                     ir::DType cache_dtype) {
  return {model.pass_graph({prompt_tokens, true, models::LogitRows::last, context, cache_dtype}),
          model.pass_graph({1, false, models::LogitRows::all, context, cache_dtype})};
}

// The compiled pass for `new_tokens` after `past_tokens`: the first pass over an empty
// cache may take the expanded form; every later one the absorbed form over the cache.
// Neither depends on how many tokens are cached.
Executor& Session::plan_for(int64_t new_tokens, int64_t past_tokens, models::LogitRows rows) {
  if (new_tokens == 1) rows = models::LogitRows::all;  // the same pass: one plan
  const bool first = past_tokens == 0;
  const auto key = std::make_tuple(new_tokens, first, rows);
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
  if (plans_.size() >= kMaxPlans) {
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
    run_pass(*plan->second.executor, std::vector<int32_t>(static_cast<size_t>(new_tokens), 0), past_tokens);
    stats_.compile_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - end).count();
  }
  return *plan->second.executor;
}

// Runs `plan` for `tokens` at positions P, P+1, ...: the cache rows from P on are
// written in place (a warm-up's rows are written again by the real pass).
std::vector<ir::HostTensor> Session::run_pass(Executor& plan, std::span<const int32_t> tokens, int64_t P) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  ir::Bindings bindings;
  std::vector<int64_t> ids(tokens.begin(), tokens.end()), positions(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; ++i) positions[static_cast<size_t>(i)] = P + i;
  bindings.tensors["tokens"] = ir::HostTensor::from_i64({T}, ids, ir::DType::i32);
  bindings.tensors["positions"] = ir::HostTensor::from_i64({T}, positions, ir::DType::i32);
  return plan.run(bindings, &resident_);
}

std::vector<float> Session::forward(std::span<const int32_t> tokens, models::LogitRows rows) {
  const int64_t T = static_cast<int64_t>(tokens.size()), P = cached_;
  Executor& plan = plan_for(T, P, rows);
  std::vector<ir::HostTensor> out = run_pass(plan, tokens, P);
  cached_ += T;
  return out[0].to_f32();
}

}  // namespace moat::runtime
