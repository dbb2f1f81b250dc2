#!/usr/bin/env python3
"""Writes tests/data/goldens/v3_mtp/ (--arch v3, the default): the v3 golden model
(make_goldens.py) with one MTP layer added, as DeepSeek-V3 checkpoints carry it (config
num_nextn_predict_layers = 1, tensors model.layers.<num_hidden_layers>.*), and the reference
logits of its MTP module. --arch v32 writes tests/data/goldens/v32_mtp/ the same way from the
v32 golden (make_v32_golden.py): DeepSeek-V3.2's MTP layer is a whole V3.2 decoder layer, its
lightning indexer included (model.layers.<n>.self_attn.indexer.*, as vLLM's deepseek_mtp.py
runs it), so its attention keeps the index_topk = 12 keys the indexer picks among the 47
positions. (llama.cpp's deepseek32 graph_mtp runs that layer's attention dense instead: the
same logits only while a context is at most index_topk.)

DeepSeek's inference/model.py has no MTP forward and transformers' DeepseekV3 skips the
layer, so the reference is composed here the way vLLM's deepseek_mtp.py and llama.cpp's
deepseek2 graph_mtp run V3's MTP layer, with transformers' own modules for every part:

    h_i      = transformers' DeepseekV3Model(tokens).last_hidden_state  (after model.norm)
    x_i      = eh_proj([enorm(embed(t_i+1)); hnorm(h_i)])               (embed, shared head:
    y_i      = DeepseekV3DecoderLayer(layer_idx = 3)(x)  causal, RoPE at positions i
               (DeepseekV32DecoderLayer for v32)
    logits_i = shared_head.head(shared_head.norm(y_i))                   the checkpoint's)

predicting the token at i + 2 (positions 0 .. T-2 of tests/data/goldens/tokens.json).
embed_tokens and shared_head.head are copies of the model's embedding and lm_head, as in
DeepSeek-V3's checkpoint. Files:

  config.json, model.safetensors   the v3 golden's, plus the MTP layer (seeded random weights)
  logits.npy                       the model's logits (equal to v3/logits.npy)
  mtp_logits.npy                   f32 [T - 1, 256]: the MTP module's logits, row i from h_i and t_i+1
  greedy.json                      {"prompt": ids, "continuation": ids}: greedy decoding by
                                   transformers (full forward per token), for --spec mtp's
                                   check that drafting changes nothing

--arch v4 writes tests/data/goldens/v4_mtp/ from the DeepSeek-V4 golden (make_v4_golden.py), in
DeepSeek's released naming: the MTP layer is mtp.0.* (mtp.0.<rest> for each layers.L.<rest> of a
decoder layer, plus e_proj, h_proj, enorm, hnorm, norm and its own hc_head_fn / base / scale);
embed.weight and head.weight are the model's, shared, not copied. config.json has
num_nextn_predict_layers 1 and one more compress ratio, 0 (the layer attends over the sliding
window only: no compressor, no indexer), as the releases list one per MTP layer. The layer is
not hash-routed. The reference follows DeepSeek's V4 inference/model.py MTPBlock (llama.cpp's
deepseek4 graph_mtp computes the same: its converter's --mtp export joins e_proj / h_proj into
one eh_proj [D, 2D] and puts the MTP's hc_head_* at the root names graph_mtp reads), again with
transformers' modules:

    H_i      = the model's hc_mult streams after its last decoder layer   [hc, D] (hc_head's input)
    x_i      = e_proj(enorm(embed(t_i+1))) + h_proj(hnorm(H_i))          e broadcast over streams
    y_i      = DeepseekV4DecoderLayer(layer_idx = 4)(x)  causal within sliding_window 16, main RoPE
               (theta 10000, no YaRN) at positions i
    logits_i = head(norm(DeepseekV4HyperHead(y_i)))                      the MTP's hc_head and norm

over positions 0 .. T-2 of v4/tokens.json (T = 320, so the window slides), checked against
make_v4_golden's numpy transcription of model.py run on the same tensors. The seed is the first
from 63 whose MTP logits have every top-2 margin above 1e-3 of max|logit| and whose expert
selections are clear of ties. The files are v3_mtp's, plus tokens.json (v4's); logits.npy is
v4's and mtp_logits.npy is f32 [319, 256].

--arch v4 then writes two GGUFs into the folder with llama.cpp's own convert_hf_to_gguf.py
(make_v4_golden.write_gguf: --outtype f32, its three replaced methods), and --arch v4 --gguf
writes only these two from the folder as it is (every other file is left byte-identical,
checked by sha256):

  model-f32.gguf       the converter without --mtp: the main model (it skips the mtp.* tensors)
  mtp-model-f32.gguf   the converter with --mtp (llama.cpp's MTP-only draft export): embed / norm /
                       head, mtp.0.* as blk.<n_layer>.*, nextn.eh_proj = cat(e_proj, h_proj) as
                       Q8_0 (the converter forces it), nextn.enorm / hnorm / shared_head_norm, the
                       MTP's hc_head_* under the root output_hc_* names; block_count n_layer + 1,
                       nextn_predict_layers 1

both read back with the venv's gguf-py (v4_mtp_gguf says what is checked).

    /tmp/toolsvenv/bin/pip install torch transformers==5.23.0 safetensors numpy gguf==0.19.0 ml_dtypes
    /tmp/toolsvenv/bin/python tools/make_mtp_golden.py [--arch v3|v32|v4] [--gguf (v4 only)]

(gguf and ml_dtypes for v32 and v4: make_v32_golden.py / make_v4_golden.py import them.)
"""

