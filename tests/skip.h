// Skipping a test case, for CTest: a test case that calls skip() passes here and is
// counted as skipped; when every test case a run selected was skipped, the test binary
// exits with kSkipExitCode, which tests/CMakeLists.txt declares as every test's
// SKIP_RETURN_CODE, so `ctest` reports it as skipped, not passed (tests/test_main.cpp).
// A test case that skips part of its work (one absent device of several) and runs the
// rest is a pass; say what was skipped with MESSAGE.
#pragma once

#include <string_view>

namespace moat::testing {

inline constexpr int kSkipExitCode = 77;

// Marks the running test case as skipped and prints `reason` (what is absent, and how
// to get it). The caller returns from the test case after it.
void skip(std::string_view reason);

}  // namespace moat::testing
