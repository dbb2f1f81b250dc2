// DeepSeek-V4 as a model of the runtime (frontend/models/deepseek4_model.h): sessions
// over its cache of several parts per layer (window ring, compressed rows, indexer rows,
// pooling state) against transformers' logits of the golden (tests/data/goldens/v4/,
// tools/make_v4_golden.py: 320 tokens, window 16, CSA ratio 4 with top-8, HCA 128).
// One pass, chunks that end inside blocks and windows, and token by token must all give
// the whole sequence's logits.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "backends/registry.h"
#include "frontend/models/deepseek4_model.h"
#include "ir/interpreter.h"
#include "ir/quant.h"
#include "runtime/kernel_cache.h"
#include "runtime/session.h"
#include "support/error.h"
#include "support/npy.h"
#include "support/strings.h"
#include "tests/models/logits_match.h"
#include "tests/runtime/demo_session.h"
#include "tests/skip.h"

using namespace moat;

namespace {

const std::string kDir = MOAT_SOURCE_DIR "/tests/data/goldens/v4/";

std::vector<int32_t> golden_tokens() {
  std::ifstream in(kDir + "tokens.json");
  return nlohmann::json::parse(in).get<std::vector<int32_t>>();
}

const NpyF32& golden_logits() {
  static const NpyF32 want = read_npy_f32(kDir + "logits.npy");
  return want;
}

const models::Model& golden_model() {
  static const std::unique_ptr<models::Model> m = models::open_model(kDir);
  return *m;
}

std::vector<float> evaluate(backends::Device& device, runtime::KernelCache& cache, int64_t batch,
                            ir::DType cache_type = ir::DType::f32) {
  runtime::Session session(golden_model(), device, cache, {.context = 320, .cache_dtype = cache_type});
  return session.evaluate(golden_tokens(), batch);
}

// Runs `check` on the CPU, then on opencl:0 where there is one (a message says it was
// skipped otherwise), with one kernel cache; `cpu` tells which.
void on_cpu_then_opencl(const std::function<void(backends::Device&, runtime::KernelCache&, bool cpu)>& check) {
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  check(*cpu, cache, true);
  std::unique_ptr<backends::Device> ocl;
  try {
    ocl = backends::open_device("opencl:0");
  } catch (const UserError& e) {
    MESSAGE("opencl:0 part skipped: " << e.what());  // the CPU part ran
    return;
  }
  check(*ocl, cache, false);
}

}  // namespace

TEST_CASE("DeepSeek-V4 opens as its own family from a folder and from llama.cpp's GGUF") {
  const auto* folder = dynamic_cast<const models::DeepSeekV4Model*>(&golden_model());
  REQUIRE(folder != nullptr);
  CHECK(folder->format == "safetensors");
  const std::unique_ptr<models::Model> gguf = models::open_model(kDir + "model-f32.gguf");
  const auto* file = dynamic_cast<const models::DeepSeekV4Model*>(gguf.get());
  REQUIRE(file != nullptr);
  CHECK(file->format == "gguf");
  CHECK(file->vocab_size() == folder->vocab_size());
  CHECK(file->size().params == folder->size().params);
  CHECK(folder->size().label.starts_with("deepseek4 "));
  CHECK(folder->size().decode_bytes_per_token < folder->size().bytes);  // a token reads 2 of the experts
  CHECK(models::is_deepseek4(kDir + "config.json"));
  CHECK_FALSE(models::is_deepseek4(kDir + "tokens.json"));
  CHECK_FALSE(models::open_model(kDir, {.draft = true})->has_draft());
  CHECK(folder->why_no_draft() == "the folder has no MTP layers (num_nextn_predict_layers 0)");
  CHECK(file->why_no_draft().find("mtp-*.gguf") != std::string::npos);
}