import argparse
import copy
import hashlib
import json
import math
import os
import shutil
import sys
import types

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file
from transformers.models.deepseek_v3 import modeling_deepseek_v3
from transformers.models.deepseek_v32 import modeling_deepseek_v32
from transformers.models.deepseek_v4 import modeling_deepseek_v4

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDENS = os.path.join(ROOT, "tests", "data", "goldens")
SEEDS = {"v3": 61, "v32": 62, "v4": 63}
PROMPT_LEN, N_GEN = 8, 24
# transformers' modules of each architecture: (RMS norm, decoder layer)
MODULES = {
    "v3": (modeling_deepseek_v3.DeepseekV3RMSNorm, modeling_deepseek_v3.DeepseekV3DecoderLayer),
    "v32": (modeling_deepseek_v32.DeepseekV32RMSNorm, modeling_deepseek_v32.DeepseekV32DecoderLayer),
}


def mtp_weights(layer, rng, model_weights, n):
    """Seeded weights for the MTP layer's own tensors (HF names, under model.layers.n.) with
    the shapes of transformers' decoder layer `layer`, in make_goldens.py's distributions."""
    out = {}
    p = f"model.layers.{n}."
    for name, t in sorted(layer.state_dict().items()):
        shape = tuple(t.shape)
        if name.endswith("e_score_correction_bias"):
            w = rng.uniform(-0.15, 0.15, shape)
        elif name.endswith("k_norm.bias"):  # V3.2's indexer LayerNorm (make_v32_golden.py)
            w = 0.1 * rng.standard_normal(shape)
        elif "norm" in name:
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            w = rng.standard_normal(shape) / math.sqrt(shape[-1])
        w = w.astype(np.float32)
        # transformers 5 holds the experts fused ([E, 2F, D] gate rows first, [E, D, F]);
        # checkpoints (and moat's loader) name each expert's matrices
        if name == "mlp.experts.gate_up_proj":
            f = shape[1] // 2
            for e in range(shape[0]):
                out[f"{p}mlp.experts.{e}.gate_proj.weight"] = np.ascontiguousarray(w[e, :f])
                out[f"{p}mlp.experts.{e}.up_proj.weight"] = np.ascontiguousarray(w[e, f:])
        elif name == "mlp.experts.down_proj":
            for e in range(shape[0]):
                out[f"{p}mlp.experts.{e}.down_proj.weight"] = np.ascontiguousarray(w[e])
        else:
            out[p + name] = w
    d = model_weights["model.norm.weight"].shape[0]
    for norm in ("enorm", "hnorm", "shared_head.norm"):
        out[f"model.layers.{n}.{norm}.weight"] = (1.0 + 0.1 * rng.standard_normal(d)).astype(np.float32)
    out[f"model.layers.{n}.eh_proj.weight"] = (rng.standard_normal((d, 2 * d)) / math.sqrt(2 * d)).astype(np.float32)
    out[f"model.layers.{n}.embed_tokens.weight"] = model_weights["model.embed_tokens.weight"].copy()
    out[f"model.layers.{n}.shared_head.head.weight"] = model_weights["lm_head.weight"].copy()
    return out


class Mtp(torch.nn.Module):
    """The MTP module around transformers' decoder layer (module docstring)."""

    def __init__(self, config, n, arch):
        super().__init__()
        d = config.hidden_size
        rms_norm, decoder_layer = MODULES[arch]
        self.enorm = rms_norm(d, config.rms_norm_eps)
        self.hnorm = rms_norm(d, config.rms_norm_eps)
        self.eh_proj = torch.nn.Linear(2 * d, d, bias=False)
        if len(getattr(config, "mlp_layer_types", None) or []) == n:  # V3.2's list covers the decoder layers only
            config = copy.deepcopy(config)
            config.mlp_layer_types = list(config.mlp_layer_types) + ["sparse"]  # the MTP layer is a MoE layer
        self.layer = decoder_layer(config, layer_idx=n)
        self.head_norm = rms_norm(d, config.rms_norm_eps)
        self.head = torch.nn.Linear(d, config.vocab_size, bias=False)
        self.embed = torch.nn.Embedding(config.vocab_size, d)

    def load(self, weights, n):
        p = f"model.layers.{n}."
        t = lambda k: torch.from_numpy(np.ascontiguousarray(weights[p + k]))
        with torch.no_grad():
            self.enorm.weight.copy_(t("enorm.weight"))
            self.hnorm.weight.copy_(t("hnorm.weight"))
            self.eh_proj.weight.copy_(t("eh_proj.weight"))
            self.head_norm.weight.copy_(t("shared_head.norm.weight"))
            self.head.weight.copy_(t("shared_head.head.weight"))
            self.embed.weight.copy_(t("embed_tokens.weight"))
        layer = {k[len(p):]: torch.from_numpy(v) for k, v in weights.items() if k.startswith(p)}
        experts = self.layer.mlp.experts.gate_up_proj.shape[0]
        layer["mlp.experts.gate_up_proj"] = torch.stack(
            [torch.cat([layer[f"mlp.experts.{e}.gate_proj.weight"], layer[f"mlp.experts.{e}.up_proj.weight"]]) for e in range(experts)])
        layer["mlp.experts.down_proj"] = torch.stack([layer[f"mlp.experts.{e}.down_proj.weight"] for e in range(experts)])
        layer = {k: v for k, v in layer.items() if k in self.layer.state_dict()}
        missing, unexpected = self.layer.load_state_dict(layer, strict=True)
        assert not missing and not unexpected

    def forward(self, rotary, hidden, next_tokens):
        """hidden [1, T, D] (post-norm), next_tokens [1, T] -> logits [1, T, vocab]."""
        x = self.eh_proj(torch.cat([self.enorm(self.embed(next_tokens)), self.hnorm(hidden)], -1))
        T = x.shape[1]
        positions = torch.arange(T)[None]
        mask = torch.full((T, T), float("-inf")).triu(1)[None, None]
        y = self.layer(x, attention_mask=mask, position_ids=positions, position_embeddings=rotary(x, positions))
        return self.head(self.head_norm(y))


