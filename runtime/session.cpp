#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>

#include "jit/lower.h"
#include "jit/schedule.h"
#include "ir/tensor.h"
#include "runtime/device_target.h"
#include "runtime/expert_shards.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "support/memory.h"

namespace moat::runtime {

namespace {

// The model weight a plan buffer binds: "X" for "X" and for the packed halves "X#quads16".
std::string weight_of(const std::string& buffer_name) { return buffer_name.substr(0, buffer_name.find('#')); }

bool device_supports(const backends::Device& device, const ir::Graph& graph, ir::NodeId id) {
  const ir::Node& node = graph.node(id);
  std::vector<std::string> dtypes;
  for (ir::NodeId operand : node.operands) dtypes.emplace_back(ir::dtype_name(graph.type(operand).dtype));
  dtypes.emplace_back(ir::dtype_name(node.type.dtype));
  return device.supports_op(ir::op_name(node.op), dtypes);
}

// The session keeps each cache part on its device and reads none back, so a pass must
// write every part it updates into the part's own buffer. jit::lower writes a copy when
// some computation reads the destination after the write (the IR's value semantics); in a
// pass graph that would leave the cache unchanged, so it is a model-graph defect.
void require_cache_writes_in_place(const ir::Graph& graph, const jit::Plan& plan) {
  for (ir::NodeId o : graph.outputs) {
    const ir::Node& write = graph.node(o);
    if (write.op != ir::Op::write_rows) continue;
    const ir::Node& destination = graph.node(write.operands[0]);
    MOAT_INTERNAL_CHECK(destination.op == ir::Op::input, "pass output ", ir::describe(graph, o),
                        " writes rows of a computed value, not of a cache part");
    const std::string& part = ir::attr_string(destination, "name");
    bool in_place = false;
    for (size_t b = 0; b < plan.buffers.size(); ++b) {
      const jit::PlanBuffer& root = plan.buffers[static_cast<size_t>(plan.root_of(static_cast<int>(b)))];
      in_place = in_place || (plan.buffers[b].in_place && root.role == jit::PlanBuffer::Role::input && root.name == part);
    }
    MOAT_INTERNAL_CHECK(in_place, "the pass writes cache part ", part,
                        " into a copy (a computation reads the part after the write), which would leave the cache unchanged");
  }
}

}  // namespace

Session::Session(const models::Model& model, backends::Device& device, runtime::KernelCache& cache,
                 const SessionOptions& options)
    : Session(model, std::vector<backends::Device*>{&device}, cache, options) {}

Session::Session(const models::Model& model, std::span<backends::Device* const> devices, runtime::KernelCache& cache,
                 const SessionOptions& options)
    : model_(model), cache_(cache), progress_(options.progress) {
  if (devices.empty()) user_error("a session needs at least one device");
  link_ = options.link;
  expert_shares_ = link_ && options.across == SessionOptions::Across::expert;
  for (size_t d = 0; d < devices.size(); ++d) {
    backends::Device* device = devices[d];
    MOAT_INTERNAL_CHECK(device != nullptr || (link_ && !expert_shares_), "a session given a null device");
    if (device) devices_.push_back({device, -1, std::make_unique<Arena>(*device), {}});
    else devices_.push_back({nullptr, static_cast<int>(d), nullptr, {}});
  }
  if (expert_shares_) {  // slots 1 and 2: this rank's share of the experts and the routing, on the same device
    MOAT_INTERNAL_CHECK(devices.size() == 1, "expert shares over ", devices.size(), " devices of one rank");
    devices_.push_back({devices[0], -1, std::make_unique<Arena>(*devices[0]), {}});
    devices_.push_back({devices[0], -1, std::make_unique<Arena>(*devices[0]), {}});
  }
  if (devices.size() > 1) placement_ = options.placement;
  if (expert_shares_) placement_ = {};
  check_placement(placement_, static_cast<int>(devices_.size()) - (expert_shares_ ? 2 : 0), model.layers());
  context_ = options.context > 0 ? options.context : std::max<int64_t>(model.training_context(), 1);
  cache_parts_ = model.cache_layout();
  if (options.draft) {
    if (!model.has_draft()) user_error("cannot draft with the model's own module: ", model.why_no_draft());
    if (options.sequences > 1) user_error("drafting (--spec) runs one sequence; a session of ", options.sequences, " cannot");
    for (const models::CachePart& part : model.draft_cache_layout()) cache_parts_.push_back(part);
    pass_.hidden = true;
  }
  for (const models::CachePart& part : cache_parts_)
    if (part.width % ir::dtype_block_elems(part.dtype(options.cache_dtype)) != 0)
      user_error("a ", ir::dtype_name(options.cache_dtype), " cache needs rows of whole ", ir::dtype_block_elems(options.cache_dtype),
                 "-element blocks, and this model's ", part.input, " rows have ", part.width,
                 " elements; use --cache-type f16 (or f32, bf16)");
  if (options.sequences < 1) user_error("a session needs at least one sequence, got ", options.sequences);
  cached_.assign(static_cast<size_t>(options.sequences), 0);
  written_.assign(static_cast<size_t>(options.sequences), 0);
  // Several sequences in one pass, each sequence a block of each part's rows.
  pass_.cache_rows = context_ * options.sequences;
  pass_.cache_dtype = options.cache_dtype;
  pass_.batched = options.sequences > 1;
  pass_.sequences = options.sequences;
  // One sequence's tokens in a pass fit its context; a pass of several holds at least a
  // token of each (a decode step), even where there are more sequences than context.
  max_batch_ = std::max<int64_t>(1, std::min(options.max_batch, std::max(context_, options.sequences)));
  check_memory(options);
  // The latent cache lives on the device of the layer that writes it, for the whole
  // context: written in place by the passes (write_rows), never copied to or from the
  // host. Pages are touched as rows are written (CPU: address space until then).
  for (const models::CachePart& part : cache_parts_) {
    auto home = cache_device_.find(part.input);
    DeviceState& d = devices_[home != cache_device_.end() ? static_cast<size_t>(home->second) : 0];
    if (!d.device) continue;  // another rank's layer
    caches_.push_back(d.device->allocate(part.bytes(pass_.cache_dtype, context_) * static_cast<uint64_t>(sequences())));
    d.resident[part.input] = caches_.back().get();
    if (part.zero_filled) zero_fill(*d.device, *caches_.back());
  }
  // Weights go once to each device that reads them (zero-copy where it shares host
  // memory): those of the passes lowered above now, any other when a plan first names it.
  std::vector<std::pair<size_t, std::string>> uploads;
  for (const auto& [key, pass] : lowered_)
    for (const LoweredStage& stage : pass.stages)
      for (const jit::PlanBuffer& b : stage.plan.buffers)
        if (b.role == jit::PlanBuffer::Role::param && (model.tensors().count(b.name) || parse_share_weight_name(b.name)))
          uploads.emplace_back(static_cast<size_t>(stage.device), b.name);
  std::sort(uploads.begin(), uploads.end());
  uploads.erase(std::unique(uploads.begin(), uploads.end()), uploads.end());
  for (size_t i = 0; i < uploads.size(); ++i) {
    make_resident(uploads[i].first, uploads[i].second);
    if (progress_) progress_("upload", static_cast<int64_t>(i + 1), static_cast<int64_t>(uploads.size()));
  }
}

void Session::make_resident(size_t d, const std::string& name) {
  DeviceState& state = devices_.at(d);
  if (state.resident.count(name)) return;
  if (auto share = parse_share_weight_name(weight_of(name)); share && !share_tensors_.count(weight_of(name))) {
    // experts first..end-1 of a stacked [E, ...] weight: this rank's copy
    const ir::HostTensor& whole = model_.tensors().at(share->first);
    std::vector<int64_t> shape = whole.shape();
    const uint64_t per_expert = whole.bytes().size() / static_cast<uint64_t>(shape.at(0));
    shape[0] = share->second.end - share->second.first;
    const uint8_t* first = whole.bytes().data() + per_expert * static_cast<uint64_t>(share->second.first);
    share_tensors_.emplace(weight_of(name), ir::HostTensor::from_bytes(whole.dtype(), shape,
                                                                      std::vector<uint8_t>(first, first + per_expert * static_cast<uint64_t>(shape[0]))));
  }
  const std::map<std::string, ir::HostTensor>& weights = share_tensors_.count(weight_of(name)) ? share_tensors_ : model_.tensors();
  auto plain = weights.find(name);
  const ir::HostTensor* t = plain != weights.end() ? &plain->second : packed_.find(name, weights);
  if (!t) return;  // not a weight: bound per run
  weight_buffers_.push_back(state.device->wrap_host(t->bytes().data(), t->bytes().size()));
  state.resident[name] = weight_buffers_.back().get();
}

std::vector<StageDevice> Session::stage_devices() const {
  std::vector<StageDevice> out;
  for (const DeviceState& d : devices_) out.push_back({d.device, d.rank, d.arena.get(), &d.resident});
  return out;
}

void Session::zero_fill(backends::Device& device, backends::Buffer& buffer) {
  static const std::vector<uint8_t> zeros(size_t{1} << 20, 0);
  for (uint64_t at = 0; at < buffer.size(); at += zeros.size())
    device.stream().write(buffer, at, zeros.data(), std::min<uint64_t>(zeros.size(), buffer.size() - at));
  device.stream().synchronize();
}

int64_t Session::rewind(int64_t sequence, int64_t tokens) {
  int64_t& cached = cached_.at(static_cast<size_t>(sequence));
  int64_t& written = written_[static_cast<size_t>(sequence)];
  if (tokens < cached || tokens <= 0) {  // an empty cache forgets what passes wrote
    const bool exact = tokens > 0 && written - tokens <= model_.cache_rewind_limit();
    cached = exact ? tokens : 0;
    if (cached == 0) written = 0;
  }
  if (sequence != 0 || !drafts()) return cached;
  // The draft rows and hidden states kept are those of positions before `cached`.
  draft_cached_ = std::min(draft_cached_, cached);
  pending_hidden_.resize(static_cast<size_t>((cached - draft_cached_) * model_.hidden_size()));
  return cached;
}

void Session::check_draft_length(int64_t drafts) const {
  if (drafts > model_.cache_rewind_limit())
    user_error("--draft ", drafts, " passes what the model's cache can take back after a rejected draft (",
               model_.cache_rewind_limit(), " tokens): lower --draft");
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
    const PlanKey key = key_for({&work, 1}, rows);
    plan_for(key, [&](StagedPlan& e) { run_pass(e, {&work, 1}, key); });
    cached_[0] += n;
    left -= n;
  }
  if (cached_[0] < context_) {
    const SequenceTokens work{0, std::span<const int32_t>(zeros.data(), 1)};
    const PlanKey key = key_for({&work, 1}, models::LogitRows::all);
    plan_for(key, [&](StagedPlan& e) { run_pass(e, {&work, 1}, key); });
  }
  cached_[0] = held;
}

