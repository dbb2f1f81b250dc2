#include "support/memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace moat {

namespace {

// The value of "KEY: N kB" in a /proc file, in bytes; 0 when absent.
uint64_t proc_kib_field(const char* file, std::string_view key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name, unit;
    uint64_t kib = 0;
    if (fields >> name >> kib >> unit && name == key && unit == "kB") return kib * 1024;
  }
  return 0;
}

}  // namespace

uint64_t available_host_memory() { return proc_kib_field("/proc/meminfo", "MemAvailable:"); }

uint64_t peak_resident_memory() { return proc_kib_field("/proc/self/status", "VmHWM:"); }

bool reset_peak_resident_memory() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

void release_host_pages(const void* data, uint64_t bytes) {
#if defined(__linux__) && defined(MADV_PAGEOUT)
  const long page = ::sysconf(_SC_PAGESIZE);
  if (page <= 0 || data == nullptr) return;
  const auto begin = reinterpret_cast<uintptr_t>(data), end = begin + bytes;
  const uintptr_t first = (begin + static_cast<uintptr_t>(page) - 1) / static_cast<uintptr_t>(page) * static_cast<uintptr_t>(page);
  const uintptr_t last = end / static_cast<uintptr_t>(page) * static_cast<uintptr_t>(page);
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);  // a hint: errors ignored
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace moat
