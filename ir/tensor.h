// HostTensor: a tensor in host memory, the values the reference interpreter reads and
// writes. Storage is row-major and contiguous in the dtype's own encoding: f16 / bf16
// bits, fp8 bytes, integers in their width (little-endian host), bool as one byte 0/1,
// quantised types as blocks along the last dimension (ggml layouts, ir/quant.h).
//
// The bytes are either owned (shared, immutable: copying a HostTensor is cheap) or
// borrowed from memory the caller keeps alive (a weight in an mmap'd model file is
// never copied).
//
// Encoding rules (from_f32 / from_i64; the interpreter's `cast` is decode + encode):
//   float -> f16 / bf16 / f8_e4m3   rounded by support/half.h (nearest even)
//   float -> int                    truncated toward zero, saturated to the type's
//                                   range; NaN -> 0
//   int   -> int                    two's-complement wrap-around (C++20 conversion)
//   int   -> float                  nearest float
//   anything -> bool                value != 0 (NaN -> true); bool decodes as 0 / 1
//   float -> q8_0 / q4_0            quantised row by row (quantize_row_*)
//   float -> q4_k / q6_k            not supported (UserError): build them from raw blocks
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "ir/dtype.h"

namespace moat::ir {

class HostTensor {
 public:
  HostTensor() = default;  // an empty f32[0]; use the factories

  // All-zero bytes (0.0 for every float and quantised type).
  static HostTensor zeros(DType dtype, std::vector<int64_t> shape);
  // Encodes `values` (numel of them, row-major) into `dtype`; see the rules above.
  static HostTensor from_f32(std::vector<int64_t> shape, std::span<const float> values, DType dtype = DType::f32);
  static HostTensor from_i64(std::vector<int64_t> shape, std::span<const int64_t> values, DType dtype = DType::i64);
  // Takes raw bytes already in the dtype's encoding (e.g. hand-made q4_k blocks).
  static HostTensor from_bytes(DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
  // Borrows `bytes` (not copied; the caller keeps them alive as long as any copy of
  // this tensor). UserError when the byte count does not match dtype and shape.
  static HostTensor borrowed(DType dtype, std::vector<int64_t> shape, std::span<const uint8_t> bytes);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;
  std::span<const uint8_t> bytes() const { return bytes_; }
  bool is_borrowed() const { return owned_ == nullptr && !bytes_.empty(); }

  // The same bytes under another shape of the same element count (a quantised tensor
  // keeps its last dimension). Shares storage.
  HostTensor reshaped(std::vector<int64_t> shape) const;

  // Decodes every element to f32 (dequantises quantised rows; ints convert, bool 0/1).
  std::vector<float> to_f32() const;
  // Decodes an integer or bool tensor to i64. UserError for float / quantised tensors.
  std::vector<int64_t> to_i64() const;

 private:
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_{0};
  std::shared_ptr<const std::vector<uint8_t>> owned_;  // null when borrowed
  std::span<const uint8_t> bytes_;
};

// Bytes of a row-major tensor of `dtype` and `shape`: UserError when a dimension is
// negative, a quantised shape's last dimension is not a whole number of blocks (or it
// has no dimensions), or the size overflows.
int64_t tensor_bytes(DType dtype, const std::vector<int64_t>& shape);

// Element-level conversions shared with the interpreter (the rules above).
// Decodes `count` elements of `dtype` starting at `src` (for a quantised dtype, `count`
// is a multiple of its block size and `src` points at a block).
void decode_f32(DType dtype, const uint8_t* src, float* dst, int64_t count);
// Encodes one value; `dst` has room for one element of `dtype` (not quantised).
void encode_f32(DType dtype, float value, uint8_t* dst);
void encode_i64(DType dtype, int64_t value, uint8_t* dst);
// A double (a constant's value) converted to i64 by the float -> int rule.
int64_t saturating_to_i64(double value);

}  // namespace moat::ir
