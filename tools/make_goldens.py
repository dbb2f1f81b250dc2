#!/usr/bin/env python3
"""Writes tests/data/goldens/: tiny random DeepSeek-V3 / V2-Lite / V2 models and their
logits, computed by an implementation we did not write (Hugging Face transformers' own
DeepseekV3ForCausalLM / DeepseekV2ForCausalLM, f32, eager attention) and cross-checked
against a plain numpy transcription of DeepSeek's inference/model.py.

    python3 -m venv /tmp/venv-goldens
    /tmp/venv-goldens/bin/pip install torch==2.9.1 transformers==4.57.6 safetensors==0.8.0 \
        gguf==0.19.0 numpy==2.4.6 ml_dtypes==0.6.0
    /tmp/venv-goldens/bin/python tools/make_goldens.py

tests/data/goldens/README.md lists what is written, what each model exercises, and every
place where transformers and DeepSeek's reference differ (and what this script does about
it). In short:
  - transformers' DeepseekV2Attention leaves out YaRN's mscale(mscale_all_dim)^2 on the
    softmax scale; DeepSeek's model.py, its original remote code, vLLM, SGLang and llama.cpp
    apply it. This script sets the scale right on every V2 attention module
    (patch_v2_softmax_scale) and says so in the README.
  - every other difference found is made moot by the configurations (see CHECKS in
    reference_forward) and asserted, so that a later transformers cannot drift silently.

GGUF files follow llama.cpp's convert_hf_to_gguf.py (DeepseekV2Model) for the `deepseek2`
architecture; tensor names come from gguf-py's own TensorNameMap. Nothing here is needed
to build, run or test the C++.
"""

import argparse
import json
import math
import os
import shutil

import ml_dtypes
import numpy as np
import torch
import transformers
import gguf
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "goldens")

# 48 token ids (bytes of the tiny byte-level vocabulary): 0 and 255 are in, and token 14
# recurs at positions 9, 30, 41, so the same embedding is seen at different positions.
# Positions 32..47 lie beyond original_max_position_embeddings (32): YaRN is exercised.
TOKENS = [171, 205, 6, 0, 120, 131, 161, 73, 249, 14, 71, 98, 146, 104, 34, 12, 1, 255,
          38, 254, 49, 166, 191, 60, 72, 111, 67, 248, 46, 229, 14, 215, 30, 100, 160, 126,
          170, 172, 169, 16, 244, 14, 230, 69, 92, 224, 48, 17]

# Shared by all models. qk_rope_head_dim 16 with original context 32 and DeepSeek's own
# beta_fast 32 / beta_slow 1 gives a YaRN ramp from dim 0 to ceil(1.41) = 2, so rotary pair 1
# is blended half-and-half (and floor/ceil differ from round: a rounding bug shows).
COMMON = {
    "vocab_size": 256,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "kv_lora_rank": 32,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 16,
    "v_head_dim": 16,
    "moe_intermediate_size": 32,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000,
    "max_position_embeddings": 128,  # = factor * original, as in the published configs
    "attention_bias": False,
    "attention_dropout": 0.0,
    "tie_word_embeddings": False,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "use_cache": True,
    "torch_dtype": "float32",
}


def yarn(mscale):
    return {"type": "yarn", "factor": 4, "original_max_position_embeddings": 32,
            "beta_fast": 32, "beta_slow": 1, "mscale": mscale, "mscale_all_dim": mscale}


MODELS = {
    # DeepSeek-V3 / R1: q-LoRA, sigmoid scores + e_score_correction_bias, noaux_tc over 4
    # groups of 4 experts (top-2 sum per group), scale 2.5. intermediate_size 160 > 128 makes
    # the dense FFN span two 128x128 FP8 scale blocks (one of them partial) in v3_fp8.
    "v3": dict(COMMON, **{
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
        "q_lora_rank": 24, "intermediate_size": 160,
        "n_routed_experts": 16, "n_shared_experts": 1, "num_experts_per_tok": 3,
        "n_group": 4, "topk_group": 2, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
        "norm_topk_prob": True, "routed_scaling_factor": 2.5, "num_nextn_predict_layers": 0,
        "rope_scaling": yarn(1.0),
    }),
    # DeepSeek-V2-Lite: no q-LoRA, softmax, greedy top-k, 2 shared experts, no weight
    # normalisation, scale 1.0. Weights are rounded to bf16, so model-bf16.gguf is exact.
    "v2_lite": dict(COMMON, **{
        "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
        "q_lora_rank": None, "intermediate_size": 96,
        "n_routed_experts": 8, "n_shared_experts": 2, "num_experts_per_tok": 3,
        "n_group": 1, "topk_group": 1, "topk_method": "greedy", "scoring_func": "softmax",
        "norm_topk_prob": False, "routed_scaling_factor": 1.0,
        "rope_scaling": yarn(0.707),
    }),
    # DeepSeek-V2 (236B): q-LoRA, softmax, group_limited_greedy (groups ranked by their max
    # score), scale 16 as published.
    "v2": dict(COMMON, **{
        "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
        "q_lora_rank": 24, "intermediate_size": 96,
        "n_routed_experts": 16, "n_shared_experts": 1, "num_experts_per_tok": 3,
        "n_group": 4, "topk_group": 2, "topk_method": "group_limited_greedy",
        "scoring_func": "softmax", "norm_topk_prob": False, "routed_scaling_factor": 16.0,
        "rope_scaling": yarn(0.707),
    }),
}
SEEDS = {"v3": 3000, "v2_lite": 2100, "v2": 2000}  # first seed tried; see pick_seed

