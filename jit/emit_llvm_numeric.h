// Internal to the LLVM emitter: value types, conversions between Kernel IR scalar
// types and dot products, as LLVM IR built at an IRBuilder's insertion point.
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

// kir.h's `bitcast` (f32 <-> i32; a narrow float's bits <-> i32).
llvm::Value* reinterpret(llvm::IRBuilder<>& b, llvm::Value* v, Type from, Type to);

// kir.h's `dot4` (acc i32 x N, a u8 x 4N, b i8 x 4N or x 4); `vnni`: vpdpbusd for N of
// 4, 8, 16.
llvm::Value* dot4(llvm::IRBuilder<>& b, llvm::Value* acc, llvm::Value* a, llvm::Value* bv, bool vnni);
// Lane l of the result (i8 x N, N 16, 32 or 64) is table[index[l]] for a table of at
// most 16 bytes and indices (an integer vector of N lanes) below its size: SSSE3 pshufb,
// 16 lanes at a time.
llvm::Value* byte_lookup(llvm::IRBuilder<>& b, const std::vector<int64_t>& table, llvm::Value* index);
// NaN-propagating max / min of two floats (ir/interpreter.h), and the lane-wise
// results of a BinaryOp on two values of type t.
llvm::Value* float_max(llvm::IRBuilder<>& b, llvm::Value* x, llvm::Value* y);
llvm::Value* float_min(llvm::IRBuilder<>& b, llvm::Value* x, llvm::Value* y);
llvm::Value* binary_op(llvm::IRBuilder<>& b, BinaryOp op, llvm::Value* x, llvm::Value* y, Type t);

// Horizontal reductions of several vectors of `lanes` lanes each (a power of two): one
// scalar per vector, each computed in the order of a single vector's reduction by
// halving (lane i op lane i + half, repeated), so bit for bit the same. Up to `lanes`
// vectors share each step: their halves are shuffled into whole vectors, so n vectors
// take about 3n vector operations instead of 2 log2(lanes) each (the reductions after
// a matmul's few-row tiles). `combine` applies the reduction's operation.
std::vector<llvm::Value*> joint_horizontal(llvm::IRBuilder<>& b, const std::vector<llvm::Value*>& vectors, int lanes,
                                           const std::function<llvm::Value*(llvm::Value*, llvm::Value*)>& combine);

}  // namespace moat::jit::llvm_emit
