#!/usr/bin/env python3
"""Speculative decoding with the MTP layer, moat against llama.cpp on one GGUF, side by side.

Runs, in interleaved rounds (the machine is shared and noisy: every configuration is
measured once per round, and the table reports the median over rounds):

  moat      plain greedy decoding        moat run --temp 0 -n N
  moat      --spec mtp --draft D         the same, drafting D tokens per pass
  llama.cpp plain decoding               llama-bench -p 0 -n N (teacher-forced tg, as moat bench's)
  llama.cpp draft-mtp, D per pass        llama-speculative-simple --spec-type draft-mtp --spec-draft-n-max D

each greedy from the same prompts, with 2 threads. Tokens/s is generation only (prompt
excluded); acceptance is accepted / drafted over the run as each tool reports it.

    python3 tools/bench_mtp.py --model models/kjv-tiny.gguf --moat build/bin/moat \\
        --llama /tmp/llama-tools/build/bin --drafts 1,2,3 --rounds 5

llama-speculative-simple is an example of llama.cpp (LLAMA_BUILD_EXAMPLES=ON in the build
that tools/build_llama_tools.sh makes: `cmake -S <llama.cpp> -B /tmp/llama-tools/build
-DLLAMA_BUILD_EXAMPLES=ON && cmake --build /tmp/llama-tools/build --target llama-speculative-simple`).
Only the Python standard library is needed.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

PROMPTS = ["In the beginning", "And Jesus said unto them,", "The LORD is my shepherd;"]


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)[:300]} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return res.stdout, res.stderr


def moat_run(args, prompt, draft):
    cmd = [args.moat, "run", "-m", args.model, "-p", prompt, "-n", str(args.tokens), "--temp", "0", "-t", "2",
           "--ignore-eos", "--no-display-prompt"]
    if draft:
        cmd += ["--spec", "mtp", "--draft", str(draft)]
    out, err = run(cmd)
    m = re.search(r"generation (\d+) tokens, ([0-9.]+) tokens/s", err)
    acc = re.search(r"acceptance ([0-9.]+)%", err)
    return {"tps": float(m.group(2)), "tokens": int(m.group(1)), "acceptance": float(acc.group(1)) if acc else None,
            "text": out}


def llama_spec(args, prompt, draft):
    cmd = [os.path.join(args.llama, "llama-speculative-simple"), "-m", args.model, "-p", prompt, "-n", str(args.tokens),
           "--temp", "0", "-t", "2", "--spec-type", "draft-mtp", "--spec-draft-n-max", str(draft), "--ignore-eos"]
    out, err = run(cmd)
    text = out + err
    m = re.search(r"decoded\s+(\d+) tokens in\s+([0-9.]+) seconds, speed:\s+([0-9.]+) t/s", text)
    acc = re.search(r"accept\s+=\s+([0-9.]+)%", text)
    return {"tps": float(m.group(3)), "tokens": int(m.group(1)), "acceptance": float(acc.group(1)) if acc else None}


def llama_plain(args):
    out, _ = run([os.path.join(args.llama, "llama-bench"), "-m", args.model, "-p", "0", "-n", str(args.tokens), "-t", "2",
                  "-r", "1", "-o", "json"])
    return {"tps": float(json.loads(out)[0]["avg_ts"]), "acceptance": None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--moat", default="build/bin/moat")
    ap.add_argument("--llama", default="/tmp/llama-tools/build/bin", help="folder with llama-bench and llama-speculative-simple")
    ap.add_argument("--drafts", default="1,2,3")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    drafts = [int(d) for d in args.drafts.split(",")]
    configs = [("moat", "plain", 0)] + [("moat", f"mtp {d}", d) for d in drafts] + \
              [("llama.cpp", "plain (llama-bench tg)", 0)] + [("llama.cpp", f"draft-mtp {d}", d) for d in drafts]
    samples = {c: [] for c in configs}
    accept = {c: [] for c in configs}
    for r in range(args.rounds):
        for c in configs:
            engine, _, d = c
            if engine == "llama.cpp" and d == 0:
                res = [llama_plain(args)]
            else:
                res = [moat_run(args, p, d) if engine == "moat" else llama_spec(args, p, d) for p in PROMPTS]
            samples[c].append(statistics.mean(x["tps"] for x in res))
            accs = [x["acceptance"] for x in res if x["acceptance"] is not None]
            if accs:
                accept[c].append(statistics.mean(accs))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    base = {"moat": statistics.median(samples[configs[0]]),
            "llama.cpp": statistics.median(samples[("llama.cpp", "plain (llama-bench tg)", 0)])}
    print(f"| engine | decoding | tokens/s (median of {args.rounds}; min-max) | vs its plain | draft acceptance |")
    print("|---|---|---:|---:|---:|")
    for c in configs:
        engine, mode, _ = c
        med = statistics.median(samples[c])
        acc = f"{statistics.mean(accept[c]):.1f}%" if accept[c] else ""
        print(f"| {engine} | {mode} | {med:,.0f} ({min(samples[c]):,.0f}-{max(samples[c]):,.0f}) | "
              f"{med / base[engine]:.2f}x | {acc} |")


if __name__ == "__main__":
    main()