FP8_BLOCK = 128          # DeepSeek-V3's weight_block_size [128, 128]
FP8_MAX = 448.0          # largest finite float8_e4m3fn
MIN_ROUTE_GAP = 2e-4     # score gap at every top-k / top-group boundary (f32 noise ~1e-6)
MIN_ARGMAX_GAP = 5e-4    # top-1 minus top-2 logit over max|logit| of the row (2.5x the 1e-4 tolerance x 2)


# ---------------------------------------------------------------------------------------
# transformers
# ---------------------------------------------------------------------------------------

def hf_classes(cfg):
    if cfg["model_type"] == "deepseek_v3":
        return transformers.DeepseekV3Config, transformers.DeepseekV3ForCausalLM
    return transformers.DeepseekV2Config, transformers.DeepseekV2ForCausalLM


def yarn_mscale(factor, m):
    # DeepSeek's yarn_get_mscale; model.py: mscale = 0.1 * args.mscale * ln(factor) + 1.
    return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0


def softmax_scale(cfg):
    """DeepSeek's model.py MLA.softmax_scale: qk_head_dim^-0.5 * mscale^2 (with YaRN)."""
    scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    rs = cfg.get("rope_scaling")
    if rs and rs.get("mscale_all_dim"):
        scale *= yarn_mscale(rs["factor"], rs["mscale_all_dim"]) ** 2
    return scale


def patch_v2_softmax_scale(model, cfg):
    """transformers 4.57's DeepseekV2Attention sets scaling = qk_head_dim^-0.5 and never
    applies YaRN's mscale(mscale_all_dim)^2; DeepseekV3Attention does. DeepSeek's own code is
    the authority, so the V2 goldens use the corrected scale. Fails loudly if transformers
    changes (fixed, or wrong in a new way) so that this patch is revisited."""
    if cfg["model_type"] != "deepseek_v2":
        return
    plain = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    for layer in model.model.layers:
        attn = layer.self_attn
        assert abs(attn.scaling - plain) < 1e-12, (
            f"transformers' DeepseekV2Attention.scaling is {attn.scaling}, expected the known "
            f"unpatched {plain}: re-check patch_v2_softmax_scale")
        attn.scaling = softmax_scale(cfg)


def build_hf(cfg):
    config_cls, model_cls = hf_classes(cfg)
    fields = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "torch_dtype")}
    config = config_cls(**fields)
    config._attn_implementation = "eager"
    torch.manual_seed(0)  # every parameter is overwritten by init_weights anyway
    model = model_cls(config).to(torch.float32).eval()
    patch_v2_softmax_scale(model, cfg)
    if cfg["model_type"] == "deepseek_v3":
        assert all(abs(l.self_attn.scaling - softmax_scale(cfg)) < 1e-12 for l in model.model.layers)
    return model


def hf_logits(model, weights):
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    with torch.no_grad():
        out = model(torch.tensor([TOKENS]), use_cache=False)
    return out.logits[0].to(torch.float32).numpy().copy()  # [n_tokens, n_vocab]


