// The LLVM IR emitter: renders a kernel as an LLVM module (text, format "ll") for the
// CPU backend, following the CPU kernel ABI of backends/device.h:
//   void NAME(const i64* args, const i64* grid, i64 group_begin, i64 group_end)
// The function runs the work-groups with linear ids [group_begin, group_end) and, in
// each, every work-item in turn (x fastest). A kernel whose groups have more than one
// work-item may not use barriers or sub-group operations on this target (CPU schedules
// give each thread one work-item per group and vectorise over lanes instead): that is a
// lowering bug and raises InternalError naming the kernel.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jit/kir.h"

namespace moat::jit {

// ISA features of the host CPU that the emitted IR may use directly (everything else
// is left to LLVM's instruction selection for the host).
struct CpuFeatures {
  bool avx512_vnni = false;  // with AVX512VL: vpdpbusd on 256 and 512 bits (qdot)
  bool pshufb = false;       // SSSE3: a gather of 16 lanes from a table of <= 16 bytes is one pshufb
};

std::string emit_llvm(const Kernel& kernel, const CpuFeatures& cpu = {});

// The kernel as an OpenCL kernel for the spir64 target, as LLVM bitcode (SPIR 1.2: what
// PoCL loads with clCreateProgramWithBinary and "-x spir -spir-std=1.2"). Work-items are
// hardware work-items here: barriers and any grid are allowed.
std::vector<uint8_t> emit_spir_bitcode(const Kernel& kernel);

}  // namespace moat::jit
