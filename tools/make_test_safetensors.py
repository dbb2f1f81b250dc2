#!/usr/bin/env python3
"""Writes tests/data/hf_tiny/: a tiny DeepSeek-V3-style Hugging Face folder.

  config.json                              deepseek_v3, hidden 16, 2 layers, fp8 quantization_config
  model-00001-of-00002.safetensors         written by the PyPI `safetensors` package (numpy API)
  model-00002-of-00002.safetensors
  model.safetensors.index.json             {"metadata": {"total_size": N}, "weight_map": {...}}

Every dtype the reader maps to the Tensor IR appears at least once (F32, F16, BF16,
F8_E4M3 with its F32 weight_scale_inv, I32, I64, U8). Values are simple closed forms
so that tests/frontend/safetensors_test.cpp can hard-code a few of them; BF16 and
F8_E4M3 arrays come from ml_dtypes, which safetensors.numpy accepts as is.

Usage: /tmp/venv/bin/python tools/make_test_safetensors.py   (pip install safetensors ml_dtypes numpy)

The real DeepSeek configs next to it (tests/data/hf_v2_lite_config.json and
tests/data/hf_v3_config.json) are not generated here: they are the published
config.json files of deepseek-ai/DeepSeek-V2-Lite and deepseek-ai/DeepSeek-V3, as
quoted verbatim in public repositories (the search tool found no copy of the Hugging
Face repositories themselves).
"""

import json
import os

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "hf_tiny")

CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "vocab_size": 32,
    "hidden_size": 16,
    "intermediate_size": 32,
    "moe_intermediate_size": 8,
    "num_hidden_layers": 2,
    "num_nextn_predict_layers": 0,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "n_shared_experts": 1,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_group": 2,
    "topk_group": 1,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "kv_lora_rank": 8,
    "q_lora_rank": 8,
    "qk_rope_head_dim": 4,
    "qk_nope_head_dim": 4,
    "v_head_dim": 4,
    "routed_scaling_factor": 2.5,
    "topk_method": "noaux_tc",
    "scoring_func": "sigmoid",
    "norm_topk_prob": True,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000,
    "max_position_embeddings": 256,
    "rope_scaling": {
        "beta_fast": 32,
        "beta_slow": 1,
        "factor": 4,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
        "original_max_position_embeddings": 64,
        "type": "yarn",
    },
    "tie_word_embeddings": False,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "torch_dtype": "bfloat16",
    "quantization_config": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    },
}

# Exactly representable in E4M3: 1.0 (0x38), 2.0 (0x40), -1.0 (0xb8), 0.5 (0x30).
FP8_PATTERN = np.array([1.0, 2.0, -1.0, 0.5], dtype=np.float32)


def shard1():
    return {
        # BF16 [32, 16]: (i - 256) / 64, exact in bf16; element 0 is -4.0 (0xc080).
        "model.embed_tokens.weight": ((np.arange(512, dtype=np.float32) - 256) / 64)
        .reshape(32, 16)
        .astype(ml_dtypes.bfloat16),
        # F32 [16]: 1 + i / 16.
        "model.layers.0.input_layernorm.weight": 1 + np.arange(16, dtype=np.float32) / 16,
        # F8_E4M3 [8, 16] with its block scale (one 128x128 block covers it all).
        "model.layers.0.self_attn.q_a_proj.weight": np.resize(FP8_PATTERN, (8, 16)).astype(
            ml_dtypes.float8_e4m3fn
        ),
        "model.layers.0.self_attn.q_a_proj.weight_scale_inv": np.array([[0.25]], dtype=np.float32),
    }


def shard2():
    return {
        # F16 [4, 16]: i / 2.
        "model.layers.1.mlp.gate.weight": (np.arange(64, dtype=np.float32) / 2).reshape(4, 16).astype(np.float16),
        "model.layers.1.mlp.gate.e_score_correction_bias": np.array([0.5, -0.5, 0.25, -0.25], dtype=np.float32),
        # Integer and byte tensors (not DeepSeek weights; they cover the remaining dtypes).
        "extra.i32": np.arange(-3, 5, dtype=np.int32),
        "extra.i64": np.array([1 << 40, -1, 7], dtype=np.int64),
        "extra.u8": np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5),
        # An empty tensor: zero bytes, still listed.
        "extra.empty": np.zeros((0, 3), dtype=np.float32),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    weight_map = {}
    total = 0
    shards = [shard1(), shard2()]
    for i, tensors in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(tensors, os.path.join(OUT, name), metadata={"format": "pt"})
        os.chmod(os.path.join(OUT, name), 0o644)
        for key, value in tensors.items():
            weight_map[key] = name
            total += value.nbytes
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(OUT, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    print(f"wrote {OUT}: {len(weight_map)} tensors, {total} bytes of data")


if __name__ == "__main__":
    main()
