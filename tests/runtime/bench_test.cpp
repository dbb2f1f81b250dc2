// The parts of `moat bench` that are not timings: the weight bytes a decoded token
// reads, the statistics, the device memory ledger, per-kernel profiles and where a
// device's bandwidth comes from.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backends/device.h"
#include "frontend/models/deepseek_weights.h"
#include "runtime/kernel_cache.h"
#include "runtime/bandwidth.h"
#include "runtime/bench.h"
#include "runtime/kernel_profile.h"
#include "runtime/session.h"
#include "support/error.h"

using namespace moat;

namespace {
const std::string kV3 = std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/v3/model-f32.gguf";
}  // namespace

TEST_CASE("model_size: a decoded token reads the non-expert weights, one embedding row and top-k of the experts") {
  const models::DeepSeekModel model = models::load_deepseek(kV3);
  const models::ModelSize size = model.size();
  CHECK(size.bytes == 688800);
  CHECK(size.params == 172200);  // f32: 4 bytes each
  // By hand (tests/data/goldens/v3/config.json): 2 MoE layers of 3 stacked expert
  // tensors [16 experts, 32, 32] f32 = 393216 bytes, of which a token reads 3 of 16
  // (73728); the embedding table [256, 32] f32 = 32768 bytes, of which one row (128).
  CHECK(size.decode_bytes_per_token == 688800 - 393216 + 73728 - 32768 + 128);
  CHECK(size.label == "deepseek2 172.2K F32");
}

TEST_CASE("mean_sd: the mean and the sample standard deviation") {
  runtime::MeanSd s = runtime::mean_sd({1, 2, 3, 4});
  CHECK(s.mean == doctest::Approx(2.5));
  CHECK(s.sd == doctest::Approx(std::sqrt(5.0 / 3.0)));
  CHECK(runtime::mean_sd({7}).sd == 0);
  CHECK(runtime::mean_sd({}).mean == 0);
}

TEST_CASE("a device's memory ledger counts its live buffers and their peak") {
  std::unique_ptr<backends::Device> cpu = backends::open_cpu_device({.threads = 1});
  backends::MemoryLedger& memory = cpu->memory();
  CHECK(memory.live() == 0);
  std::vector<char> host(500);
  auto owned = cpu->allocate(1000);
  auto wrapped = cpu->wrap_host(host.data(), host.size());  // zero-copy: lent, still counted
  CHECK(memory.live() == 1500);
  owned.reset();
  CHECK(memory.live() == 500);
  CHECK(memory.peak() == 1500);
  memory.reset_peak();
  CHECK(memory.peak() == 500);
  wrapped.reset();
  CHECK(memory.live() == 0);
}

TEST_CASE("a ProfileScope times every launch of the passes run inside it, named by kernel and weight") {
  const models::DeepSeekModel model = models::load_deepseek(kV3);
  std::unique_ptr<backends::Device> cpu = backends::open_cpu_device({.threads = 1});
  runtime::KernelCache cache("");
  runtime::Session session(model, *cpu, cache, 8);
  const std::vector<int32_t> tokens = {3, 5};
  session.evaluate(tokens, 2);  // compiled and run outside any scope
  runtime::KernelProfile inside;
  session.rewind(0);
  {
    runtime::ProfileScope scope(inside);
    session.evaluate(tokens, 2);
  }
  CHECK(runtime::active_profile() == nullptr);
  const int64_t launches = inside.launches();
  REQUIRE(launches > 10);
  session.rewind(0);
  session.evaluate(tokens, 2);  // after the scope: not recorded
  CHECK(inside.launches() == launches);
  bool output_matrix = false;
  double sum = 0;
  for (const runtime::KernelTime& k : inside.by_time()) {
    CHECK(k.launches > 0);
    CHECK(k.total_ms >= 0);
    sum += k.total_ms;
    if (k.name.find("[output]") != std::string::npos) output_matrix = true;
  }
  CHECK(output_matrix);
  CHECK(sum == doctest::Approx(inside.total_ms()));
  const std::vector<runtime::KernelTime> sorted = inside.by_time();
  for (size_t i = 1; i < sorted.size(); ++i) CHECK(sorted[i - 1].total_ms >= sorted[i].total_ms);
}

