#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "backends/registry.h"

namespace moat::backends {

namespace {

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Model name, vendor and physical core count from /proc/cpuinfo (Linux).
void read_cpuinfo(DeviceInfo& info) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::pair<std::string, std::string>> cores;  // (physical id, core id)
  std::string physical_id;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = trim(line.substr(0, colon));
    std::string value = trim(line.substr(colon + 1));
    if (key == "model name" && info.name.empty()) info.name = value;
    else if (key == "vendor_id" && info.vendor.empty()) info.vendor = value;
    else if (key == "physical id") physical_id = value;
    else if (key == "core id") cores.insert({physical_id, value});
  }
  info.compute_units = static_cast<int>(cores.size());
}

}  // namespace

DeviceInfo describe_host_cpu() {
  DeviceInfo info;
  info.id = "cpu";
  info.backend = "cpu";
  read_cpuinfo(info);
  struct utsname uts {};
  if (::uname(&uts) == 0) info.arch = uts.machine;
  info.threads = static_cast<int>(std::thread::hardware_concurrency());
  if (info.compute_units <= 0) info.compute_units = info.threads;
  if (info.name.empty()) info.name = "host CPU";
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) info.memory_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
#if defined(__x86_64__)
  __builtin_cpu_init();
  const std::pair<const char*, bool> features[] = {
      {"sse4.2", __builtin_cpu_supports("sse4.2")},         {"avx", __builtin_cpu_supports("avx")},
      {"avx2", __builtin_cpu_supports("avx2")},             {"fma", __builtin_cpu_supports("fma")},
      {"f16c", __builtin_cpu_supports("f16c")},             {"avx512f", __builtin_cpu_supports("avx512f")},
      {"avx512bw", __builtin_cpu_supports("avx512bw")},     {"avx512vl", __builtin_cpu_supports("avx512vl")},
      {"avx512vnni", __builtin_cpu_supports("avx512vnni")}, {"avx512bf16", __builtin_cpu_supports("avx512bf16")},
  };
  for (const auto& [name, present] : features)
    if (present) info.features.emplace_back(name);
#endif
  return info;
}

}  // namespace moat::backends
