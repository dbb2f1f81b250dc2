// Conformance of lowering + the PTX emitter + the CUDA backend, and of lowering + the
// HIP emitter + the HIP backend, with the reference interpreter: the shared cases of
// tests/jit/conformance_cases.h on cuda:0 and hip:0. Each device skips, saying why, when
// the machine does not have it (no GPU here: these run where a GPU is lent).
#include <iostream>
#include <map>

#include "support/error.h"
#include "tests/jit/conformance_cases.h"

using moat::testing::BackendUnderTest;
namespace cases = moat::testing::cases;

namespace {

// The device, or null (with the reason printed once) when the machine has none.
BackendUnderTest* device(const std::string& id) {
  static std::map<std::string, std::unique_ptr<BackendUnderTest>> opened;
  auto it = opened.find(id);
  if (it == opened.end()) {
    std::unique_ptr<BackendUnderTest> be;
    try {
      be = std::make_unique<BackendUnderTest>(moat::backends::open_device(id));
    } catch (const moat::UserError& e) {
      std::cout << "skipping the conformance suite on " << id << ": " << e.what() << "\n";
    }
    it = opened.emplace(id, std::move(be)).first;
  }
  return it->second.get();
}

template <class Case>
void run(Case&& c) {
  for (const char* id : {"cuda:0", "hip:0"})
    if (BackendUnderTest* be = device(id)) c(*be);
}

}  // namespace

TEST_CASE("gpu: unary ops") { run(cases::unary); }
TEST_CASE("gpu: binary ops with broadcasting") { run(cases::binary); }
TEST_CASE("gpu: select") { run(cases::select); }
TEST_CASE("gpu: cast between every pair of plain dtypes") { run(cases::cast); }
TEST_CASE("gpu: reductions") { run(cases::reduce); }
TEST_CASE("gpu: matmul with float B") { run(cases::matmul_float); }
TEST_CASE("gpu: matmul with quantised B") { run(cases::matmul_quantised); }
TEST_CASE("gpu: matmul with fp8 B and block scales") { run(cases::matmul_fp8); }
TEST_CASE("gpu: gather and take_along") { run(cases::gather); }
TEST_CASE("gpu: topk") { run(cases::topk); }
TEST_CASE("gpu: views") { run(cases::views); }
TEST_CASE("gpu: sources, constants, iota, outputs") { run(cases::sources); }
TEST_CASE("gpu: symbolic dimensions") { run(cases::symbolic); }
TEST_CASE("gpu: composites") { run(cases::composites); }