TEST_CASE("DeepSeek-V4 sessions on the CPU: one pass, chunks and token by token give transformers' logits") {
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  // 37: chunks ending mid-block, mid-window and with several blocks completing at once
  // (and the 128-token block completing inside a chunk); 5: more than a CSA block; 1:
  // decode, each block completed by its last token.
  for (int64_t batch : {320, 37, 5, 1}) testing::expect_matches(evaluate(*cpu, cache, batch), golden_logits(), 1e-4,
                                                                 cat("cpu, passes of ", batch));
}

TEST_CASE("DeepSeek-V4 sessions on OpenCL: one pass, chunks and token by token give transformers' logits") {
  std::unique_ptr<backends::Device> ocl;
  try {
    ocl = backends::open_device("opencl:0");
  } catch (const UserError& e) {
    testing::skip(e.what());
    return;
  }
  runtime::KernelCache cache{{}};
  for (int64_t batch : {64, 1}) testing::expect_matches(evaluate(*ocl, cache, batch), golden_logits(), 1e-4,
                                                             cat("opencl:0, passes of ", batch));
}

namespace {

// tests/data/goldens/v4_fp8 (tools/make_v4_fp8_golden.py): the golden's weights stored as
// DeepSeek stores V4-Flash (FP8 E4M3 with UE8M0 128 x 128 block scales; routed experts
// MXFP4); its reference is transformers on the values those bytes mean.
const std::string kReleased = MOAT_SOURCE_DIR "/tests/data/goldens/v4_fp8/";

const models::DeepSeekV4Model& released_model() {
  static const std::unique_ptr<models::Model> m = models::open_model(kReleased);
  return dynamic_cast<const models::DeepSeekV4Model&>(*m);
}

// The whole sequence's logits from the interpreter, over `w`.
std::vector<float> interpret_sequence(const models::DeepSeekV4Model& m, const models::DeepSeekV4Weights& w) {
  const std::vector<int32_t> tokens = golden_tokens();
  const auto t = static_cast<int64_t>(tokens.size());
  ir::Bindings bindings;
  bindings.tensors.emplace("tokens", ir::HostTensor::from_i64({t}, std::vector<int64_t>(tokens.begin(), tokens.end()), ir::DType::i32));
  for (const auto& [name, tensor] : w.tensors) bindings.tensors.emplace(name, tensor);
  return ir::interpret(models::deepseek4_sequence_graph(m.hparams, w, t), bindings).at(0).to_f32();
}

}  // namespace

TEST_CASE("DeepSeek-V4 as released (FP8 + UE8M0 scales, MXFP4 experts) loads compressed, to the values transformers used") {
  const models::DeepSeekV4Model& m = released_model();
  models::DeepSeekV4Weights values;  // every weight as the f32 it means
  int fp8 = 0, mxfp4 = 0;
  for (const auto& [name, tensor] : m.weights.tensors) {
    if (name.ends_with(".scale")) continue;
    if (tensor.dtype() == ir::DType::f8_e4m3) {
      ++fp8;
      const int64_t rows = tensor.shape()[0], cols = tensor.shape()[1];
      const std::vector<float> scales = m.weights.tensors.at(name + ".scale").to_f32();
      std::vector<float> v(static_cast<size_t>(rows * cols));
      for (int64_t r = 0; r < rows; ++r)
        ir::dequantize_fp8_block_row(tensor.bytes().data() + r * cols, scales.data(), r, cols, 128, 128, v.data() + r * cols);
      values.tensors.emplace(name, ir::HostTensor::from_f32(tensor.shape(), v));
      continue;
    }
    mxfp4 += tensor.dtype() == ir::DType::mxfp4;
    values.tensors.emplace(name, tensor.dtype() == ir::DType::mxfp4 ? ir::HostTensor::from_f32(tensor.shape(), tensor.to_f32()) : tensor);
  }
  CHECK(fp8 == 30);  // wq_a, wq_b, wkv, wo_b, shared w1 w2 w3 of 4 layers, 2 indexer wq_b (wo_a dequantised: 16-row groups)
  CHECK(mxfp4 == 3 * m.layers());
  testing::expect_matches(interpret_sequence(m, values), read_npy_f32(kReleased + "logits.npy"), 1e-4, "dequantised, interpreter");
}

