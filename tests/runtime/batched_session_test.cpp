// Sessions of several sequences (runtime/session.h, SessionOptions::sequences): each
// sequence in its own rows of one cache, passes that carry tokens of several of them
// (continuous batching), checked against sequences run alone in single-sequence sessions.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "backends/device.h"
#include "backends/registry.h"
#include "frontend/models/deepseek_weights.h"
#include "runtime/batch_scheduler.h"
#include "runtime/session.h"
#include "tests/runtime/demo_session.h"
#include "support/error.h"

namespace moat {

namespace {

using testing::argmax;

const models::DeepSeekModel& demo() { return testing::demo_model(); }
std::vector<std::string> device_ids() { return testing::session_device_ids(); }

double max_relative_diff(std::span<const float> a, std::span<const float> b) {
  double scale = 0, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

const std::vector<std::vector<int32_t>> kPrompts = {
    {1, 65, 77, 100, 12, 250, 3, 99}, {1, 40, 41}, {1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310}, {1, 5}};

// Logits of `steps` greedy tokens after `prompt`, run alone: [steps + 1][n_vocab].
std::vector<std::vector<float>> alone(backends::Device& device, runtime::KernelCache& cache,
                                      const std::vector<int32_t>& prompt, int steps) {
  runtime::Session s(demo(), device, cache, {.context = 64});
  std::vector<std::vector<float>> rows{s.evaluate(prompt, 64, models::LogitRows::last)};
  for (int i = 0; i < steps; ++i) rows.push_back(s.evaluate(std::vector<int32_t>{argmax(rows.back())}, 1));
  return rows;
}

}  // namespace

TEST_CASE("passes over several sequences give each the logits it gets alone, on every device") {
  const int steps = 8;
  for (const std::string& id : device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::KernelCache cache{{}};
    runtime::Session batched(demo(), *device, cache, {.context = 64, .sequences = 4});
    CHECK(batched.sequences() == 4);
    // Sequences 0..2 start together; sequence 3 joins after 3 steps (continuous batching).
    std::vector<std::vector<float>> last(kPrompts.size());
    std::vector<std::vector<std::vector<float>>> got(kPrompts.size());
    auto start = [&](size_t s) {
      last[s] = batched.evaluate(static_cast<int64_t>(s), kPrompts[s], 64, models::LogitRows::last);
      got[s].push_back(last[s]);
    };
    for (size_t s = 0; s < 3; ++s) start(s);
    for (int step = 0; step < steps + 3; ++step) {
      if (step == 3) start(3);
      std::vector<int32_t> next;
      std::vector<runtime::SequenceTokens> work;
      next.reserve(kPrompts.size());
      for (size_t s = 0; s < kPrompts.size(); ++s)
        if (!last[s].empty() && got[s].size() <= static_cast<size_t>(steps)) next.push_back(argmax(last[s]));
      size_t k = 0;
      for (size_t s = 0; s < kPrompts.size(); ++s)
        if (!last[s].empty() && got[s].size() <= static_cast<size_t>(steps))
          work.push_back({static_cast<int64_t>(s), std::span<const int32_t>(&next[k++], 1)});
      if (work.empty()) break;
      std::vector<float> logits = batched.evaluate_sequences(work);
      const size_t vocab = logits.size() / work.size();
      REQUIRE(vocab == static_cast<size_t>(demo().hparams.n_vocab));
      for (size_t i = 0; i < work.size(); ++i) {
        const auto s = static_cast<size_t>(work[i].sequence);
        last[s].assign(logits.begin() + static_cast<std::ptrdiff_t>(i * vocab),
                       logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * vocab));
        got[s].push_back(last[s]);
      }
    }
    for (size_t s = 0; s < kPrompts.size(); ++s) {
      INFO("sequence " << s);
      CHECK(batched.cached_tokens(static_cast<int64_t>(s)) == static_cast<int64_t>(kPrompts[s].size()) + steps);
      const std::vector<std::vector<float>> want = alone(*device, cache, kPrompts[s], steps);
      REQUIRE(got[s].size() == want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        CHECK(argmax(got[s][i]) == argmax(want[i]));
        CHECK(max_relative_diff(got[s][i], want[i]) < 1e-4);
      }
    }
  }
}

TEST_CASE("a prompt in chunks beside other sequences' decoded tokens: each sequence the logits it gets alone") {
  const int steps = 4;
  for (const std::string& id : device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::KernelCache cache{{}};
    // Four sequences, three in the passes: the mixed passes' rows of logits are padded to
    // four and cut back.
    runtime::Session batched(demo(), *device, cache, {.context = 64, .sequences = 4});
    REQUIRE(batched.mixes_chunks());
    std::vector<std::vector<std::vector<float>>> got(3);
    for (size_t s = 0; s < 2; ++s)
      got[s].push_back(batched.evaluate(static_cast<int64_t>(s), kPrompts[s], 64, models::LogitRows::last));
    // Sequence 2's prompt (12 tokens) in chunks of 5 and 7, each in the pass of the
    // others' next tokens; then all three decode together.
    const std::span<const int32_t> prompt(kPrompts[2]);
    for (const std::span<const int32_t> chunk : {prompt.first(5), prompt.subspan(5)}) {
      const int32_t next[2] = {argmax(got[0].back()), argmax(got[1].back())};
      const std::vector<runtime::SequenceTokens> work{{0, {&next[0], 1}}, {2, chunk}, {1, {&next[1], 1}}};
      const std::vector<float> logits = batched.evaluate_sequences(work);
      const size_t vocab = logits.size() / work.size();
      for (size_t i = 0; i < work.size(); ++i) {
        const std::vector<float> row(logits.begin() + static_cast<std::ptrdiff_t>(i * vocab),
                                     logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * vocab));
        if (work[i].sequence != 2 || chunk.size() == 7) got[static_cast<size_t>(work[i].sequence)].push_back(row);
      }
    }
    for (int step = 0; step < steps; ++step) {
      const int32_t next[3] = {argmax(got[0].back()), argmax(got[1].back()), argmax(got[2].back())};
      const std::vector<runtime::SequenceTokens> work{{0, {&next[0], 1}}, {1, {&next[1], 1}}, {2, {&next[2], 1}}};
      const std::vector<float> logits = batched.evaluate_sequences(work);
      const size_t vocab = logits.size() / work.size();
      for (size_t i = 0; i < work.size(); ++i)
        got[i].emplace_back(logits.begin() + static_cast<std::ptrdiff_t>(i * vocab),
                            logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * vocab));
    }
    for (size_t s = 0; s < 3; ++s) {
      INFO("sequence " << s);
      const std::vector<std::vector<float>> want = alone(*device, cache, kPrompts[s], static_cast<int>(got[s].size()) - 1);
      REQUIRE(got[s].size() == want.size());
      // Alone, a prompt is one first pass (the expanded form: keys and values not yet
      // rounded to the f16 cache); in chunks it attends to the cached f16 rows.
      const double tolerance = s == 2 ? 1e-3 : 1e-4;
      for (size_t i = 0; i < want.size(); ++i) {
        CHECK(argmax(got[s][i]) == argmax(want[i]));
        CHECK(max_relative_diff(got[s][i], want[i]) < tolerance);
      }
    }
  }
}

