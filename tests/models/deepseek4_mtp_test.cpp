// DeepSeek-V4's MTP layer as the draft module (frontend/models/deepseek4.h, PassSpec::draft)
// against tests/data/goldens/v4_mtp/ (tools/make_mtp_golden.py --arch v4): the v4 golden
// with one MTP layer in DeepSeek's released names (mtp.0.*), its logits composed from
// transformers' DeepseekV4DecoderLayer and DeepseekV4HyperHead as DeepSeek's MTPBlock
// runs them, over the model's hyper-connection streams before its head. Speculative
// decoding over V4's cache (cut back past rejected drafts, runtime/speculative.h) must
// give transformers' greedy continuation for every draft length.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/registry.h"
#include "frontend/models/deepseek4_model.h"
#include "runtime/generate.h"
#include "runtime/kernel_cache.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "support/error.h"
#include "support/npy.h"
#include "support/strings.h"
#include "tests/models/logits_match.h"
#include "tests/runtime/demo_session.h"

using namespace moat;

namespace {

const std::string kDir = MOAT_SOURCE_DIR "/tests/data/goldens/v4_mtp/";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

const models::Model& drafting_model() {
  static const std::unique_ptr<models::Model> m = models::open_model(kDir, {.draft = true});
  return *m;
}

// Rows of `values` [rows, vocab] as an NpyF32.
NpyF32 rows_of(std::vector<float> values, int64_t vocab) {
  return NpyF32{{static_cast<int64_t>(values.size()) / vocab, vocab}, std::move(values)};
}

std::vector<int32_t> greedy(runtime::Session& session, const std::vector<int32_t>& prompt, int64_t n, int64_t draft,
                            runtime::GenerationStats* stats = nullptr) {
  session.rewind(0);
  runtime::Sampler sampler(runtime::SamplingOptions{.temperature = 0});
  runtime::GenerationOptions options;
  options.max_tokens = n;
  options.batch = 16;
  options.draft_tokens = draft;
  std::vector<int32_t> history, out;
  const runtime::GenerationStats s = runtime::generate(session, sampler, prompt, history, options, [&](int32_t t) { out.push_back(t); });
  if (stats) *stats = s;
  return out;
}

}  // namespace

TEST_CASE("DeepSeek-V4's MTP layer loads from the folder's mtp.0.* only when asked, with its own window cache") {
  const models::Model& m = drafting_model();
  REQUIRE(m.has_draft());
  CHECK(m.hidden_size() == 4 * 64);  // the hyper-connection streams
  const std::vector<models::CachePart> draft = m.draft_cache_layout();
  REQUIRE(draft.size() == 1);  // compress ratio 0: the window ring only
  CHECK(draft[0].input == "window.4");
  CHECK(m.tensors().count("layers.4.e_proj.weight") == 1);
  CHECK(m.tensors().count("layers.4.hc_head_fn") == 1);
  const std::unique_ptr<models::Model> plain = models::open_model(kDir);
  CHECK_FALSE(plain->has_draft());
  CHECK(plain->tensors().count("layers.4.e_proj.weight") == 0);
  CHECK(plain->why_no_draft() == "the MTP layer was not loaded (LoadOptions::draft)");
  // The MTP layer weighs, but a model pass does not read it (bench's bandwidth figures).
  CHECK(m.size().bytes > plain->size().bytes);
  CHECK(m.size().decode_bytes_per_token == plain->size().decode_bytes_per_token);
  const std::vector<std::string> notes = plain->load_notes();
  CHECK(std::any_of(notes.begin(), notes.end(), [](const std::string& n) { return n.find("mtp.*") != std::string::npos; }));
}

