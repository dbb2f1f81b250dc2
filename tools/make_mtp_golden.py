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

    /tmp/toolsvenv/bin/pip install torch transformers==5.23.0 safetensors numpy
    /tmp/toolsvenv/bin/python tools/make_mtp_golden.py [--arch v3|v32]
"""

import argparse
import copy
import json
import math
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file
from transformers.models.deepseek_v3 import modeling_deepseek_v3
from transformers.models.deepseek_v32 import modeling_deepseek_v32

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDENS = os.path.join(ROOT, "tests", "data", "goldens")
SEEDS = {"v3": 61, "v32": 62}
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
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_v32_golden  # noqa: E402 (its transformers model and expert fusing)
    model = make_v32_golden.build_hf(make_v32_golden.CFG)
    make_v32_golden.load_weights(model, weights)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=sorted(MODULES), default="v3")
    arch = parser.parse_args().arch
    torch.set_num_threads(2)
    torch.manual_seed(0)
    src = os.path.join(GOLDENS, arch)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(GOLDENS, "tokens.json")) as f:
        tokens = json.load(f)
    weights = load_file(os.path.join(src, "model.safetensors"))
    ref_logits = np.load(os.path.join(src, "logits.npy"))

    model = load_model(arch, src, weights)
    n = cfg["num_hidden_layers"]
    config = model.config
    mtp = Mtp(config, n, arch).eval()
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
    top2 = np.sort(mtp_logits, -1)[:, -2:]
    margin = float((top2[:, 1] - top2[:, 0]).min())
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
    mtp_cfg = dict(cfg, num_nextn_predict_layers=1)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(mtp_cfg, f, indent=2)
        f.write("\n")
    save_file(dict(sorted(all_weights.items())), os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    np.save(os.path.join(out_dir, "logits.npy"), ref_logits.astype(np.float32))
    np.save(os.path.join(out_dir, "mtp_logits.npy"), mtp_logits)
    with open(os.path.join(out_dir, "greedy.json"), "w") as f:
        json.dump({"prompt": seq[:PROMPT_LEN], "continuation": seq[PROMPT_LEN:], "min_margin": min(margins),
                   "mtp_min_margin": margin, "torch": torch.__version__, "transformers": transformers.__version__}, f)
        f.write("\n")
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    main()
