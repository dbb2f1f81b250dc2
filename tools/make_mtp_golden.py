#!/usr/bin/env python3
"""Writes tests/data/goldens/v3_mtp/: the v3 golden model (make_goldens.py) with one MTP
layer added, as DeepSeek-V3 checkpoints carry it (config num_nextn_predict_layers = 1,
tensors model.layers.<num_hidden_layers>.*), and the reference logits of its MTP module.

DeepSeek's inference/model.py has no MTP forward and transformers' DeepseekV3 skips the
layer, so the reference is composed here the way vLLM's deepseek_mtp.py and llama.cpp's
deepseek2 graph_mtp run V3's MTP layer, with transformers' own modules for every part:

    h_i      = transformers' DeepseekV3Model(tokens).last_hidden_state  (after model.norm)
    x_i      = eh_proj([enorm(embed(t_i+1)); hnorm(h_i)])               (embed, shared head:
    y_i      = DeepseekV3DecoderLayer(layer_idx = 3)(x)  causal, RoPE at positions i
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
    /tmp/toolsvenv/bin/python tools/make_mtp_golden.py
"""

import json
import math
import os

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as ds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDENS = os.path.join(ROOT, "tests", "data", "goldens")
SEED = 61
PROMPT_LEN, N_GEN = 8, 24


def mtp_weights(layer, rng, model_weights, n):
    """Seeded weights for the MTP layer's own tensors (HF names, under model.layers.n.) with
    the shapes of transformers' decoder layer `layer`, in make_goldens.py's distributions."""
    out = {}
    p = f"model.layers.{n}."
    for name, t in sorted(layer.state_dict().items()):
        shape = tuple(t.shape)
        if name.endswith("e_score_correction_bias"):
            w = rng.uniform(-0.15, 0.15, shape)
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

    def __init__(self, config, n):
        super().__init__()
        d = config.hidden_size
        self.enorm = ds.DeepseekV3RMSNorm(d, config.rms_norm_eps)
        self.hnorm = ds.DeepseekV3RMSNorm(d, config.rms_norm_eps)
        self.eh_proj = torch.nn.Linear(2 * d, d, bias=False)
        self.layer = ds.DeepseekV3DecoderLayer(config, layer_idx=n)
        self.head_norm = ds.DeepseekV3RMSNorm(d, config.rms_norm_eps)
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


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    src = os.path.join(GOLDENS, "v3")
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(GOLDENS, "tokens.json")) as f:
        tokens = json.load(f)
    weights = load_file(os.path.join(src, "model.safetensors"))
    ref_logits = np.load(os.path.join(src, "logits.npy"))

    model = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager").eval()
    n = cfg["num_hidden_layers"]
    config = model.config
    mtp = Mtp(config, n).eval()
    all_weights = dict(weights)
    all_weights.update(mtp_weights(mtp.layer, np.random.default_rng(SEED), weights, n))
    mtp.load(all_weights, n)

    ids = torch.tensor([tokens])
    with torch.no_grad():
        out = model.model(ids, use_cache=False)
        hidden = out.last_hidden_state                                    # [1, T, D], after model.norm
        logits = model.lm_head(hidden)[0].numpy()
        err = float(np.abs(logits - ref_logits).max() / np.abs(ref_logits).max())
        assert err < 1e-6, f"the model's logits moved from v3/logits.npy: {err}"
        mtp_logits = mtp(model.model.rotary_emb, hidden[:, :-1], ids[:, 1:])[0].numpy().astype(np.float32)
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

    out_dir = os.path.join(GOLDENS, "v3_mtp")
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
