// The doctest main of every test executable, plus the skip accounting of tests/skip.h:
// a listener counts the test cases that ran and those that called skip().
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "tests/skip.h"

namespace moat::testing {

namespace {

struct SkipCounts {
  int ran = 0;      // test cases run (subcase re-entries not counted)
  int skipped = 0;  // of which called skip()
  bool current_skipped = false;
  std::string current;  // name of the running test case
};

SkipCounts& counts() {
  static SkipCounts c;
  return c;
}

// Counts test cases: doctest calls every registered listener for each event.
struct SkipListener final : doctest::IReporter {
  explicit SkipListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& tc) override {
    ++counts().ran;
    counts().current_skipped = false;
    counts().current = tc.m_name;
  }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {
    if (counts().current_skipped) ++counts().skipped;
  }
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

void skip(std::string_view reason) {
  counts().current_skipped = true;
  std::cout << "SKIPPED: " << counts().current << ": " << reason << "\n";
}

}  // namespace moat::testing

REGISTER_LISTENER("moat-skip", 1, moat::testing::SkipListener);

// PoCL's kernel cache is not safe for several processes at once (pocl/pocl#1480: ctest
// -j runs test processes side by side that compile the same kernels; one of them then
// aborted with a corrupted heap). Each test process gets a cache directory of its own,
// removed when it ends (the moat processes a test starts inherit it).
struct OwnPoclCache {
  std::filesystem::path dir;
  OwnPoclCache() {
    if (std::getenv("POCL_CACHE_DIR")) return;
    dir = std::filesystem::temp_directory_path() / ("moat-test-pocl-" + std::to_string(::getpid()));
    setenv("POCL_CACHE_DIR", dir.c_str(), 1);
  }
  ~OwnPoclCache() {
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

int main(int argc, char** argv) {
  const OwnPoclCache pocl_cache;
  doctest::Context context(argc, argv);
  int rc = context.run();
  if (context.shouldExit()) return rc;  // --list-test-cases, --help, ...
  const moat::testing::SkipCounts& c = moat::testing::counts();
  if (rc == 0 && c.ran > 0 && c.skipped == c.ran) return moat::testing::kSkipExitCode;
  return rc;
}
