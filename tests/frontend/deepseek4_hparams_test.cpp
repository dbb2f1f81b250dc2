// DeepSeek-V4's hyperparameters from a config.json (DeepSeek's released form and
// transformers 5's) and from llama.cpp's deepseek4 GGUF keys, and the cache layout the
// model interface gives them: the V4-Flash numbers the issue asks to report.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "frontend/gguf_writer.h"
#include "frontend/hf_config.h"
#include "frontend/hf_config_v4.h"
#include "frontend/models/deepseek.h"
#include "frontend/models/deepseek4_hparams.h"
#include "runtime/context.h"
#include "support/error.h"
#include "support/npy.h"
#include "tests/cli/cli_runner.h"

using namespace moat;
using moat::models::DeepSeekV4HParams;

namespace {

const std::string kData = MOAT_SOURCE_DIR "/tests/data";

nlohmann::json flash_json() { return hf::read_json_file(kData + "/hf_v4_flash_config.json"); }

DeepSeekV4HParams from_json(const nlohmann::json& config) {
  return models::hparams_from_hf_v4(hf::parse_deepseek_v4_config(config.dump(), "v4.json"));
}

std::string error_of(const nlohmann::json& config) {
  try {
    from_json(config);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// llama.cpp's deepseek4 keys for `h` (what its converter writes), and a token_embd.
gguf::Writer v4_gguf(const DeepSeekV4HParams& h) {
  gguf::Writer w;
  w.set_string("general.architecture", "deepseek4");
  auto u32 = [&](const char* key, int64_t v) { w.set_u32(std::string("deepseek4.") + key, static_cast<uint32_t>(v)); };
  auto f32 = [&](const char* key, double v) { w.set_f32(std::string("deepseek4.") + key, static_cast<float>(v)); };
  u32("block_count", h.n_layer + h.n_mtp);
  u32("nextn_predict_layers", h.n_mtp);
  u32("context_length", h.n_ctx_train);
  u32("embedding_length", h.n_embd);
  u32("attention.head_count", h.n_head);
  u32("attention.head_count_kv", 1);
  u32("attention.key_length", h.head_dim);
  u32("attention.value_length", h.head_dim);
  u32("rope.dimension_count", h.rope_dim);
  u32("attention.q_lora_rank", h.q_lora_rank);
  u32("attention.output_group_count", h.o_groups);
  u32("attention.output_lora_rank", h.o_lora_rank);
  u32("attention.sliding_window", h.window);
  std::vector<int32_t> ratios(h.compress_ratio.begin(), h.compress_ratio.end());
  w.set_i32_array("deepseek4.attention.compress_ratios", ratios);
  u32("attention.indexer.head_count", h.index_heads);
  u32("attention.indexer.key_length", h.index_head);
  u32("attention.indexer.top_k", h.index_topk);
  f32("rope.freq_base", h.rope_theta);
  f32("attention.compress_rope_freq_base", h.compress_rope_theta);
  w.set_string("deepseek4.rope.scaling.type", "yarn");
  f32("rope.scaling.factor", h.rope_factor);
  u32("rope.scaling.original_context_length", h.yarn_orig_ctx);
  u32("hyper_connection.count", h.hc_mult);
  u32("hyper_connection.sinkhorn_iterations", h.hc_sinkhorn_iters);
  f32("hyper_connection.epsilon", h.hc_eps);
  u32("expert_count", h.n_expert);
  u32("expert_used_count", h.n_expert_used);
  u32("expert_shared_count", h.n_expert_shared);
  u32("expert_feed_forward_length", h.n_ff_expert);
  u32("hash_layer_count", h.n_hash_layers);
  u32("expert_gating_func", 4);
  w.set_bool("deepseek4.expert_weights_norm", h.norm_topk);
  f32("expert_weights_scale", h.routed_scale);
  w.set_f32_array("deepseek4.swiglu_clamp_exp", std::vector<float>(h.n_layer + h.n_mtp, static_cast<float>(h.swiglu_limit)));
  f32("attention.layer_norm_rms_epsilon", h.rms_eps);
  static const std::vector<uint8_t> no_data;  // the shape is what the reader takes
  w.add_tensor("token_embd.weight", gguf::GgmlType::F32, {static_cast<uint64_t>(h.n_embd), static_cast<uint64_t>(h.n_vocab)},
               std::vector<uint8_t>(static_cast<size_t>(4 * h.n_embd * h.n_vocab)));
  return w;
}

}  // namespace

TEST_CASE("DeepSeek-V4-Flash's config.json: its shape, layer schedule and cache") {
  const DeepSeekV4HParams h = from_json(flash_json());
  CHECK(h.n_layer == 43);
  CHECK(h.n_mtp == 1);
  CHECK(h.compress_ratio.size() == 44);  // the MTP layer's last
  CHECK(h.layers_with_ratio(0) == 2);
  CHECK(h.layers_with_ratio(4) == 21);
  CHECK(h.layers_with_ratio(128) == 20);
  CHECK(h.head_dim == 512);
  CHECK(h.rope_dim == 64);
  CHECK(h.o_groups == 8);
  CHECK(h.hc_mult == 4);
  CHECK(h.hc_sinkhorn_iters == 20);
  CHECK(h.n_hash_layers == 3);
  CHECK(h.scoring == "sqrtsoftplus");
  CHECK(h.swiglu_limit == 10.0);
  CHECK(h.rope_factor == 16.0);
  CHECK(h.yarn_orig_ctx == 65536);
  CHECK(h.compress_rope_theta == 160000.0);

  const auto layout = models::deepseek4_cache_layout(h, 0, h.n_layer);
  // window on every layer; compressed + state on 41; index + index_state on 21
  CHECK(layout.size() == 43 + 2 * 41 + 2 * 21);
  CHECK(layout[0].input == "window.0");
  CHECK(layout[0].rows(1 << 20) == 128 + 16);  // the window and the spare rows of a cut back (kRewindSlack)
  // Per token, f16: 21 layers x (512 + 128) / 4 rows and 20 layers x 512 / 128 rows.
  CHECK(models::cache_bytes_per_token(layout, ir::DType::f16) == 21 * (512 + 128) * 2 / 4.0 + 20 * 512 * 2 / 128.0);
  CHECK(models::cache_bytes_per_token(layout, ir::DType::f16) == 6880.0);
  // Fixed: 43 windows of 128 x 512 f16, 21 x (8 x 2048 + 8 x 512) f32, 20 x 128 x 1024 f32,
  // 16 spare rows in each of those, and a spare compressed row (41 x 512 f16) and index
  // row (21 x 128 f16).
  const uint64_t fixed = 43ull * (128 + 16) * 512 * 2 + 21ull * (24 * 2048 + 24 * 512) * 4 +
                         20ull * (128 + 16) * 1024 * 4 + 41ull * 512 * 2 + 21ull * 128 * 2;
  CHECK(models::cache_bytes(layout, ir::DType::f16, 0) == fixed);
  CHECK(models::cache_bytes(layout, ir::DType::f16, 32768) == fixed + 6880ull * 32768);
  CHECK(models::cache_bytes(layout, ir::DType::f16, 1 << 20) == fixed + 6880ull * (1 << 20));
  // A partial block still takes its row: 5 tokens are 2 rows of 4, 1 row of 128.
  CHECK(models::cache_bytes(layout, ir::DType::f16, 5) == fixed + 21ull * 2 * (512 + 128) * 2 + 20ull * 512 * 2);
  // The state stays f32 in an f32 or q8_0 cache; the rows follow the cache type.
  CHECK(models::cache_bytes_per_token(layout, ir::DType::f32) == 2 * 6880.0);

  // DeepSeek-V3 (MLA, 61 layers of 576 f16 per token) at 1M tokens: 68.6 GiB; V4-Flash 6.7 GiB.
  const models::DeepSeekHParams v3 = models::hparams_from_hf(hf::load_deepseek_config(kData + "/hf_v3_config.json"), "v3");
  const auto v3_layout = models::deepseek_cache_layout(v3, 0, v3.n_layer);
  CHECK(models::cache_bytes(v3_layout, ir::DType::f16, 1 << 20) == 70272ull * (1 << 20));
  CHECK(models::cache_bytes(layout, ir::DType::f16, 1 << 20) * 10 < models::cache_bytes(v3_layout, ir::DType::f16, 1 << 20));
}

TEST_CASE("DeepSeek-V4: transformers 5's config form means the same as DeepSeek's") {
  nlohmann::json t5 = flash_json();
  nlohmann::json layer_types = nlohmann::json::array();
  for (int64_t l = 0; l < 43; ++l) {
    const int64_t r = t5["compress_ratios"][l].get<int64_t>();
    layer_types.push_back(r == 0 ? "sliding_attention" : r == 4 ? "compressed_sparse_attention" : "heavily_compressed_attention");
  }
  nlohmann::json mlp_types = nlohmann::json::array();
  for (int64_t l = 0; l < 43; ++l) mlp_types.push_back(l < 3 ? "hash_moe" : "moe");
  for (const char* key : {"compress_ratios", "num_hash_layers", "qk_rope_head_dim", "rope_scaling", "rope_theta", "compress_rope_theta"})
    t5.erase(key);
  t5["layer_types"] = layer_types;
  t5["mlp_layer_types"] = mlp_types;
  t5["partial_rotary_factor"] = 0.125;
  t5["rope_parameters"] = {{"main", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
                           {"compress", {{"rope_type", "yarn"}, {"rope_theta", 160000.0}, {"factor", 16.0},
                                         {"original_max_position_embeddings", 65536}, {"attention_factor", 1.0}}}};
  const DeepSeekV4HParams a = from_json(flash_json()), b = from_json(t5);
  CHECK(b.compress_ratio == std::vector<int64_t>(a.compress_ratio.begin(), a.compress_ratio.begin() + 43));
  CHECK(b.n_hash_layers == a.n_hash_layers);
  CHECK(b.rope_dim == a.rope_dim);
  CHECK(b.rope_theta == a.rope_theta);
  CHECK(b.compress_rope_theta == a.compress_rope_theta);
  CHECK(b.rope_factor == a.rope_factor);
  CHECK(b.yarn_orig_ctx == a.yarn_orig_ctx);

  // transformers' defaults: V4-Flash's sizes, 2 x 128 then 4 / 128 alternating
  const DeepSeekV4HParams bare = from_json({{"model_type", "deepseek_v4"}, {"num_hidden_layers", 6}});
  CHECK(bare.compress_ratio == std::vector<int64_t>{128, 128, 128, 4, 128, 4});
  CHECK(bare.n_embd == 4096);
  CHECK(bare.index_topk == 512);
}

TEST_CASE("DeepSeek-V4 config.json errors name the field and what is wrong") {
  auto with = [](const char* key, nlohmann::json value) {
    nlohmann::json c = flash_json();
    c[key] = std::move(value);
    return error_of(c);
  };
  CHECK(with("num_key_value_heads", 8).find("one shared key/value head") != std::string::npos);
  CHECK(with("compress_ratios", {0, 8}).find("a compress ratio of 8") != std::string::npos);
  CHECK(with("compress_ratios", {0, 4}).find("2 compress ratios (compress_ratios / layer_types) for 43 layers") != std::string::npos);
  CHECK(with("o_groups", 7).find("multiple of o_groups (7)") != std::string::npos);
  CHECK(with("scoring_func", "relu").find("\"scoring_func\" is \"relu\"") != std::string::npos);
  CHECK(with("mlp_layer_types", {"moe", "hash_moe"}).empty());  // num_hash_layers, present, wins
  nlohmann::json order = flash_json();
  order.erase("num_hash_layers");
  order["mlp_layer_types"] = {"moe", "hash_moe"};
  CHECK(error_of(order).find("hash_moe layers must come first") != std::string::npos);
  CHECK(with("model_type", "deepseek_v3").find("not DeepSeek-V4's") != std::string::npos);
}

TEST_CASE("DeepSeek-V4 from llama.cpp's deepseek4 GGUF keys: the config's hyperparameters and cache") {
  DeepSeekV4HParams small = from_json(flash_json());
  small.n_embd = 64, small.n_vocab = 32;  // a token_embd the test can write
  const auto dir = std::filesystem::temp_directory_path() / ("moat_v4_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "v4.gguf").string();
  v4_gguf(small).write(path);
  const DeepSeekV4HParams g = models::hparams_from_gguf_v4(gguf::File::open(path));
  CHECK(g.n_layer == 43);
  CHECK(g.n_mtp == 1);
  CHECK(g.compress_ratio == small.compress_ratio);
  CHECK(g.n_vocab == 32);
  CHECK(g.scoring == "sqrtsoftplus");
  CHECK(g.swiglu_limit == 10.0);
  CHECK(g.rope_factor == 16.0);
  CHECK(models::cache_bytes(models::deepseek4_cache_layout(g, 0, g.n_layer), ir::DType::f16, 32768) ==
        models::cache_bytes(models::deepseek4_cache_layout(small, 0, small.n_layer), ir::DType::f16, 32768));

  // moat inspect names the family and prints the cache at 32k and 1M tokens.
  const testing::CliResult text = testing::run_moat({"inspect", path});
  CHECK(text.exit_code == 0);
  CHECK(testing::contains(text.out, "family:       DeepSeek-V4 (llama.cpp deepseek4)"));
  CHECK(testing::contains(text.out, "6880.0 bytes per token + 22.3 MiB fixed"));
  CHECK(testing::contains(text.out, "32768 tokens 237.3 MiB"));
  CHECK(testing::contains(text.out, "1048576 tokens 6902.3 MiB"));
  const testing::CliResult json = testing::run_moat({"inspect", path, "--json"});
  const nlohmann::json report = nlohmann::json::parse(json.out)["cache"];
  CHECK(report["bytes_per_token"] == 6880.0);
  CHECK(report["at"].back()["tokens"] == 1048576);

  // A missing key is named.
  gguf::Writer missing = v4_gguf(small);
  missing.set_string("deepseek4.hyper_connection.count", "four");
  missing.write(path);
  try {
    models::hparams_from_gguf_v4(gguf::File::open(path));
    FAIL("a string hyper_connection.count was accepted");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find("deepseek4.hyper_connection.count") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("the context a DeepSeek-V4 session chooses follows its cache's growth, fixed rows included") {
  const DeepSeekV4HParams h = from_json(flash_json());
  const auto layout = models::deepseek4_cache_layout(h, 0, h.n_layer);
  const runtime::CacheBytes bytes = [&](int64_t tokens) { return models::cache_bytes(layout, ir::DType::f16, tokens); };
  // Half of 4 GiB for the cache: (2 GiB - 22 MiB fixed) / 6880 bytes per token, in steps of 64.
  const runtime::ContextChoice capped = runtime::choose_context(0, h.n_ctx_train, bytes, 4ull << 30);
  const int64_t fits = static_cast<int64_t>(((2ull << 30) - models::cache_bytes(layout, ir::DType::f16, 0)) / 6880);
  CHECK(capped.tokens == fits / 64 * 64);
  CHECK(bytes(capped.tokens) <= (2ull << 30));
  // All of the 1M-token context fits in 16 GiB of memory (6.7 GiB of cache); DeepSeek-V3's would need 68.6 GiB.
  CHECK(runtime::choose_context(0, h.n_ctx_train, bytes, 16ull << 30).tokens == 1048576);
  try {
    runtime::choose_context(1 << 20, h.n_ctx_train, bytes, 8ull << 30);
    FAIL("a 1M-token context was accepted in 4 GiB of cache budget");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find("--ctx 1048576 needs 6902.3 MiB") != std::string::npos);
  }
}

TEST_CASE("the tiny DeepSeek-V4 golden's folder: its config.json reads, inspect reports its family and cache") {
  const std::string folder = kData + "/goldens/v4";
  const DeepSeekV4HParams h = models::hparams_from_hf_v4(hf::load_deepseek_v4_config(folder));
  CHECK(h.compress_ratio == std::vector<int64_t>{0, 4, 128, 4});
  CHECK(h.window == 16);
  CHECK(h.n_hash_layers == 1);
  CHECK(h.yarn_orig_ctx == 32);
  // per token f16: 2 layers x (64 + 32) / 4 + 64 / 128 rows
  CHECK(models::cache_bytes_per_token(models::deepseek4_cache_layout(h, 0, h.n_layer), ir::DType::f16) ==
        2 * (64 + 32) * 2 / 4.0 + 64 * 2 / 128.0);
  const testing::CliResult text = testing::run_moat({"inspect", folder});
  CHECK(text.exit_code == 0);
  CHECK(testing::contains(text.out, "family:       DeepSeek-V4"));
  CHECK(testing::contains(text.out, "97.0 bytes per token"));
  // moat run generates from it (no tokenizer in the folder: token ids): the first token
  // after the golden's first 40 is the argmax of transformers' logits there.
  std::ifstream in(folder + "/tokens.json");
  const std::vector<int64_t> tokens = nlohmann::json::parse(in).get<std::vector<int64_t>>();
  std::string prompt;
  for (size_t i = 0; i < 40; ++i) prompt += (i ? "," : "") + std::to_string(tokens[i]);
  const NpyF32 logits = read_npy_f32(folder + "/logits.npy");
  const auto vocab = static_cast<size_t>(logits.shape[1]);
  const auto row = logits.values.begin() + static_cast<long>(39 * vocab);
  const auto want = std::max_element(row, row + static_cast<long>(vocab)) - row;
  const testing::CliResult run = testing::run_moat({"run", "-m", folder, "--tokens", prompt, "-n", "3", "--temp", "0"});
  CHECK(run.exit_code == 0);
  CHECK(run.out.rfind(std::to_string(want) + " ", 0) == 0);
}
