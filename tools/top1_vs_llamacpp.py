#!/usr/bin/env python3
"""Top-1 agreement of moatless' logits with llama.cpp's on the same token ids, and how well
llama.cpp agrees with itself: issue 16's "logits against llama.cpp's on the same tokens
agree on the top-1 token at >= 7 of 8 positions" for the V2-Lite-shaped Q4_K_M file.

For each --seeds value: 8 random token ids (numpy default_rng(seed), ids 100 .. min(100000,
the vocabulary) - 1) as one prompt batch, or with --text the 8 ids from 8 * seed of that
text as llama.cpp tokenizes it (a trained model reading real text: margins that mean
something), the logits of every position from
  moat      `moat run -m FILE --device cpu --tokens ... --ctx 256 --logits-out F -t 2`
  llama f16 llama.cpp (llama-cpp-python's low-level API) with its default context: f16
            K/V cache, flash attention as llama.cpp picks it
  llama f32 llama.cpp with an f32 K/V cache and flash attention off (the configuration
            closest to moatless' f32 cache and attention)
and per pair the positions whose top-1 tokens agree and max|d| / max|ref|. On a model with
random weights, quantised activations and MoE routing (the V2-Lite-shaped files of
tools/bench_vs_llamacpp.py) top-1 margins are small, so the llama f16 / llama f32 row says
how often llama.cpp agrees with itself when only its cache type changes: the floor that
moatless' agreement is read against.

  /tmp/benchvenv/bin/python tools/top1_vs_llamacpp.py FILE [--moat build/bin/moat] [--seeds 16,17,18,19,20,21]
      [--text models/kjv-heldout.txt]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def llama_logits(L, model, n_vocab, toks, f32):
    cp = L.llama_context_default_params()
    cp.n_ctx = 256
    cp.n_batch = cp.n_ubatch = 256
    if f32:
        cp.type_k = cp.type_v = 0  # GGML_TYPE_F32
        cp.flash_attn_type = 0     # LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = L.llama_init_from_model(model, cp)
    batch = L.llama_batch_init(256, 0, 1)
    for i, t in enumerate(toks):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, i, 1, 1
        batch.seq_id[i][0] = 0
    batch.n_tokens = len(toks)
    if L.llama_decode(ctx, batch) != 0:
        raise RuntimeError("llama_decode failed")
    out = np.array([np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).copy()
                    for i in range(len(toks))])
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--moat", default=os.path.join(ROOT, "build", "bin", "moat"))
    ap.add_argument("--seeds", default="16,17,18,19,20,21")
    ap.add_argument("--text", help="each seed's 8 ids from this text (llama.cpp's tokens 8 * seed ..), not random ids")
    args = ap.parse_args()
    import llama_cpp as L
    quiet = L.llama_log_callback(lambda level, text, user: None)  # kept alive while llama.cpp may call it
    L.llama_log_set(quiet, None)
    L.llama_backend_init()
    model = L.llama_model_load_from_file(args.model.encode(), L.llama_model_default_params())
    if not model:
        sys.exit(f"llama.cpp could not load {args.model}")
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    text_ids = []
    if args.text:
        with open(args.text, "rb") as f:
            raw = f.read()
        buf = (L.llama_token * (len(raw) + 16))()
        n = L.llama_tokenize(vocab, raw, len(raw), buf, len(buf), False, False)
        text_ids = list(buf[:max(n, 0)])
    pairs = [("moat", "llama f32"), ("moat", "llama f16"), ("llama f16", "llama f32")]
    totals = {p: 0 for p in pairs}
    print("| seed | " + " | ".join(f"{a} vs {b}: top-1, max\\|d\\|/max" for a, b in pairs) + " |")
    print("|---|" + "---|" * len(pairs))
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            if args.text:
                toks = text_ids[8 * seed:8 * seed + 8]
                if len(toks) < 8:
                    sys.exit(f"{args.text} has {len(text_ids)} ids: no 8 from {8 * seed}")
            else:
                toks = [int(t) for t in np.random.default_rng(seed).integers(100, min(100000, n_vocab), 8)]
            out = os.path.join(tmp, "moat.npy")
            subprocess.run([args.moat, "run", "-m", args.model, "--device", "cpu", "--tokens", ",".join(map(str, toks)),
                            "--ctx", "256", "--logits-out", out, "-t", "2"], check=True, capture_output=True)
            logits = {"moat": np.load(out), "llama f16": llama_logits(L, model, n_vocab, toks, False),
                      "llama f32": llama_logits(L, model, n_vocab, toks, True)}
            cells = []
            for a, b in pairs:
                x, y = logits[a], logits[b]
                agree = int((x.argmax(1) == y.argmax(1)).sum())
                totals[(a, b)] += agree
                cells.append(f"{agree}/8, {np.abs(x - y).max() / np.abs(y).max():.4f}")
            print(f"| {seed} | " + " | ".join(cells) + " |", flush=True)
    print(f"| all | " + " | ".join(f"{totals[p]}/{8 * len(seeds)} ({totals[p] / len(seeds):.2f} of 8)" for p in pairs) + " |")
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
