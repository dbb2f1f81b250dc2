// moat-bench-kernels: throughput of JIT-compiled kernels on the host CPU, as a table.
//   GEMV y = W x with f32 / f16 / Q8_0 / Q4_0 weights: GB/s of weights streamed, and
//   that as a share of the machine's measured memory bandwidth (2048 x 2048 fits in
//   the last-level cache here; 16384 x 4096 does not)
//   GEMM f32: GFLOP/s
//   selection of each row's k-th largest value (sparse attention's threshold, V3.2's
//   top-2048 over a long cache): kth_largest against topk + take_along
//   compile time of each case, cold (empty kernel cache) and warm (a new process'
//   cache over the same directory: loads, no compile)
// Usage: moat-bench-kernels [-t THREADS] [-r REPS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

#include "backends/device.h"
#include "ir/builder.h"
#include "runtime/kernel_cache.h"
#include "jit/lower.h"
#include "runtime/device_target.h"
#include "runtime/executor.h"

using namespace moat;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Read bandwidth of host memory, GB/s: every thread sums its slice of a 512 MiB buffer.
double measure_bandwidth(int threads) {
  const size_t n = (512u << 20) / sizeof(uint64_t);
  std::vector<uint64_t> data(n, 1);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> pool;
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    auto start = Clock::now();
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t lo = n * static_cast<size_t>(t) / static_cast<size_t>(threads), hi = n * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = lo; i + 3 < hi; i += 4) {
          s0 += data[i];
          s1 += data[i + 1];
          s2 += data[i + 2];
          s3 += data[i + 3];
        }
        sums[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
      });
    }
    for (auto& th : pool) th.join();
    const double s = seconds_since(start);
    if (sums[0] == 0) std::printf(" ");  // keep the sums alive
    best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / s / 1e9);
  }
  return best;
}

struct Case {
  std::string name;
  ir::DType weight;
  int64_t m, n, k;
};

struct Result {
  double seconds = 0;       // median per run
  double cold_ms = 0, warm_ms = 0;
};

// Compile times (cold, warm) and the median time of `reps` runs of graph g.
Result time_graph(backends::Device& device, const ir::Graph& g, const ir::Bindings& bindings, const std::filesystem::path& cache_dir,
                  int reps) {
  Result r;
  const jit::Schedule schedule = runtime::schedule_for(device.properties());
  {
    runtime::KernelCache cold(cache_dir);
    auto t = Clock::now();
    runtime::Executor e(device, cold, jit::lower(g, {}, schedule));
    r.cold_ms = seconds_since(t) * 1e3;
  }
  runtime::KernelCache warm(cache_dir);
  auto t = Clock::now();
  runtime::Executor exec(device, warm, jit::lower(g, {}, schedule));
  r.warm_ms = seconds_since(t) * 1e3;

  exec.run(bindings);  // warm-up
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    auto start = Clock::now();
    exec.run(bindings);
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  r.seconds = times[times.size() / 2];
  return r;
}

Result run_case(backends::Device& device, const Case& c, const std::filesystem::path& cache_dir, int reps) {
  ir::Graph g;
  ir::Builder b(g);
  ir::NodeId x = b.input("x", {ir::DType::f32, ir::static_shape({c.m, c.k})});
  ir::NodeId w = b.param("w", {c.weight, ir::static_shape({c.n, c.k})});
  b.output(b.matmul(x, w, true));
  ir::Bindings bindings;
  std::vector<float> xs(static_cast<size_t>(c.m * c.k)), ws(static_cast<size_t>(c.n * c.k));
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>((i * 7919) % 1000) / 1000.0f - 0.5f;
  for (size_t i = 0; i < ws.size(); ++i) ws[i] = static_cast<float>((i * 104729) % 1000) / 1000.0f - 0.5f;
  bindings.tensors["x"] = ir::HostTensor::from_f32({c.m, c.k}, xs);
  bindings.tensors["w"] = ir::HostTensor::from_f32({c.n, c.k}, ws, c.weight);
  return time_graph(device, g, bindings, cache_dir, reps);
}

