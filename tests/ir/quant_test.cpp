// Block formats (ir/quant.h) against gguf-py's dequantisation / quantisation in
// tests/data/quant (tools/make_quant_vectors.py), hand-built layout checks, and
// quantise -> dequantise error bounds.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ir/dtype.h"
#include "ir/quant.h"
#include "ir/quant_legacy_k_blocks.h"
#include "ir/quant_iq4.h"
#include "ir/quant_iq_grids.h"
#include "support/error.h"
#include "support/half.h"
#include "tests/test_data.h"

using namespace moat;
using namespace moat::ir;

using moat::testing::read_vector;

namespace {

// Bit-exact (so +0 / -0 differ); no NaN is expected from these blocks.
void check_bits_equal(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  REQUIRE(got.size() == want.size());
  int failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i]) && ++failures <= 5)
      FAIL_CHECK(what, " element ", i, " (block element ", i % 256, "): ", got[i], " vs gguf ", want[i]);
  }
  CHECK(failures == 0);
}

// Deterministic pseudo-random floats in [-1, 1) (xorshift; no <random> distribution
// differences between standard libraries).
std::vector<float> noise(size_t n, uint32_t seed) {
  std::vector<float> out(n);
  for (float& v : out) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    v = static_cast<float>(seed >> 8) / 8388608.0f - 1.0f;
  }
  return out;
}

}  // namespace

TEST_CASE("block structs match the dtype table") {
  CHECK(sizeof(BlockQ8_0) == dtype_block_bytes(DType::q8_0));
  CHECK(sizeof(BlockQ4_0) == dtype_block_bytes(DType::q4_0));
  CHECK(sizeof(BlockQ4_K) == dtype_block_bytes(DType::q4_k));
  CHECK(sizeof(BlockQ6_K) == dtype_block_bytes(DType::q6_k));
  CHECK(offsetof(BlockQ6_K, d) == 208);
  CHECK(offsetof(BlockQ4_K, qs) == 16);
  CHECK(sizeof(BlockQ4_1) == dtype_block_bytes(DType::q4_1));
  CHECK(sizeof(BlockQ5_0) == dtype_block_bytes(DType::q5_0));
  CHECK(sizeof(BlockQ5_1) == dtype_block_bytes(DType::q5_1));
  CHECK(sizeof(BlockQ2_K) == dtype_block_bytes(DType::q2_k));
  CHECK(sizeof(BlockQ3_K) == dtype_block_bytes(DType::q3_k));
  CHECK(sizeof(BlockQ5_K) == dtype_block_bytes(DType::q5_k));
  CHECK(offsetof(BlockQ3_K, d) == 108);
  CHECK(offsetof(BlockQ5_K, qs) == 48);
  CHECK(sizeof(BlockIQ4_NL) == dtype_block_bytes(DType::iq4_nl));
  CHECK(sizeof(BlockIQ4_XS) == dtype_block_bytes(DType::iq4_xs));
  CHECK(sizeof(BlockMXFP4) == dtype_block_bytes(DType::mxfp4));
  CHECK(offsetof(BlockIQ4_XS, qs) == 8);
  CHECK(sizeof(BlockIQ3_XXS) == dtype_block_bytes(DType::iq3_xxs));
  CHECK(sizeof(BlockIQ3_S) == dtype_block_bytes(DType::iq3_s));
  CHECK(sizeof(BlockIQ2_XXS) == dtype_block_bytes(DType::iq2_xxs));
  CHECK(sizeof(BlockIQ2_XS) == dtype_block_bytes(DType::iq2_xs));
  CHECK(sizeof(BlockIQ2_S) == dtype_block_bytes(DType::iq2_s));
  CHECK(sizeof(BlockIQ1_S) == dtype_block_bytes(DType::iq1_s));
  CHECK(sizeof(BlockIQ1_M) == dtype_block_bytes(DType::iq1_m));
}

