#!/usr/bin/env python3
"""Aggregate decode speed of N sequences decoded together, moat against llama.cpp, in
interleaved rounds on one file (issue 20's "--parallel 8 against one stream").

    /tmp/toolsvenv/bin/python tools/bench_parallel.py [-m MODEL] [--moat LABEL=BINARY ...]
        [-n 64] [--parallel 1,8] [--rounds 3] [-t 2]

moat: `moat bench -m MODEL --device cpu -p 0 -n N --parallel 1,8 -r 3 -t T -o json` (its tg
rows: one pass per step over every sequence's next token). llama.cpp: llama-cpp-python's
bindings (the llama.cpp of llama-cpp-python 0.3.36), one context with n_seq_max = the
largest N, a one-token prompt per sequence, then N steps of one llama_decode over a token of
every sequence (what llama-batched-bench's S_TG measures); the same token ids, no sampling.
Each round runs every engine once per sequence count, so they share the machine's noise.
Prints a markdown table: tokens/s per engine and count (median of the rounds, min-max),
and each engine's ratio of N sequences to one.
"""

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def moat_rates(binary, model, n, counts, threads):
    """{sequences: aggregate tokens/s} from one `moat bench` run."""
    out = subprocess.run([binary, "bench", "-m", model, "--device", "cpu", "-p", "0", "-n", str(n), "--parallel",
                          ",".join(map(str, counts)), "-r", "3", "-t", str(threads), "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    return {int(row.get("n_seq") or 1): float(row["avg_ts"]) for row in json.loads(out) if row["n_gen"] > 0}


class LlamaBatched:
    """One llama.cpp context holding up to `sequences` sequences."""

    def __init__(self, path, sequences, n, threads):
        import llama_cpp as L
        self.L = L

        @L.llama_log_callback
        def _quiet(level, text, user_data):
            pass
        self._log = _quiet
        L.llama_log_set(_quiet, ctypes.c_void_p(0))
        L.llama_backend_init()
        self.model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
        if not self.model:
            raise RuntimeError("llama.cpp could not load " + path)
        cp = L.llama_context_default_params()
        cp.n_seq_max = sequences
        cp.n_ctx = sequences * (n + 16)
        cp.n_batch = cp.n_ubatch = max(sequences, 32)
        cp.n_threads = cp.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context of " + str(sequences) + " sequences")
        self.batch = L.llama_batch_init(cp.n_batch, 0, sequences)
        self.mem = L.llama_get_memory(self.ctx)

    def close(self):
        self.L.llama_batch_free(self.batch)
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)

    def step(self, sequences, position, token):
        b = self.batch
        b.n_tokens = sequences
        for s in range(sequences):
            b.token[s], b.pos[s], b.n_seq_id[s], b.logits[s] = token, position, 1, 1
            b.seq_id[s][0] = s
        if self.L.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        self.L.llama_synchronize(self.ctx)

    def rate(self, sequences, n, token=1):
        """Aggregate tokens/s of n decode steps of `sequences` sequences after a one-token prompt each."""
        self.L.llama_memory_clear(self.mem, True)
        self.step(sequences, 0, token)
        t0 = time.perf_counter()
        for i in range(n):
            self.step(sequences, 1 + i, token)
        return sequences * n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "models", "kjv-tiny.gguf"))
    ap.add_argument("--moat", action="append", default=[],
                    help="LABEL=BINARY (repeatable; default: moat=build/bin/moat)")
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("--parallel", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-t", "--threads", type=int, default=2)
    args = ap.parse_args()
    counts = [int(c) for c in args.parallel.split(",")]
    engines = [m.split("=", 1) for m in args.moat] or [["moat", os.path.join(ROOT, "build", "bin", "moat")]]
    llama = LlamaBatched(args.model, max(counts), args.n, args.threads)
    rates = {label: {c: [] for c in counts} for label in [e[0] for e in engines] + ["llama.cpp"]}
    for r in range(args.rounds):
        for label, binary in engines:
            for c, v in moat_rates(binary, args.model, args.n, counts, args.threads).items():
                rates[label][c].append(v)
        for c in counts:
            llama.rate(c, 4)  # warm-up of this batch size
            rates["llama.cpp"][c].append(statistics.median(llama.rate(c, args.n) for _ in range(3)))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    llama.close()
    print(f"\n{os.path.basename(args.model)}, tg{args.n}, {args.threads} threads, {args.rounds} interleaved rounds "
          "(aggregate tokens/s, median (min-max))\n")
    print("| engine | " + " | ".join(f"{c} seq" for c in counts) + f" | {counts[-1]} / {counts[0]} |")
    print("|---|" + "---:|" * (len(counts) + 1))
    for label, by_count in rates.items():
        cells = [f"{statistics.median(v):,.0f} ({min(v):,.0f}-{max(v):,.0f})" for v in by_count.values()]
        ratio = statistics.median(by_count[counts[-1]]) / statistics.median(by_count[counts[0]])
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
