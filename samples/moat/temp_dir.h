// Temporary directories that do not outlive the process: each is removed by its
// destructor (a normal return, an exception) and, once remove_temp_dirs_on_signals()
// has run, when SIGINT, SIGTERM or SIGHUP ends the process.
#pragma once

#include <filesystem>
#include <string>

namespace moat::cli {

class TempDir {
 public:
  // A new empty directory <temp dir>/<prefix>XXXXXX ($TMPDIR, else /tmp); UserError
  // naming it when it cannot be made.
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every thread it
// starts afterwards, and starts one thread that waits for them: it removes every
// TempDir alive, then ends the process by the same signal (default action), so the
// shell sees what it would have seen. Call it before any other thread is started. Once
// per process; later calls do nothing.
void remove_temp_dirs_on_signals();

}  // namespace moat::cli
