// The C-like emitters: OpenCL C 1.2 (built by the OpenCL driver) and HIP C++ (built by
// hiprtc). One printer over scalar Kernel IR (vectors are scalarized first, see
// jit/legalize.h) driven by a small dialect table: kernel qualifiers, address-space
// keywords, work-item builtins, barrier, math spellings, bit casts.
//
// f16 / bf16 / f8 values travel as their bits (ushort / uchar) and are converted by
// helper functions that follow support/half.h exactly, so no half-precision extension
// is needed. Float -> int conversions saturate and map NaN to 0; max / min propagate
// NaN (ir/interpreter.h).
#pragma once

#include <span>
#include <string>

#include "jit/kir.h"

namespace moat::jit {

std::string emit_opencl(const Kernel& kernel);
std::string emit_hip(const Kernel& kernel);

// One source file (one program / module) holding every kernel, the helpers once.
// Kernel names must differ.
std::string emit_opencl(std::span<const Kernel> kernels);
std::string emit_hip(std::span<const Kernel> kernels);

}  // namespace moat::jit