def load_model(arch, src, weights):
    """transformers' model of the source golden, with its weights."""
    if arch == "v3":
        return transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager").eval()
    import make_v32_golden  # noqa: E402 (its transformers model and expert fusing)
    model = make_v32_golden.build_hf(make_v32_golden.CFG)
    make_v32_golden.load_weights(model, weights)
    return model


def v3_mtp(arch, cfg, weights, tokens, ref_logits):
    """--arch v3 / v32 -> (transformers' model, all weights, MTP logits [T - 1, vocab])."""
    model = load_model(arch, os.path.join(GOLDENS, arch), weights)
    n = cfg["num_hidden_layers"]
    mtp = Mtp(model.config, n, arch).eval()
    all_weights = dict(weights)
    all_weights.update(mtp_weights(mtp.layer, np.random.default_rng(SEEDS[arch]), weights, n))
    mtp.load(all_weights, n)

    ids = torch.tensor([tokens])
    with torch.no_grad():
        out = model.model(ids, use_cache=False)
        hidden = out.last_hidden_state                                    # [1, T, D], after model.norm
        logits = model.lm_head(hidden)[0].numpy()
        err = float(np.abs(logits - ref_logits).max() / np.abs(ref_logits).max())
        assert err < 1e-6, f"the model's logits moved from {arch}/logits.npy: {err}"
        mtp_logits = mtp(model.model.rotary_emb, hidden[:, :-1], ids[:, 1:])[0].numpy().astype(np.float32)
        if arch == "v32":  # the MTP layer's sparse selection matters: dense attention differs
            indexer = mtp.layer.self_attn.indexer
            indexer.index_topk = len(tokens)
            dense = mtp(model.model.rotary_emb, hidden[:, :-1], ids[:, 1:])[0].numpy()
            indexer.index_topk = cfg["index_topk"]
            change = float(np.abs(dense - mtp_logits).max() / np.abs(mtp_logits).max())
            print(f"the MTP layer with every key instead of its top {cfg['index_topk']}: logits change {change:.3f} of max|logit|")
            assert change > 0.01
    return model, all_weights, mtp_logits


# ---------------------------------------------------------------------------------------
# DeepSeek-V4 (--arch v4): released names, mtp.0.*
# ---------------------------------------------------------------------------------------

# the MTP block's own tensors (under mtp.0.) -> V4Mtp's parameters
V4_MTP_OWN = {
    "e_proj.weight": "e_proj.weight", "h_proj.weight": "h_proj.weight", "enorm.weight": "enorm.weight",
    "hnorm.weight": "hnorm.weight", "norm.weight": "norm.weight",
    "hc_head_fn": "hc_head.hc_fn", "hc_head_base": "hc_head.hc_base", "hc_head_scale": "hc_head.hc_scale",
}


def top2_margin(logits):
    top2 = np.sort(logits, -1)[:, -2:]
    return float((top2[:, 1] - top2[:, 0]).min())