TEST_CASE("iq4_xs: 6-bit sub-block scales (ls - 32) and mxfp4: E8M0 halves with subnormal exponents 0 and 1") {
  BlockIQ4_XS b{};
  b.d = f32_to_f16(0.5f);
  b.scales_l[1] = 0x5a;                   // sub-block 2: low bits 0xa, sub-block 3: 0x5
  b.scales_h = static_cast<uint16_t>((2 << 4) | (1 << 6));  // high bits: sub-block 2 -> 2, 3 -> 1
  std::memset(b.qs, 0xf0, sizeof b.qs);   // low nibbles 0 (-127), high nibbles 15 (113)
  std::vector<float> y(256);
  dequantize_row(DType::iq4_xs, reinterpret_cast<const uint8_t*>(&b), y.data(), 256);
  CHECK(y[64] == 0.5f * (0x2a - 32) * -127.0f);   // sub-block 2, element 0
  CHECK(y[64 + 16] == 0.5f * (0x2a - 32) * 113.0f);
  CHECK(y[96] == 0.5f * (0x15 - 32) * -127.0f);   // sub-block 3
  CHECK(y[0] == 0.5f * -32.0f * -127.0f);         // scale 0: ls - 32 = -32

  CHECK(e8m0_to_f32_half(127) == 0.5f);
  CHECK(e8m0_to_f32_half(128) == 1.0f);
  CHECK(e8m0_to_f32_half(1) == std::ldexp(1.0f, -127));
  CHECK(e8m0_to_f32_half(0) == std::ldexp(1.0f, -128));
  CHECK(e8m0_to_f32_half(254) == std::ldexp(1.0f, 126));
}

TEST_CASE("dequantize_row equals gguf-py bit for bit, at any alignment") {
  for (DType type : {DType::q8_0, DType::q4_0, DType::q4_k, DType::q6_k, DType::q4_1, DType::q5_0, DType::q5_1,
                     DType::q2_k, DType::q3_k, DType::q5_k, DType::iq4_nl, DType::iq4_xs, DType::mxfp4, DType::iq3_xxs,
                     DType::iq3_s, DType::iq2_xxs, DType::iq2_xs, DType::iq2_s, DType::iq1_s, DType::iq1_m}) {
    const std::string name(dtype_name(type));
    CAPTURE(name);
    auto blocks = read_vector<uint8_t>(name + ".blocks.bin");
    auto want = read_vector<float>(name + ".f32.bin");
    const int64_t bb = dtype_block_bytes(type), be = dtype_block_elems(type);
    REQUIRE(blocks.size() % bb == 0);
    const int64_t n_blocks = static_cast<int64_t>(blocks.size()) / bb;
    REQUIRE(n_blocks >= 8);
    REQUIRE(want.size() == static_cast<size_t>(n_blocks * be));

    std::vector<float> got(want.size());
    dequantize_row(type, blocks.data(), got.data(), n_blocks * be);
    check_bits_equal(got, want, name);

    // One block at a time from an odd address: no alignment assumption.
    std::vector<uint8_t> shifted(blocks.size() + 1);
    std::memcpy(shifted.data() + 1, blocks.data(), blocks.size());
    std::vector<float> one(want.size(), -1.0f);
    for (int64_t b = 0; b < n_blocks; ++b) dequantize_row(type, shifted.data() + 1 + b * bb, one.data() + b * be, be);
    check_bits_equal(one, want, name);
  }
}

TEST_CASE("q4_0 nibble order: low nibbles are elements 0..15, high nibbles 16..31") {
  BlockQ4_0 b{};
  b.d = f32_to_f16(-0.5f);
  for (int i = 0; i < 16; ++i) b.qs[i] = static_cast<uint8_t>(i | ((15 - i) << 4));
  float y[32];
  dequantize_row(DType::q4_0, reinterpret_cast<const uint8_t*>(&b), y, 32);
  for (int i = 0; i < 16; ++i) {
    CHECK(y[i] == -0.5f * static_cast<float>(i - 8));
    CHECK(y[16 + i] == -0.5f * static_cast<float>(7 - i));
  }
  CHECK(std::signbit(y[8]));  // 0 * -0.5 = -0: the product is taken as it is, like ggml
}

TEST_CASE("q4_k: 6-bit scales and mins, and which nibble feeds which sub-block") {
  uint8_t s[12] = {};
  // Sub-block 5: scale = low 4 bits of s[9] | top 2 bits of s[1] << 4; min = high 4 bits
  // of s[9] | top 2 bits of s[5] << 4.
  s[1] = 0x80 | 0x05;  // scale 1 = 5, scale-5 high bits = 2
  s[5] = 0x40 | 0x07;  // min 1 = 7, min-5 high bits = 1
  s[9] = 0x9 | (0x3 << 4);
  uint8_t sc = 0, m = 0;
  q4_k_scale_min(s, 1, &sc, &m);
  CHECK(sc == 5);
  CHECK(m == 7);
  q4_k_scale_min(s, 5, &sc, &m);
  CHECK(sc == (0x9 | (2 << 4)));
  CHECK(m == (0x3 | (1 << 4)));

  BlockQ4_K b{};
  b.d = f32_to_f16(1.0f);
  b.dmin = f32_to_f16(0.5f);
  std::memcpy(b.scales, s, 12);
  for (int l = 0; l < 32; ++l) b.qs[64 + l] = static_cast<uint8_t>(0x3 | (0xc << 4));  // chunk 2: sub-blocks 4, 5
  std::vector<float> y(256);
  dequantize_row(DType::q4_k, reinterpret_cast<const uint8_t*>(&b), y.data(), 256);
  CHECK(y[32 * 5] == 41.0f * 12.0f - 0.5f * 19.0f);  // high nibble 12, scale 41, min 19
  CHECK(y[32 * 1 + 3] == 5.0f * 0.0f - 0.5f * 7.0f);
  q4_k_scale_min(s, 4, &sc, &m);
  CHECK(y[32 * 4 + 31] == static_cast<float>(sc) * 3.0f - 0.5f * static_cast<float>(m));
}

