// Narrow-float conversions (support/half.h) against exact arithmetic, exhaustive
// properties over every code, and the numpy / ml_dtypes vectors in tests/data/quant.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "support/half.h"
#include "tests/test_data.h"

using namespace moat;

using moat::testing::read_vector;

namespace {

// Equal bit patterns, or both NaN with the same sign (NaN payloads differ between
// implementations and carry no meaning here).
bool same_f32(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) && std::signbit(a) == std::signbit(b);
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

// Value of a binary float code from its fields, in double (exact for every format here).
double decode_fields(uint32_t code, int exp_bits, int mant_bits, int bias) {
  const uint32_t exp = (code >> mant_bits) & ((1u << exp_bits) - 1);
  const uint32_t mant = code & ((1u << mant_bits) - 1);
  const double sign = (code >> (exp_bits + mant_bits)) & 1 ? -1.0 : 1.0;
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), 1 - bias - mant_bits);
  return sign * std::ldexp(static_cast<double>(mant | (1u << mant_bits)), static_cast<int>(exp) - bias - mant_bits);
}

// For consecutive codes lo, lo + 1 up to `last_code` (the largest finite one):
// the midpoint rounds to the even code, one f32 ulp either side to the nearer one.
template <class Narrow, class Widen>
void check_ties(uint32_t last_code, Narrow narrow, Widen widen) {
  int failures = 0;
  for (uint32_t lo = 0; lo < last_code && failures < 5; ++lo) {
    const double a = widen(lo), b = widen(lo + 1);
    const float mid = static_cast<float>((a + b) / 2);
    REQUIRE(static_cast<double>(mid) == (a + b) / 2);  // exact in f32
    const uint32_t even = (lo & 1) ? lo + 1 : lo;
    const uint32_t got_mid = narrow(mid);
    const uint32_t got_up = narrow(std::nextafter(mid, std::numeric_limits<float>::infinity()));
    const uint32_t got_down = narrow(std::nextafter(mid, 0.0f));
    if (got_mid != even || got_up != lo + 1 || got_down != lo) {
      ++failures;
      FAIL_CHECK("between codes ", hex(lo), " and ", hex(lo + 1), ": midpoint -> ", hex(got_mid), ", above -> ",
                 hex(got_up), ", below -> ", hex(got_down));
    }
  }
  CHECK(failures == 0);
}

}  // namespace

// Compile-time use (the header promises constexpr).
static_assert(f32_to_f16(1.0f) == 0x3c00 && f16_to_f32(0xc000) == -2.0f);
static_assert(f32_to_bf16(1.0f) == 0x3f80 && bf16_to_f32(0x4040) == 3.0f);
static_assert(f32_to_fp8_e4m3(448.0f) == 0x7e && fp8_e4m3_to_f32(0x01) == 0.001953125f);

TEST_CASE("f16 -> f32 is exact for all 65536 patterns") {
  int failures = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    const float got = f16_to_f32(static_cast<uint16_t>(h));
    bool ok = false;
    if (exp == 0x1f && mant == 0) ok = std::isinf(got) && std::signbit(got) == ((h & 0x8000) != 0);
    else if (exp == 0x1f) ok = std::isnan(got) && (std::bit_cast<uint32_t>(got) & 0x7fffff) == mant << 13;
    else ok = same_f32(got, static_cast<float>(decode_fields(h, 5, 10, 15))) && std::signbit(got) == ((h & 0x8000) != 0);
    if (!ok && ++failures <= 5) FAIL_CHECK("f16 ", hex(h), " -> ", got);
  }
  CHECK(failures == 0);
}

