#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "frontend/hf_config.h"
#include "frontend/models/deepseek_hparams.h"
#include "support/error.h"

using namespace moat::hf;

namespace {

const std::string kData = MOAT_SOURCE_DIR "/tests/data";

// The message of the UserError that parsing `text` throws ("" when it parses).
std::string config_error(const std::string& text) {
  try {
    parse_deepseek_config(text, "cfg.json");
  } catch (const moat::UserError& e) {
    return e.what();
  }
  return "";
}

// `fields` spliced into a minimal deepseek_v3 config.
std::string v3_with(const std::string& fields) { return R"({"model_type": "deepseek_v3", )" + fields + "}"; }

}  // namespace

// tests/data/hf_v2_lite_config.json and hf_v3_config.json are the published config.json
// files of deepseek-ai/DeepSeek-V2-Lite and deepseek-ai/DeepSeek-V3, as quoted verbatim
// in public repositories (HF bookkeeping keys such as transformers_version may differ
// from the hub's copy; the parser ignores them).
TEST_CASE("the real DeepSeek-V2-Lite config.json") {
  DeepSeekConfig c = load_deepseek_config(kData + "/hf_v2_lite_config.json");
  CHECK(c.model_type == "deepseek_v2");
  CHECK(c.architectures == std::vector<std::string>{"DeepseekV2ForCausalLM"});
  CHECK(c.vocab_size == 102400);
  CHECK(c.hidden_size == 2048);
  CHECK(c.intermediate_size == 10944);
  CHECK(c.moe_intermediate_size == 1408);
  CHECK(c.num_hidden_layers == 27);
  CHECK(c.num_attention_heads == 16);
  CHECK(c.num_key_value_heads == 16);
  CHECK(c.n_shared_experts == 2);
  CHECK(c.n_routed_experts == 64);
  CHECK(c.num_experts_per_tok == 6);
  CHECK(c.n_group == 1);
  CHECK(c.topk_group == 1);
  CHECK(c.first_k_dense_replace == 1);
  CHECK(c.moe_layer_freq == 1);
  CHECK(c.kv_lora_rank == 512);
  CHECK(!c.q_lora_rank.has_value());
  CHECK(c.qk_rope_head_dim == 64);
  CHECK(c.qk_nope_head_dim == 128);
  CHECK(c.v_head_dim == 128);
  CHECK(c.routed_scaling_factor == 1.0);
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.topk_method == "greedy");
  CHECK(c.scoring_func == "softmax");
  CHECK(!c.norm_topk_prob);
  CHECK(c.max_position_embeddings == 163840);
  REQUIRE(c.rope_scaling.has_value());
  CHECK(c.rope_scaling->type == "yarn");
  CHECK(c.rope_scaling->factor == 40.0);
  CHECK(c.rope_scaling->original_max_position_embeddings == 4096);
  CHECK(c.rope_scaling->beta_fast == 32.0);
  CHECK(c.rope_scaling->beta_slow == 1.0);
  CHECK(c.rope_scaling->mscale == 0.707);
  CHECK(c.rope_scaling->mscale_all_dim == 0.707);
  CHECK(!c.tie_word_embeddings);
  CHECK(c.bos_token_id == 100000);
  CHECK(c.eos_token_id == 100001);
  CHECK(c.torch_dtype == "bfloat16");
  CHECK(!c.quantization_config.has_value());
  CHECK(c.num_nextn_predict_layers == 0);
}

