// The C API (include/moat.h, libmoat.so) as a C program sees it: bad input is a status
// and a message, never a crash; text, sessions, samplers and generation agree with
// each other on the demo model.
#include <doctest/doctest.h>
#include <moat.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/skip.h"

namespace {

const std::string kDemo = std::string(MOAT_SOURCE_DIR) + "/models/kjv-tiny.gguf";

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// The last error of this thread, as a string.
std::string last_error() { return moat_last_error(); }

// The demo model, opened (freed at the end of the scope).
struct Demo {
  moat_model* model = nullptr;
  Demo() { REQUIRE_MESSAGE(moat_model_open(kDemo.c_str(), &model) == MOAT_OK, last_error()); }
  ~Demo() { moat_model_free(model); }
};

struct SessionOf {
  moat_session* session = nullptr;
  SessionOf(const moat_model* model, const char* device, int64_t context = 64) {
    REQUIRE_MESSAGE(moat_session_create(model, device, context, MOAT_CACHE_F16, 1, &session) == MOAT_OK, last_error());
  }
  ~SessionOf() { moat_session_free(session); }
};

std::vector<int32_t> tokenize(const moat_model* model, const std::string& text) {
  size_t n = 0;
  REQUIRE(moat_tokenize(model, text.data(), text.size(), 1, nullptr, 0, &n) == MOAT_ERROR_BUFFER_TOO_SMALL);
  std::vector<int32_t> ids(n);
  REQUIRE(moat_tokenize(model, text.data(), text.size(), 1, ids.data(), ids.size(), &n) == MOAT_OK);
  REQUIRE(n == ids.size());
  return ids;
}

std::vector<float> evaluate(moat_session* session, const std::vector<int32_t>& ids, int32_t vocab) {
  std::vector<float> logits(static_cast<size_t>(vocab));
  REQUIRE_MESSAGE(moat_session_evaluate(session, ids.data(), ids.size(), logits.data(), logits.size()) == MOAT_OK,
                  last_error());
  return logits;
}

int collect(int32_t token, const char*, size_t, void* user_data) {
  static_cast<std::vector<int32_t>*>(user_data)->push_back(token);
  return 0;
}

}  // namespace

