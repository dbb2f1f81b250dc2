// The offline PTX validator (backends/cuda/ptx_check.h): hand-written kernels assembled
// by ptxas for sm_80 and sm_90. Skips, saying why, where ptxas is absent.
#include <doctest/doctest.h>

#include <string>

#include "backends/cuda/ptx_check.h"
#include "support/error.h"
#include "tests/skip.h"
#include "tests/backends/gpu_kernels.h"

using namespace moat;
using namespace moat::backends::cuda;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool skip_without_ptxas() {
  if (ptxas_available()) return false;
  moat::testing::skip("ptxas not found on $PATH or in /usr/local/cuda/bin (install the CUDA toolkit)");
  return true;
}

}  // namespace

TEST_CASE("ptxas assembles the hand-written saxpy for sm_80 and sm_90") {
  if (skip_without_ptxas()) return;
  MESSAGE("ptxas: ", ptxas_path(), " (", ptxas_version(), ")");
  CHECK(contains(ptxas_version(), "release"));
  CHECK(check_ptx(testing::kSaxpyPtx, "sm_80") == "");
  CHECK(check_ptx(testing::kSaxpyPtx, "sm_90") == "");
}

TEST_CASE("ptxas reports invalid PTX with the line and the cause") {
  if (skip_without_ptxas()) return;
  for (std::string arch : {"sm_80", "sm_90"}) {
    std::string log = check_ptx(testing::kBadPtx, arch);
    CAPTURE(arch);
    CAPTURE(log);
    CHECK(contains(log, "line 17"));
    CHECK(contains(log, "%f9"));
  }
}

TEST_CASE("ptxas rejects PTX whose .target is newer than the architecture") {
  if (skip_without_ptxas()) return;
  std::string log = check_ptx(testing::kSaxpyPtx, "sm_75");  // .target sm_80
  CAPTURE(log);
  CHECK(!log.empty());
  CHECK(contains(log, "SM version"));
}

TEST_CASE("check_ptx refuses a name that is not a CUDA architecture") {
  for (std::string arch : {"gfx90a", "sm_", "sm_8 0", "-arch=sm_80", ""}) {
    CAPTURE(arch);
    CHECK_THROWS_AS(check_ptx(testing::kSaxpyPtx, arch), UserError);
  }
}
