// Conversions, arithmetic and dot products for the LLVM emitter (f16 natively; bf16 and
// f8 arrive written out by legalize_numerics).
#include "jit/emit_llvm_numeric.h"

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsX86.h>

#include <bit>
#include <cmath>

#include "support/error.h"

namespace moat::jit::llvm_emit {

namespace {

using llvm::IRBuilder;
using llvm::Value;

Value* splat(IRBuilder<>& b, Value* scalar, int lanes) {
  return lanes == 1 ? scalar : b.CreateVectorSplat(static_cast<unsigned>(lanes), scalar);
}
Value* f32c(IRBuilder<>& b, float v, int lanes) {
  return splat(b, llvm::ConstantFP::get(b.getFloatTy(), static_cast<double>(v)), lanes);
}

llvm::Type* with_lanes(llvm::Type* scalar, int lanes) {
  return lanes == 1 ? scalar : llvm::FixedVectorType::get(scalar, static_cast<unsigned>(lanes));
}

// Any scalar type to f32 (the hub of every conversion between non-f32 types).
Value* to_f32(IRBuilder<>& b, Value* v, Scalar s, int lanes) {
  llvm::Type* f32 = with_lanes(b.getFloatTy(), lanes);
  switch (s) {
    case Scalar::f32: return v;
    case Scalar::f16: return b.CreateFPExt(v, f32);
    case Scalar::i64: case Scalar::i32: case Scalar::i8: return b.CreateSIToFP(v, f32);
    case Scalar::u8: case Scalar::i1: return b.CreateUIToFP(v, f32);
    case Scalar::bf16: case Scalar::f8: case Scalar::f64: break;  // written out by legalize_numerics / convert
  }
  MOAT_INTERNAL_ERROR("llvm emitter: no conversion from ", scalar_name(s));
}

Value* from_f32(IRBuilder<>& b, Value* v, Scalar s, int lanes) {
  llvm::LLVMContext& ctx = b.getContext();
  switch (s) {
    case Scalar::f32: return v;
    case Scalar::f16: return b.CreateFPTrunc(v, with_lanes(b.getHalfTy(), lanes));
    case Scalar::bf16: case Scalar::f8: MOAT_INTERNAL_ERROR("llvm emitter: a cast to ", scalar_name(s), " (legalize_numerics writes it out)");
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
    case Scalar::f64: return llvm::Type::getDoubleTy(ctx);
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
  if (from.scalar == Scalar::f64 || to.scalar == Scalar::f64) {  // the math rules' intermediates
    llvm::Type* t = value_type(b.getContext(), to);
    if (from.scalar == Scalar::f32) return b.CreateFPExt(v, t);
    if (to.scalar == Scalar::f32) return b.CreateFPTrunc(v, t);
    if (from_int) return is_signed(from.scalar) ? b.CreateSIToFP(v, t) : b.CreateUIToFP(v, t);
    if (to_int) return b.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {t, v->getType()}, {v});  // NaN -> 0, saturated
    MOAT_INTERNAL_ERROR("llvm emitter: no conversion from f64 to ", scalar_name(to.scalar));
  }
  return from_f32(b, to_f32(b, v, from.scalar, lanes), to.scalar, lanes);
}

Value* reinterpret(IRBuilder<>& b, Value* v, Type from, Type to) {
  llvm::LLVMContext& ctx = b.getContext();
  const int lanes = to.lanes;
  if (from.scalar == Scalar::f32 || to.scalar == Scalar::f32 || from.scalar == Scalar::f64 || to.scalar == Scalar::f64)
    return b.CreateBitCast(v, value_type(ctx, to));
  if (to.scalar == Scalar::i32) {  // a narrow float's bits, zero-extended
    if (from.scalar == Scalar::f16) v = b.CreateBitCast(v, with_lanes(b.getInt16Ty(), lanes));
    return b.CreateZExt(v, value_type(ctx, to));
  }
  const bool f16 = to.scalar == Scalar::f16;
  Value* low = b.CreateTrunc(v, with_lanes(f16 ? b.getInt16Ty() : scalar_type(ctx, to.scalar), lanes));
  return f16 ? b.CreateBitCast(low, value_type(ctx, to)) : low;
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
    case BinaryOp::mulhi: {
      llvm::Type* wide = x->getType()->getWithNewBitWidth(64);
      Value* product = b.CreateMul(b.CreateZExt(x, wide), b.CreateZExt(y, wide));
      return b.CreateTrunc(b.CreateLShr(product, llvm::ConstantInt::get(wide, 32)), x->getType());
    }
  }
  MOAT_INTERNAL_ERROR("llvm emitter: unknown binary op");
}

Value* byte_lookup(IRBuilder<>& b, const std::vector<int64_t>& table, Value* index) {
  MOAT_INTERNAL_CHECK(table.size() <= 16, "byte_lookup: a table of ", table.size(), " bytes");
  const unsigned n = llvm::cast<llvm::FixedVectorType>(index->getType())->getNumElements();
  MOAT_INTERNAL_CHECK(n % 16 == 0, "byte_lookup: ", n, " lanes");
  std::vector<llvm::Constant*> bytes;
  for (size_t i = 0; i < 16; ++i) bytes.push_back(b.getInt8(i < table.size() ? static_cast<uint8_t>(table[i]) : 0));
  Value* table16 = llvm::ConstantVector::get(bytes);
  Value* indices = b.CreateTrunc(index, llvm::FixedVectorType::get(b.getInt8Ty(), n));  // below 16: pshufb's bit 7 clear
  std::vector<Value*> parts;
  for (unsigned c = 0; c < n / 16; ++c) {
    std::vector<int> pick(16);
    for (int i = 0; i < 16; ++i) pick[static_cast<size_t>(i)] = static_cast<int>(16 * c) + i;
    Value* chunk = n == 16 ? indices : b.CreateShuffleVector(indices, pick);
    parts.push_back(b.CreateIntrinsic(llvm::Intrinsic::x86_ssse3_pshuf_b_128, {}, {table16, chunk}));
  }
  while (parts.size() > 1) {  // concatenate pairs: 16 -> 32 -> 64 lanes
    std::vector<Value*> joined;
    for (size_t i = 0; i < parts.size(); i += 2) {
      const unsigned half = llvm::cast<llvm::FixedVectorType>(parts[i]->getType())->getNumElements();
      std::vector<int> both(2 * half);
      for (unsigned j = 0; j < 2 * half; ++j) both[j] = static_cast<int>(j);
      joined.push_back(b.CreateShuffleVector(parts[i], parts[i + 1], both));
    }
    parts = std::move(joined);
  }
  return parts[0];
}

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

std::vector<Value*> joint_horizontal(IRBuilder<>& b, const std::vector<Value*>& vectors, int lanes,
                                     const std::function<Value*(Value*, Value*)>& combine) {
  MOAT_INTERNAL_CHECK(lanes >= 1 && std::has_single_bit(static_cast<unsigned>(lanes)),
                      "joint_horizontal: ", lanes, " lanes, not a power of two");
  std::vector<Value*> results;
  for (size_t at = 0; at < vectors.size();) {
    // A group of a power of two vectors, at most `lanes`: each holds `items` reductions
    // in progress, `len` consecutive lanes each (items x len = lanes until the end).
    const size_t group = std::min(std::bit_floor(vectors.size() - at), static_cast<size_t>(lanes));
    std::vector<Value*> level(vectors.begin() + static_cast<std::ptrdiff_t>(at),
                              vectors.begin() + static_cast<std::ptrdiff_t>(at + group));
    int items = 1, len = lanes;
    // low / high halves of every item of `parts` vectors (lanes of vector p from p x lanes)
    auto halves = [&](int parts, int half) {
      std::vector<int> lo, hi;
      for (int p = 0; p < parts; ++p)
        for (int item = 0; item < items; ++item)
          for (int t = 0; t < half; ++t) {
            lo.push_back(p * lanes + item * len + t);
            hi.push_back(p * lanes + item * len + half + t);
          }
      return std::pair{lo, hi};
    };
    while (level.size() > 1) {  // two vectors' items halved into one vector
      std::vector<Value*> next;
      const auto [lo, hi] = halves(2, len / 2);
      for (size_t i = 0; i < level.size(); i += 2)
        next.push_back(combine(b.CreateShuffleVector(level[i], level[i + 1], lo),
                               b.CreateShuffleVector(level[i], level[i + 1], hi)));
      level = std::move(next);
      items *= 2;
      len /= 2;
    }
    Value* v = level[0];
    while (len > 1) {  // the items halved within the vector
      const auto [lo, hi] = halves(1, len / 2);
      v = combine(b.CreateShuffleVector(v, lo), b.CreateShuffleVector(v, hi));
      len /= 2;
    }
    for (int item = 0; item < items; ++item)
      results.push_back(v->getType()->isVectorTy() ? b.CreateExtractElement(v, static_cast<uint64_t>(item)) : v);
    at += group;
  }
  return results;
}

}  // namespace moat::jit::llvm_emit
