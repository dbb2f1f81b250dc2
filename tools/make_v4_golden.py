#!/usr/bin/env python3
"""Writes tests/data/goldens/v4/: a tiny random DeepSeek-V4 model (V4-Flash / V4-Pro form: sliding
window + compressed sparse attention (CSA, ratio 4, with the lightning indexer) + heavily
compressed attention (HCA, ratio 128), attention sinks, grouped low-rank output projection,
manifold-constrained hyper-connections, sqrtsoftplus MoE with a hash-routed layer, SwiGLU clamp)
and its reference logits, computed by an implementation we did not write: Hugging Face
transformers' own DeepseekV4ForCausalLM (transformers 5.23.0, f32, eager attention), cross-checked
against a plain numpy (f64) transcription of DeepSeek's V4 inference/model.py (prefill path).

    /tmp/toolsvenv/bin/pip install torch transformers==5.23.0 safetensors gguf==0.19.0 numpy
    /tmp/toolsvenv/bin/python tools/make_v4_golden.py [--converter LLAMA_CPP_DIR] [--gguf-only]

Every V4 feature runs: 4 layers with compress ratios [0, 4, 128, 4] (sliding, CSA, HCA, CSA),
sliding_window 16, index_topk 8, and 320 tokens, so the window slides, the CSA layers pool 80
overlapping blocks of which the indexer keeps 8 per query, and two HCA blocks (tokens 0..127,
128..255) close. The compressed layers use YaRN (factor 16 over an original context of 32) on
compress_rope_theta 160000; the sliding layer plain RoPE on rope_theta 10000. Layer 0 routes by a
random token -> experts table (tid2eid); some experts' and the shared expert's gate / up weights
are scaled so that the SwiGLU clamp (swiglu_limit 10) bites (counted and ablated below).
Files (tests/data/goldens/README.md, "v4/"):

  config.json        DeepSeek's released form (compress_ratios, num_hash_layers, qk_rope_head_dim,
                     rope_scaling), which transformers 5.23 folds into its own fields
  model.safetensors  f32 (tid2eid int64), DeepSeek's released tensor names (embed.weight,
                     layers.N.attn.wq_a.weight, layers.N.ffn.experts.E.w1.weight,
                     layers.N.hc_attn_fn, hc_head_fn, head.weight, ...), the names llama.cpp's
                     converter (conversion/deepseek.py, DeepseekV4Model) reads; transformers
                     loads them through its deepseek_v4 conversion mapping (checked: the same
                     logits). transformers' own save_pretrained does not write this layout (it
                     keeps the "model." prefix and renames attn.kv_norm to attn.norm), so this
                     script writes the file itself.
  tokens.json        the 320 input ids (the shared 48 of ../tokens.json, then 272 seeded bytes)
  logits.npy         f32 [320, 256]: transformers' logits, one forward pass, no cache. The same
                     model run with transformers' cache (prefill 101 then one token at a time;
                     chunks of 37) agrees within 1e-5 of max|logit| (asserted; printed)
  indexer_topk.npy   int32 [2, 320, 8]: per CSA layer (layers 1 and 3) and query, the compressed
                     blocks the indexer selects, ascending; -1 pads rows with fewer than 8 visible
                     blocks (block b pools tokens 4b-4..4b+3, overlapping, and is visible from
                     token 4b+3 on)
  model-f32.gguf     llama.cpp `deepseek4`, written by llama.cpp's own converter
                     (LLAMA_CPP_DIR/convert_hf_to_gguf.py, DeepseekV4Model, --outtype f32) from
                     config.json + model.safetensors: all F32 (blk.0.ffn_gate_tid2eid I32), the
                     byte tokenizer of the other goldens. Three converter methods are replaced
                     (write_gguf says which and why: the routed experts are stacked as F32 where
                     the converter repacks released FP4 ones to MXFP4); verify_gguf reads it back
                     with gguf-py 0.19 and checks every key llama.cpp's deepseek4 loader reads and
                     every tensor's name, ne, type and data against tables written out here from
                     llama.cpp's src/models/deepseek4.cpp and the safetensors file.
                     --gguf-only rewrites just this file from the folder as it is.

The seed is the first from FIRST_SEED whose selections (indexer top-8, expert top-2) and argmax are
far from ties, and for which transformers and the model.py transcription agree. Nothing here is
needed to build, run or test the C++.
"""

import argparse
import copy
import hashlib
import importlib.metadata
import json
import math
import os
import re
import subprocess
import sys

import gguf
import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import MIN_ARGMAX_GAP, MIN_ROUTE_GAP, byte_vocab  # noqa: E402  (the goldens' margins and byte alphabet)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDENS = os.path.join(ROOT, "tests", "data", "goldens")
OUT = os.path.join(GOLDENS, "v4")
N_TOKENS = 320
# The goldens' shared 48 tokens (../tokens.json, make_goldens.TOKENS), then seeded bytes (the same
# byte vocabulary: id = byte).
with open(os.path.join(GOLDENS, "tokens.json")) as _f:
    SHARED_TOKENS = json.load(_f)
assert len(SHARED_TOKENS) == 48
TOKENS = SHARED_TOKENS + [int(t) for t in np.random.default_rng(4).integers(0, 256, N_TOKENS - len(SHARED_TOKENS))]

# DeepSeek-V4-Flash's released config.json, key for key and in its order (quantization_config and
# expert_dtype left out: the weights here are f32), at a tiny size. compress_ratios has one entry
# per layer (the releases add one per MTP layer; num_nextn_predict_layers is 0 here).
CFG = {
    "architectures": ["DeepseekV4ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "hc_eps": 1e-06,
    "hc_mult": 4,
    "hc_sinkhorn_iters": 20,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 64,
    "index_head_dim": 32,
    "index_n_heads": 8,
    "index_topk": 8,
    "initializer_range": 0.02,
    "max_position_embeddings": 512,  # = factor x original, as V4's 1048576 = 16 x 65536
    "model_type": "deepseek_v4",
    "moe_intermediate_size": 32,
    "n_routed_experts": 8,
    "n_shared_experts": 1,
    "norm_topk_prob": True,
    "num_attention_heads": 4,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 4,
    "num_hash_layers": 1,
    "num_key_value_heads": 1,
    "num_nextn_predict_layers": 0,
    "o_groups": 2,
    "o_lora_rank": 32,
    "q_lora_rank": 32,
    "qk_rope_head_dim": 16,
    "rms_norm_eps": 1e-06,
    # original 32: DeepSeek's correction range is [floor(-1.23), ceil(1.09)] -> [0, 2] over the 8
    # rotary pairs (round() would give [0, 1]): pair 0 keeps its frequency, pair 1 is blended
    # 50/50, pairs 2..7 are divided by 16.
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 16, "original_max_position_embeddings": 32,
                     "type": "yarn"},
    "rope_theta": 10000,
    "routed_scaling_factor": 1.5,
    "scoring_func": "sqrtsoftplus",
    "sliding_window": 16,
    "swiglu_limit": 10.0,
    "tie_word_embeddings": False,
    "topk_method": "noaux_tc",
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 256,
    "compress_rope_theta": 160000,
    "compress_ratios": [0, 4, 128, 4],
}
# index_n_heads 8, not 4: a block whose dot products with every indexer head are negative scores
# exactly 0 after the ReLU (1 in 16 blocks with 4 heads), and a query with only one or two heads of
# positive weight has fewer than 8 blocks of positive score, so its 8th and 9th scores are both
# exactly 0: a tie that no margin can clear, in ~22 rows of every seed tried with 4 heads. With 8
# heads such zeros are 1 in 256 and most seeds have no tie (v32 took 8 for the same reason).
LAYER_TYPES = ["sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention",
               "compressed_sparse_attention"]
