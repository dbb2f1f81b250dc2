// LLVM IR text -> host object file: parse, verify, retarget to the host CPU, -O3
// (new pass manager), emit. The CPU device's compile(); no LLVM types in this header.
#pragma once

#include <string>

#include "backends/device.h"

namespace moat::backends::cpu {

// `source`: format "ll", kernels following kernel_abi.h. Returns format "o" with the
// same kernel names. UserError naming the kernels when the IR does not parse or
// verify, when a listed kernel is not defined, or when its signature is not the ABI's.
Artifact compile_llvm_ir(const Artifact& source);

// The IR after the same retargeting and -O3 pipeline, as text (for `moat emit` and
// debugging); same errors as compile_llvm_ir.
std::string optimise_llvm_ir(const Artifact& source);

}  // namespace moat::backends::cpu
