// The CPU counts behind the CPU device's default thread count: logical CPUs and the
// physical cores among them, from a sysfs-shaped directory and from this process's
// affinity mask.
#include <doctest/doctest.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_topology.h"
#include "backends/device.h"

using namespace moat::backends;
namespace fs = std::filesystem;

namespace {

// <root>/cpuN/topology/thread_siblings_list = siblings[N] for each N with a non-empty entry.
fs::path fake_sysfs(const std::string& name, const std::vector<std::string>& siblings) {
  fs::path root = fs::temp_directory_path() / ("moat_topology_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(root);
  for (size_t cpu = 0; cpu < siblings.size(); ++cpu) {
    if (siblings[cpu].empty()) continue;
    fs::path dir = root / ("cpu" + std::to_string(cpu)) / "topology";
    fs::create_directories(dir);
    std::ofstream(dir / "thread_siblings_list") << siblings[cpu] << "\n";
  }
  return root;
}

}  // namespace

TEST_CASE("cpu topology: hyperthreads of one core count as one core") {
  // Two cores with two hyperthreads each, numbered as Linux does on x86 (0,2 and 1,3).
  fs::path root = fake_sysfs("smt", {"0,2", "1,3", "0,2", "1,3"});
  std::vector<int> all{0, 1, 2, 3}, one_core{0, 2}, one_each{2, 3}, single{1};
  cpu::CpuCount c = cpu::count_cpus(all, root.string());
  CHECK(c.logical == 4);
  CHECK(c.physical == 2);
  c = cpu::count_cpus(one_core, root.string());
  CHECK(c.logical == 2);
  CHECK(c.physical == 1);
  c = cpu::count_cpus(one_each, root.string());
  CHECK(c.logical == 2);
  CHECK(c.physical == 2);
  c = cpu::count_cpus(single, root.string());
  CHECK(c.logical == 1);
  CHECK(c.physical == 1);
  fs::remove_all(root);
}

TEST_CASE("cpu topology: a CPU without topology files is a core of its own") {
  fs::path root = fake_sysfs("missing", {"0-1", "0-1", "", ""});
  std::vector<int> cpus{0, 1, 2, 3};
  cpu::CpuCount c = cpu::count_cpus(cpus, root.string());
  CHECK(c.logical == 4);
  CHECK(c.physical == 3);  // {0,1}, 2, 3
  c = cpu::count_cpus(cpus, (root / "nowhere").string());
  CHECK(c.physical == 4);
  CHECK(cpu::count_cpus({}, root.string()).physical == 0);
  fs::remove_all(root);
}

TEST_CASE("cpu topology: the affinity mask bounds the counts and the default threads") {
  std::vector<int> cpus = cpu::affinity_cpus();
  REQUIRE(!cpus.empty());
  CHECK(std::find(cpus.begin(), cpus.end(), ::sched_getcpu()) != cpus.end());
  cpu::CpuCount all = cpu::available_host_cpus();
  CHECK(all.logical == static_cast<int>(cpus.size()));
  CHECK(all.physical >= 1);
  CHECK(all.physical <= all.logical);

  // A thread limited to one CPU sees one CPU and one core, and a CPU device opened
  // there with the default threads reports them.
  bool pinned_ok = false;
  cpu::CpuCount pinned_count;
  DeviceInfo pinned_info;
  std::thread pinned([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus.back(), &one);
    pinned_ok = ::sched_setaffinity(0, sizeof(one), &one) == 0;
    pinned_count = cpu::available_host_cpus();
    pinned_info = open_device("cpu", CpuOptions{})->properties().info;
  });
  pinned.join();
  REQUIRE(pinned_ok);
  CHECK(pinned_count.logical == 1);
  CHECK(pinned_count.physical == 1);
  CHECK(pinned_info.threads == 1);
  CHECK(pinned_info.compute_units == 1);
}
