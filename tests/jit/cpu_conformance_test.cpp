// Conformance of lowering + the CPU backend (LLVM ORC JIT) with the reference
// interpreter: the shared cases of tests/jit/conformance_cases.h.
#include "tests/jit/conformance_cases.h"

using moat::testing::BackendUnderTest;
namespace cases = moat::testing::cases;

namespace {

BackendUnderTest& cpu() {
  static BackendUnderTest backend(moat::backends::open_cpu_device({.threads = 2}));
  return backend;
}

}  // namespace

TEST_CASE("cpu: unary ops: every float op over f32 / f16 / bf16 and shape families") { cases::unary(cpu()); }

TEST_CASE("cpu: binary ops with numpy broadcasting over float and integer dtypes") { cases::binary(cpu()); }

TEST_CASE("cpu: select with broadcast condition and branches") { cases::select(cpu()); }

TEST_CASE("cpu: cast between every pair of plain dtypes, with saturation and specials") { cases::cast(cpu()); }

TEST_CASE("cpu: reductions over every axis, including size 1 and long rows") { cases::reduce(cpu()); }

TEST_CASE("cpu: matmul with f32 / f16 / bf16 B, transposed or not, batched and broadcast") { cases::matmul_float(cpu()); }

TEST_CASE("cpu: matmul with quantised B dequantised in registers: q8_0, q4_0, q4_k, q6_k") { cases::matmul_quantised(cpu()); }

TEST_CASE("cpu: matmul with fp8 e4m3 B and 128x128 block scales, including partial blocks") { cases::matmul_fp8(cpu()); }

TEST_CASE("cpu: gather and take_along, including quantised tables") { cases::gather(cpu()); }

TEST_CASE("cpu: topk: largest first, ties to the lower index, NaN ranked first") { cases::topk(cpu()); }

TEST_CASE("cpu: views: reshape, permute, slice, concat, broadcast, fused into their consumer") { cases::views(cpu()); }

TEST_CASE("cpu: sources, constants, iota, and outputs that are inputs or repeated") { cases::sources(cpu()); }

TEST_CASE("cpu: symbolic dimensions bound to 1 and to odd sizes") { cases::symbolic(cpu()); }

TEST_CASE("cpu: composites: rms_norm, softmax, rope (interleaved, NeoX, YaRN), attention, moe") { cases::composites(cpu()); }