TEST_CASE("f16 <-> f32 matches numpy and round-trips") {
  auto bits = read_vector<uint16_t>("f16_to_f32.u16.bin");
  auto want = read_vector<float>("f16_to_f32.f32.bin");
  REQUIRE(bits.size() == want.size());
  REQUIRE(bits.size() > 1500);
  for (size_t i = 0; i < bits.size(); ++i)
    if (!same_f32(f16_to_f32(bits[i]), want[i])) FAIL_CHECK("f16 ", hex(bits[i]), ": ", f16_to_f32(bits[i]), " vs ", want[i]);

  auto in = read_vector<float>("f32_to_f16.in.f32.bin");
  auto out = read_vector<uint16_t>("f32_to_f16.out.u16.bin");
  REQUIRE(in.size() == out.size());
  int nans = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const uint16_t got = f32_to_f16(in[i]);
    if (std::isnan(in[i])) {
      ++nans;
      CHECK(std::isnan(f16_to_f32(got)));
      CHECK((got & 0x8000) == (out[i] & 0x8000));
    } else if (got != out[i]) {
      FAIL_CHECK("f32 ", in[i], " (", hex(std::bit_cast<uint32_t>(in[i])), ") -> ", hex(got), ", numpy ", hex(out[i]));
    }
  }
  CHECK(nans > 0);

  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t back = f32_to_f16(f16_to_f32(static_cast<uint16_t>(h)));
    const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    if (nan ? (back & 0x7fff) <= 0x7c00 || (back & 0x8000) != (h & 0x8000) : back != h)
      FAIL_CHECK("round trip ", hex(h), " -> ", hex(back));
  }
}

