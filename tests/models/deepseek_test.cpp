// The DeepSeek graph on tiny random models (tests/models/tiny_deepseek.h): loading,
// the latent cache's size, the lowered graph against the interpreter, prefill (expanded
// attention) against token-by-token decode (absorbed attention over the cache), the
// legacy kv_b layout against the split one, CPU against OpenCL, and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <unistd.h>

#include "backends/device.h"
#include "frontend/gguf_writer.h"
#include "frontend/models/deepseek.h"
#include "ir/interpreter.h"
#include "ir/quant.h"
#include "runtime/kernel_cache.h"
#include "runtime/session.h"
#include "support/error.h"
#include "tests/models/tiny_deepseek.h"

using namespace moat;

namespace {

std::string tiny_path(const char* name, const testing::TinyDeepSeek& o) {
  const std::string path = (std::filesystem::temp_directory_path() / (std::string("moat-") + name + "-" +
                                                                       std::to_string(::getpid()) + ".gguf")).string();
  testing::write_tiny_deepseek(path, o);
  return path;
}

const std::vector<int32_t> kTokens = {1, 5, 9, 3, 3, 17, 30, 2, 11, 39, 0, 8};  // past the YaRN original context (8)

// max |a - b| / max |b|
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

std::vector<float> run(const models::DeepSeekModel& m, backends::Device& device, int64_t batch) {
  runtime::KernelCache cache{{}};
  runtime::Session s(m, device, cache, {.cache_dtype = ir::DType::f32});  // parity: no cache rounding
  return s.evaluate(kTokens, batch);
}

// The logits of kTokens in one pass of `form`, by the reference interpreter.
std::vector<float> interpreted(const models::DeepSeekModel& m, models::AttentionForm form) {
  const int64_t T = static_cast<int64_t>(kTokens.size());
  ir::Graph g = models::build_deepseek_graph(m, T, {}, form);
  ir::Bindings b;
  b.tensors = m.weights;
  std::vector<int64_t> ids(kTokens.begin(), kTokens.end()), pos(kTokens.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int64_t>(i);
  b.tensors["tokens"] = ir::HostTensor::from_i64({T}, ids, ir::DType::i32);
  b.tensors["positions"] = ir::HostTensor::from_i64({T}, pos, ir::DType::i32);
  return ir::interpret(g, b)[0].to_f32();
}

}  // namespace

TEST_CASE("a deepseek2 GGUF loads with its hyperparameters, the latent cache holds (kv_lora + rope) per token and layer") {
  const std::string path = tiny_path("load", {});
  const models::DeepSeekModel m = models::load_deepseek(path);
  CHECK(m.hparams.n_layer == 2);
  CHECK(m.hparams.q_lora_rank == 16);
  CHECK(m.hparams.qk_nope == 8);
  CHECK(m.hparams.v_head == 8);
  CHECK(m.hparams.method == "noaux_tc");  // inferred from the bias tensor
  CHECK(m.hparams.scoring == "sigmoid");
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  runtime::Session s(m, *cpu, cache);
  CHECK(s.cache_bytes_per_token() == static_cast<uint64_t>((16 + 4) * 2 * 2));  // f16 rows by default
  s.evaluate(std::vector<int32_t>{1, 2, 3}, 8);
  CHECK(s.cached_tokens() == 3);
  std::filesystem::remove(path);
}

TEST_CASE("the lowered model matches the interpreter on the same graph") {
  const std::string path = tiny_path("interp", {});
  const models::DeepSeekModel m = models::load_deepseek(path);
  ir::Graph g = models::build_deepseek_graph(m, static_cast<int64_t>(kTokens.size()), {}, models::AttentionForm::expanded);
  ir::Bindings b;
  b.tensors = m.weights;
  std::vector<int64_t> ids(kTokens.begin(), kTokens.end()), pos(kTokens.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int64_t>(i);
  const int64_t T = static_cast<int64_t>(kTokens.size());
  b.tensors["tokens"] = ir::HostTensor::from_i64({T}, ids, ir::DType::i32);
  b.tensors["positions"] = ir::HostTensor::from_i64({T}, pos, ir::DType::i32);
  const std::vector<float> want = ir::interpret(g, b)[0].to_f32();
  auto cpu = backends::open_cpu_device({.threads = 2});
  CHECK(relative_error(run(m, *cpu, 64), want) <= 1e-5);
  std::filesystem::remove(path);
}

TEST_CASE("quantised and half-precision GGUF weights (F16, BF16, Q8_0, Q4_0, Q5_0, Q3_K, Q4_K, Q6_K) load and run") {
  for (gguf::GgmlType type : {gguf::GgmlType::F16, gguf::GgmlType::BF16, gguf::GgmlType::Q8_0, gguf::GgmlType::Q4_0,
                              gguf::GgmlType::Q5_0, gguf::GgmlType::Q3_K, gguf::GgmlType::Q4_K, gguf::GgmlType::Q6_K}) {
    testing::TinyDeepSeek o;
    o.matrix_type = type;
    o.embd = 256;
    const std::string path = tiny_path("quant", o);
    const models::DeepSeekModel m = models::load_deepseek(path);
    CHECK(m.weight("blk.0.attn_kv_a_mqa.weight").dtype() == *gguf::to_ir_dtype(type));
    const std::vector<float> want = interpreted(m, models::AttentionForm::expanded);
    auto cpu = backends::open_cpu_device({.threads = 2});
    // Q8_0 / Q4_0 / Q5_0 weights quantise the activations (ir/quant.h): an f32 rounding
    // difference before a quantisation (another summation order than the interpreter's)
    // can move one value by a quantisation step (1/127 of its block's largest), so whole
    // models agree to about 1e-3, not 1e-4 (the kernels themselves are exact on equal
    // inputs: the conformance suite). Token by token also runs the absorbed attention,
    // which quantises other activations than the expanded form of `want`.
    const double tolerance = ir::quantises_activations(*gguf::to_ir_dtype(type)) ? 1e-2 : 1e-4;
    CHECK_MESSAGE(relative_error(run(m, *cpu, 64), want) <= tolerance, gguf::ggml_type_name(type));
    CHECK_MESSAGE(relative_error(run(m, *cpu, 1), want) <= tolerance, gguf::ggml_type_name(type));
    std::filesystem::remove(path);
  }
}

TEST_CASE("a block-quantised attn_k_b: the first pass takes the absorbed form and matches the interpreter") {
  testing::TinyDeepSeek o;
  o.matrix_type = gguf::GgmlType::Q8_0;
  o.embd = 64;
  o.nope = 32;
  const std::string path = tiny_path("quant_kb", o);
  const models::DeepSeekModel m = models::load_deepseek(path);
  REQUIRE(m.weight("blk.0.attn_k_b.weight").dtype() == ir::DType::q8_0);
  CHECK(models::first_pass_form(m) == models::AttentionForm::absorbed);
  const std::vector<float> want = interpreted(m, models::AttentionForm::absorbed);
  auto cpu = backends::open_cpu_device({.threads = 2});
  // quantised activations (see the test above): 1e-2, not 1e-4
  CHECK(relative_error(run(m, *cpu, 64), want) <= 1e-2);
  CHECK(relative_error(run(m, *cpu, 1), want) <= 1e-2);
  std::filesystem::remove(path);
}

TEST_CASE("prefill (expanded attention) and token-by-token decode (absorbed, over the cache) agree") {
  for (bool v3 : {true, false}) {
    testing::TinyDeepSeek o;
    o.q_lora = v3;
    o.sigmoid_bias = v3;
    const std::string path = tiny_path("forms", o);
    const models::DeepSeekModel m = models::load_deepseek(path);
    auto cpu = backends::open_cpu_device({.threads = 2});
    const std::vector<float> prefill = run(m, *cpu, 64);
    CHECK(relative_error(run(m, *cpu, 1), prefill) <= 1e-5);
    CHECK(relative_error(run(m, *cpu, 5), prefill) <= 1e-5);  // chunks: absorbed form with T > 1
    std::filesystem::remove(path);
  }
}

TEST_CASE("the legacy unsplit attn_kv_b layout gives the same logits as the split one") {
  testing::TinyDeepSeek split, legacy;
  legacy.legacy_kv_b = true;
  const std::string a = tiny_path("split", split), b = tiny_path("legacy", legacy);
  const models::DeepSeekModel ma = models::load_deepseek(a), mb = models::load_deepseek(b);
  CHECK(mb.has("blk.0.attn_k_b.weight"));
  CHECK(!mb.has("blk.0.attn_kv_b.weight"));
  // the same seed draws the same numbers, but kv_b is one tensor here: compare forms within each
  auto cpu = backends::open_cpu_device({.threads = 2});
  CHECK(relative_error(run(mb, *cpu, 1), run(mb, *cpu, 64)) <= 1e-5);
  std::filesystem::remove(a);
  std::filesystem::remove(b);
}

TEST_CASE("the same model on OpenCL gives the CPU's logits") {
  std::unique_ptr<backends::Device> ocl;
  try {
    ocl = backends::open_device("opencl:0");
  } catch (const UserError& e) {
    MESSAGE("skipped: " << e.what());
    return;
  }
  const std::string path = tiny_path("ocl", {});
  const models::DeepSeekModel m = models::load_deepseek(path);
  auto cpu = backends::open_cpu_device({.threads = 2});
  const std::vector<float> want = run(m, *cpu, 64);
  CHECK(relative_error(run(m, *ocl, 64), want) <= 1e-4);
  CHECK(relative_error(run(m, *ocl, 1), want) <= 1e-4);
  std::filesystem::remove(path);
}

// kTokens decoded one at a time by the reference interpreter over a cache of `dtype`
// rows, each pass's updated cache fed to the next: the cache's rounding as the IR defines it.
std::vector<float> interpreted_decode(const models::DeepSeekModel& m, ir::DType dtype) {
  const int64_t T = static_cast<int64_t>(kTokens.size()), W = m.hparams.latent_width();
  // as a session does it: the first pass (an empty cache) in the model's first-pass form
  const ir::Graph first = models::build_deepseek_graph(m, 1, {T, dtype}, models::first_pass_form(m));
  const ir::Graph later = models::build_deepseek_graph(m, 1, {T, dtype}, models::AttentionForm::absorbed);
  ir::Bindings b;
  b.tensors = m.weights;
  for (int64_t l = 0; l < m.hparams.n_layer; ++l)
    b.tensors[models::cache_input_name(l)] =
        ir::HostTensor::from_bytes(dtype, {T, W}, std::vector<uint8_t>(static_cast<size_t>(ir::tensor_bytes(dtype, {T, W}))));
  std::vector<float> logits;
  for (int64_t i = 0; i < T; ++i) {
    b.tensors["tokens"] = ir::HostTensor::from_i64({1}, std::vector<int64_t>{kTokens[static_cast<size_t>(i)]}, ir::DType::i32);
    b.tensors["positions"] = ir::HostTensor::from_i64({1}, std::vector<int64_t>{i}, ir::DType::i32);
    std::vector<ir::HostTensor> out = ir::interpret(i == 0 ? first : later, b);
    const std::vector<float> row = out[0].to_f32();
    logits.insert(logits.end(), row.begin(), row.end());
    for (int64_t l = 0; l < m.hparams.n_layer; ++l) b.tensors[models::cache_input_name(l)] = std::move(out[static_cast<size_t>(1 + l)]);
  }
  return logits;
}

TEST_CASE("a q8_0 cache: token-by-token logits equal the interpreter's over the same q8_0 cache, on cpu and OpenCL") {
  testing::TinyDeepSeek o;
  o.kv_lora = 32;  // latent 32 + rope 32: the values and the rope key are whole blocks
  o.rope = 32;
  const std::string path = tiny_path("q8cache", o);
  const models::DeepSeekModel m = models::load_deepseek(path);
  const std::vector<float> want = interpreted_decode(m, ir::DType::q8_0);
  const std::vector<float> f32_cache = interpreted_decode(m, ir::DType::f32);
  CHECK(relative_error(want, f32_cache) > 1e-3);  // the rounding is visible ...
  std::vector<std::unique_ptr<backends::Device>> devices;
  devices.push_back(backends::open_cpu_device({.threads = 2}));
  try {
    devices.push_back(backends::open_device("opencl:0"));
  } catch (const UserError& e) {
    MESSAGE("opencl:0 skipped: " << e.what());
  }
  for (auto& device : devices) {
    INFO(device->properties().info.id);
    runtime::KernelCache cache{{}};
    runtime::Session s(m, *device, cache, {.cache_dtype = ir::DType::q8_0});
    CHECK(relative_error(s.evaluate(kTokens, 1), want) <= 1e-4);  // ... and the kernels round as the IR does
  }
  std::filesystem::remove(path);
}

TEST_CASE("a prompt past the context and an unknown token are clear errors before any work") {
  const std::string path = tiny_path("errors", {});
  const models::DeepSeekModel m = models::load_deepseek(path);
  auto cpu = backends::open_cpu_device({.threads = 2});
  runtime::KernelCache cache{{}};
  runtime::Session s(m, *cpu, cache, 4);
  CHECK_THROWS_WITH_AS(s.evaluate(std::vector<int32_t>{1, 2, 3, 4, 5}, 8), doctest::Contains("pass the context of 4"), UserError);
  CHECK_THROWS_WITH_AS(s.evaluate(std::vector<int32_t>{40}, 8), doctest::Contains("outside the vocabulary of 40"), UserError);
  CHECK(s.cached_tokens() == 0);
  CHECK_THROWS_WITH_AS(models::load_deepseek("/nonexistent/model.gguf"), doctest::Contains("/nonexistent/model.gguf"), UserError);
  std::filesystem::remove(path);
}

TEST_CASE("deepseek2 keys llama.cpp honours that moatless cannot run are named in the error") {
  auto error_of = [](const char* name, std::function<void(gguf::Writer&, const std::string&)> keys) {
    testing::TinyDeepSeek o;
    o.more_keys = std::move(keys);
    const std::string path = tiny_path(name, o);
    std::string message;
    try {
      (void)models::load_deepseek(path);
    } catch (const UserError& e) {
      message = e.what();
    }
    std::filesystem::remove(path);
    return message;
  };
  CHECK(error_of("longrope", [](gguf::Writer& w, const std::string& a) {
          w.set_string(a + "rope.scaling.type", "longrope");
        }).find("rope scaling 'longrope' is not supported") != std::string::npos);
  CHECK(error_of("heads", [](gguf::Writer& w, const std::string& a) {
          w.set_i32_array(a + "attention.head_count", {2, 4});
        }).find("attention.head_count differs from layer to layer (2, 4") != std::string::npos);
  CHECK(error_of("temperature", [](gguf::Writer& w, const std::string& a) {
          w.set_f32(a + "attention.temperature_scale", 0.5f);
        }).find("temperature_length is 0") != std::string::npos);
  // A per-layer array whose values agree is that value.
  CHECK(error_of("uniform", [](gguf::Writer& w, const std::string& a) {
          w.set_i32_array(a + "attention.head_count", {2, 2});
        }).empty());
}

TEST_CASE("llama.cpp's optional keys and tensors as its test files write them: no expert groups (0), no routing scale (0), weight scales") {
  // expert_group_count 0 and expert_weights_scale 0 mean "none" to llama.cpp (test-llama-archs writes them so).
  testing::TinyDeepSeek o;
  o.more_keys = [](gguf::Writer& w, const std::string& a) {
    w.set_u32(a + "expert_group_count", 0);
    w.set_u32(a + "expert_group_used_count", 0);
    w.set_f32(a + "expert_weights_scale", 0.0f);
  };
  const std::string zeros = tiny_path("zeros", o);
  const models::DeepSeekModel z = models::load_deepseek(zeros);
  CHECK(z.hparams.n_group == 1);
  CHECK(z.hparams.n_group_used == 1);
  CHECK(z.hparams.routed_scale == 1.0);
  std::filesystem::remove(zeros);

  // "X.scale" beside "X.weight": folded into the weights llama.cpp's graph of the file's
  // architecture multiplies by it (deepseek2: attn_output and the MTP layer's; deepseek32:
  // also every FFN weight), left unused elsewhere; "X.input_scale" llama.cpp never applies.
  static const std::vector<float> four = {2.0f, 0.5f, 1.0f, -1.0f}, three = {3.0f}, five = {5.0f};
  auto bytes = [](const std::vector<float>& v) { return std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4); };
  // `source` copied with `more` tensors added and `retyped` (name, type, data) replacing one.
  auto copy_with = [](const std::string& source, const std::string& out, const std::function<void(gguf::Writer&)>& more,
                      const std::string& retyped = "", gguf::GgmlType type = gguf::GgmlType::F32,
                      std::span<const uint8_t> data = {}) {
    const gguf::File file = gguf::File::open(source);
    gguf::Writer w;
    for (const gguf::KeyValue& kv : file.metadata()) w.set(kv.key, kv.value);
    for (const gguf::TensorInfo& t : file.tensors())
      if (t.name == retyped) w.add_tensor(t.name, type, t.dims, data);
      else w.add_tensor(t.name, t.type, t.dims, t.data);
    more(w);
    w.write(out);
  };
  const std::string path = tiny_path("scales", testing::TinyDeepSeek{}), scaled = path + ".scaled.gguf";
  copy_with(path, scaled, [&](gguf::Writer& w) {
    w.add_tensor("blk.1.ffn_up_exps.scale", gguf::GgmlType::F32, {4}, bytes(four));
    w.add_tensor("blk.0.attn_output.scale", gguf::GgmlType::F32, {1}, bytes(three));
    w.add_tensor("blk.0.ffn_down.input_scale", gguf::GgmlType::F32, {1}, bytes(five));
  });
  const models::DeepSeekModel m0 = models::load_deepseek(path), m1 = models::load_deepseek(scaled);
  CHECK(m1.weights.size() == m0.weights.size());
  const std::vector<float> o0 = m0.weight("blk.0.attn_output.weight").to_f32(), o1 = m1.weight("blk.0.attn_output.weight").to_f32();
  for (size_t i = 0; i < o0.size(); ++i) REQUIRE(o1[i] == o0[i] * 3.0f);
  CHECK(m1.weight("blk.1.ffn_up_exps.weight").to_f32() == m0.weight("blk.1.ffn_up_exps.weight").to_f32());
  CHECK(m1.weight("blk.0.ffn_down.weight").to_f32() == m0.weight("blk.0.ffn_down.weight").to_f32());
  REQUIRE(m1.notes.size() >= 3);
  CHECK(m1.notes[0].find("1 tensor (blk.0.attn_output.scale) folded into their weights") == 0);
  CHECK(m1.notes[1].find("1 tensor (blk.1.ffn_up_exps.scale) left unused: weight scales other than 1 that llama.cpp's deepseek2") == 0);
  CHECK(m1.notes[2].find("1 tensor (blk.0.ffn_down.input_scale) left unused: activation scales") == 0);
  std::filesystem::remove(path);
  std::filesystem::remove(scaled);

  // deepseek32 (the V3.2 golden, 16 experts): the routed experts' scales are folded, one per expert.
  const std::string v32 = MOAT_SOURCE_DIR "/tests/data/goldens/v32/model-f32.gguf";
  const std::string v32_scaled = (std::filesystem::temp_directory_path() / ("moat-v32-scales-" + std::to_string(::getpid()) + ".gguf")).string();
  std::vector<float> per_expert(16);
  for (size_t e = 0; e < per_expert.size(); ++e) per_expert[e] = 0.25f * static_cast<float>(e) - 1.0f;
  copy_with(v32, v32_scaled, [&](gguf::Writer& w) {
    w.add_tensor("blk.1.ffn_up_exps.scale", gguf::GgmlType::F32, {16}, bytes(per_expert));
  });
  const models::DeepSeekModel v0 = models::load_deepseek(v32), v1 = models::load_deepseek(v32_scaled);
  const std::vector<float> up0 = v0.weight("blk.1.ffn_up_exps.weight").to_f32(), up1 = v1.weight("blk.1.ffn_up_exps.weight").to_f32();
  REQUIRE(up1.size() == up0.size());
  const size_t per = up0.size() / 16;
  for (size_t i = 0; i < up0.size(); ++i) REQUIRE(up1[i] == up0[i] * per_expert[i / per]);
  // ... and refused beside a quantised weight (q8_0 blocks of zeros: 16 x 32 rows of one block)
  const std::vector<uint8_t> q8(16 * 32 * 34, 0);
  copy_with(
      v32, v32_scaled, [&](gguf::Writer& w) { w.add_tensor("blk.1.ffn_up_exps.scale", gguf::GgmlType::F32, {16}, bytes(per_expert)); },
      "blk.1.ffn_up_exps.weight", gguf::GgmlType::Q8_0, q8);
  std::string message;
  try {
    (void)models::load_deepseek(v32_scaled);
  } catch (const UserError& e) {
    message = e.what();
  }
  CHECK_MESSAGE(message.find("blk.1.ffn_up_exps.scale scales the q8_0 weight blk.1.ffn_up_exps.weight") != std::string::npos, message);
  std::filesystem::remove(v32_scaled);
}