def init_weights(model, seed, round_bf16):
    """Seeded numpy values for every entry of the model's state dict (HF names). Linear
    weights ~ N(0, 1/fan_in) so activations stay O(1); norms ~ 1 + N(0, 0.1^2) so their
    weights matter; the V3 correction bias ~ U(-0.15, 0.15), big enough to change routing."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, t in sorted(model.state_dict().items()):
        shape = tuple(t.shape)
        if name.endswith("e_score_correction_bias"):
            w = rng.uniform(-0.15, 0.15, shape)
        elif "norm" in name:
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("embed_tokens.weight"):
            w = rng.standard_normal(shape)
        else:
            assert len(shape) == 2 and name.endswith(".weight"), name
            w = rng.standard_normal(shape) / math.sqrt(shape[1])
        w = w.astype(np.float32)
        if round_bf16:
            w = w.astype(ml_dtypes.bfloat16).astype(np.float32)
        out[name] = w
    return out


# ---------------------------------------------------------------------------------------
# DeepSeek's inference/model.py, transcribed to numpy (float64)
# ---------------------------------------------------------------------------------------

def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def yarn_freqs(cfg, n):
    """precompute_freqs_cis: angles [n, rope/2]. YaRN applies because model.py's max_seq_len
    (the cache size) exceeds original_seq_len whenever rope_scaling is set."""
    dim, base = cfg["qk_rope_head_dim"], cfg["rope_theta"]
    rs = cfg["rope_scaling"]
    factor, orig = rs["factor"], rs["original_max_position_embeddings"]
    freqs = 1.0 / base ** (np.arange(0, dim, 2) / dim)

    def corr_dim(rot):
        return dim * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(corr_dim(rs["beta_fast"])), 0)
    high = min(math.ceil(corr_dim(rs["beta_slow"])), dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2) - low) / (high - low), 0, 1)
    smooth = 1 - ramp
    freqs = freqs / factor * (1 - smooth) + freqs * smooth
    return np.outer(np.arange(n), freqs)


def apply_rope(x, ang):
    """model.py apply_rotary_emb: consecutive pairs (x[2i], x[2i+1]) are one complex number."""
    re, im = x[..., 0::2], x[..., 1::2]
    c, s = np.cos(ang), np.sin(ang)
    out = np.empty_like(x)
    out[..., 0::2] = re * c - im * s
    out[..., 1::2] = re * s + im * c
    return out


def gate(cfg, w_gate, bias, h, stats):
    """model.py Gate.forward for a [T, hidden] batch -> (indices [T, k], weights [T, k])."""
    logits = h @ w_gate.T
    if cfg["scoring_func"] == "softmax":
        e = np.exp(logits - logits.max(-1, keepdims=True))
        scores = e / e.sum(-1, keepdims=True)
    else:
        scores = 1 / (1 + np.exp(-logits))
    original = scores
    if bias is not None:
        scores = scores + bias
    n_tok, n_exp = scores.shape
    groups, topk_groups, k = cfg["n_group"], cfg["topk_group"], cfg["num_experts_per_tok"]
    if groups > 1:
        g = scores.reshape(n_tok, groups, -1)
        # no bias: a group's score is its best expert; with bias: the sum of its top two
        gs = g.max(-1) if bias is None else np.sort(g, -1)[..., -2:].sum(-1)
        order = np.argsort(-gs, -1, kind="stable")
        ranked = np.take_along_axis(gs, order, -1)
        stats["group_gap"] = min(stats.get("group_gap", np.inf),
                                 float((ranked[:, topk_groups - 1] - ranked[:, topk_groups]).min()))
        keep = np.zeros((n_tok, groups), bool)
        np.put_along_axis(keep, order[:, :topk_groups], True, -1)
        scores = np.where(np.repeat(keep, n_exp // groups, -1), scores, -np.inf)
    idx = np.argsort(-scores, -1, kind="stable")[:, :k]
    ranked = -np.sort(-scores, -1)
    stats["expert_gap"] = min(stats.get("expert_gap", np.inf), float((ranked[:, k - 1] - ranked[:, k]).min()))
    # transformers fills masked experts with 0.0 instead of -inf: the same choice as long
    # as every chosen (biased) score is positive.
    stats["min_chosen"] = min(stats.get("min_chosen", np.inf), float(ranked[:, k - 1].min()))
    weights = np.take_along_axis(original, idx, -1)
    if cfg["scoring_func"] == "sigmoid":
        weights = weights / weights.sum(-1, keepdims=True)
    return idx, weights * cfg["routed_scaling_factor"]


def mlp(x, p):
    g, u = x @ p["gate_proj.weight"].T, x @ p["up_proj.weight"].T
    return (g / (1 + np.exp(-g)) * u) @ p["down_proj.weight"].T


def sub(weights, prefix):
    return {k[len(prefix):]: v.astype(np.float64) for k, v in weights.items() if k.startswith(prefix)}


def q_latent(cfg, W, p, h):
    """The normed q-LoRA latent of layer prefix p for the normed h [n, D]; None without q-LoRA."""
    if not cfg["q_lora_rank"]:
        return None
    return rms_norm(h @ W[p + "self_attn.q_a_proj.weight"].T, W[p + "self_attn.q_a_layernorm.weight"], cfg["rms_norm_eps"])


def mla_reference(cfg, W, p, h, qr, ang, score_bias):
    """MLA of layer prefix p over the normed h [n, D] as model.py's naive form computes it
    (decompressed keys and values), with the additive score_bias [n, n] (the causal mask,
    or a sparse selection); qr is q_latent's. The attention output [n, D]."""
    n = h.shape[0]
    heads, nope, rope, vdim = (cfg["num_attention_heads"], cfg["qk_nope_head_dim"],
                               cfg["qk_rope_head_dim"], cfg["v_head_dim"])
    q = qr @ W[p + "self_attn.q_b_proj.weight"].T if qr is not None else h @ W[p + "self_attn.q_proj.weight"].T
    q = q.reshape(n, heads, nope + rope)
    q = np.concatenate([q[..., :nope], apply_rope(q[..., nope:], ang)], -1)
    kv = h @ W[p + "self_attn.kv_a_proj_with_mqa.weight"].T
    latent, k_pe = kv[:, :cfg["kv_lora_rank"]], apply_rope(kv[:, None, cfg["kv_lora_rank"]:], ang)
    kv = rms_norm(latent, W[p + "self_attn.kv_a_layernorm.weight"], cfg["rms_norm_eps"]) @ W[p + "self_attn.kv_b_proj.weight"].T
    kv = kv.reshape(n, heads, nope + vdim)
    k = np.concatenate([kv[..., :nope], np.broadcast_to(k_pe, (n, heads, rope))], -1)
    s = np.einsum("shd,thd->hst", q, k) * softmax_scale(cfg) + score_bias
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    o = np.einsum("hst,thd->shd", s, kv[..., nope:]).reshape(n, heads * vdim)
    return o @ W[p + "self_attn.o_proj.weight"].T