TEST_CASE("f32 -> f16 rounds ties to even everywhere, overflows to inf, keeps tiny signs") {
  check_ties(0x7bff, [](float f) { return uint32_t{f32_to_f16(f)}; },
             [](uint32_t c) { return decode_fields(c, 5, 10, 15); });
  CHECK(f32_to_f16(65519.99f) == 0x7bff);
  CHECK(f32_to_f16(65520.0f) == 0x7c00);  // tie between 65504 (odd) and 2^16 -> inf
  CHECK(f32_to_f16(-1e30f) == 0xfc00);
  CHECK(f32_to_f16(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);   // tie with 2^-24 -> 0 (even)
  CHECK(f32_to_f16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(f32_to_f16(std::ldexp(-1.0f, -30)) == 0x8000);  // underflow keeps the sign
  CHECK(f32_to_f16(std::ldexp(1023.5f, -24)) == 0x0400);  // rounds up out of the subnormals
  CHECK(f32_to_f16(std::numeric_limits<float>::denorm_min()) == 0x0000);
  CHECK(f32_to_f16(std::bit_cast<float>(0x7f800001u)) == 0x7e00);  // signalling NaN comes out quiet
}

TEST_CASE("bf16 <-> f32 matches ml_dtypes, round-trips and rounds ties to even") {
  auto bits = read_vector<uint16_t>("bf16_to_f32.u16.bin");
  auto want = read_vector<float>("bf16_to_f32.f32.bin");
  REQUIRE(bits.size() == want.size());
  for (size_t i = 0; i < bits.size(); ++i) CHECK_MESSAGE(same_f32(bf16_to_f32(bits[i]), want[i]), hex(bits[i]));

  auto in = read_vector<float>("f32_to_bf16.in.f32.bin");
  auto out = read_vector<uint16_t>("f32_to_bf16.out.u16.bin");
  REQUIRE(in.size() == out.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const uint16_t got = f32_to_bf16(in[i]);
    if (std::isnan(in[i])) CHECK((std::isnan(bf16_to_f32(got)) && (got & 0x8000) == (out[i] & 0x8000)));
    else if (got != out[i]) FAIL_CHECK("f32 ", hex(std::bit_cast<uint32_t>(in[i])), " -> ", hex(got), ", ml_dtypes ", hex(out[i]));
  }

  for (uint32_t b = 0; b < 65536; ++b) {
    const bool nan = (b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0;
    const uint16_t back = f32_to_bf16(bf16_to_f32(static_cast<uint16_t>(b)));
    if (nan ? (back & 0x7fff) <= 0x7f80 : back != b) FAIL_CHECK("round trip ", hex(b), " -> ", hex(back));
  }
  check_ties(0x7f7f, [](float f) { return uint32_t{f32_to_bf16(f)}; },
             [](uint32_t c) { return decode_fields(c, 8, 7, 127); });
  CHECK(f32_to_bf16(3.4028235e38f) == 0x7f80);  // rounds past the largest bf16 -> inf
  CHECK(f32_to_bf16(std::bit_cast<float>(0xff800001u)) == 0xffc0);  // signalling NaN comes out quiet
}

TEST_CASE("fp8 e4m3 -> f32: all 256 codes match ml_dtypes and the E4M3FN definition") {
  auto want = read_vector<float>("fp8_e4m3_to_f32.f32.bin");
  REQUIRE(want.size() == 256);
  for (uint32_t b = 0; b < 256; ++b) {
    const float got = fp8_e4m3_to_f32(static_cast<uint8_t>(b));
    CHECK_MESSAGE(same_f32(got, want[b]), hex(b));
    if ((b & 0x7f) == 0x7f) CHECK(std::isnan(got));
    else CHECK_MESSAGE(same_f32(got, static_cast<float>(decode_fields(b, 4, 3, 7))), hex(b));
  }
  CHECK(fp8_e4m3_to_f32(0x7e) == 448.0f);
  CHECK(fp8_e4m3_to_f32(0x78) == 256.0f);  // exponent 15 is a normal binade (no inf)
  CHECK(fp8_e4m3_to_f32(0x08) == 0.015625f);
}

TEST_CASE("f32 -> fp8 e4m3 rounds to nearest even and saturates to ±448") {
  auto in = read_vector<float>("f32_to_fp8_e4m3.in.f32.bin");
  auto out = read_vector<uint8_t>("f32_to_fp8_e4m3.out.u8.bin");
  REQUIRE(in.size() == out.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const uint8_t got = f32_to_fp8_e4m3(in[i]);
    if (got != out[i])
      FAIL_CHECK("f32 ", in[i], " (", hex(std::bit_cast<uint32_t>(in[i])), ") -> ", hex(got), ", ml_dtypes ", hex(out[i]));
  }
  check_ties(0x7e, [](float f) { return uint32_t{f32_to_fp8_e4m3(f)}; },
             [](uint32_t c) { return decode_fields(c, 4, 3, 7); });
  for (uint32_t b = 0; b < 256; ++b)
    if ((b & 0x7f) != 0x7f) CHECK(f32_to_fp8_e4m3(fp8_e4m3_to_f32(static_cast<uint8_t>(b))) == b);

  const float inf = std::numeric_limits<float>::infinity();
  CHECK(f32_to_fp8_e4m3(464.0f) == 0x7e);  // torch's float8_e4m3fn cast gives NaN here
  CHECK(f32_to_fp8_e4m3(1e9f) == 0x7e);
  CHECK(f32_to_fp8_e4m3(-1e9f) == 0xfe);
  CHECK(f32_to_fp8_e4m3(inf) == 0x7e);
  CHECK(f32_to_fp8_e4m3(-inf) == 0xfe);
  CHECK(f32_to_fp8_e4m3(std::numeric_limits<float>::quiet_NaN()) == 0x7f);
  CHECK(f32_to_fp8_e4m3(-std::numeric_limits<float>::quiet_NaN()) == 0xff);
  CHECK(f32_to_fp8_e4m3(std::ldexp(1.0f, -10)) == 0x00);  // tie with 2^-9 -> 0 (even)
  CHECK(f32_to_fp8_e4m3(std::ldexp(3.0f, -10)) == 0x02);  // tie 1.5 * 2^-9 -> 2 (even)
  CHECK(f32_to_fp8_e4m3(-0.0f) == 0x80);
  CHECK(f32_to_fp8_e4m3(0.3f) == 0x2a);  // 0.3125
}