Session::~Session() = default;

LoweredPass Session::lower_pass(const PlanKey& key) {
  models::PassSpec spec = pass_;
  std::tie(spec.tokens, spec.first, spec.rows, spec.outputs, spec.draft, spec.one_sequence) = key;
  ir::Graph graph = model_.pass_graph(spec);
  LoweredPass lowered;
  lowered.outputs = graph.outputs;
  for (ir::NodeId o : graph.outputs) lowered.in_place.push_back(graph.node(o).op == ir::Op::write_rows);
  lowered.outputs_from_rank0 = expert_shares_;  // every rank samples from rank 0's logits
  auto lower_on = [&](int device, const ir::Graph& g) {
    const DeviceState& d = devices_.at(static_cast<size_t>(device));
    if (!d.device) return jit::Plan{};  // another rank's: not lowered here
    jit::LowerOptions options;
    options.may_copy = [this](const std::string& name) {  // a file-mapped weight, whose pages the copy replaces
      if (parse_share_weight_name(name)) return false;    // a rank's share: a copy already
      auto weight = model_.tensors().find(name);
      return weight == model_.tensors().end() || weight->second.is_borrowed();
    };
    jit::Plan plan = jit::lower(g, {}, schedule_for(d.device->properties()), options);
    require_cache_writes_in_place(g, plan);
    return plan;
  };
  auto types_of = [](const ir::Graph& g, const std::vector<ir::NodeId>& nodes) {
    std::vector<ir::TensorType> types;
    for (ir::NodeId n : nodes) types.push_back(g.type(n));
    return types;
  };
  if (devices_.size() == 1) {
    lowered.stages.push_back({0, lower_on(0, graph), graph.outputs, types_of(graph, graph.outputs), {}, false});
    return lowered;
  }
  std::vector<ShareRole> roles;
  if (expert_shares_) {
    graph = share_experts(graph, link_->rank(), link_->ranks(), roles);
    lowered.outputs = graph.outputs;
  }
  // Across ranks every rank must place alike, and none knows the others' devices: no
  // fallbacks there (a node this rank's device cannot run fails its lowering, naming it).
  auto supports = [&](int d, const ir::Graph& g, ir::NodeId id) {
    const DeviceState& state = devices_.at(static_cast<size_t>(d));
    return link_ || device_supports(*state.device, g, id);
  };
  const int placed_devices = static_cast<int>(devices_.size()) - (expert_shares_ ? 2 : 0);
  NodePlacement placement = place_nodes(graph, placement_, placed_devices, model_.layers(), supports);
  for (size_t i = 0; i < roles.size(); ++i) {  // slots 1 and 2 of this rank's device: its experts, the routing
    if (placement.device[i] < 0) continue;
    if (roles[i] == ShareRole::share) placement.device[i] = 1;
    if (roles[i] == ShareRole::routing) placement.device[i] = 2;
  }
  for (const Fallback& f : placement.fallbacks) {
    auto id_of = [&](int d) {
      const DeviceState& state = devices_[static_cast<size_t>(d)];
      return state.device ? state.device->properties().info.id : cat("rank ", state.rank);
    };
    const std::string line = cat(ir::op_name(graph.node(f.node).op), " on ", id_of(f.from), " -> ", id_of(f.to));
    if (std::find(fallbacks_.begin(), fallbacks_.end(), line) == fallbacks_.end()) fallbacks_.push_back(line);
  }
  Partition partition = partition_graph(graph, placement.device);
  lowered.transfer_bytes = partition.transfer_bytes;
  for (const Stage& stage : partition.stages)  // where each cache part lives: the device of the stage that reads it
    for (const ir::Node& node : stage.graph.nodes) {
      if (node.op != ir::Op::input) continue;
      const std::string& name = ir::attr_string(node, "name");
      if (std::none_of(cache_parts_.begin(), cache_parts_.end(), [&](const models::CachePart& p) { return p.input == name; })) continue;
      auto [home, fresh] = cache_device_.emplace(name, stage.device);
      MOAT_INTERNAL_CHECK(fresh || home->second == stage.device, "the cache input ", name, " is read on two devices");
    }
  for (Stage& stage : partition.stages) {
    std::vector<ir::TensorType> types = types_of(graph, stage.computes);
    const bool summed = expert_shares_ && stage.device == 1, from_rank0 = expert_shares_ && stage.device == 2;
    lowered.stages.push_back({stage.device, lower_on(stage.device, stage.graph), std::move(stage.computes), std::move(types),
                              std::move(stage.receives), summed, from_rank0});
  }
  return lowered;
}

