// LLVM IR text -> LLVM bitcode, for any target triple, without exposing LLVM: how a
// spir64 module (the SPIR path of the OpenCL backend, Artifact format "bc-spir") is
// made from the text an emitter or a test writes.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace moat::backends::cpu {

// The bitcode of `ll_text` as written (no retargeting, no optimisation). UserError with
// the parser's or the verifier's message when the text is not valid LLVM IR.
std::vector<uint8_t> assemble_llvm_bitcode(std::string_view ll_text);

}  // namespace moat::backends::cpu