TEST_CASE("the real DeepSeek-V3 config.json") {
  DeepSeekConfig c = load_deepseek_config(kData + "/hf_v3_config.json");
  CHECK(c.model_type == "deepseek_v3");
  CHECK(c.vocab_size == 129280);
  CHECK(c.hidden_size == 7168);
  CHECK(c.intermediate_size == 18432);
  CHECK(c.moe_intermediate_size == 2048);
  CHECK(c.num_hidden_layers == 61);
  CHECK(c.num_attention_heads == 128);
  CHECK(c.n_shared_experts == 1);
  CHECK(c.n_routed_experts == 256);
  CHECK(c.num_experts_per_tok == 8);
  CHECK(c.n_group == 8);
  CHECK(c.topk_group == 4);
  CHECK(c.first_k_dense_replace == 3);
  CHECK(c.kv_lora_rank == 512);
  CHECK(c.q_lora_rank == 1536);
  CHECK(c.routed_scaling_factor == 2.5);
  CHECK(c.topk_method == "noaux_tc");
  CHECK(c.scoring_func == "sigmoid");
  CHECK(c.norm_topk_prob);
  CHECK(c.max_position_embeddings == 163840);
  REQUIRE(c.rope_scaling.has_value());
  CHECK(c.rope_scaling->factor == 40.0);
  CHECK(c.rope_scaling->mscale_all_dim == 1.0);
  CHECK(c.bos_token_id == 0);
  CHECK(c.eos_token_id == 1);
  REQUIRE(c.quantization_config.has_value());
  CHECK(c.quantization_config->quant_method == "fp8");
  CHECK(c.quantization_config->fmt == "e4m3");
  CHECK(c.quantization_config->activation_scheme == "dynamic");
  CHECK(c.quantization_config->weight_block_size == std::vector<int64_t>{128, 128});
  CHECK(c.num_nextn_predict_layers == 1);
}

TEST_CASE("the hf_tiny folder's config.json is found from the folder") {
  DeepSeekConfig c = load_deepseek_config(kData + "/hf_tiny");
  CHECK(c.hidden_size == 16);
  CHECK(c.n_routed_experts == 4);
  CHECK(c.q_lora_rank == 8);
  CHECK(c.rope_scaling->original_max_position_embeddings == 64);
  CHECK(c.num_nextn_predict_layers == 0);
}

TEST_CASE("DeepSeek-V3.2: the published V3 config with V3.2's model_type and indexer, and its cache per token") {
  nlohmann::json v32 = read_json_file(kData + "/hf_v3_config.json");
  v32["model_type"] = "deepseek_v32";
  v32["architectures"] = {"DeepseekV32ForCausalLM"};
  v32["index_n_heads"] = 64, v32["index_head_dim"] = 128, v32["index_topk"] = 2048;
  const DeepSeekConfig c = parse_deepseek_config(v32.dump(), "v32.json");
  CHECK(c.index_n_heads == 64);
  CHECK(c.index_head_dim == 128);
  CHECK(c.index_topk == 2048);
  const moat::models::DeepSeekHParams h = moat::models::hparams_from_hf(c, "v32.json");
  CHECK(h.sparse());
  CHECK(h.index_topk == 2048);
  // Per token, 61 layers of the latent (512 + 64) and the indexer key (128), f16:
  // (576 + 128) x 2 x 61 bytes, against V3's 576 x 2 x 61.
  CHECK(h.cache_bytes_per_token(moat::ir::DType::f16) == 85888);
  CHECK(moat::models::hparams_from_hf(parse_deepseek_config(read_json_file(kData + "/hf_v3_config.json").dump(), "v3.json"), "v3.json")
            .cache_bytes_per_token(moat::ir::DType::f16) == 70272);

  // transformers' DeepseekV32Config defaults; a V3 config has no indexer
  const DeepSeekConfig bare = parse_deepseek_config(R"({"model_type": "deepseek_v32"})", "b.json");
  CHECK(bare.index_topk == 2048);
  CHECK(bare.index_n_heads == 64);
  CHECK(bare.max_position_embeddings == 163840);
  CHECK(parse_deepseek_config(R"({"model_type": "deepseek_v3"})", "v3.json").index_topk == 0);
  // An indexer narrower than the rotated dims is refused by name.
  CHECK_THROWS_WITH_AS(moat::models::hparams_from_hf(parse_deepseek_config(R"({"model_type": "deepseek_v32", "index_head_dim": 32})", "n.json"), "n.json"),
                       doctest::Contains("below qk_rope_head_dim"), moat::UserError);
}

