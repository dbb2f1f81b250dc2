// Runs the moat binary as a user would (posix_spawn, its own stdout / stderr files,
// standard input from a given text or /dev/null) and returns what it printed.
// run_moat waits for it; start_moat / wait_moat let a test act on the running process
// (read its output so far, send it a signal).
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace moat::testing {

struct CliResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out, err;
};

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A moat process started by start_moat; its output goes to files readable while it runs.
struct CliProcess {
  pid_t pid = -1;
  std::string out_path, err_path, in_path;
  std::string out() const { return read_all(out_path); }  // standard output so far
  std::string err() const { return read_all(err_path); }
  void signal(int sig) const { REQUIRE(::kill(pid, sig) == 0); }
};

// `PROGRAM ARGS...` with `input` on standard input, running.
inline CliProcess start_program(const std::string& program, const std::vector<std::string>& args, const std::string& input = "") {
  static std::atomic<int> started{0};
  const auto dir = std::filesystem::temp_directory_path();
  const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(started++);
  CliProcess p;
  p.out_path = dir / ("moat_cli_out_" + tag);
  p.err_path = dir / ("moat_cli_err_" + tag);
  p.in_path = dir / ("moat_cli_in_" + tag);
  std::ofstream(p.in_path, std::ios::binary) << input;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, p.in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, p.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, p.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv_storage{program};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int spawned = posix_spawn(&p.pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(spawned == 0);
  return p;
}

// `moat ARGS...` with `input` on standard input, running.
inline CliProcess start_moat(const std::vector<std::string>& args, const std::string& input = "") {
  return start_program(MOAT_CLI_PATH, args, input);
}

// Waits for the process to end; returns what it printed and removes its files.
inline CliResult wait_moat(const CliProcess& p) {
  int status = 0;
  REQUIRE(waitpid(p.pid, &status, 0) == p.pid);
  CliResult r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = p.out();
  r.err = p.err();
  for (const std::string& path : {p.out_path, p.err_path, p.in_path}) std::filesystem::remove(path);
  return r;
}

// Polls `p`'s standard output every 10 ms until `ready` accepts it; false after
// `timeout` or when the process has ended.
inline bool wait_for_output(const CliProcess& p, const std::function<bool(const std::string&)>& ready,
                            std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (ready(p.out())) return true;
    siginfo_t info{};  // WNOWAIT: an ended process stays for wait_moat to reap
    if (waitid(P_PID, static_cast<id_t>(p.pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != 0)
      return ready(p.out());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// `moat ARGS...` with `input` on standard input, to the end.
inline CliResult run_moat(const std::vector<std::string>& args, const std::string& input = "") {
  return wait_moat(start_moat(args, input));
}

}  // namespace moat::testing