TEST_CASE("capi: NULL handles, NULL outputs and bad values are invalid arguments with a message") {
  int32_t i32 = 0;
  int64_t i64 = 0;
  size_t n = 0;
  float logits[4] = {};
  const int32_t ids[2] = {1, 2};
  moat_model* model = nullptr;
  moat_session* session = nullptr;
  moat_sampler* sampler = nullptr;
  moat_sampling_options options{};
  CHECK(moat_model_open(nullptr, &model) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(contains(last_error(), "moat_model_open: path is NULL"));
  CHECK(moat_model_open(kDemo.c_str(), nullptr) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_model_open("", &model) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(model == nullptr);
  CHECK(moat_model_vocab_size(nullptr, &i32) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(contains(last_error(), "model is NULL"));
  CHECK(moat_model_bos(nullptr, &i32) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_model_eos(nullptr, &i32) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_model_training_context(nullptr, &i64) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_tokenize(nullptr, "a", 1, 1, nullptr, 0, &n) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_detokenize(nullptr, ids, 2, 1, nullptr, 0, &n) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_create(nullptr, "cpu", 0, MOAT_CACHE_F16, 0, &session) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(session == nullptr);
  CHECK(moat_session_evaluate(nullptr, ids, 2, logits, 4) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_rewind(nullptr, 0) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_cached_tokens(nullptr, &i64) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_context(nullptr, &i64) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_tokens(nullptr, nullptr, 0, &n) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_sampling_options_default(nullptr) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_sampler_create(nullptr, &sampler) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_sampler_sample(nullptr, logits, 4, nullptr, 0, &i32) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_generate(nullptr, ids, 2, &options, 1, 1, nullptr, nullptr, nullptr) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_device_count(nullptr) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_device_info(1u << 20, nullptr, nullptr) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(contains(last_error(), "is not below the device count"));
  moat_model_free(nullptr);  // freeing NULL does nothing
  moat_session_free(nullptr);
  moat_sampler_free(nullptr);
  CHECK(std::string(moat_status_name(MOAT_ERROR_USER)) == "MOAT_ERROR_USER");
  CHECK(std::string(moat_status_name(static_cast<moat_status>(99))) == "unknown status");
  CHECK(std::string(moat_version()).find('.') != std::string::npos);

  Demo demo;
  CHECK(moat_tokenize(demo.model, nullptr, 3, 1, nullptr, 0, &n) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_tokenize(demo.model, "abc", 3, 1, nullptr, 5, &n) == MOAT_ERROR_INVALID_ARGUMENT);
  const int32_t outside[1] = {1 << 20};
  CHECK(moat_detokenize(demo.model, outside, 1, 1, nullptr, 0, &n) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(contains(last_error(), "outside the vocabulary"));
  CHECK(moat_session_create(demo.model, "cpu", -1, MOAT_CACHE_F16, 0, &session) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_create(demo.model, nullptr, 0, MOAT_CACHE_F16, 0, &session) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_create(demo.model, "cpu", 0, static_cast<moat_cache_type>(42), 0, &session) == MOAT_ERROR_USER);
  CHECK(contains(last_error(), "MOAT_CACHE_F16"));

  SessionOf s(demo.model, "cpu");
  CHECK(moat_session_evaluate(s.session, ids, 2, logits, 4) == MOAT_ERROR_INVALID_ARGUMENT);  // logits too small
  CHECK(contains(last_error(), "logits has room for 4 floats"));
  CHECK(moat_session_evaluate(s.session, ids, 0, logits, 4) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_evaluate(s.session, outside, 1, logits, 4) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_rewind(s.session, -1) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_generate(s.session, ids, 0, &options, 1, 1, nullptr, nullptr, nullptr) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_generate(s.session, ids, 2, nullptr, 1, 1, nullptr, nullptr, nullptr) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_generate(s.session, ids, 2, &options, -1, 1, nullptr, nullptr, nullptr) == MOAT_ERROR_INVALID_ARGUMENT);
  CHECK(moat_session_cached_tokens(s.session, &i64) == MOAT_OK);
  CHECK(i64 == 0);  // nothing was evaluated by the failed calls

  // Values out of range are the user's: the message names the option.
  REQUIRE(moat_sampling_options_default(&options) == MOAT_OK);
  options.top_p = 2;
  CHECK(moat_sampler_create(&options, &sampler) == MOAT_ERROR_USER);
  CHECK(sampler == nullptr);
  CHECK(contains(last_error(), "top-p"));
  CHECK(moat_generate(s.session, ids, 2, &options, 1, 1, nullptr, nullptr, nullptr) == MOAT_ERROR_USER);
}

TEST_CASE("capi: a missing model file is a user error naming the file") {
  moat_model* model = reinterpret_cast<moat_model*>(1);
  const std::string path = "/nonexistent/dir/model.gguf";
  CHECK(moat_model_open(path.c_str(), &model) == MOAT_ERROR_USER);
  CHECK(model == nullptr);
  CHECK(contains(last_error(), path));
  // A file that is not a model: named too.
  const std::string text = std::string(MOAT_SOURCE_DIR) + "/README.md";
  CHECK(moat_model_open(text.c_str(), &model) == MOAT_ERROR_USER);
  CHECK(contains(last_error(), text));
}

TEST_CASE("capi: an unknown device is a user error that lists the devices") {
  Demo demo;
  moat_session* session = nullptr;
  CHECK(moat_session_create(demo.model, "nodevice:3", 0, MOAT_CACHE_F16, 0, &session) == MOAT_ERROR_USER);
  CHECK(session == nullptr);
  CHECK(contains(last_error(), "nodevice:3"));
  CHECK(contains(last_error(), "cpu"));
  size_t count = 0;
  REQUIRE(moat_device_count(&count) == MOAT_OK);
  REQUIRE(count >= 1);
  const char* id = nullptr;
  const char* name = nullptr;
  REQUIRE(moat_device_info(0, &id, &name) == MOAT_OK);
  CHECK(std::string(id) == "cpu");
  CHECK(std::string(name) != "");
}

TEST_CASE("capi: tokenize and detokenize round-trip, and say how much room they need") {
  Demo demo;
  const std::string text = "In the beginning God created the heaven and the earth.";
  const std::vector<int32_t> ids = tokenize(demo.model, text);
  int32_t bos = -1, eos = -1, vocab = 0;
  REQUIRE(moat_model_bos(demo.model, &bos) == MOAT_OK);
  REQUIRE(moat_model_eos(demo.model, &eos) == MOAT_OK);
  REQUIRE(moat_model_vocab_size(demo.model, &vocab) == MOAT_OK);
  CHECK(vocab > 0);
  if (bos >= 0) CHECK(ids.front() == bos);
  CHECK(eos < vocab);
  size_t n = 0;
  int32_t one[1];
  CHECK(moat_tokenize(demo.model, text.data(), text.size(), 1, one, 1, &n) == MOAT_ERROR_BUFFER_TOO_SMALL);
  CHECK(n == ids.size());

  size_t length = 0;
  CHECK(moat_detokenize(demo.model, ids.data(), ids.size(), 0, nullptr, 0, &length) == MOAT_ERROR_BUFFER_TOO_SMALL);
  CHECK(length == text.size());
  std::string back(length, '\0');
  CHECK(moat_detokenize(demo.model, ids.data(), ids.size(), 0, back.data(), length, &length) ==
        MOAT_ERROR_BUFFER_TOO_SMALL);  // no room for the NUL
  std::vector<char> buffer(length + 1, 'x');
  REQUIRE(moat_detokenize(demo.model, ids.data(), ids.size(), 0, buffer.data(), buffer.size(), &length) == MOAT_OK);
  CHECK(std::string(buffer.data()) == text);
}

TEST_CASE("capi: evaluate, rewind and the tokens held agree") {
  Demo demo;
  int32_t vocab = 0;
  REQUIRE(moat_model_vocab_size(demo.model, &vocab) == MOAT_OK);
  SessionOf s(demo.model, "cpu", 16);
  const std::vector<int32_t> prompt = tokenize(demo.model, "And God said");
  const std::vector<float> first = evaluate(s.session, prompt, vocab);
  int64_t cached = 0, context = 0;
  REQUIRE(moat_session_cached_tokens(s.session, &cached) == MOAT_OK);
  REQUIRE(moat_session_context(s.session, &context) == MOAT_OK);
  CHECK(cached == static_cast<int64_t>(prompt.size()));
  CHECK(context == 16);
  std::vector<int32_t> held(prompt.size());
  size_t n = 0;
  REQUIRE(moat_session_tokens(s.session, held.data(), held.size(), &n) == MOAT_OK);
  CHECK(held == prompt);

  // The whole prompt again after a rewind to 0: the same pass, the same logits.
  REQUIRE(moat_session_rewind(s.session, 0) == MOAT_OK);
  REQUIRE(moat_session_cached_tokens(s.session, &cached) == MOAT_OK);
  CHECK(cached == 0);
  CHECK(evaluate(s.session, prompt, vocab) == first);
  // The last token again after a rewind by one: a decode pass over the cache (the
  // absorbed attention over f16 rows, not the first pass's expanded form), close.
  REQUIRE(moat_session_rewind(s.session, static_cast<int64_t>(prompt.size()) - 1) == MOAT_OK);
  REQUIRE(moat_session_cached_tokens(s.session, &cached) == MOAT_OK);
  CHECK(cached == static_cast<int64_t>(prompt.size()) - 1);
  REQUIRE(moat_session_tokens(s.session, held.data(), held.size(), &n) == MOAT_OK);
  CHECK(n == prompt.size() - 1);
  const std::vector<float> again = evaluate(s.session, {prompt.back()}, vocab);
  float diff = 0, scale = 0;
  for (size_t i = 0; i < first.size(); ++i) {
    diff = std::max(diff, std::fabs(first[i] - again[i]));
    scale = std::max(scale, std::fabs(first[i]));
  }
  CHECK(diff <= 1e-3f * scale);

  // Past the context: a user error before any work, the cache as it was.
  const std::vector<int32_t> too_many(static_cast<size_t>(context), prompt.back());
  std::vector<float> logits(static_cast<size_t>(vocab));
  CHECK(moat_session_evaluate(s.session, too_many.data(), too_many.size(), logits.data(), logits.size()) ==
        MOAT_ERROR_USER);
  CHECK(contains(last_error(), "context"));
  REQUIRE(moat_session_cached_tokens(s.session, &cached) == MOAT_OK);
  CHECK(cached == static_cast<int64_t>(prompt.size()));
}

TEST_CASE("capi: generate is the sampler over evaluate, and stops when the callback says so") {
  Demo demo;
  int32_t vocab = 0;
  REQUIRE(moat_model_vocab_size(demo.model, &vocab) == MOAT_OK);
  const std::vector<int32_t> prompt = tokenize(demo.model, "In the beginning");
  moat_sampling_options options;
  REQUIRE(moat_sampling_options_default(&options) == MOAT_OK);
  options.seed = 7;
  constexpr int64_t kTokens = 8;

  std::vector<int32_t> generated;
  moat_generation_result result{};
  {
    SessionOf s(demo.model, "cpu");
    REQUIRE_MESSAGE(moat_generate(s.session, prompt.data(), prompt.size(), &options, kTokens, 0, collect, &generated,
                                  &result) == MOAT_OK,
                    last_error());
    CHECK(result.generated_tokens == kTokens);
    CHECK(result.stop == MOAT_STOP_LIMIT);
    CHECK(generated.size() == static_cast<size_t>(kTokens));
    int64_t cached = 0;
    REQUIRE(moat_session_cached_tokens(s.session, &cached) == MOAT_OK);
    CHECK(cached == static_cast<int64_t>(prompt.size()) + kTokens);  // the last token is evaluated too
  }
  // The same by hand: a sampler with the same seed over the session's logits.
  {
    SessionOf s(demo.model, "cpu");
    moat_sampler* sampler = nullptr;
    REQUIRE(moat_sampler_create(&options, &sampler) == MOAT_OK);
    std::vector<int32_t> history = prompt, by_hand;
    std::vector<float> logits = evaluate(s.session, prompt, vocab);
    for (int64_t i = 0; i < kTokens; ++i) {
      int32_t token = -1;
      REQUIRE(moat_sampler_sample(sampler, logits.data(), logits.size(), history.data(), history.size(), &token) ==
              MOAT_OK);
      by_hand.push_back(token);
      history.push_back(token);
      logits = evaluate(s.session, {token}, vocab);
    }
    moat_sampler_free(sampler);
    CHECK(by_hand == generated);
  }
  // A callback that stops after the third token.
  {
    SessionOf s(demo.model, "cpu");
    struct Stop {
      int seen = 0;
      std::string text;
    } stop;
    const auto third = [](int32_t, const char* text, size_t length, void* user_data) -> int {
      auto* st = static_cast<Stop*>(user_data);
      st->text.append(text, length);
      return ++st->seen == 3;
    };
    REQUIRE(moat_generate(s.session, prompt.data(), prompt.size(), &options, kTokens, 0, third, &stop, &result) ==
            MOAT_OK);
    CHECK(stop.seen == 3);
    CHECK(result.generated_tokens == 3);
    CHECK(result.stop == MOAT_STOP_CALLBACK);
    // the pieces are the text of the tokens
    size_t length = 0;
    std::vector<char> buffer(256);
    REQUIRE(moat_detokenize(demo.model, generated.data(), 3, 0, buffer.data(), buffer.size(), &length) == MOAT_OK);
    CHECK(stop.text == std::string(buffer.data(), length));
  }
  // A context that fills: generation stops there, and says so.
  {
    SessionOf s(demo.model, "cpu", static_cast<int64_t>(prompt.size()) + 2);
    REQUIRE(moat_generate(s.session, prompt.data(), prompt.size(), &options, kTokens, 0, nullptr, nullptr, &result) ==
            MOAT_OK);
    CHECK(result.stop == MOAT_STOP_CONTEXT_FULL);
    CHECK(result.generated_tokens == 3);  // two evaluated, the third chosen with no room left
    int64_t cached = 0;
    REQUIRE(moat_session_cached_tokens(s.session, &cached) == MOAT_OK);
    CHECK(cached == static_cast<int64_t>(prompt.size()) + 2);
  }
}

TEST_CASE("capi: opencl:0 gives the cpu's logits and generates") {
  size_t count = 0;
  REQUIRE(moat_device_count(&count) == MOAT_OK);
  bool found = false;
  for (size_t i = 0; i < count; ++i) {
    const char* id = nullptr;
    REQUIRE(moat_device_info(i, &id, nullptr) == MOAT_OK);
    found = found || std::string(id) == "opencl:0";
  }
  if (!found) {
    moat::testing::skip("no opencl:0 device (Debian: pocl-opencl-icd gives one on the CPU)");
    return;
  }
  Demo demo;
  int32_t vocab = 0;
  REQUIRE(moat_model_vocab_size(demo.model, &vocab) == MOAT_OK);
  const std::vector<int32_t> prompt = tokenize(demo.model, "And the earth was");
  SessionOf cpu(demo.model, "cpu"), cl(demo.model, "opencl:0");
  const std::vector<float> a = evaluate(cpu.session, prompt, vocab), b = evaluate(cl.session, prompt, vocab);
  float diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(a[i]));
  }
  CHECK(diff <= 1e-3f * scale);
  moat_sampling_options greedy;
  REQUIRE(moat_sampling_options_default(&greedy) == MOAT_OK);
  greedy.temperature = 0;
  std::vector<int32_t> generated;
  moat_generation_result result{};
  REQUIRE_MESSAGE(moat_generate(cl.session, &prompt.back(), 1, &greedy, 4, 0, collect, &generated, &result) == MOAT_OK,
                  last_error());
  CHECK(generated.size() == 4);
}
