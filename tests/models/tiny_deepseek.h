// A tiny random DeepSeek model written as a GGUF file the way llama.cpp's converter
// lays it out (deepseek2 keys and tensor names), for tests that need a model file and
// no golden: the forms and devices are compared with each other and with the
// interpreter. (Goldens from an independent implementation: tests/data/goldens.)
#pragma once

#include <functional>
#include <random>
#include <string>
#include <vector>

#include <cstring>

#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "ir/tensor.h"
#include "jit/block_formats.h"

namespace moat::testing {

struct TinyDeepSeek {
  bool q_lora = true;      // V3 / V2 style queries; false: V2-Lite
  bool sigmoid_bias = true;  // V3 routing (sigmoid, score bias, noaux_tc); false: softmax
  bool legacy_kv_b = false;  // one unsplit attn_kv_b instead of attn_k_b / attn_v_b
  bool yarn = true;
  // Matrices whose rows are whole blocks of this type are stored in it (F32 otherwise),
  // like a quantised llama.cpp file; K-quants need the 256-wide embedding.
  gguf::GgmlType matrix_type = gguf::GgmlType::F32;
  int64_t embd = 32;
  int64_t nope = 8;  // 32: attn_k_b rows are whole blocks, so a quantised file quantises it
  int64_t kv_lora = 16;
  int64_t rope = 4;  // with kv_lora 32 and rope 32, latent rows of whole q8_0 blocks (a q8_0 cache)
  // Keys written after the usual ones ("deepseek2." + key), to try what a loader makes of them.
  std::function<void(gguf::Writer&, const std::string& prefix)> more_keys;
};

// Writes the model to `path`. Dims: 2 layers (1 dense), D `embd` (32), 2 heads, q_lora 16,
// kv_lora `kv_lora` (16), nope 8, rope `rope` (4), v 8, vocab 40, 4 experts (2 used, 2 groups), 1 shared.
inline void write_tiny_deepseek(const std::string& path, const TinyDeepSeek& o, uint32_t seed = 7) {
  const int64_t D = o.embd, H = 2, QL = 16, L = o.kv_lora, NOPE = o.nope, ROPE = o.rope, V = 8, VOCAB = 40, FF = 24, E = 4, EF = 16;
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.3f);
  gguf::Writer w;
  std::vector<std::vector<uint8_t>> keep;  // data must outlive write()
  // A row-major [..] tensor (GGUF dims are the reverse). Norm weights sit near 1.
  auto tensor = [&](const std::string& name, std::vector<int64_t> shape, bool norm = false) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(static_cast<size_t>(n));
    for (float& x : values) x = norm ? 1.0f + 0.1f * dist(rng) : dist(rng);
    gguf::GgmlType type = gguf::GgmlType::F32;
    const bool matrix = shape.size() >= 2 && name.find("ffn_gate_inp") == std::string::npos;
    if (matrix && o.matrix_type != gguf::GgmlType::F32 && shape.back() % gguf::ggml_block_elems(o.matrix_type) == 0)
      type = o.matrix_type;
    const ir::DType dtype = *gguf::to_ir_dtype(type);
    if (ir::is_quantised(dtype) && dtype != ir::DType::q8_0 && dtype != ir::DType::q4_0) {
      // random blocks whose f16 fields (scales, mins: jit/block_formats.h) are small (no
      // reference quantiser here)
      std::vector<uint8_t> raw(static_cast<size_t>(n / ir::dtype_block_elems(dtype) * ir::dtype_block_bytes(dtype)));
      for (uint8_t& b : raw) b = static_cast<uint8_t>(rng());
      for (size_t at = 0; at < raw.size(); at += static_cast<size_t>(ir::dtype_block_bytes(dtype))) {
        const uint16_t d = 0x1c00;  // 2^-8
        for (const jit::BlockField& field : jit::find_block_format(dtype)->fields)
          if (field.scalar == jit::Scalar::f16) std::memcpy(raw.data() + at + field.offset, &d, 2);
      }
      keep.push_back(std::move(raw));
    } else {
      ir::HostTensor t = ir::HostTensor::from_f32(shape, values, dtype);
      keep.emplace_back(t.bytes().begin(), t.bytes().end());
    }
    std::vector<uint64_t> dims(shape.rbegin(), shape.rend());
    w.add_tensor(name, type, dims, keep.back());
  };
  const std::string a = "deepseek2.";
  w.set_string("general.architecture", "deepseek2");
  w.set_u32(a + "block_count", 2);
  w.set_u32(a + "context_length", 64);
  w.set_u32(a + "embedding_length", D);
  w.set_u32(a + "feed_forward_length", FF);
  w.set_u32(a + "attention.head_count", H);
  w.set_u32(a + "attention.head_count_kv", 1);
  if (o.q_lora) w.set_u32(a + "attention.q_lora_rank", QL);
  w.set_u32(a + "attention.kv_lora_rank", L);
  w.set_u32(a + "attention.key_length", L + ROPE);  // llama.cpp's MLA form: the latent key
  w.set_u32(a + "attention.value_length", L);
  w.set_u32(a + "attention.key_length_mla", NOPE + ROPE);
  w.set_u32(a + "attention.value_length_mla", V);
  w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-6f);
  w.set_u32(a + "rope.dimension_count", ROPE);
  w.set_f32(a + "rope.freq_base", 10000.0f);
  if (o.yarn) {
    w.set_string(a + "rope.scaling.type", "yarn");
    w.set_f32(a + "rope.scaling.factor", 4.0f);
    w.set_u32(a + "rope.scaling.original_context_length", 8);
    w.set_f32(a + "rope.scaling.yarn_log_multiplier", 0.1f);
  }
  w.set_u32(a + "leading_dense_block_count", 1);
  w.set_u32(a + "expert_feed_forward_length", EF);
  w.set_u32(a + "expert_count", E);
  w.set_u32(a + "expert_used_count", 2);
  w.set_u32(a + "expert_shared_count", 1);
  w.set_f32(a + "expert_weights_scale", o.sigmoid_bias ? 2.5f : 1.0f);
  w.set_bool(a + "expert_weights_norm", o.sigmoid_bias);
  w.set_u32(a + "expert_gating_func", o.sigmoid_bias ? 2 : 1);
  w.set_u32(a + "expert_group_count", o.sigmoid_bias ? 2 : 1);
  w.set_u32(a + "expert_group_used_count", 1);
  if (o.more_keys) o.more_keys(w, a);

  tensor("token_embd.weight", {VOCAB, D});
  for (int l = 0; l < 2; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    tensor(p + "attn_norm.weight", {D}, true);
    if (o.q_lora) {
      tensor(p + "attn_q_a.weight", {QL, D});
      tensor(p + "attn_q_a_norm.weight", {QL}, true);
      tensor(p + "attn_q_b.weight", {H * (NOPE + ROPE), QL});
    } else {
      tensor(p + "attn_q.weight", {H * (NOPE + ROPE), D});
    }
    tensor(p + "attn_kv_a_mqa.weight", {L + ROPE, D});
    tensor(p + "attn_kv_a_norm.weight", {L}, true);
    if (o.legacy_kv_b) {
      tensor(p + "attn_kv_b.weight", {H * (NOPE + V), L});
    } else {
      tensor(p + "attn_k_b.weight", {H, L, NOPE});
      tensor(p + "attn_v_b.weight", {H, V, L});
    }
    tensor(p + "attn_output.weight", {D, H * V});
    tensor(p + "ffn_norm.weight", {D}, true);
    if (l == 0) {
      tensor(p + "ffn_gate.weight", {FF, D});
      tensor(p + "ffn_up.weight", {FF, D});
      tensor(p + "ffn_down.weight", {D, FF});
    } else {
      tensor(p + "ffn_gate_inp.weight", {E, D});
      if (o.sigmoid_bias) tensor(p + "exp_probs_b.bias", {E});
      tensor(p + "ffn_gate_exps.weight", {E, EF, D});
      tensor(p + "ffn_up_exps.weight", {E, EF, D});
      tensor(p + "ffn_down_exps.weight", {E, D, EF});
      tensor(p + "ffn_gate_shexp.weight", {EF, D});
      tensor(p + "ffn_up_shexp.weight", {EF, D});
      tensor(p + "ffn_down_shexp.weight", {D, EF});
    }
  }
  tensor("output_norm.weight", {D}, true);
  tensor("output.weight", {VOCAB, D});
  w.write(path);
}

}  // namespace moat::testing
