// moat run's CPU threads as a user meets them: more threads than the CPUs the process
// may run on gives a warning, and the generated ids do not depend on the thread count.
#include <doctest/doctest.h>
#include <sched.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/cli/cli_runner.h"

namespace {

using moat::testing::CliResult;
using moat::testing::contains;
using moat::testing::run_moat;

const std::string kModel = std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/v2_lite/model-bf16.gguf";

// `moat ARGS...` with its affinity limited to one CPU (a child inherits the spawning
// thread's mask); exit_code -1 and a note in err when the mask cannot be set.
CliResult run_on_one_cpu(const std::vector<std::string>& args) {
  CliResult result;
  result.err = "sched_setaffinity failed";
  std::thread spawner([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(::sched_getcpu(), &one);
    if (::sched_setaffinity(0, sizeof(one), &one) == 0) result = run_moat(args);
  });
  spawner.join();
  return result;
}

}  // namespace

TEST_CASE("run: -t above the CPUs this process may run on warns, and the ids do not depend on -t") {
  const std::vector<std::string> run{"run", "-m", kModel, "--tokens", "1,2,3", "-n", "6", "--temp", "0"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = run;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  CliResult one = run_on_one_cpu(with({"-t", "1"}));
  CliResult two = run_on_one_cpu(with({"-t", "2"}));
  CliResult fallback = run_on_one_cpu(run);  // default threads: the one core it may use
  REQUIRE(one.exit_code == 0);
  REQUIRE(two.exit_code == 0);
  REQUIRE(fallback.exit_code == 0);
  CHECK_FALSE(contains(one.err, "warning"));
  CHECK(contains(two.err, "moat: warning: -t 2 is more than the CPUs this process may run on (1)"));
  CHECK_FALSE(contains(fallback.err, "warning"));
  CHECK(!one.out.empty());
  CHECK(two.out == one.out);
  CHECK(fallback.out == one.out);
}
