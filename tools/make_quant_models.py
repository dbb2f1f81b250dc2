#!/usr/bin/env python3
"""GGUF files quantised by llama.cpp's own quantiser, for moatless' quantisation tests and
its perplexity comparison with llama.cpp (tools/quant_perplexity.py). Nothing is written
inside the repository.

What it makes, in --out (default /tmp/moat-quant-models):
  kjv-train.txt            the demo model's training text: the 65 books Genesis-Jude of
                           Debian's bible-kjv, prepared as tools/train_tiny.py prepares them
                           (checked: the same preparation of the last book must give
                           models/kjv-heldout.txt byte for byte). The held-out book is not in it.
  kjv-tiny.imatrix.gguf    llama-imatrix's importance matrix of models/kjv-tiny.gguf (F16) on
                           the first --imatrix-chunks chunks of --ctx tokens of that text.
  kjv-tiny-TYPE.gguf       llama-quantize of models/kjv-tiny.gguf to each of --types, with the
                           importance matrix for the types in IMATRIX_TYPES.
  v2lite-4l-q4_k_m.gguf    llama-quantize Q4_K_M of tools/bench_vs_llamacpp.py's V2-Lite-shaped
                           F16 file (random weights: for loading and speed, not perplexity),
                           which bench_vs_llamacpp.py's own code writes into --bench-models
                           when it is missing (about 4.7 GB, minutes). --no-v2lite skips it.
Each file's tensor type mix (tensor count per type, and bytes) is printed as a Markdown table.

The demo model's hidden size is 256 and its expert FFN width 128, so the matrices whose rows
are 128 long (ffn_down_exps, ffn_down_shexp, attn_q_b's input is 128 wide, ...) cannot hold
256-element K / IQ blocks: llama-quantize falls back to another type for them (it says
"required fallback quantization"), as it does for real files with such rows. The mix shows it.

Needs: the llama.cpp tools of tools/build_llama_tools.sh (--tools), Debian's bible-kjv (the
`bible` program), and gguf + numpy (e.g. /tmp/benchvenv/bin/python, which has them).

  /tmp/benchvenv/bin/python tools/make_quant_models.py [--tools /tmp/llama-tools/bin]
      [--out /tmp/moat-quant-models] [--types Q4_K_M,...] [--threads 2] [--force] [--no-v2lite]
"""
import argparse
import os
import re
import subprocess
import sys
import time

import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "models", "kjv-tiny.gguf")
HELDOUT = os.path.join(ROOT, "models", "kjv-heldout.txt")

# llama-quantize's type names, in the order the table lists them.
TYPES = ["Q6_K", "Q5_K_M", "Q5_1", "Q4_K_M", "Q4_1", "IQ4_XS", "IQ4_NL", "MXFP4_MOE", "Q3_K_M", "IQ3_XXS",
         "Q2_K", "IQ2_XXS", "IQ1_S"]
# Quantised with the importance matrix: llama-quantize refuses IQ1_S and IQ2_XXS without one,
# and its README recommends one for the other IQ types and the K types below 4 bits. The
# 4-bit-and-above K and legacy types and MXFP4_MOE are made as most published files of those
# types are, without one.
IMATRIX_TYPES = {"IQ1_S", "IQ2_XXS", "IQ3_XXS", "IQ4_XS", "IQ4_NL", "Q2_K", "Q3_K_M"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd):
    log("$ " + " ".join(cmd))
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


# ---------------------------------------------------------------------------------------
# The training text (tools/train_tiny.py's read_bible / books_text / split_corpus; that
# script imports torch, so the few lines are repeated here and checked against its output)
# ---------------------------------------------------------------------------------------

def kjv_books():
    """-> [(book, text)]: each book's verses in canonical order, one per line, each ended by
    a newline; the verse reference dropped and runs of whitespace collapsed."""
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, check=True).stdout
    books = []
    for line in out.splitlines():
        m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        assert m, f"unexpected line from `bible`: {line!r}"
        book, text = m.group(1), " ".join(m.group(4).split())
        if not books or books[-1][0] != book:
            books.append((book, ""))
        books[-1] = (book, books[-1][1] + text + "\n")
    return books


def write_training_text(path):
    books = kjv_books()
    assert books[-1][0] == "Rev" and len(books) == 66, [b for b, _ in books]
    with open(HELDOUT, encoding="utf-8") as f:
        assert f.read() == books[-1][1], "the last book does not match models/kjv-heldout.txt: not the demo model's split"
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(text for _, text in books[:-1]))  # Genesis-Jude: the held-out book is left out