void Session::check_memory(const SessionOptions& options) {
  const size_t n = devices_.size();
  shares_.assign(n, {});
  // The largest passes: a full batch (first and later) and one token; lowered once here
  // and compiled when first used. What their stages read places the weights and the
  // cache parts on devices.
  const auto start = std::chrono::steady_clock::now();
  const PlanKey decode{1, false, models::LogitRows::all, 1, false, true};
  std::vector<PlanKey> largest = {PlanKey{max_batch_, true, models::LogitRows::all, 1, false, true},
                                  PlanKey{max_batch_, false, models::LogitRows::all, 1, false, true}, decode};
  if (drafts()) largest.push_back(PlanKey{max_batch_, false, models::LogitRows::all, 1, true, true});
  // A step of every sequence, where passes of several sequences take another form.
  const int64_t step = std::min(sequences(), max_batch_);
  if (pass_.batched && step > 1 && model_.batch_tokens_per_sequence() != models::Model::kAnyTokens)
    largest.push_back(PlanKey{step, false, models::LogitRows::all, 1, false, false});
  std::vector<std::set<std::string>> weights(n);
  // Per device: the largest arena its plans share, and what each plan keeps of its own
  // while it is held (carry buffers, the device copies of values from other devices).
  std::vector<uint64_t> arena(n, 0), kept(n, 0);
  for (const PlanKey& key : largest) {
    if (lowered_.count(key)) continue;
    LoweredPass pass = lower_pass(key);
    std::vector<bool> remote;
    for (const DeviceState& d : devices_) remote.push_back(d.device == nullptr);
    const CarryPlan carries = plan_carries(pass, remote);
    for (size_t d = 0; d < n; ++d) kept[d] += carries.bytes_on(static_cast<int>(d));
    for (size_t s = 0; s < pass.stages.size(); ++s) {
      const LoweredStage& stage = pass.stages[s];
      const auto d = static_cast<size_t>(stage.device);
      if (!devices_[d].device) continue;  // another rank's
      arena[d] = std::max(arena[d], plan_memory(stage.plan).bytes);
      std::set<std::string> staged;  // transfers this stage takes as copies (not read from a carry buffer)
      for (size_t j = 0; j < stage.receives.size(); ++j)
        if (carries.input_carry[s][j] < 0) staged.insert(transfer_name(stage.receives[j]));
      for (const jit::PlanBuffer& b : stage.plan.buffers) {
        if (b.role == jit::PlanBuffer::Role::param) weights[d].insert(weight_of(b.name));
        if (b.role == jit::PlanBuffer::Role::input && staged.count(b.name)) kept[d] += static_cast<uint64_t>(b.bytes);
      }
    }
    lowered_.emplace(key, std::move(pass));
  }
  for (size_t d = 0; d < n; ++d) shares_[d].needs.activations = arena[d] + kept[d];
  decode_moved_ = lowered_.at(decode).transfer_bytes;
  if (expert_shares_) {  // this rank's share of each MoE layer's output, to every other rank
    decode_moved_ = 0;
    for (const LoweredStage& stage : lowered_.at(decode).stages)
      if (stage.sum_across_ranks)
        for (const ir::TensorType& t : stage.types) {
          std::vector<int64_t> shape;
          for (const ir::Dim& d : t.shape) shape.push_back(d.value);
          decode_moved_ += static_cast<uint64_t>(ir::tensor_bytes(t.dtype, shape)) * static_cast<uint64_t>(link_->ranks() - 1);
        }
  }
  stats_.compile_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  int64_t next_layer = 0;
  for (size_t d = 0; d < n; ++d) {
    DeviceShare& share = shares_[d];
    if (!devices_[d].device) {  // another rank's: its own session checks it
      share.device = cat("rank ", devices_[d].rank);
      share.layers = placement_.layers_per_device.empty() ? 0 : placement_.layers_per_device[d];
      share.first_layer = next_layer;
      next_layer += share.layers;
      continue;
    }
    const backends::DeviceProperties& p = devices_[d].device->properties();
    share.device = expert_shares_ && d == 1 ? cat(p.info.id, " (experts ", link_->rank(), " of ", link_->ranks(), ")")
                   : expert_shares_ && d == 2 ? cat(p.info.id, " (routing, rank 0's)")
                                              : p.info.id;
    share.first_layer = next_layer;
    share.layers = placement_.layers_per_device.empty() ? (d == 0 ? model_.layers() : 0) : placement_.layers_per_device[d];
    share.routed_experts = expert_shares_ && d == 1;
    next_layer += share.layers;
    share.routed_experts = share.routed_experts || placement_.moe_device == static_cast<int>(d);
    if (n == 1) {
      for (const auto& [name, tensor] : model_.tensors()) share.needs.weights += tensor.bytes().size();
    } else {
      for (const std::string& name : weights[d]) {
        const auto share_of = parse_share_weight_name(name);
        auto t = model_.tensors().find(share_of ? share_of->first : name);
        if (t == model_.tensors().end()) continue;
        const uint64_t bytes = t->second.bytes().size();
        share.needs.weights += share_of ? bytes / static_cast<uint64_t>(t->second.shape().at(0)) *
                                              static_cast<uint64_t>(share_of->second.end - share_of->second.first)
                                        : bytes;
      }
    }
    for (const models::CachePart& part : cache_parts_) {
      auto home = cache_device_.find(part.input);
      if ((home != cache_device_.end() ? static_cast<size_t>(home->second) : 0) != d) continue;
      share.needs.cache += part.bytes(pass_.cache_dtype, context_) * static_cast<uint64_t>(sequences());
    }
    share.needs.available = options.memory_budget > 0 ? options.memory_budget : p.host_memory ? available_host_memory() : p.info.memory_bytes;
    needs_.weights += share.needs.weights;
    needs_.cache += share.needs.cache;
    needs_.activations += share.needs.activations;
  }
  // Slots on one device are checked together, and so are devices that share host memory
  // (without a budget: with one, each device against it).
  std::vector<std::pair<std::string, MemoryNeeds>> groups;  // (devices, their needs together)
  std::map<const void*, size_t> group_of;
  for (size_t d = 0; d < n; ++d) {
    if (!devices_[d].device) continue;
    const bool in_host = options.memory_budget == 0 && devices_[d].device->properties().host_memory;
    const void* key = in_host ? static_cast<const void*>(&groups) : static_cast<const void*>(devices_[d].device);
    auto [it, fresh] = group_of.emplace(key, groups.size());
    if (fresh) groups.push_back({"", {}});
    auto& [ids, needs] = groups[it->second];
    const std::string id = devices_[d].device->properties().info.id;
    if (ids.find(id) == std::string::npos) ids += (ids.empty() ? "" : " + ") + id;
    const MemoryNeeds& share = shares_[d].needs;
    needs.weights += share.weights, needs.cache += share.cache, needs.activations += share.activations;
    needs.available = share.available;
  }
  for (const auto& [ids, needs] : groups) check_fits(ids, needs, options);
  if (n == 1) needs_ = shares_[0].needs;  // with several devices the budgets are theirs (available 0)
}