TEST_CASE("q6_k: the ql / qh interleave and per-16 scales") {
  BlockQ6_K b{};
  b.d = f32_to_f16(0.25f);
  for (int i = 0; i < 16; ++i) b.scales[i] = static_cast<int8_t>(i + 1);
  // Element 128 + 64 + 7 (half 1, quarter 2, l = 7): high nibble of ql[64 + 7],
  // bits 4..5 of qh[32 + 7].
  b.ql[64 + 7] = 0xa0;
  b.qh[32 + 7] = 0x2 << 4;
  std::vector<float> y(256);
  dequantize_row(DType::q6_k, reinterpret_cast<const uint8_t*>(&b), y.data(), 256);
  const int q = (0xa | (0x2 << 4)) - 32;  // 10
  CHECK(y[199] == 0.25f * 13.0f * static_cast<float>(q));  // scale index 199 / 16 = 12
  CHECK(y[7] == 0.25f * 1.0f * -32.0f);                    // all-zero bits -> -32
  CHECK(y[128 + 7] == 0.25f * 9.0f * -32.0f);  // low nibble of the same ql byte: 0
}

TEST_CASE("q5_0: the fifth bit of element i is bit i of the little-endian qh") {
  BlockQ5_0 b{};
  b.d = f32_to_f16(2.0f);
  b.qh[0] = 0x01;  // element 0
  b.qh[1] = 0x80;  // element 15
  b.qh[2] = 0x01;  // element 16
  b.qs[0] = 0x3f;  // element 0: low nibble 15, element 16: high nibble 3
  float y[32];
  dequantize_row(DType::q5_0, reinterpret_cast<const uint8_t*>(&b), y, 32);
  CHECK(y[0] == 2.0f * static_cast<float>(31 - 16));
  CHECK(y[15] == 2.0f * static_cast<float>(16 - 16));
  CHECK(y[16] == 2.0f * static_cast<float>(19 - 16));
  CHECK(y[1] == 2.0f * -16.0f);
}

TEST_CASE("q3_k: 6-bit scales, and the hmask bit that removes the offset 4") {
  uint8_t s[12] = {};
  s[2] = 0x5a;              // scale 2: low nibble 0xa, scale 10: low nibble 0x5
  s[10] = 0x3 | (0x1 << 4);  // scale 2: high bits 3, scale 10: high bits 1
  CHECK(q3_k_scale(s, 2) == (0xa | (3 << 4)));
  CHECK(q3_k_scale(s, 10) == (0x5 | (1 << 4)));

  BlockQ3_K b{};
  b.d = f32_to_f16(0.5f);
  std::memcpy(b.scales, s, 12);
  b.qs[32 + 5] = 0x3 << 2;  // element 128 + 32 + 5 (half 1, quarter 1): crumb 3
  b.hmask[5] = 1 << 5;      // ... with its high bit set (bit (128 + 32 + 5) / 32 = 5)
  std::vector<float> y(256);
  dequantize_row(DType::q3_k, reinterpret_cast<const uint8_t*>(&b), y.data(), 256);
  CHECK(y[165] == 0.5f * static_cast<float>((0x5 | (1 << 4)) - 32) * 3.0f);  // scale 165 / 16 = 10
  CHECK(y[37] == 0.5f * static_cast<float>(q3_k_scale(s, 2) - 32) * -4.0f);   // crumb 0, bit clear
}