def ffn_reference(cfg, weights, W, p, layer, h, stats):
    """Layer `layer`'s FFN output for the normed h [n, D]: dense, or the routed and shared
    experts as model.py's MoE. Adds to `stats` the routing margins (gate's) and how much the
    routing options matter on this data (selections that change)."""
    if layer < cfg["first_k_dense_replace"]:
        return mlp(h, sub(weights, p + "mlp."))
    bias = W.get(p + "mlp.gate.e_score_correction_bias")
    idx, wts = gate(cfg, W[p + "mlp.gate.weight"], bias, h, stats)
    y = mlp(h, sub(weights, p + "mlp.shared_experts."))
    for e in range(cfg["n_routed_experts"]):
        rows, slot = np.nonzero(idx == e)
        if len(rows):
            y[rows] += wts[rows, slot, None] * mlp(h[rows], sub(weights, f"{p}mlp.experts.{e}."))
    plain = dict(cfg, n_group=1, topk_group=1)
    biased = np.sort(gate(plain, W[p + "mlp.gate.weight"], bias, h, {})[0], -1)
    stats["bias_changes"] = stats.get("bias_changes", 0) + (
        int((np.sort(gate(plain, W[p + "mlp.gate.weight"], None, h, {})[0], -1) != biased).any(-1).sum())
        if bias is not None else 0)
    stats["group_changes"] = stats.get("group_changes", 0) + int((biased != np.sort(idx, -1)).any(-1).sum())
    return y


def reference_forward(cfg, weights):
    """Logits [n_tokens, n_vocab] the way DeepSeek's model.py computes them (attn_impl
    "naive", f64), plus routing statistics. CHECKS: model.py normalises the top-k weights iff
    scoring is sigmoid, transformers iff norm_topk_prob (V3) or never (V2); the configs make
    these agree."""
    assert cfg["norm_topk_prob"] == (cfg["scoring_func"] == "sigmoid")
    W = {k: v.astype(np.float64) for k, v in weights.items()}
    eps, n = cfg["rms_norm_eps"], len(TOKENS)
    ang = yarn_freqs(cfg, n)[:, None, :]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    stats = {}
    x = W["model.embed_tokens.weight"][TOKENS]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        x = x + mla_reference(cfg, W, p, h, q_latent(cfg, W, p, h), ang, mask)
        x = x + ffn_reference(cfg, weights, W, p, i, rms_norm(x, W[p + "post_attention_layernorm.weight"], eps), stats)
    x = rms_norm(x, W["model.norm.weight"], eps)
    return x @ W["lm_head.weight"].T, stats