class V4Mtp(torch.nn.Module):
    """DeepSeek-V4's MTPBlock around transformers' decoder layer and hyper-connection head
    (module docstring); the embedding and output head are the model's."""

    def __init__(self, config, n):
        super().__init__()
        d, eps = config.hidden_size, config.rms_norm_eps
        rms_norm = modeling_deepseek_v4.DeepseekV4RMSNorm
        self.enorm, self.hnorm, self.norm = rms_norm(d, eps), rms_norm(d, eps), rms_norm(d, eps)
        self.e_proj = torch.nn.Linear(d, d, bias=False)
        self.h_proj = torch.nn.Linear(d, d, bias=False)
        # the config's layer lists cover the decoder layers only; the MTP layer is a sliding
        # (compress ratio 0) MoE layer
        config = copy.deepcopy(config)
        config.layer_types = list(config.layer_types) + ["sliding_attention"]
        config.mlp_layer_types = list(config.mlp_layer_types) + ["moe"]
        self.layer = modeling_deepseek_v4.DeepseekV4DecoderLayer(config, layer_idx=n)
        attn = self.layer.self_attn
        assert attn.compressor is None and attn.rope_layer_type == "main" and not self.layer.mlp.is_hash
        assert attn.sliding_window == config.sliding_window
        self.hc_head = modeling_deepseek_v4.DeepseekV4HyperHead(config)

    def load(self, weights):
        """Every mtp.0.* tensor of `weights` (released names) into the module."""
        import make_v4_golden
        p, state = "mtp.0.", {}
        for name, w in weights.items():
            rest = name[len(p):]
            if name.startswith(p) and not rest.startswith("ffn.experts."):
                key = V4_MTP_OWN[rest] if rest in V4_MTP_OWN else "layer." + make_v4_golden.LAYER_NAMES[rest]
                state[key] = torch.from_numpy(w)
        w = lambda e, k: torch.from_numpy(weights[f"{p}ffn.experts.{e}.{k}.weight"])  # noqa: E731
        experts = range(self.layer.mlp.experts.num_experts)
        state["layer.mlp.experts.gate_up_proj"] = torch.stack([torch.cat([w(e, "w1"), w(e, "w3")]) for e in experts])
        state["layer.mlp.experts.down_proj"] = torch.stack([w(e, "w2") for e in experts])
        missing, unexpected = self.load_state_dict(state, strict=True)
        assert not missing and not unexpected

    def forward(self, model, streams, next_tokens, window):
        """streams [1, T, hc, D] (the model's, before hc_head), next_tokens [1, T] -> logits [1, T, vocab],
        attending to the keys j with i - window < j <= i."""
        e = self.enorm(model.model.embed_tokens(next_tokens))                 # [1, T, D]
        x = self.e_proj(e).unsqueeze(2) + self.h_proj(self.hnorm(streams))    # [1, T, hc, D]
        T = x.shape[1]
        positions = torch.arange(T)[None]
        i, j = torch.arange(T)[:, None], torch.arange(T)[None]
        mask = torch.where((j <= i) & (j > i - window), 0.0, float("-inf"))[None, None]  # [1, 1, T, T], added
        rotary = model.model.rotary_emb  # the layer picks "main"
        rope = {kind: rotary(e, positions, layer_type=kind) for kind in ("main", "compress")}
        y = self.layer(x, position_embeddings=rope, position_ids=positions, attention_mask=mask)
        return model.lm_head(self.norm(self.hc_head(y)))


def v4_mtp_shapes(layer, n, d, hc):
    """{released name: (shape, dtype)} of the MTP's tensors: the decoder layer's as
    make_v4_golden.released_shapes names a layers.n.* layer (experts split), under mtp.0., and
    the block's own."""
    import make_v4_golden
    hf = types.SimpleNamespace(state_dict=lambda: {f"model.layers.{n}.{k}": t for k, t in layer.state_dict().items()})
    shapes = {"mtp.0." + k[len(f"layers.{n}."):]: v for k, v in make_v4_golden.released_shapes(hf).items()}
    own = {"e_proj.weight": (d, d), "h_proj.weight": (d, d), "enorm.weight": (d,), "hnorm.weight": (d,),
           "norm.weight": (d,), "hc_head_fn": (hc, hc * d), "hc_head_base": (hc,), "hc_head_scale": (1,)}
    assert set(own) == set(V4_MTP_OWN)
    shapes.update({"mtp.0." + k: (shape, np.float32) for k, shape in own.items()})
    return shapes


def v4_mtp_weights(shapes, seed):
    """make_v4_golden.init_weights' draws (np.random.default_rng(seed); its distributions, then the
    SwiGLU gains on the routed and shared experts) for the MTP's tensors. init_weights applies the
    gains to layers 0 .. num_hidden_layers - 1, so the tensors are drawn as layer 0 of a one-layer
    model and renamed mtp.0.*."""
    import make_v4_golden
    cfg = make_v4_golden.CFG
    make_v4_golden.CFG = dict(cfg, num_hidden_layers=1)
    try:
        w = make_v4_golden.init_weights({"layers.0." + k[len("mtp.0."):]: v for k, v in shapes.items()}, seed)
    finally:
        make_v4_golden.CFG = cfg
    return {"mtp.0." + k[len("layers.0."):]: v for k, v in w.items()}


def route_gap(mtp, model, streams, next_tokens, window):
    """The MTP layer's smallest gap between its k-th and (k+1)-th biased expert score."""
    gate, got = mtp.layer.mlp.gate, []
    hook = gate.register_forward_hook(lambda mod, args, out: got.append(out[0]))
    try:
        mtp(model, streams, next_tokens, window)
    finally:
        hook.remove()
    biased = gate.score_fn(got[0]) + gate.e_score_correction_bias
    ranked = torch.sort(biased, -1, descending=True).values
    return float((ranked[:, gate.top_k - 1] - ranked[:, gate.top_k]).min())


