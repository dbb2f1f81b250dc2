// Multi-token prediction: the MTP layer as the draft module (its logits against
// independent references), speculative decoding's exactness (greedy: the tokens of plain
// decoding; sampling: the same distribution), and its errors.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "backends/device.h"
#include "frontend/models/deepseek_weights.h"
#include "runtime/generate.h"
#include "runtime/kernel_cache.h"
#include "runtime/speculative.h"
#include "support/error.h"
#include "support/npy.h"
#include "tests/cli/cli_runner.h"
#include "tests/runtime/demo_session.h"

namespace moat {

namespace {

using testing::read_all;
using testing::session_device_ids;

const std::string kSource = MOAT_SOURCE_DIR;
const std::string kDemo = kSource + "/models/kjv-tiny.gguf";
const std::string kGolden = kSource + "/tests/data/goldens/v3_mtp";
// The goldens with an MTP layer (tools/make_mtp_golden.py): V3's, and V3.2's, whose MTP
// layer keeps its indexer's top 12 keys of up to 47 positions.
const std::vector<std::string> kMtpGoldens = {kGolden, kSource + "/tests/data/goldens/v32_mtp"};
const std::vector<int32_t> kPrompt = {0, 449, 341, 336, 379, 2362, 28};  // BOS "The LORD is my shepherd;"

models::DeepSeekModel load_drafting(const std::string& path) {
  models::LoadOptions options;
  options.draft = true;
  return models::load_deepseek(path, options);
}

double relative_error(std::span<const float> got, std::span<const float> want) {
  REQUIRE(got.size() == want.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(got[i] - want[i])));
    scale = std::max(scale, static_cast<double>(std::abs(want[i])));
  }
  return diff / scale;
}

// The draft module's logits over `tokens` (positions 0..T-2, next tokens tokens[1..]),
// after the model evaluated them: rows 0..T-2 of a catch-up over all T positions.
std::vector<float> mtp_logits(runtime::Session& session, const std::vector<int32_t>& tokens, int64_t vocab) {
  session.evaluate(tokens, 16);
  std::vector<int32_t> next(tokens.begin() + 1, tokens.end());
  next.push_back(tokens.back());  // the last position's next token: its row is not compared
  std::vector<float> rows = session.draft_catch_up(next, models::LogitRows::all);
  rows.resize(rows.size() - static_cast<size_t>(vocab));
  return rows;
}

std::vector<int32_t> generate_ids(runtime::Session& session, const std::vector<int32_t>& prompt, int64_t n, int64_t draft,
                                  const runtime::SamplingOptions& sampling = {}, runtime::GenerationStats* stats = nullptr) {
  session.rewind(0);
  runtime::Sampler sampler(sampling);
  runtime::GenerationOptions options;
  options.max_tokens = n;
  options.batch = 16;
  options.draft_tokens = draft;
  std::vector<int32_t> history, out;
  const runtime::GenerationStats s =
      runtime::generate(session, sampler, prompt, history, options, [&](int32_t t) { out.push_back(t); });
  if (stats) *stats = s;
  return out;
}

}  // namespace

TEST_CASE("MTP layer: the v3_mtp and v32_mtp goldens' draft logits equal the transformers composition's on every device") {
  const std::vector<int32_t> tokens =
      nlohmann::json::parse(read_all(kSource + "/tests/data/goldens/tokens.json")).get<std::vector<int32_t>>();
  runtime::KernelCache cache("");
  for (const std::string& golden : kMtpGoldens) {
    INFO(golden);
    const models::DeepSeekModel model = load_drafting(golden);
    REQUIRE(model.has_draft());
    const NpyF32 want = read_npy_f32(golden + "/mtp_logits.npy");
    const NpyF32 main = read_npy_f32(golden + "/logits.npy");
    for (const std::string& id : session_device_ids()) {
      INFO(id);
      auto device = backends::open_device(id, {.threads = 2});
      runtime::Session session(model, *device, cache, {.context = 64, .cache_dtype = ir::DType::f32, .draft = true});
      const std::vector<float> logits = session.evaluate(tokens, 16);
      CHECK(relative_error(logits, main.values) < 1e-4);  // the main model is untouched by the MTP layer
      session.rewind(0);
      CHECK(relative_error(mtp_logits(session, tokens, model.vocab_size()), want.values) < 1e-4);
    }
  }
}

TEST_CASE("MTP layer: the demo model's draft logits equal its PyTorch MTP module's") {
  const models::DeepSeekModel model = load_drafting(kDemo);
  REQUIRE(model.has_draft());
  const std::vector<int32_t> tokens =
      nlohmann::json::parse(read_all(kSource + "/tests/data/demo/tokens.json")).get<std::vector<int32_t>>();
  const NpyF32 want = read_npy_f32(kSource + "/tests/data/demo/mtp_logits.npy");
  runtime::KernelCache cache("");
  for (const std::string& id : session_device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::Session session(model, *device, cache, {.context = 64, .cache_dtype = ir::DType::f32, .draft = true});
    CHECK(relative_error(mtp_logits(session, tokens, model.vocab_size()), want.values) < 1e-4);
  }
}

