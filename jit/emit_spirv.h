// SPIR-V for OpenCL devices that take IL (Intel): the kernel's spir64 LLVM module (the
// spir flavour of the LLVM emitter) translated by the LLVM-SPIRV translator, SPIR-V 1.0
// for the OpenCL environment (Kernel capability, Physical64 addressing, OpenCL.std).
#pragma once

#include <cstdint>
#include <vector>

#include "jit/kir.h"

namespace moat::jit {

// A SPIR-V binary (little-endian words); InternalError with the translator's message
// when the module cannot be translated (a bug).
std::vector<uint8_t> emit_spirv(const Kernel& kernel);

}  // namespace moat::jit
