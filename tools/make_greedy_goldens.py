#!/usr/bin/env python3
"""Greedy continuations of the golden DeepSeek models, by Hugging Face transformers.

For each golden folder (tests/data/goldens/<name>/config.json + model.safetensors, made
by make_goldens.py) this loads the model with transformers' own DeepSeek code (f32,
eager attention; V2's YaRN softmax-scale patched exactly as make_goldens.py does), takes
the first PROMPT_LEN ids of tokens.json as the prompt and appends, N_GEN times, the
argmax of the last position's logits (a full forward each step: no KV cache, so nothing
of transformers' cache code is involved), stopping early at eos_token_id (not
appended), which is what `moat run --tokens ... -n N --temp 0` does.

Every step's margin between the best and the second-best logit is checked to be far
from a tie (so an implementation within f32 rounding cannot pick another token).
Writes tests/data/goldens/greedy.json:
  {"prompt": [...], "n_gen": N, "continuations": {"v3": [...], ...}, "min_margin": {...}}

Run: python3 tools/make_greedy_goldens.py   (a venv with torch, transformers, numpy,
ml_dtypes, gguf: the same as make_goldens.py)
"""
import json
import os
import sys

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens  # noqa: E402  (the V2 softmax-scale patch)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "goldens")
MODELS = ("v3", "v2_lite", "v2")
PROMPT_LEN = 8
N_GEN = 24
MIN_MARGIN = 1e-3  # absolute, in logits (the goldens agree with moatless to ~1e-6)


def greedy(folder, prompt):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    make_goldens.patch_v2_softmax_scale(model, cfg)
    ids, margins = list(prompt), []
    with torch.no_grad():
        for _ in range(N_GEN):
            logits = model(torch.tensor([ids]), use_cache=False).logits[0, -1]
            top = torch.topk(logits, 2)
            margins.append(float(top.values[0] - top.values[1]))
            best = int(top.indices[0])
            if best == cfg["eos_token_id"]:
                break
            ids.append(best)
    return ids[len(prompt):], min(margins)


def main():
    with open(os.path.join(ROOT, "tokens.json")) as f:
        tokens = json.load(f)
    prompt = tokens[:PROMPT_LEN]
    out = {"prompt": prompt, "n_gen": N_GEN, "continuations": {}, "min_margin": {}}
    for name in MODELS:
        continuation, margin = greedy(os.path.join(ROOT, name), prompt)
        assert margin > MIN_MARGIN, f"{name}: a near-tie ({margin}) in the greedy path; pick another prompt"
        out["continuations"][name] = continuation
        out["min_margin"][name] = round(margin, 6)
        print(f"{name}: {len(continuation)} tokens, smallest top-2 margin {margin:.4f}")
    with open(os.path.join(ROOT, "greedy.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
