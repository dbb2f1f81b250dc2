#include "backends/cpu/cpu_topology.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <set>
#include <thread>

namespace moat::backends::cpu {

CpuCount count_cpus(std::span<const int> cpus, const std::string& sysfs_cpu_dir) {
  std::set<std::string> cores;  // a core's thread_siblings_list, or "#N" for a CPU without one
  for (int cpu : cpus) {
    std::ifstream in(sysfs_cpu_dir + "/cpu" + std::to_string(cpu) + "/topology/thread_siblings_list");
    std::string siblings;
    if (!in || !std::getline(in, siblings) || siblings.empty()) siblings = "#" + std::to_string(cpu);
    cores.insert(siblings);
  }
  return {static_cast<int>(cpus.size()), static_cast<int>(cores.size())};
}

std::vector<int> affinity_cpus() {
  // A dynamically sized mask, so machines with more than CPU_SETSIZE CPUs are read whole.
  for (int capacity = CPU_SETSIZE; capacity <= (1 << 20); capacity *= 8) {
    cpu_set_t* set = CPU_ALLOC(capacity);
    if (!set) return {};
    const size_t bytes = CPU_ALLOC_SIZE(capacity);
    CPU_ZERO_S(bytes, set);
    if (::sched_getaffinity(0, bytes, set) == 0) {
      std::vector<int> cpus;
      for (int cpu = 0; cpu < capacity; ++cpu)
        if (CPU_ISSET_S(cpu, bytes, set)) cpus.push_back(cpu);
      CPU_FREE(set);
      return cpus;
    }
    CPU_FREE(set);
    if (errno != EINVAL) return {};  // EINVAL: the kernel's mask is larger than ours
  }
  return {};
}

CpuCount available_host_cpus() {
  std::vector<int> cpus = affinity_cpus();
  if (cpus.empty()) {
    int n = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    return {n, n};
  }
  return count_cpus(cpus, "/sys/devices/system/cpu");
}

}  // namespace moat::backends::cpu
