// What a device can do, as the JIT sees it: plain data. The Target table
// (jit/target.h) holds a record per known architecture; the runtime fills one from a
// device's reported properties (runtime/device_target.h). jit/ never sees a device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/dtype.h"

namespace moat::jit {

// One matrix-multiply-accumulate instruction shape: D[m, n] = A[m, k] B[k, n] + C[m, n]
// per sub-group (CUDA mma.sync / wgmma, AMD MFMA / WMMA), inputs of `input`, sums in
// `accumulator`.
struct MatrixShape {
  int m = 0, n = 0, k = 0;
  ir::DType input = ir::DType::f16;
  ir::DType accumulator = ir::DType::f32;
};

struct Capabilities {
  std::string arch;                 // "x86_64", "sm_90", "gfx90a"; "" for a generic device of its target
  int sub_group_size = 1;           // work-items per sub-group (warp 32, wavefront 64 / 32); 1: none
  bool sub_group_shuffle = false;   // lanes of a sub-group exchange values (shfl.sync, ds_swizzle / DPP)
  bool int8_dot = false;            // a 4 x int8 dot product into i32 (dp4a, v_dot4_i32_i8, AVX-512 VNNI vpdpbusd)
  bool byte_shuffle = false;        // 16 lanes of bytes looked up in a 16-byte table at once (SSSE3 pshufb)
  std::vector<MatrixShape> matrix_shapes;  // matrix units; empty: none
  int vector_load_bits = 128;       // widest native load / store of a work-item, bits
  int vector_bits = 128;            // widest native f32 arithmetic vector, bits (CPU: 512 with AVX-512)
  bool f16_arithmetic = false;      // native f16 add / mul / fma (else computed in f32)
  bool bf16_arithmetic = false;     // native bf16 add / mul / fma
  int max_work_group_size = 1;      // work-items per group
  int64_t local_memory_bytes = 0;   // work-group-local (shared, LDS) memory per group, bytes
};

}  // namespace moat::jit
