#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>

#include "backends/cpu/cpu_topology.h"
#include "backends/registry.h"

namespace moat::backends {

namespace {

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Model name, vendor and ISA flags from /proc/cpuinfo (Linux).
void read_cpuinfo(DeviceInfo& info, std::set<std::string>& flags) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = trim(line.substr(0, colon));
    std::string value = trim(line.substr(colon + 1));
    if (key == "model name" && info.name.empty()) info.name = value;
    else if (key == "vendor_id" && info.vendor.empty()) info.vendor = value;
    else if ((key == "flags" || key == "Features") && flags.empty()) {
      size_t at = 0;
      while (at < value.size()) {
        size_t space = value.find(' ', at);
        if (space == std::string::npos) space = value.size();
        if (space > at) flags.insert(value.substr(at, space - at));
        at = space + 1;
      }
    }
  }
}

}  // namespace

DeviceInfo describe_host_cpu() {
  DeviceInfo info;
  info.id = "cpu";
  info.backend = "cpu";
  std::set<std::string> flags;
  read_cpuinfo(info, flags);
  struct utsname uts {};
  if (::uname(&uts) == 0) info.arch = uts.machine;
  // The CPUs this process may run on (its affinity mask), not the whole machine's.
  const cpu::CpuCount cpus = cpu::available_host_cpus();
  info.threads = cpus.logical;
  info.compute_units = cpus.physical;
  if (info.name.empty()) info.name = "host CPU";
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) info.memory_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
  // ISA features that change code generation, named as LLVM names them, from the
  // kernel's view of the CPU (/proc/cpuinfo "flags"), which is compiler-independent.
  const std::pair<const char*, const char*> kFeatures[] = {
      {"ssse3", "ssse3"},       {"sse4_2", "sse4.2"},     {"avx", "avx"},           {"avx2", "avx2"},
      {"fma", "fma"},           {"f16c", "f16c"},         {"avx512f", "avx512f"},
      {"avx512bw", "avx512bw"}, {"avx512vl", "avx512vl"}, {"avx512_vnni", "avx512vnni"},
      {"avx512_bf16", "avx512bf16"}, {"asimd", "neon"},   {"asimddp", "dotprod"},
  };
  for (const auto& [flag, name] : kFeatures)
    if (flags.count(flag)) info.features.emplace_back(name);
  return info;
}

}  // namespace moat::backends