def check_against_reference(name, cfg, logits, weights):
    """transformers' logits must match model.py's, with routing far from ties."""
    ref, stats = reference_forward(cfg, weights)
    err = float(np.abs(logits - ref).max() / np.abs(ref).max())
    top2 = -np.sort(-logits, -1)[:, :2]
    argmax_gap = float(((top2[:, 0] - top2[:, 1]) / np.abs(logits).max(-1)).min())
    ok = (err < 2e-5 and (logits.argmax(-1) == ref.argmax(-1)).all() and argmax_gap > MIN_ARGMAX_GAP
          and stats.get("expert_gap", np.inf) > MIN_ROUTE_GAP and stats.get("group_gap", np.inf) > MIN_ROUTE_GAP
          and stats.get("min_chosen", 1.0) > 0)
    print(f"  {name}: transformers vs model.py max|d|/max|ref| = {err:.2e}; min argmax gap {argmax_gap:.2e}; "
          + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(stats.items())))
    return ok, err, stats


# ---------------------------------------------------------------------------------------
# FP8 (DeepSeek-V3's published checkpoint form)
# ---------------------------------------------------------------------------------------

def is_fp8_weight(name):
    """V3's release stores every linear weight of the decoder layers in F8_E4M3; embeddings,
    lm_head, norms and the router stay BF16, the correction bias F32."""
    return (name.startswith("model.layers.") and name.endswith("_proj.weight")) or name.endswith("_proj_with_mqa.weight")


def fp8_quantize(w):
    """One float32 scale per 128x128 block (partial at the edges): scale_inv = amax / 448,
    q = e4m3(w / scale_inv); dequantised = float32(q) * scale_inv (in f32, no bf16 rounding)."""
    rows, cols = w.shape
    br, bc = -(-rows // FP8_BLOCK), -(-cols // FP8_BLOCK)
    scale = np.zeros((br, bc), np.float32)
    q = np.zeros(w.shape, ml_dtypes.float8_e4m3fn)
    for i in range(br):
        for j in range(bc):
            blk = w[i * FP8_BLOCK:(i + 1) * FP8_BLOCK, j * FP8_BLOCK:(j + 1) * FP8_BLOCK]
            s = np.float32(np.abs(blk).max() / FP8_MAX)
            scale[i, j] = s
            q[i * FP8_BLOCK:(i + 1) * FP8_BLOCK, j * FP8_BLOCK:(j + 1) * FP8_BLOCK] = \
                np.clip(blk / s, -FP8_MAX, FP8_MAX).astype(ml_dtypes.float8_e4m3fn)
    deq = q.astype(np.float32) * np.repeat(np.repeat(scale, FP8_BLOCK, 0), FP8_BLOCK, 1)[:rows, :cols]
    return q, scale, deq


def fp8_checkpoint(weights):
    """-> (tensors to save, the weights they mean in f32)."""
    saved, meant = {}, {}
    for name, w in weights.items():
        if is_fp8_weight(name):
            q, s, deq = fp8_quantize(w)
            saved[name], saved[name + "_scale_inv"], meant[name] = q, s, deq
        elif name.endswith("e_score_correction_bias"):
            saved[name] = meant[name] = w
        else:
            saved[name] = w.astype(ml_dtypes.bfloat16)
            meant[name] = saved[name].astype(np.float32)
    return saved, meant


# ---------------------------------------------------------------------------------------
# GGUF (llama.cpp's deepseek2)
# ---------------------------------------------------------------------------------------

def to_gguf_tensors(cfg, weights, split_kv_b):
    """HF tensors -> [(gguf name, f32 array, how)], as convert_hf_to_gguf.py's
    DeepseekV2Model.modify_tensors does: experts stacked to [n_expert, out, in]; kv_b_proj
    split per head into k_b (transposed: [n_head, kv_lora, nope]) and v_b ([n_head, v, kv_lora])
    unless legacy; e_score_correction_bias renamed to ...e_score_correction.bias."""
    n_layer, heads = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    nope, vdim = cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.DEEPSEEK2, n_layer)

    def gname(hf):
        g = tmap.get_name(hf, try_suffixes=(".weight", ".bias"))
        assert g is not None, hf
        return g

    out = [(gname("model.embed_tokens.weight"), weights["model.embed_tokens.weight"], ("plain", "model.embed_tokens.weight"))]
    for i in range(n_layer):
        p = f"model.layers.{i}."
        for hf in sorted(k for k in weights if k.startswith(p) and ".experts." not in k):
            w = weights[hf]
            if hf.endswith("kv_b_proj.weight") and split_kv_b:
                kv_b = w.reshape(heads, nope + vdim, -1)
                k_b = np.ascontiguousarray(kv_b[:, :nope].transpose(0, 2, 1))
                v_b = np.ascontiguousarray(kv_b[:, nope:])
                out.append((gname(hf.replace("kv_b_proj", "k_b_proj")), k_b, ("k_b", hf)))
                out.append((gname(hf.replace("kv_b_proj", "v_b_proj")), v_b, ("v_b", hf)))
            elif hf.endswith("e_score_correction_bias"):
                out.append((gname(hf.replace("e_score_correction_bias", "e_score_correction.bias")), w, ("plain", hf)))
            else:
                out.append((gname(hf), w, ("plain", hf)))
        if i >= cfg["first_k_dense_replace"]:
            for proj in ("down_proj", "gate_proj", "up_proj"):
                stacked = np.stack([weights[f"{p}mlp.experts.{e}.{proj}.weight"] for e in range(cfg["n_routed_experts"])])
                out.append((gname(f"{p}mlp.experts.{proj}.weight"), stacked, ("experts", f"{p}mlp.experts.", proj)))
    out.append((gname("model.norm.weight"), weights["model.norm.weight"], ("plain", "model.norm.weight")))
    out.append((gname("lm_head.weight"), weights["lm_head.weight"], ("plain", "lm_head.weight")))
    return out