TEST_CASE("transformers 5's rope_parameters hold rope_theta and the scaling") {
  const DeepSeekConfig plain = parse_deepseek_config(v3_with(R"("rope_parameters": {"rope_theta": 50000.0, "rope_type": "default"})"), "p.json");
  CHECK(plain.rope_theta == 50000.0);
  CHECK(!plain.rope_scaling.has_value());
  const DeepSeekConfig yarn = parse_deepseek_config(
      v3_with(R"("rope_parameters": {"rope_theta": 10000.0, "rope_type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                 "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0})"),
      "y.json");
  REQUIRE(yarn.rope_scaling.has_value());
  CHECK(yarn.rope_scaling->type == "yarn");
  CHECK(yarn.rope_scaling->factor == 40);
  CHECK(yarn.rope_scaling->mscale_all_dim == 1.0);
  CHECK(config_error(v3_with(R"("rope_parameters": 3)")).find("rope_parameters") != std::string::npos);
}

TEST_CASE("absent fields take configuration_deepseek.py's defaults for the model_type") {
  DeepSeekConfig v3 = parse_deepseek_config(R"({"model_type": "deepseek_v3"})", "v3.json");
  CHECK(v3.hidden_size == 7168);
  CHECK(v3.n_routed_experts == 256);
  CHECK(v3.n_group == 8);
  CHECK(v3.topk_method == "noaux_tc");
  CHECK(v3.scoring_func == "sigmoid");
  CHECK(v3.max_position_embeddings == 4096);
  CHECK(v3.num_nextn_predict_layers == 1);
  CHECK(!v3.rope_scaling.has_value());

  DeepSeekConfig v2 = parse_deepseek_config(R"({"model_type": "deepseek_v2"})", "v2.json");
  CHECK(v2.hidden_size == 4096);
  CHECK(v2.num_hidden_layers == 30);
  CHECK(v2.n_routed_experts == 0);  // None: dense
  CHECK(v2.num_experts_per_tok == 0);
  CHECK(v2.topk_method == "greedy");
  CHECK(v2.scoring_func == "softmax");
  CHECK(v2.q_lora_rank == 1536);
  CHECK(v2.moe_intermediate_size == 1407);
  CHECK(v2.bos_token_id == 100000);
  CHECK(v2.max_position_embeddings == 2048);

  // Explicit nulls: HF's None.
  DeepSeekConfig nulls = parse_deepseek_config(
      v3_with(R"("n_group": null, "topk_group": null, "num_key_value_heads": null, "num_attention_heads": 4,
                 "q_lora_rank": null, "bos_token_id": null, "rope_scaling": null, "quantization_config": null)"),
      "n.json");
  CHECK(nulls.n_group == 1);
  CHECK(nulls.topk_group == 1);
  CHECK(nulls.num_key_value_heads == 4);
  CHECK(!nulls.q_lora_rank.has_value());
  CHECK(!nulls.bos_token_id.has_value());
  CHECK(!nulls.rope_scaling.has_value());
  CHECK(!nulls.quantization_config.has_value());

  // YaRN without original_max_position_embeddings: DeepseekV2YarnRotaryEmbedding's 4096.
  DeepSeekConfig yarn = parse_deepseek_config(v3_with(R"("rope_scaling": {"type": "yarn", "factor": 8})"), "y.json");
  CHECK(yarn.rope_scaling->original_max_position_embeddings == 4096);
  CHECK(yarn.rope_scaling->mscale_all_dim == 0.0);
  CHECK(parse_deepseek_config(v3_with(R"("hidden_size": 4096.0, "dtype": "float16")"), "f.json").hidden_size == 4096);
  CHECK(parse_deepseek_config(v3_with(R"("dtype": "float16")"), "f.json").torch_dtype == "float16");
}

