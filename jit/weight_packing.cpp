#include "jit/weight_packing.h"

#include <cstring>

#include "ir/quant.h"
#include "ir/quant_iq4.h"
#include "ir/quant_legacy_k_blocks.h"
#include "support/error.h"

namespace moat::jit {

namespace {

// q5_0's fifth bits (the u32 qh, bit e for element e) as the layout's 4 bytes: bit q of
// byte i is bit 4q + i of qh.
uint32_t fifth_bits_by_quad(uint32_t qh) {
  uint32_t out = 0;
  for (int q = 0; q < 8; ++q)
    for (int i = 0; i < 4; ++i) out |= ((qh >> (4 * q + i)) & 1u) << (8 * i + q);
  return out;
}

constexpr std::string_view kQuads = "#quads16", kScales = "#scales16", kTiles = "#tiles16";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

int64_t rows_of(const std::vector<int64_t>& shape) {
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  return rows;
}

// Row c of tile-super-block tb of a super-block weight into the layout (weight_packing.h).
void pack_super_block(ir::DType dtype, const uint8_t* block, int64_t tb, int64_t c, PackedWeight& out) {
  uint8_t* quads = out.quads.data() + tb * packed_block_bytes(dtype);
  uint16_t* scales = out.scales.data() + tb * packed_block_scales(dtype);
  auto put_vectors = [&](const uint8_t* bytes, int64_t vectors, int64_t at) {
    for (int64_t v = 0; v < vectors; ++v) std::memcpy(quads + at + v * 64 + c * 4, bytes + 4 * v, 4);
  };
  if (dtype == ir::DType::q4_k) {
    ir::BlockQ4_K b;
    std::memcpy(&b, block, sizeof b);
    put_vectors(b.qs, 32, 0);
    for (int s = 0; s < 8; ++s) ir::q4_k_scale_min(b.scales, s, &quads[2048 + 16 * s + c], &quads[2176 + 16 * s + c]);
    scales[c] = b.d;
    scales[16 + c] = b.dmin;
  } else if (dtype == ir::DType::q2_k) {
    ir::BlockQ2_K b;
    std::memcpy(&b, block, sizeof b);
    put_vectors(b.qs, 16, 0);
    for (int s = 0; s < 16; ++s) quads[1024 + 16 * s + c] = b.scales[s];
    scales[c] = b.d;
    scales[16 + c] = b.dmin;
  } else if (dtype == ir::DType::q3_k) {
    ir::BlockQ3_K b;
    std::memcpy(&b, block, sizeof b);
    put_vectors(b.qs, 16, 0);
    put_vectors(b.hmask, 8, 1024);
    for (int s = 0; s < 16; ++s) quads[1536 + 16 * s + c] = static_cast<uint8_t>(ir::q3_k_scale(b.scales, s) - 32);
    scales[c] = b.d;
  } else if (dtype == ir::DType::iq4_xs) {
    ir::BlockIQ4_XS b;
    std::memcpy(&b, block, sizeof b);
    put_vectors(b.qs, 32, 0);
    for (int s = 0; s < 8; ++s) quads[2048 + 16 * s + c] = static_cast<uint8_t>(ir::iq4_xs_scale(b, s) - 32);
    scales[c] = b.d;
  } else if (dtype == ir::DType::q5_k) {
    ir::BlockQ5_K b;
    std::memcpy(&b, block, sizeof b);
    put_vectors(b.qs, 32, 0);
    put_vectors(b.qh, 8, 2048);
    for (int s = 0; s < 8; ++s) ir::q4_k_scale_min(b.scales, s, &quads[2560 + 16 * s + c], &quads[2688 + 16 * s + c]);
    scales[c] = b.d;
    scales[16 + c] = b.dmin;
  } else {
    ir::BlockQ6_K b;
    std::memcpy(&b, block, sizeof b);
    uint8_t values[256];  // ggml's dequantize_row_q6_K order: 128 elements per half
    for (int half = 0; half < 2; ++half)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* ql = b.ql + 64 * half;
        const uint8_t h = b.qh[32 * half + l];
        uint8_t* y = values + 128 * half;
        y[l] = static_cast<uint8_t>((ql[l] & 15) | ((h & 3) << 4));
        y[l + 32] = static_cast<uint8_t>((ql[l + 32] & 15) | (((h >> 2) & 3) << 4));
        y[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((h >> 4) & 3) << 4));
        y[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4));
      }
    put_vectors(values, 64, 0);
    for (int s = 0; s < 16; ++s) quads[4096 + 16 * s + c] = static_cast<uint8_t>(b.scales[s]);
    scales[c] = b.d;
  }
}

}  // namespace