TEST_CASE("device bandwidth: measured for host memory, specified for GPUs, else unknown") {
  CHECK(runtime::measure_host_read_bandwidth(1, uint64_t{8} << 20, 1) > 0);
  backends::DeviceProperties host;
  host.host_memory = true;
  CHECK(runtime::device_bandwidth(host, 2e10).bytes_per_s == 2e10);
  CHECK(runtime::device_bandwidth(host, 2e10).source == "measured");
  backends::DeviceProperties gpu;
  gpu.memory_bandwidth = 3.35e12;
  CHECK(runtime::device_bandwidth(gpu, 2e10).source == "spec");
  CHECK(runtime::device_bandwidth(gpu, 2e10).bytes_per_s == 3.35e12);
  backends::DeviceProperties opencl_gpu;
  CHECK(runtime::device_bandwidth(opencl_gpu, 2e10).bytes_per_s == 0);
  CHECK(runtime::device_bandwidth(opencl_gpu, 2e10).source.empty());
}

TEST_CASE("check_bench_options names -p, -n or -d when a test passes the training context") {
  const models::DeepSeekModel model = models::load_deepseek(kV3);
  const int64_t context = model.hparams.n_ctx_train;
  runtime::BenchOptions ok;
  ok.n_prompt = {1, context};
  ok.n_gen = {context - 1, 0};
  CHECK_NOTHROW(runtime::check_bench_options(model, ok));
  CHECK(runtime::bench_context(ok) == context);
  runtime::BenchOptions long_prompt = ok;
  long_prompt.n_prompt = {8, context + 1};
  CHECK_THROWS_WITH_AS(runtime::check_bench_options(model, long_prompt), doctest::Contains("-p"), UserError);
  runtime::BenchOptions long_gen = ok;
  long_gen.n_gen = {context};
  CHECK_THROWS_WITH_AS(runtime::check_bench_options(model, long_gen), doctest::Contains("-n"), UserError);
  runtime::BenchOptions deep = ok;
  deep.n_prompt = {8};
  deep.n_gen = {4};
  deep.depths = {0, context - 8};
  CHECK_NOTHROW(runtime::check_bench_options(model, deep));
  CHECK(runtime::bench_context(deep) == context);
  deep.depths = {0, context - 4};
  CHECK_THROWS_WITH_AS(runtime::check_bench_options(model, deep), doctest::Contains("-p 8 after -d"), UserError);
  deep.depths = {context};
  CHECK_THROWS_WITH_AS(runtime::check_bench_options(model, deep), doctest::Contains("-d"), UserError);
  runtime::BenchOptions nothing = ok;
  nothing.n_prompt = {0};
  nothing.n_gen = {0, 0};
  CHECK_THROWS_WITH_AS(runtime::check_bench_options(model, nothing), doctest::Contains("nothing to measure"), UserError);
}

TEST_CASE("the host's bandwidth is measured once per machine and kept in a file until remeasured") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("moat-bandwidth-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  int measured = 0;
  auto measure = [&] { return 1e9 * ++measured; };
  const runtime::HostBandwidth first = runtime::cached_host_read_bandwidth(dir, false, measure);
  CHECK(measured == 1);
  CHECK_FALSE(first.cached);
  CHECK(first.bytes_per_s == 1e9);
  REQUIRE(std::filesystem::exists(first.file));  // the directory is made when missing
  CHECK(first.file.parent_path() == dir);
  CHECK(first.file.filename().string().starts_with("host-bandwidth-"));
  const runtime::HostBandwidth again = runtime::cached_host_read_bandwidth(dir, false, measure);
  CHECK(measured == 1);  // read back, not measured
  CHECK(again.cached);
  CHECK(again.bytes_per_s == doctest::Approx(1e9));
  CHECK(again.measured_at == first.measured_at);
  const runtime::HostBandwidth redone = runtime::cached_host_read_bandwidth(dir, true, measure);
  CHECK(measured == 2);
  CHECK_FALSE(redone.cached);
  CHECK(runtime::cached_host_read_bandwidth(dir, false, measure).bytes_per_s == doctest::Approx(2e9));
  // A file for another machine (or damaged) is measured over.
  std::ofstream(first.file) << "moatless host read bandwidth v1\nmachine host=elsewhere\nbytes_per_s 5e9\n";
  CHECK(runtime::cached_host_read_bandwidth(dir, false, measure).bytes_per_s == 3e9);
  std::ofstream(first.file) << "garbage";
  CHECK(runtime::cached_host_read_bandwidth(dir, false, measure).bytes_per_s == 4e9);
  CHECK(measured == 4);
  // No directory: measured every time, nothing written.
  const runtime::HostBandwidth nowhere = runtime::cached_host_read_bandwidth({}, false, measure);
  CHECK(measured == 5);
  CHECK(nowhere.file.empty());
  std::filesystem::remove_all(dir);
}
