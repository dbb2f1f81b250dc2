// Runs a lowered plan (jit/lower.h) on one device: compiles its kernels once (through
// the kernel cache), places its intermediates and outputs in an arena by liveness
// (memory_plan.h), and per run binds the inputs and params, launches every kernel in
// order and reads the outputs back. Inputs are copied into buffers made on the first run;
// nothing is allocated on the device per run (params the caller binds instead of
// leaving resident are wrapped per run).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/device.h"
#include "ir/interpreter.h"
#include "runtime/kernel_cache.h"
#include "jit/lower.h"
#include "runtime/kernel_profile.h"
#include "runtime/memory_plan.h"
#include "runtime/packed_weights.h"

namespace moat::runtime {

struct ExecutorOptions {
  // Which form OpenCL kernels take: "cl" (OpenCL C source), "spv" (SPIR-V, for devices
  // that take IL) or "bc-spir" (SPIR 1.2 bitcode, which PoCL loads).
  std::string opencl_format = "cl";
  // Called after each kernel is compiled or loaded: (kernels done, kernels in the plan).
  std::function<void(int64_t done, int64_t total)> progress;
  // Times every launch into this profile (kernel_profile.h: the stream is synchronised
  // around each launch). Null: the thread's active_profile(), if any; else no timing.
  KernelProfile* profile = nullptr;
  // Where intermediates and outputs live (memory_plan.h): an arena shared with other
  // executors that never run at the same time (a session's plans). Null: its own.
  Arena* arena = nullptr;
};

struct ExecutorStats {
  int kernels = 0;           // launches per run
  int distinct_kernels = 0;  // compiled artifacts (identical kernels share one)
  double compile_ms = 0;     // emit + compile (or cache load) + module load
  uint64_t arena_bytes = 0;  // the intermediates' and outputs' bytes (memory_plan.h)
};

class Executor {
 public:
  Executor(backends::Device& device, runtime::KernelCache& cache, jit::Plan plan, const ExecutorOptions& options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // `bindings.tensors` holds every input and param of the plan by name, with the
  // plan's dtype and shape (UserError naming the tensor otherwise), except those found
  // in `resident`: tensors already on the device (weights uploaded once), by name, which
  // the caller has checked. A weight the plan reads packed (jit/weight_packing.h) is
  // bound by its own name and packed here on first use. Returns one tensor per output.
  //
  // `output_into` (empty, or one entry per output): a non-null entry is a device buffer
  // of the output's bytes that the kernels write the output into instead of the arena;
  // it is not read back (its tensor is returned with shape {0}) unless the output is not
  // an arena buffer (an input, param or constant), which is read back as usual.
  // `carried`: more device buffers by name, looked up after `resident` (values an earlier
  // plan left on the device).
  std::vector<ir::HostTensor> run(const ir::Bindings& bindings,
                                  const std::map<std::string, const backends::Buffer*>* resident = nullptr,
                                  std::span<const backends::Buffer* const> output_into = {},
                                  const std::map<std::string, const backends::Buffer*>* carried = nullptr);

  const jit::Plan& plan() const { return plan_; }  // its kernels without their bodies (compiled)
  const MemoryPlan& memory() const { return memory_; }
  const ExecutorStats& stats() const { return stats_; }

 private:
  struct Compiled;
  backends::Device& device_;
  jit::Plan plan_;
  KernelProfile* profile_;
  std::unique_ptr<Compiled> compiled_;
  MemoryPlan memory_;
  std::unique_ptr<Arena> own_arena_;  // when no shared arena was given
  Arena* arena_;
  uint64_t views_generation_ = 0;     // the arena generation compiled_->views were made for
  PackedWeights packed_;  // packed weights that were bound by their unpacked tensors
  ExecutorStats stats_;
};

}  // namespace moat::runtime