TEST_CASE("speculative decoding when greedy gives the tokens of plain decoding for every draft length and device") {
  const models::DeepSeekModel demo = load_drafting(kDemo);
  runtime::KernelCache cache("");
  for (const std::string& id : session_device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::Session plain(demo, *device, cache, {.context = 128});
    runtime::Session drafting(demo, *device, cache, {.context = 128, .draft = true});
    const std::vector<int32_t> want = generate_ids(plain, kPrompt, 60, 0);
    REQUIRE(want.size() == 60);
    // every draft length on the CPU; one on other devices (each pass size compiles there)
    const std::vector<int64_t> drafts = id == "cpu" ? std::vector<int64_t>{1, 2, 4} : std::vector<int64_t>{2};
    for (int64_t draft : drafts) {
      INFO("draft " << draft);
      runtime::GenerationStats stats;
      CHECK(generate_ids(drafting, kPrompt, 60, draft, {}, &stats) == want);
      CHECK(stats.drafted > 0);
      CHECK(stats.accepted > 0);  // a trained MTP layer gets some drafts right
      CHECK(stats.accepted <= stats.drafted);
      CHECK(drafting.cached_tokens() == static_cast<int64_t>(kPrompt.size()) + 60);  // every streamed token, no draft
    }
    // the goldens: transformers' greedy continuation, with and without drafts
    for (const std::string& path : kMtpGoldens) {
      INFO(path);
      const models::DeepSeekModel golden = load_drafting(path);
      const nlohmann::json golden_greedy = nlohmann::json::parse(read_all(path + "/greedy.json"));
      const std::vector<int32_t> golden_prompt = golden_greedy.at("prompt").get<std::vector<int32_t>>();
      const std::vector<int32_t> golden_text = golden_greedy.at("continuation").get<std::vector<int32_t>>();
      runtime::Session golden_session(golden, *device, cache, {.context = 64, .cache_dtype = ir::DType::f32, .draft = true});
      const auto n = static_cast<int64_t>(golden_text.size());
      CHECK(generate_ids(golden_session, golden_prompt, n, 0) == golden_text);
      for (int64_t draft : drafts) CHECK(generate_ids(golden_session, golden_prompt, n, draft) == golden_text);
    }
  }
}

TEST_CASE("speculative decoding stops as plain decoding does at the token limit or a stop token or a full context") {
  const models::DeepSeekModel demo = load_drafting(kDemo);
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache("");
  runtime::Session plain(demo, *cpu, cache, {.context = 24});
  runtime::Session drafting(demo, *cpu, cache, {.context = 24, .draft = true});
  // a limit that ends inside a verification pass's drafts
  for (int64_t n : {1, 2, 5}) CHECK(generate_ids(drafting, kPrompt, n, 4) == generate_ids(plain, kPrompt, n, 0));
  // a full context: generation ends with it, as plain decoding's
  runtime::GenerationStats stats_plain, stats_draft;
  const std::vector<int32_t> all = generate_ids(plain, kPrompt, 100, 0, {}, &stats_plain);
  CHECK(generate_ids(drafting, kPrompt, 100, 3, {}, &stats_draft) == all);
  CHECK(stats_draft.stop == stats_plain.stop);
  CHECK(stats_draft.stop == runtime::StopReason::context_full);
  // a stop token met among the drafts ends generation there, unstreamed and unevaluated
  REQUIRE(all.size() > 6);
  runtime::Sampler sampler({});
  runtime::GenerationOptions options{.max_tokens = 50, .batch = 16, .stop_ids = {all[5]}, .draft_tokens = 4};
  std::vector<int32_t> history, out;
  drafting.rewind(0);
  const runtime::GenerationStats stats = runtime::generate(drafting, sampler, kPrompt, history, options,
                                                           [&](int32_t t) { out.push_back(t); });
  const auto stop_at = static_cast<size_t>(std::find(all.begin(), all.end(), all[5]) - all.begin());
  CHECK(stats.stop == runtime::StopReason::stop_token);
  CHECK(out == std::vector<int32_t>(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(stop_at)));
  CHECK(drafting.cached_tokens() == static_cast<int64_t>(kPrompt.size() + stop_at));
}