TEST_CASE("quantize_row_q8_0 / q4_0 equal gguf-py's quantisers byte for byte") {
  auto x = read_vector<float>("quantize.in.f32.bin");
  REQUIRE(x.size() % 32 == 0);
  const int64_t n = static_cast<int64_t>(x.size());
  for (DType type : {DType::q8_0, DType::q4_0}) {
    const std::string name(dtype_name(type));
    CAPTURE(name);
    auto want = read_vector<uint8_t>("quantize_" + name + ".out.bin");
    REQUIRE(static_cast<int64_t>(want.size()) == *dtype_row_bytes(type, n));
    std::vector<uint8_t> got(want.size());
    if (type == DType::q8_0) quantize_row_q8_0(x.data(), got.data(), n);
    else quantize_row_q4_0(x.data(), got.data(), n);
    const int64_t bb = dtype_block_bytes(type);
    for (size_t i = 0; i < got.size(); ++i)
      if (got[i] != want[i]) FAIL_CHECK("block ", i / bb, " byte ", i % bb, ": ", int(got[i]), " vs gguf ", int(want[i]));
  }
}

TEST_CASE("q8_k: quantize_row_q8_k and its decoder equal ggml's rule byte for byte") {
  auto x = read_vector<float>("quantize_q8_k.in.f32.bin");
  auto want = read_vector<uint8_t>("quantize_q8_k.out.bin");
  auto decoded = read_vector<float>("q8_k.f32.bin");
  const int64_t n = static_cast<int64_t>(x.size());
  REQUIRE(n % 256 == 0);
  REQUIRE(static_cast<int64_t>(want.size()) == *dtype_row_bytes(DType::q8_k, n));
  CHECK(sizeof(BlockQ8_K) == dtype_block_bytes(DType::q8_k));
  std::vector<uint8_t> got(want.size());
  quantize_row_q8_k(x.data(), got.data(), n);
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) FAIL_CHECK("block ", i / 292, " byte ", i % 292, ": ", int(got[i]), " vs ", int(want[i]));
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(DType::q8_k, want.data(), y.data(), n);
  check_bits_equal(y, decoded, "q8_k");
  // The sums of 16 and the sign rule: block 3's first |max| is positive and maps to -127.
  BlockQ8_K b;
  std::memcpy(&b, got.data() + 3 * sizeof b, sizeof b);
  CHECK(b.qs[9] == -127);
  CHECK(b.qs[200] == 127);
  int sum = 0;
  for (int l = 0; l < 16; ++l) sum += b.qs[16 * 12 + l];
  CHECK(b.bsums[12] == sum);
}

TEST_CASE("quantise then dequantise stays within the rounding bound") {
  std::vector<float> x = noise(32 * 64, 12345u);
  for (size_t b = 0; b < 64; ++b)  // magnitudes from 1e-3 to 1e3
    for (size_t i = 0; i < 32; ++i) x[32 * b + i] *= std::pow(10.0f, static_cast<float>(b % 7) - 3.0f);
  const int64_t n = static_cast<int64_t>(x.size());

  SUBCASE("q8_0: |x - x'| <= d / 2 + 127 * |d - f16(d)|") {
    std::vector<uint8_t> q(*dtype_row_bytes(DType::q8_0, n));
    quantize_row_q8_0(x.data(), q.data(), n);
    std::vector<float> y(x.size());
    dequantize_row(DType::q8_0, q.data(), y.data(), n);
    for (size_t b = 0; b < 64; ++b) {
      float amax = 0;
      for (size_t i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[32 * b + i]));
      const float d = amax / 127.0f;
      const float d16 = f16_to_f32(f32_to_f16(d));
      const float bound = 0.5f * d * 1.0001f + 127.0f * std::fabs(d - d16);
      for (size_t i = 0; i < 32; ++i) CHECK(std::fabs(x[32 * b + i] - y[32 * b + i]) <= bound);
    }
  }
  SUBCASE("q4_0: |x - x'| <= |d| / 2, or |d| where the top level 15 clips") {
    std::vector<uint8_t> q(*dtype_row_bytes(DType::q4_0, n));
    quantize_row_q4_0(x.data(), q.data(), n);
    std::vector<float> y(x.size());
    dequantize_row(DType::q4_0, q.data(), y.data(), n);
    for (size_t b = 0; b < 64; ++b) {
      float amax = 0, vmax = 0;
      for (size_t i = 0; i < 32; ++i)
        if (std::fabs(x[32 * b + i]) > amax) amax = std::fabs(x[32 * b + i]), vmax = x[32 * b + i];
      const float d = vmax / -8.0f;
      const float slack = 8.0f * std::fabs(d - f16_to_f32(f32_to_f16(d)));
      for (size_t i = 0; i < 32; ++i) {
        const float xi = x[32 * b + i];
        const float err = std::fabs(xi - y[32 * b + i]);
        const bool clipped = xi / d > 7.5f;
        CHECK(err <= (clipped ? 1.0001f : 0.5001f) * std::fabs(d) + slack);
      }
      // The element of largest magnitude is exact up to the f16 rounding of d.
      for (size_t i = 0; i < 32; ++i)
        if (x[32 * b + i] == vmax) CHECK(std::fabs(y[32 * b + i] - vmax) <= slack);
    }
  }
  SUBCASE("an all-zero block gives d = 0 and zeros") {
    std::vector<float> z(32, 0.0f), y(32, 1.0f);
    std::vector<uint8_t> q(34);
    quantize_row_q8_0(z.data(), q.data(), 32);
    CHECK(q[0] == 0);
    CHECK(q[1] == 0);
    dequantize_row(DType::q8_0, q.data(), y.data(), 32);
    for (float v : y) CHECK(v == 0.0f);
  }
}

