// A model running on one device: weights uploaded once, the latent KV cache, and the
// forward pass over new tokens in chunks (prefill) or one at a time (decode).
//
// The model is any family behind the model interface (frontend/model.h). Its cache parts
// (DeepSeek: per layer the kv_lora latent and the shared rope key) live on the device
// in the cache type (f16 by default) for the whole context, written in place by the
// passes. A pass's plan depends on its number of new tokens and whether it is the first
// (never on how many tokens are cached), so a session holds a few plans however long it
// runs; compiled kernels come from the kernel cache.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include "backends/device.h"
#include "frontend/model.h"
#include "ir/graph.h"
#include "runtime/kernel_cache.h"
#include "runtime/memory_plan.h"
#include "runtime/packed_weights.h"

namespace moat::runtime {

class Executor;

// The most plans a session keeps (least recently used go first).
inline constexpr size_t kMaxPlans = 8;

// The graphs a session lowers for a prompt of `prompt_tokens` evaluated in one pass and
// then decode (one token over the cache of `context` rows): what `moat emit -m` writes.
std::vector<ir::Graph> session_graphs(const models::Model& model, int64_t prompt_tokens, int64_t context,
                                     ir::DType cache_dtype = ir::DType::f16);

// Reports a long step: `stage` ("upload" of the weights, "compile" of a pass's
// kernels), `done` of `total` units so far.
using ProgressFn = std::function<void(const char* stage, int64_t done, int64_t total)>;

struct SessionOptions {
  int64_t context = 0;  // the most tokens the cache holds (0: the model's training context)
  ProgressFn progress;  // optional
  ir::DType cache_dtype = ir::DType::f16;  // cache rows: f32, f16, bf16 or q8_0
  int64_t max_batch = 512;     // the most tokens one pass evaluates (sizes the activations)
  uint64_t memory_budget = 0;  // bytes for weights + cache + activations; 0: what the device has
};

// What a session needs, computed before it loads anything onto the device.
struct MemoryNeeds {
  uint64_t weights = 0;      // bytes of the model's weights (mapped or uploaded)
  uint64_t cache = 0;        // bytes of the latent cache for the whole context
  uint64_t activations = 0;  // bytes of the largest pass's arena (memory_plan.h)
  uint64_t available = 0;    // the budget they are checked against; 0: unknown (not checked)
  uint64_t total() const { return weights + cache + activations; }
};

struct SessionStats {
  // lowering + emit + compile / cache loads, and the first launch of a newly compiled
  // plan on a device whose driver compiles then (DeviceProperties::first_launch_compiles)
  double compile_ms = 0;
  double pack_ms = 0;     // weights packed for the CPU's int8 kernels (jit/weight_packing.h)
  int plans = 0;          // shapes lowered
  // Time spent making plans ready, not running them.
  double setup_ms() const { return compile_ms + pack_ms; }
};

class Session {
 public:
  // The memory it needs (weights, the cache for the whole context, the largest pass's
  // activations) is computed first: UserError naming the sizes and what to lower when it
  // passes the budget, before anything is allocated. The cache is then allocated for the
  // whole context (on the CPU, pages are touched as tokens arrive), so decoding never
  // reallocates it.
  Session(const models::Model& model, backends::Device& device, runtime::KernelCache& cache,
          const SessionOptions& options);
  Session(const models::Model& model, backends::Device& device, runtime::KernelCache& cache, int64_t context = 0)
      : Session(model, device, cache, SessionOptions{context, {}, ir::DType::f16}) {}
  ~Session();

  // Evaluates `tokens` after those already seen, at most `batch` (and max_batch) per
  // forward pass, and
  // returns their logits, row-major [tokens.size(), n_vocab] (LogitRows::all) or the
  // last token's [n_vocab] (LogitRows::last: the output matrix is read for one row).
  // UserError when the cache would pass the context, naming both numbers, before any
  // work is done.
  std::vector<float> evaluate(std::span<const int32_t> tokens, int64_t batch,
                              models::LogitRows rows = models::LogitRows::all);

  // Forgets every token after the first `tokens` (a conversation that diverges from
  // what was evaluated): later tokens are evaluated after those. No-op when `tokens`
  // >= cached_tokens().
  void rewind(int64_t tokens);

  // Compiles the passes of a prompt of `prompt_tokens` and of the first decode step
  // without running them, so that timing and streaming start after compilation.
  void prepare(int64_t prompt_tokens, int64_t batch, models::LogitRows rows = models::LogitRows::last);

  int64_t cached_tokens() const { return cached_; }
  int64_t context() const { return context_; }
  // Bytes of latent cache per token (all layers, in the cache type).
  uint64_t cache_bytes_per_token() const;
  const SessionStats& stats() const { return stats_; }
  const MemoryNeeds& memory_needs() const { return needs_; }
  size_t plans_held() const { return plans_.size(); }  // compiled plans kept now (<= kMaxPlans)

 private:
  std::vector<float> forward(std::span<const int32_t> tokens, models::LogitRows rows);
  Executor& plan_for(int64_t new_tokens, int64_t past_tokens, models::LogitRows rows);
  std::vector<ir::HostTensor> run_pass(Executor& plan, std::span<const int32_t> tokens, int64_t past_tokens);
  using PlanKey = std::tuple<int64_t, bool, models::LogitRows>;  // (new tokens, first pass, rows)
  jit::Plan lower_pass(const PlanKey& key) const;
  void check_memory(const SessionOptions& options);

  const models::Model& model_;
  backends::Device& device_;
  runtime::KernelCache& cache_;
  ProgressFn progress_;
  int64_t context_ = 0, cached_ = 0;
  models::PassSpec pass_;                               // the cache every pass reads (cache_rows, cache_dtype)
  std::vector<models::CachePart> cache_parts_;
  std::unique_ptr<Arena> arena_;                        // every plan's intermediates (outlives the plans)
  std::vector<std::unique_ptr<backends::Buffer>> caches_;  // per cache part: [context rows, width] on the device
  struct CachedPlan {
    std::unique_ptr<Executor> executor;
    uint64_t last_use = 0;
  };
  std::map<PlanKey, CachedPlan> plans_;
  std::map<PlanKey, jit::Plan> lowered_;  // lowered by check_memory, not compiled yet
  int64_t max_batch_ = 512;
  MemoryNeeds needs_;
  uint64_t uses_ = 0;
  PackedWeights packed_;  // weights some plan reads in the packed CPU layout (outlive their buffers)
  std::vector<std::unique_ptr<backends::Buffer>> weight_buffers_;
  std::map<std::string, const backends::Buffer*> resident_;
  SessionStats stats_;
};

}  // namespace moat::runtime
