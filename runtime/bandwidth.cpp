#include "runtime/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace moat::runtime {

namespace {

// Sum of [begin, end): four independent accumulators, so the loop is bound by loads,
// not by the latency of one chain of adds.
uint64_t sum_words(const uint64_t* begin, const uint64_t* end) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  const uint64_t* p = begin;
  for (; p + 4 <= end; p += 4) {
    a += p[0];
    b += p[1];
    c += p[2];
    d += p[3];
  }
  for (; p < end; ++p) a += *p;
  return a + b + c + d;
}

}  // namespace

double measure_host_read_bandwidth(int threads, uint64_t bytes, int runs) {
  threads = std::max(threads, 1);
  const size_t words = static_cast<size_t>(std::max<uint64_t>(bytes / sizeof(uint64_t), static_cast<uint64_t>(threads)));
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  for (size_t i = 0; i < words; ++i) buffer[i] = i;  // makes every page resident

  std::vector<uint64_t> sums(static_cast<size_t>(threads));  // results kept, so the reads are not elided
  double best = 0;
  for (int run = 0; run < std::max(runs, 1); ++run) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      const size_t begin = words * static_cast<size_t>(t) / static_cast<size_t>(threads);
      const size_t end = words * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
      workers.emplace_back([&, t, begin, end] { sums[static_cast<size_t>(t)] = sum_words(&buffer[begin], &buffer[end]); });
    }
    for (std::thread& w : workers) w.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 0) best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / seconds);
  }
  volatile uint64_t sink = 0;
  for (uint64_t s : sums) sink = sink + s;
  return best;
}

Bandwidth device_bandwidth(const backends::DeviceProperties& device, double measured_host) {
  if (device.host_memory) return measured_host > 0 ? Bandwidth{measured_host, "measured"} : Bandwidth{};
  if (device.memory_bandwidth > 0) return {device.memory_bandwidth, "spec"};
  return {};
}

}  // namespace moat::runtime
