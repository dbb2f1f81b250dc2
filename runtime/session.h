// A model running on one device, or on several (placement.h: layers split over devices,
// routed experts on one of them): weights uploaded once to the device that reads them,
// the latent KV cache, and the forward pass over new tokens in chunks (prefill) or one at
// a time (decode).
//
// The model is any family behind the model interface (frontend/model.h). Its cache parts
// (DeepSeek: per layer the kv_lora latent and the shared rope key) live on the device
// in the cache type (f16 by default) for the whole context, written in place by the
// passes. A pass's plan depends on its number of new tokens and whether it is the first
// (never on how many tokens are cached), so a session holds a few plans however long it
// runs; compiled kernels come from the kernel cache.
#pragma once

#include <algorithm>
#include <bit>
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
#include "runtime/placement.h"
#include "runtime/staged_plan.h"

namespace moat::runtime {

// The most plans a session keeps (least recently used go first); a session of several
// sequences keeps more (max_plans()).
inline constexpr size_t kMaxPlans = 8;

// The graphs a session lowers for a prompt of `prompt_tokens` evaluated in one pass and
// then decode (one token over the cache of `context` rows): what `moat emit -m` writes.
// A model with its draft module loaded adds the draft passes (a catch-up over the
// prompt, one draft step) and a verification of one drafted token.
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
  // Sequences the cache holds, each with `context` rows of its own (continuous batching:
  // passes of several sequences, evaluate_sequences). 1: the plain single-sequence passes.
  int64_t sequences = 1;
  // Also run the model's draft module (Model::has_draft; one sequence): every pass then
  // returns its tokens' hidden states (last_hidden), and evaluate_draft runs the module
  // over a cache of its own. UserError naming why when the model cannot draft.
  bool draft = false;
  // Several devices: which computes what (placement.h). Ignored with one device.
  PlacementSpec placement;
  // Several processes (MPI ranks; cluster/mpi_link.h): the link to the other ranks. With
  // `Across::pipeline` the session's devices are one per rank (null but this rank's) and
  // `placement` splits the layers over them; with `Across::expert` the one device runs
  // every node and this rank's share of each MoE layer's routed experts
  // (expert_shards.h). Every rank makes the same calls; each gets the logits.
  StageLink* link = nullptr;
  enum class Across { pipeline, expert };
  Across across = Across::pipeline;
};

// New tokens of one sequence in a pass of several (Session::evaluate_sequences).
struct SequenceTokens {
  int64_t sequence = 0;
  std::span<const int32_t> tokens;
};

// What a session needs, computed before it loads anything onto the device.
struct MemoryNeeds {
  uint64_t weights = 0;      // bytes of the model's weights (mapped or uploaded)
  uint64_t cache = 0;        // bytes of the latent cache for the whole context of every sequence
  uint64_t activations = 0;  // bytes of the largest pass's arena (memory_plan.h)
  uint64_t available = 0;    // the budget they are checked against; 0: unknown (not checked)
  uint64_t total() const { return weights + cache + activations; }
};

