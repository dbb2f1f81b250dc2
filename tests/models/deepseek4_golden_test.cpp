// DeepSeek-V4's forward over a whole sequence (frontend/models/deepseek4.h) against the
// tiny golden made with transformers' own DeepseekV4ForCausalLM (tools/make_v4_golden.py):
// 320 tokens, so both 128-token blocks of the HCA layer close, the CSA layers' indexer
// keeps 8 of up to 80 blocks, the 16-token window slides, the first layer is hash-routed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "backends/registry.h"
#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "frontend/hf_config_v4.h"
#include "frontend/models/deepseek4.h"
#include "ir/interpreter.h"
#include "jit/lower.h"
#include "runtime/device_target.h"
#include "runtime/executor.h"
#include "runtime/kernel_cache.h"
#include "support/npy.h"
#include "tests/models/logits_match.h"
#include "tests/runtime/demo_session.h"
#include "tests/user_error_of.h"

using namespace moat;

namespace {

const std::string kDir = MOAT_SOURCE_DIR "/tests/data/goldens/v4/";

struct Golden {
  models::DeepSeekV4HParams h;
  models::DeepSeekV4Weights w;
  std::vector<int64_t> tokens;
  ir::Graph graph;
  ir::Bindings bindings;
};

const NpyF32& logits() {
  static const NpyF32 want = read_npy_f32(kDir + "logits.npy");
  return want;
}

const Golden& golden() {
  static const Golden g = [] {
    Golden out;
    out.h = models::hparams_from_hf_v4(hf::load_deepseek_v4_config(kDir));
    out.w = models::load_deepseek4_hf_weights(kDir, out.h);
    std::ifstream in(kDir + "tokens.json");
    out.tokens = nlohmann::json::parse(in).get<std::vector<int64_t>>();
    const auto t = static_cast<int64_t>(out.tokens.size());
    out.graph = models::deepseek4_sequence_graph(out.h, out.w, t);
    out.bindings.tensors.emplace("tokens", ir::HostTensor::from_i64({t}, out.tokens, ir::DType::i32));
    for (const auto& [name, tensor] : out.w.tensors) out.bindings.tensors.emplace(name, tensor);
    return out;
  }();
  return g;
}

}  // namespace

TEST_CASE("DeepSeek-V4 golden: one pass over 320 tokens gives transformers' logits (interpreter)") {
  testing::expect_matches(ir::interpret(golden().graph, golden().bindings).at(0).to_f32(), logits(), 1e-4, "interpreter");
}

TEST_CASE("DeepSeek-V4 golden: shorter sequences are the first rows (no block yet, one block, fewer blocks than top-k)") {
  // The model is causal: the logits of the first T tokens are the first T rows of the
  // full sequence's. T 1 and 3: no pooled row at all; 4: CSA's first block (its
  // overlap slots empty); 17: the window (16) full and sliding, 4 blocks (< top-k 8);
  // 130: one HCA block and 32 CSA blocks (the indexer chooses).
  const Golden& gold = golden();
  const NpyF32& all = logits();
  const auto vocab = static_cast<size_t>(all.shape[1]);
  for (int64_t t : {1, 3, 4, 17, 130}) {
    INFO("T = ", t);
    const std::vector<int64_t> prefix(gold.tokens.begin(), gold.tokens.begin() + t);
    ir::Bindings bindings;
    bindings.tensors.emplace("tokens", ir::HostTensor::from_i64({t}, prefix, ir::DType::i32));
    for (const auto& [name, tensor] : gold.w.tensors) bindings.tensors.emplace(name, tensor);
    NpyF32 want{{t, all.shape[1]}, std::vector<float>(all.values.begin(), all.values.begin() + static_cast<long>(t * vocab))};
    testing::expect_matches(ir::interpret(models::deepseek4_sequence_graph(gold.h, gold.w, t), bindings).at(0).to_f32(), want, 1e-4,
                            "first " + std::to_string(t) + " tokens");
  }
}

TEST_CASE("DeepSeek-V4 golden: the deepseek4 GGUF (llama.cpp's names and keys) gives the folder's logits") {
  const std::string path = kDir + "model-f32.gguf";
  const gguf::File file = gguf::File::open(path);
  const models::DeepSeekV4HParams h = models::hparams_from_gguf_v4(file);
  CHECK(h.compress_ratio == golden().h.compress_ratio);
  CHECK(h.n_hash_layers == golden().h.n_hash_layers);
  CHECK(h.rope_factor == golden().h.rope_factor);
  CHECK(h.yarn_orig_ctx == golden().h.yarn_orig_ctx);
  const models::DeepSeekV4Weights w = models::load_deepseek4_gguf_weights(path, h);
  CHECK(w.tensors.size() == golden().w.tensors.size());
  const auto t = static_cast<int64_t>(golden().tokens.size());
  ir::Bindings bindings;
  bindings.tensors.emplace("tokens", ir::HostTensor::from_i64({t}, golden().tokens, ir::DType::i32));
  for (const auto& [name, tensor] : w.tensors) bindings.tensors.emplace(name, tensor);
  testing::expect_matches(ir::interpret(models::deepseek4_sequence_graph(h, w, t), bindings).at(0).to_f32(), logits(), 1e-4,
                          "model-f32.gguf, interpreter");
}

