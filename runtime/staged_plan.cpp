#include "runtime/staged_plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "support/error.h"

namespace moat::runtime {

namespace {

struct Producer {
  int stage = -1, output = -1;
};

// Bytes of stage `s`'s output `k` (its plan buffer).
uint64_t output_bytes(const LoweredPass& pass, int s, int k) {
  const jit::Plan& plan = pass.stages[static_cast<size_t>(s)].plan;
  return static_cast<uint64_t>(plan.buffers[static_cast<size_t>(plan.outputs[static_cast<size_t>(k)])].bytes);
}

}  // namespace

uint64_t CarryPlan::bytes_on(int device) const {
  uint64_t bytes = 0;
  for (size_t c = 0; c < carry_device.size(); ++c)
    if (carry_device[c] == device) bytes += carry_bytes[c];
  return bytes;
}

CarryPlan plan_carries(const LoweredPass& pass, const std::vector<bool>& remote) {
  auto carried_device = [&](int device) { return remote.empty() || !remote.at(static_cast<size_t>(device)); };
  const int n = static_cast<int>(pass.stages.size());
  CarryPlan carries;
  carries.output_carry.resize(static_cast<size_t>(n));
  carries.input_carry.resize(static_cast<size_t>(n));
  carries.host_copy.resize(static_cast<size_t>(n));
  std::map<ir::NodeId, Producer> producer;
  for (int s = 0; s < n; ++s) {
    const LoweredStage& stage = pass.stages[static_cast<size_t>(s)];
    carries.output_carry[static_cast<size_t>(s)].assign(stage.computes.size(), -1);
    carries.input_carry[static_cast<size_t>(s)].assign(stage.receives.size(), -1);
    carries.host_copy[static_cast<size_t>(s)].assign(stage.computes.size(), false);
    for (size_t k = 0; k < stage.computes.size(); ++k) producer[stage.computes[k]] = {s, static_cast<int>(k)};
  }
  // The last stage on the producer's device that receives each value.
  std::map<ir::NodeId, int> last_same_device;
  for (int s = 0; s < n; ++s)
    for (ir::NodeId v : pass.stages[static_cast<size_t>(s)].receives) {
      const Producer p = producer.at(v);
      const LoweredStage& made = pass.stages[static_cast<size_t>(p.stage)];
      if (made.device == pass.stages[static_cast<size_t>(s)].device && carried_device(made.device) && !made.sum_across_ranks &&
          !made.from_rank0)
        last_same_device[v] = s;
      else
        carries.host_copy[static_cast<size_t>(p.stage)][static_cast<size_t>(p.output)] = true;
    }
  for (ir::NodeId v : pass.outputs) {
    const Producer p = producer.at(v);
    carries.host_copy[static_cast<size_t>(p.stage)][static_cast<size_t>(p.output)] = true;
  }
  // Values in the order they are made; a buffer is reused once its last reader has run.
  std::vector<int> free_after;  // per carry buffer: the stage of its value's last reader
  std::map<ir::NodeId, int> carry_of;
  for (int s = 0; s < n; ++s) {
    const LoweredStage& stage = pass.stages[static_cast<size_t>(s)];
    for (size_t k = 0; k < stage.computes.size(); ++k) {
      auto last = last_same_device.find(stage.computes[k]);
      if (last == last_same_device.end()) continue;
      const uint64_t bytes = output_bytes(pass, s, static_cast<int>(k));
      int chosen = -1;
      for (size_t c = 0; c < free_after.size() && chosen < 0; ++c)
        if (carries.carry_device[c] == stage.device && free_after[c] < s && carries.carry_bytes[c] >= bytes) chosen = static_cast<int>(c);
      if (chosen < 0) {
        chosen = static_cast<int>(free_after.size());
        free_after.push_back(0);
        carries.carry_device.push_back(stage.device);
        carries.carry_bytes.push_back(bytes);
      }
      free_after[static_cast<size_t>(chosen)] = last->second;
      carries.output_carry[static_cast<size_t>(s)][k] = chosen;
      carry_of[stage.computes[k]] = chosen;
    }
    for (size_t j = 0; j < stage.receives.size(); ++j) {
      const ir::NodeId v = stage.receives[j];
      const Producer p = producer.at(v);
      auto carried = carry_of.find(v);
      if (carried != carry_of.end() && pass.stages[static_cast<size_t>(p.stage)].device == stage.device)
        carries.input_carry[static_cast<size_t>(s)][j] = carried->second;
    }
  }
  return carries;
}

StagedPlan::StagedPlan(std::span<const StageDevice> devices, KernelCache& cache, LoweredPass pass,
                       const std::function<void(int64_t done, int64_t total)>& progress, StageLink* link)
    : devices_(devices.begin(), devices.end()), link_(link), pass_(std::move(pass)) {
  std::vector<bool> remote;
  for (const StageDevice& d : devices_) remote.push_back(d.rank >= 0);
  MOAT_INTERNAL_CHECK(link_ || std::none_of(remote.begin(), remote.end(), [](bool r) { return r; }),
                      "stages on other ranks without a link to them");
  carries_ = plan_carries(pass_, remote);
  for (size_t c = 0; c < carries_.carry_device.size(); ++c)
    carry_buffers_.push_back(devices_.at(static_cast<size_t>(carries_.carry_device[c])).device->allocate(std::max<uint64_t>(carries_.carry_bytes[c], 1)));
  // Which values cross ranks: a value goes to every other rank that has a stage reading
  // it, and every output of the whole graph (not updated in place) to every rank.
  const size_t n = pass_.stages.size();
  auto rank_of = [&](size_t s) {
    const int r = devices_.at(static_cast<size_t>(pass_.stages[s].device)).rank;
    return r >= 0 ? r : (link_ ? link_->rank() : 0);
  };
  std::map<ir::NodeId, std::set<int>> wanted_by;
  for (size_t s = 0; s < n; ++s)
    for (ir::NodeId v : pass_.stages[s].receives) wanted_by[v].insert(rank_of(s));
  const bool spans_ranks = std::any_of(remote.begin(), remote.end(), [](bool r) { return r; });  // else every rank runs every stage
  if (spans_ranks)
    for (size_t o = 0; o < pass_.outputs.size(); ++o)
      if (!pass_.in_place[o])
        for (int r = 0; r < link_->ranks(); ++r) wanted_by[pass_.outputs[o]].insert(r);
  send_to_.resize(n);
  receive_.resize(n);
  for (const LoweredStage& stage : pass_.stages)
    for (size_t k = 0; k < stage.computes.size(); ++k) {
      std::vector<int64_t> shape;
      for (const ir::Dim& dim : stage.types[k].shape) shape.push_back(dim.value);
      value_bytes_[stage.computes[k]] = static_cast<uint64_t>(ir::tensor_bytes(stage.types[k].dtype, shape));
    }
  for (size_t s = 0; s < n; ++s) {
    const LoweredStage& stage = pass_.stages[s];
    for (ir::NodeId v : stage.computes) {
      std::vector<int> to;
      for (int r : wanted_by[v])
        if (r != rank_of(s)) to.push_back(r);
      receive_[s].push_back(!local(s) && wanted_by[v].count(link_ ? link_->rank() : 0));
      send_to_[s].push_back(local(s) ? to : std::vector<int>{});
    }
  }

  int64_t total = 0, done_before = 0;
  for (size_t s = 0; s < n; ++s)
    if (local(s)) total += static_cast<int64_t>(pass_.stages[s].plan.kernels.size());
  for (size_t s = 0; s < n; ++s) {
    LoweredStage& stage = pass_.stages[s];
    std::vector<const backends::Buffer*> into;
    for (int c : carries_.output_carry[s]) into.push_back(c >= 0 ? carry_buffers_[static_cast<size_t>(c)].get() : nullptr);
    if (std::all_of(into.begin(), into.end(), [](const backends::Buffer* b) { return b == nullptr; })) into.clear();
    output_into_.push_back(std::move(into));
    std::map<std::string, const backends::Buffer*> carried;
    for (size_t j = 0; j < stage.receives.size(); ++j)
      if (const int c = carries_.input_carry[s][j]; c >= 0) carried[transfer_name(stage.receives[j])] = carry_buffers_[static_cast<size_t>(c)].get();
    carried_inputs_.push_back(std::move(carried));
    if (!local(s)) {
      stages_.push_back(nullptr);
      continue;
    }
    const StageDevice& d = devices_.at(static_cast<size_t>(stage.device));
    ExecutorOptions options;
    options.arena = d.arena;
    if (progress) options.progress = [&, done_before](int64_t done, int64_t) { progress(done_before + done, total); };
    done_before += static_cast<int64_t>(stage.plan.kernels.size());
    stages_.push_back(std::make_unique<Executor>(*d.device, cache, std::move(stage.plan), options));
  }
}

StagedPlan::~StagedPlan() = default;

std::vector<std::string> StagedPlan::params_on(int device) const {
  std::set<std::string> names;
  for (size_t s = 0; s < stages_.size(); ++s) {
    if (pass_.stages[s].device != device || !stages_[s]) continue;
    for (const jit::PlanBuffer& b : stages_[s]->plan().buffers)
      if (b.role == jit::PlanBuffer::Role::param) names.insert(b.name);
  }
  return {names.begin(), names.end()};
}

void StagedPlan::take_rank0(ir::NodeId node, ir::HostTensor& value) {
  constexpr int kTag = 1 << 20;  // apart from the transfers' (node ids) in the same pass
  MOAT_INTERNAL_CHECK(node < kTag, "a pass of over ", kTag, " nodes across ranks");
  std::vector<uint8_t> bytes(value.bytes().begin(), value.bytes().end());
  if (link_->rank() == 0) {
    for (int r = 1; r < link_->ranks(); ++r) link_->send(r, kTag + node, bytes);
    return;
  }
  link_->receive(0, kTag + node, bytes);
  value = ir::HostTensor::from_bytes(value.dtype(), value.shape(), std::move(bytes));
}

std::vector<ir::HostTensor> StagedPlan::run(const ir::Bindings& bindings) {
  last_moved_ = 0;
  if (stages_.size() == 1 && !link_) {
    const StageDevice& d = devices_.at(static_cast<size_t>(pass_.stages[0].device));
    return stages_[0]->run(bindings, d.resident);
  }
  // Host copies of the values the stages run so far made, and the device of each.
  std::map<ir::NodeId, ir::HostTensor> values;
  std::map<ir::NodeId, int> made_on;
  ir::Bindings stage_bindings;
  for (size_t s = 0; s < stages_.size(); ++s) {
    const LoweredStage& stage = pass_.stages[s];
    if (!local(s)) {  // another rank's stage: what this rank needs of it arrives from there
      for (ir::NodeId v : stage.receives)  // what that rank's stage takes from other devices, counted as if seen here
        if (!same_device(made_on.at(v), stage.device)) last_moved_ += value_bytes_.at(v);
      const int from = devices_.at(static_cast<size_t>(stage.device)).rank;
      for (size_t k = 0; k < stage.computes.size(); ++k) {
        made_on[stage.computes[k]] = stage.device;
        if (!receive_[s][k]) continue;
        std::vector<int64_t> shape;
        for (const ir::Dim& dim : stage.types[k].shape) shape.push_back(dim.value);
        std::vector<uint8_t> bytes(static_cast<size_t>(ir::tensor_bytes(stage.types[k].dtype, shape)));
        link_->receive(from, stage.computes[k], bytes);
        values.insert_or_assign(stage.computes[k], ir::HostTensor::from_bytes(stage.types[k].dtype, shape, std::move(bytes)));
      }
      continue;
    }
    const StageDevice& d = devices_.at(static_cast<size_t>(stage.device));
    stage_bindings.tensors.clear();
    for (const jit::PlanBuffer& b : stages_[s]->plan().buffers) {  // the caller's inputs this stage reads
      if (b.role != jit::PlanBuffer::Role::input && b.role != jit::PlanBuffer::Role::param) continue;
      auto it = bindings.tensors.find(b.name);
      if (it != bindings.tensors.end()) stage_bindings.tensors.insert(*it);
    }
    for (size_t j = 0; j < stage.receives.size(); ++j) {
      if (carries_.input_carry[s][j] >= 0) continue;  // read in place on this device
      const ir::NodeId node = stage.receives[j];
      const ir::HostTensor& value = values.at(node);
      if (!same_device(made_on.at(node), stage.device)) last_moved_ += value.bytes().size();
      stage_bindings.tensors.insert_or_assign(transfer_name(node), value);
    }
    std::vector<ir::HostTensor> out = stages_[s]->run(stage_bindings, d.resident, output_into_[s], &carried_inputs_[s]);
    for (size_t k = 0; k < out.size(); ++k) {
      const ir::NodeId node = stage.computes[k];
      made_on[node] = stage.device;
      const int c = carries_.output_carry[s][k];
      if (c >= 0) {
        const jit::PlanBuffer& b = stages_[s]->plan().buffers[static_cast<size_t>(stages_[s]->plan().outputs[k])];
        backends::Buffer& carry = *carry_buffers_[static_cast<size_t>(c)];
        const bool kept = b.bytes > 0 && out[k].bytes().empty();  // written into the carry buffer
        if (!kept) {  // the executor read it back (not an arena buffer): the later stage reads it from the carry buffer
          if (!out[k].bytes().empty()) d.device->stream().write(carry, 0, out[k].bytes().data(), out[k].bytes().size());
        } else if (carries_.host_copy[s][k] || !send_to_[s][k].empty()) {
          std::vector<uint8_t> bytes(static_cast<size_t>(b.bytes));
          d.device->stream().read(carry, 0, bytes.data(), bytes.size());
          out[k] = ir::HostTensor::from_bytes(b.dtype, b.shape, std::move(bytes));
        }
      }
      if (stage.sum_across_ranks && link_) {  // this rank's share, added over every rank
        MOAT_INTERNAL_CHECK(out[k].dtype() == ir::DType::f32, "a sum across ranks of ", ir::dtype_name(out[k].dtype()));
        std::vector<float> share = out[k].to_f32();
        link_->sum(node, share);
        last_moved_ += out[k].bytes().size() * static_cast<uint64_t>(link_->ranks() - 1);  // this rank's share, to each other rank
        out[k] = ir::HostTensor::from_f32(out[k].shape(), share);
      }
      if (stage.from_rank0 && link_) take_rank0(node, out[k]);
      for (int to : send_to_[s][k]) link_->send(to, node, out[k].bytes());
      values.insert_or_assign(node, std::move(out[k]));
    }
  }
  std::vector<ir::HostTensor> outputs;
  for (size_t o = 0; o < pass_.outputs.size(); ++o) {
    auto it = values.find(pass_.outputs[o]);
    if (pass_.outputs_from_rank0 && link_ && !pass_.in_place[o] && it != values.end()) take_rank0(pass_.outputs[o], it->second);
    outputs.push_back(it != values.end() ? it->second : ir::HostTensor::from_bytes(ir::DType::f32, {0}, {}));
  }
  return outputs;
}

}  // namespace moat::runtime
