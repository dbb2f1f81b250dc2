// Schedule parameters of the lowerings, chosen per target and device capabilities
// (and part of every kernel's text, hence of the kernel cache key).
#pragma once

#include <cstdint>

#include "jit/capabilities.h"

namespace moat::jit {

struct Target;

struct Schedule {
  // CPU style: a work-group is one thread's task with one work-item; inner loops are
  // vectorised over `vector_lanes` f32 lanes. GPU style: `work_group_size` work-items
  // per group, one output element (map kernels) or one output row (reductions,
  // matmul) per work-item or group, local memory and barriers.
  bool gpu = false;
  int vector_lanes = 16;         // f32 lanes of the CPU inner loops (power of two)
  int work_group_size = 1;       // work-items per group (GPU)
  int64_t elements_per_group = 16384;  // map / reduce kernels: output elements per group (CPU)
  int matmul_rows = 4;           // matmul: rows of A sharing each loaded chunk of B
  int matmul_cols = 16;          // matmul: columns of B (outputs) per work-group
  // From the device's capabilities (the defaults: the CPU's):
  int64_t local_memory_bytes = int64_t{1} << 20;  // work-group-local memory a kernel may use, bytes
  int sub_group_size = 1;        // work-items per sub-group whose lanes exchange values; 1: none
  bool int8_dot = false;         // a native 4 x int8 dot product (jit/capabilities.h)
};

// The target's default schedule for a device with `caps`: its style; GPU work-groups of
// the target's preferred size capped by the device's maximum; CPU vectors of the
// device's width within the target's range of lanes.
Schedule schedule_for(const Target& target, const Capabilities& caps);

}  // namespace moat::jit
