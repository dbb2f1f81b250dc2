// `moat bench` as llama-bench users expect it: the defaults run on the demo model,
// comma lists make one row per combination, -o prints md, csv, json or jsonl to stdout
// (each parsed here), bad values are exit 2 naming them, a file option of - means
// stdout, and the temporary kernel cache of --cold is gone after every exit, SIGINT and
// SIGTERM included. Small tests (-p / -n of a few tokens, -r 1) on the CPU.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/cli/cli_runner.h"

namespace {

using Result = moat::testing::CliResult;
using moat::testing::contains;
using moat::testing::read_all;
using moat::testing::run_moat;

// The fields llama-bench writes that moat bench has too (its JSON, JSONL and CSV).
const std::vector<std::string> kLlamaBenchFields = {
    "build_commit", "cpu_info", "backends", "model_filename", "model_type", "model_size", "model_n_params",
    "n_batch", "n_ubatch", "n_threads", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns",
    "avg_ts", "stddev_ts"};

// One CSV line split into its fields (quoted fields, "" for a quote inside).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
      out.back() += '"';
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// The entries of `dir` whose names begin with moat bench's temporary prefix.
std::vector<std::string> bench_temp_dirs(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().filename().string().starts_with("moat-bench-")) out.push_back(entry.path().string());
  return out;
}

// A private $TMPDIR for one test, removed with this object.
struct PrivateTmp {
  std::filesystem::path path;
  PrivateTmp() {
    path = std::filesystem::temp_directory_path() / ("moat-bench-cli-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~PrivateTmp() { std::filesystem::remove_all(path); }
};

// `moat ARGS...` started with TMPDIR=tmp (stdout and stderr to files), not waited for.
pid_t spawn_moat(const std::vector<std::string>& args, const std::string& tmp, const std::string& out_path,
                 const std::string& err_path) {
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e)
    if (!std::string_view(*e).starts_with("TMPDIR=")) env_storage.emplace_back(*e);
  env_storage.push_back("TMPDIR=" + tmp);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_storage{MOAT_CLI_PATH};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, MOAT_CLI_PATH, &actions, nullptr, argv.data(), envp.data()) == 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

}  // namespace

