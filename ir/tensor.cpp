#include "ir/tensor.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "ir/quant.h"
#include "ir/shape.h"
#include "support/checked.h"
#include "support/error.h"
#include "support/half.h"

namespace moat::ir {

namespace {

template <class T>
void store(uint8_t* dst, T value) {
  std::memcpy(dst, &value, sizeof(T));
}
template <class T>
T load(const uint8_t* src) {
  T value;
  std::memcpy(&value, src, sizeof(T));
  return value;
}

// Saturating range of an integer dtype.
void int_range(DType dtype, int64_t* lo, int64_t* hi) {
  switch (dtype) {
    case DType::i64: *lo = INT64_MIN; *hi = INT64_MAX; return;
    case DType::i32: *lo = INT32_MIN; *hi = INT32_MAX; return;
    case DType::i8: *lo = INT8_MIN; *hi = INT8_MAX; return;
    case DType::u8: *lo = 0; *hi = UINT8_MAX; return;
    default: break;
  }
  throw InternalError(cat("int_range of ", dtype_name(dtype)));
}

std::string shape_text(const std::vector<int64_t>& shape) { return "[" + join(shape, ", ") + "]"; }

}  // namespace

int64_t tensor_bytes(DType dtype, const std::vector<int64_t>& shape) {
  int64_t rows = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) user_error("negative dimension in shape ", shape_text(shape));
    if (i + 1 < shape.size() && !checked_mul(rows, shape[i], &rows))
      user_error("shape ", shape_text(shape), " is too large");
  }
  if (shape.empty()) {
    if (is_quantised(dtype)) user_error("a ", dtype_name(dtype), " tensor needs at least one dimension");
    return dtype_block_bytes(dtype);
  }
  auto row = dtype_row_bytes(dtype, shape.back());
  if (!row)
    user_error("a ", dtype_name(dtype), " row of ", shape.back(), " elements is not a whole number of ",
               dtype_block_elems(dtype), "-element blocks");
  int64_t bytes = 0;
  if (!checked_mul(rows, *row, &bytes)) user_error("shape ", shape_text(shape), " is too large");
  return bytes;
}

