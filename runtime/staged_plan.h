// A pass that runs as stages on several devices (graph_partition.h): one Executor per
// stage on its device, run in order. A value one stage computes for a later one is
// read back to the host after its stage and written to the next device as that stage's
// input ("xfer.<node>"); when a later stage on the *same* device uses it too (the
// residual stream around routed experts on another device) the kernels write it into a
// carry buffer on that device that the later stage reads in place, and only the stages
// on other devices get a host copy. Carry buffers are made once per plan and reused by
// values whose lifetimes do not overlap. One stage on one device is the plain Executor.
//
// Across processes (a StageLink): a stage of another rank is not run here; its values
// that this rank needs arrive from that rank, and this rank sends its stages' values to
// the ranks that need them, in stage order (so every rank's sends and receives match).
// The whole graph's outputs (the logits) reach every rank. A stage marked
// `sum_across_ranks` (expert parallelism: this rank's share of the routed experts) adds
// its outputs over every rank before later stages read them; one marked `from_rank0`
// (the routing) and, with `outputs_from_rank0`, the whole graph's outputs are rank 0's on
// every rank, so that ranks on devices that round differently still select the same
// experts and sample the same tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/device.h"
#include "ir/interpreter.h"
#include "jit/lower.h"
#include "runtime/executor.h"
#include "runtime/graph_partition.h"
#include "runtime/kernel_cache.h"
#include "runtime/memory_plan.h"
#include "runtime/stage_link.h"

namespace moat::runtime {

// A stage lowered for its device.
struct LoweredStage {
  int device = 0;
  jit::Plan plan;                     // empty for a stage of another rank
  std::vector<ir::NodeId> computes;   // per plan output: the whole graph's node
  std::vector<ir::TensorType> types;  // per plan output: its type (static shapes)
  std::vector<ir::NodeId> receives;   // per transfer input: the whole graph's node
  bool sum_across_ranks = false;      // its outputs are added over every rank (f32)
  bool from_rank0 = false;            // every rank takes rank 0's outputs (decisions all must share)
};

// A whole pass lowered stage by stage.
struct LoweredPass {
  std::vector<LoweredStage> stages;
  std::vector<ir::NodeId> outputs;  // the whole graph's outputs, in order
  std::vector<bool> in_place;       // per output: a cache updated on its device (nothing to hand over)
  bool outputs_from_rank0 = false;  // every rank computed the outputs: all take rank 0's
  uint64_t transfer_bytes = 0;      // bytes moved between devices per run (Partition)
};

// Where each value that crosses stages lives: a carry buffer on its device (kept for a
// later stage there) or the host only.
struct CarryPlan {
  // Per stage, per plan output: the carry buffer it is written into, or -1.
  std::vector<std::vector<int>> output_carry;
  // Per stage, per transfer input: the carry buffer it is read from in place, or -1 (a
  // host copy, written to the stage's device).
  std::vector<std::vector<int>> input_carry;
  // Per stage, per plan output: whether the host needs it (a reader on another device,
  // or an output of the whole graph).
  std::vector<std::vector<bool>> host_copy;
  std::vector<int> carry_device;       // per carry buffer
  std::vector<uint64_t> carry_bytes;   // per carry buffer
  uint64_t bytes_on(int device) const;  // every carry buffer of that device
};
// `remote` (per device slot, or empty): slots of other ranks, whose values are never
// carried here; nor are the outputs of stages summed across ranks.
CarryPlan plan_carries(const LoweredPass& pass, const std::vector<bool>& remote = {});

// What a stage's device gives it: the device, the arena its plans share, and the tensors
// resident on it (weights, caches) by name.
struct StageDevice {
  backends::Device* device = nullptr;  // null: the device of another rank
  int rank = -1;                       // that rank (StageLink); -1: this process
  Arena* arena = nullptr;
  const std::map<std::string, const backends::Buffer*>* resident = nullptr;
};

class StagedPlan {
 public:
  // Compiles every stage on its device (`devices[stage.device]`); `progress` as
  // ExecutorOptions' over all stages' kernels.
  StagedPlan(std::span<const StageDevice> devices, KernelCache& cache, LoweredPass pass,
             const std::function<void(int64_t done, int64_t total)>& progress = {}, StageLink* link = nullptr);
  ~StagedPlan();

  // Runs every stage: `bindings` holds the pass's inputs (params not resident on a stage's
  // device are bound there per run, as Executor::run). Returns the whole graph's outputs.
  std::vector<ir::HostTensor> run(const ir::Bindings& bindings);

  // Params some stage reads, by device: what the session must make resident there.
  std::vector<std::string> params_on(int device) const;
  // Bytes the last run handed to stages from other devices (in one process: counted as
  // bound, equal to the pass's transfer_bytes; another rank's stages: their share of
  // transfer_bytes), plus, for stages summed across ranks, this rank's share sent to
  // each other rank.
  uint64_t last_moved_bytes() const { return last_moved_; }

 private:
  // Replaces `value` by rank 0's (rank 0 sends it to every other rank).
  void take_rank0(ir::NodeId node, ir::HostTensor& value);
  bool local(size_t stage) const { return devices_.at(static_cast<size_t>(pass_.stages[stage].device)).rank < 0; }
  // Whether two slots are one device (expert shares run on a second slot of this rank's).
  bool same_device(int a, int b) const {
    const StageDevice &x = devices_.at(static_cast<size_t>(a)), &y = devices_.at(static_cast<size_t>(b));
    return a == b || (x.rank == y.rank && x.device == y.device);
  }

  std::vector<StageDevice> devices_;
  StageLink* link_ = nullptr;
  LoweredPass pass_;
  // Per stage, per output: the ranks this rank sends it to (its own stages), or whether
  // this rank receives it (another rank's stages).
  std::vector<std::vector<std::vector<int>>> send_to_;
  std::vector<std::vector<bool>> receive_;
  std::map<ir::NodeId, uint64_t> value_bytes_;  // bytes of every value a stage computes
  CarryPlan carries_;
  std::vector<std::unique_ptr<Executor>> stages_;
  std::vector<std::unique_ptr<backends::Buffer>> carry_buffers_;  // per carry buffer, on its device
  // Per stage: its outputs' carry buffers (null: read back) and its carried inputs by name.
  std::vector<std::vector<const backends::Buffer*>> output_into_;
  std::vector<std::map<std::string, const backends::Buffer*>> carried_inputs_;
  uint64_t last_moved_ = 0;
};

}  // namespace moat::runtime