// One device's share of a session over several devices.
struct DeviceShare {
  std::string device;                   // its id ("opencl:0")
  int64_t first_layer = 0, layers = 0;  // the decoder layers it runs
  bool routed_experts = false;          // it runs some layers' routed experts
  MemoryNeeds needs;                    // its weights, cache and activations; `available`: its budget
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
  // Over several devices as options.placement says (the first device holds what no
  // layer claims). The budget is checked per device, host-memory devices together. With
  // options.link and Across::pipeline, `devices` has one entry per rank, null except
  // this rank's.
  Session(const models::Model& model, std::span<backends::Device* const> devices, runtime::KernelCache& cache,
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

  // The same for one sequence of a session of several (SessionOptions::sequences).
  std::vector<float> evaluate(int64_t sequence, std::span<const int32_t> tokens, int64_t batch,
                              models::LogitRows rows = models::LogitRows::all);

  // One pass over several sequences (each at most once, every token after those its
  // sequence holds; at most max_batch() tokens in all): the logits of each entry's last
  // token, row-major [work.size(), n_vocab]. The weights are read once for all of them;
  // once per entry where the model's passes of several sequences take fewer tokens of
  // each than an entry has (Model::batch_tokens_per_sequence: a pass each).
  // UserError before any work for a sequence out of range, repeated, or past its context.
  std::vector<float> evaluate_sequences(std::span<const SequenceTokens> work);
  // Compiles the plan(s) evaluate_sequences(work) would run, each of work's sequences
  // taken as holding `cached` tokens (0: a prompt's first chunk), without running them
  // (but once where the driver compiles at first launch: rows past `cached` are written
  // then, which later passes write again); what the sequences hold is unchanged. The
  // same UserErrors as evaluate_sequences, for those sequences holding `cached` tokens,
  // and one where a sequence holds more than `cached` (rows the run could write over).
  void prepare_pass(std::span<const SequenceTokens> work, int64_t cached);
  // UserError naming the first token id outside the model's vocabulary.
  void check_tokens(std::span<const int32_t> tokens) const;
  // Whether one pass of evaluate_sequences takes several tokens of a sequence beside
  // other sequences' (a prompt's chunk beside decoded tokens) for one read of the weights.
  bool mixes_chunks() const {
    return pass_.batched && model_.batch_tokens_per_sequence() == models::Model::kAnyTokens;
  }

  // Forgets every token after the first `tokens` (a conversation that diverges from
  // what was evaluated): later tokens are evaluated after those. No-op when `tokens`
  // >= cached_tokens(). A draft cache is rewound as far. Returns the tokens kept: all
  // `tokens`, or 0 (the cache emptied) where passes wrote more than
  // Model::cache_rewind_limit() tokens past `tokens` since the sequence was last empty.
  int64_t rewind(int64_t tokens) { return rewind(0, tokens); }
  int64_t rewind(int64_t sequence, int64_t tokens);

  // Draft sessions (SessionOptions::draft). The draft module's cache holds positions
  // 0..draft_cached_tokens()-1, made from the model's hidden states; the session keeps
  // the model's hidden states of the positions after those, up to cached_tokens().
  //
  // draft_catch_up runs the draft module over those positions: next_tokens[i] is the
  // token after position draft_cached_tokens()+i (the last one: the token chosen after
  // the last evaluated position, not evaluated yet). Returns the logits of the token two
  // after each position ([positions, n_vocab], or the last row's): the first drafted
  // token. UserError unless next_tokens has one token per such position.
  std::vector<float> draft_catch_up(std::span<const int32_t> next_tokens, models::LogitRows rows = models::LogitRows::last);
  // One more draft step, at the position after the last drafted one, from the last
  // draft's hidden state: `token` is the token that draft chose. Returns [n_vocab]. Its
  // cache rows are dropped by the next catch-up. UserError past the context.
  std::vector<float> draft_step(int32_t token);
  int64_t draft_cached_tokens() const { return draft_cached_; }
  bool drafts() const { return pass_.hidden; }
  // UserError unless a speculative step of `drafts` drafts can be taken back: its
  // verification pass writes them all, and a cut back past the rejected ones must be
  // exact (Model::cache_rewind_limit).
  void check_draft_length(int64_t drafts) const;

  // Compiles the passes of a prompt of `prompt_tokens` and of the first decode step
  // without running them, so that timing and streaming start after compilation.
  void prepare(int64_t prompt_tokens, int64_t batch, models::LogitRows rows = models::LogitRows::last);

  int64_t cached_tokens() const { return cached_[0]; }
  int64_t cached_tokens(int64_t sequence) const { return cached_.at(static_cast<size_t>(sequence)); }
  int64_t context() const { return context_; }  // tokens per sequence
  int64_t sequences() const { return static_cast<int64_t>(cached_.size()); }
  int64_t max_batch() const { return max_batch_; }  // the most tokens one pass evaluates
  // Bytes of cache per token of context (all layers and parts, in the cache type; a
  // fraction where a part holds a row per several tokens): models::cache_bytes_per_token.
  double cache_bytes_per_token() const;
  const SessionStats& stats() const { return stats_; }
  const MemoryNeeds& memory_needs() const { return needs_; }  // every device together
  // Per device, in the session's device order (one entry for a single device).
  const std::vector<DeviceShare>& device_shares() const { return shares_; }
  // Nodes moved off the device their layer maps to because it cannot run them
  // (supports_op): "topk on opencl:0 -> cpu", once per op and device pair.
  const std::vector<std::string>& fallbacks() const { return fallbacks_; }
  // Bytes moved between devices by one decode step (one token); 0 on one device.
  uint64_t moved_bytes_per_token() const { return decode_moved_; }
  // Bytes the last pass moved between devices, and every pass so far.
  uint64_t last_moved_bytes() const { return last_moved_; }
  uint64_t moved_bytes_total() const { return moved_total_; }
  // Where later long steps report (SessionOptions::progress; null: nowhere).
  const ProgressFn& progress() const { return progress_; }
  void set_progress(ProgressFn progress) { progress_ = std::move(progress); }
  size_t plans_held() const { return plans_.size(); }  // compiled plans kept now (<= max_plans())
  // Several sequences: one more per decode batch size (1..sequences), room for the
  // power-of-two prompt chunks of both forms and for the power-of-two passes mixing
  // chunks with decoded tokens (batch_scheduler.h). At least keep_plans()'s.
  size_t max_plans() const {
    return std::max(kept_plans_, sequences() > 1 ? kMaxPlans + static_cast<size_t>(sequences()) +
                                                       3 * static_cast<size_t>(std::bit_width(static_cast<uint64_t>(max_batch_)))
                                                 : kMaxPlans);
  }
  // Keeps at least `plans` compiled plans from now on (a batch scheduler's prepared
  // passes beside others: BatchScheduler::prepare_passes).
  void keep_plans(size_t plans) { kept_plans_ = std::max(kept_plans_, plans); }

 private:
  // One pass; logits of every token (rows all) or of each entry's last one.
  std::vector<float> forward(std::span<const SequenceTokens> work, models::LogitRows rows);
  // PlanKey: (new tokens, first pass, rows, rows of logits of a batched pass, draft pass,
  // the tokens all one sequence's: PassSpec::one_sequence)
  using PlanKey = std::tuple<int64_t, bool, models::LogitRows, int64_t, bool, bool>;
  // The compiled plan of `key`; `warm_up` runs a new one once where the driver compiles
  // at first launch.
  StagedPlan& plan_for(const PlanKey& key, const std::function<void(StagedPlan&)>& warm_up);
  // Writes zeros over all of `buffer` (a cache part that passes read before writing).
  static void zero_fill(backends::Device& device, backends::Buffer& buffer);
  PlanKey key_for(std::span<const SequenceTokens> work, models::LogitRows rows) const;
  // evaluate_sequences' checks of `work` (UserError); whether its entries go in passes of
  // their own (the model's passes of several sequences take fewer tokens of each).
  bool runs_apart(std::span<const SequenceTokens> work) const;
  // One pass of `work` on the plan of `key` (key_for(work, rows)).
  std::vector<ir::HostTensor> run_pass(StagedPlan& plan, std::span<const SequenceTokens> work, const PlanKey& key);
  std::vector<ir::HostTensor> run_draft_pass(StagedPlan& plan, int64_t first_position, std::span<const int32_t> tokens,
                                             std::span<const float> hidden);
  std::vector<ir::HostTensor> run_plan(StagedPlan& plan, const ir::Bindings& bindings);
  LoweredPass lower_pass(const PlanKey& key);
  void check_memory(const SessionOptions& options);
  // UserError naming `where`, the sizes and what to lower when `needs` passes its budget.
  void check_fits(const std::string& where, const MemoryNeeds& needs, const SessionOptions& options) const;
  // Makes the weight `name` (or a packed half of one) resident on device `d`, once.
  void make_resident(size_t d, const std::string& name);

  // What the session keeps per device.
  struct DeviceState {
    backends::Device* device = nullptr;  // null: another rank's
    int rank = -1;                       // that rank; -1: this process
    std::unique_ptr<Arena> arena;  // its plans' intermediates (outlives the plans)
    std::map<std::string, const backends::Buffer*> resident;  // weights and caches on it
  };
  // Devices and what each one keeps, in the session's order.
  std::vector<DeviceState> devices_;
  std::vector<StageDevice> stage_devices() const;

  const models::Model& model_;
  runtime::KernelCache& cache_;
  ProgressFn progress_;
  int64_t context_ = 0;
  std::vector<int64_t> cached_;  // tokens each sequence holds
  // Per sequence, the end of the positions passes wrote since it was last emptied: a
  // cut back is exact while this is at most Model::cache_rewind_limit() past it.
  std::vector<int64_t> written_;
  // Draft sessions: positions the draft cache holds from the model's hidden states, and
  // rows written after them by draft steps; the model's hidden states of positions
  // draft_cached_..cached_[0]-1 [positions, hidden_size]; the last draft pass's last hidden state.
  int64_t draft_cached_ = 0, draft_steps_ = 0;
  std::vector<float> pending_hidden_, draft_hidden_;
  std::vector<float> run_draft(std::span<const int32_t> tokens, std::span<const float> hidden, models::LogitRows rows);
  models::PassSpec pass_;                               // the cache every pass reads (cache_rows, cache_dtype)
  std::vector<models::CachePart> cache_parts_;
  PlacementSpec placement_;
  StageLink* link_ = nullptr;
  bool expert_shares_ = false;  // Across::expert over link_
  std::vector<DeviceShare> shares_;
  std::vector<std::string> fallbacks_;
  std::map<std::string, int> cache_device_;  // device of each cache part
  uint64_t last_moved_ = 0, decode_moved_ = 0, moved_total_ = 0;
  // per cache part: [sequences x rows, width] on the device, rows = part.rows(context);
  // sequence s owns rows s * rows .. (s + 1) * rows - 1 (PassSpec::sequences).
  std::vector<std::unique_ptr<backends::Buffer>> caches_;
  struct CachedPlan {
    std::unique_ptr<StagedPlan> executor;
    uint64_t last_use = 0;
  };
  std::map<PlanKey, CachedPlan> plans_;
  size_t kept_plans_ = 0;  // keep_plans()
  std::map<PlanKey, LoweredPass> lowered_;  // lowered by check_memory, not compiled yet
  int64_t max_batch_ = 512;
  MemoryNeeds needs_;
  uint64_t uses_ = 0;
  // Expert parallelism: this rank's share of each stacked expert weight (expert_shards.h).
  std::map<std::string, ir::HostTensor> share_tensors_;
  PackedWeights packed_;  // weights some plan reads in the packed CPU layout (outlive their buffers)
  std::vector<std::unique_ptr<backends::Buffer>> weight_buffers_;
  SessionStats stats_;
};

}  // namespace moat::runtime
