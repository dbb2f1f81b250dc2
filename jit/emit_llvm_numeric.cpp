// Conversions, arithmetic and dequantisation for the LLVM emitter. The bit-level rules
// match support/half.h and ir/quant.cpp (the interpreter's definitions).
#include "jit/emit_llvm_numeric.h"

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsX86.h>

#include <cmath>

#include "support/error.h"

namespace moat::jit::llvm_emit {

namespace {

using llvm::IRBuilder;
using llvm::Value;

Value* splat(IRBuilder<>& b, Value* scalar, int lanes) {
  return lanes == 1 ? scalar : b.CreateVectorSplat(static_cast<unsigned>(lanes), scalar);
}
Value* i32c(IRBuilder<>& b, uint32_t v, int lanes) { return splat(b, b.getInt32(v), lanes); }
Value* f32c(IRBuilder<>& b, float v, int lanes) {
  return splat(b, llvm::ConstantFP::get(b.getFloatTy(), static_cast<double>(v)), lanes);
}

llvm::Type* with_lanes(llvm::Type* scalar, int lanes) {
  return lanes == 1 ? scalar : llvm::FixedVectorType::get(scalar, static_cast<unsigned>(lanes));
}

Value* bf16_to_f32(IRBuilder<>& b, Value* bits, int lanes) {
  Value* wide = b.CreateShl(b.CreateZExt(bits, with_lanes(b.getInt32Ty(), lanes)), i32c(b, 16, lanes));
  return b.CreateBitCast(wide, with_lanes(b.getFloatTy(), lanes));
}

// Round to nearest even; NaN -> quiet NaN (support/half.h f32_to_bf16).
Value* f32_to_bf16(IRBuilder<>& b, Value* f, int lanes) {
  Value* x = b.CreateBitCast(f, with_lanes(b.getInt32Ty(), lanes));
  Value* odd = b.CreateAnd(b.CreateLShr(x, i32c(b, 16, lanes)), i32c(b, 1, lanes));
  Value* rounded = b.CreateLShr(b.CreateAdd(b.CreateAdd(x, i32c(b, 0x7fff, lanes)), odd), i32c(b, 16, lanes));
  Value* nan_bits = b.CreateOr(b.CreateLShr(x, i32c(b, 16, lanes)), i32c(b, 0x40, lanes));
  Value* is_nan = b.CreateFCmpUNO(f, f);
  Value* out = b.CreateSelect(is_nan, nan_bits, rounded);
  return b.CreateTrunc(out, with_lanes(b.getInt16Ty(), lanes));
}

// E4M3FN: s eeee mmm, bias 7, no infinities, 0x7f / 0xff NaN, subnormals m * 2^-9.
Value* f8_to_f32(IRBuilder<>& b, Value* bits, int lanes) {
  Value* x = b.CreateZExt(bits, with_lanes(b.getInt32Ty(), lanes));
  Value* sign = b.CreateShl(b.CreateAnd(x, i32c(b, 0x80, lanes)), i32c(b, 24, lanes));
  Value* exp = b.CreateAnd(b.CreateLShr(x, i32c(b, 3, lanes)), i32c(b, 0xf, lanes));
  Value* mant = b.CreateAnd(x, i32c(b, 7, lanes));
  Value* normal = b.CreateOr(b.CreateShl(b.CreateAdd(exp, i32c(b, 120, lanes)), i32c(b, 23, lanes)),
                             b.CreateShl(mant, i32c(b, 20, lanes)));
  Value* sub = b.CreateBitCast(b.CreateFMul(b.CreateUIToFP(mant, with_lanes(b.getFloatTy(), lanes)), f32c(b, 0.001953125f, lanes)),
                               with_lanes(b.getInt32Ty(), lanes));
  Value* magnitude = b.CreateSelect(b.CreateICmpEQ(exp, i32c(b, 0, lanes)), sub, normal);
  Value* is_nan = b.CreateICmpEQ(b.CreateAnd(x, i32c(b, 0x7f, lanes)), i32c(b, 0x7f, lanes));
  magnitude = b.CreateSelect(is_nan, i32c(b, 0x7fc00000u, lanes), magnitude);
  return b.CreateBitCast(b.CreateOr(sign, magnitude), with_lanes(b.getFloatTy(), lanes));
}

// Round to nearest even with subnormals, saturate to 448, NaN -> 0x7f (support/half.h):
// the magnitude is rounded to its quantum 2^(max(e, -6) - 3) with rint (exact: the
// scaling is by powers of two), then re-encoded from the rounded f32's bits.
Value* f32_to_f8(IRBuilder<>& b, Value* f, int lanes) {
  llvm::Type* i32 = with_lanes(b.getInt32Ty(), lanes);
  llvm::Type* f32 = with_lanes(b.getFloatTy(), lanes);
  Value* x = b.CreateBitCast(f, i32);
  Value* sign = b.CreateAnd(b.CreateLShr(x, i32c(b, 24, lanes)), i32c(b, 0x80, lanes));
  Value* ax = b.CreateAnd(x, i32c(b, 0x7fffffff, lanes));
  Value* e = b.CreateSub(b.CreateLShr(ax, i32c(b, 23, lanes)), i32c(b, 127, lanes));
  Value* e_clamped = b.CreateSelect(b.CreateICmpSLT(e, i32c(b, static_cast<uint32_t>(-6), lanes)), i32c(b, static_cast<uint32_t>(-6), lanes), e);
  // inverse quantum 2^(3 - E) and quantum 2^(E - 3) as f32 bit patterns
  Value* inv_q = b.CreateBitCast(b.CreateShl(b.CreateSub(i32c(b, 130, lanes), e_clamped), i32c(b, 23, lanes)), f32);
  Value* q = b.CreateBitCast(b.CreateShl(b.CreateAdd(e_clamped, i32c(b, 124, lanes)), i32c(b, 23, lanes)), f32);
  Value* af = b.CreateBitCast(ax, f32);
  // af * inv_q lies in [0, 16): (v + 2^23) - 2^23 rounds it to an integer, to nearest
  // even (no intrinsic, so the SPIR flavour needs no libm)
  Value* scaled = b.CreateFMul(af, inv_q);
  Value* whole = b.CreateFSub(b.CreateFAdd(scaled, f32c(b, 8388608.0f, lanes)), f32c(b, 8388608.0f, lanes));
  Value* rounded = b.CreateFMul(whole, q);
  rounded = b.CreateSelect(b.CreateFCmpOGT(rounded, f32c(b, 448.0f, lanes)), f32c(b, 448.0f, lanes), rounded);
  Value* rb = b.CreateBitCast(rounded, i32);
  Value* re = b.CreateSub(b.CreateLShr(rb, i32c(b, 23, lanes)), i32c(b, 127, lanes));
  Value* normal_code = b.CreateOr(b.CreateShl(b.CreateAdd(re, i32c(b, 7, lanes)), i32c(b, 3, lanes)),
                                  b.CreateAnd(b.CreateLShr(rb, i32c(b, 20, lanes)), i32c(b, 7, lanes)));
  Value* sub_code = b.CreateFPToUI(b.CreateFMul(rounded, f32c(b, 512.0f, lanes)), i32);  // m in 0..8
  Value* code = b.CreateSelect(b.CreateFCmpOLT(rounded, f32c(b, 0.015625f, lanes)), sub_code, normal_code);
  code = b.CreateSelect(b.CreateICmpUGT(ax, i32c(b, 0x7f800000u, lanes)), i32c(b, 0x7f, lanes), code);
  return b.CreateTrunc(b.CreateOr(sign, code), with_lanes(b.getInt8Ty(), lanes));
}

// Any scalar type to f32 (the hub of every conversion between non-f32 types).
Value* to_f32(IRBuilder<>& b, Value* v, Scalar s, int lanes) {
  llvm::Type* f32 = with_lanes(b.getFloatTy(), lanes);
  switch (s) {
    case Scalar::f32: return v;
    case Scalar::f16: return b.CreateFPExt(v, f32);
    case Scalar::bf16: return bf16_to_f32(b, v, lanes);
    case Scalar::f8: return f8_to_f32(b, v, lanes);
    case Scalar::i64: case Scalar::i32: case Scalar::i8: return b.CreateSIToFP(v, f32);
    case Scalar::u8: case Scalar::i1: return b.CreateUIToFP(v, f32);
  }
  MOAT_INTERNAL_ERROR("llvm emitter: no conversion from ", scalar_name(s));
}

Value* from_f32(IRBuilder<>& b, Value* v, Scalar s, int lanes) {
  llvm::LLVMContext& ctx = b.getContext();
  switch (s) {
    case Scalar::f32: return v;
    case Scalar::f16: return b.CreateFPTrunc(v, with_lanes(b.getHalfTy(), lanes));
    case Scalar::bf16: return f32_to_bf16(b, v, lanes);
    case Scalar::f8: return f32_to_f8(b, v, lanes);
    case Scalar::i1: return b.CreateFCmpUNE(v, f32c(b, 0.0f, lanes));
    default: {
      // truncate toward zero, saturate to [lo, hi], NaN -> 0 (a select never passes on
      // the poison of the out-of-range conversion it does not choose)
      llvm::Type* t = with_lanes(scalar_type(ctx, s), lanes);
      const int bits = scalar_bits(s);
      const bool is_unsigned = s == Scalar::u8;
      const double lo = is_unsigned ? 0.0 : -std::ldexp(1.0, bits - 1);
      const double hi = is_unsigned ? std::ldexp(1.0, bits) - 1.0 : std::ldexp(1.0, bits - 1);
      const uint64_t lo_int = is_unsigned ? 0 : uint64_t{1} << (bits - 1);  // two's complement minimum
      const uint64_t hi_int = is_unsigned ? (uint64_t{1} << bits) - 1 : (uint64_t{1} << (bits - 1)) - 1;
      Value* converted = is_unsigned ? b.CreateFPToUI(v, t) : b.CreateFPToSI(v, t);
      Value* lo_value = splat(b, llvm::ConstantInt::get(scalar_type(ctx, s), lo_int), lanes);
      Value* hi_value = splat(b, llvm::ConstantInt::get(scalar_type(ctx, s), hi_int), lanes);
      // u8: hi is 255 exactly; signed: 2^(bits-1) is the first value out of range
      Value* too_high = b.CreateFCmpOGE(v, f32c(b, static_cast<float>(hi), lanes));
      Value* out = b.CreateSelect(b.CreateFCmpOLE(v, f32c(b, static_cast<float>(lo), lanes)), lo_value, converted);
      out = b.CreateSelect(too_high, hi_value, out);
      return b.CreateSelect(b.CreateFCmpUNO(v, v), llvm::Constant::getNullValue(t), out);
    }
  }
}

}  // namespace

llvm::Type* scalar_type(llvm::LLVMContext& ctx, Scalar s) {
  switch (s) {
    case Scalar::f32: return llvm::Type::getFloatTy(ctx);
    case Scalar::f16: return llvm::Type::getHalfTy(ctx);
    case Scalar::bf16: return llvm::Type::getInt16Ty(ctx);
    case Scalar::f8: case Scalar::i8: case Scalar::u8: return llvm::Type::getInt8Ty(ctx);
    case Scalar::i64: return llvm::Type::getInt64Ty(ctx);
    case Scalar::i32: return llvm::Type::getInt32Ty(ctx);
    case Scalar::i1: return llvm::Type::getInt1Ty(ctx);
  }
  MOAT_INTERNAL_ERROR("llvm emitter: unknown scalar type");
}

llvm::Type* value_type(llvm::LLVMContext& ctx, Type t) { return with_lanes(scalar_type(ctx, t.scalar), t.lanes); }

Value* convert(IRBuilder<>& b, Value* v, Type from, Type to) {
  MOAT_INTERNAL_CHECK(from.lanes == to.lanes, "conversion changes the lane count");
  const int lanes = to.lanes;
  if (from.scalar == to.scalar) return v;
  const bool from_int = !is_float(from.scalar), to_int = !is_float(to.scalar);
  if (from_int && to_int) {
    llvm::Type* t = value_type(b.getContext(), to);
    if (to.scalar == Scalar::i1) return b.CreateICmpNE(v, llvm::Constant::getNullValue(v->getType()));
    if (scalar_bits(to.scalar) <= scalar_bits(from.scalar)) return b.CreateTrunc(v, t);
    return is_signed(from.scalar) ? b.CreateSExt(v, t) : b.CreateZExt(v, t);
  }
  if (from.scalar == Scalar::f32 && to.scalar == Scalar::f16) return b.CreateFPTrunc(v, value_type(b.getContext(), to));
  return from_f32(b, to_f32(b, v, from.scalar, lanes), to.scalar, lanes);
}

Value* float_max(IRBuilder<>& b, Value* x, Value* y) {
  return b.CreateSelect(b.CreateOr(b.CreateFCmpOGT(x, y), b.CreateFCmpUNO(x, x)), x, y);
}
Value* float_min(IRBuilder<>& b, Value* x, Value* y) {
  return b.CreateSelect(b.CreateOr(b.CreateFCmpOLT(x, y), b.CreateFCmpUNO(x, x)), x, y);
}

Value* binary_op(IRBuilder<>& b, BinaryOp op, Value* x, Value* y, Type t) {
  const bool fp = is_float(t.scalar);
  const bool sgn = is_signed(t.scalar);
  switch (op) {
    case BinaryOp::add: return fp ? b.CreateFAdd(x, y) : b.CreateAdd(x, y);
    case BinaryOp::sub: return fp ? b.CreateFSub(x, y) : b.CreateSub(x, y);
    case BinaryOp::mul: return fp ? b.CreateFMul(x, y) : b.CreateMul(x, y);
    case BinaryOp::div: return fp ? b.CreateFDiv(x, y) : sgn ? b.CreateSDiv(x, y) : b.CreateUDiv(x, y);
    case BinaryOp::rem: return fp ? b.CreateFRem(x, y) : sgn ? b.CreateSRem(x, y) : b.CreateURem(x, y);
    case BinaryOp::max:
      if (fp) return float_max(b, x, y);
      return b.CreateSelect(sgn ? b.CreateICmpSGT(x, y) : b.CreateICmpUGT(x, y), x, y);
    case BinaryOp::min:
      if (fp) return float_min(b, x, y);
      return b.CreateSelect(sgn ? b.CreateICmpSLT(x, y) : b.CreateICmpULT(x, y), x, y);
    case BinaryOp::pow: return b.CreateBinaryIntrinsic(llvm::Intrinsic::pow, x, y);
    case BinaryOp::land: return b.CreateAnd(x, y);
    case BinaryOp::lor: return b.CreateOr(x, y);
    case BinaryOp::shl: return b.CreateShl(x, y);
    case BinaryOp::shr: return sgn ? b.CreateAShr(x, y) : b.CreateLShr(x, y);
    case BinaryOp::lt: return fp ? b.CreateFCmpOLT(x, y) : sgn ? b.CreateICmpSLT(x, y) : b.CreateICmpULT(x, y);
    case BinaryOp::le: return fp ? b.CreateFCmpOLE(x, y) : sgn ? b.CreateICmpSLE(x, y) : b.CreateICmpULE(x, y);
    case BinaryOp::eq: return fp ? b.CreateFCmpOEQ(x, y) : b.CreateICmpEQ(x, y);
    case BinaryOp::ne: return fp ? b.CreateFCmpUNE(x, y) : b.CreateICmpNE(x, y);
  }
  MOAT_INTERNAL_ERROR("llvm emitter: unknown binary op");
}

namespace {

Value* byte_ptr(IRBuilder<>& b, Value* base, Value* offset) {
  return b.CreateGEP(b.getInt8Ty(), base, offset);
}

// A pointer to `t` in the address space of `base` (global on the CPU, addrspace(1) on SPIR).
llvm::PointerType* pointer_to(llvm::Type* t, Value* base) {
  return llvm::PointerType::get(t, base->getType()->getPointerAddressSpace());
}

Value* load_f16_as_f32(IRBuilder<>& b, Value* base, uint64_t offset) {
  Value* p = b.CreateBitCast(byte_ptr(b, base, b.getInt64(offset)), pointer_to(b.getHalfTy(), base));
  return b.CreateFPExt(b.CreateAlignedLoad(b.getHalfTy(), p, llvm::Align(1)), b.getFloatTy());
}

Value* load_bytes(IRBuilder<>& b, Value* base, Value* offset, unsigned n) {
  llvm::Type* vt = llvm::FixedVectorType::get(b.getInt8Ty(), n);
  Value* p = b.CreateBitCast(byte_ptr(b, base, offset), pointer_to(vt, base));
  return b.CreateAlignedLoad(vt, p, llvm::Align(1));
}

Value* load_byte(IRBuilder<>& b, Value* base, Value* offset) {
  return b.CreateAlignedLoad(b.getInt8Ty(), byte_ptr(b, base, offset), llvm::Align(1));
}

Value* i8v(IRBuilder<>& b, uint8_t v) { return b.CreateVectorSplat(32, b.getInt8(v)); }

// q8_0: d (f16) then 32 int8: x = d * q.
Value* dequant_q8_0(IRBuilder<>& b, Value* block) {
  Value* d = load_f16_as_f32(b, block, 0);
  Value* q = b.CreateSIToFP(load_bytes(b, block, b.getInt64(2), 32), llvm::FixedVectorType::get(b.getFloatTy(), 32));
  return b.CreateFMul(b.CreateVectorSplat(32, d), q);
}

// q4_0: d (f16) then 16 bytes; element i is the low nibble of byte i, 16 + i the high.
// Both halves come from uniform operations on the 16 bytes (a mask, a shift by 4) and
// one concatenating shuffle: x86 has no per-lane byte shift.
Value* dequant_q4_0(IRBuilder<>& b, Value* block) {
  Value* d = load_f16_as_f32(b, block, 0);
  Value* bytes = load_bytes(b, block, b.getInt64(2), 16);
  Value* low = b.CreateAnd(bytes, b.CreateVectorSplat(16, b.getInt8(0x0f)));
  Value* high = b.CreateLShr(bytes, b.CreateVectorSplat(16, b.getInt8(4)));
  std::vector<int> both(32);
  for (int i = 0; i < 32; ++i) both[i] = i;
  Value* nib = b.CreateShuffleVector(low, high, both);  // low nibbles, then high
  Value* q = b.CreateSIToFP(b.CreateSub(nib, i8v(b, 8)), llvm::FixedVectorType::get(b.getFloatTy(), 32));
  return b.CreateFMul(b.CreateVectorSplat(32, d), q);
}

// q4_k: sub-block j = first / 32 with 6-bit scale sc and min m: x = (d*sc)*q - dmin*m;
// its nibbles are the low (j even) or high (j odd) halves of qs[32 * (j / 2) ...].
Value* dequant_q4_k(IRBuilder<>& b, Value* block, Value* first) {
  Value* j = b.CreateLShr(first, b.getInt64(5));
  Value* j3 = b.CreateAnd(j, b.getInt64(3));
  Value* lo = load_byte(b, block, b.CreateAdd(j3, b.getInt64(4)));        // scales[j & 3]
  Value* hi4 = load_byte(b, block, b.CreateAdd(j3, b.getInt64(8)));       // scales[(j & 3) + 4]
  Value* top = load_byte(b, block, b.CreateAdd(j3, b.getInt64(12)));      // scales[(j & 3) + 8]
  Value* small = b.CreateICmpULT(j, b.getInt64(4));
  Value* sc = b.CreateSelect(small, b.CreateAnd(lo, b.getInt8(63)),
                             b.CreateOr(b.CreateAnd(top, b.getInt8(0x0f)), b.CreateShl(b.CreateLShr(lo, b.getInt8(6)), b.getInt8(4))));
  Value* m = b.CreateSelect(small, b.CreateAnd(hi4, b.getInt8(63)),
                            b.CreateOr(b.CreateLShr(top, b.getInt8(4)), b.CreateShl(b.CreateLShr(hi4, b.getInt8(6)), b.getInt8(4))));
  Value* d1 = b.CreateFMul(load_f16_as_f32(b, block, 0), b.CreateUIToFP(sc, b.getFloatTy()));
  Value* m1 = b.CreateFMul(load_f16_as_f32(b, block, 2), b.CreateUIToFP(m, b.getFloatTy()));
  Value* qs_offset = b.CreateAdd(b.getInt64(16), b.CreateMul(b.CreateLShr(j, b.getInt64(1)), b.getInt64(32)));
  Value* bytes = load_bytes(b, block, qs_offset, 32);
  Value* shift = b.CreateVectorSplat(32, b.CreateTrunc(b.CreateMul(b.CreateAnd(j, b.getInt64(1)), b.getInt64(4)), b.getInt8Ty()));
  Value* nib = b.CreateAnd(b.CreateLShr(bytes, shift), i8v(b, 0x0f));
  Value* q = b.CreateUIToFP(nib, llvm::FixedVectorType::get(b.getFloatTy(), 32));
  return b.CreateFSub(b.CreateFMul(b.CreateVectorSplat(32, d1), q), b.CreateVectorSplat(32, m1));
}

// q6_k: chunk j = first / 32 is quarter c = j % 4 of half h = j / 4: low bits from
// ql[64h + 32(c & 1)] shifted by 4(c >> 1), high bits from qh[32h] shifted by 2c;
// lanes 0..15 use scales[8h + 2c], lanes 16..31 scales[8h + 2c + 1]: x = (d*sc)*(q - 32).
Value* dequant_q6_k(IRBuilder<>& b, Value* block, Value* first) {
  Value* j = b.CreateLShr(first, b.getInt64(5));
  Value* h = b.CreateLShr(j, b.getInt64(2));
  Value* c = b.CreateAnd(j, b.getInt64(3));
  Value* ql_off = b.CreateAdd(b.CreateMul(h, b.getInt64(64)), b.CreateMul(b.CreateAnd(c, b.getInt64(1)), b.getInt64(32)));
  Value* qh_off = b.CreateAdd(b.getInt64(128), b.CreateMul(h, b.getInt64(32)));
  Value* ql_shift = b.CreateTrunc(b.CreateMul(b.CreateLShr(c, b.getInt64(1)), b.getInt64(4)), b.getInt8Ty());
  Value* qh_shift = b.CreateTrunc(b.CreateMul(c, b.getInt64(2)), b.getInt8Ty());
  Value* ql = b.CreateAnd(b.CreateLShr(load_bytes(b, block, ql_off, 32), b.CreateVectorSplat(32, ql_shift)), i8v(b, 0x0f));
  Value* qh = b.CreateAnd(b.CreateLShr(load_bytes(b, block, qh_off, 32), b.CreateVectorSplat(32, qh_shift)), i8v(b, 3));
  Value* q6 = b.CreateSub(b.CreateOr(ql, b.CreateShl(qh, i8v(b, 4))), i8v(b, 32));
  Value* q = b.CreateSIToFP(q6, llvm::FixedVectorType::get(b.getFloatTy(), 32));
  Value* d = load_f16_as_f32(b, block, 208);
  Value* sc_off = b.CreateAdd(b.getInt64(192), b.CreateAdd(b.CreateMul(h, b.getInt64(8)), b.CreateMul(c, b.getInt64(2))));
  Value* s0 = b.CreateFMul(d, b.CreateSIToFP(load_byte(b, block, sc_off), b.getFloatTy()));
  Value* s1 = b.CreateFMul(d, b.CreateSIToFP(load_byte(b, block, b.CreateAdd(sc_off, b.getInt64(1))), b.getFloatTy()));
  Value* scales = b.CreateSelect(
      llvm::ConstantVector::get([&] {
        std::vector<llvm::Constant*> lanes;
        for (int i = 0; i < 32; ++i) lanes.push_back(b.getInt1(i < 16));
        return lanes;
      }()),
      b.CreateVectorSplat(32, s0), b.CreateVectorSplat(32, s1));
  return b.CreateFMul(scales, q);
}

// One element e (i64) of a block, scalar (the formulas of the C helpers, ggml's order).
Value* dequant_one(IRBuilder<>& b, ir::DType dtype, Value* block, Value* e) {
  llvm::Type* f32 = b.getFloatTy();
  auto byte_at = [&](Value* offset) { return load_byte(b, block, offset); };
  auto i64c = [&](int64_t v) { return b.getInt64(static_cast<uint64_t>(v)); };
  switch (dtype) {
    case ir::DType::q8_0:
      return b.CreateFMul(load_f16_as_f32(b, block, 0), b.CreateSIToFP(byte_at(b.CreateAdd(e, i64c(2))), f32));
    case ir::DType::q4_0: {
      Value* byte = byte_at(b.CreateAdd(b.CreateAnd(e, i64c(15)), i64c(2)));
      Value* low = b.CreateICmpULT(e, i64c(16));
      Value* nib = b.CreateSelect(low, b.CreateAnd(byte, b.getInt8(15)), b.CreateLShr(byte, b.getInt8(4)));
      Value* q = b.CreateSub(b.CreateZExt(nib, b.getInt32Ty()), b.getInt32(8));
      return b.CreateFMul(load_f16_as_f32(b, block, 0), b.CreateSIToFP(q, f32));
    }
    case ir::DType::q4_k: {
      Value* j = b.CreateLShr(e, i64c(5));
      Value* j3 = b.CreateAnd(j, i64c(3));
      Value* lo = byte_at(b.CreateAdd(j3, i64c(4)));
      Value* hi4 = byte_at(b.CreateAdd(j3, i64c(8)));
      Value* top = byte_at(b.CreateAdd(j3, i64c(12)));
      Value* small = b.CreateICmpULT(j, i64c(4));
      Value* sc = b.CreateSelect(small, b.CreateAnd(lo, b.getInt8(63)),
                                 b.CreateOr(b.CreateAnd(top, b.getInt8(15)), b.CreateShl(b.CreateLShr(lo, b.getInt8(6)), b.getInt8(4))));
      Value* m = b.CreateSelect(small, b.CreateAnd(hi4, b.getInt8(63)),
                                b.CreateOr(b.CreateLShr(top, b.getInt8(4)), b.CreateShl(b.CreateLShr(hi4, b.getInt8(6)), b.getInt8(4))));
      Value* d1 = b.CreateFMul(load_f16_as_f32(b, block, 0), b.CreateUIToFP(sc, f32));
      Value* m1 = b.CreateFMul(load_f16_as_f32(b, block, 2), b.CreateUIToFP(m, f32));
      Value* at = b.CreateAdd(b.CreateAdd(i64c(16), b.CreateMul(b.CreateLShr(j, i64c(1)), i64c(32))), b.CreateAnd(e, i64c(31)));
      Value* byte = byte_at(at);
      Value* odd = b.CreateICmpNE(b.CreateAnd(j, i64c(1)), i64c(0));
      Value* nib = b.CreateSelect(odd, b.CreateLShr(byte, b.getInt8(4)), b.CreateAnd(byte, b.getInt8(15)));
      return b.CreateFSub(b.CreateFMul(d1, b.CreateUIToFP(nib, f32)), m1);
    }
    case ir::DType::q6_k: {
      Value* h = b.CreateLShr(e, i64c(7));
      Value* c = b.CreateAnd(b.CreateLShr(e, i64c(5)), i64c(3));
      Value* l = b.CreateAnd(e, i64c(31));
      Value* ql_at = b.CreateAdd(b.CreateAdd(b.CreateMul(h, i64c(64)), b.CreateMul(b.CreateAnd(c, i64c(1)), i64c(32))), l);
      Value* ql_shift = b.CreateTrunc(b.CreateMul(b.CreateLShr(c, i64c(1)), i64c(4)), b.getInt8Ty());
      Value* qh_at = b.CreateAdd(b.CreateAdd(i64c(128), b.CreateMul(h, i64c(32))), l);
      Value* qh_shift = b.CreateTrunc(b.CreateMul(c, i64c(2)), b.getInt8Ty());
      Value* low = b.CreateAnd(b.CreateLShr(byte_at(ql_at), ql_shift), b.getInt8(15));
      Value* high = b.CreateAnd(b.CreateLShr(byte_at(qh_at), qh_shift), b.getInt8(3));
      Value* q = b.CreateSub(b.CreateZExt(b.CreateOr(low, b.CreateShl(high, b.getInt8(4))), b.getInt32Ty()), b.getInt32(32));
      Value* sc_at = b.CreateAdd(b.CreateAdd(i64c(192), b.CreateMul(h, i64c(8))),
                                 b.CreateAdd(b.CreateMul(c, i64c(2)), b.CreateLShr(l, i64c(4))));
      Value* d = b.CreateFMul(load_f16_as_f32(b, block, 208), b.CreateSIToFP(byte_at(sc_at), f32));
      return b.CreateFMul(d, b.CreateSIToFP(q, f32));
    }
    default: break;
  }
  MOAT_INTERNAL_ERROR("llvm emitter: dequant of ", ir::dtype_name(dtype));
}

// The integers of B's block (q8_0: its int8; q4_0: its nibbles, 0..15, *not* minus 8)
// as 32 bytes, and B's block size.
Value* b_block_ints(IRBuilder<>& b, ir::DType dtype, Value* block) {
  if (dtype == ir::DType::q8_0) return load_bytes(b, block, b.getInt64(2), 32);
  Value* bytes = load_bytes(b, block, b.getInt64(2), 16);
  Value* low = b.CreateAnd(bytes, b.CreateVectorSplat(16, b.getInt8(0x0f)));
  Value* high = b.CreateLShr(bytes, b.CreateVectorSplat(16, b.getInt8(4)));
  std::vector<int> both(32);
  for (int i = 0; i < 32; ++i) both[i] = i;
  return b.CreateShuffleVector(low, high, both);
}

Value* concat(IRBuilder<>& b, const std::vector<Value*>& parts) {
  std::vector<Value*> level = parts;
  while (level.size() > 1) {  // pairwise: equal widths at every level (blocks is 1, 2, 4 or 8)
    std::vector<Value*> next;
    for (size_t i = 0; i + 1 < level.size(); i += 2) {
      const unsigned n = llvm::cast<llvm::FixedVectorType>(level[i]->getType())->getNumElements();
      std::vector<int> mask(2 * n);
      for (unsigned j = 0; j < 2 * n; ++j) mask[j] = static_cast<int>(j);
      next.push_back(b.CreateShuffleVector(level[i], level[i + 1], mask));
    }
    if (level.size() % 2 == 1) next.push_back(level.back());
    level = std::move(next);
  }
  return level[0];
}

}  // namespace

Value* dot4(IRBuilder<>& b, Value* acc, Value* a, Value* bv, bool vnni) {
  const unsigned n = llvm::cast<llvm::FixedVectorType>(acc->getType())->getNumElements();
  llvm::Type* words = llvm::FixedVectorType::get(b.getInt32Ty(), n);
  llvm::Type* bytes = llvm::FixedVectorType::get(b.getInt8Ty(), 4 * n);
  if (llvm::cast<llvm::FixedVectorType>(bv->getType())->getNumElements() == 4 && n > 1)  // the same 4 bytes per lane
    bv = b.CreateBitCast(b.CreateVectorSplat(n, b.CreateBitCast(bv, b.getInt32Ty())), bytes);
  if (vnni && (n == 4 || n == 8 || n == 16)) {
    const llvm::Intrinsic::ID id = n == 16  ? llvm::Intrinsic::x86_avx512_vpdpbusd_512
                                   : n == 8 ? llvm::Intrinsic::x86_avx512_vpdpbusd_256
                                            : llvm::Intrinsic::x86_avx512_vpdpbusd_128;
    return b.CreateIntrinsic(id, {}, {acc, b.CreateBitCast(a, words), b.CreateBitCast(bv, words)});
  }
  llvm::Type* wide = llvm::FixedVectorType::get(b.getInt32Ty(), 4 * n);
  Value* prod = b.CreateMul(b.CreateZExt(a, wide), b.CreateSExt(bv, wide));
  Value* sum = acc;
  for (unsigned i = 0; i < 4; ++i) {
    std::vector<int> pick(n);
    for (unsigned g = 0; g < n; ++g) pick[g] = static_cast<int>(4 * g + i);
    Value* part = b.CreateShuffleVector(prod, pick);
    if (n == 1) part = b.CreateExtractElement(part, b.getInt64(0));
    sum = b.CreateAdd(sum, part);
  }
  return sum;
}

Value* qscale(IRBuilder<>& b, Value* block) { return load_f16_as_f32(b, block, 0); }

Value* qdot(IRBuilder<>& b, ir::DType b_dtype, Value* a_first, Value* b_first, int blocks, bool vnni) {
  const int64_t a_bytes = ir::dtype_block_bytes(ir::DType::q8_0), b_bytes = ir::dtype_block_bytes(b_dtype);
  std::vector<Value*> aq, bq;
  for (int t = 0; t < blocks; ++t) {
    Value* a_block = byte_ptr(b, a_first, b.getInt64(t * a_bytes));
    Value* b_block = byte_ptr(b, b_first, b.getInt64(t * b_bytes));
    aq.push_back(load_bytes(b, a_block, b.getInt64(2), 32));
    bq.push_back(b_block_ints(b, b_dtype, b_block));
  }
  // u8 x s8 (dot4): B made unsigned (q8_0: + 128 by flipping the sign bit; q4_0: the
  // nibbles), then the offset's products (128 or 8 times A's sums) taken away; two blocks
  // (512 bits, one vpdpbusd) at a time.
  const bool q4 = b_dtype == ir::DType::q4_0;
  std::vector<Value*> parts;
  for (int t = 0; t < blocks; t += 2) {
    const int n = std::min(2, blocks - t);
    Value* ap = concat(b, std::vector<Value*>(aq.begin() + t, aq.begin() + t + n));
    Value* bp = concat(b, std::vector<Value*>(bq.begin() + t, bq.begin() + t + n));
    llvm::Type* bytes = llvm::FixedVectorType::get(b.getInt8Ty(), static_cast<unsigned>(32 * n));
    Value* zero = llvm::Constant::getNullValue(llvm::FixedVectorType::get(b.getInt32Ty(), static_cast<unsigned>(8 * n)));
    Value* bu = q4 ? bp : b.CreateXor(bp, llvm::ConstantInt::get(bytes, 0x80));
    Value* raw = dot4(b, zero, bu, ap, vnni);
    Value* correction = dot4(b, zero, llvm::ConstantInt::get(bytes, q4 ? 8 : 0x80), ap, vnni);
    parts.push_back(b.CreateSub(raw, correction));
  }
  Value* isum = concat(b, parts);
  // lanes 8t .. 8t + 7 take block t's d_a * d_b (the f16 scales gathered as bits and
  // converted together: one vcvtph2ps per operand rather than one per scale)
  const unsigned out_lanes = static_cast<unsigned>(8 * blocks);
  llvm::Type* bits_t = llvm::FixedVectorType::get(b.getInt16Ty(), static_cast<unsigned>(blocks));
  llvm::Type* half_t = llvm::FixedVectorType::get(b.getHalfTy(), static_cast<unsigned>(blocks));
  llvm::Type* st = llvm::FixedVectorType::get(b.getFloatTy(), static_cast<unsigned>(blocks));
  auto gather_scales = [&](Value* first, int64_t stride) {
    Value* v = llvm::UndefValue::get(bits_t);
    for (int t = 0; t < blocks; ++t) {
      Value* p = b.CreateBitCast(byte_ptr(b, first, b.getInt64(t * stride)), pointer_to(b.getInt16Ty(), first));
      v = b.CreateInsertElement(v, b.CreateAlignedLoad(b.getInt16Ty(), p, llvm::Align(1)), b.getInt64(t));
    }
    return b.CreateFPExt(b.CreateBitCast(v, half_t), st);
  };
  Value* packed = b.CreateFMul(gather_scales(a_first, a_bytes), gather_scales(b_first, b_bytes));
  std::vector<int> spread(out_lanes);
  for (unsigned l = 0; l < out_lanes; ++l) spread[l] = static_cast<int>(l / 8);
  Value* scale = b.CreateShuffleVector(packed, spread);
  return b.CreateFMul(b.CreateSIToFP(isum, llvm::FixedVectorType::get(b.getFloatTy(), out_lanes)), scale);
}

void quantize_q8_0(IRBuilder<>& b, Value* block, const std::vector<Value*>& x, const std::function<Value*(Value*)>& round) {
  // amax = max |x| (a NaN is skipped by fcmp ogt: the block's bytes are then unspecified)
  Value* amax = llvm::ConstantFP::get(b.getFloatTy(), 0.0);
  std::vector<Value*> ax;
  for (Value* v : x) {
    Value* bits = b.CreateAnd(b.CreateBitCast(v, b.getInt32Ty()), b.getInt32(0x7fffffff));
    ax.push_back(b.CreateBitCast(bits, b.getFloatTy()));
    amax = b.CreateSelect(b.CreateFCmpOGT(ax.back(), amax), ax.back(), amax);
  }
  Value* zero = llvm::ConstantFP::get(b.getFloatTy(), 0.0);
  Value* d = b.CreateFDiv(amax, llvm::ConstantFP::get(b.getFloatTy(), 127.0));
  Value* id = b.CreateSelect(b.CreateFCmpUNE(d, zero), b.CreateFDiv(llvm::ConstantFP::get(b.getFloatTy(), 1.0), d), zero);
  Value* dp = b.CreateBitCast(block, pointer_to(b.getHalfTy(), block));
  b.CreateAlignedStore(b.CreateFPTrunc(d, b.getHalfTy()), dp, llvm::Align(1));
  for (size_t i = 0; i < x.size(); ++i) {
    Value* v = round(b.CreateFMul(x[i], id));
    // |v| <= 127 for finite x; NaN / inf (from a NaN / inf input) become 0, never poison
    Value* ok = b.CreateFCmpOLE(b.CreateBitCast(b.CreateAnd(b.CreateBitCast(v, b.getInt32Ty()), b.getInt32(0x7fffffff)),
                                                b.getFloatTy()),
                                llvm::ConstantFP::get(b.getFloatTy(), 127.0));
    Value* q = b.CreateFPToSI(b.CreateSelect(ok, v, zero), b.getInt8Ty());
    b.CreateAlignedStore(q, byte_ptr(b, block, b.getInt64(2 + static_cast<int64_t>(i))), llvm::Align(1));
  }
}

Value* dequant1(IRBuilder<>& b, ir::DType dtype, Value* block, Value* element) { return dequant_one(b, dtype, block, element); }

Value* dequant32(IRBuilder<>& b, ir::DType dtype, Value* block, Value* first) {
  switch (dtype) {
    case ir::DType::q8_0: return dequant_q8_0(b, block);
    case ir::DType::q4_0: return dequant_q4_0(b, block);
    case ir::DType::q4_k: return dequant_q4_k(b, block, first);
    case ir::DType::q6_k: return dequant_q6_k(b, block, first);
    default: break;
  }
  MOAT_INTERNAL_ERROR("llvm emitter: dequant of ", ir::dtype_name(dtype));
}

}  // namespace moat::jit::llvm_emit