// Chi-square over the second generated token (the first that a draft can give) of many
// seeds: plain sampling and speculative sampling must draw from the same distribution.
TEST_CASE("speculative sampling keeps the distribution of plain sampling (chi-square over many seeds)") {
  const models::DeepSeekModel demo = load_drafting(kDemo);
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache("");
  runtime::Session plain(demo, *cpu, cache, {.context = 32});
  runtime::Session drafting(demo, *cpu, cache, {.context = 32, .draft = true});
  const std::vector<int32_t> prompt = {0, 297};  // BOS "And"
  constexpr int kSeeds = 1500;
  std::map<std::pair<int32_t, int32_t>, std::array<int, 2>> counts;  // (1st, 2nd token) -> plain, drafted
  int64_t drafted = 0, accepted = 0;
  for (int seed = 0; seed < kSeeds; ++seed) {
    runtime::SamplingOptions sampling;
    sampling.temperature = 1.0;
    sampling.top_k = 8;
    sampling.seed = static_cast<uint64_t>(seed);
    const std::vector<int32_t> a = generate_ids(plain, prompt, 2, 0, sampling);
    runtime::GenerationStats stats;
    sampling.seed = static_cast<uint64_t>(seed) + 1000003;  // independent draws
    const std::vector<int32_t> b = generate_ids(drafting, prompt, 2, 1, sampling, &stats);
    ++counts[{a[0], a[1]}][0];
    ++counts[{b[0], b[1]}][1];
    drafted += stats.drafted, accepted += stats.accepted;
  }
  // Two-sample chi-square over pairs seen at least 10 times in all; rarer pairs pooled.
  double chi2 = 0;
  int cells = 0;
  std::array<int, 2> rare{0, 0};
  auto add = [&](const std::array<int, 2>& c) {
    const double total = c[0] + c[1], expected = total / 2;
    chi2 += (c[0] - expected) * (c[0] - expected) / expected + (c[1] - expected) * (c[1] - expected) / expected;
    ++cells;
  };
  for (const auto& [pair, c] : counts) {
    if (c[0] + c[1] >= 10) {
      add(c);
    } else {
      rare[0] += c[0], rare[1] += c[1];
    }
  }
  if (rare[0] + rare[1] > 0) add(rare);
  const int dof = cells - 1;
  MESSAGE("chi-square " << chi2 << " over " << cells << " cells; drafts accepted " << accepted << " of " << drafted);
  REQUIRE(dof >= 5);             // the test sees a real spread of outcomes
  CHECK(accepted > drafted / 10);  // and drafts did get accepted (else it compares plain with plain)
  // the 99.9% point of chi-square(dof) by the Wilson-Hilferty approximation
  const double z = 3.09, k = dof;
  const double limit = k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3);
  CHECK(chi2 < limit);
}

TEST_CASE("the acceptance rule keeps the model's distribution for a draft distribution far from it") {
  // p = {A: 0.2, B: 0.5, C: 0.3}, q = {A: 0.7, B: 0.1, C: 0.2}: tokens drafted from q and
  // verified must come out distributed as p.
  runtime::SamplingOptions o;
  o.temperature = 1.0;
  o.seed = 7;
  runtime::Sampler sampler(o);
  const runtime::TokenDistribution p{{0, 1, 2}, {0.2, 0.5, 0.3}}, q{{0, 1, 2}, {0.7, 0.1, 0.2}};
  std::array<int, 3> seen{};
  constexpr int kDraws = 200000;
  for (int i = 0; i < kDraws; ++i) {
    const int32_t d = sampler.draw(q);
    const std::vector<runtime::TokenDistribution> qs{q}, ps{p, p};
    const runtime::Verdict v = runtime::verify_drafts(sampler, std::span<const int32_t>(&d, 1), qs, ps);
    ++seen[static_cast<size_t>(v.accepted == 1 ? d : v.next)];
  }
  for (int t = 0; t < 3; ++t) CHECK(std::abs(seen[static_cast<size_t>(t)] / double(kDraws) - p.weights[static_cast<size_t>(t)]) < 0.005);
  // greedy: a draft equal to the model's argmax is kept, another replaced by it
  runtime::Sampler greedy({});
  const runtime::TokenDistribution argmax{{4}, {1.0}};
  const std::vector<runtime::TokenDistribution> qs{argmax, argmax}, ps{argmax, runtime::TokenDistribution{{9}, {1.0}}, argmax};
  const std::vector<int32_t> drafts = {4, 4};
  const runtime::Verdict v = runtime::verify_drafts(greedy, drafts, qs, ps);
  CHECK(v.accepted == 1);
  CHECK(v.next == 9);
}