TEST_CASE("DeepSeek-V4 as released, multiplied compressed: sessions on every device give the interpreter's logits") {
  // The interpreter is the kernels' reference here: with MXFP4 experts the activations
  // are quantised (q8_0), which moves the logits off transformers' (rows whose expert or
  // indexer choice was a near-tie in the quantised model move most, 28 argmax of 320).
  // Two choices of this model tie within f32 rounding (layer 3: token 57's experts, query
  // 109's blocks) and may go either way with the order of a sum: those rows are exempt.
  const models::DeepSeekV4Model& m = released_model();
  const std::vector<float> want = interpret_sequence(m, m.weights);
  const size_t vocab = static_cast<size_t>(m.vocab_size());
  for (const std::string& id : testing::session_device_ids()) {
    auto device = backends::open_device(id, {.threads = 2});
    runtime::KernelCache cache{{}};
    for (int64_t batch : {37, 1}) {
      if (id != "cpu" && batch == 1) continue;  // token by token: on the CPU (OpenCL compiles are slow)
      runtime::Session session(m, *device, cache, {.context = 320, .cache_dtype = ir::DType::f32});
      const std::vector<float> got = session.evaluate(golden_tokens(), batch);
      REQUIRE(got.size() == want.size());
      double scale = 0, worst = 0;
      for (float v : want) scale = std::max(scale, std::fabs(static_cast<double>(v)));
      for (size_t r = 0; r * vocab < got.size(); ++r) {
        if (r == 57 || r == 109) continue;
        for (size_t c = 0; c < vocab; ++c) worst = std::max(worst, std::fabs(static_cast<double>(got[r * vocab + c]) - want[r * vocab + c]));
      }
      CHECK_MESSAGE(worst / scale <= 1e-4, id, " passes of ", batch, ": max|d|/max|ref| ", worst / scale);
      MESSAGE(id << ", FP8 + MXFP4 kept compressed, passes of " << batch << ": max|d|/max|ref| vs interpreter " << worst / scale);
    }
  }
}

TEST_CASE("DeepSeek-V4 with the f16 cache (the default): rounding moves few rows, and argmax only at near-ties") {
  // The f16 keys move the indexer's scores a little; where two blocks nearly tie for the
  // top-k the query keeps another, and that one row moves by more (7 of 320 rows here).
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  const std::vector<float> got = evaluate(*cpu, cache, 37, ir::DType::f16);
  const NpyF32& want = golden_logits();
  REQUIRE(got.size() == want.values.size());
  const size_t vocab = static_cast<size_t>(want.shape[1]), rows = got.size() / vocab;
  double scale = 0;
  for (float v : want.values) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  size_t moved = 0;
  for (size_t r = 0; r < rows; ++r) {
    const float* gr = got.data() + r * vocab;
    const float* wr = want.values.data() + r * vocab;
    double row_diff = 0;
    for (size_t c = 0; c < vocab; ++c) row_diff = std::max(row_diff, std::fabs(static_cast<double>(gr[c]) - wr[c]));
    moved += row_diff > 1e-2 * scale;
    const size_t ga = static_cast<size_t>(std::max_element(gr, gr + vocab) - gr);
    const size_t wa = static_cast<size_t>(std::max_element(wr, wr + vocab) - wr);
    if (ga != wa)
      CHECK_MESSAGE(static_cast<double>(wr[wa]) - wr[ga] <= 2 * row_diff, "position ", r, ": argmax ", ga, " instead of ", wa,
                    ", reference margin ", wr[wa] - wr[ga], ", row error ", row_diff);
  }
  MESSAGE("f16 cache: " << moved << " of " << rows << " rows moved by more than 1% of max|ref|");
  CHECK(moved <= rows / 32);
}