TEST_CASE("DeepSeek-V4's MTP layer: its draft logits equal the transformers composition's on every device") {
  const std::vector<int32_t> tokens = read_json(kDir + "tokens.json").get<std::vector<int32_t>>();
  const NpyF32 want = read_npy_f32(kDir + "mtp_logits.npy");
  const NpyF32 main = read_npy_f32(kDir + "logits.npy");
  const int64_t vocab = drafting_model().vocab_size();
  runtime::KernelCache cache("");
  for (const std::string& id : testing::session_device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::Session session(drafting_model(), *device, cache,
                             {.context = 320, .cache_dtype = ir::DType::f32, .max_batch = 64, .draft = true});
    // The model's passes are untouched by the MTP layer; the draft module then catches up
    // with all 320 positions (passes of 64: windows and rings across passes), the next
    // token of each the golden's (the last one's row is not compared).
    testing::expect_matches(session.evaluate(tokens, 64), main, 1e-4, id + ", the model");
    std::vector<int32_t> next(tokens.begin() + 1, tokens.end());
    next.push_back(tokens.back());
    std::vector<float> drafts = session.draft_catch_up(next, models::LogitRows::all);
    drafts.resize(drafts.size() - static_cast<size_t>(vocab));
    testing::expect_matches(rows_of(std::move(drafts), vocab).values, want, 1e-4, id + ", the MTP layer");
  }
}

TEST_CASE("DeepSeek-V4 speculative decoding when greedy gives transformers' greedy tokens for every draft length") {
  // On the CPU: each pass size compiles, the catch-ups' included, and PoCL takes minutes
  // for V4's; the draft pass on opencl:0 is checked above, speculative decoding on it by
  // speculative_test (V3, V3.2). A cut back of 16, the most V4's cache takes back, is
  // deepseek4_session_test's.
  const nlohmann::json golden = read_json(kDir + "greedy.json");
  const std::vector<int32_t> prompt = golden.at("prompt").get<std::vector<int32_t>>();
  const std::vector<int32_t> want = golden.at("continuation").get<std::vector<int32_t>>();
  const auto n = static_cast<int64_t>(want.size());
  runtime::KernelCache cache("");
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::Session session(drafting_model(), *cpu, cache, {.context = 64, .cache_dtype = ir::DType::f32, .draft = true});
  CHECK(greedy(session, prompt, n, 0) == want);
  for (int64_t draft : {1, 2, 4, 8}) {
    INFO("draft " << draft);
    runtime::GenerationStats stats;
    CHECK(greedy(session, prompt, n, draft, &stats) == want);
    CHECK(stats.drafted > 0);
    CHECK(stats.accepted <= stats.drafted);
    CHECK(session.cached_tokens() == static_cast<int64_t>(prompt.size()) + n);
    MESSAGE("draft " << draft << ": " << stats.accepted << " of " << stats.drafted << " drafts accepted");
  }
  // More drafts than the cache can take back is refused before any work.
  CHECK_THROWS_WITH_AS(greedy(session, prompt, n, 17), doctest::Contains("--draft 17"), UserError);
}

namespace {

// The golden as llama.cpp's converter writes it: model-f32.gguf without the MTP layer,
// mtp-model-f32.gguf its --mtp export (e_proj | h_proj as one Q8_0 eh_proj).
const models::Model& gguf_drafting_model() {
  static const std::unique_ptr<models::Model> m =
      models::open_model(kDir + "model-f32.gguf", {.draft = true, .draft_file = kDir + "mtp-model-f32.gguf"});
  return *m;
}

}  // namespace

