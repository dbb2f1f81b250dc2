// The narrow-float conversions written once in Kernel IR (jit/float_formats.h) against
// support/half.h, bit for bit: every f16, bf16 and f8 bit pattern decoded, and f32
// values around every rounding boundary encoded, as scalars and as 8-lane vectors. The
// kernels are legalised without native f16 (as for the C-like targets) and run on the
// CPU.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "backends/device.h"
#include "jit/emit_llvm.h"
#include "jit/legalize.h"
#include "support/half.h"

using namespace moat::jit;
namespace backends = moat::backends;
namespace ir = moat::ir;

namespace {

// out[i] = convert(in[i]) for n elements, `lanes` at a time; buffers are 32-bit words.
Kernel converter(const char* name, ir::DType in_dtype, ir::DType out_dtype, int64_t n, int lanes,
                 const std::function<NodeRef(NodeRef)>& convert) {
  Kernel k;
  k.name = name;
  int in = k.add_buffer({"in", in_dtype, Space::global, n, false});
  int out = k.add_buffer({"out", out_dtype, Space::global, n, true});
  NodeRef i = ref("i", kI64);
  k.body = block({for_loop("i", c_i64(0), c_i64(n), c_i64(lanes), {store(k, out, i, convert(load(k, in, i, lanes)))})});
  return legalize_numerics(k, {.native_f16 = false});
}

std::vector<uint32_t> run(const Kernel& k, const std::vector<uint32_t>& input) {
  auto device = backends::open_cpu_device({.threads = 1});
  auto module = device->load(device->compile(backends::Artifact::text("ll", emit_llvm(k), {k.name})));
  const size_t bytes = input.size() * 4;
  auto in = device->allocate(bytes);
  auto out = device->allocate(bytes);
  device->stream().write(*in, 0, input.data(), bytes);
  const std::vector<backends::KernelArg> args{backends::KernelArg::of(*in), backends::KernelArg::of(*out)};
  device->stream().launch(module->kernel(k.name), backends::Grid{}, args);
  std::vector<uint32_t> result(input.size());
  device->stream().read(*out, 0, result.data(), bytes);
  device->stream().synchronize();
  return result;
}

// f32 test values: zeros, every power of two's neighbourhood (ties, subnormal and
// overflow boundaries of all three formats), large, tiny, inf and NaN, both signs.
std::vector<uint32_t> f32_samples() {
  std::vector<uint32_t> v;
  for (int e = -160; e <= 130; ++e) {
    const float p = std::ldexp(1.0f, e);
    for (float m : {1.0f, 1.0009765625f, 1.00048828125f, 1.0014648438f, 1.5f, 1.0625f, 1.03125f, 1.09375f, 1.99f})
      for (float s : {1.0f, -1.0f}) {
        const uint32_t bits = std::bit_cast<uint32_t>(s * m * p);
        for (int d = -2; d <= 2; ++d) v.push_back(bits + static_cast<uint32_t>(d));
      }
  }
  for (float x : {0.0f, -0.0f, 448.0f, 464.0f, 480.0f, 65504.0f, 65520.0f, std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity()})
    v.push_back(std::bit_cast<uint32_t>(x));
  for (uint32_t nan : {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x7fa5a5a5u}) v.push_back(nan);
  while (v.size() % 8 != 0) v.push_back(0);
  return v;
}

uint32_t reference_decode(Scalar s, uint32_t bits) {
  const float f = s == Scalar::f16    ? moat::f16_to_f32(static_cast<uint16_t>(bits))
                  : s == Scalar::bf16 ? moat::bf16_to_f32(static_cast<uint16_t>(bits))
                                      : moat::fp8_e4m3_to_f32(static_cast<uint8_t>(bits));
  return std::bit_cast<uint32_t>(f);
}

uint32_t reference_encode(Scalar s, uint32_t bits) {
  const float f = std::bit_cast<float>(bits);
  return s == Scalar::f16 ? moat::f32_to_f16(f) : s == Scalar::bf16 ? moat::f32_to_bf16(f) : moat::f32_to_fp8_e4m3(f);
}

}  // namespace

TEST_CASE("narrow floats decode bit for bit like support/half.h: every pattern, scalar and vector") {
  for (Scalar s : {Scalar::f16, Scalar::bf16, Scalar::f8}) {
    const uint32_t patterns = s == Scalar::f8 ? 256 : 65536;
    std::vector<uint32_t> in(patterns);
    for (uint32_t i = 0; i < patterns; ++i) in[i] = i;
    for (int lanes : {1, 8}) {
      // i32 words holding the bit patterns -> the narrow value -> f32
      Kernel k = converter("decode", ir::DType::i32, ir::DType::f32, patterns, lanes, [s](NodeRef x) {
        return cast(kF32.with_lanes(x->type.lanes), bitcast({s, x->type.lanes}, x));
      });
      const std::vector<uint32_t> got = run(k, in);
      for (uint32_t i = 0; i < patterns; ++i)
        REQUIRE_MESSAGE(got[i] == reference_decode(s, i), scalar_name(s), " pattern ", i, ", lanes ", lanes);
    }
  }
}

TEST_CASE("f32 rounds to f16, bf16 and f8 bit for bit like support/half.h: ties, subnormals, overflow, NaN") {
  const std::vector<uint32_t> in = f32_samples();
  for (Scalar s : {Scalar::f16, Scalar::bf16, Scalar::f8}) {
    for (int lanes : {1, 8}) {
      Kernel k = converter("encode", ir::DType::f32, ir::DType::i32, static_cast<int64_t>(in.size()), lanes, [s](NodeRef x) {
        return bitcast({Scalar::i32, x->type.lanes}, cast({s, x->type.lanes}, x));
      });
      const std::vector<uint32_t> got = run(k, in);
      for (size_t i = 0; i < in.size(); ++i)
        REQUIRE_MESSAGE(got[i] == reference_encode(s, in[i]), scalar_name(s), " of f32 bits ", in[i], ", lanes ", lanes);
    }
  }
}

TEST_CASE("legalize_numerics keeps f16 casts for targets that convert natively and writes bf16 / f8 out") {
  Kernel k;
  k.name = "casts";
  int in = k.add_buffer({"in", ir::DType::f32, Space::global, 4, false});
  int h = k.add_buffer({"h", ir::DType::f16, Space::global, 4, true});
  int b = k.add_buffer({"b", ir::DType::bf16, Space::global, 4, true});
  k.body = block({store(k, h, c_i64(0), cast({Scalar::f16, 1}, load(k, in, c_i64(0)))),
                  store(k, b, c_i64(0), cast({Scalar::bf16, 1}, load(k, in, c_i64(0))))});
  // whether `text` has a numeric cast (not a bitcast) to `type`
  auto casts_to = [](const std::string& text, const std::string& type) {
    const std::string needle = "cast." + type + "(";
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
      if (at < 3 || text.compare(at - 3, 3, "bit") != 0) return true;
    return false;
  };
  const std::string native = print(legalize_numerics(k, {.native_f16 = true}));
  CHECK(casts_to(native, "f16"));
  CHECK_FALSE(casts_to(native, "bf16"));
  const std::string written = print(legalize_numerics(k, {.native_f16 = false}));
  CHECK_FALSE(casts_to(written, "f16"));
  CHECK(written.find("bitcast.f16(") != std::string::npos);
}
