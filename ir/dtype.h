// Element types of the Tensor IR, including the block-quantised weight formats.
//
// A quantised type stores a row of elements in blocks: `block_elems` elements take
// `block_bytes` bytes (GGUF / ggml layouts; see ir/quant.h for the block structs).
// A plain type is a "block" of one element. Quantised tensors are only used as
// weights: the last dimension is the blocked one and must be a multiple of
// block_elems.
//
// f8_e4m3 is DeepSeek-V3's native weight type (OCP E4M3FN: no infinities, 0x7f/0xff
// are NaN); its 128x128 block scales (`weight_scale_inv`, f32) are a separate tensor
// given to matmul as its third operand.
//
// q8_k is not a weight type: it is what activations are quantised to for K- and
// IQ-type weights (ggml's block_q8_K: f32 d, 256 int8, 16 int16 sums of 16).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::ir {

enum class DTypeKind : uint8_t { Float, Int, Bool, Quantised };

// X(id, text name, elements per block, bytes per block, kind)
#define MOAT_IR_DTYPES(X)                        \
  X(f32, "f32", 1, 4, Float)                     \
  X(f16, "f16", 1, 2, Float)                     \
  X(bf16, "bf16", 1, 2, Float)                   \
  X(f8_e4m3, "f8_e4m3", 1, 1, Float)             \
  X(i64, "i64", 1, 8, Int)                       \
  X(i32, "i32", 1, 4, Int)                       \
  X(i8, "i8", 1, 1, Int)                         \
  X(u8, "u8", 1, 1, Int)                         \
  X(boolean, "bool", 1, 1, Bool)                 \
  X(q8_0, "q8_0", 32, 34, Quantised)             \
  X(q4_0, "q4_0", 32, 18, Quantised)             \
  X(q4_k, "q4_k", 256, 144, Quantised)           \
  X(q6_k, "q6_k", 256, 210, Quantised)           \
  X(q4_1, "q4_1", 32, 20, Quantised)             \
  X(q5_0, "q5_0", 32, 22, Quantised)             \
  X(q5_1, "q5_1", 32, 24, Quantised)             \
  X(q2_k, "q2_k", 256, 84, Quantised)            \
  X(q3_k, "q3_k", 256, 110, Quantised)           \
  X(q5_k, "q5_k", 256, 176, Quantised)           \
  X(q8_k, "q8_k", 256, 292, Quantised)           \
  X(iq4_nl, "iq4_nl", 32, 18, Quantised)         \
  X(iq4_xs, "iq4_xs", 256, 136, Quantised)       \
  X(mxfp4, "mxfp4", 32, 17, Quantised)           \
  X(iq3_xxs, "iq3_xxs", 256, 98, Quantised)      \
  X(iq3_s, "iq3_s", 256, 110, Quantised)         \
  X(iq2_xxs, "iq2_xxs", 256, 66, Quantised)      \
  X(iq2_xs, "iq2_xs", 256, 74, Quantised)        \
  X(iq2_s, "iq2_s", 256, 82, Quantised)          \
  X(iq1_s, "iq1_s", 256, 50, Quantised)          \
  X(iq1_m, "iq1_m", 256, 56, Quantised)

enum class DType : uint8_t {
#define MOAT_X(id, name, elems, bytes, kind) id,
  MOAT_IR_DTYPES(MOAT_X)
#undef MOAT_X
};

// Every dtype, in the X-macro's order.
inline constexpr DType kAllDTypes[] = {
#define MOAT_X(id, name, elems, bytes, kind) DType::id,
    MOAT_IR_DTYPES(MOAT_X)
#undef MOAT_X
};

std::string_view dtype_name(DType type);
std::optional<DType> parse_dtype(std::string_view name);
DTypeKind dtype_kind(DType type);
int64_t dtype_block_elems(DType type);
int64_t dtype_block_bytes(DType type);

inline bool is_float(DType t) { return dtype_kind(t) == DTypeKind::Float; }
inline bool is_int(DType t) { return dtype_kind(t) == DTypeKind::Int; }
inline bool is_quantised(DType t) { return dtype_kind(t) == DTypeKind::Quantised; }

// Bytes of a row of `elems` elements, or nullopt when `elems` is not a multiple of the
// block size or the product overflows.
std::optional<int64_t> dtype_row_bytes(DType type, int64_t elems);

}  // namespace moat::ir
