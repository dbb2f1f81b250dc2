#include "samples/moat/temp_dir.h"

#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "support/error.h"

namespace moat::cli {

namespace {

// The directories alive. Never destroyed, so the watching thread may use them while
// the process exits.
struct Registry {
  std::mutex mutex;
  std::set<std::string> dirs;
};
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

sigset_t cleanup_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

[[noreturn]] void watch(sigset_t set) {
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);  // held to the end: no directory is made after
    for (const std::string& dir : r.dirs) {
      std::error_code error;  // tried again when a file appeared in it meanwhile (other threads still run)
      for (int attempt = 0; attempt < 3 && (attempt == 0 || error); ++attempt) std::filesystem::remove_all(dir, error);
    }
    // Ends the process by `sig`, delivered to this thread only, its default action restored.
    std::signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    raise(sig);
  }
  std::_Exit(128 + sig);  // the default action of SIGINT, SIGTERM and SIGHUP ends the process; not reached
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
  std::error_code error;
  const std::filesystem::path tmp = std::filesystem::temp_directory_path(error);
  if (error) user_error("no temporary directory (", error.message(), "); set TMPDIR to a writable directory");
  std::string pattern = (tmp / (prefix + "XXXXXX")).string();
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!::mkdtemp(pattern.data()))
    user_error("cannot create a temporary directory (", pattern, "): ", std::strerror(errno),
               "; set TMPDIR to a writable directory");
  path_ = pattern;
  r.dirs.insert(pattern);
}

TempDir::~TempDir() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
  r.dirs.erase(path_.string());
}

void remove_temp_dirs_on_signals() {
  static std::once_flag once;
  std::call_once(once, [] {
    const sigset_t set = cleanup_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread(watch, set).detach();
  });
}

}  // namespace moat::cli
