// The session at run time (runtime/session.h): what crosses between host and device per
// decoded token, plans that do not depend on the cache length, the f16 cache, the memory
// budget checked before any work, and the liveness plan of the arena.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "backends/device.h"
#include "backends/registry.h"
#include "frontend/models/deepseek.h"
#include "frontend/models/deepseek_weights.h"
#include "jit/lower.h"
#include "jit/schedule.h"
#include "runtime/memory_plan.h"
#include "runtime/session.h"
#include "tests/runtime/demo_session.h"
#include "support/error.h"

namespace moat {

namespace {

using testing::argmax;

const models::DeepSeekModel& demo() { return testing::demo_model(); }
std::vector<std::string> device_ids() { return testing::session_device_ids(); }

// `n` greedy tokens after `prompt`.
std::vector<int32_t> greedy(runtime::Session& s, std::vector<int32_t> prompt, int n) {
  std::vector<float> logits = s.evaluate(prompt, 64, models::LogitRows::last);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(argmax(logits));
    logits = s.evaluate(std::vector<int32_t>{out.back()}, 1);
  }
  return out;
}

const std::vector<int32_t> kPrompt = {1, 65, 77, 100, 12, 250, 3, 99};

}  // namespace

TEST_CASE("a decoded token sends its id and position and reads its logits: nothing else, no allocation") {
  for (const std::string& id : device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::KernelCache cache{{}};
    runtime::Session s(demo(), *device, cache);
    std::vector<float> logits = s.evaluate(kPrompt, 64, models::LogitRows::last);
    logits = s.evaluate(std::vector<int32_t>{argmax(logits)}, 1);  // the decode plan is made here
    const int steps = 40;
    const backends::DeviceTraffic::Snapshot before = device->traffic();
    for (int i = 0; i < steps; ++i) logits = s.evaluate(std::vector<int32_t>{argmax(logits)}, 1);
    const backends::DeviceTraffic::Snapshot per = device->traffic() - before;
    const uint64_t logits_bytes = static_cast<uint64_t>(demo().hparams.n_vocab) * sizeof(float);
    CHECK(per.h2d_bytes / steps <= 1024);
    CHECK(per.h2d_bytes > 0);  // the ids and positions do cross
    CHECK(per.d2h_bytes / steps <= logits_bytes + 1024);
    CHECK(per.allocations == 0);
    CHECK(per.launches / steps > 0);
  }
}

TEST_CASE("decode compiles nothing after its first step, whatever the cache length - plans stay bounded") {
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  runtime::Session s(demo(), *cpu, cache);
  std::vector<float> logits = s.evaluate(std::vector<int32_t>{1, 2, 3, 4}, 64, models::LogitRows::last);
  logits = s.evaluate(std::vector<int32_t>{argmax(logits)}, 1);
  const int plans = s.stats().plans;
  const double compile_ms = s.stats().compile_ms;
  while (s.cached_tokens() < s.context()) logits = s.evaluate(std::vector<int32_t>{argmax(logits)}, 1);
  CHECK(s.stats().plans == plans);
  CHECK(s.stats().compile_ms == compile_ms);
  // Prompts that end in chunks of many sizes: at most kMaxPlans plans are kept.
  for (int64_t n = 2; n < 14; ++n) {
    s.rewind(0);
    s.evaluate(std::vector<int32_t>(static_cast<size_t>(n), 7), 64);
  }
  CHECK(s.stats().plans > static_cast<int>(runtime::kMaxPlans));  // made ...
  CHECK(s.plans_held() == runtime::kMaxPlans);                      // ... the oldest dropped
}

TEST_CASE("the f16 cache (the default) gives the f32 cache's greedy text on the demo model") {
  for (const std::string& id : device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::KernelCache cache{{}};
    runtime::Session f16(demo(), *device, cache);
    runtime::Session f32(demo(), *device, cache, {.cache_dtype = ir::DType::f32});
    CHECK(f16.cache_bytes_per_token() * 2 == f32.cache_bytes_per_token());
    CHECK(greedy(f16, kPrompt, 48) == greedy(f32, kPrompt, 48));
  }
}

TEST_CASE("a session that cannot fit its budget is a UserError naming the sizes, before anything is allocated") {
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  const uint64_t live = cpu->memory().live();
  CHECK_THROWS_WITH_AS(runtime::Session(demo(), *cpu, cache, {.memory_budget = 4u << 20}),
                       doctest::Contains("does not fit cpu: it needs"), UserError);
  CHECK_THROWS_WITH_AS(runtime::Session(demo(), *cpu, cache, {.memory_budget = 4u << 20}),
                       doctest::Contains("latent cache 0.2 MiB for 256 tokens of f16"), UserError);
  CHECK(cpu->memory().live() == live);
  runtime::Session fits(demo(), *cpu, cache, {.memory_budget = 1u << 30});
  CHECK(fits.memory_needs().total() > fits.memory_needs().weights);
  CHECK(fits.memory_needs().available == 1u << 30);
}

TEST_CASE("the arena: buffers alive at the same kernel never share bytes, and most bytes are reused") {
  const ir::Graph g = models::build_deepseek_graph(demo(), 32, {256, ir::DType::f16}, models::AttentionForm::expanded);
  const jit::Plan plan = jit::lower(g, {}, jit::Schedule{});
  const runtime::MemoryPlan mp = runtime::plan_memory(plan);
  const size_t n = plan.buffers.size();
  std::vector<int> first(n, 1 << 30), last(n, -1);
  for (size_t k = 0; k < plan.kernels.size(); ++k)
    for (int b : plan.kernels[k].args) {
      while (plan.buffers[static_cast<size_t>(b)].alias_of >= 0) b = plan.buffers[static_cast<size_t>(b)].alias_of;
      first[static_cast<size_t>(b)] = std::min(first[static_cast<size_t>(b)], static_cast<int>(k));
      last[static_cast<size_t>(b)] = std::max(last[static_cast<size_t>(b)], static_cast<int>(k));
    }
  for (int o : plan.outputs) last[static_cast<size_t>(o)] = static_cast<int>(plan.kernels.size());
  uint64_t sum = 0;
  int overlaps = 0;
  for (size_t a = 0; a < n; ++a) {
    if (mp.offset[a] < 0) continue;
    sum += static_cast<uint64_t>(plan.buffers[a].bytes);
    CHECK(mp.offset[a] % static_cast<int64_t>(backends::kViewAlignment) == 0);
    CHECK(static_cast<uint64_t>(mp.offset[a] + plan.buffers[a].bytes) <= mp.bytes);
    for (size_t b = a + 1; b < n; ++b) {
      if (mp.offset[b] < 0 || last[a] < first[b] || last[b] < first[a]) continue;
      const bool disjoint = mp.offset[a] + plan.buffers[a].bytes <= mp.offset[b] || mp.offset[b] + plan.buffers[b].bytes <= mp.offset[a];
      overlaps += !disjoint;
    }
  }
  CHECK(overlaps == 0);
  CHECK(mp.bytes < sum / 2);
  MESSAGE("arena " << mp.bytes << " bytes for " << sum << " bytes of intermediates");
}

}  // namespace moat