TEST_CASE("DeepSeek-V4's MTP layer from llama.cpp's mtp-*.gguf drafts as the folder's, and greedy drafting gives transformers' tokens") {
  const models::Model& m = gguf_drafting_model();
  REQUIRE(m.has_draft());
  CHECK(m.draft_cache_layout().size() == 1);
  // llama.cpp's converter writes e_proj | h_proj as one Q8_0 eh_proj: split apart, each is
  // the folder's f32 projection within Q8_0's rounding; every other tensor of the layer is
  // the folder's bit for bit.
  for (const auto& [name, folder] : drafting_model().tensors()) {
    if (name.rfind("layers.4.", 0) != 0) continue;
    INFO(name);
    REQUIRE(m.tensors().count(name) == 1);
    const ir::HostTensor& read = m.tensors().at(name);
    CHECK(read.shape() == folder.shape());
    const bool projection = name.ends_with("_proj.weight") && name.find(".attn.") == std::string::npos;
    CHECK(read.dtype() == (projection ? ir::DType::q8_0 : folder.dtype()));
    const std::vector<float> a = read.to_f32(), b = folder.to_f32();
    float most = 0, largest = 0;
    for (size_t i = 0; i < a.size(); ++i) most = std::max(most, std::fabs(a[i] - b[i])), largest = std::max(largest, std::fabs(b[i]));
    CHECK(most <= (projection ? largest / 127 : 0.0f));
  }
  // The drafts: the folder's layer with the same two projections (the f32 values of the
  // Q8_0 blocks) gives the same logits, over the same streams of the model read from
  // llama.cpp's model-f32.gguf. Against transformers' f32 composition that rounding alone
  // moves the golden's random layer far (the folder's layer with it moves as far).
  models::DeepSeekV4Model folder = models::load_deepseek4(kDir, {.draft = true});
  for (const char* p : {"layers.4.e_proj.weight", "layers.4.h_proj.weight"})
    folder.weights.tensors.at(p) = ir::HostTensor::from_f32(m.tensors().at(p).shape(), m.tensors().at(p).to_f32());
  const std::vector<int32_t> tokens = read_json(kDir + "tokens.json").get<std::vector<int32_t>>();
  const int64_t vocab = m.vocab_size();
  runtime::KernelCache cache("");
  auto cpu = backends::open_cpu_device({.threads = 2});
  auto draft_logits = [&](const models::Model& model) {
    runtime::Session session(model, *cpu, cache, {.context = 320, .cache_dtype = ir::DType::f32, .max_batch = 64, .draft = true});
    session.evaluate(tokens, 64);
    std::vector<int32_t> next(tokens.begin() + 1, tokens.end());
    next.push_back(tokens.back());
    std::vector<float> drafts = session.draft_catch_up(next, models::LogitRows::all);
    drafts.resize(drafts.size() - static_cast<size_t>(vocab));
    return rows_of(std::move(drafts), vocab);
  };
  const NpyF32 from_gguf = draft_logits(m);
  testing::expect_matches(from_gguf.values, draft_logits(folder), 1e-4,
                          "cpu, mtp-model-f32.gguf's layer against the folder's with its rounded projections");
  const NpyF32 want = read_npy_f32(kDir + "mtp_logits.npy");
  double most = 0, largest = 0;
  for (size_t i = 0; i < want.values.size(); ++i)
    most = std::max(most, std::fabs(double(from_gguf.values[i]) - want.values[i])), largest = std::max(largest, std::fabs(double(want.values[i])));
  MESSAGE("cpu, mtp-model-f32.gguf's layer against transformers' f32 layer: max|d|/max|ref| = " << most / largest);

  // Speculative decoding is exact whatever the drafts: the folder's greedy tokens.
  const nlohmann::json golden = read_json(kDir + "greedy.json");
  const std::vector<int32_t> prompt = golden.at("prompt").get<std::vector<int32_t>>();
  const std::vector<int32_t> continuation = golden.at("continuation").get<std::vector<int32_t>>();
  runtime::Session session(m, *cpu, cache, {.context = 64, .cache_dtype = ir::DType::f32, .draft = true});
  runtime::GenerationStats stats;
  CHECK(greedy(session, prompt, static_cast<int64_t>(continuation.size()), 2, &stats) == continuation);
  CHECK(stats.drafted > 0);
}

TEST_CASE("a separate DeepSeek-V4 MTP file: asked for where it belongs, refused where it does not") {
  const std::unique_ptr<models::Model> without = models::open_model(kDir + "model-f32.gguf", {.draft = true});
  CHECK_FALSE(without->has_draft());
  CHECK(without->why_no_draft().find("--draft-model") != std::string::npos);
  CHECK_THROWS_WITH_AS(models::open_model(kDir + "model-f32.gguf", {.draft = true, .draft_file = kDir + "model-f32.gguf"}),
                       doctest::Contains("not an MTP file"), UserError);
  CHECK_THROWS_WITH_AS(models::open_model(kDir, {.draft = true, .draft_file = kDir + "mtp-model-f32.gguf"}),
                       doctest::Contains("in its own safetensors"), UserError);
  CHECK_THROWS_WITH_AS(models::open_model(MOAT_SOURCE_DIR "/models/kjv-tiny.gguf", {.draft = true, .draft_file = kDir + "mtp-model-f32.gguf"}),
                       doctest::Contains("read only beside a DeepSeek-V4 GGUF"), UserError);
  // The MTP file given as the model.
  CHECK_THROWS_WITH_AS(models::open_model(kDir + "mtp-model-f32.gguf"), doctest::Contains("--draft-model"), UserError);
}