def from_gguf_tensors(tensors):
    """Inverse of to_gguf_tensors on (possibly dequantised) data -> HF-named f32 weights."""
    weights, k_b = {}, {}
    for _, data, how in tensors:
        if how[0] == "plain":
            weights[how[1]] = data
        elif how[0] == "k_b":
            k_b[how[1]] = data
        elif how[0] == "v_b":
            kb = k_b.pop(how[1]).transpose(0, 2, 1)  # [n_head, nope, kv_lora]
            weights[how[1]] = np.concatenate([kb, data], 1).reshape(-1, data.shape[-1])
        else:
            for e in range(data.shape[0]):
                weights[f"{how[1]}{e}.{how[2]}.weight"] = data[e]
    assert not k_b
    return weights


def gguf_type_for(name, ndim, ftype):
    """convert_hf_to_gguf.py's choice: 1-D tensors, *_norm.weight, ffn_gate_inp and names not
    ending in .weight stay F32; the rest takes the file type (Q8_0 falls back to F16 where a
    row is not a multiple of 32)."""
    if ftype == "f32" or ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight") \
            or ".ffn_gate_inp." in name:
        return gguf.GGMLQuantizationType.F32
    return {"bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[ftype]


def byte_vocab():
    """GPT-2's byte-to-unicode map: token id b is the one-byte string b."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, extra = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    table = dict(zip(bs, map(chr, cs)))
    return [table[b] for b in range(256)]


def write_gguf(path, name, cfg, tensors, ftype, legacy):
    """Writes one GGUF; returns the tensors as stored, dequantised to f32."""
    arch = "deepseek2"
    w = gguf.GGUFWriter(path, arch)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(f"moatless-golden-{name}")
    rs = cfg["rope_scaling"]
    nope, rope, vdim, kv_lora = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    # TextModel.set_gguf_parameters
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    # MLA is written as MQA with one KV head (the latent); legacy files kept n_head.
    w.add_head_count_kv(cfg["num_key_value_heads"] if legacy else 1)
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_expert_used_count(cfg["num_experts_per_tok"])
    w.add_expert_group_count(cfg["n_group"])
    w.add_expert_group_used_count(cfg["topk_group"])
    if not legacy:  # the key postdates the legacy layout; readers default deepseek2 to softmax
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID if cfg["scoring_func"] == "sigmoid"
                                 else gguf.ExpertGatingFuncType.SOFTMAX)
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(float(rs["factor"]))
    w.add_rope_scaling_orig_ctx_len(rs["original_max_position_embeddings"])
    if not legacy:
        w.add_rope_scaling_yarn_beta_fast(float(rs["beta_fast"]))
        w.add_rope_scaling_yarn_beta_slow(float(rs["beta_slow"]))
    w.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                     "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[ftype])
    # DeepseekV2Model.set_gguf_parameters
    w.add_leading_dense_block_count(cfg["first_k_dense_replace"])
    w.add_vocab_size(cfg["vocab_size"])
    if cfg["q_lora_rank"]:
        w.add_q_lora_rank(cfg["q_lora_rank"])
    w.add_kv_lora_rank(kv_lora)
    if legacy:
        w.add_key_length(nope + rope)
        w.add_value_length(vdim)
    else:
        w.add_key_length(kv_lora + rope)
        w.add_value_length(kv_lora)
        w.add_key_length_mla(nope + rope)
        w.add_value_length_mla(vdim)
    w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
    w.add_expert_count(cfg["n_routed_experts"])
    w.add_expert_shared_count(cfg["n_shared_experts"])
    w.add_expert_weights_scale(float(cfg["routed_scaling_factor"]))
    if cfg["norm_topk_prob"]:
        w.add_expert_weights_norm(True)
    w.add_rope_dimension_count(rope)
    w.add_rope_scaling_yarn_log_mul(0.1 * rs["mscale_all_dim"])
    stored = finish_gguf(w, cfg, tensors, ftype)
    verify_gguf(path, stored)
    return [(g, deq, how) for g, _, _, deq, how in stored]


def finish_gguf(w, cfg, tensors, ftype):
    """Writes the byte tokenizer's keys and the tensors (encode's form, returned) after the
    model's keys, and closes the file."""
    # Tokenizer: 256 byte tokens. llama.cpp requires tokenizer.ggml.merges for "gpt2" and
    # gguf-py cannot write an empty array, so there is one merge whose result is not in the
    # vocabulary: llama.cpp then falls back to the byte tokens, i.e. token id == byte.
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(byte_vocab())
    w.add_token_types([gguf.TokenType.NORMAL] * 256)
    w.add_token_merges(["Ġ Ġ"])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_add_bos_token(False)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    stored = encode(tensors, ftype)
    for gname, raw, qtype, _, _ in stored:
        w.add_tensor(gname, raw, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return stored


def encode(tensors, ftype):
    """-> [(gguf name, raw data, ggml type, the data as stored dequantised to f32, how)]."""
    out = []
    for gname, data, how in tensors:
        qtype = gguf_type_for(gname, data.ndim, ftype)
        try:
            raw = gguf.quants.quantize(data, qtype)
        except gguf.QuantError:
            qtype = gguf.GGMLQuantizationType.F16
            raw = gguf.quants.quantize(data, qtype)
        deq = gguf.quants.dequantize(raw, qtype).reshape(data.shape).astype(np.float32)
        out.append((gname, raw, qtype, deq, how))
    return out


def verify_gguf(path, stored):
    """Reads the file back with gguf-py's reader: same names, types and values."""
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "deepseek2"
    by_name = {t.name: t for t in reader.tensors}
    assert list(by_name) == [s[0] for s in stored]
    for gname, _, qtype, data, _ in stored:
        t = by_name[gname]
        assert t.tensor_type == qtype, (gname, t.tensor_type, qtype)
        assert list(t.shape) == list(reversed(data.shape)), (gname, t.shape, data.shape)  # ne0 first
        back = gguf.quants.dequantize(t.data, qtype).reshape(data.shape)
        assert np.array_equal(back, data), gname


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------

def save_hf(folder, cfg, tensors):
    os.makedirs(folder, exist_ok=True)
    first = ("architectures", "model_type")
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({**{k: cfg[k] for k in first}, **{k: v for k, v in cfg.items() if k not in first}}, f, indent=2)
        f.write("\n")
    save_file(dict(sorted(tensors.items())), os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})


