// A session over several devices (runtime/session.h with a PlacementSpec): the golden
// models and the demo model give the single-device logits, prefilled and token by token,
// with the layers split over the CPU and OpenCL, and with the routed experts on the CPU
// while the rest runs on OpenCL; the bytes moved between devices per decoded token are
// what the placement implies (hidden states of f32 at each boundary, into and out of
// each MoE layer whose experts run elsewhere); every weight and cache part lives on
// exactly one device; the budget is checked per device.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/device.h"
#include "frontend/models/deepseek_weights.h"
#include "runtime/kernel_cache.h"
#include "runtime/session.h"
#include "support/error.h"
#include "support/npy.h"
#include "tests/runtime/demo_session.h"
#include "tests/skip.h"

namespace moat {

namespace {

const std::string kGoldens = std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/";

std::vector<int32_t> golden_tokens() {
  std::ifstream in(kGoldens + "tokens.json");
  REQUIRE_MESSAGE(in, "missing ", kGoldens, "tokens.json");
  nlohmann::json j = nlohmann::json::parse(in);
  if (j.is_object()) j = j["tokens"];
  return j.get<std::vector<int32_t>>();
}

// The CPU and opencl:0, or a skipped test case without opencl:0.
struct TwoDevices {
  std::unique_ptr<backends::Device> cpu, ocl;
  bool open() {
    const std::vector<std::string> ids = testing::session_device_ids();
    if (std::find(ids.begin(), ids.end(), "opencl:0") == ids.end()) {
      testing::skip("no opencl:0 (install pocl-opencl-icd)");
      return false;
    }
    cpu = backends::open_device("cpu", {.threads = 2});
    ocl = backends::open_device("opencl:0");
    return true;
  }
};

// max|a - b| / max|b|
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

struct Placed {
  std::vector<backends::Device*> devices;
  runtime::PlacementSpec spec;
  const char* what;
};

std::vector<float> evaluate(const models::Model& m, std::span<backends::Device* const> devices, const runtime::PlacementSpec& spec,
                            runtime::KernelCache& cache, const std::vector<int32_t>& tokens, int64_t batch) {
  runtime::SessionOptions options;
  options.cache_dtype = ir::DType::f32;
  options.placement = spec;
  runtime::Session session(m, devices, cache, options);
  return session.evaluate(tokens, batch);
}

// Hidden states crossing per decoded token: the layer boundaries between devices and the
// MoE layers whose experts run on another device than their layer (in and out).
uint64_t implied_bytes_per_token(const models::DeepSeekModel& m, const runtime::PlacementSpec& spec) {
  const uint64_t hidden = static_cast<uint64_t>(m.hparams.n_embd) * 4;
  uint64_t bytes = 0;
  std::vector<int> layer_device;
  for (size_t d = 0; d < spec.layers_per_device.size(); ++d)
    for (int64_t i = 0; i < spec.layers_per_device[d]; ++i) layer_device.push_back(static_cast<int>(d));
  for (size_t l = 1; l < layer_device.size(); ++l) bytes += layer_device[l] != layer_device[l - 1] ? hidden : 0;
  for (int64_t l = m.hparams.n_dense; l < m.hparams.n_layer; ++l) {
    const bool moved = spec.moe_device >= 0 && (spec.moe_layers < 0 || l < spec.moe_layers) &&
                       spec.moe_device != layer_device[static_cast<size_t>(l)];
    bytes += moved ? 2 * hidden : 0;
  }
  return bytes;
}

}  // namespace

TEST_CASE("golden models split over cpu and opencl:0 give the single-device logits, prefill and token by token") {
  TwoDevices two;
  if (!two.open()) return;
  backends::Device *cpu = two.cpu.get(), *ocl = two.ocl.get();
  runtime::KernelCache cache{{}};
  const std::vector<int32_t> tokens = golden_tokens();
  for (const char* name : {"v3", "v2_lite/model-f32.gguf", "v2"}) {
    const models::DeepSeekModel m = models::load_deepseek(kGoldens + name);
    const int64_t layers = m.layers();
    const int64_t half = layers / 2;
    const std::vector<backends::Device*> cpu_only{cpu}, ocl_only{ocl};
    const Placed placed[] = {
        {{cpu, ocl}, {{half, layers - half}, -1, -1}, "--device cpu,opencl:0 --split layers"},
        {{ocl, cpu}, {{layers, 0}, 1, -1}, "--device opencl:0 --moe-device cpu"},
    };
    for (int64_t batch : {64, 1}) {
      const std::vector<float> on_cpu = evaluate(m, cpu_only, {}, cache, tokens, batch);
      const std::vector<float> on_ocl = evaluate(m, ocl_only, {}, cache, tokens, batch);
      for (const Placed& p : placed) {
        const std::vector<float> got = evaluate(m, p.devices, p.spec, cache, tokens, batch);
        const double vs_cpu = relative_difference(got, on_cpu), vs_ocl = relative_difference(got, on_ocl);
        INFO(name, " ", p.what, " batch ", batch);
        CHECK_MESSAGE(vs_cpu <= 1e-5, "vs cpu: ", vs_cpu);
        CHECK_MESSAGE(vs_ocl <= 1e-5, "vs opencl:0: ", vs_ocl);
        MESSAGE(std::string(name) << " " << p.what << " batch " << batch << ": max|d|/max|ref| vs cpu " << vs_cpu << ", vs opencl:0 " << vs_ocl);
      }
    }
  }
}

TEST_CASE("DeepSeek-V4 split over cpu and opencl:0: each device holds its layers' cache parts, transformers' logits") {
  TwoDevices two;
  if (!two.open()) return;
  runtime::KernelCache cache{{}};
  const std::string dir = kGoldens + "v4/";
  const std::unique_ptr<models::Model> m = models::open_model(dir);
  std::ifstream in(dir + "tokens.json");
  const std::vector<int32_t> tokens = nlohmann::json::parse(in).get<std::vector<int32_t>>();
  const std::vector<backends::Device*> devices{two.cpu.get(), two.ocl.get()};
  const std::vector<float> got = evaluate(*m, devices, {{2, 2}, -1, -1}, cache, tokens, 37);
  const NpyF32 want = read_npy_f32(dir + "logits.npy");
  const double d = relative_difference(got, want.values);
  CHECK_MESSAGE(d <= 1e-4, "vs transformers: ", d);
  MESSAGE("DeepSeek-V4 --device cpu,opencl:0 --split layers, chunks of 37: max|d|/max|ref| vs transformers " << d);
}

TEST_CASE("demo model over two devices: greedy tokens, bytes moved per token, weights and caches on one device each") {
  TwoDevices two;
  if (!two.open()) return;
  backends::Device *cpu = two.cpu.get(), *ocl = two.ocl.get();
  runtime::KernelCache cache{{}};
  const models::DeepSeekModel& m = testing::demo_model();
  const std::vector<int32_t> prompt = {1, 65, 77, 100, 12, 250, 3, 99};
  auto greedy = [&](runtime::Session& s) {
    std::vector<float> logits = s.evaluate(prompt, 64, models::LogitRows::last);
    std::vector<int32_t> out;
    for (int i = 0; i < 12; ++i) {
      out.push_back(testing::argmax(logits));
      logits = s.evaluate(std::vector<int32_t>{out.back()}, 1);
      CHECK(s.last_moved_bytes() == s.moved_bytes_per_token());
    }
    return out;
  };
  runtime::Session single(m, *cpu, cache, {});
  const std::vector<int32_t> want = greedy(single);
  uint64_t all_weights = 0;
  for (const auto& [name, t] : m.tensors()) all_weights += t.bytes().size();

  const Placed placed[] = {
      {{cpu, ocl}, {{2, 2}, -1, -1}, "split 2:2"},
      {{ocl, cpu}, {{4, 0}, 1, -1}, "experts on cpu"},
      {{cpu, ocl}, {{1, 3}, 0, 2}, "split 1:3, first two layers' experts on cpu"},
  };
  for (const Placed& p : placed) {
    INFO(p.what);
    runtime::SessionOptions options;
    options.placement = p.spec;
    runtime::Session s(m, p.devices, cache, options);
    CHECK(greedy(s) == want);
    CHECK(s.moved_bytes_per_token() == implied_bytes_per_token(m, p.spec));
    CHECK(s.moved_bytes_per_token() > 0);
    // Every weight on exactly one device, the cache split by layer, totals that add up.
    uint64_t weights = 0, cache_bytes = 0;
    for (const runtime::DeviceShare& share : s.device_shares()) weights += share.needs.weights, cache_bytes += share.needs.cache;
    CHECK(weights == all_weights);
    CHECK(cache_bytes == s.memory_needs().cache);
    CHECK(cache_bytes == static_cast<uint64_t>(s.context()) * s.cache_bytes_per_token());
    REQUIRE(s.device_shares().size() == 2);
    CHECK(s.device_shares()[0].layers + s.device_shares()[1].layers == m.layers());
  }
}

TEST_CASE("a device's share past its budget is refused before anything is allocated, naming the device") {
  TwoDevices two;
  if (!two.open()) return;
  backends::Device *cpu = two.cpu.get(), *ocl = two.ocl.get();
  runtime::KernelCache cache{{}};
  runtime::SessionOptions options;
  options.placement = {{2, 2}, -1, -1};
  options.memory_budget = 1 << 20;  // 1 MiB per device: the demo model's layers need more
  const std::vector<backends::Device*> devices{cpu, ocl};
  try {
    runtime::Session s(testing::demo_model(), devices, cache, options);
    FAIL("a session past its budget was made");
  } catch (const UserError& e) {
    const std::string what = e.what();
    CHECK(what.find("does not fit cpu") != std::string::npos);
    CHECK(what.find("--split layers") != std::string::npos);
  }
  options.placement = {{2, 3}, -1, -1};  // 5 layers of 4
  options.memory_budget = 0;
  CHECK_THROWS_AS(runtime::Session(testing::demo_model(), devices, cache, options), UserError);
}

TEST_CASE("a device that supports no op hands every node to the next device, and the session says so") {
  setenv("MOAT_NULL_BACKEND", "1", 1);  // the null backend's device supports no op (backends/null/)
  auto none = backends::open_device("null:0");
  unsetenv("MOAT_NULL_BACKEND");
  auto cpu = backends::open_device("cpu", {.threads = 2});
  runtime::KernelCache cache{{}};
  const models::DeepSeekModel& m = testing::demo_model();
  const std::vector<int32_t> prompt = {1, 65, 77, 100, 12, 250, 3, 99};
  runtime::Session single(m, *cpu, cache, {});
  const std::vector<float> want = single.evaluate(prompt, 64);
  runtime::SessionOptions options;
  options.placement = {{2, 2}, -1, -1};  // layers 2-3 on the device that runs nothing
  const std::vector<backends::Device*> devices{cpu.get(), none.get()};
  runtime::Session s(m, devices, cache, options);
  CHECK(s.evaluate(prompt, 64) == want);
  REQUIRE_FALSE(s.fallbacks().empty());
  CHECK(s.fallbacks().front().find("on null:0 -> cpu") != std::string::npos);
  CHECK(s.moved_bytes_per_token() == 0);  // nothing left on null:0
  CHECK(s.device_shares()[1].needs.weights == 0);
}

}  // namespace moat