namespace {

// Tokens that diverge from the golden's at positions 240..255, then a cut back to 240
// and the golden's tokens from there: transformers' logits of positions 240..319, and
// exactly (0 difference) what a session that never saw the other tokens gives. The 16
// other tokens complete blocks of 4 and the block of 128 at 255 and overwrite 16 rows of
// every ring and pooling state: the spare rows keep what the positions after 240 read.
// Every pass is of 16 tokens (one plan).
void check_cut_back(backends::Device& device, runtime::KernelCache& cache) {
  const std::vector<int32_t> tokens = golden_tokens();
  const NpyF32& want = golden_logits();
  const auto vocab = static_cast<size_t>(want.shape[1]);
  constexpr int64_t kSlack = models::DeepSeekV4HParams::kRewindSlack, kCut = 240;
  const std::span<const int32_t> all(tokens);
  std::vector<int32_t> other(all.begin() + 10, all.begin() + 10 + kSlack);  // other tokens at 240..255
  std::reverse(other.begin(), other.end());
  auto from = [&](runtime::Session& session, int64_t start, int64_t end) {
    std::vector<float> rows;
    for (int64_t at = start; at < end; at += kSlack) {
      const std::vector<float> r = session.evaluate(all.subspan(static_cast<size_t>(at), kSlack), kSlack);
      rows.insert(rows.end(), r.begin(), r.end());
    }
    return rows;
  };
  runtime::Session cut(golden_model(), device, cache, {.context = 320, .cache_dtype = ir::DType::f32});
  from(cut, 0, kCut);
  cut.evaluate(other, kSlack);
  REQUIRE(cut.rewind(kCut) == kCut);
  const std::vector<float> got = from(cut, kCut, 320);
  runtime::Session straight(golden_model(), device, cache, {.context = 320, .cache_dtype = ir::DType::f32});
  from(straight, 0, kCut);
  CHECK(from(straight, kCut, 320) == got);
  const std::vector<float> reference(want.values.begin() + static_cast<ptrdiff_t>(kCut * vocab), want.values.end());
  testing::expect_matches(got, NpyF32{{320 - kCut, static_cast<int64_t>(vocab)}, reference}, 1e-4,
                          cat(device.properties().info.id, ", after a cut back of ", kSlack, " tokens"));
  // Passes wrote up to 320: a cut to 304 is exact, one more is not (the cache empties).
  CHECK(cut.rewind(500) == 320);  // past what it holds: nothing forgotten
  CHECK(cut.rewind(320 - kSlack) == 320 - kSlack);
  CHECK(cut.rewind(320 - kSlack - 1) == 0);
  CHECK(cut.cached_tokens() == 0);
}

}  // namespace

TEST_CASE("a DeepSeek-V4 session cuts back up to its rewind limit exactly, and empties for a longer cut") {
  CHECK(golden_model().cache_rewind_limit() == models::DeepSeekV4HParams::kRewindSlack);
  on_cpu_then_opencl([](backends::Device& device, runtime::KernelCache& cache, bool) { check_cut_back(device, cache); });
}

TEST_CASE("DeepSeek-V4 passes of several sequences hold one token of each") {
  CHECK(golden_model().batch_tokens_per_sequence() == 1);
  models::PassSpec batched;
  batched.batched = true;
  batched.cache_rows = 64 * 2;
  batched.sequences = 2;
  batched.one_sequence = false;
  batched.tokens = 3;
  CHECK_THROWS_WITH_AS(golden_model().pass_graph(batched), doctest::Contains("one new token of each"), UserError);
  batched.tokens = 2;
  CHECK_NOTHROW(golden_model().pass_graph(batched));
  batched.cache_rows = 0;
  CHECK_THROWS_WITH_AS(golden_model().pass_graph(batched), doctest::Contains("whole sequences"), UserError);
  batched.cache_rows = 64;
  batched.sequences = 1;  // the cache of one sequence: not a batched pass
  batched.tokens = 1;
  CHECK_THROWS_WITH_AS(golden_model().pass_graph(batched), doctest::Contains("two or more"), UserError);
}