void Session::check_fits(const std::string& where, const MemoryNeeds& needs, const SessionOptions& options) const {
  if (needs.available == 0 || needs.total() <= needs.available) return;
  user_error("the model does not fit ", where, ": it needs ", mib(needs.total()), " (weights ", mib(needs.weights),
             ", latent cache ", mib(needs.cache), " for ", context_, " tokens",
             sequences() > 1 ? cat(" x ", sequences(), " sequences") : std::string(), " of ", ir::dtype_name(pass_.cache_dtype),
             ", activations ", mib(needs.activations), " for passes of ", max_batch_, " tokens) and ",
             options.memory_budget > 0 ? "the budget (--memory-budget) is " : "has ", mib(needs.available),
             "; lower --ctx", sequences() > 1 ? ", --parallel" : "", " or --batch", pass_.cache_dtype == ir::DType::f32 ? ", use --cache-type f16" : "",
             devices_.size() > 1 ? ", give this device fewer layers (--split layers:...)" : "", ", or use a smaller model file");
}

double Session::cache_bytes_per_token() const { return models::cache_bytes_per_token(cache_parts_, pass_.cache_dtype); }

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

bool Session::runs_apart(std::span<const SequenceTokens> work) const {
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
  for (const SequenceTokens& w : work)
    if (static_cast<int64_t>(w.tokens.size()) > max_batch_)
      user_error("sequence ", w.sequence, ": a pass of ", w.tokens.size(), " tokens passes the batch of ", max_batch_);
  const bool mixes_runs =
      work.size() > 1 && std::any_of(work.begin(), work.end(), [&](const SequenceTokens& w) {
        return static_cast<int64_t>(w.tokens.size()) > model_.batch_tokens_per_sequence();
      });
  if (!mixes_runs && total > max_batch_) user_error("a pass of ", total, " tokens passes the batch of ", max_batch_);
  return mixes_runs;
}

