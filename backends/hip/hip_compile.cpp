#include "backends/hip/hip_compile.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "backends/hip/hip_api.h"
#include "support/error.h"

namespace moat::backends::hip {

namespace {

constexpr int kTimeoutSeconds = 600;  // a compile that takes longer is hung: the child is killed
constexpr uint32_t kMagic = 0x6d6f6174;  // "moat": the start of a child's reply

// What the child writes first; then `log_bytes` of log and `code_bytes` of code object.
struct ReplyHeader {
  uint32_t magic = kMagic;
  uint32_t ok = 0;
  uint64_t log_bytes = 0;
  uint64_t code_bytes = 0;
};

bool is_gfx_arch(std::string_view arch) {
  if (arch.size() < 4 || arch.substr(0, 3) != "gfx") return false;
  for (char c : arch)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == ':' || c == '+' || c == '-')) return false;
  return true;
}

bool write_all(int fd, const void* data, size_t bytes) {
  const char* at = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::write(fd, at, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    at += n;
    bytes -= static_cast<size_t>(n);
  }
  return true;
}

// Runs in the forked child: compiles, writes the reply to `fd` and exits without
// running any destructor or atexit handler of the parent's state.
[[noreturn]] void compile_in_child(const HiprtcApi& api, const char* source, const char* arch_option, int fd) {
  // A hiprtc that aborts just ends the child: no core file, and none of the parent's
  // crash handlers (a test framework's, an application's) run here.
  rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP}) ::signal(sig, SIG_DFL);
  std::string log, code;
  bool ok = false;
  hiprtcProgram program = nullptr;
  hiprtcResult rc = api.hiprtcCreateProgram(&program, source, "moat_kernels.hip", 0, nullptr, nullptr);
  if (rc == HIPRTC_SUCCESS) {
    const char* options[] = {arch_option, "-O3"};
    rc = api.hiprtcCompileProgram(program, 2, options);
    size_t bytes = 0;
    if (api.hiprtcGetProgramLogSize(program, &bytes) == HIPRTC_SUCCESS && bytes > 1) {
      log.resize(bytes);
      api.hiprtcGetProgramLog(program, log.data());
      log.resize(std::strlen(log.c_str()));
    }
    if (rc == HIPRTC_SUCCESS && api.hiprtcGetCodeSize(program, &bytes) == HIPRTC_SUCCESS && bytes > 0) {
      code.resize(bytes);
      ok = api.hiprtcGetCode(program, code.data()) == HIPRTC_SUCCESS;
    }
    api.hiprtcDestroyProgram(&program);
  }
  if (!ok && log.empty()) {
    const char* error = api.hiprtcGetErrorString ? api.hiprtcGetErrorString(rc) : nullptr;
    log = error ? error : "hiprtc failed without a log";
  }
  ReplyHeader header;
  header.ok = ok ? 1 : 0;
  header.log_bytes = log.size();
  header.code_bytes = ok ? code.size() : 0;
  bool sent = write_all(fd, &header, sizeof header) && write_all(fd, log.data(), log.size()) &&
              (!ok || write_all(fd, code.data(), code.size()));
  ::_exit(sent ? 0 : 3);
}

// Reads the child's whole reply (until it closes the pipe); false on timeout.
bool read_reply(int fd, std::string& reply) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kTimeoutSeconds);
  char chunk[65536];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    reply.append(chunk, static_cast<size_t>(n));
  }
}

// What the child's reply and exit status say.
HipCompileResult decode(const std::string& reply, int status, bool timed_out, std::string_view arch,
                        const HiprtcApi& api) {
  HipCompileResult result;
  if (timed_out) {
    result.log = cat("hiprtc did not finish compiling for ", arch, " within ", kTimeoutSeconds, " s");
    return result;
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    result.log = cat("hiprtc (", api.library, ", version ", api.major, ".", api.minor, ") crashed (signal ", sig, ": ",
                     ::strsignal(sig), ") compiling for ", arch, ": this hiprtc cannot target ", arch,
                     " (Debian's ROCm 5.2 knows gfx9 and gfx10 targets such as gfx90a and gfx1030, not gfx11 or "
                     "gfx94x); install a ROCm that supports it");
    return result;
  }
  ReplyHeader header;
  if (reply.size() < sizeof header) {
    result.log = cat("the hiprtc process compiling for ", arch, " exited (status ",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1, ") without a reply");
    return result;
  }
  std::memcpy(&header, reply.data(), sizeof header);
  MOAT_INTERNAL_CHECK(header.magic == kMagic && reply.size() == sizeof header + header.log_bytes + header.code_bytes,
                      "malformed reply of the hiprtc child (", reply.size(), " bytes)");
  result.ok = header.ok != 0;
  result.log = reply.substr(sizeof header, header.log_bytes);
  const char* code = reply.data() + sizeof header + header.log_bytes;
  result.code.assign(code, code + header.code_bytes);
  return result;
}

}  // namespace

bool hip_compiler_available() {
  std::string why;
  return load_hiprtc_api(why) != nullptr;
}

std::string hip_compiler_unavailable_reason() {
  std::string why;
  load_hiprtc_api(why);
  return why;
}

std::string hip_compiler_version() {
  std::string why;
  const HiprtcApi* api = load_hiprtc_api(why);
  return api ? cat("hiprtc ", api->major, ".", api->minor, " (", api->library, ")") : std::string();
}

HipCompileResult compile_hip_source(std::string_view source, std::string_view arch) {
  if (!is_gfx_arch(arch)) user_error("'", arch, "' is not an AMD GPU architecture; use gfxN, e.g. gfx90a or gfx1030");
  std::string why;
  const HiprtcApi* api = load_hiprtc_api(why);
  if (!api) user_error("cannot compile HIP: ", why);
  // Everything the child needs is made before fork: it only calls hiprtc and write().
  std::string text(source);
  std::string arch_option = cat("--offload-arch=", arch);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) user_error("cannot compile HIP: pipe: ", std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    user_error("cannot compile HIP: fork: ", std::strerror(errno));
  }
  if (pid == 0) {
    ::close(fds[0]);
    compile_in_child(*api, text.c_str(), arch_option.c_str(), fds[1]);
  }
  ::close(fds[1]);
  std::string reply;
  bool finished = read_reply(fds[0], reply);
  ::close(fds[0]);
  if (!finished) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return decode(reply, status, !finished, arch, *api);
}

std::string check_hip(std::string_view source, std::string_view arch) {
  HipCompileResult result = compile_hip_source(source, arch);
  if (result.ok) return "";
  return result.log.empty() ? "hiprtc failed without a log" : result.log;
}

Artifact compile_hip(const Artifact& source, std::string_view arch) {
  if (source.format != "hip") user_error("HIP devices compile HIP C++ ('hip' artifacts), not '", source.format, "'");
  HipCompileResult result = compile_hip_source(source.as_text(), arch);
  std::string what = source.kernels.empty() ? std::string("(none)") : join(source.kernels, ", ");
  if (!result.ok) user_error("HIP source of kernels ", what, " does not compile for ", arch, ":\n", result.log);
  Artifact binary;
  binary.format = "hsaco";
  binary.bytes = std::move(result.code);
  binary.kernels = source.kernels;
  return binary;
}

}  // namespace moat::backends::hip
