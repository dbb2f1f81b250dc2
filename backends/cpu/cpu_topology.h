// How many CPUs this process may run on, and how many physical cores they make up:
// the CPU device's default thread count is the latter (hyperthreads of one core share
// its execution units, and a core outside the affinity mask is not ours to use).
#pragma once

#include <span>
#include <string>
#include <vector>

namespace moat::backends::cpu {

struct CpuCount {
  int logical = 0;   // CPUs (hardware threads) in the set
  int physical = 0;  // distinct cores among them
};

// Counts `cpus` (logical CPU numbers, distinct) and the cores they belong to. Two CPUs
// share a core when <sysfs_cpu_dir>/cpuN/topology/thread_siblings_list reads the same;
// a CPU without that file counts as a core of its own.
CpuCount count_cpus(std::span<const int> cpus, const std::string& sysfs_cpu_dir);

// The logical CPUs in this process's affinity mask (sched_getaffinity), ascending;
// empty when the mask cannot be read.
std::vector<int> affinity_cpus();

// count_cpus of affinity_cpus() over /sys/devices/system/cpu; when the mask cannot be
// read, std::thread::hardware_concurrency() for both counts (at least 1).
CpuCount available_host_cpus();

}  // namespace moat::backends::cpu
