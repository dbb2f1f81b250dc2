// Schedule parameters of the lowerings, chosen per device from its reported properties
// (and part of every kernel's text, hence of the kernel cache key).
#pragma once

#include <cstdint>

#include "backends/device.h"

namespace moat::jit {

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
  // Work-group-local memory a kernel may use, bytes (CPU: a stack array per group).
  int64_t local_memory_bytes = int64_t{1} << 20;
};

Schedule schedule_for(const backends::DeviceProperties& device);

}  // namespace moat::jit