FIRST_SEED = 4000
MIN_INDEX_GAP = 1e-4  # 8th minus 9th indexer score over max|score| of the row (v32: 1e-3 over 3 x 48 rows;
#                       here 2 x 288 rows of up to 80 blocks: 1e-4 is still ~100x the f32 noise)
# SwiGLU clamp: routed expert E's w1 / w3 are multiplied by EXPERT_GAIN[E] (and its w2 divided by
# the gain squared, so the output keeps its size); the shared expert's by SHARED_GAIN. With the
# FFN input near unit RMS and w ~ N(0, 1/fan_in), pre-activations are ~ N(0, gain^2), so the
# gains 4..8 push some past 10. reference_forward counts the clamped values and main() asserts
# that turning the clamp off changes the logits.
EXPERT_GAIN = [1.0, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0]
SHARED_GAIN = 5.0

# DeepSeek's released name (under layers.N.) -> transformers' (under model.layers.N.). The
# routed experts (ffn.experts.E.w1 / w3 / w2) are fused by transformers into mlp.experts.gate_up_proj
# [E, 2F, D] (w1 rows first) and mlp.experts.down_proj [E, D, F].
LAYER_NAMES = {
    "hc_attn_fn": "attn_hc.fn", "hc_attn_base": "attn_hc.base", "hc_attn_scale": "attn_hc.scale",
    "hc_ffn_fn": "ffn_hc.fn", "hc_ffn_base": "ffn_hc.base", "hc_ffn_scale": "ffn_hc.scale",
    "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn.attn_sink": "self_attn.sinks",
    "attn.wq_a.weight": "self_attn.q_a_proj.weight",
    "attn.q_norm.weight": "self_attn.q_a_norm.weight",
    "attn.wq_b.weight": "self_attn.q_b_proj.weight",
    "attn.wkv.weight": "self_attn.kv_proj.weight",
    "attn.kv_norm.weight": "self_attn.kv_norm.weight",
    "attn.wo_a.weight": "self_attn.o_a_proj.weight",
    "attn.wo_b.weight": "self_attn.o_b_proj.weight",
    "attn.compressor.ape": "self_attn.compressor.position_bias",
    "attn.compressor.wkv.weight": "self_attn.compressor.kv_proj.weight",
    "attn.compressor.wgate.weight": "self_attn.compressor.gate_proj.weight",
    "attn.compressor.norm.weight": "self_attn.compressor.kv_norm.weight",
    "attn.indexer.wq_b.weight": "self_attn.compressor.indexer.q_b_proj.weight",
    "attn.indexer.weights_proj.weight": "self_attn.compressor.indexer.scorer.weights_proj.weight",
    "attn.indexer.compressor.ape": "self_attn.compressor.indexer.position_bias",
    "attn.indexer.compressor.wkv.weight": "self_attn.compressor.indexer.kv_proj.weight",
    "attn.indexer.compressor.wgate.weight": "self_attn.compressor.indexer.gate_proj.weight",
    "attn.indexer.compressor.norm.weight": "self_attn.compressor.indexer.kv_norm.weight",
    "ffn.gate.weight": "mlp.gate.weight",
    "ffn.gate.bias": "mlp.gate.e_score_correction_bias",
    "ffn.gate.tid2eid": "mlp.gate.tid2eid",
    "ffn.shared_experts.w1.weight": "mlp.shared_experts.gate_proj.weight",
    "ffn.shared_experts.w2.weight": "mlp.shared_experts.down_proj.weight",
    "ffn.shared_experts.w3.weight": "mlp.shared_experts.up_proj.weight",
}
ROOT_NAMES = {
    "embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight", "head.weight": "lm_head.weight",
    "hc_head_fn": "model.hc_head.hc_fn", "hc_head_base": "model.hc_head.hc_base",
    "hc_head_scale": "model.hc_head.hc_scale",
}
HF_LAYER_NAMES = {v: k for k, v in LAYER_NAMES.items()}
HF_ROOT_NAMES = {v: k for k, v in ROOT_NAMES.items()}


# ---------------------------------------------------------------------------------------
# transformers
# ---------------------------------------------------------------------------------------

def build_hf(cfg):
    """DeepseekV4ForCausalLM from the released-form config, with transformers' reading of it checked."""
    config = transformers.DeepseekV4Config.from_dict(copy.deepcopy(cfg))
    config._attn_implementation = "eager"
    assert config.layer_types == LAYER_TYPES, config.layer_types
    assert config.mlp_layer_types == ["hash_moe", "moe", "moe", "moe"], config.mlp_layer_types
    assert config.compress_rates == {"compressed_sparse_attention": 4, "heavily_compressed_attention": 128}
    assert config.qk_rope_head_dim == cfg["qk_rope_head_dim"] and config.partial_rotary_factor == 0.25
    rp = config.rope_parameters
    assert rp["main"] == {"rope_type": "default", "rope_theta": 10000, "partial_rotary_factor": 0.25}, rp
    assert rp["compress"]["rope_type"] == "yarn" and rp["compress"]["rope_theta"] == 160000, rp
    assert rp["compress"]["attention_factor"] == 1.0, rp  # V4 never scales cos / sin by YaRN's mscale
    torch.manual_seed(0)  # every parameter and buffer is overwritten by the seeded weights
    model = transformers.DeepseekV4ForCausalLM(config).to(torch.float32).eval()
    for i, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        assert attn.scaling == cfg["head_dim"] ** -0.5 and attn.sliding_window == cfg["sliding_window"]
        assert attn.rope_layer_type == ("main" if i == 0 else "compress")
        assert layer.mlp.is_hash == (i < cfg["num_hash_layers"])
    rs = model.model.rotary_emb
    assert rs.main_attention_scaling == 1.0 and rs.compress_attention_scaling == 1.0
    for kind in ("main", "compress"):
        ours = rope_freqs(CFG, kind)
        theirs = getattr(rs, f"{kind}_inv_freq").double().numpy()
        assert np.allclose(theirs, ours, rtol=1e-6, atol=0), (kind, theirs, ours)
    return model


