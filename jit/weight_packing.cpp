#include "jit/weight_packing.h"

#include <cstring>

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

constexpr std::string_view kQuads = "#quads16", kScales = "#scales16";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::string packed_quads_name(std::string_view name) { return std::string(name) + std::string(kQuads); }
std::string packed_scales_name(std::string_view name) { return std::string(name) + std::string(kScales); }

std::string packed_weight_of(std::string_view buffer_name) {
  for (std::string_view suffix : {kQuads, kScales})
    if (ends_with(buffer_name, suffix)) return std::string(buffer_name.substr(0, buffer_name.size() - suffix.size()));
  return {};
}

bool packable(ir::DType dtype, const std::vector<int64_t>& shape) {
  const bool tiled = dtype == ir::DType::q8_0 || dtype == ir::DType::q4_0 || dtype == ir::DType::q5_0;
  if (!tiled || shape.size() < 2) return false;
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  return rows > 0 && rows % kPackRows == 0 && shape.back() % 32 == 0 && shape.back() > 0;
}

int64_t packed_vectors(ir::DType dtype) { return dtype == ir::DType::q8_0 ? 8 : dtype == ir::DType::q5_0 ? 5 : 4; }

PackedShape packed_shape(ir::DType dtype, const std::vector<int64_t>& shape) {
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  const int64_t kb = shape.back() / 32;
  return {rows * kb * packed_vectors(dtype) * 4, rows * kb};
}

PackedWeight pack_weight(ir::DType dtype, const std::vector<int64_t>& shape, std::span<const uint8_t> bytes) {
  MOAT_INTERNAL_CHECK(packable(dtype, shape), "pack_weight: a ", ir::dtype_name(dtype), " weight that cannot be packed");
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  const int64_t kb = shape.back() / 32, block_bytes = ir::dtype_block_bytes(dtype), vectors = packed_vectors(dtype);
  MOAT_INTERNAL_CHECK(static_cast<int64_t>(bytes.size()) == rows * kb * block_bytes, "pack_weight: ",
                      bytes.size(), " bytes for ", rows, " rows of ", kb, " blocks");
  const bool q8 = dtype == ir::DType::q8_0, q5 = dtype == ir::DType::q5_0;
  const int64_t quants_at = q5 ? 6 : 2, quant_vectors = q5 ? 4 : vectors;  // bytes into a block; vectors of quants
  PackedWeight out;
  out.quads.resize(static_cast<size_t>(rows * kb * vectors * 4));
  out.scales.resize(static_cast<size_t>(rows * kb));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t tile = r / kPackRows, c = r % kPackRows;
    for (int64_t b = 0; b < kb; ++b) {
      const uint8_t* block = bytes.data() + (r * kb + b) * block_bytes;
      const int64_t tb = tile * kb + b;
      std::memcpy(&out.scales[static_cast<size_t>(tb * kPackRows + c)], block, 2);
      for (int64_t v = 0; v < quant_vectors; ++v) {  // 4 bytes at a time; q8_0: each byte + 128 (mod 256)
        uint32_t quad;
        std::memcpy(&quad, block + quants_at + 4 * v, 4);
        if (q8) quad ^= 0x80808080u;
        std::memcpy(out.quads.data() + (tb * vectors + v) * 64 + c * 4, &quad, 4);
      }
      if (q5) {
        uint32_t qh;
        std::memcpy(&qh, block + 2, 4);
        const uint32_t bits = fifth_bits_by_quad(qh);
        std::memcpy(out.quads.data() + (tb * vectors + 4) * 64 + c * 4, &bits, 4);
      }
    }
  }
  return out;
}

}  // namespace moat::jit