void Session::prepare_pass(std::span<const SequenceTokens> work, int64_t cached) {
  if (work.empty()) return;
  const std::vector<int64_t> held = cached_;
  for (const SequenceTokens& w : work) {
    if (w.sequence < 0 || w.sequence >= sequences()) continue;  // refused below
    const int64_t holds = cached_[static_cast<size_t>(w.sequence)];
    if (holds > cached)  // a warm-up run would write over its rows
      user_error("sequence ", w.sequence, " holds ", holds, " tokens: a pass prepared for it as holding ", cached,
                 " would write over them (prepare before evaluating, or rewind it first)");
    cached_[static_cast<size_t>(w.sequence)] = cached;
  }
  auto prepare = [&](std::span<const SequenceTokens> part) {
    const PlanKey key = key_for(part, models::LogitRows::last);
    plan_for(key, [&](StagedPlan& e) { run_pass(e, part, key); });
  };
  try {
    if (!runs_apart(work)) prepare(work);
    else
      for (const SequenceTokens& w : work) prepare({&w, 1});
  } catch (...) {
    cached_ = held;
    throw;
  }
  cached_ = held;
}

std::vector<float> Session::evaluate_sequences(std::span<const SequenceTokens> work) {
  if (work.empty()) return {};
  const bool mixes_runs = runs_apart(work);
  if (!mixes_runs) return forward(work, models::LogitRows::last);
  std::vector<float> logits;  // a pass per sequence
  for (const SequenceTokens& w : work) {
    std::vector<float> row = forward({&w, 1}, models::LogitRows::last);
    logits.insert(logits.end(), row.begin(), row.end());
  }
  return logits;
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
  // A prompt's chunk beside other sequences' tokens: a row of logits per sequence of the
  // session, at most one per token (the rows past the entries repeat the last), so that
  // such passes differ in their token count only (a bounded set of plans; batch_scheduler.h).
  else if (outputs > 1) outputs = std::min(sequences(), new_tokens);
  // One sequence's tokens and several sequences' take two forms only where the model's
  // passes of several sequences are limited (DeepSeek-V4's).
  const bool one_form = model_.batch_tokens_per_sequence() == models::Model::kAnyTokens;
  return {new_tokens, first, rows, outputs, false, one_form || work.size() == 1};
}