def save_logits(path, logits):
    assert logits.shape == (len(TOKENS), 256) and logits.dtype == np.float32 and np.isfinite(logits).all()
    np.save(path, logits)


def reload_check(folder, cfg, logits):
    """transformers reading our config.json + model.safetensors gives the same logits (up to
    f32 rounding: the loaded weights sit in memory differently, so matmul blocking differs)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    patch_v2_softmax_scale(model, cfg)
    with torch.no_grad():
        again = model(torch.tensor([TOKENS]), use_cache=False).logits[0].numpy()
    err = float(np.abs(again - logits).max() / np.abs(logits).max())
    assert err < 1e-6, f"{folder}: reloaded by transformers, max|d|/max|ref| = {err}"


def variants(name, cfg, weights):
    """Other encodings of a model whose weights differ from f32: {variant: weights meant}."""
    if name != "v3":
        return {}
    q8 = encode(to_gguf_tensors(cfg, weights, split_kv_b=True), "q8_0")
    return {"q8_0": from_gguf_tensors([(g, deq, how) for g, _, _, deq, how in q8]),
            "fp8": fp8_checkpoint(weights)[1]}


def pick_seed(name, cfg, model, round_bf16):
    """First seed from SEEDS[name] whose routing and argmax are far from ties in every
    variant (so that a correct implementation cannot pick different experts or tokens by
    rounding), and whose routing options change some selections (bias, groups).
    -> (seed, weights, logits, {variant: (weights, logits)})."""
    for seed in range(SEEDS[name], SEEDS[name] + 200):
        weights = init_weights(model, seed, round_bf16)
        logits = hf_logits(model, weights)
        ok, _, stats = check_against_reference(f"{name} seed {seed}", cfg, logits, weights)
        if cfg["model_type"] == "deepseek_v3":
            ok = ok and stats["bias_changes"] > 0 and stats["group_changes"] > 0
        if cfg["topk_method"] == "group_limited_greedy":
            ok = ok and stats["group_changes"] > 0
        extra = {}
        for variant, meant in (variants(name, cfg, weights) if ok else {}).items():
            extra[variant] = (meant, hf_logits(model, meant))
            ok = ok and check_against_reference(f"{name} {variant}", cfg, extra[variant][1], meant)[0]
        if ok:
            return seed, weights, logits, extra
    raise SystemExit(f"{name}: no seed in range gives clear margins")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, numpy {np.__version__}")
    if os.path.isdir(args.out):
        for entry in os.listdir(args.out):
            path = os.path.join(args.out, entry)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif entry != "README.md":
                os.remove(path)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tokens.json"), "w") as f:
        json.dump(TOKENS, f)
        f.write("\n")
    manifest = {}
    for name, cfg in MODELS.items():
        folder = os.path.join(args.out, name)
        model = build_hf(cfg)
        seed, weights, logits, extra = pick_seed(name, cfg, model, round_bf16=(name == "v2_lite"))
        save_hf(folder, cfg, weights)
        save_logits(os.path.join(folder, "logits.npy"), logits)
        reload_check(folder, cfg, logits)
        entry = {"seed": seed, "files": {}}

        # model-f32.gguf: the current layout; its weights are the safetensors' bit for bit.
        tensors = to_gguf_tensors(cfg, weights, split_kv_b=True)
        stored = write_gguf(os.path.join(folder, "model-f32.gguf"), name, cfg, tensors, "f32", legacy=False)
        back = from_gguf_tensors(stored)
        assert back.keys() == weights.keys() and all(np.array_equal(back[k], weights[k]) for k in weights)

        if name == "v2_lite":
            # BF16, and BF16 in the legacy layout (unsplit attn_kv_b): the weights are bf16
            # values, so both are exact and logits.npy applies to them too.
            bf16 = write_gguf(os.path.join(folder, "model-bf16.gguf"), name, cfg, tensors, "bf16", legacy=False)
            back = from_gguf_tensors(bf16)
            assert all(np.array_equal(back[k], weights[k]) for k in weights)
            legacy = write_gguf(os.path.join(folder, "model-bf16-legacy.gguf"), name, cfg,
                                to_gguf_tensors(cfg, weights, split_kv_b=False), "bf16", legacy=True)
            back = from_gguf_tensors(legacy)
            assert all(np.array_equal(back[k], weights[k]) for k in weights)

        if name == "v3":
            # Q8_0: its own reference, from the weights as stored (Q8_0 / F16 / F32).
            q8 = write_gguf(os.path.join(folder, "model-q8_0.gguf"), name, cfg, tensors, "q8_0", legacy=False)
            q8_weights, q8_logits = extra["q8_0"]
            back = from_gguf_tensors(q8)
            assert all(np.array_equal(back[k], q8_weights[k]) for k in weights)
            save_logits(os.path.join(folder, "logits-q8_0.npy"), q8_logits)

            # v3_fp8: the same model as DeepSeek-V3 publishes it (F8_E4M3 + 128x128 scales).
            fp8_cfg = dict(cfg, torch_dtype="bfloat16", quantization_config={
                "activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                "weight_block_size": [FP8_BLOCK, FP8_BLOCK]})
            saved, meant = fp8_checkpoint(weights)
            assert all(np.array_equal(meant[k], extra["fp8"][0][k]) for k in weights)
            fp8_logits = extra["fp8"][1]
            fp8_folder = os.path.join(args.out, "v3_fp8")
            save_hf(fp8_folder, fp8_cfg, saved)
            save_logits(os.path.join(fp8_folder, "logits.npy"), fp8_logits)
            manifest["v3_fp8"] = {"seed": seed, "files": {}}
        manifest[name] = entry

    for name in manifest:
        folder = os.path.join(args.out, name)
        for f in sorted(os.listdir(folder)):
            manifest[name]["files"][f] = os.path.getsize(os.path.join(folder, f))
            os.chmod(os.path.join(folder, f), 0o644)
    total = sum(sum(m["files"].values()) for m in manifest.values())
    print(json.dumps(manifest, indent=1))
    print(f"wrote {args.out}: {total} bytes")


if __name__ == "__main__":
    main()
