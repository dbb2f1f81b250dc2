// The generation loop (runtime/generate.h): its cancellation hook, polled once per token.
#include <doctest/doctest.h>

#include <atomic>

#include "backends/device.h"
#include "frontend/models/deepseek.h"
#include "frontend/models/deepseek_weights.h"
#include "runtime/generate.h"
#include "runtime/kernel_cache.h"

namespace moat {

namespace {

const std::string kModel = std::string(MOAT_SOURCE_DIR) + "/models/kjv-tiny.gguf";
const std::vector<int32_t> kPrompt = {0, 449, 341, 336, 379, 2362, 28};  // BOS "The LORD is my shepherd;"

}  // namespace

TEST_CASE("a set cancel flag stops generation after the prompt and a flag set on the way stops it there") {
  const models::DeepSeekModel model = models::load_deepseek(kModel);
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  runtime::Sampler sampler({});
  std::atomic<bool> cancel{true};
  runtime::GenerationOptions options{.max_tokens = 20, .batch = 64, .stop_ids = {}, .cancel = &cancel};

  runtime::Session before(model, *cpu, cache);
  std::vector<int32_t> history;
  int streamed = 0;
  runtime::GenerationStats stats =
      runtime::generate(before, sampler, kPrompt, history, options, [&](int32_t) { ++streamed; });
  CHECK(stats.stop == runtime::StopReason::cancelled);
  CHECK(stats.generated_tokens == 0);
  CHECK(streamed == 0);
  CHECK(before.cached_tokens() == static_cast<int64_t>(kPrompt.size()));  // the prompt is evaluated whole

  cancel = false;
  runtime::Session during(model, *cpu, cache);
  history.clear();
  stats = runtime::generate(during, sampler, kPrompt, history, options, [&](int32_t) {
    if (history.size() == kPrompt.size() + 5) cancel = true;  // after the 5th token
  });
  CHECK(stats.stop == runtime::StopReason::cancelled);
  CHECK(stats.generated_tokens == 5);
  CHECK(during.cached_tokens() == static_cast<int64_t>(kPrompt.size()) + 5);  // every streamed token evaluated

  cancel = false;
  runtime::Session unset(model, *cpu, cache);
  history.clear();
  stats = runtime::generate(unset, sampler, kPrompt, history, options, [](int32_t) {});
  CHECK(stats.stop == runtime::StopReason::limit);
  CHECK(stats.generated_tokens == 20);
}

}  // namespace moat
