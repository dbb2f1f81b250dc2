// The C sample (samples/c/generate.c, on libmoat.so) against `moat run --tokens`: the
// same prompt ids, seed and sampling options give the same generated ids, greedy and
// sampled.
#include <doctest/doctest.h>

#include <sstream>

#include "tests/cli/cli_runner.h"
#include "tests/skip.h"

namespace {

using moat::testing::CliResult;
using moat::testing::contains;

const std::string kDemo = std::string(MOAT_SOURCE_DIR) + "/models/kjv-tiny.gguf";

// `path ARGS...`, to the end (standard input /dev/null), with its output.
CliResult run_program(const std::string& path, const std::vector<std::string>& args) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string tag = std::to_string(::getpid());
  const std::string out_path = dir / ("moat_c_sample_out_" + tag), err_path = dir / ("moat_c_sample_err_" + tag);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> storage{path};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(spawned == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = moat::testing::read_all(out_path);
  r.err = moat::testing::read_all(err_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return r;
}

// The ids after `label` on a line "label: 1 2 3" of `text`.
std::string line_after(const std::string& text, const std::string& label) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(label + ":", 0) == 0) return line.size() > label.size() + 2 ? line.substr(label.size() + 2) : "";
  FAIL("no line '", label, ":' in: ", text);
  return "";
}

std::string commas(std::string ids) {
  for (char& c : ids)
    if (c == ' ') c = ',';
  return ids;
}

// generate and moat run with the same prompt, count, seed and temperature; the other
// options are llama.cpp's defaults on both sides, given explicitly to moat run.
void check_same_ids(const std::string& device, const std::string& n, const std::string& seed, const std::string& temp) {
  CAPTURE(device);
  CAPTURE(temp);
  const CliResult c = run_program(MOAT_C_SAMPLE_PATH, {kDemo, device, "In the beginning God created", n, seed, temp});
  REQUIRE_MESSAGE(c.exit_code == 0, c.err);
  const std::string prompt = line_after(c.out, "prompt"), generated = line_after(c.out, "generated");
  CHECK(contains(c.out, "text: In the beginning God created"));
  const CliResult cli = moat::testing::run_moat(
      {"run", "-m", kDemo, "--device", device, "--tokens", commas(prompt), "-n", n, "--seed", seed, "--temp", temp,
       "--top-k", "40", "--top-p", "0.95", "--min-p", "0.05", "--repeat-penalty", "1", "--repeat-last-n", "64",
       "--presence-penalty", "0", "--frequency-penalty", "0"});
  REQUIRE_MESSAGE(cli.exit_code == 0, cli.err);
  std::string cli_ids = cli.out;
  while (!cli_ids.empty() && cli_ids.back() == '\n') cli_ids.pop_back();
  CHECK(!generated.empty());
  CHECK(generated == cli_ids);
}

}  // namespace

TEST_CASE("capi: the C sample generates moat run's ids, greedy") { check_same_ids("cpu", "24", "1", "0"); }

TEST_CASE("capi: the C sample generates moat run's ids, sampled at temperature 0.8 with seed 7") {
  check_same_ids("cpu", "24", "7", "0.8");
}

TEST_CASE("capi: the C sample reports a missing model and an unknown device as user errors") {
  const CliResult missing = run_program(MOAT_C_SAMPLE_PATH, {"/nonexistent/m.gguf", "cpu", "x", "1", "1"});
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.err, "MOAT_ERROR_USER"));
  CHECK(contains(missing.err, "/nonexistent/m.gguf"));
  const CliResult device = run_program(MOAT_C_SAMPLE_PATH, {kDemo, "nodevice:0", "x", "1", "1"});
  CHECK(device.exit_code == 2);
  CHECK(contains(device.err, "nodevice:0"));
}