TEST_CASE("the scheduler's steps carry prompts beside decoded tokens: every request the greedy tokens it gets alone") {
  auto device = backends::open_device("cpu", {.threads = 2});
  runtime::KernelCache cache{{}};
  runtime::Session batched(demo(), *device, cache, {.context = 64, .sequences = 4});
  // Greedy tokens after each prompt, alone (argmax of the logits after each step).
  const int steps = 6;
  std::vector<std::vector<int32_t>> want;
  for (const std::vector<int32_t>& prompt : kPrompts) {
    std::vector<int32_t> tokens;
    for (const std::vector<float>& row : alone(*device, cache, prompt, steps - 1)) tokens.push_back(argmax(row));
    want.push_back(tokens);
  }
  std::vector<std::vector<int32_t>> got(kPrompts.size() + 2);
  std::vector<runtime::BatchResult> results(got.size());
  {
    // Prompt chunks of at most 4 tokens: the 12-token prompt takes several steps, beside
    // the others' decoded tokens; a request of one token ends in the pass of its prompt.
    runtime::BatchScheduler scheduler(batched, 16, 4);
    for (size_t i = 0; i < got.size(); ++i) {
      auto request = std::make_shared<runtime::BatchRequest>();
      request->prompt = kPrompts[i % kPrompts.size()];
      request->max_tokens = i == kPrompts.size() ? 1 : steps;
      request->on_token = [&got, i](int32_t t) { return got[i].push_back(t), true; };
      request->on_done = [&results, i](const runtime::BatchResult& r) { results[i] = r; };
      REQUIRE(scheduler.submit(request) == runtime::SubmitResult::queued);
    }
    scheduler.drain();
    // separate prompt chunks would take 12 passes more than the decode passes
    CHECK(scheduler.metrics().passes < scheduler.metrics().decode_passes + 6);
  }
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("request " << i);
    CHECK(results[i].reason == runtime::FinishReason::length);
    const std::vector<int32_t>& expect = want[i % kPrompts.size()];
    CHECK(got[i] == std::vector<int32_t>(expect.begin(), expect.begin() + static_cast<std::ptrdiff_t>(got[i].size())));
    CHECK(got[i].size() == (i == kPrompts.size() ? 1u : static_cast<size_t>(steps)));
  }
}