// The k-th largest score of each of `rows` rows of `n`, by kth_largest or by topk then
// take_along of the k-th index.
Result run_selection(backends::Device& device, bool by_topk, int64_t rows, int64_t n, int64_t k,
                     const std::filesystem::path& cache_dir, int reps) {
  ir::Graph g;
  ir::Builder b(g);
  ir::NodeId x = b.input("x", {ir::DType::f32, ir::static_shape({rows, n})});
  b.output(by_topk ? b.take_along(x, b.slice(b.topk(x, k), 1, k - 1, k)) : b.kth_largest(x, k));
  std::vector<float> xs(static_cast<size_t>(rows * n));
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>((i * 7919 + i / 13) % 100003) / 1000.0f - 50.0f;
  ir::Bindings bindings;
  bindings.tensors["x"] = ir::HostTensor::from_f32({rows, n}, xs);
  return time_graph(device, g, bindings, cache_dir, reps);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, reps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "-t") == 0) threads = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "-r") == 0) reps = std::max(1, std::atoi(argv[i + 1]));
  }
  std::unique_ptr<backends::Device> device = backends::open_cpu_device({.threads = threads});
  const int used_threads = threads > 0 ? threads : std::max(1, device->properties().info.compute_units);
  const double bandwidth = measure_bandwidth(std::max(1, used_threads));
  const std::filesystem::path cache_dir = std::filesystem::temp_directory_path() / ("moat-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(cache_dir);

  std::printf("device: %s, %d threads; measured read bandwidth %.1f GB/s\n\n", device->properties().info.name.c_str(),
              used_threads, bandwidth);
  std::printf("| kernel | weights | M x N x K | time (ms) | GB/s weights | %% of bandwidth | GFLOP/s | compile cold (ms) | warm (ms) |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
  const std::vector<Case> cases = {
      {"gemv", ir::DType::f32, 1, 2048, 2048},  {"gemv", ir::DType::f16, 1, 2048, 2048},
      {"gemv", ir::DType::q8_0, 1, 2048, 2048}, {"gemv", ir::DType::q4_0, 1, 2048, 2048},
      {"gemv", ir::DType::f32, 1, 16384, 4096},  {"gemv", ir::DType::f16, 1, 16384, 4096},
      {"gemv", ir::DType::q8_0, 1, 16384, 4096}, {"gemv", ir::DType::q4_0, 1, 16384, 4096},
      {"gemm", ir::DType::f32, 128, 128, 128},  {"gemm", ir::DType::f32, 256, 256, 256},
      {"gemm", ir::DType::f32, 512, 512, 512},  {"gemm", ir::DType::f32, 64, 2048, 2048},
  };
  for (const Case& c : cases) {
    const Result r = run_case(*device, c, cache_dir, reps);
    const double weight_bytes = static_cast<double>(*ir::dtype_row_bytes(c.weight, c.k) * c.n);
    const double gbs = weight_bytes / r.seconds / 1e9;
    const double gflops = 2.0 * static_cast<double>(c.m * c.n * c.k) / r.seconds / 1e9;
    std::printf("| %s | %s | %lld x %lld x %lld | %.3f | %.1f | %.0f%% | %.1f | %.1f | %.1f |\n", c.name.c_str(),
                std::string(ir::dtype_name(c.weight)).c_str(), static_cast<long long>(c.m), static_cast<long long>(c.n),
                static_cast<long long>(c.k), r.seconds * 1e3, gbs, 100.0 * gbs / bandwidth, gflops, r.cold_ms, r.warm_ms);
  }
  std::printf("\n| selection | rows x n, k | time (ms) | ns per element | compile cold (ms) | warm (ms) |\n");
  std::printf("|---|---|---:|---:|---:|---:|\n");
  for (auto [rows, n, k] : {std::tuple{int64_t{4}, int64_t{32768}, int64_t{2048}}, std::tuple{int64_t{4}, int64_t{4096}, int64_t{2048}}})
    for (bool by_topk : {false, true}) {
      const Result r = run_selection(*device, by_topk, rows, n, k, cache_dir, std::min(reps, 3));
      std::printf("| %s | %lld x %lld, %lld | %.3f | %.2f | %.1f | %.1f |\n", by_topk ? "topk + take_along" : "kth_largest",
                  static_cast<long long>(rows), static_cast<long long>(n), static_cast<long long>(k), r.seconds * 1e3,
                  r.seconds * 1e9 / static_cast<double>(rows * n), r.cold_ms, r.warm_ms);
    }
  std::filesystem::remove_all(cache_dir);
  return 0;
}