def released_shapes(model):
    """{released name: (shape, dtype)} from transformers' state dict (experts split per expert)."""
    out = {}
    for name, t in model.state_dict().items():
        if name in HF_ROOT_NAMES:
            out[HF_ROOT_NAMES[name]] = (tuple(t.shape), np.float32)
            continue
        m = re.match(r"model\.layers\.(\d+)\.(.+)$", name)
        assert m, name
        p, rest = f"layers.{m.group(1)}.", m.group(2)
        if rest == "mlp.experts.gate_up_proj":
            n_exp, f2, d = t.shape
            for e in range(n_exp):
                out[f"{p}ffn.experts.{e}.w1.weight"] = ((f2 // 2, d), np.float32)
                out[f"{p}ffn.experts.{e}.w3.weight"] = ((f2 // 2, d), np.float32)
        elif rest == "mlp.experts.down_proj":
            for e in range(t.shape[0]):
                out[f"{p}ffn.experts.{e}.w2.weight"] = (tuple(t.shape[1:]), np.float32)
        else:
            out[p + HF_LAYER_NAMES[rest]] = (tuple(t.shape), np.int64 if rest.endswith("tid2eid") else np.float32)
    return out


def hf_state(weights):
    """Released names -> transformers' state dict (torch tensors)."""
    state = {}
    for name, w in weights.items():
        if name in ROOT_NAMES:
            state[ROOT_NAMES[name]] = torch.from_numpy(w)
            continue
        m = re.match(r"layers\.(\d+)\.(.+)$", name)
        p, rest = f"model.layers.{m.group(1)}.", m.group(2)
        if rest.startswith("ffn.experts."):
            continue
        state[p + LAYER_NAMES[rest]] = torch.from_numpy(w)
    for i in range(CFG["num_hidden_layers"]):
        w = lambda e, k: torch.from_numpy(weights[f"layers.{i}.ffn.experts.{e}.{k}.weight"])  # noqa: E731
        n_exp = CFG["n_routed_experts"]
        state[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.stack(
            [torch.cat([w(e, "w1"), w(e, "w3")]) for e in range(n_exp)])
        state[f"model.layers.{i}.mlp.experts.down_proj"] = torch.stack([w(e, "w2") for e in range(n_exp)])
    return state


def load_weights(model, weights):
    missing, unexpected = model.load_state_dict(hf_state(weights), strict=True)
    assert not missing and not unexpected, (missing, unexpected)


def indexer_hooks(model, captured):
    hooks = []
    for i, layer in enumerate(model.model.layers):
        if LAYER_TYPES[i] == "compressed_sparse_attention":
            ix = layer.self_attn.compressor.indexer
            hooks.append(ix.register_forward_hook(
                lambda mod, args, out, i=i: captured.setdefault(i, []).append(out[0].numpy().copy())))
    return hooks


def hf_forward(model, weights):
    """-> (logits [T, vocab], {CSA layer: raw indexer output [T, k]}): one pass, no cache."""
    load_weights(model, weights)
    captured = {}
    hooks = indexer_hooks(model, captured)
    try:
        with torch.no_grad():
            logits = model(torch.tensor([TOKENS]), use_cache=False).logits[0].numpy().copy()
    finally:
        for h in hooks:
            h.remove()
    return logits, {i: v[0] for i, v in captured.items()}


def hf_cached(model, chunks):
    """The model run with transformers' cache (DeepseekV4CSACache / HCACache per layer), the
    tokens fed in chunks of the given sizes -> (logits [T, vocab], selection table)."""
    assert sum(chunks) == len(TOKENS)
    captured = {}
    hooks = indexer_hooks(model, captured)
    cache, rows, pos = None, [], 0
    try:
        with torch.no_grad():
            for n in chunks:
                out = model(torch.tensor([TOKENS[pos:pos + n]]), past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                rows.append(out.logits[0].numpy().copy())
                pos += n
    finally:
        for h in hooks:
            h.remove()
    raw = {}
    for i, outs in captured.items():  # per chunk [n, k_chunk], k_chunk = min(8, blocks so far)
        raw[i] = np.concatenate([np.pad(o, ((0, 0), (0, CFG["index_topk"] - o.shape[1])), constant_values=-1)
                                 for o in outs])
    return np.concatenate(rows), selection_table(raw)


def selection_table(raw):
    """{CSA layer: raw indexer output [T, k]} -> int32 [n_csa, T, k]: the valid (causal) blocks,
    ascending, -1 padded. transformers marks picks past the causal limit -1 already."""
    k, n = CFG["index_topk"], len(TOKENS)
    layers = sorted(raw)
    out = np.full((len(layers), n, k), -1, np.int32)
    for j, i in enumerate(layers):
        for t in range(n):
            keep = sorted(int(b) for b in raw[i][t] if b >= 0)
            visible = (t + 1) // 4
            assert len(keep) == min(visible, k) and all(b < visible for b in keep), (i, t, keep)
            out[j, t, :len(keep)] = keep
    return out


# ---------------------------------------------------------------------------------------
# DeepSeek's V4 inference/model.py (prefill, start_pos 0), transcribed to numpy (float64)
# ---------------------------------------------------------------------------------------

def rope_freqs(cfg, kind):
    """model.py precompute_freqs_cis: compressed layers YaRN on compress_rope_theta, the sliding
    layer plain RoPE on rope_theta (original_seq_len 0 there)."""
    dim = cfg["qk_rope_head_dim"]
    base = cfg["rope_theta"] if kind == "main" else cfg["compress_rope_theta"]
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    if kind == "main":
        return freqs
    rs = cfg["rope_scaling"]

    def corr(rot):
        return dim * math.log(rs["original_max_position_embeddings"] / (rot * 2 * math.pi)) / (2 * math.log(base))

    low, high = max(math.floor(corr(rs["beta_fast"])), 0), min(math.ceil(corr(rs["beta_slow"])), dim - 1)
    if low == high:
        high += 0.001
    smooth = 1 - np.clip((np.arange(dim // 2) - low) / (high - low), 0, 1)
    return freqs / rs["factor"] * (1 - smooth) + freqs * smooth


def rope_tail(x, ang, inverse=False):
    """model.py apply_rotary_emb on x[..., -rd:]: consecutive pairs (2i, 2i+1) rotated by ang[..., i]."""
    rd = 2 * ang.shape[-1]
    a = x[..., -rd:].reshape(*x.shape[:-1], rd // 2, 2)
    c, s = np.cos(ang), np.sin(ang) * (-1 if inverse else 1)
    rot = np.stack([a[..., 0] * c - a[..., 1] * s, a[..., 0] * s + a[..., 1] * c], -1).reshape(*x.shape[:-1], rd)
    return np.concatenate([x[..., :-rd], rot], -1)


def rms(x, w, eps):
    y = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return y if w is None else y * w


def softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def compressor(cfg, W, p, x, ratio, head_dim, ang):
    """model.py Compressor.forward, start_pos 0: gated pooling of every complete block of `ratio`
    tokens (ratio 4: overlapping, each block also pools the previous block's first-half
    projections; block 0 has none), RMSNorm, RoPE at the block's first position. Skipped as in
    transformers: the Hadamard rotation (indexer) and FP8 / FP4 rounding."""
    n = x.shape[0] // ratio
    kv = (x @ W[p + "wkv.weight"].T)[:n * ratio].reshape(n, ratio, -1)
    score = (x @ W[p + "wgate.weight"].T)[:n * ratio].reshape(n, ratio, -1) + W[p + "ape"]
    if ratio == 4:  # overlap_transform
        d = head_dim
        okv, osc = np.zeros((n, 2 * ratio, d)), np.full((n, 2 * ratio, d), -np.inf)
        okv[:, ratio:], osc[:, ratio:] = kv[..., d:], score[..., d:]
        okv[1:, :ratio], osc[1:, :ratio] = kv[:-1, :, :d], score[:-1, :, :d]
        kv, score = okv, osc
    pooled = (kv * softmax(score, 1)).sum(1)
    return rope_tail(rms(pooled, W[p + "norm.weight"], cfg["rms_norm_eps"]), ang[0:n * ratio:ratio])


def indexer(cfg, W, p, x, qr, ang, stats):
    """model.py Indexer.forward, start_pos 0 -> boolean [T, blocks] of the selected blocks."""
    n, heads, dim, k = x.shape[0], cfg["index_n_heads"], cfg["index_head_dim"], cfg["index_topk"]
    q = rope_tail((qr @ W[p + "indexer.wq_b.weight"].T).reshape(n, heads, dim), ang[:, None])
    keys = compressor(cfg, W, p + "indexer.compressor.", x, 4, dim, ang)
    w = (x @ W[p + "indexer.weights_proj.weight"].T) * dim ** -0.5 * heads ** -0.5
    score = (np.maximum(np.einsum("thd,sd->ths", q, keys), 0) * w[..., None]).sum(1)  # [T, blocks]
    keep = np.zeros(score.shape, bool)
    for t in range(n):
        row = score[t, :(t + 1) // 4]
        order = np.argsort(-row, kind="stable")
        keep[t, order[:k]] = True
        if len(row) > k:
            gap = float((row[order[k - 1]] - row[order[k]]) / np.abs(row).max())
            stats["index_gap"] = min(stats.get("index_gap", np.inf), gap)
            stats["index_not_recent"] = stats.get("index_not_recent", 0) + int(
                set(order[:k].tolist()) != set(range(len(row) - k, len(row))))
    return keep


def attention(cfg, W, p, x, layer, stats):
    n, heads, hd, eps = x.shape[0], cfg["num_attention_heads"], cfg["head_dim"], cfg["rms_norm_eps"]
    ratio = cfg["compress_ratios"][layer]
    ang = np.arange(n)[:, None] * rope_freqs(cfg, "compress" if ratio else "main")  # [T, pairs]
    qr = rms(x @ W[p + "wq_a.weight"].T, W[p + "q_norm.weight"], eps)
    q = rms((qr @ W[p + "wq_b.weight"].T).reshape(n, heads, hd), None, eps)
    q = rope_tail(q, ang[:, None])
    kv = rope_tail(rms(x @ W[p + "wkv.weight"].T, W[p + "kv_norm.weight"], eps), ang)
    t, s = np.arange(n)[:, None], np.arange(n)[None]
    keys, allowed = kv, (s <= t) & (s > t - cfg["sliding_window"])  # the window: model.py window_size
    if ratio:
        comp = compressor(cfg, W, p + "compressor.", x, ratio, hd, ang)
        visible = np.arange(comp.shape[0])[None] < (np.arange(n)[:, None] + 1) // ratio
        chosen = indexer(cfg, W, p, x, qr, ang, stats) if ratio == 4 else visible
        stats.setdefault("selected", {})[layer] = chosen
        keys, allowed = np.concatenate([kv, comp]), np.concatenate([allowed, chosen & visible], 1)
    logits = np.where(allowed[:, None], np.einsum("thd,sd->ths", q, keys) * hd ** -0.5, -np.inf)
    m = logits.max(-1)  # [T, H]
    e = np.exp(logits - m[..., None])
    sink = np.exp(W[p + "attn_sink"] - m)  # sparse_attn: the sink adds to the denominator only
    o = np.einsum("ths,sd->thd", e / (e.sum(-1) + sink)[..., None], keys)
    stats.setdefault("sink_share", []).append(float((sink / (e.sum(-1) + sink)).mean()))
    o = rope_tail(o, ang[:, None], inverse=True)  # de-rotate the value's rope part at the query position
    g, r = cfg["o_groups"], cfg["o_lora_rank"]
    o = np.einsum("tgd,grd->tgr", o.reshape(n, g, -1), W[p + "wo_a.weight"].reshape(g, r, -1))
    return o.reshape(n, g * r) @ W[p + "wo_b.weight"].T


def expert(cfg, x, w1, w2, w3, stats, tag):
    lim = cfg["swiglu_limit"]
    gate, up = x @ w1.T, x @ w3.T
    stats[f"clamped_gate_{tag}"] = stats.get(f"clamped_gate_{tag}", 0) + int((gate > lim).sum())
    stats[f"clamped_up_{tag}"] = stats.get(f"clamped_up_{tag}", 0) + int((np.abs(up) > lim).sum())
    gate, up = np.minimum(gate, lim), np.clip(up, -lim, lim)
    return (gate / (1 + np.exp(-gate)) * up) @ w2.T


def moe(cfg, W, p, x, layer, stats):
    """model.py MoE / Gate: sqrtsoftplus scores; hash layers take tid2eid[token], the others the
    top-k of score + bias; weights = the chosen unbiased scores, normalised, x route_scale."""
    k = cfg["num_experts_per_tok"]
    scores = np.sqrt(np.logaddexp(0, x @ W[p + "gate.weight"].T))
    if layer < cfg["num_hash_layers"]:
        idx = W[p + "gate.tid2eid"][TOKENS]
    else:
        biased = scores + W[p + "gate.bias"]
        order = np.argsort(-biased, -1, kind="stable")
        idx = order[:, :k]
        ranked = np.take_along_axis(biased, order, -1)
        stats["expert_gap"] = min(stats.get("expert_gap", np.inf), float((ranked[:, k - 1] - ranked[:, k]).min()))
        plain = np.sort(np.argsort(-scores, -1, kind="stable")[:, :k], -1)
        stats["bias_changes"] = stats.get("bias_changes", 0) + int((np.sort(idx, -1) != plain).any(-1).sum())
    wts = np.take_along_axis(scores, idx, -1)
    wts = wts / wts.sum(-1, keepdims=True) * cfg["routed_scaling_factor"]
    y = np.zeros_like(x)
    for e in range(cfg["n_routed_experts"]):
        rows, slot = np.nonzero(idx == e)
        if len(rows):
            q = f"{p}experts.{e}."
            y[rows] += wts[rows, slot, None] * expert(cfg, x[rows], W[q + "w1.weight"], W[q + "w2.weight"],
                                                      W[q + "w3.weight"], stats, "routed")
    q = p + "shared_experts."
    return y + expert(cfg, x, W[q + "w1.weight"], W[q + "w2.weight"], W[q + "w3.weight"], stats, "shared")


def hc_pre(cfg, x, fn, scale, base):
    """model.py Block.hc_pre + hc_split_sinkhorn: x [T, hc, D] -> (collapsed [T, D], post, comb)."""
    hc, eps, heps = cfg["hc_mult"], cfg["rms_norm_eps"], cfg["hc_eps"]
    flat = x.reshape(x.shape[0], -1)
    mixes = (flat @ fn.T) / np.sqrt((flat * flat).mean(-1, keepdims=True) + eps)
    pre = 1 / (1 + np.exp(-(mixes[:, :hc] * scale[0] + base[:hc]))) + heps
    post = 2 / (1 + np.exp(-(mixes[:, hc:2 * hc] * scale[1] + base[hc:2 * hc])))
    comb = mixes[:, 2 * hc:].reshape(-1, hc, hc) * scale[2] + base[2 * hc:].reshape(hc, hc)
    comb = softmax(comb, -1) + heps
    comb = comb / (comb.sum(-2, keepdims=True) + heps)
    for _ in range(cfg["hc_sinkhorn_iters"] - 1):
        comb = comb / (comb.sum(-1, keepdims=True) + heps)
        comb = comb / (comb.sum(-2, keepdims=True) + heps)
    return (pre[..., None] * x).sum(1), post, comb


def hc_post(out, residual, post, comb):
    """model.py Block.hc_post: stream k = post[k] * out + sum_j comb[j, k] * residual[j]."""
    return post[..., None] * out[:, None] + np.einsum("tjk,tjd->tkd", comb, residual)


def reference_forward(cfg, weights):
    """Logits [T, vocab] the way DeepSeek's V4 model.py computes a prefill from position 0 (f64),
    plus selections and statistics."""
    W = {k: (v if v.dtype == np.int64 else v.astype(np.float64)) for k, v in weights.items()}
    eps, hc = cfg["rms_norm_eps"], cfg["hc_mult"]
    stats = {}
    x = np.repeat(W["embed.weight"][TOKENS][:, None], hc, 1)  # [T, hc, D]
    for i in range(cfg["num_hidden_layers"]):
        p = f"layers.{i}."
        h, post, comb = hc_pre(cfg, x, W[p + "hc_attn_fn"], W[p + "hc_attn_scale"], W[p + "hc_attn_base"])
        x = hc_post(attention(cfg, W, p + "attn.", rms(h, W[p + "attn_norm.weight"], eps), i, stats), x, post, comb)
        h, post, comb = hc_pre(cfg, x, W[p + "hc_ffn_fn"], W[p + "hc_ffn_scale"], W[p + "hc_ffn_base"])
        x = hc_post(moe(cfg, W, p + "ffn.", rms(h, W[p + "ffn_norm.weight"], eps), i, stats), x, post, comb)
    flat = x.reshape(x.shape[0], -1)
    mixes = (flat @ W["hc_head_fn"].T) / np.sqrt((flat * flat).mean(-1, keepdims=True) + eps)
    pre = 1 / (1 + np.exp(-(mixes * W["hc_head_scale"] + W["hc_head_base"]))) + cfg["hc_eps"]
    h = rms((pre[..., None] * x).sum(1), W["norm.weight"], eps)
    return h @ W["head.weight"].T, stats


def reference_table(stats):
    sel = stats["selected"]
    layers = [i for i, t in enumerate(LAYER_TYPES) if t == "compressed_sparse_attention"]
    out = np.full((len(layers), len(TOKENS), CFG["index_topk"]), -1, np.int32)
    for j, i in enumerate(layers):
        for t in range(len(TOKENS)):
            b = np.nonzero(sel[i][t])[0]
            out[j, t, :len(b)] = b
    return out


# ---------------------------------------------------------------------------------------
# weights, seed
# ---------------------------------------------------------------------------------------

def init_weights(shapes, seed):
    """Linear weights N(0, 1/fan_in) (hc_*_fn included), embeddings N(0, 1), every RMSNorm weight
    1 + N(0, 0.2^2), attention sinks N(1, 1), compressor / indexer ape N(0, 0.5^2), hc bases
    N(0, 0.5^2), hc scales U(0.5, 1.5), router bias U(-0.2, 0.2), tid2eid: for each token 2
    distinct experts at random. Then the SwiGLU gains (EXPERT_GAIN, SHARED_GAIN)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in sorted(shapes):
        shape, dtype = shapes[name]
        if name.endswith("tid2eid"):
            w = np.stack([rng.permutation(CFG["n_routed_experts"])[:shape[1]] for _ in range(shape[0])])
        elif name.endswith("attn_sink"):
            w = 1.0 + rng.standard_normal(shape)
        elif name.endswith(".ape"):
            w = 0.5 * rng.standard_normal(shape)
        elif name.endswith("_base"):
            w = 0.5 * rng.standard_normal(shape)
        elif name.endswith("_scale"):
            w = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gate.bias"):
            w = rng.uniform(-0.2, 0.2, shape)
        elif name.endswith("norm.weight"):
            w = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name == "embed.weight":
            w = rng.standard_normal(shape)
        else:
            assert len(shape) == 2 and (name.endswith(".weight") or name.endswith("_fn")), name
            w = rng.standard_normal(shape) / math.sqrt(shape[1])
        out[name] = w.astype(dtype)
    for i in range(CFG["num_hidden_layers"]):
        for e, gain in enumerate(EXPERT_GAIN):
            p = f"layers.{i}.ffn.experts.{e}."
            out[p + "w1.weight"] *= np.float32(gain)
            out[p + "w3.weight"] *= np.float32(gain)
            out[p + "w2.weight"] /= np.float32(gain * gain)
        p = f"layers.{i}.ffn.shared_experts."
        out[p + "w1.weight"] *= np.float32(SHARED_GAIN)
        out[p + "w3.weight"] *= np.float32(SHARED_GAIN)
        out[p + "w2.weight"] /= np.float32(SHARED_GAIN * SHARED_GAIN)
    return out


def margins(stats, logits):
    top2 = -np.sort(-logits, -1)[:, :2]
    argmax_gap = float(((top2[:, 0] - top2[:, 1]) / np.abs(logits).max(-1)).min())
    ok = (argmax_gap > MIN_ARGMAX_GAP and stats["index_gap"] > MIN_INDEX_GAP and stats["expert_gap"] > MIN_ROUTE_GAP
          and stats["bias_changes"] > 0 and all(stats[f"clamped_{a}_{b}"] > 0 for a in ("gate", "up")
                                                 for b in ("routed", "shared")))
    return ok, argmax_gap


def pick_seed(model):
    """First seed whose model.py forward is far from every tie and for which transformers agrees:
    the same selections, logits within 2e-5 of max|ref|, the same argmax."""
    shapes = released_shapes(model)
    for seed in range(FIRST_SEED, FIRST_SEED + 500):
        weights = init_weights(shapes, seed)
        ref, stats = reference_forward(CFG, weights)
        ok, argmax_gap = margins(stats, ref)
        print(f"  seed {seed}: index gap {stats['index_gap']:.2e}, expert gap {stats['expert_gap']:.2e}, "
              f"argmax gap {argmax_gap:.2e}" + ("" if ok else " (too close)"))
        if not ok:
            continue
        logits, raw = hf_forward(model, weights)
        table = selection_table(raw)
        err = float(np.abs(logits - ref).max() / np.abs(ref).max())
        same = np.array_equal(table, reference_table(stats))
        print(f"    transformers vs model.py: max|d|/max|ref| = {err:.2e}; same selections {same}")
        if err < 2e-5 and same and (logits.argmax(-1) == ref.argmax(-1)).all() and margins(stats, logits)[0]:
            return seed, weights, logits, table, err, stats
    raise SystemExit("no seed in range gives clear margins")


# ---------------------------------------------------------------------------------------
# ablations: each feature changes the logits
# ---------------------------------------------------------------------------------------

def ablations(model, weights, logits):
    """max|logits - ablated| for: no SwiGLU clamp, no sinks, the indexer keeping every visible block,
    no ape (compressor position bias). Restores the model afterwards."""
    out = {}
    layers = model.model.layers

    def run(w=weights):
        return hf_forward(model, w)[0]

    mlps = [m for layer in layers for m in (layer.mlp.experts, layer.mlp.shared_experts)]
    for m in mlps:
        m.limit = float("inf")
    out["no_swiglu_clamp"] = float(np.abs(run() - logits).max())
    for m in mlps:
        m.limit = CFG["swiglu_limit"]
    w = {k: (np.full_like(v, -1e30) if k.endswith("attn_sink") else v) for k, v in weights.items()}
    out["no_attention_sink"] = float(np.abs(run(w) - logits).max())
    w = {k: (np.zeros_like(v) if k.endswith(".ape") else v) for k, v in weights.items()}
    out["no_ape"] = float(np.abs(run(w) - logits).max())
    ixs = [layer.self_attn.compressor.indexer for layer in layers if hasattr(layer.self_attn.compressor, "indexer")]
    for ix in ixs:
        ix.index_topk = len(TOKENS)
    out["indexer_keeps_all"] = float(np.abs(run() - logits).max())
    for ix in ixs:
        ix.index_topk = CFG["index_topk"]
    load_weights(model, weights)
    return out


# ---------------------------------------------------------------------------------------
# llama.cpp's converter
# ---------------------------------------------------------------------------------------

def check_converter(llama_dir, folder):
    """llama.cpp's converter (a checkout's conversion/deepseek.py, DeepseekV4Model, with its own
    gguf-py) maps every tensor name of model.safetensors (_map_dsv4_tensor_name; routed experts by
    its regex) and finds every config.json key its class reads as hparams["..."]. The conversion
    itself is write_gguf's."""
    harness = f"""
import inspect, json, re, sys
sys.path.insert(0, {os.path.join(llama_dir, 'gguf-py')!r}); sys.path.insert(0, {llama_dir!r})
import gguf, conversion.deepseek as ds
from safetensors import safe_open
keys = re.findall(r'hparams\\["(\\w+)"\\]', inspect.getsource(ds.DeepseekV4Model))
out = {{"tensors": {{}}, "hparams": sorted(set(keys))}}
for name in safe_open({os.path.join(folder, 'model.safetensors')!r}, "np").keys():
    m = re.match(r"layers\\.(\\d+)\\.", name)
    bid = int(m.group(1)) if m else None
    if re.match(r"layers\\.\\d+\\.ffn\\.experts\\.\\d+\\.w[123]\\.weight$", name):
        out["tensors"][name] = "ffn_*_exps (stacked)"
        continue
    key, suffix = ds.DeepseekV4Model._map_dsv4_tensor_name(object(), name, bid)
    out["tensors"][name] = gguf.TENSOR_NAMES[key].format(bid=bid) + suffix
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"llama.cpp's converter rejects {folder}:\n{run.stderr[-4000:]}")
    got = json.loads(run.stdout.strip().splitlines()[-1])
    missing = [k for k in got["hparams"] if k not in CFG]
    assert not missing, f"config.json lacks keys llama.cpp's converter reads: {missing}"
    print(f"  llama.cpp's converter ({llama_dir}) maps all {len(got['tensors'])} tensor names and finds all "
          f"{len(got['hparams'])} config keys it reads")
    return got["tensors"]


# ---------------------------------------------------------------------------------------
# GGUF (llama.cpp's deepseek4), written by llama.cpp's own converter
# ---------------------------------------------------------------------------------------

LLAMA_CPP = "/tmp/llama-src/llama_cpp_python-0.3.36/vendor/llama.cpp"
GGUF_NAME = "model-f32.gguf"
GGUF_MODEL_NAME = "moatless-golden-v4"


def print_keys(title, got_keys, keys):
    """Prints `title`, then every key of a GGUF (type, value, how llama.cpp reads it, from
    `keys` where it is there); the token lists and the chat template by their size."""
    print(title)
    for key in sorted(got_keys):
        typ, value = got_keys[key]
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
            value = f"[{len(value)} items]"
        elif key == "tokenizer.chat_template":
            value = f"<{len(value)} characters>"
        print(f"  {key}: {typ} = {value!r}" + (f" ({keys[key][2]})" if key in keys else ""))


def check_keys(got_keys, want_keys, other_keys):
    """Asserts that a GGUF's keys {key: (type, value)} are exactly `want_keys` ({key: (type,
    value, reader)}) and `other_keys` (names only), each wanted one of its type and value."""
    extra = set(got_keys) - set(want_keys) - other_keys
    missing = (set(want_keys) | other_keys) - set(got_keys)
    assert not extra and not missing, (extra, missing)
    for key, (typ, value, _) in want_keys.items():
        got_type, got = got_keys[key]
        assert got_type == typ, (key, got_type, typ)
        if typ.endswith("FLOAT32"):
            value = np.float32(value).tolist()
        assert got == value, (key, got if len(str(got)) < 200 else "...", value if len(str(value)) < 200 else "...")


def write_gguf(llama_dir, folder, extra_args=(), out_name=GGUF_NAME):
    """Runs llama.cpp's convert_hf_to_gguf.py (DeepseekV4Model, with the checkout's own gguf-py)
    on config.json + model.safetensors, --outtype f32 (plus extra_args, e.g. ["--mtp"]), writing
    folder/out_name, and returns the path of the GGUF. Three
    methods of the class are replaced, nothing else:
      - set_vocab: the byte tokenizer of the other goldens (make_goldens.finish_gguf's keys; the
        golden has no tokenizer files);
      - _write_mxfp4_expert_tensor: the converter repacks each layer's routed experts from the
        released FP4 weights and their .scale tensors into one stacked MXFP4 tensor
        [n_expert, rows, cols]; an f32 golden has neither, so the same stacking (expert e at
        index e, the same name) is written as F32;
      - prepare_tensors: the class's own one calls the base and then marks the file
        MOSTLY_MXFP4_MOE; here only the base runs, so general.file_type stays ALL_F32 (0).
    Every other key and tensor (names, hash-layer bias dropped, tid2eid cast to I32, F32 kept for
    f32 sources, the chat template the class adds) is the converter's own doing."""
    out = os.path.join(folder, out_name)
    if os.path.exists(out):
        os.remove(out)
    harness = f"""
import inspect, sys
import numpy as np
sys.path.insert(0, {os.path.join(llama_dir, 'gguf-py')!r}); sys.path.insert(0, {llama_dir!r})
import gguf, conversion.deepseek as ds
from conversion.base import LazyTorchTensor
V4 = ds.DeepseekV4Model
assert "repack_mxfp4_blocks" in inspect.getsource(V4._write_mxfp4_expert_tensor)
assert "MOSTLY_MXFP4_MOE" in inspect.getsource(V4.prepare_tensors)

def set_vocab(self):
    w = self.gguf_writer
    w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("default"); w.add_token_list({byte_vocab()!r})
    w.add_token_types([gguf.TokenType.NORMAL] * 256); w.add_token_merges(["Ġ Ġ"])
    w.add_bos_token_id({CFG['bos_token_id']}); w.add_eos_token_id({CFG['eos_token_id']}); w.add_add_bos_token(False)

def write_f32_experts(self, bid, proj, tensor_key):
    names = [f"layers.{{bid}}.ffn.experts.{{e}}.{{proj}}.weight" for e in range(self.hparams["n_routed_experts"])]
    data = np.stack([LazyTorchTensor.to_eager(self.model_tensors[n]()).numpy() for n in names])
    assert data.dtype == np.float32
    self.gguf_writer.add_tensor(self.format_tensor_name(tensor_key, bid), data)
    return names

def prepare_tensors(self):
    super(V4, self).prepare_tensors()

V4.set_vocab = set_vocab
V4._write_mxfp4_expert_tensor = write_f32_experts
V4.prepare_tensors = prepare_tensors
sys.argv = ["convert_hf_to_gguf.py", {folder!r}, "--outtype", "f32", "--outfile", {out!r},
            "--model-name", {GGUF_MODEL_NAME!r}] + {list(extra_args)!r}
import runpy; runpy.run_path({os.path.join(llama_dir, 'convert_hf_to_gguf.py')!r}, run_name="__main__")
"""
    run = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True)
    if run.returncode != 0 or not os.path.exists(out):
        raise SystemExit(f"llama.cpp's convert_hf_to_gguf.py failed on {folder}:\n{run.stderr[-4000:]}")
    return out


def expected_gguf_keys(cfg):
    """{key: (GGUF value type, value, read by llama.cpp as)} for the model's keys: every key
    llama.cpp's loader reads for deepseek4 (llama_model_base::load_hparams, then
    llama_model_deepseek4::load_arch_hparams; names from src/llama-arch.cpp LLM_KV_NAMES, types
    from the llama_hparams field each lands in: get_key requires the exact type), "required" where
    the load fails without it, plus what the converter writes that llama.cpp does not read."""
    a, n, hc = "deepseek4.", cfg["num_hidden_layers"], cfg["hc_mult"]
    rs = cfg["rope_scaling"]
    u, f = "UINT32", "FLOAT32"
    keys = {
        # llama_model_base::load_hparams
        "context_length": (u, cfg["max_position_embeddings"], "required"),
        "embedding_length": (u, cfg["hidden_size"], "required"),
        "block_count": (u, n, "required"),
        "embedding_length_out": (u, cfg["hidden_size"] * hc, "optional"),
        "expert_count": (u, cfg["n_routed_experts"], "optional"),
        "expert_used_count": (u, cfg["num_experts_per_tok"], "optional"),
        "attention.head_count": (u, cfg["num_attention_heads"], "optional"),
        "attention.head_count_kv": (u, cfg["num_key_value_heads"], "optional"),
        "attention.key_length": (u, cfg["head_dim"], "optional"),
        "attention.value_length": (u, cfg["head_dim"], "optional"),
        "rope.dimension_count": (u, cfg["qk_rope_head_dim"], "optional"),
        "rope.freq_base": (f, cfg["rope_theta"], "optional"),
        "rope.scaling.type": ("STRING", "yarn", "optional"),
        "rope.scaling.factor": (f, rs["factor"], "optional"),
        "rope.scaling.original_context_length": (u, rs["original_max_position_embeddings"], "optional"),
        # llama_model_deepseek4::load_arch_hparams
        "attention.layer_norm_rms_epsilon": (f, cfg["rms_norm_eps"], "required"),
        "attention.q_lora_rank": (u, cfg["q_lora_rank"], "required"),
        "attention.sliding_window": (u, cfg["sliding_window"], "required"),
        "expert_feed_forward_length": (u, cfg["moe_intermediate_size"], "required"),
        "expert_shared_count": (u, cfg["n_shared_experts"], "required"),
        "expert_weights_scale": (f, cfg["routed_scaling_factor"], "required"),
        "expert_weights_norm": ("BOOL", cfg["norm_topk_prob"], "required"),
        "swiglu_clamp_exp": ("ARRAY/FLOAT32", [cfg["swiglu_limit"]] * n, "required"),
        "swiglu_clamp_shexp": ("ARRAY/FLOAT32", [cfg["swiglu_limit"]] * n, "optional"),
        "attention.indexer.head_count": (u, cfg["index_n_heads"], "required"),
        "attention.indexer.key_length": (u, cfg["index_head_dim"], "required"),
        "attention.indexer.top_k": (u, cfg["index_topk"], "required"),
        "attention.output_group_count": (u, cfg["o_groups"], "required"),
        "attention.output_lora_rank": (u, cfg["o_lora_rank"], "required"),
        "attention.compress_rope_freq_base": (f, cfg["compress_rope_theta"], "required"),
        "hyper_connection.count": (u, hc, "required"),
        "hyper_connection.sinkhorn_iterations": (u, cfg["hc_sinkhorn_iters"], "required"),
        "hyper_connection.epsilon": (f, cfg["hc_eps"], "required"),
        "hash_layer_count": (u, cfg["num_hash_layers"], "required"),
        "attention.compress_ratios": ("ARRAY/INT32", cfg["compress_ratios"], "required"),
        "expert_gating_func": (u, 4, "required"),  # LLAMA_EXPERT_GATING_FUNC_TYPE_SQRT_SOFTPLUS
        # written by the converter, not read by this llama.cpp (its defaults are 32 / 1)
        "rope.scaling.yarn_beta_fast": (f, rs["beta_fast"], "not read"),
        "rope.scaling.yarn_beta_slow": (f, rs["beta_slow"], "not read"),
    }
    out = {a + k: v for k, v in keys.items()}
    out.update({
        "general.architecture": ("STRING", "deepseek4", "required"),
        "general.file_type": (u, 0, "optional"),  # LLAMA_FTYPE_ALL_F32
        "general.quantization_version": (u, 2, "optional"),
        "tokenizer.ggml.model": ("STRING", "gpt2", "required"),
        "tokenizer.ggml.pre": ("STRING", "default", "optional"),
        "tokenizer.ggml.tokens": ("ARRAY/STRING", byte_vocab(), "required"),
        "tokenizer.ggml.token_type": ("ARRAY/INT32", [1] * 256, "optional"),
        "tokenizer.ggml.merges": ("ARRAY/STRING", ["Ġ Ġ"], "required"),
        "tokenizer.ggml.bos_token_id": (u, cfg["bos_token_id"], "optional"),
        "tokenizer.ggml.eos_token_id": (u, cfg["eos_token_id"], "optional"),
        "tokenizer.ggml.add_bos_token": ("BOOL", False, "optional"),
    })
    return out


# the converter's own naming keys (values from --model-name and the folder's name) and the chat
# template DeepseekV4Model adds from llama.cpp's models/templates/deepseek-ai-DeepSeek-V4.jinja
GGUF_OTHER_KEYS = {"general.type", "general.name", "general.version", "general.size_label", "tokenizer.chat_template"}


def expected_gguf_tensors(cfg, weights):
    """{GGUF name: (ne, ggml type, data as stored (numpy, row-major: shape = reversed ne),
    [safetensors names])}, written out from llama.cpp's llama_model_deepseek4::load_arch_tensors
    (every create_tensor's name from src/llama-arch.cpp and its ne) and DeepSeek's released names;
    not from the converter. A 2-D safetensors [out, in] is ne {in, out}, data unchanged; routed
    experts stack on a new outer axis (ne2 = expert); tid2eid is cast to int32."""
    n_embd, n_vocab, hd = cfg["hidden_size"], cfg["vocab_size"], cfg["head_dim"]
    n_head, q_lora, hc = cfg["num_attention_heads"], cfg["q_lora_rank"], cfg["hc_mult"]
    o_groups, o_lora = cfg["o_groups"], cfg["o_lora_rank"]
    n_exp, n_used, n_ff = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["moe_intermediate_size"]
    n_ff_sh = n_ff * cfg["n_shared_experts"]
    ix_heads, ix_hd = cfg["index_n_heads"], cfg["index_head_dim"]
    hc_dim, hc_mix = hc * n_embd, (2 + hc) * hc
    out = {}

    def put(gname, ne, src, typ="F32"):
        if isinstance(src, str):
            data, srcs = weights[src], [src]
        else:
            data, srcs = np.stack([weights[s] for s in src]), list(src)
        data = data.astype(np.int32) if typ == "I32" else data
        assert data.dtype == (np.int32 if typ == "I32" else np.float32), gname
        # llama.cpp checks ne exactly, except attn_output_a (TENSOR_ALLOW_RESHAPE: the file's 2-D
        # {n_head*hd/o_groups, o_groups*o_lora} is taken as {n_head*hd/o_groups, o_lora, o_groups})
        assert list(reversed(data.shape)) == ne, (gname, data.shape, ne)
        out[gname] = (ne, typ, data, srcs)

    put("token_embd.weight", [n_embd, n_vocab], "embed.weight")
    put("output_norm.weight", [n_embd], "norm.weight")
    put("output.weight", [n_embd, n_vocab], "head.weight")
    put("output_hc_fn.weight", [hc_dim, hc], "hc_head_fn")
    put("output_hc_base.weight", [hc], "hc_head_base")
    put("output_hc_scale.weight", [1], "hc_head_scale")
    for i in range(cfg["num_hidden_layers"]):
        b, p = f"blk.{i}.", f"layers.{i}."
        put(b + "attn_norm.weight", [n_embd], p + "attn_norm.weight")
        put(b + "attn_sinks.weight", [n_head], p + "attn.attn_sink")
        put(b + "attn_q_a.weight", [n_embd, q_lora], p + "attn.wq_a.weight")
        put(b + "attn_q_a_norm.weight", [q_lora], p + "attn.q_norm.weight")
        put(b + "attn_q_b.weight", [q_lora, n_head * hd], p + "attn.wq_b.weight")
        put(b + "attn_kv.weight", [n_embd, hd], p + "attn.wkv.weight")
        put(b + "attn_kv_a_norm.weight", [hd], p + "attn.kv_norm.weight")
        put(b + "attn_output_a.weight", [n_head * hd // o_groups, o_lora * o_groups], p + "attn.wo_a.weight")
        put(b + "attn_output_b.weight", [o_groups * o_lora, n_embd], p + "attn.wo_b.weight")
        for x in ("attn", "ffn"):
            put(b + f"hc_{x}_fn.weight", [hc_dim, hc_mix], p + f"hc_{x}_fn")
            put(b + f"hc_{x}_base.weight", [hc_mix], p + f"hc_{x}_base")
            put(b + f"hc_{x}_scale.weight", [3], p + f"hc_{x}_scale")
        ratio = cfg["compress_ratios"][i]
        if ratio:
            coff = 2 if ratio == 4 else 1
            put(b + "attn_compressor_kv.weight", [n_embd, coff * hd], p + "attn.compressor.wkv.weight")
            put(b + "attn_compressor_gate.weight", [n_embd, coff * hd], p + "attn.compressor.wgate.weight")
            put(b + "attn_compressor_ape.weight", [coff * hd, ratio], p + "attn.compressor.ape")
            put(b + "attn_compressor_norm.weight", [hd], p + "attn.compressor.norm.weight")
            if ratio == 4:
                put(b + "indexer.proj.weight", [n_embd, ix_heads], p + "attn.indexer.weights_proj.weight")
                put(b + "indexer.attn_q_b.weight", [q_lora, ix_heads * ix_hd], p + "attn.indexer.wq_b.weight")
                put(b + "indexer_compressor_kv.weight", [n_embd, 2 * ix_hd], p + "attn.indexer.compressor.wkv.weight")
                put(b + "indexer_compressor_gate.weight", [n_embd, 2 * ix_hd],
                    p + "attn.indexer.compressor.wgate.weight")
                put(b + "indexer_compressor_ape.weight", [2 * ix_hd, ratio], p + "attn.indexer.compressor.ape")
                put(b + "indexer_compressor_norm.weight", [ix_hd], p + "attn.indexer.compressor.norm.weight")
        put(b + "ffn_gate_inp.weight", [n_embd, n_exp], p + "ffn.gate.weight")
        if i < cfg["num_hash_layers"]:
            put(b + "ffn_gate_tid2eid.weight", [n_used, n_vocab], p + "ffn.gate.tid2eid", "I32")
        else:
            put(b + "exp_probs_b.bias", [n_exp], p + "ffn.gate.bias")
        put(b + "ffn_norm.weight", [n_embd], p + "ffn_norm.weight")
        experts = lambda w: [f"{p}ffn.experts.{e}.{w}.weight" for e in range(n_exp)]  # noqa: E731
        put(b + "ffn_gate_exps.weight", [n_embd, n_ff, n_exp], experts("w1"))
        put(b + "ffn_down_exps.weight", [n_ff, n_embd, n_exp], experts("w2"))
        put(b + "ffn_up_exps.weight", [n_embd, n_ff, n_exp], experts("w3"))
        put(b + "ffn_gate_shexp.weight", [n_embd, n_ff_sh], p + "ffn.shared_experts.w1.weight")
        put(b + "ffn_down_shexp.weight", [n_ff_sh, n_embd], p + "ffn.shared_experts.w2.weight")
        put(b + "ffn_up_shexp.weight", [n_embd, n_ff_sh], p + "ffn.shared_experts.w3.weight")
    used = sorted(s for v in out.values() for s in v[3])
    assert used == sorted(weights), "every safetensors tensor goes into exactly one GGUF tensor"
    return out


def field_value(field):
    """A GGUFReader field -> ("TYPE" or "ARRAY/TYPE", its value)."""
    return "/".join(gguf.GGUFValueType(t).name for t in field.types[:2]), field.contents()


def verify_gguf(path, cfg, weights):
    """Reads the GGUF back with gguf-py (0.19, the venv's; not the converter's copy) and checks it
    against llama.cpp's loader and the safetensors source: every key in expected_gguf_keys with
    its type and value (floats as f32), nothing else but GGUF_OTHER_KEYS; exactly the tensors of
    expected_gguf_tensors, each with its ne, type and data bit for bit."""
    reader = gguf.GGUFReader(path)
    want_keys = expected_gguf_keys(cfg)
    got_keys = {k: field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    check_keys(got_keys, want_keys, GGUF_OTHER_KEYS)
    assert got_keys["general.name"] == ("STRING", GGUF_MODEL_NAME)

    want = expected_gguf_tensors(cfg, weights)
    got = {t.name: t for t in reader.tensors}
    assert len(got) == len(reader.tensors) and set(got) == set(want), (set(got) ^ set(want))
    for gname, (ne, typ, data, _) in want.items():
        t = got[gname]
        assert t.tensor_type.name == typ, (gname, t.tensor_type.name, typ)
        assert [int(x) for x in t.shape] == ne, (gname, list(t.shape), ne)
        back = np.asarray(t.data)
        assert back.dtype == data.dtype and back.size == data.size, gname
        assert np.array_equal(back.reshape(data.shape), data), gname
    return want_keys, want, got_keys


def make_gguf(llama_dir, folder, weights):
    """check_converter, write_gguf, verify_gguf; prints the keys and the tensors."""
    check_converter(llama_dir, folder)
    path = write_gguf(llama_dir, folder)
    keys, tensors, got_keys = verify_gguf(path, CFG, weights)
    size = os.path.getsize(path)
    assert size < 2_500_000, size
    print(f"  {path}: {size} bytes, written by llama.cpp's convert_hf_to_gguf.py; read back with gguf-py "
          f"{importlib.metadata.version('gguf')}: {len(keys)} keys as llama.cpp's loader reads "
          f"them, {len(tensors)} tensors equal to model.safetensors")
    print_keys("GGUF keys (type, value, llama.cpp):", got_keys, keys)
    print("GGUF tensors (ne, type <- model.safetensors):")
    for gname, (ne, typ, _, srcs) in tensors.items():
        src = srcs[0] if len(srcs) == 1 else f"stack of {srcs[0]} .. {srcs[-1]}"
        print(f"  {gname} {ne} {typ} <- {src}")


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------

def write_folder(folder, weights, logits, table):
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(folder):
        os.remove(os.path.join(folder, f))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
        f.write("\n")
    save_file(dict(sorted(weights.items())), os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "tokens.json"), "w") as f:
        json.dump(TOKENS, f)
        f.write("\n")
    assert logits.shape == (len(TOKENS), CFG["vocab_size"]) and logits.dtype == np.float32 and np.isfinite(logits).all()
    np.save(os.path.join(folder, "logits.npy"), logits)
    assert table.dtype == np.int32
    np.save(os.path.join(folder, "indexer_topk.npy"), table)


def reload_check(folder, logits):
    """transformers reading config.json + model.safetensors (DeepSeek's names, through its
    conversion mapping) gives the same logits."""
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    assert model.config.layer_types == LAYER_TYPES
    with torch.no_grad():
        again = model(torch.tensor([TOKENS]), use_cache=False).logits[0].numpy()
    err = float(np.abs(again - logits).max() / np.abs(logits).max())
    assert err < 1e-6, f"{folder}: reloaded by transformers, max|d|/max|ref| = {err}"
    return err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--converter", metavar="LLAMA_CPP_DIR", default=LLAMA_CPP,
                    help="a llama.cpp checkout with DeepSeek-V4 support (default: llama-cpp-python 0.3.36's "
                         "vendor/llama.cpp, unpacked at %(default)s): its converter writes model-f32.gguf, after a "
                         "check that it maps every tensor name and finds every config key it reads")
    ap.add_argument("--gguf-only", action="store_true",
                    help="only (re)write and check model-f32.gguf from the folder's config.json + model.safetensors")
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.converter, "conversion", "deepseek.py")):
        raise SystemExit(f"{args.converter}: not a llama.cpp checkout with conversion/deepseek.py (see --converter)")
    if args.gguf_only:
        with open(os.path.join(args.out, "config.json")) as f:
            assert json.load(f) == CFG, "config.json is not this script's CFG: regenerate the folder"
        make_gguf(args.converter, args.out, load_file(os.path.join(args.out, "model.safetensors")))
        return
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, numpy {np.__version__}")
    assert transformers.__version__ == "5.23.0", "the checks below are written against transformers 5.23.0"
    n = len(TOKENS)

    model = build_hf(CFG)
    seed, weights, logits, table, err, stats = pick_seed(model)

    # The cached paths: prefill 101 tokens (not a multiple of 4: the CSA compressors carry a
    # partial block and the overlap state) then one token at a time; and chunks of 37 (chunk
    # ends straddle both HCA block ends). Same logits and same indexer selections as one pass.
    cached = {}
    for label, chunks in (("prefill 101 + 1 x 219", [101] + [1] * (n - 101)),
                          ("chunks of 37", [37] * (n // 37) + [n % 37])):
        got, got_table = hf_cached(model, chunks)
        d = float(np.abs(got - logits).max() / np.abs(logits).max())
        assert d < 1e-5, (label, d)
        assert np.array_equal(got_table, table), label
        assert (got.argmax(-1) == logits.argmax(-1)).all(), label
        cached[label] = d
        print(f"  cached, {label}: max|d|/max|ref| = {d:.2e}, same selections, same argmax")

    ablated = ablations(model, weights, logits)
    assert all(v > 1e-2 * np.abs(logits).max() for v in ablated.values()), ablated

    write_folder(args.out, weights, logits, table)
    reload_err = reload_check(args.out, logits)
    make_gguf(args.converter, args.out, weights)

    files = {}
    for f in sorted(os.listdir(args.out)):
        path = os.path.join(args.out, f)
        os.chmod(path, 0o644)
        with open(path, "rb") as fh:
            files[f] = {"bytes": os.path.getsize(path), "sha256": hashlib.sha256(fh.read()).hexdigest()[:16]}
    summary = {
        "seed": seed, "files": files, "total_bytes": sum(v["bytes"] for v in files.values()),
        "transformers_vs_model_py": err, "reload_vs_logits": reload_err, "cached_vs_full": cached,
        "max_abs_logit": float(np.abs(logits).max()),
        "ablations_max_abs_d": ablated,
        "index_gap": stats["index_gap"], "index_rows_not_most_recent": stats["index_not_recent"],
        "expert_gap": stats["expert_gap"], "bias_changes": stats["bias_changes"],
        "clamped": {k: v for k, v in stats.items() if k.startswith("clamped")},
        "sink_share_per_layer": [round(s, 4) for s in stats["sink_share"]],
    }
    print(json.dumps(summary, indent=1))
    print("tensors (layers 0-3: sliding / CSA / HCA / CSA; experts 1..7 as expert 0):")
    for name in sorted(weights):
        if not re.match(r"layers\.\d+\.ffn\.experts\.[1-9]", name):
            print(f"  {name} {list(weights[name].shape)} {weights[name].dtype}")


if __name__ == "__main__":
    main()