TEST_CASE("bench: the defaults run on the demo model, pp and tg capped to its context with a note") {
  // The command: every option but the device left at its default.
  Result r = run_moat({"bench", "--device", "cpu"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(contains(r.err, "-p 512 (the default) does not fit the model's context of 256 tokens; running pp256"));
  CHECK(contains(r.out, "| pp256 |"));
  CHECK(contains(r.out, "| tg128 |"));  // 128 + the one-token prompt fit: not capped
  CHECK(!contains(r.err, "-n 128 (the default)"));
  CHECK(contains(r.out, "| compile ms |"));  // warm cache: one number, not cold / warm
  // A value given that passes the context is capped with a note, as moat run -n is.
  Result too_long = run_moat({"bench", "--device", "cpu", "-p", "8", "-n", "300,400", "-r", "1"});
  CHECK(too_long.exit_code == 0);
  CHECK(contains(too_long.err, "note: -n 300 does not fit the model's context of 256 tokens; running tg255 instead"));
  CHECK(contains(too_long.err, "note: -n 400 does not fit"));
  CHECK(contains(too_long.out, "| tg255 |"));
  // The defaults are capped after the largest depth.
  Result deep = run_moat({"bench", "--device", "cpu", "-d", "250", "-r", "1"});
  REQUIRE_MESSAGE(deep.exit_code == 0, deep.err);
  CHECK(contains(deep.out, "| pp6 @ d250 |"));
  CHECK(contains(deep.out, "| tg5 @ d250 |"));
}

TEST_CASE("bench -o json: every combination of -p and -n a row, llama-bench's fields, stdout only JSON") {
  Result r = run_moat({"bench", "--device", "cpu", "-p", "16,32", "-n", "8", "-r", "1", "-o", "json"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const nlohmann::json rows = nlohmann::json::parse(r.out);  // throws (fails the test) on anything else
  REQUIRE(rows.is_array());
  REQUIRE(rows.size() == 3);
  const char* tests[] = {"pp16", "pp32", "tg8"};
  const int prompt[] = {16, 32, 0}, gen[] = {0, 0, 8};
  for (size_t i = 0; i < 3; ++i) {
    const nlohmann::json& j = rows[i];
    for (const std::string& field : kLlamaBenchFields) CHECK_MESSAGE(j.contains(field), field);
    for (const char* field : {"samples_ns", "samples_ts", "test", "device", "load_ms", "compile_ms", "compile_warm_ms",
                              "kernels_compiled", "peak_bytes", "bandwidth_share"})
      CHECK_MESSAGE(j.contains(field), field);
    CHECK(j["test"] == tests[i]);
    CHECK(j["n_prompt"] == prompt[i]);
    CHECK(j["n_gen"] == gen[i]);
    CHECK(j["n_depth"] == 0);
    CHECK(j["n_batch"] == 512);
    CHECK(j["device"] == "cpu");
    CHECK(j["n_threads"].get<int>() > 0);
    CHECK(j["samples_ns"].size() == 1);
    CHECK(j["avg_ts"].get<double>() > 0);
    CHECK(j["avg_ns"].get<uint64_t>() > 0);
    CHECK(j["compile_ms"].get<double>() >= 0);
    CHECK(j["compile_cold"] == false);
    CHECK(j["compile_warm_ms"].is_null());  // only with --cold
  }
  CHECK(rows[2]["bandwidth_share"].get<double>() > 0);

  // -d and -b lists multiply: batch outermost, then depth, then the tests.
  Result grid = run_moat({"bench", "--device", "cpu", "-p", "8", "-n", "2", "-d", "0,4", "-b", "4,8", "-r", "1", "-o", "json"});
  REQUIRE_MESSAGE(grid.exit_code == 0, grid.err);
  const nlohmann::json g = nlohmann::json::parse(grid.out);
  REQUIRE(g.size() == 8);
  std::vector<std::string> order;
  for (const auto& j : g) order.push_back(j["test"].get<std::string>() + " b" + std::to_string(j["n_batch"].get<int>()));
  CHECK(order == std::vector<std::string>{"pp8 b4", "tg2 b4", "pp8 @ d4 b4", "tg2 @ d4 b4", "pp8 b8", "tg2 b8",
                                          "pp8 @ d4 b8", "tg2 @ d4 b8"});
  // Markdown shows the batch when it is not the default.
  Result md = run_moat({"bench", "--device", "cpu", "-p", "8", "-n", "0", "-b", "4,8", "-r", "1"});
  REQUIRE_MESSAGE(md.exit_code == 0, md.err);
  CHECK(contains(md.out, "| threads | n_batch | test |"));
}

TEST_CASE("bench --parallel: tg rows with several sequences decoded together, aggregate tokens per second") {
  Result r = run_moat({"bench", "--device", "cpu", "-p", "0", "-n", "4", "--parallel", "1,3", "-r", "2", "-o", "json"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const nlohmann::json rows = nlohmann::json::parse(r.out);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["test"] == "tg4");
  CHECK(rows[0]["n_seq"] == 1);
  CHECK(rows[1]["test"] == "tg4 x3");
  CHECK(rows[1]["n_seq"] == 3);
  CHECK(rows[1]["n_gen"] == 4);
  // 12 tokens per run: the rate counts every sequence's tokens.
  const double ns = rows[1]["samples_ns"][0].get<double>();
  CHECK(rows[1]["samples_ts"][0].get<double>() == doctest::Approx(12e9 / ns).epsilon(1e-6));
  CHECK(rows[1]["bandwidth_share"].is_null());  // one token's bytes do not describe a pass of three
  CHECK(rows[1]["decode_gbs"].is_null());
  Result md = run_moat({"bench", "--device", "cpu", "-p", "0", "-n", "2", "-npl", "2", "-r", "1"});
  REQUIRE_MESSAGE(md.exit_code == 0, md.err);
  CHECK(contains(md.out, " tg2 x2 | "));
  CHECK(!contains(md.out, "of unknown"));
  Result bad = run_moat({"bench", "--device", "cpu", "-n", "4", "--parallel", "0"});
  CHECK(bad.exit_code == 2);
  CHECK(contains(bad.err, "--parallel"));
}

TEST_CASE("bench --spec mtp: tg rows by speculative decoding with the drafts' acceptance") {
  Result r = run_moat({"bench", "--device", "cpu", "-p", "0", "-n", "8", "--spec", "mtp", "--draft", "1,2", "-r", "2", "-o", "json"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const nlohmann::json rows = nlohmann::json::parse(r.out);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["test"] == "tg8");
  CHECK(rows[0]["n_draft"] == 0);
  CHECK(rows[1]["test"] == "tg8 mtp1");
  CHECK(rows[2]["test"] == "tg8 mtp2");
  for (int i = 1; i <= 2; ++i) {
    CHECK(rows[i]["n_draft"] == i);
    CHECK(rows[i]["n_gen"] == 8);
    const double acceptance = rows[i]["draft_acceptance"].get<double>();
    CHECK(acceptance >= 0.0);
    CHECK(acceptance <= 1.0);
    CHECK(rows[i]["draft_accepted_per_pass"].get<double>() >= 1.0);
    CHECK(rows[i]["bandwidth_share"].is_null());  // weights are read per pass, not per token
  }
  Result md = run_moat({"bench", "--device", "cpu", "-p", "0", "-n", "4", "--spec", "mtp", "-r", "1"});
  REQUIRE_MESSAGE(md.exit_code == 0, md.err);
  CHECK(contains(md.out, " tg4 mtp1 | "));
  CHECK(contains(md.out, "drafts accepted "));
  Result none = run_moat({"bench", "-m", std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/v3", "--device", "cpu", "-p", "0",
                          "-n", "4", "--spec", "mtp"});
  CHECK(none.exit_code == 2);
  CHECK(contains(none.err, "has no MTP layers"));
}

TEST_CASE("bench -o csv and -o jsonl parse, a row a line") {
  Result csv = run_moat({"bench", "--device", "cpu", "-p", "8", "-n", "4", "-r", "1", "-o", "csv"});
  REQUIRE_MESSAGE(csv.exit_code == 0, csv.err);
  const std::vector<std::string> lines = lines_of(csv.out);
  REQUIRE(lines.size() == 3);  // the header, pp8, tg4
  const std::vector<std::string> header = csv_fields(lines[0]);
  for (const std::string& field : kLlamaBenchFields)
    CHECK_MESSAGE(std::find(header.begin(), header.end(), field) != header.end(), field);
  CHECK(std::find(header.begin(), header.end(), "samples_ns") == header.end());  // lists are left out, as llama-bench
  auto column = [&](const char* name) { return std::find(header.begin(), header.end(), name) - header.begin(); };
  for (size_t i = 1; i < 3; ++i) {
    const std::vector<std::string> row = csv_fields(lines[i]);
    REQUIRE(row.size() == header.size());
    CHECK(row[column("test")] == (i == 1 ? "pp8" : "tg4"));
    CHECK(std::stod(row[column("avg_ts")]) > 0);
    CHECK(row[column("compile_warm_ms")].empty());  // null
  }

  Result jsonl = run_moat({"bench", "--device", "cpu", "-p", "8", "-n", "4", "-r", "1", "-o", "jsonl"});
  REQUIRE_MESSAGE(jsonl.exit_code == 0, jsonl.err);
  const std::vector<std::string> objects = lines_of(jsonl.out);
  REQUIRE(objects.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    const nlohmann::json j = nlohmann::json::parse(objects[i]);
    REQUIRE(j.is_object());
    for (const std::string& field : kLlamaBenchFields) CHECK_MESSAGE(j.contains(field), field);
    CHECK(j["test"] == (i == 0 ? "pp8" : "tg4"));
  }
}

TEST_CASE("bench: a bad -o or list item is exit 2 naming it") {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"-o", "xml"}, "-o xml: not an output format; give md (the default), csv, json or jsonl"},
      {{"-p", "16,x"}, "-p 16,x: 'x' is not a number of prompt tokens"},
      {{"-n", "8,,16"}, "-n 8,,16: an empty item is not a number of generated tokens"},
      {{"-d", "0,-4"}, "-d 0,-4: '-4' is not a depth"},
      {{"-b", "0"}, "-b 0: '0' is not a batch"},
      {{"-t", "1,two"}, "-t 1,two: 'two' is not a thread count"},
      {{"-o", "json", "--json", "-"}, "-o and --json - both write to stdout"},
      {{"--json", "-", "--svg", "-"}, "--json - and --svg - both write to stdout"},
      {{"-p", "0", "-n", "0,0"}, "nothing to measure"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"bench", "--device", "cpu", "-r", "1"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Result r = run_moat(args);
    CHECK_MESSAGE(r.exit_code == 2, c.message);
    CHECK_MESSAGE(contains(r.err, c.message), r.err);
    CHECK(r.out.empty());
  }
}

TEST_CASE("bench: a file option of - writes to stdout, not to a file named -") {
  const std::filesystem::path dash = std::filesystem::current_path() / "-";
  if (std::filesystem::exists(dash)) {  // left by an older moat: its absence cannot be checked here
    MESSAGE("a file named - exists in ", std::filesystem::current_path().string(), "; not checked");
    return;
  }
  Result json = run_moat({"bench", "--device", "cpu", "-p", "8", "-n", "4", "-r", "1", "--json", "-"});
  REQUIRE_MESSAGE(json.exit_code == 0, json.err);
  CHECK_FALSE(std::filesystem::exists(dash));
  const nlohmann::json rows = nlohmann::json::parse(json.out);  // the JSON alone: no table before it
  CHECK(rows.size() == 2);
  Result svg = run_moat({"bench", "--device", "cpu", "-p", "8", "-n", "0", "-r", "1", "--svg", "-"});
  REQUIRE_MESSAGE(svg.exit_code == 0, svg.err);
  CHECK(svg.out.starts_with("<svg "));
  CHECK_FALSE(std::filesystem::exists(dash));
  // A file option with a path still writes its file, while stdout gets -o's form.
  PrivateTmp tmp;
  const std::string md_path = (tmp.path / "bench.md").string();
  Result both = run_moat({"bench", "--device", "cpu", "-p", "8", "-n", "0", "-r", "1", "-o", "jsonl", "--md", md_path});
  REQUIRE_MESSAGE(both.exit_code == 0, both.err);
  CHECK(nlohmann::json::parse(both.out)["test"] == "pp8");
  CHECK(contains(read_all(md_path), "| pp8 |"));
}

TEST_CASE("bench --cold: compile cold and warm, its temporary kernel cache removed on exit, SIGINT and SIGTERM") {
  PrivateTmp tmp;
  const std::string out = (tmp.path / "out").string(), err = (tmp.path / "err").string();
  const std::string tmpdir = (tmp.path / "tmp").string();
  std::filesystem::create_directories(tmpdir);

  // A run to the end: cold / warm in the table, nothing left behind.
  const pid_t done = spawn_moat({"bench", "--device", "cpu", "-p", "8", "-n", "2", "-r", "1", "--cold", "-o", "json"},
                                tmpdir, out, err);
  int status = 0;
  REQUIRE(waitpid(done, &status, 0) == done);
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), read_all(err));
  const nlohmann::json rows = nlohmann::json::parse(read_all(out));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["compile_cold"] == true);
  CHECK(rows[0]["compile_warm_ms"].is_number());
  CHECK(rows[0]["kernels_compiled"].get<uint64_t>() > 0);  // an empty cache compiles everything
  CHECK(bench_temp_dirs(tmpdir).empty());

  for (int sig : {SIGINT, SIGTERM}) {
    CAPTURE(sig);
    // Long enough to be interrupted: many repetitions after a cold compile.
    const pid_t pid = spawn_moat({"bench", "--device", "cpu", "-p", "8", "-n", "4", "-r", "10000", "--cold"}, tmpdir,
                                 out, err);
    // Wait for the temporary kernel cache to exist, then interrupt.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    bool exited = false;
    while (bench_temp_dirs(tmpdir).empty() && std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE_MESSAGE(!exited, "moat bench ended before making its temporary directory: ", read_all(err));
    REQUIRE_MESSAGE(!bench_temp_dirs(tmpdir).empty(), "no moat-bench-* directory appeared in ", tmpdir);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // into the cold compile
    REQUIRE(::kill(pid, sig) == 0);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    // Ended by the signal itself (as the shell expects), after removing the directory.
    CHECK_MESSAGE(WIFSIGNALED(status), read_all(err));
    if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == sig);
    CHECK(bench_temp_dirs(tmpdir).empty());
  }
}