TEST_CASE("dequantize_row converts plain dtypes too, and rejects partial blocks") {
  float y[4];
  const uint16_t h[4] = {0x3c00, 0xc000, 0x7c00, 0x0001};
  dequantize_row(DType::f16, reinterpret_cast<const uint8_t*>(h), y, 4);
  CHECK(y[0] == 1.0f);
  CHECK(y[1] == -2.0f);
  CHECK(std::isinf(y[2]));
  CHECK(y[3] == std::ldexp(1.0f, -24));
  const uint16_t bf[2] = {0x3f80, 0xbf00};
  dequantize_row(DType::bf16, reinterpret_cast<const uint8_t*>(bf), y, 2);
  CHECK(y[0] == 1.0f);
  CHECK(y[1] == -0.5f);
  const uint8_t f8[3] = {0x7e, 0xb8, 0x01};
  dequantize_row(DType::f8_e4m3, f8, y, 3);
  CHECK(y[0] == 448.0f);
  CHECK(y[1] == -1.0f);
  CHECK(y[2] == 0.001953125f);
  const int64_t i64[2] = {-3, (int64_t{1} << 40) + 1};
  dequantize_row(DType::i64, reinterpret_cast<const uint8_t*>(i64), y, 2);
  CHECK(y[0] == -3.0f);
  CHECK(y[1] == 1099511627776.0f);  // nearest float
  const int32_t i32[1] = {-70000};
  dequantize_row(DType::i32, reinterpret_cast<const uint8_t*>(i32), y, 1);
  CHECK(y[0] == -70000.0f);
  const uint8_t bytes[3] = {0xff, 0x00, 0x02};
  dequantize_row(DType::i8, bytes, y, 3);
  CHECK(y[0] == -1.0f);
  dequantize_row(DType::u8, bytes, y, 3);
  CHECK(y[0] == 255.0f);
  dequantize_row(DType::boolean, bytes, y, 3);
  CHECK((y[0] == 1.0f && y[1] == 0.0f && y[2] == 1.0f));
  const float f[2] = {1.5f, -0.0f};
  dequantize_row(DType::f32, reinterpret_cast<const uint8_t*>(f), y, 2);
  CHECK((y[0] == 1.5f && std::signbit(y[1])));

  std::vector<uint8_t> blocks(34 * 2);
  std::vector<float> out(64);
  CHECK_THROWS_AS(dequantize_row(DType::q8_0, blocks.data(), out.data(), 48), InternalError);
  CHECK_THROWS_AS(quantize_row_q4_0(out.data(), blocks.data(), 20), InternalError);
}

TEST_CASE("dequantize_fp8_block_row: value = fp8(w) * scale_inv[r / br][c / bc]") {
  // w [3, 5] with 2 x 2 blocks: scale_inv [2, 3], ragged last block row and column.
  const float scale_inv[2][3] = {{1.0f, 2.0f, 4.0f}, {-0.5f, 8.0f, 0.25f}};
  std::vector<uint8_t> w(15);
  for (int i = 0; i < 15; ++i) w[i] = f32_to_fp8_e4m3(static_cast<float>(i + 1));  // 1..15 are exact
  for (int64_t r = 0; r < 3; ++r) {
    float y[5];
    dequantize_fp8_block_row(w.data() + 5 * r, &scale_inv[0][0], r, 5, 2, 2, y);
    for (int64_t c = 0; c < 5; ++c)
      CHECK(y[c] == static_cast<float>(5 * r + c + 1) * scale_inv[r / 2][c / 2]);
  }
  // DeepSeek's 128 x 128 case: row 200, column 130 use scale [1][1].
  std::vector<uint8_t> row(256, f32_to_fp8_e4m3(-1.5f));
  std::vector<float> scales = {1, 2, 3, 4};  // [2, 2]
  std::vector<float> y(256);
  dequantize_fp8_block_row(row.data(), scales.data(), 200, 256, 128, 128, y.data());
  CHECK(y[0] == -4.5f);
  CHECK(y[130] == -6.0f);
  CHECK(y[255] == -6.0f);
}
