// Internal to the LLVM emitter: value types, conversions between Kernel IR scalar
// types, and block dequantisation, as LLVM IR built at an IRBuilder's insertion point.
// Every helper works lane-wise on scalars and vectors alike.
#pragma once

#include <llvm/IR/IRBuilder.h>

#include <functional>
#include <vector>

#include "jit/kir.h"

namespace moat::jit::llvm_emit {

// f16 is `half`; bf16 (i16) and f8 (i8) are carried as their bits; i1 as `i1`.
llvm::Type* scalar_type(llvm::LLVMContext& ctx, Scalar s);
llvm::Type* value_type(llvm::LLVMContext& ctx, Type t);

// A lane-wise conversion with the rules of kir.h / ir/tensor.h (float -> int truncates
// toward zero and saturates, NaN -> 0; int -> int wraps; anything -> i1 is != 0).
llvm::Value* convert(llvm::IRBuilder<>& b, llvm::Value* v, Type from, Type to);

// 32 consecutive elements (f32 x 32) starting at element `first` (i64, a multiple of 32)
// of the block at `block` (i8*) of quantised `dtype`.
llvm::Value* dequant32(llvm::IRBuilder<>& b, ir::DType dtype, llvm::Value* block, llvm::Value* first);
// One element (f32) at `element` (i64, any index within the block), scalar code.
llvm::Value* dequant1(llvm::IRBuilder<>& b, ir::DType dtype, llvm::Value* block, llvm::Value* element);

// kir.h's `dot4` (acc i32 x N, a u8 x 4N, b i8 x 4N or x 4); `vnni`: vpdpbusd for N of
// 4, 8, 16.
llvm::Value* dot4(llvm::IRBuilder<>& b, llvm::Value* acc, llvm::Value* a, llvm::Value* bv, bool vnni);
// kir.h's `qscale`: the f16 scale at the start of the q8_0 / q4_0 block at `block` (i8*).
llvm::Value* qscale(llvm::IRBuilder<>& b, llvm::Value* block);
// kir.h's `qdot`: `blocks` consecutive q8_0 blocks from a_first (i8*) with as many
// `b_dtype` (q8_0 / q4_0) blocks from b_first: f32 x 8 * blocks. `vnni`: the host has
// AVX-512 VNNI (vpdpbusd on 256 / 512 bits); otherwise widening multiplies.
llvm::Value* qdot(llvm::IRBuilder<>& b, ir::DType b_dtype, llvm::Value* a_first, llvm::Value* b_first, int blocks,
                  bool vnni);
// kir.h's `quantize`: the q8_0 block at `block` (i8*) for the 32 f32 values x. `round`
// rounds one f32 half away from zero (an intrinsic on the CPU, a built-in on SPIR).
void quantize_q8_0(llvm::IRBuilder<>& b, llvm::Value* block, const std::vector<llvm::Value*>& x,
                   const std::function<llvm::Value*(llvm::Value*)>& round);

// NaN-propagating max / min of two floats (ir/interpreter.h), and the lane-wise
// results of a BinaryOp on two values of type t.
llvm::Value* float_max(llvm::IRBuilder<>& b, llvm::Value* x, llvm::Value* y);
llvm::Value* float_min(llvm::IRBuilder<>& b, llvm::Value* x, llvm::Value* y);
llvm::Value* binary_op(llvm::IRBuilder<>& b, BinaryOp op, llvm::Value* x, llvm::Value* y, Type t);

}  // namespace moat::jit::llvm_emit