def v4_mtp_model_py(cfg, weights, streams, next_tokens):
    """The MTP logits by make_v4_golden's numpy (f64) transcription of DeepSeek's V4 model.py
    (its Block pieces, run on the mtp.0.* tensors as layer num_hidden_layers of cfg), plus its
    statistics: a cross-check of the transformers composition."""
    import make_v4_golden as ref
    W = {k: v.astype(np.float64) for k, v in weights.items() if k.startswith("mtp.0.") or k == "embed.weight"}
    p, eps, layer, stats = "mtp.0.", cfg["rms_norm_eps"], cfg["num_hidden_layers"], {}
    e = ref.rms(W["embed.weight"][next_tokens], W[p + "enorm.weight"], eps)
    hs = ref.rms(streams.astype(np.float64), W[p + "hnorm.weight"], eps)
    x = (e @ W[p + "e_proj.weight"].T)[:, None] + hs @ W[p + "h_proj.weight"].T
    h, post, comb = ref.hc_pre(cfg, x, W[p + "hc_attn_fn"], W[p + "hc_attn_scale"], W[p + "hc_attn_base"])
    attn = ref.attention(cfg, W, p + "attn.", ref.rms(h, W[p + "attn_norm.weight"], eps), layer, stats)
    x = ref.hc_post(attn, x, post, comb)
    h, post, comb = ref.hc_pre(cfg, x, W[p + "hc_ffn_fn"], W[p + "hc_ffn_scale"], W[p + "hc_ffn_base"])
    ffn = ref.moe(cfg, W, p + "ffn.", ref.rms(h, W[p + "ffn_norm.weight"], eps), layer, stats)
    x = ref.hc_post(ffn, x, post, comb)
    flat = x.reshape(x.shape[0], -1)  # model.py ParallelHead.hc_head with the MTP's hc_head_*
    mixes = (flat @ W[p + "hc_head_fn"].T) / np.sqrt((flat * flat).mean(-1, keepdims=True) + eps)
    pre = 1 / (1 + np.exp(-(mixes * W[p + "hc_head_scale"] + W[p + "hc_head_base"]))) + cfg["hc_eps"]
    h = ref.rms((pre[..., None] * x).sum(1), W[p + "norm.weight"], eps)
    return h @ weights["head.weight"].astype(np.float64).T, stats