TEST_CASE("the passes a scheduler takes compile before it serves: none compiles while it serves, and the same tokens, on every device") {
  const int steps = 5;
  for (const std::string& id : device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::KernelCache cache{{}};
    runtime::Session batched(demo(), *device, cache, {.context = 32, .sequences = 3});
    const int64_t prepared = runtime::BatchScheduler::prepare_passes(batched, 4);
    // decode passes of 1..3 sequences, 4 tokens mixing a chunk and a decoded token, chunks
    // of 1, 2, 4 tokens first and of 2, 4 later
    CHECK(prepared == 9);
    CHECK(batched.stats().plans == 9);
    for (int64_t q = 0; q < batched.sequences(); ++q) CHECK(batched.cached_tokens(q) == 0);
    std::vector<std::vector<int32_t>> want;
    for (const std::vector<int32_t>& prompt : kPrompts) {
      std::vector<int32_t> tokens;
      for (const std::vector<float>& row : alone(*device, cache, prompt, steps - 1)) tokens.push_back(argmax(row));
      want.push_back(tokens);
    }
    std::vector<std::vector<int32_t>> got(kPrompts.size() * 2);
    {
      runtime::BatchScheduler scheduler(batched, 16, 4);
      for (size_t i = 0; i < got.size(); ++i) {
        auto request = std::make_shared<runtime::BatchRequest>();
        request->prompt = kPrompts[i % kPrompts.size()];
        request->max_tokens = steps;
        request->on_token = [&got, i](int32_t t) { return got[i].push_back(t), true; };
        REQUIRE(scheduler.submit(request) == runtime::SubmitResult::queued);
      }
      scheduler.drain();
      CHECK(scheduler.metrics().plans_compiled == 9);
    }
    CHECK(batched.stats().plans == 9);
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("request " << i);
      CHECK(got[i] == want[i % kPrompts.size()]);
    }
  }
}

TEST_CASE("a pass prepared ahead changes nothing a sequence holds, on every device, and is refused as the pass would be") {
  for (const std::string& id : device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::KernelCache cache{{}};
    const runtime::SessionOptions options{.context = 16, .max_batch = 8, .sequences = 2};
    runtime::Session plain(demo(), *device, cache, options), s(demo(), *device, cache, options);
    const auto held = static_cast<int64_t>(kPrompts[0].size());
    for (runtime::Session* session : {&plain, &s}) session->evaluate(1, kPrompts[0], 8, models::LogitRows::last);
    const int plans = s.stats().plans;
    const std::vector<int32_t> one{5}, four(4, 5), nine(9, 5);
    // as sequence 1 holds its prompt (a warm-up run, where the driver compiles at first
    // launch, writes past it): a pass of 5 tokens, 2 rows of logits; a decode step
    s.prepare_pass(std::vector<runtime::SequenceTokens>{{0, one}, {1, four}}, held);
    s.prepare_pass(std::vector<runtime::SequenceTokens>{{1, one}}, held);
    CHECK(s.stats().plans == plans + 2);
    CHECK_THROWS_WITH_AS(s.prepare_pass(std::vector<runtime::SequenceTokens>{{1, one}}, 3),
                         doctest::Contains("holds 8 tokens"), UserError);  // would write over its rows
    CHECK_THROWS_WITH_AS(s.prepare_pass(std::vector<runtime::SequenceTokens>{{0, four}}, 14),
                         doctest::Contains("pass the context of 16"), UserError);
    CHECK_THROWS_WITH_AS(s.prepare_pass(std::vector<runtime::SequenceTokens>{{0, nine}}, 0),
                         doctest::Contains("passes the batch of 8"), UserError);
    CHECK_THROWS_WITH_AS(s.prepare_pass(std::vector<runtime::SequenceTokens>{{2, one}}, 0),
                         doctest::Contains("sequence 2 of a session of 2"), UserError);
    CHECK(s.cached_tokens(0) == 0);
    CHECK(s.cached_tokens(1) == held);
    // sequence 1's next token on the prepared plan (nothing compiled), then a prompt on
    // sequence 0: the logits of the session that prepared nothing
    const runtime::SequenceTokens next{1, one};
    const std::vector<float> got = s.evaluate_sequences({&next, 1}), want = plain.evaluate_sequences({&next, 1});
    CHECK(s.stats().plans == plans + 2);
    CHECK(max_relative_diff(got, want) < 1e-6);
    CHECK(max_relative_diff(s.evaluate(0, kPrompts[1], 8, models::LogitRows::last),
                            plain.evaluate(0, kPrompts[1], 8, models::LogitRows::last)) < 1e-6);
    CHECK(s.cached_tokens(1) == held + 1);
  }
}