std::string packed_quads_name(std::string_view name) { return std::string(name) + std::string(kQuads); }
std::string packed_scales_name(std::string_view name) { return std::string(name) + std::string(kScales); }

std::string packed_tiles_name(std::string_view name) { return std::string(name) + std::string(kTiles); }

std::string packed_weight_of(std::string_view buffer_name) {
  for (std::string_view suffix : {kQuads, kScales, kTiles})
    if (ends_with(buffer_name, suffix)) return std::string(buffer_name.substr(0, buffer_name.size() - suffix.size()));
  return {};
}

bool packed_super_blocks(ir::DType dtype) {
  return dtype == ir::DType::q2_k || dtype == ir::DType::q3_k || dtype == ir::DType::q4_k || dtype == ir::DType::q5_k ||
         dtype == ir::DType::q6_k || dtype == ir::DType::iq4_xs;
}

bool packed_legacy_blocks(ir::DType dtype) {
  return dtype == ir::DType::q8_0 || dtype == ir::DType::q4_0 || dtype == ir::DType::q5_0 || dtype == ir::DType::q4_1 ||
         dtype == ir::DType::q5_1 || dtype == ir::DType::iq4_nl || dtype == ir::DType::mxfp4;
}

bool packed_with_mins(ir::DType dtype) { return dtype == ir::DType::q4_1 || dtype == ir::DType::q5_1; }

bool packable(ir::DType dtype, const std::vector<int64_t>& shape) {
  if ((!packed_legacy_blocks(dtype) && !packed_super_blocks(dtype)) || shape.size() < 2) return false;
  const int64_t rows = rows_of(shape), block = ir::dtype_block_elems(dtype);
  return rows > 0 && rows % kPackRows == 0 && shape.back() % block == 0 && shape.back() > 0;
}

bool float_packable(ir::DType dtype, const std::vector<int64_t>& shape) {
  const bool plain_float = dtype == ir::DType::f32 || dtype == ir::DType::f16 || dtype == ir::DType::bf16;
  if (!plain_float || shape.size() < 2) return false;
  const int64_t matrix_rows = shape[shape.size() - 2];  // a tile never straddles two matrices
  return rows_of(shape) > 0 && matrix_rows % kPackRows == 0 && shape.back() > 0;
}

std::vector<uint8_t> pack_float_weight(ir::DType dtype, const std::vector<int64_t>& shape, std::span<const uint8_t> bytes) {
  MOAT_INTERNAL_CHECK(float_packable(dtype, shape), "pack_float_weight: a ", ir::dtype_name(dtype), " weight that cannot be packed");
  const int64_t rows = rows_of(shape), k = shape.back();
  const auto size = static_cast<size_t>(ir::dtype_block_bytes(dtype));  // bytes per element
  MOAT_INTERNAL_CHECK(bytes.size() == static_cast<size_t>(rows * k) * size, "pack_float_weight: ", bytes.size(),
                      " bytes for ", rows, " rows of ", k);
  std::vector<uint8_t> out(bytes.size());
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = bytes.data() + static_cast<size_t>(r * k) * size;
    uint8_t* tile = out.data() + static_cast<size_t>((r / kPackRows) * k * kPackRows + r % kPackRows) * size;
    for (int64_t i = 0; i < k; ++i) std::memcpy(tile + static_cast<size_t>(i * kPackRows) * size, row + static_cast<size_t>(i) * size, size);
  }
  return out;
}

int64_t packed_vectors(ir::DType dtype) {
  return dtype == ir::DType::q8_0 ? 8 : dtype == ir::DType::q5_0 || dtype == ir::DType::q5_1 ? 5 : 4;
}

int64_t packed_block_bytes(ir::DType dtype) {
  if (dtype == ir::DType::q2_k) return 1280;
  if (dtype == ir::DType::q3_k) return 1792;
  if (dtype == ir::DType::q4_k) return 2304;
  if (dtype == ir::DType::q5_k) return 2816;
  if (dtype == ir::DType::q6_k) return 4352;
  if (dtype == ir::DType::iq4_xs) return 2176;
  return packed_vectors(dtype) * 64;
}

