// Conformance of lowering + the OpenCL C emitter + the OpenCL backend (PoCL here) with
// the reference interpreter: the shared cases of tests/jit/conformance_cases.h. Skips,
// saying why, when the machine has no OpenCL device.
#include <algorithm>
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

// The same device fed SPIR 1.2 bitcode made by the LLVM emitter's spir flavour (the
// module SPIR-V is translated from), where the device takes it (PoCL does).
BackendUnderTest* opencl_spir() {
  static std::unique_ptr<BackendUnderTest> backend = []() -> std::unique_ptr<BackendUnderTest> {
    if (!opencl()) return nullptr;
    auto be = std::make_unique<BackendUnderTest>(moat::backends::open_device("opencl:0"),
                                                 moat::runtime::ExecutorOptions{.opencl_format = "bc-spir"});
    const auto& features = be->device->properties().info.features;
    if (std::find(features.begin(), features.end(), "cl_khr_spir") == features.end()) {
      std::cout << "skipping the SPIR bitcode cases: the OpenCL device does not report cl_khr_spir\n";
      return nullptr;
    }
    return be;
  }();
  return backend.get();
}

template <class Case>
void run(Case&& c) {
  if (BackendUnderTest* be = opencl()) c(*be);
}

template <class Case>
void run_spir(Case&& c) {
  if (BackendUnderTest* be = opencl_spir()) c(*be);
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

TEST_CASE("opencl, SPIR bitcode: unary ops") { run_spir(cases::unary); }
TEST_CASE("opencl, SPIR bitcode: reductions (local memory and barriers)") { run_spir(cases::reduce); }
TEST_CASE("opencl, SPIR bitcode: matmul with quantised B") { run_spir(cases::matmul_quantised); }
TEST_CASE("opencl, SPIR bitcode: cast between every pair of plain dtypes") { run_spir(cases::cast); }
TEST_CASE("opencl, SPIR bitcode: composites") { run_spir(cases::composites); }