TEST_CASE("wrong types and values name the file and the field") {
  CHECK(config_error(v3_with(R"("hidden_size": "abc")")) ==
        "cfg.json: field \"hidden_size\" must be a positive integer, got \"abc\"");
  CHECK(config_error(v3_with(R"("hidden_size": -5)")) ==
        "cfg.json: field \"hidden_size\" must be a positive integer, got -5");
  CHECK(config_error(v3_with(R"("q_lora_rank": 0)")) ==
        "cfg.json: field \"q_lora_rank\" must be a positive integer, got 0");
  CHECK(config_error(v3_with(R"("first_k_dense_replace": -1)")) ==
        "cfg.json: field \"first_k_dense_replace\" must be a non-negative integer, got -1");
  CHECK(config_error(v3_with(R"("vocab_size": 1.5)")).find("field \"vocab_size\"") != std::string::npos);
  CHECK(config_error(v3_with(R"("vocab_size": true)")).find("field \"vocab_size\"") != std::string::npos);
  CHECK(config_error(v3_with(R"("vocab_size": 1e300)")).find("over the limit") != std::string::npos);
  CHECK(config_error(v3_with(R"("vocab_size": 18446744073709551615)")).find("over the limit") != std::string::npos);
  CHECK(config_error(v3_with(R"("rms_norm_eps": 0)")) ==
        "cfg.json: field \"rms_norm_eps\" must be a positive number, got 0");
  CHECK(config_error(v3_with(R"("norm_topk_prob": "yes")")).find("field \"norm_topk_prob\" must be true or false") !=
        std::string::npos);
  CHECK(config_error(v3_with(R"("topk_method": "magic")")).find("noaux_tc") != std::string::npos);
  CHECK(config_error(v3_with(R"("scoring_func": 3)")).find("field \"scoring_func\" must be a string") !=
        std::string::npos);
  CHECK(config_error(v3_with(R"("rope_scaling": {"type": "yarn", "factor": "x"})")) ==
        "cfg.json: field \"rope_scaling.factor\" must be a positive number, got \"x\"");
  CHECK(config_error(v3_with(R"("rope_scaling": {"type": "ntk"})")).find("rope_scaling.type") != std::string::npos);
  CHECK(config_error(v3_with(R"("rope_scaling": {"factor": 2})")).find("no \"type\"") != std::string::npos);
  CHECK(config_error(v3_with(R"("rope_scaling": 5)")).find("\"rope_scaling\" must be an object") !=
        std::string::npos);
  CHECK(config_error(v3_with(R"("quantization_config": {"quant_method": "fp8", "weight_block_size": [128]})"))
            .find("quantization_config.weight_block_size") != std::string::npos);
  CHECK(config_error(v3_with(R"("architectures": "DeepseekV3ForCausalLM")")).find("array of strings") !=
        std::string::npos);
  CHECK(config_error(v3_with(R"("topk_group": 9)")).find("topk_group (9) exceeds n_group (8)") != std::string::npos);
  CHECK(config_error(v3_with(R"("num_experts_per_tok": 300)")).find("num_experts_per_tok") != std::string::npos);
  CHECK(config_error(v3_with(R"("n_routed_experts": 100)")).find("multiple of n_group") != std::string::npos);
}

TEST_CASE("unsupported models and bad JSON are clear UserErrors") {
  std::string llama = config_error(R"({"model_type": "llama", "hidden_size": 4096})");
  CHECK(llama.rfind("cfg.json: model_type \"llama\" is not supported", 0) == 0);
  CHECK(llama.find("deepseek_v2") != std::string::npos);
  CHECK(llama.find("deepseek_v3") != std::string::npos);
  CHECK(config_error(R"({"hidden_size": 4096})").find("no \"model_type\"") != std::string::npos);
  CHECK(config_error(R"([1, 2])").find("expected a JSON object") != std::string::npos);
  std::string bad = config_error("{\n  \"model_type\": \"deepseek_v3\",\n  \"hidden_size\": ,\n}");
  CHECK(bad.rfind("cfg.json: not valid JSON: ", 0) == 0);
  CHECK(bad.find("line 3") != std::string::npos);
  CHECK(config_error("").find("not valid JSON") != std::string::npos);
  CHECK(config_error(std::string(100000, '[')).find("not valid JSON") != std::string::npos);

  CHECK_THROWS_WITH_AS(load_deepseek_config(kData + "/no_such_dir/config.json"), doctest::Contains("cannot open"),
                       moat::UserError);
  std::filesystem::path tmp = std::filesystem::temp_directory_path() / "moat_hf_config_test_bad.json";
  std::ofstream(tmp) << "{\"a\": 1,\n\"b\": }";
  CHECK_THROWS_WITH_AS(read_json_file(tmp.string()), doctest::Contains("line 2, column"), moat::UserError);
  std::filesystem::remove(tmp);
}