StagedPlan& Session::plan_for(const PlanKey& key, const std::function<void(StagedPlan&)>& warm_up) {
  auto plan = plans_.find(key);
  if (plan != plans_.end()) {
    plan->second.last_use = ++uses_;
    return *plan->second.executor;
  }
  const auto start = std::chrono::steady_clock::now();
  auto lowered = lowered_.find(key);
  LoweredPass lowered_pass = lowered != lowered_.end() ? std::move(lowered->second) : lower_pass(key);
  if (lowered != lowered_.end()) lowered_.erase(lowered);
  std::function<void(int64_t, int64_t)> progress;
  if (progress_) progress = [this](int64_t done, int64_t total) { progress_("compile", done, total); };
  const uint64_t compiles_before = cache_.stats().compiles;
  const std::vector<StageDevice> devices = stage_devices();
  auto exec = std::make_unique<StagedPlan>(devices, cache_, std::move(lowered_pass), progress, link_);
  const auto pack_start = std::chrono::steady_clock::now();
  bool first_launch_compiles = false;
  for (size_t d = 0; d < devices_.size(); ++d) {  // weights each stage reads (packed ones packed once), kept on its device
    const std::vector<std::string> names = exec->params_on(static_cast<int>(d));
    for (const std::string& name : names) make_resident(d, name);
    // Across ranks a warm-up pass would be one rank's alone (the others would not take
    // part in its exchanges): the first real pass compiles there instead.
    first_launch_compiles |= !names.empty() && !link_ && devices_[d].device->properties().first_launch_compiles;
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
  // Not for a cache that cuts back only so far: a pass run twice would read rows its
  // first run wrote (the warm-ups of a prompt's chunks write past what the sequence holds).
  if (first_launch_compiles && model_.cache_rewind_limit() == models::Model::kRewindsAnywhere &&
      cache_.stats().compiles > compiles_before) {
    warm_up(*plan->second.executor);
    stats_.compile_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - end).count();
  }
  return *plan->second.executor;
}