namespace {

// Sessions of several sequences over V4 (each sequence a block of every cache part): a
// step of one token of each sequence is one pass, a step where one sequence prefills is a
// pass per sequence; sequences at different positions, joining and leaving at different
// steps, each must give the golden's row at its own position.
void check_sequences(backends::Device& device, runtime::KernelCache& cache, int64_t steps) {
  const std::vector<int32_t> tokens = golden_tokens();
  const NpyF32& want = golden_logits();
  const auto vocab = static_cast<size_t>(want.shape[1]);
  runtime::Session session(golden_model(), device, cache, {.context = 320, .cache_dtype = ir::DType::f32, .sequences = 3});
  std::vector<float> got, reference;  // rows in the order evaluated, and the golden's rows at the same positions
  auto step = [&](std::vector<std::pair<int64_t, int64_t>> entries) {  // (sequence, new tokens)
    std::vector<runtime::SequenceTokens> work;
    std::vector<int64_t> last;
    for (auto [sequence, n] : entries) {
      const int64_t at = session.cached_tokens(sequence);
      work.push_back({sequence, std::span<const int32_t>(tokens).subspan(static_cast<size_t>(at), static_cast<size_t>(n))});
      last.push_back(at + n - 1);
    }
    const std::vector<float> rows = session.evaluate_sequences(work);
    got.insert(got.end(), rows.begin(), rows.end());
    for (int64_t p : last)
      reference.insert(reference.end(), want.values.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(p) * vocab),
                       want.values.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(p + 1) * vocab));
  };
  // Sequence 0 decodes token by token from the start; sequence 1 joins 7 steps later
  // (not a multiple of a block or the window), sequence 2 prefills in chunks of 37 (blocks
  // of 4 and 128 completing inside them) beside the others' decode steps.
  for (int64_t i = 0; i < steps; ++i) {
    std::vector<std::pair<int64_t, int64_t>> entries{{0, 1}};
    if (i >= 7) entries.push_back({1, 1});
    if (i % 3 == 0 && session.cached_tokens(2) + 37 <= 320) entries.push_back({2, 37});
    step(entries);
  }
  testing::expect_matches(got, NpyF32{{static_cast<int64_t>(got.size() / vocab), static_cast<int64_t>(vocab)}, reference},
                          1e-4, cat(device.properties().info.id, ", 3 sequences"));
  // A sequence emptied and used again for other tokens (those from position 100 of the
  // golden's, at positions 0..): its block's old rows are never read, so it gives what a
  // session of one sequence gives for them, while sequence 0 goes on beside it.
  CHECK(session.rewind(1, 0) == 0);
  const std::span<const int32_t> other = std::span<const int32_t>(tokens).subspan(100, 40);
  runtime::Session alone(golden_model(), device, cache, {.context = 320, .cache_dtype = ir::DType::f32});
  std::vector<float> reused, single;
  for (size_t i = 0; i < other.size(); ++i) {
    const int64_t at = session.cached_tokens(0);
    const std::vector<runtime::SequenceTokens> work = {{1, other.subspan(i, 1)}, {0, std::span<const int32_t>(tokens).subspan(static_cast<size_t>(at), 1)}};
    const std::vector<float> rows = session.evaluate_sequences(work);
    reused.insert(reused.end(), rows.begin(), rows.begin() + static_cast<ptrdiff_t>(vocab));
    const std::vector<float> one = alone.evaluate(other.subspan(i, 1), 1);
    single.insert(single.end(), one.begin(), one.end());
  }
  CHECK(session.cached_tokens(1) == static_cast<int64_t>(other.size()));
  testing::expect_matches(reused, NpyF32{{static_cast<int64_t>(other.size()), static_cast<int64_t>(vocab)}, single}, 1e-6,
                          cat(device.properties().info.id, ", a sequence used again against a session of one"));
}

}  // namespace

TEST_CASE("DeepSeek-V4 sessions of several sequences: decode steps batched, each sequence at its own position, give transformers' logits") {
  on_cpu_then_opencl([](backends::Device& device, runtime::KernelCache& cache, bool cpu) {
    check_sequences(device, cache, cpu ? 140 : 20);
  });
}