# ---------------------------------------------------------------------------------------
# Type mix
# ---------------------------------------------------------------------------------------

def type_mix(path):
    """-> [(type name, tensors, bytes)], most bytes first."""
    mix = {}
    for t in gguf.GGUFReader(path).tensors:
        n, b = mix.get(t.tensor_type.name, (0, 0))
        mix[t.tensor_type.name] = (n + 1, b + int(t.n_bytes))
    return sorted(((k, n, b) for k, (n, b) in mix.items()), key=lambda r: (-r[2], r[0]))


def mix_text(mix):
    """'Q4_K 30, Q5_0 12, F32 23': tensor count per type, most bytes first."""
    return ", ".join(f"{k} {n}" for k, n, _ in mix)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools", default="/tmp/llama-tools/bin", help="folder with llama-quantize and llama-imatrix")
    ap.add_argument("--out", default="/tmp/moat-quant-models")
    ap.add_argument("--types", default=",".join(TYPES), help="llama-quantize type names, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=256, help="imatrix chunk length (the demo model's context)")
    ap.add_argument("--imatrix-chunks", type=int, default=200,
                    help="chunks of --ctx tokens of the training text the importance matrix sees (default 200: "
                         "51,200 of its 1,020,884 tokens)")
    ap.add_argument("--force", action="store_true", help="remake files that exist")
    ap.add_argument("--no-v2lite", action="store_true", help="skip the V2-Lite-shaped Q4_K_M file")
    ap.add_argument("--bench-models", default="/tmp/moat-bench-models",
                    help="where tools/bench_vs_llamacpp.py keeps (or this script writes) v2lite-4l-f16.gguf")
    args = ap.parse_args()
    types = [t.strip().upper() for t in args.types.split(",") if t.strip()]
    for t in types:
        if t not in TYPES:
            ap.error(f"unknown type {t}; known: {', '.join(TYPES)}")
    quantize = os.path.join(args.tools, "llama-quantize")
    imatrix_tool = os.path.join(args.tools, "llama-imatrix")
    os.makedirs(args.out, exist_ok=True)

    def wanted(path):
        return args.force or not os.path.exists(path)

    train = os.path.join(args.out, "kjv-train.txt")
    if wanted(train):
        write_training_text(train)
    imatrix = os.path.join(args.out, "kjv-tiny.imatrix.gguf")
    if any(t in IMATRIX_TYPES for t in types) and wanted(imatrix):
        t0 = time.time()
        run([imatrix_tool, "-m", DEMO, "-f", train, "-o", imatrix, "-c", str(args.ctx), "--chunks",
             str(args.imatrix_chunks), "-t", str(args.threads), "-b", str(args.ctx)])
        log(f"  imatrix: {time.time() - t0:.0f} s")

    files = [("F16 (the demo model)", DEMO)]
    for t in types:
        path = os.path.join(args.out, f"kjv-tiny-{t.lower()}.gguf")
        if wanted(path):
            cmd = [quantize] + (["--imatrix", imatrix] if t in IMATRIX_TYPES else []) + [DEMO, path, t,
                                                                                          str(args.threads)]
            run(cmd)
        files.append((t + (" (imatrix)" if t in IMATRIX_TYPES else ""), path))

    if not args.no_v2lite:
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import bench_vs_llamacpp as bench  # its F16 writer: the same file its benchmark uses
        f16 = bench.ensure_models(["f16"], args.bench_models, bench.VOCAB)["f16"]
        path = os.path.join(args.out, "v2lite-4l-q4_k_m.gguf")
        if wanted(path):
            t0 = time.time()
            run([quantize, f16, path, "Q4_K_M", str(args.threads)])
            log(f"  V2-Lite Q4_K_M: {time.time() - t0:.0f} s")
        files.append(("V2-Lite 4-layer Q4_K_M (random weights)", path))

    print("| file | type | size | tensor type mix (tensors per type, most bytes first) |\n|---|---|---|---|")
    for label, path in files:
        mix = type_mix(path)
        print(f"| {os.path.basename(path)} | {label} | {os.path.getsize(path) / 2**20:.2f} MiB | {mix_text(mix)} |")


if __name__ == "__main__":
    main()
