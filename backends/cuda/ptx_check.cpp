#include "backends/cuda/ptx_check.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "support/error.h"
#include "support/subprocess.h"

namespace moat::backends::cuda {

namespace {

bool is_sm_arch(std::string_view arch) {
  if (arch.size() < 5 || arch.substr(0, 3) != "sm_") return false;
  for (char c : arch.substr(3))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  return arch[3] >= '1' && arch[3] <= '9';
}

// A temporary file holding `text`, removed when this goes out of scope.
class TempFile {
 public:
  TempFile(std::string_view text, const char* suffix) {
    std::string pattern = (std::filesystem::temp_directory_path() / "moat-XXXXXX").string() + suffix;
    path_.assign(pattern.begin(), pattern.end());
    path_.push_back('\0');
    int fd = ::mkstemps(path_.data(), static_cast<int>(std::char_traits<char>::length(suffix)));
    if (fd < 0) user_error("cannot create a temporary file like ", pattern, ": ", std::strerror(errno));
    const char* at = text.data();
    size_t left = text.size();
    while (left > 0) {
      ssize_t n = ::write(fd, at, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fd);
        ::unlink(path_.data());
        user_error("cannot write the temporary file ", path_.data(), ": ", std::strerror(errno));
      }
      at += n;
      left -= static_cast<size_t>(n);
    }
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.data()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  std::string path() const { return path_.data(); }

 private:
  std::vector<char> path_;
};

}  // namespace

std::string ptxas_path() {
  static const std::string path = find_executable("ptxas", {"/usr/local/cuda/bin"});
  return path;
}

bool ptxas_available() { return !ptxas_path().empty(); }

std::string ptxas_version() {
  static const std::string version = [] {
    if (!ptxas_available()) return std::string();
    ProcessResult r = run_process({ptxas_path(), "--version"});
    // The last non-empty line: "Build cuda_13.0.r13.0/compiler..."; the one before is the release.
    std::string best;
    size_t at = 0;
    while (at < r.output.size()) {
      size_t end = r.output.find('\n', at);
      if (end == std::string::npos) end = r.output.size();
      std::string line = r.output.substr(at, end - at);
      if (line.find("release") != std::string::npos) best = line;
      at = end + 1;
    }
    return best;
  }();
  return version;
}

std::string check_ptx(std::string_view ptx, std::string_view arch) {
  if (!is_sm_arch(arch)) user_error("'", arch, "' is not a CUDA architecture; use sm_XY, e.g. sm_80 or sm_90a");
  if (!ptxas_available())
    user_error("ptxas not found on $PATH or in /usr/local/cuda/bin; install the CUDA toolkit to check PTX");
  TempFile file(ptx, ".ptx");
  ProcessResult r = run_process({ptxas_path(), cat("-arch=", arch), "-o", "/dev/null", file.path()});
  if (r.exit_code == 0) return "";
  std::string output = r.output;
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (output.empty())
    output = r.signal ? cat("ptxas was killed by signal ", r.signal) : cat("ptxas exited with status ", r.exit_code);
  return output;
}

}  // namespace moat::backends::cuda
