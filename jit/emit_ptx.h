// The PTX emitter: renders a kernel as PTX assembly text for the CUDA backend (loaded
// with cuModuleLoadData / assembled by ptxas; no CUDA C, no NVRTC). One module per
// kernel with one entry:
//
//   .visible .entry NAME(.param .u64 NAME_param_0, ...) .reqntid X, Y, Z
//
// Parameters follow Kernel::params (the ABI order): a global buffer is a .u64 device
// pointer, an i64 scalar a .u64, an f32 scalar a .f32. The launch grid is
// Kernel::groups x Kernel::items (blockDim must equal items: .reqntid). A sub-group is
// a warp of 32 work-items (a smaller group's whole group when it has fewer than 32, a
// power of two); work-group-local buffers are .shared arrays.
//
// The kernel is legalised first (legalize_for_ptx), then printed; an unhandled node
// raises InternalError naming the node and the target.
#pragma once

#include <string>

#include "jit/kir.h"

namespace moat::jit {

struct PtxTarget {
  int sm = 80;         // compute capability x 10 (.target sm_80, sm_90, ...)
  int ptx_major = 7;   // .version: 7.0 is the first ISA that knows sm_80, 7.8 sm_90
  int ptx_minor = 0;
};

// The lowest PTX ISA version that can target sm `sm` (80, 86, 87, 89, 90); UserError
// for an architecture this emitter does not support (below sm_80).
PtxTarget ptx_target_for(int sm);

// Kernel IR -> Kernel IR a PTX printer can print: numerics legalised (legalize.h), then
// vectors scalarised (every vector becomes one scalar per lane; PTX registers are scalars).
Kernel legalize_for_ptx(const Kernel& kernel);

std::string emit_ptx(const Kernel& kernel, const PtxTarget& target);

}  // namespace moat::jit