int64_t saturating_to_i64(double value) {
  if (std::isnan(value)) return 0;
  if (value >= 9223372036854775808.0) return INT64_MAX;  // 2^63
  if (value < -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(value);  // truncates toward zero
}

void decode_f32(DType dtype, const uint8_t* src, float* dst, int64_t count) {
  if (count == 0) return;  // src / dst may be null
  switch (dtype) {
    case DType::f32: std::memcpy(dst, src, static_cast<size_t>(count) * 4); return;
    case DType::f16: for (int64_t i = 0; i < count; ++i) dst[i] = f16_to_f32(load<uint16_t>(src + 2 * i)); return;
    case DType::bf16: for (int64_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(load<uint16_t>(src + 2 * i)); return;
    case DType::f8_e4m3: for (int64_t i = 0; i < count; ++i) dst[i] = fp8_e4m3_to_f32(src[i]); return;
    case DType::i64: for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(load<int64_t>(src + 8 * i)); return;
    case DType::i32: for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(load<int32_t>(src + 4 * i)); return;
    case DType::i8: for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(load<int8_t>(src + i)); return;
    case DType::u8: for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(src[i]); return;
    case DType::boolean: for (int64_t i = 0; i < count; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f; return;
    default:
      if (is_quantised(dtype)) {
        dequantize_row(dtype, src, dst, count);
        return;
      }
      break;
  }
  throw InternalError("decode_f32: unknown dtype");
}

void encode_f32(DType dtype, float value, uint8_t* dst) {
  switch (dtype) {
    case DType::f32: store(dst, value); return;
    case DType::f16: store(dst, f32_to_f16(value)); return;
    case DType::bf16: store(dst, f32_to_bf16(value)); return;
    case DType::f8_e4m3: *dst = f32_to_fp8_e4m3(value); return;
    case DType::boolean: *dst = value != 0.0f ? 1 : 0; return;
    case DType::i64: case DType::i32: case DType::i8: case DType::u8: {
      int64_t lo = 0, hi = 0;
      int_range(dtype, &lo, &hi);
      int64_t v = saturating_to_i64(value);
      encode_i64(dtype, v < lo ? lo : v > hi ? hi : v, dst);
      return;
    }
    default: break;
  }
  throw InternalError(cat("encode_f32 to ", dtype_name(dtype)));
}

void encode_i64(DType dtype, int64_t value, uint8_t* dst) {
  switch (dtype) {
    case DType::i64: store(dst, value); return;
    case DType::i32: store(dst, static_cast<int32_t>(value)); return;  // wraps (C++20)
    case DType::i8: store(dst, static_cast<int8_t>(value)); return;
    case DType::u8: store(dst, static_cast<uint8_t>(value)); return;
    case DType::boolean: *dst = value != 0 ? 1 : 0; return;
    case DType::f32: case DType::f16: case DType::bf16: case DType::f8_e4m3:
      encode_f32(dtype, static_cast<float>(value), dst);
      return;
    default: break;
  }
  throw InternalError(cat("encode_i64 to ", dtype_name(dtype)));
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;  // bounded: tensor_bytes checked it at construction
  return n;
}

HostTensor HostTensor::from_bytes(DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
  int64_t expected = tensor_bytes(dtype, shape);
  if (static_cast<int64_t>(bytes.size()) != expected)
    user_error("a ", dtype_name(dtype), shape_text(shape), " tensor takes ", expected, " bytes, got ", bytes.size());
  HostTensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  t.bytes_ = std::span<const uint8_t>(owned->data(), owned->size());
  t.owned_ = std::move(owned);
  return t;
}

HostTensor HostTensor::borrowed(DType dtype, std::vector<int64_t> shape, std::span<const uint8_t> bytes) {
  int64_t expected = tensor_bytes(dtype, shape);
  if (static_cast<int64_t>(bytes.size()) != expected)
    user_error("a ", dtype_name(dtype), shape_text(shape), " tensor takes ", expected, " bytes, got ", bytes.size());
  HostTensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.bytes_ = bytes;
  return t;
}

HostTensor HostTensor::zeros(DType dtype, std::vector<int64_t> shape) {
  std::vector<uint8_t> bytes(static_cast<size_t>(tensor_bytes(dtype, shape)), 0);
  return from_bytes(dtype, std::move(shape), std::move(bytes));
}

HostTensor HostTensor::from_f32(std::vector<int64_t> shape, std::span<const float> values, DType dtype) {
  std::vector<uint8_t> bytes(static_cast<size_t>(tensor_bytes(dtype, shape)));
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (static_cast<int64_t>(values.size()) != n)
    user_error("from_f32: ", values.size(), " values for shape ", shape_text(shape));
  if (is_quantised(dtype)) {
    if (dtype != DType::q8_0 && dtype != DType::q4_0 && dtype != DType::q8_k)
      user_error("cannot quantise to ", dtype_name(dtype), " (only q8_0, q4_0 and q8_k); build it from raw blocks");
    int64_t row = shape.back();
    int64_t row_bytes = *dtype_row_bytes(dtype, row);
    for (int64_t r = 0; row > 0 && r < n / row; ++r) {
      uint8_t* dst = bytes.data() + r * row_bytes;
      if (dtype == DType::q8_0) quantize_row_q8_0(values.data() + r * row, dst, row);
      else if (dtype == DType::q8_k) quantize_row_q8_k(values.data() + r * row, dst, row);
      else quantize_row_q4_0(values.data() + r * row, dst, row);
    }
  } else {
    int64_t size = dtype_block_bytes(dtype);
    for (int64_t i = 0; i < n; ++i) encode_f32(dtype, values[static_cast<size_t>(i)], bytes.data() + i * size);
  }
  return from_bytes(dtype, std::move(shape), std::move(bytes));
}

HostTensor HostTensor::from_i64(std::vector<int64_t> shape, std::span<const int64_t> values, DType dtype) {
  if (is_quantised(dtype)) user_error("from_i64 cannot make a ", dtype_name(dtype), " tensor");
  std::vector<uint8_t> bytes(static_cast<size_t>(tensor_bytes(dtype, shape)));
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (static_cast<int64_t>(values.size()) != n)
    user_error("from_i64: ", values.size(), " values for shape ", shape_text(shape));
  int64_t size = dtype_block_bytes(dtype);
  for (int64_t i = 0; i < n; ++i) encode_i64(dtype, values[static_cast<size_t>(i)], bytes.data() + i * size);
  return from_bytes(dtype, std::move(shape), std::move(bytes));
}

HostTensor HostTensor::reshaped(std::vector<int64_t> shape) const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n != numel() || tensor_bytes(dtype_, shape) != static_cast<int64_t>(bytes_.size()))
    user_error("cannot reshape ", dtype_name(dtype_), shape_text(shape_), " to ", shape_text(shape));
  HostTensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

std::vector<float> HostTensor::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  if (is_quantised(dtype_)) {
    int64_t row = shape_.back();
    int64_t row_bytes = *dtype_row_bytes(dtype_, row);
    for (int64_t r = 0; row > 0 && r < numel() / row; ++r)
      decode_f32(dtype_, bytes_.data() + r * row_bytes, out.data() + r * row, row);
  } else {
    decode_f32(dtype_, bytes_.data(), out.data(), numel());
  }
  return out;
}

std::vector<int64_t> HostTensor::to_i64() const {
  if (!is_int(dtype_) && dtype_ != DType::boolean)
    user_error("to_i64 of a ", dtype_name(dtype_), " tensor: only integer and bool tensors decode to i64");
  std::vector<int64_t> out(static_cast<size_t>(numel()));
  const uint8_t* p = bytes_.data();
  for (size_t i = 0; i < out.size(); ++i) {
    switch (dtype_) {
      case DType::i64: out[i] = load<int64_t>(p + 8 * i); break;
      case DType::i32: out[i] = load<int32_t>(p + 4 * i); break;
      case DType::i8: out[i] = load<int8_t>(p + i); break;
      case DType::u8: out[i] = p[i]; break;
      case DType::boolean: out[i] = p[i] != 0 ? 1 : 0; break;
      default: throw InternalError("to_i64: unhandled dtype");
    }
  }
  return out;
}

}  // namespace moat::ir