int64_t packed_block_scales(ir::DType dtype) {
  const bool one_scale = dtype == ir::DType::q6_k || dtype == ir::DType::q3_k || dtype == ir::DType::iq4_xs ||
                         dtype == ir::DType::q8_0 || dtype == ir::DType::q4_0 || dtype == ir::DType::q5_0 ||
                         dtype == ir::DType::iq4_nl || dtype == ir::DType::mxfp4;
  return one_scale ? 16 : 32;  // d; or d and dmin / m
}

PackedShape packed_shape(ir::DType dtype, const std::vector<int64_t>& shape) {
  const int64_t tile_blocks = rows_of(shape) / kPackRows * (shape.back() / ir::dtype_block_elems(dtype));
  return {tile_blocks * packed_block_bytes(dtype), tile_blocks * packed_block_scales(dtype)};
}

PackedWeight pack_weight(ir::DType dtype, const std::vector<int64_t>& shape, std::span<const uint8_t> bytes) {
  MOAT_INTERNAL_CHECK(packable(dtype, shape), "pack_weight: a ", ir::dtype_name(dtype), " weight that cannot be packed");
  const int64_t rows = rows_of(shape), kb = shape.back() / ir::dtype_block_elems(dtype);
  const int64_t block_bytes = ir::dtype_block_bytes(dtype), vectors = packed_vectors(dtype);
  MOAT_INTERNAL_CHECK(static_cast<int64_t>(bytes.size()) == rows * kb * block_bytes, "pack_weight: ",
                      bytes.size(), " bytes for ", rows, " rows of ", kb, " blocks");
  const bool q8 = dtype == ir::DType::q8_0, q5 = dtype == ir::DType::q5_0 || dtype == ir::DType::q5_1;
  const bool with_min = packed_with_mins(dtype);
  const bool e8m0 = dtype == ir::DType::mxfp4;           // a one-byte exponent, not an f16 d
  const int64_t qh_at = with_min ? 4 : 2;                  // q5's fifth bits: after d (and m)
  const int64_t quants_at = e8m0 ? 1 : qh_at + (q5 ? 4 : 0), quant_vectors = q5 ? 4 : vectors;  // bytes into a block; vectors of quants
  const int64_t scales_per = packed_block_scales(dtype);
  const PackedShape sizes = packed_shape(dtype, shape);
  PackedWeight out;
  out.quads.resize(static_cast<size_t>(sizes.quad_bytes));
  out.scales.resize(static_cast<size_t>(sizes.scales));
  if (packed_super_blocks(dtype)) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < kb; ++b)
        pack_super_block(dtype, bytes.data() + (r * kb + b) * block_bytes, (r / kPackRows) * kb + b, r % kPackRows, out);
    return out;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t tile = r / kPackRows, c = r % kPackRows;
    for (int64_t b = 0; b < kb; ++b) {
      const uint8_t* block = bytes.data() + (r * kb + b) * block_bytes;
      const int64_t tb = tile * kb + b;
      if (e8m0) out.scales[static_cast<size_t>(tb * scales_per + c)] = block[0];
      else std::memcpy(&out.scales[static_cast<size_t>(tb * scales_per + c)], block, 2);
      if (with_min) std::memcpy(&out.scales[static_cast<size_t>(tb * scales_per + kPackRows + c)], block + 2, 2);
      for (int64_t v = 0; v < quant_vectors; ++v) {  // 4 bytes at a time; q8_0: each byte + 128 (mod 256)
        uint32_t quad;
        std::memcpy(&quad, block + quants_at + 4 * v, 4);
        if (q8) quad ^= 0x80808080u;
        std::memcpy(out.quads.data() + (tb * vectors + v) * 64 + c * 4, &quad, 4);
      }
      if (q5) {
        uint32_t qh;
        std::memcpy(&qh, block + qh_at, 4);
        const uint32_t bits = fifth_bits_by_quad(qh);
        std::memcpy(out.quads.data() + (tb * vectors + 4) * 64 + c * 4, &bits, 4);
      }
    }
  }
  return out;
}

}  // namespace moat::jit
