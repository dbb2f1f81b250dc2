// moat run / perplexity across processes: `mpirun -np 2 moat ... --mpi pipeline|expert` on
// loopback, one rank on the CPU and one on OpenCL (PoCL; both on the CPU without it):
// the same greedy tokens as one process for the demo model and golden models, the same
// perplexity, and a rank that is killed or stopped makes the job end non-zero with a
// message within 30 s. Skipped without mpirun (Debian: openmpi-bin).
#include <doctest/doctest.h>
#include <dirent.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
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

const std::string kGoldens = std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/";

std::string mpirun_path() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin"}) {
    const std::string path = std::string(dir) + "/mpirun";
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

// The environment every mpirun here needs: root allowed (CI runs as root), and no leak
// report from OpenMPI's own allocations under the sanitizers.
void prepare_environment() {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
  const char* asan = std::getenv("ASAN_OPTIONS");
  setenv("ASAN_OPTIONS", (std::string(asan ? asan : "") + (asan && *asan ? ":" : "") + "detect_leaks=0").c_str(), 1);
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

moat::testing::CliResult mpirun(const std::vector<std::string>& moat_args) {
  return moat::testing::wait_moat(moat::testing::start_program(mpirun_path(), with({"-np", "2", MOAT_CLI_PATH}, moat_args)));
}

std::string two_devices() { return run_moat({"devices"}).out.find("opencl:0") != std::string::npos ? "cpu,opencl:0" : "cpu"; }

// The pids of `parent`'s child processes named moat.
std::vector<pid_t> moat_children(pid_t parent) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (!proc) return out;
  while (dirent* e = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t close = text.rfind(')');
    if (close == std::string::npos || text.find("(moat)") == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (std::sscanf(text.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) out.push_back(pid);
  }
  closedir(proc);
  return out;
}

}  // namespace

TEST_CASE("mpirun -np 2 --mpi pipeline and --mpi expert give one process's greedy tokens and perplexity") {
  if (mpirun_path().empty()) {
    moat::testing::skip("no mpirun (Debian: apt install openmpi-bin)");
    return;
  }
  prepare_environment();
  const std::string devices = two_devices();
  for (const std::string& model : {std::string(MOAT_SOURCE_DIR) + "/models/kjv-tiny.gguf", kGoldens + "v3/model-f32.gguf",
                                   kGoldens + "v2_lite/model-f32.gguf"}) {
    const std::vector<std::string> run = {"run", "-m", model, "--tokens", "1,65,77,100,12,25,3,99", "-n", "16", "--temp", "0"};
    const auto single = run_moat(run);
    REQUIRE(single.exit_code == 0);
    REQUIRE_FALSE(single.out.empty());
    for (const char* mode : {"pipeline", "expert"}) {
      INFO(model, " --mpi ", mode, " on ", devices);
      const auto ranks = mpirun(with(run, {"--mpi", mode, "--device", devices}));
      CHECK_MESSAGE(ranks.exit_code == 0, ranks.err);
      CHECK(ranks.out == single.out);  // rank 0 prints; the others are silent
      CHECK(contains(ranks.err, std::string("rank 0 of 2, --mpi ") + mode));
    }
  }
  // moat bench --mpi: one row, every rank's share of the bytes that cross per token: the
  // pipeline's one hidden state (f32, 256), expert's share of 3 MoE layers to the other rank.
  for (const auto& [mode, bytes] : {std::pair<const char*, double>{"pipeline", 1024.0}, {"expert", 3072.0}}) {
    const auto bench = mpirun({"bench", "--mpi", mode, "--device", devices, "-p", "8", "-n", "4", "-r", "1", "-o", "json"});
    REQUIRE_MESSAGE(bench.exit_code == 0, bench.err);
    const nlohmann::json rows = nlohmann::json::parse(bench.out);
    REQUIRE(rows.size() == 2);
    for (const nlohmann::json& row : rows) {
      CHECK(row["moved_bytes_per_token"].get<double>() == bytes);
      CHECK(contains(row["placement"].get<std::string>(), std::string("--mpi ") + mode));
    }
  }

  const std::string text = (std::filesystem::temp_directory_path() / "moat_mpi_ppl.txt").string();
  {
    std::ofstream out(text);
    for (int i = 0; i < 8; ++i) out << "In the beginning God created the heaven and the earth. And the earth was without form. ";
  }
  const auto one = run_moat({"perplexity", "-f", text, "--ctx", "64", "--json"});
  const auto two = mpirun({"perplexity", "-f", text, "--ctx", "64", "--json", "--mpi", "pipeline", "--device", devices});
  REQUIRE(one.exit_code == 0);
  REQUIRE_MESSAGE(two.exit_code == 0, two.err);
  const double a = nlohmann::json::parse(one.out)["perplexity"], b = nlohmann::json::parse(two.out)["perplexity"];
  CHECK(std::fabs(a - b) <= 1e-5 * a);
}

TEST_CASE("a rank that dies or hangs ends the job non-zero with a message within 30 s") {
  if (mpirun_path().empty()) {
    moat::testing::skip("no mpirun (Debian: apt install openmpi-bin)");
    return;
  }
  prepare_environment();
  // A long job: perplexity over much text, both ranks on the CPU.
  const std::string text = (std::filesystem::temp_directory_path() / "moat_mpi_long.txt").string();
  {
    std::ofstream out(text);
    for (int i = 0; i < 4000; ++i) out << "And God said, Let there be light: and there was light. ";
  }
  for (int sig : {SIGKILL, SIGSTOP}) {
    INFO("signal ", sig);
    const auto start = std::chrono::steady_clock::now();
    moat::testing::CliProcess job = moat::testing::start_program(
        mpirun_path(), {"-np", "2", MOAT_CLI_PATH, "perplexity", "-f", text, "--ctx", "128", "--mpi", "pipeline", "--mpi-timeout", "5"});
    std::vector<pid_t> ranks;
    while (ranks.size() < 2 && std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ranks = moat_children(job.pid);
    }
    REQUIRE(ranks.size() == 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // both ranks at work
    const auto hit = std::chrono::steady_clock::now();
    REQUIRE(::kill(ranks[1], sig) == 0);
    const moat::testing::CliResult r = moat::testing::wait_moat(job);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - hit).count();
    CHECK(seconds < 30);
    CHECK(r.exit_code != 0);
    if (sig == SIGSTOP) CHECK_MESSAGE(contains(r.err, "silent for 5 s"), r.err);  // the rank that waited says why it stops
    CHECK_MESSAGE((contains(r.err, "rank") || contains(r.out, "rank")), r.err);
    ::kill(ranks[1], SIGKILL);  // a stopped rank mpirun did not reap
  }
}