std::vector<ir::HostTensor> Session::run_plan(StagedPlan& plan, const ir::Bindings& bindings) {
  std::vector<ir::HostTensor> out = plan.run(bindings);
  last_moved_ = plan.last_moved_bytes();
  moved_total_ += last_moved_;
  return out;
}

// Runs `plan` for `work`, each sequence's tokens after those it holds: their cache rows
// are written in place (a warm-up's rows are written again by the real pass).
std::vector<ir::HostTensor> Session::run_pass(StagedPlan& plan, std::span<const SequenceTokens> work, const PlanKey& key) {
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
  logit_rows.resize(static_cast<size_t>(std::get<3>(key)), logit_rows.back());  // rows past the entries repeat the last
  ir::Bindings bindings;
  bindings.tensors["tokens"] = ir::HostTensor::from_i64({T}, ids, ir::DType::i32);
  bindings.tensors["positions"] = ir::HostTensor::from_i64({T}, positions, ir::DType::i32);
  if (pass_.batched) {
    bindings.tensors["cache_at"] = ir::HostTensor::from_i64({T}, cache_at, ir::DType::i32);
    bindings.tensors["key_starts"] = ir::HostTensor::from_i64({T}, key_starts, ir::DType::i32);
    if (std::get<2>(key) == models::LogitRows::last)
      bindings.tensors["logit_rows"] = ir::HostTensor::from_i64({static_cast<int64_t>(logit_rows.size())}, logit_rows, ir::DType::i32);
  }
  return run_plan(plan, bindings);
}

