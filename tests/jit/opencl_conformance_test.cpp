// Conformance of lowering + the OpenCL C emitter + the OpenCL backend (PoCL here) with
// the reference interpreter: the shared cases of tests/jit/conformance_cases.h. Skips,
// saying why, when the machine has no OpenCL device.
#include <iostream>

#include "support/error.h"

#include "tests/jit/conformance_cases.h"

using moat::testing::BackendUnderTest;
namespace cases = moat::testing::cases;

namespace {

// The first OpenCL device, or null (with the reason printed once) when there is none.
BackendUnderTest* opencl() {
  static std::unique_ptr<BackendUnderTest> backend = []() -> std::unique_ptr<BackendUnderTest> {
    try {
      return std::make_unique<BackendUnderTest>(moat::backends::open_device("opencl:0"));
    } catch (const moat::UserError& e) {
      std::cout << "skipping the OpenCL conformance suite: " << e.what() << "\n";
      return nullptr;
    }
  }();
  return backend.get();
}

template <class Case>
void run(Case&& c) {
  if (BackendUnderTest* be = opencl()) c(*be);
}

}  // namespace

TEST_CASE("opencl: unary ops") { run(cases::unary); }
TEST_CASE("opencl: binary ops with broadcasting") { run(cases::binary); }
TEST_CASE("opencl: select") { run(cases::select); }
TEST_CASE("opencl: cast between every pair of plain dtypes") { run(cases::cast); }
TEST_CASE("opencl: reductions") { run(cases::reduce); }
TEST_CASE("opencl: matmul with float B") { run(cases::matmul_float); }
TEST_CASE("opencl: matmul with quantised B") { run(cases::matmul_quantised); }
TEST_CASE("opencl: matmul with fp8 B and block scales") { run(cases::matmul_fp8); }
TEST_CASE("opencl: gather and take_along") { run(cases::gather); }
TEST_CASE("opencl: topk") { run(cases::topk); }
TEST_CASE("opencl: views") { run(cases::views); }
TEST_CASE("opencl: sources, constants, iota, outputs") { run(cases::sources); }
TEST_CASE("opencl: symbolic dimensions") { run(cases::symbolic); }
TEST_CASE("opencl: composites") { run(cases::composites); }
