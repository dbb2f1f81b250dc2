#!/usr/bin/env python3
"""Checks moatless against llama.cpp on the tiny random model files llama.cpp itself writes for
DeepSeek-V2/V3, V3.2 and V4 (`test-llama-archs -a ARCH -s 18 -o DIR`: deepseek2-moe.gguf,
deepseek32-moe.gguf, deepseek4-moe.gguf, F32 weights), so the files' keys, tensor names and layouts are
llama.cpp's own rather than our converter's.

    /tmp/toolsvenv/bin/pip install gguf numpy llama-cpp-python==0.3.36   # the latter built from its sdist
    tools/build_llama_tools.sh --libs /tmp/toolsvenv/lib/python3.11/site-packages/llama_cpp/lib
    /tmp/toolsvenv/bin/python tools/check_llamacpp_archs.py [--moat build/bin/moat]
        [--archs-bin /tmp/llama-tools/bin/test-llama-archs] [--llamacpp PYTHON]
        [--devices cpu,opencl:0] [--tokens N] [--out DIR] [--bench REPS] [--threads N]

For each file: llama.cpp's logits for N seeded token ids (CPU, f32 cache, flash attention off, one
batch; make_llamacpp_key_goldens.llama_logits) and moat's (`moat run --tokens ... --logits-out`,
f32 cache) on every device, in one pass and in chunks of 7 tokens; prints max|d|/max|ref| and the
positions whose argmax differs, and exits 1 if any exceeds 1e-3 (issue 18's acceptance). With
--bench: pp64 and tg32 on the CPU, llama.cpp (llama-cpp-python) and `moat bench` interleaved.

What the files exercise (test-llama-archs.cpp, get_gguf_ctx): deepseek4 has 4 layers with compress
ratios [0, 0, 4, 128], a 32-token sliding window, 8 heads of 64, q_lora 64, grouped output
(8 groups, rank 32), 2 experts + 1 shared, 2 Sinkhorn iterations; its indexer top-k (131072) keeps
every block; besides the weights llama.cpp writes its optional companions (NVFP4-style ".scale" /
".input_scale", random, and an image-token routing bias), which its deepseek4 graph leaves unused
and its deepseek32 graph multiplies by (deepseek2's only those of attn_output; moat does the same). deepseek32 has 2 layers (the first
dense), n_embd 128, one head, 2 experts without groups, the indexer keeping every key. With the
default 192 tokens the window slides and one 128-token block closes. Each file is checked again
as a copy whose indexer keeps only its top 8 (name -top8.gguf; one key rewritten), so that the
sparse selection bites.
Needs llama-cpp-python 0.3.36 (built from its sdist) in PYTHON and test-llama-archs built from the
same llama.cpp. Nothing here is needed to build, run or test the C++.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_llamacpp_key_goldens import llama_logits_in  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHS = ("deepseek2", "deepseek32", "deepseek4")
INDEXED = ("deepseek32", "deepseek4")  # archs with the sparse-attention indexer
N_VOCAB = 128  # test-llama-archs' vocabulary
TOLERANCE = 1e-3
CHUNK = 7
TOP_K = 8  # the second copy of each file: its indexer keeps 8 keys (V3.2) or blocks of 4 (V4)
SEED = 18  # test-llama-archs -s: the weights; np.random seed of the token ids


def write_files(archs_bin, out, archs):
    for arch in archs:
        run = subprocess.run([archs_bin, "-a", f"^{arch}$", "-s", str(SEED), "-o", out], capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"{archs_bin} -a {arch} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    files = sorted(f for f in os.listdir(out) if f in [f"{a}-{kind}.gguf" for a in archs for kind in ("dense", "moe")])
    if not files:
        raise SystemExit(f"{archs_bin} wrote no files for {archs}")
    return [os.path.join(out, f) for f in files]


def with_top_k(path, k):
    """A copy of `path` whose indexer keeps its top k (test-llama-archs keeps every key or
    block, so the sparse selection never bites): the same weights, one key rewritten in place."""
    import shutil
    import gguf
    arch = os.path.basename(path).split("-")[0]
    out = os.path.splitext(path)[0] + f"-top{k}.gguf"
    shutil.copyfile(path, out)
    reader = gguf.GGUFReader(out, "r+")
    field = reader.fields[f"{arch}.attention.indexer.top_k"]
    field.parts[field.data[0]][0] = k
    reader.data.flush()
    return out


def moat_logits(moat, path, tokens, device, batch, tmp):
    out = os.path.join(tmp, "moat.npy")
    cmd = [moat, "run", "-m", path, "--device", device, "--tokens", ",".join(map(str, tokens)), "-n", "0",
           "--ctx", "256", "--batch", str(batch), "--cache-type", "f32", "--logits-out", out]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        return None, (run.stderr or run.stdout).strip().splitlines()[-1:]
    return np.load(out), []


def bench(args, path, reps, tmp):
    """pp64 and tg32 (bench_vs_llamacpp's definitions) for llama.cpp and `moat bench` on the CPU,
    interleaved: each repetition runs llama.cpp then moat -> {runtime: {test: [t/s, ...]}}."""
    from bench_vs_llamacpp import PP, TG, LlamaCpp, moat_bench
    rng = np.random.default_rng(SEED)
    prompt = [int(t) for t in rng.integers(0, N_VOCAB, PP)]
    gen = [int(t) for t in rng.integers(0, N_VOCAB, TG)]
    llama = LlamaCpp(path, n_ctx=256)
    llama.set_threads(args.threads)
    runs = {"llama.cpp": {"pp": [], "tg": []}, "moat": {"pp": [], "tg": []}}
    try:
        for _ in range(reps):
            runs["llama.cpp"]["pp"].append(llama.pp(prompt, [])[0])
            runs["llama.cpp"]["tg"].append(llama.tg(prompt[0], gen, [])[0])
            rows, err = moat_bench(args.moat, path, args.threads, 1, [0], tmp)
            if err:
                raise SystemExit(err)
            runs["moat"]["pp"].append(rows[f"pp{PP}"]["avg_ts"])
            runs["moat"]["tg"].append(rows[f"tg{TG}"]["avg_ts"])
    finally:
        llama.close()
    return runs, PP, TG


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moat", default=os.path.join(ROOT, "build", "bin", "moat"))
    ap.add_argument("--archs-bin", default="/tmp/llama-tools/bin/test-llama-archs")
    ap.add_argument("--llamacpp", metavar="PYTHON", default=sys.executable,
                    help="a Python with llama-cpp-python 0.3.36 (default: this one)")
    ap.add_argument("--devices", default="cpu,opencl:0")
    ap.add_argument("--tokens", type=int, default=192)
    ap.add_argument("--out", help="keep the files here (default: a temporary folder)")
    ap.add_argument("--archs", default=",".join(ARCHS), help="which of %(default)s")
    ap.add_argument("--bench", type=int, metavar="REPS", default=0,
                    help="also time pp64 / tg32 on the CPU, llama.cpp and moat interleaved, REPS rounds")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for --bench (default 2)")
    args = ap.parse_args()
    tokens = [int(t) for t in np.random.default_rng(SEED).integers(0, N_VOCAB, args.tokens)]

    worst = 0.0
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        os.makedirs(out, exist_ok=True)
        print(f"| file | bytes | device | pass | max abs d / max abs ref | argmax differ |")
        print(f"|---|---|---|---|---|---|")
        files = write_files(args.archs_bin, out, args.archs.split(","))
        indexed = [f for f in files if os.path.basename(f).split("-")[0] in INDEXED]
        for path in files + [with_top_k(f, TOP_K) for f in indexed]:
            ref = llama_logits_in(args.llamacpp, path, tokens)
            name = os.path.basename(path)
            for device in args.devices.split(","):
                for batch in (len(tokens), CHUNK):
                    label = "one pass" if batch == len(tokens) else f"chunks of {batch}"
                    got, why = moat_logits(args.moat, path, tokens, device, batch, tmp)
                    if got is None:
                        print(f"| {name} | {os.path.getsize(path)} | {device} | {label} | FAILED: {' '.join(why)} | |")
                        worst = float("inf")
                        continue
                    err = float(np.abs(got - ref).max() / np.abs(ref).max())
                    if not np.isfinite(err):  # NaN logits on either side fail
                        err = float("inf")
                    flips = int((got.argmax(-1) != ref.argmax(-1)).sum())
                    worst = max(worst, err)
                    print(f"| {name} | {os.path.getsize(path)} | {device} | {label} | {err:.2e} | {flips} of {len(tokens)} |")
            if args.bench and path in files:
                runs, pp, tg = bench(args, path, args.bench, tmp)
                timings.append((name, runs, pp, tg))
        for name, runs, pp, tg in timings:
            print(f"\n{name}, cpu, {args.threads} threads, {args.bench} interleaved rounds (tokens/s, mean and range):")
            print("| runtime | pp%d | tg%d |\n|---|---|---|" % (pp, tg))
            for runtime, r in runs.items():
                cells = [f"{np.mean(v):.1f} ({min(v):.1f}-{max(v):.1f})" for v in (r["pp"], r["tg"])]
                print(f"| {runtime} | {cells[0]} | {cells[1]} |")
    print(f"worst: {worst:.2e} (tolerance {TOLERANCE:g})")
    sys.exit(0 if worst <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