def v4_mtp(cfg, mtp_cfg, weights, tokens, ref_logits):
    """--arch v4 -> (transformers' model, all weights, MTP logits [T - 1, vocab])."""
    import make_v4_golden
    from make_goldens import MIN_ROUTE_GAP
    model = make_v4_golden.build_hf(mtp_cfg)  # asserts transformers reads the MTP config as v4's
    assert model.config.num_nextn_predict_layers == 1 and len(model.model.layers) == cfg["num_hidden_layers"]
    make_v4_golden.load_weights(model, weights)

    # H: the streams after the last decoder layer, hc_head's input
    ids, captured = torch.tensor([tokens]), []
    hook = model.model.hc_head.register_forward_pre_hook(lambda mod, args: captured.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            logits = model(ids, use_cache=False).logits[0].numpy()
    finally:
        hook.remove()
    streams = captured[0]                                                 # [1, T, hc, D]
    with torch.no_grad():
        again = model.lm_head(model.model.norm(model.model.hc_head(streams)))[0].numpy()
    scale = np.abs(ref_logits).max()
    err = float(np.abs(logits - ref_logits).max() / scale)
    err_h = float(np.abs(again - ref_logits).max() / scale)
    print(f"model vs v4/logits.npy: {err:.2e}; hc_head + norm + head on the captured streams {list(streams.shape)}: "
          f"{err_h:.2e} (max|d| / max|ref|)")
    assert err < 1e-6 and err_h < 1e-6

    n, window = cfg["num_hidden_layers"], cfg["sliding_window"]
    mtp = V4Mtp(model.config, n).eval()
    shapes = v4_mtp_shapes(mtp.layer, n, cfg["hidden_size"], cfg["hc_mult"])
    h, nxt = streams[:, :-1], ids[:, 1:]
    for seed in range(SEEDS["v4"], SEEDS["v4"] + 20):
        mtp_w = v4_mtp_weights(shapes, seed)
        mtp.load(mtp_w)
        with torch.no_grad():
            mtp_logits = mtp(model, h, nxt, window)[0].numpy().astype(np.float32)
            gap = route_gap(mtp, model, h, nxt, window)
        margin, top = top2_margin(mtp_logits), float(np.abs(mtp_logits).max())
        ok = margin > 1e-3 * top and gap > MIN_ROUTE_GAP
        print(f"  seed {seed}: MTP top-2 margin {margin:.3e} ({margin / top:.2e} of max|logit|), "
              f"expert score gap {gap:.3e}" + ("" if ok else " (too close)"))
        if ok:
            break
    else:
        raise SystemExit("no seed gives clear margins")
    py_logits, stats = v4_mtp_model_py(mtp_cfg, dict(weights, **mtp_w), h[0].numpy(), tokens[1:])
    err = float(np.abs(py_logits - mtp_logits).max() / np.abs(py_logits).max())
    same = bool((py_logits.argmax(-1) == mtp_logits.argmax(-1)).all())
    print(f"transformers vs model.py (f64): max|d|/max|ref| = {err:.2e}, same argmax {same}; model.py's expert score gap "
          f"{stats['expert_gap']:.3e}, SwiGLU clamps (gate / up, routed + shared) "
          f"{stats['clamped_gate_routed'] + stats['clamped_gate_shared']} / "
          f"{stats['clamped_up_routed'] + stats['clamped_up_shared']}")
    assert err < 2e-5 and same
    with torch.no_grad():  # the window matters: every causal key instead
        full = mtp(model, h, nxt, len(tokens))[0].numpy()
    change = float(np.abs(full - mtp_logits).max() / np.abs(mtp_logits).max())
    print(f"the MTP layer with every causal key instead of its window of {window}: "
          f"logits change {change:.3f} of max|logit|")
    assert change > 0.01
    print("MTP tensors:")
    for name in sorted(mtp_w):
        print(f"  {name} {list(mtp_w[name].shape)} {mtp_w[name].dtype}")
    return model, dict(weights, **mtp_w), mtp_logits


# ---------------------------------------------------------------------------------------
# DeepSeek-V4 GGUFs (--arch v4 [--gguf]), written by llama.cpp's own converter
# ---------------------------------------------------------------------------------------

V4_MTP_GGUF = "mtp-model-f32.gguf"


def v4_mtp_other_keys():
    """make_v4_golden.GGUF_OTHER_KEYS but general.version: the converter takes that from the folder's
    name ("v4" is one, "v4_mtp" is not)."""
    import make_v4_golden
    return make_v4_golden.GGUF_OTHER_KEYS - {"general.version"}


def folder_digests(folder, skip):
    """{file: sha256} of the folder's files but `skip`."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name not in skip:
            with open(os.path.join(folder, name), "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def v4_mtp_expected_tensors(cfg, weights):
    """{GGUF name: (ne, ggml type, data, [safetensors names])} of the --mtp file, from
    make_v4_golden.expected_gguf_tensors (llama.cpp's deepseek4 tensor table, not the converter):
    that table for n_layer + 1 layers with mtp.0.<rest> standing as layers.<n_layer>.<rest>, kept
    for blk.<n_layer>.* and token_embd / output_norm / output; then output_hc_* from the MTP's
    hc_head_* and the nextn tensors. eh_proj's data is cat(e_proj, h_proj) [D, 2D] in f32 (the file
    holds it as Q8_0)."""
    import make_v4_golden
    n, d = cfg["num_hidden_layers"], cfg["hidden_size"]
    p, blk = "mtp.0.", f"blk.{n}."
    layer = {f"layers.{n}." + k[len(p):]: v for k, v in weights.items()
             if k.startswith(p) and k[len(p):] not in V4_MTP_OWN}
    main = {k: v for k, v in weights.items() if not k.startswith(p)}
    table = make_v4_golden.expected_gguf_tensors(dict(cfg, num_hidden_layers=n + 1), dict(main, **layer))
    out = {}
    for gname, (ne, typ, data, srcs) in table.items():
        if gname.startswith(blk) or gname in ("token_embd.weight", "output_norm.weight", "output.weight"):
            out[gname] = (ne, typ, data, [p + s[len(f"layers.{n}."):] if s.startswith(f"layers.{n}.") else s for s in srcs])
    hc = cfg["hc_mult"]
    for gname, ne, src in (("output_hc_fn.weight", [hc * d, hc], "hc_head_fn"), ("output_hc_base.weight", [hc], "hc_head_base"),
                           ("output_hc_scale.weight", [1], "hc_head_scale"), (blk + "nextn.enorm.weight", [d], "enorm.weight"),
                           (blk + "nextn.hnorm.weight", [d], "hnorm.weight"),
                           (blk + "nextn.shared_head_norm.weight", [d], "norm.weight")):
        data = weights[p + src]
        assert list(reversed(data.shape)) == ne, (gname, data.shape, ne)
        out[gname] = (ne, "F32", data, [p + src])
    eh = np.concatenate([weights[p + "e_proj.weight"], weights[p + "h_proj.weight"]], axis=1)
    out[blk + "nextn.eh_proj.weight"] = ([2 * d, d], "Q8_0", eh, [p + "e_proj.weight", p + "h_proj.weight"])
    used = sorted(s for v in out.values() for s in v[3])
    want_used = sorted([k for k in weights if k.startswith(p)] + ["embed.weight", "norm.weight", "head.weight"])
    assert used == want_used, "every mtp.0.* tensor, and embed / norm / head, goes into exactly one GGUF tensor"
    return out


def v4_mtp_verify_mtp_file(path, cfg, weights):
    """Reads the --mtp GGUF back with the venv's gguf-py: make_v4_golden.expected_gguf_keys for
    n_layer + 1 blocks (block_count, the swiglu arrays) plus nextn_predict_layers 1, nothing else but
    GGUF_OTHER_KEYS; exactly v4_mtp_expected_tensors' tensors with their ne and type, F32 ones bit
    for bit, eh_proj (Q8_0) dequantised within Q8_0's error of cat(e_proj, h_proj) per 32-block
    (<= max|block| / 127) and byte-identical to gguf-py's own Q8_0 quantisation of it."""
    import gguf
    import make_v4_golden as v4
    n = cfg["num_hidden_layers"]
    reader = gguf.GGUFReader(path)
    want_keys = v4.expected_gguf_keys(dict(cfg, num_hidden_layers=n + 1))
    want_keys["deepseek4.nextn_predict_layers"] = ("UINT32", cfg["num_nextn_predict_layers"], "MTP")
    got_keys = {k: v4.field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    v4.check_keys(got_keys, want_keys, v4_mtp_other_keys())
    assert got_keys["general.architecture"] == ("STRING", "deepseek4")
    assert got_keys["general.name"] == ("STRING", v4.GGUF_MODEL_NAME)
    assert got_keys["deepseek4.block_count"][1] == n + 1 and got_keys["deepseek4.nextn_predict_layers"][1] == 1

    want = v4_mtp_expected_tensors(cfg, weights)
    got = {t.name: t for t in reader.tensors}
    assert len(got) == len(reader.tensors) and set(got) == set(want), (set(got) ^ set(want))
    eh_err = None
    for gname, (ne, typ, data, _) in want.items():
        t = got[gname]
        assert t.tensor_type.name == typ, (gname, t.tensor_type.name, typ)
        assert [int(x) for x in t.shape] == ne, (gname, list(t.shape), ne)
        if typ == "Q8_0":
            raw = np.asarray(t.data)
            back = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q8_0)
            assert back.shape == data.shape, (gname, back.shape, data.shape)
            blocks = data.reshape(-1, 32)
            err = np.abs(back.reshape(-1, 32) - blocks).max(-1)
            bound = np.abs(blocks).max(-1) / 127
            assert (err <= bound).all(), (gname, float((err / bound).max()))
            requant = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            assert np.array_equal(requant.reshape(-1).view(np.uint8), raw.reshape(-1).view(np.uint8)), gname
            eh_err = (float(err.max()), float((err / bound).max()))
            continue
        back = np.asarray(t.data)
        assert back.dtype == data.dtype and back.size == data.size, gname
        assert np.array_equal(back.reshape(data.shape), data), gname
    for k in ("hc_head_fn", "hc_head_base", "hc_head_scale"):  # the MTP's, not the model's
        assert not np.array_equal(weights[k], weights["mtp.0." + k]), k
    return want_keys, want, got_keys, eh_err


def print_gguf(path, keys, tensors, got_keys):
    """make_v4_golden.make_gguf's listing: every key (type, value, how llama.cpp reads it) and
    every tensor (ne, type <- safetensors)."""
    import make_v4_golden
    make_v4_golden.print_keys(f"{os.path.basename(path)} keys (type, value, llama.cpp):", got_keys, keys)
    print(f"{os.path.basename(path)} tensors (ne, type <- model.safetensors):")
    for gname in sorted(tensors):
        ne, typ, _, srcs = tensors[gname]
        src = srcs[0] if len(srcs) == 1 else (f"cat({srcs[0]}, {srcs[1]}, dim=1)" if typ == "Q8_0"
                                              else f"stack of {srcs[0]} .. {srcs[-1]}")
        print(f"  {gname} {ne} {typ} <- {src}")


def v4_mtp_gguf(folder, llama_dir=None):
    """--arch v4 [--gguf]: writes folder/model-f32.gguf (llama.cpp's converter, no --mtp) and
    folder/mtp-model-f32.gguf (--mtp) from the folder's config.json + model.safetensors, and checks
    them: the main file with make_v4_golden.verify_gguf against the folder's config and its non-mtp
    tensors (so no blk.<n_layer>.*, no nextn_predict_layers); the MTP file with
    v4_mtp_verify_mtp_file. Every other file of the folder stays byte-identical."""
    import make_v4_golden as v4
    llama_dir = llama_dir or v4.LLAMA_CPP
    names = (v4.GGUF_NAME, V4_MTP_GGUF)
    before = folder_digests(folder, names)
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    n = cfg["num_hidden_layers"]
    assert cfg["num_nextn_predict_layers"] == 1 and len(cfg["compress_ratios"]) == n + 1
    weights = load_file(os.path.join(folder, "model.safetensors"))
    main_weights = {k: v for k, v in weights.items() if not k.startswith("mtp.")}

    main_path = v4.write_gguf(llama_dir, folder)
    mtp_path = v4.write_gguf(llama_dir, folder, extra_args=["--mtp"], out_name=V4_MTP_GGUF)
    assert os.path.basename(main_path) == v4.GGUF_NAME and os.path.basename(mtp_path) == V4_MTP_GGUF

    other, v4.GGUF_OTHER_KEYS = v4.GGUF_OTHER_KEYS, v4_mtp_other_keys()
    try:
        main_keys, main_tensors, main_got = v4.verify_gguf(main_path, cfg, main_weights)
    finally:
        v4.GGUF_OTHER_KEYS = other
    assert not any(t.startswith(f"blk.{n}.") or ".nextn." in t for t in main_tensors)
    assert "deepseek4.nextn_predict_layers" not in main_got and main_got["deepseek4.block_count"][1] == n
    mtp_keys, mtp_tensors, mtp_got, eh_err = v4_mtp_verify_mtp_file(mtp_path, cfg, weights)
    print_gguf(main_path, main_keys, main_tensors, main_got)
    print_gguf(mtp_path, mtp_keys, mtp_tensors, mtp_got)

    print("deepseek4.* keys of the MTP file that differ from the main file's:")
    for key in sorted(k for k in set(main_got) | set(mtp_got) if k.startswith("deepseek4.")):
        a, b = main_got.get(key), mtp_got.get(key)
        if a != b:
            print(f"  {key}: main {a[1] if a else '(absent)'!r} -> MTP {b[1] if b else '(absent)'!r}")
    print(f"nextn.eh_proj Q8_0: max|dequantised - cat(e_proj, h_proj)| = {eh_err[0]:.3e} "
          f"({eh_err[1]:.3f} of max|block| / 127 at worst); bytes equal gguf-py's own Q8_0 quantisation")

    after = folder_digests(folder, names)
    assert after == before, "a file of the folder other than the two GGUFs changed"
    assert sorted(os.listdir(folder)) == sorted(list(before) + list(names))
    for path, tensors in ((main_path, main_tensors), (mtp_path, mtp_tensors)):
        os.chmod(path, 0o644)
        size = os.path.getsize(path)
        assert size < 2_500_000, (path, size)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        print(f"{path}: {size} bytes, sha256 {digest}, {len(tensors)} tensors, written by llama.cpp's "
              f"convert_hf_to_gguf.py ({llama_dir})")
    print(f"the folder's other {len(before)} files unchanged (sha256)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=sorted(SEEDS), default="v3")
    parser.add_argument("--gguf", action="store_true",
                        help="--arch v4 only: (re)write just model-f32.gguf and mtp-model-f32.gguf of v4_mtp/ "
                             "from its config.json + model.safetensors, with llama.cpp's converter")
    args = parser.parse_args()
    arch = args.arch
    if args.gguf:
        if arch != "v4":
            parser.error("--gguf needs --arch v4")
        v4_mtp_gguf(os.path.join(GOLDENS, "v4_mtp"))
        return
    torch.set_num_threads(2)
    torch.manual_seed(0)
    src = os.path.join(GOLDENS, arch)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    tokens_path = os.path.join(src if arch == "v4" else GOLDENS, "tokens.json")  # v4 has its own 320
    with open(tokens_path) as f:
        tokens = json.load(f)
    weights = load_file(os.path.join(src, "model.safetensors"))
    ref_logits = np.load(os.path.join(src, "logits.npy"))

    mtp_cfg = dict(cfg, num_nextn_predict_layers=1)
    if arch == "v4":  # the releases list one compress ratio per MTP layer too
        mtp_cfg["compress_ratios"] = cfg["compress_ratios"] + [0]
        model, all_weights, mtp_logits = v4_mtp(cfg, mtp_cfg, weights, tokens, ref_logits)
    else:
        model, all_weights, mtp_logits = v3_mtp(arch, cfg, weights, tokens, ref_logits)
    margin = top2_margin(mtp_logits)
    print(f"MTP logits [{mtp_logits.shape[0]}, {mtp_logits.shape[1]}], smallest top-2 margin {margin:.3e}")

    # Greedy decoding by transformers (full forward per token): what moat run gives with
    # and without --spec mtp.
    seq = list(tokens[:PROMPT_LEN])
    margins = []
    with torch.no_grad():
        for _ in range(N_GEN):
            row = model(torch.tensor([seq]), use_cache=False).logits[0, -1]
            best = torch.topk(row, 2).values
            margins.append(float(best[0] - best[1]))
            nxt = int(row.argmax())
            if nxt == cfg["eos_token_id"]:
                break
            seq.append(nxt)
    print(f"greedy: {len(seq) - PROMPT_LEN} tokens, smallest top-2 margin {min(margins):.3e}")
    assert min(margins) > 1e-3, "a greedy step is too close to a tie"

    out_dir = os.path.join(GOLDENS, f"{arch}_mtp")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(mtp_cfg, f, indent=2)
        f.write("\n")
    save_file(dict(sorted(all_weights.items())), os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    if arch == "v4":
        shutil.copyfile(tokens_path, os.path.join(out_dir, "tokens.json"))
    np.save(os.path.join(out_dir, "logits.npy"), ref_logits.astype(np.float32))
    np.save(os.path.join(out_dir, "mtp_logits.npy"), mtp_logits)
    with open(os.path.join(out_dir, "greedy.json"), "w") as f:
        json.dump({"prompt": seq[:PROMPT_LEN], "continuation": seq[PROMPT_LEN:], "min_margin": min(margins),
                   "mtp_min_margin": margin, "torch": torch.__version__, "transformers": transformers.__version__}, f)
        f.write("\n")
    if arch == "v4":  # transformers reads the folder (skipping mtp.*) as the same model
        again = transformers.AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32,
                                                                  attn_implementation="eager").eval()
        with torch.no_grad():
            got = again(torch.tensor([tokens]), use_cache=False).logits[0].numpy()
        err = float(np.abs(got - ref_logits).max() / np.abs(ref_logits).max())
        print(f"{out_dir} reloaded by transformers: max|d|/max|ref| = {err:.2e}")
        assert err < 1e-6
    for name in os.listdir(out_dir):
        os.chmod(os.path.join(out_dir, name), 0o644)  # save_file writes 0600
    if arch == "v4":
        v4_mtp_gguf(out_dir)
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    main()
