// moat run / perplexity with one model over several devices of the process: --device
// A,B (--split layers[:R,...]) and --moe-device: the same greedy text and perplexity as
// one device, the placement printed with the bytes moved per token, and options that do
// not fit each other answered with exit 2 and what to give instead.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/cli/cli_runner.h"
#include "tests/skip.h"

namespace {

using moat::testing::contains;
using moat::testing::run_moat;

bool has_opencl() { return run_moat({"devices"}).out.find("opencl:0") != std::string::npos; }

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

}  // namespace

TEST_CASE("moat run over cpu and opencl:0 prints the placement and the one-device text") {
  if (!has_opencl()) {
    moat::testing::skip("no opencl:0 (install pocl-opencl-icd)");
    return;
  }
  const std::vector<std::string> run = {"run", "-p", "In the beginning", "-n", "24", "--temp", "0"};
  const auto single = run_moat(with(run, {"--device", "cpu"}));
  REQUIRE(single.exit_code == 0);
  CHECK_FALSE(contains(single.err, "placement:"));

  const auto split = run_moat(with(run, {"--device", "cpu,opencl:0"}));
  REQUIRE(split.exit_code == 0);
  CHECK(split.out == single.out);
  CHECK(contains(split.err, "on cpu+opencl:0"));
  CHECK(contains(split.err, "placement: cpu: layers 0-1 ("));
  CHECK(contains(split.err, "opencl:0: layers 2-3 ("));
  CHECK(contains(split.err, "moved between devices: 1024 bytes per decoded token"));  // one f32 hidden state of 256

  const auto experts = run_moat(with(run, {"--device", "opencl:0", "--moe-device", "cpu"}));
  REQUIRE(experts.exit_code == 0);
  CHECK(experts.out == single.out);
  CHECK(contains(experts.err, "cpu: routed experts"));
  CHECK(contains(experts.err, "moved between devices: 6144 bytes per decoded token"));  // 3 MoE layers, in and out

  const auto some = run_moat(with(run, {"--device", "cpu,opencl:0", "--split", "layers:1,3", "--moe-device", "opencl:0",
                                        "--n-moe-device", "1"}));
  REQUIRE(some.exit_code == 0);
  CHECK(some.out == single.out);
  CHECK(contains(some.err, "placement: cpu: layer 0 ("));

  // moat bench: one row for the placement, with the bytes moved per token.
  const auto bench = run_moat({"bench", "--device", "cpu+opencl:0", "-p", "8", "-n", "4", "-r", "1", "-o", "json"});
  REQUIRE(bench.exit_code == 0);
  const nlohmann::json rows = nlohmann::json::parse(bench.out);
  REQUIRE(rows.size() == 2);
  for (const nlohmann::json& row : rows) {
    CHECK(row["device"] == "cpu+opencl:0");
    CHECK(row["placement"] == "cpu: layers 0-1 | opencl:0: layers 2-3");
    CHECK(row["moved_bytes_per_token"].get<double>() == 1024.0);
  }

  const std::string text = (std::filesystem::temp_directory_path() / "moat_placement_ppl.txt").string();
  {
    std::ofstream out(text);
    for (int i = 0; i < 12; ++i) out << "In the beginning God created the heaven and the earth. And the earth was without form. ";
  }
  const auto ppl = run_moat({"perplexity", "-f", text, "--ctx", "64", "--json"});
  const auto ppl_split = run_moat({"perplexity", "-f", text, "--ctx", "64", "--json", "--device", "cpu,opencl:0", "--split", "layers:3,1"});
  REQUIRE(ppl.exit_code == 0);
  REQUIRE(ppl_split.exit_code == 0);
  const double one = nlohmann::json::parse(ppl.out)["perplexity"], two = nlohmann::json::parse(ppl_split.out)["perplexity"];
  CHECK(std::fabs(one - two) <= 1e-5 * one);
}

TEST_CASE("placement options that do not fit are exit 2 with what to give") {
  const std::vector<std::string> run = {"run", "-p", "x", "-n", "1"};
  struct Bad {
    std::vector<std::string> args;
    const char* says;
  };
  const Bad bad[] = {
      {{"--device", "cpu,cpu"}, "--device lists cpu twice"},
      {{"--device", "cpu,"}, "an empty device id"},
      {{"--split", "rows"}, "the one split is by layers"},
      {{"--device", "cpu", "--split", "layers:1,1"}, "gives 2 ratios for 1 devices"},
      {{"--split", "layers:a"}, "'a' is not a ratio"},
      {{"--split", "layers:0"}, "a share above 0"},
      {{"--n-moe-device", "2"}, "give --moe-device too"},
      {{"--device", "cpu,nonsense:3"}, "nonsense:3"},
  };
  for (const Bad& b : bad) {
    const auto r = run_moat(with(run, b.args));
    INFO(b.says);
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(contains(r.err, b.says), r.err);
  }
  CHECK(contains(run_moat({"run", "--cpu-moe", "-p", "x"}).err, "--moe-device cpu"));
  CHECK(contains(run_moat({"run", "--n-cpu-moe", "3", "-p", "x"}).err, "--n-moe-device"));
  CHECK(contains(run_moat({"run", "--help"}).out, "--moe-device"));
}
