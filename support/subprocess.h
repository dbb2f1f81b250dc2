// Running a helper program (ptxas, a compiler) and capturing what it prints. The
// program is started with posix_spawn, so this is safe in a multithreaded process.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace moat {

struct ProcessResult {
  int exit_code = -1;   // the program's exit status; -1 when it did not exit normally
  int signal = 0;       // the signal that ended it, else 0
  std::string output;   // stdout and stderr, interleaved as written
};

// The path of executable `name`: the first match on $PATH, else in `fallback_dirs`
// (e.g. "/usr/local/cuda/bin"); "" when there is none.
std::string find_executable(std::string_view name, std::initializer_list<std::string_view> fallback_dirs = {});

// Runs argv[0] (a path) with arguments argv[1..] and waits for it; stdin is /dev/null.
// UserError naming the program when it cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv);

}  // namespace moat