TEST_CASE("drafting needs a model with an MTP layer loaded and one sequence") {
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache("");
  const models::DeepSeekModel no_mtp = load_drafting(kSource + "/tests/data/goldens/v3");
  CHECK_FALSE(no_mtp.has_draft());
  CHECK_THROWS_WITH_AS(runtime::Session(no_mtp, *cpu, cache, {.context = 16, .draft = true}),
                       doctest::Contains("has no MTP layers"), UserError);
  const models::DeepSeekModel not_loaded = models::load_deepseek(kGolden);
  CHECK_FALSE(not_loaded.has_draft());
  CHECK(std::any_of(not_loaded.notes.begin(), not_loaded.notes.end(),
                    [](const std::string& n) { return n.find("skipped 1 MTP layer") != std::string::npos; }));
  CHECK_THROWS_WITH_AS(runtime::Session(not_loaded, *cpu, cache, {.context = 16, .draft = true}),
                       doctest::Contains("were not loaded"), UserError);
  const models::DeepSeekModel golden = load_drafting(kGolden);
  CHECK_THROWS_WITH_AS(runtime::Session(golden, *cpu, cache, {.context = 16, .sequences = 2, .draft = true}),
                       doctest::Contains("one sequence"), UserError);
  // a session that drafts checks its draft calls
  runtime::Session session(golden, *cpu, cache, {.context = 16, .draft = true});
  const std::vector<int32_t> three = {5, 6, 7};
  session.evaluate(three, 4);
  CHECK_THROWS_WITH_AS(session.draft_catch_up(std::vector<int32_t>{1}), doctest::Contains("3 position(s) behind"), UserError);
  // the main model's weights and size exclude nothing; a decoded token reads no MTP bytes
  CHECK(golden.size().decode_bytes_per_token == models::load_deepseek(kGolden).size().decode_bytes_per_token);
  CHECK(golden.size().bytes > models::load_deepseek(kGolden).size().bytes);
}

TEST_CASE("moat run --spec mtp gives the same text and the acceptance in the stats line and clear errors") {
  using testing::contains;
  using testing::run_moat;
  const auto plain = run_moat({"run", "-p", "The LORD is my shepherd;", "-n", "30", "--temp", "0"});
  const auto spec = run_moat({"run", "-p", "The LORD is my shepherd;", "-n", "30", "--temp", "0", "--spec", "mtp", "--draft", "2"});
  REQUIRE(plain.exit_code == 0);
  REQUIRE(spec.exit_code == 0);
  CHECK(spec.out == plain.out);
  CHECK(contains(spec.err, "mtp draft 2: acceptance "));
  CHECK(contains(spec.err, " per pass"));
  // llama.cpp's spelling of the same
  const auto llama = run_moat({"run", "-p", "The LORD is my shepherd;", "-n", "30", "--temp", "0", "--spec-type", "draft-mtp",
                               "--spec-draft-n-max", "2"});
  CHECK(llama.out == plain.out);
  CHECK(contains(llama.err, "mtp draft 2: acceptance "));
  const auto bad = run_moat({"run", "-p", "x", "--spec", "eagle"});
  CHECK(bad.exit_code == 2);
  CHECK(contains(bad.err, "--spec eagle"));
  const auto lone = run_moat({"run", "-p", "x", "--draft", "2"});
  CHECK(lone.exit_code == 2);
  CHECK(contains(lone.err, "give --spec mtp too"));
  const auto none = run_moat({"run", "-m", kSource + "/tests/data/goldens/v3", "--tokens", "5,6", "-n", "2", "--spec", "mtp"});
  CHECK(none.exit_code == 2);
  CHECK(contains(none.err, "has no MTP layers"));
  // DeepSeek-V4 from llama.cpp's files: the MTP layer in its own mtp-*.gguf (-md, llama.cpp's flag)
  const std::string v4 = kSource + "/tests/data/goldens/v4_mtp/";
  const auto v4_plain = run_moat({"run", "-m", v4 + "model-f32.gguf", "--tokens", "5,6,7", "-n", "6", "--temp", "0"});
  const auto v4_spec = run_moat({"run", "-m", v4 + "model-f32.gguf", "--tokens", "5,6,7", "-n", "6", "--temp", "0", "--spec", "mtp",
                                 "-md", v4 + "mtp-model-f32.gguf"});
  REQUIRE(v4_plain.exit_code == 0);
  REQUIRE(v4_spec.exit_code == 0);
  CHECK(v4_spec.out == v4_plain.out);
  CHECK(contains(v4_spec.err, "mtp draft 1: acceptance "));
  const auto v4_without = run_moat({"run", "-m", v4 + "model-f32.gguf", "--tokens", "5,6", "-n", "2", "--spec", "mtp"});
  CHECK(v4_without.exit_code == 2);
  CHECK(contains(v4_without.err, "--draft-model"));
  const auto file_alone = run_moat({"run", "-p", "x", "--draft-model", v4 + "mtp-model-f32.gguf"});
  CHECK(file_alone.exit_code == 2);
  CHECK(contains(file_alone.err, "give --spec mtp too"));
}

}  // namespace moat
