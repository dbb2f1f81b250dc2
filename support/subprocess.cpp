#include "support/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "support/error.h"

extern char** environ;

namespace moat {

namespace {

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Closes a file descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string find_executable(std::string_view name, std::initializer_list<std::string_view> fallback_dirs) {
  if (name.find('/') != std::string_view::npos) return is_executable_file(std::string(name)) ? std::string(name) : "";
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest = path;
    while (true) {
      size_t colon = rest.find(':');
      std::string_view dir = rest.substr(0, colon);
      if (!dir.empty()) dirs.emplace_back(dir);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (std::string_view dir : fallback_dirs) dirs.emplace_back(dir);
  for (const std::string& dir : dirs) {
    std::string candidate = dir + "/" + std::string(name);
    if (is_executable_file(candidate)) return candidate;
  }
  return "";
}

ProcessResult run_process(const std::vector<std::string>& argv) {
  MOAT_INTERNAL_CHECK(!argv.empty(), "run_process without a program");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) user_error("cannot run ", argv[0], ": pipe: ", std::strerror(errno));
  Fd read_end{fds[0]}, write_end{fds[1]};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.fd, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The child starts with no signal blocked, whatever this thread blocks (moat bench
  // blocks SIGINT / SIGTERM / SIGHUP in its threads and handles them in one).
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) user_error("cannot run ", argv[0], ": ", std::strerror(rc));
  ::close(write_end.fd);
  write_end.fd = -1;

  ProcessResult result;
  char chunk[4096];
  while (true) {
    ssize_t n = ::read(read_end.fd, chunk, sizeof chunk);
    if (n > 0) result.output.append(chunk, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR) break;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

}  // namespace moat