TEST_CASE("DeepSeek-V4 GGUF: the tensors llama.cpp's deepseek4 graph leaves unused load unused, with a note, and others are refused") {
  // test-llama-archs writes llama.cpp's optional companions beside the weights: NVFP4
  // second scales (".scale", ".input_scale", random, not 1) and the image-token routing bias.
  const gguf::File file = gguf::File::open(kDir + "model-f32.gguf");
  const models::DeepSeekV4HParams h = models::hparams_from_gguf_v4(file);
  gguf::Writer out;
  for (const gguf::KeyValue& kv : file.metadata()) out.set(kv.key, kv.value);
  for (const gguf::TensorInfo& t : file.tensors()) out.add_tensor(t.name, t.type, t.dims, t.data);
  const std::vector<float> scales(static_cast<size_t>(h.n_expert), 0.5f), ones{1.0f};
  auto bytes_of = [](const std::vector<float>& v) { return std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4); };
  out.add_tensor("blk.1.ffn_up_exps.scale", gguf::GgmlType::F32, {scales.size()}, bytes_of(scales));
  out.add_tensor("blk.1.ffn_up_exps.input_scale", gguf::GgmlType::F32, {scales.size()}, bytes_of(scales));
  out.add_tensor("blk.2.ffn_up_shexp.scale", gguf::GgmlType::F32, {1}, bytes_of(ones));
  out.add_tensor("blk.3.exp_probs_b_vl.bias", gguf::GgmlType::F32, {scales.size()}, bytes_of(scales));
  const std::string path =
      (std::filesystem::temp_directory_path() / ("moat_v4_companions_" + std::to_string(::getpid()) + ".gguf")).string();
  out.write(path);
  const models::DeepSeekV4Weights w = models::load_deepseek4_gguf_weights(path, h);
  CHECK(w.tensors.size() == golden().w.tensors.size());
  REQUIRE(w.notes.size() == 4);
  CHECK(w.notes[0].find("1 tensor (blk.1.ffn_up_exps.input_scale) left unused: activation scales") == 0);
  CHECK(w.notes[1].find("1 tensor (blk.3.exp_probs_b_vl.bias) left unused: the routing bias for image tokens") == 0);
  CHECK(w.notes[2].find("1 tensor (blk.2.ffn_up_shexp.scale) left unused: weight scales of 1") == 0);
  CHECK(w.notes[3].find("1 tensor (blk.1.ffn_up_exps.scale) left unused: weight scales other than 1") == 0);

  gguf::Writer no_weight = out;  // a scale beside no weight
  no_weight.add_tensor("blk.1.attn_nonexistent.scale", gguf::GgmlType::F32, {1}, bytes_of(ones));
  no_weight.write(path);
  CHECK(testing::user_error_of([&] { models::load_deepseek4_gguf_weights(path, h); })
            .find("tensor blk.1.attn_nonexistent.scale is not one of DeepSeek-V4's") != std::string::npos);
  out.add_tensor("blk.1.ffn_up_exps.bias", gguf::GgmlType::F32, {scales.size()}, bytes_of(scales));  // no such tensor
  out.write(path);
  CHECK(testing::user_error_of([&] { models::load_deepseek4_gguf_weights(path, h); })
            .find("tensor blk.1.ffn_up_exps.bias is not one of DeepSeek-V4's") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("DeepSeek-V4 golden: each query's indexer keeps the blocks transformers' indexer picks") {
  const Golden& gold = golden();
  ir::Graph g = models::deepseek4_sequence_graph(gold.h, gold.w, static_cast<int64_t>(gold.tokens.size()), true);
  const std::vector<ir::HostTensor> out = ir::interpret(g, gold.bindings);
  const NpyF32 picks = read_npy_f32(kDir + "indexer_topk.npy");  // [CSA layers, T, top-k], -1 padded
  REQUIRE(out.size() == 1 + static_cast<size_t>(picks.shape[0]));
  const int64_t t = picks.shape[1], k = picks.shape[2];
  int64_t queries_with_a_choice = 0;
  for (int64_t layer = 0; layer < picks.shape[0]; ++layer) {
    const std::vector<int64_t> keep = out[static_cast<size_t>(1 + layer)].to_i64();  // [T, blocks]
    const int64_t blocks = out[static_cast<size_t>(1 + layer)].shape()[1];
    for (int64_t q = 0; q < t; ++q) {
      std::vector<int64_t> want, got;
      for (int64_t j = 0; j < k; ++j)
        if (const auto b = static_cast<int64_t>(picks.values[static_cast<size_t>((layer * t + q) * k + j)]); b >= 0) want.push_back(b);
      for (int64_t b = 0; b < blocks; ++b)
        if (keep[static_cast<size_t>(q * blocks + b)]) got.push_back(b);
      std::sort(want.begin(), want.end());
      INFO("CSA layer ", layer, " query ", q);
      CHECK(got == want);
      queries_with_a_choice += static_cast<int64_t>(want.size()) == k && (q + 1) / 4 > k;
    }
  }
  CHECK(queries_with_a_choice > 400);  // most queries choose 8 of more blocks than that
}

TEST_CASE("DeepSeek-V4 golden: one pass over 320 tokens gives transformers' logits on every device") {
  for (const std::string& id : testing::session_device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::KernelCache cache{{}};
    runtime::Executor executor(*device, cache, jit::lower(golden().graph, {}, runtime::schedule_for(device->properties())));
    testing::expect_matches(executor.run(golden().bindings).at(0).to_f32(), logits(), 1e-4, id);
  }
}