std::vector<float> Session::forward(std::span<const SequenceTokens> work, models::LogitRows rows) {
  const PlanKey key = key_for(work, rows);
  StagedPlan& plan = plan_for(key, [&](StagedPlan& e) { run_pass(e, work, key); });
  // A pass writes its rows in place as it runs: one that fails half-way has written
  // them too, and a sequence whose cache can no longer be cut back to what it holds
  // is emptied (the caller's record then follows cached_tokens()).
  for (const SequenceTokens& w : work) {
    const auto s = static_cast<size_t>(w.sequence);
    written_[s] = std::max(written_[s], cached_[s] + static_cast<int64_t>(w.tokens.size()));
  }
  std::vector<ir::HostTensor> out;
  try {
    out = run_pass(plan, work, key);
  } catch (...) {
    for (const SequenceTokens& w : work) {
      const auto s = static_cast<size_t>(w.sequence);
      if (written_[s] - cached_[s] > model_.cache_rewind_limit()) rewind(w.sequence, 0);
    }
    throw;
  }
  for (const SequenceTokens& w : work) cached_[static_cast<size_t>(w.sequence)] += static_cast<int64_t>(w.tokens.size());
  if (pass_.hidden) {
    const std::vector<float> hidden = out.back().to_f32();
    pending_hidden_.insert(pending_hidden_.end(), hidden.begin(), hidden.end());
  }
  std::vector<float> logits = out[0].to_f32();
  const int64_t outputs = std::get<3>(key);
  if (outputs > 1) logits.resize(logits.size() / static_cast<size_t>(outputs) * work.size());  // the entries' rows
  return logits;
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
    const PlanKey key{static_cast<int64_t>(n), false, chunk_rows, 1, true, true};
    StagedPlan& plan = plan_for(key, [&](StagedPlan& e) { run_draft_pass(e, at, chunk, chunk_hidden); });
    std::vector<ir::HostTensor> out = run_draft_pass(plan, at, chunk, chunk_hidden);
    const std::vector<float> chunk_logits = out[0].to_f32(), out_hidden = out.back().to_f32();
    if (rows == models::LogitRows::last) logits.clear();
    logits.insert(logits.end(), chunk_logits.begin(), chunk_logits.end());
    draft_hidden_.insert(draft_hidden_.end(), out_hidden.begin(), out_hidden.end());
  }
  return logits;
}

// The draft pass at positions first_position..: its cache rows are written in place.
std::vector<ir::HostTensor> Session::run_draft_pass(StagedPlan& plan, int64_t first_position, std::span<const int32_t> tokens,
                                                    std::span<const float> hidden) {
  const auto T = static_cast<int64_t>(tokens.size());
  std::vector<int64_t> ids(tokens.begin(), tokens.end()), positions;
  for (int64_t i = 0; i < T; ++i) positions.push_back(first_position + i);
  ir::Bindings bindings;
  bindings.tensors["tokens"] = ir::HostTensor::from_i64({T}, ids, ir::DType::i32);
  bindings.tensors["positions"] = ir::HostTensor::from_i64({T}, positions, ir::DType::i32);
  bindings.tensors["hidden"] = ir::HostTensor::from_f32({T, model_.hidden_size()}, hidden);
  return run_plan(plan, bindings);
}

}  // namespace moat::runtime