TEST_CASE("a sequence rewound and evaluated again leaves the others' rows alone") {
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  runtime::Session s(demo(), *cpu, cache, {.context = 64, .sequences = 2});
  const std::vector<int32_t> head(kPrompts[0].begin(), kPrompts[0].end() - 1);
  const runtime::SequenceTokens last{1, std::span<const int32_t>(&kPrompts[0].back(), 1)};
  s.evaluate(1, head, 64, models::LogitRows::last);
  const std::vector<float> first = s.evaluate_sequences({&last, 1});
  s.evaluate(0, kPrompts[2], 64, models::LogitRows::last);
  s.rewind(0, 2);
  CHECK(s.cached_tokens(0) == 2);
  CHECK(s.cached_tokens(1) == static_cast<int64_t>(kPrompts[0].size()));
  s.evaluate(0, std::vector<int32_t>{7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 64, models::LogitRows::last);
  // Sequence 1 again from its prompt's last token: the same logits as the first time.
  s.rewind(1, static_cast<int64_t>(kPrompts[0].size()) - 1);
  const std::vector<float> second = s.evaluate_sequences({&last, 1});
  CHECK(max_relative_diff(second, first) < 1e-6);
}

TEST_CASE("a pass over several sequences refuses bad work before doing any") {
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  runtime::Session s(demo(), *cpu, cache, {.context = 16, .max_batch = 8, .sequences = 2});
  const std::vector<int32_t> one{5}, nine(9, 5), long_prompt(17, 5);
  auto pass = [&](std::vector<runtime::SequenceTokens> work) { return s.evaluate_sequences(work); };
  CHECK_THROWS_WITH_AS(pass({{2, one}}), doctest::Contains("sequence 2 of a session of 2"), UserError);
  CHECK_THROWS_WITH_AS(pass({{0, one}, {0, one}}), doctest::Contains("appears twice"), UserError);
  CHECK_THROWS_WITH_AS(pass({{0, nine}}), doctest::Contains("passes the batch of 8"), UserError);
  CHECK_THROWS_WITH_AS(pass({{1, {}}}), doctest::Contains("has no new tokens"), UserError);
  CHECK_THROWS_WITH_AS(s.evaluate(1, long_prompt, 8), doctest::Contains("pass the context of 16"), UserError);
  CHECK(s.cached_tokens(0) == 0);
  CHECK(s.cached_tokens(1) == 0);
  runtime::Session single(demo(), *cpu, cache, {.context = 16});
  CHECK_THROWS_WITH_AS(single.evaluate_sequences(std::vector<runtime::SequenceTokens>{{0, one}, {1, one}}),
                       doctest::Contains("needs a session of several"), UserError);
  // The cache of every sequence counts in the memory budget.
  CHECK(s.memory_needs().cache == 2 * single.memory_needs().cache);
}

TEST_CASE("a pass of one token per sequence may hold more tokens than one sequence's context") {
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  runtime::Session s(demo(), *cpu, cache, {.context = 4, .max_batch = 8, .sequences = 8});
  CHECK(s.max_batch() == 8);
  const std::vector<int32_t> token{5};
  std::vector<runtime::SequenceTokens> work;
  for (int64_t q = 0; q < 8; ++q) work.push_back({q, token});
  const std::vector<float> logits = s.evaluate_sequences(work);
  REQUIRE(logits.size() == 8 * static_cast<size_t>(demo().vocab_size()));
  // Every sequence saw the same token at the same position: the same row of logits.
  const std::span<const float> first(logits.data(), static_cast<size_t>(demo().vocab_size()));
  for (size_t q = 1; q < 8; ++q)
    CHECK(max_relative_diff(std::span<const float>(logits).subspan(q * first.size(), first.size()), first) < 1e-6);
  const std::vector<int32_t> five(5, 5);
  CHECK_THROWS_WITH_AS(s.evaluate(0, five, 8), doctest::Contains("pass the context of 4"), UserError);
}

}  // namespace moat
