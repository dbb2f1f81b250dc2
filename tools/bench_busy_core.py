#!/usr/bin/env python3
"""Decode speed with another process busy on one core: moatless at several -t, and
llama.cpp at several n_threads, side by side (issue 17, "threads that survive load").

What it measures
  Decode tokens per second, with a busy loop (`while :; do :; done`) pinned to --busy-core
  for the whole measurement, and without it (--no-busy). moatless: `moat run ... -t T`,
  its stats line on stderr ("generation N tokens, X tokens/s"); -t 0 is the default
  (the physical cores the process may run on). llama.cpp (--llama-model, through
  llama-cpp-python): a fresh process per run loads the file (n_ctx 512), evaluates the
  prompt ids, then evaluates --tokens ids one at a time, timed with time.perf_counter
  around those single-token evals only.

How
  Every repetition runs every configuration once, in order, so slow drifts of the
  machine (other processes) spread over all of them; the table gives each
  configuration's median, minimum and maximum, and the load average before and after.

Example (the measurement in docs/performance.md)
  /tmp/benchvenv/bin/python tools/bench_busy_core.py -r 5 \\
      --moat before=/work/main/build/bin/moat --moat after=build/bin/moat --threads 0,1,2 \\
      --llama-model /tmp/moat-bench-models/v2lite-4l-q4_0.gguf --llama-threads 1,2 \\
      -- -m /tmp/moat-bench-models/v2lite-4l-q4_0.gguf --tokens 1,2,3 -n 64 --temp 0
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

STATS = re.compile(r"generation (\d+) tokens, ([0-9.]+) tokens/s")

LLAMA_RUN = r"""
import sys, time
from llama_cpp import Llama
path, threads, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=512, verbose=False)
llm.eval([1, 2, 3])
start = time.perf_counter()
for i in range(n):
    llm.eval([4 + i])
print(n / (time.perf_counter() - start))
"""


def moat_rate(binary, threads, run_args):
    args = [binary, "run", *run_args] + (["-t", str(threads)] if threads else [])
    p = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    m = STATS.search(p.stderr)
    if p.returncode != 0 or not m:
        sys.exit(f"{' '.join(args)} failed (exit {p.returncode}):\n{p.stderr}")
    return float(m.group(2))


def llama_rate(model, threads, n):
    p = subprocess.run([sys.executable, "-c", LLAMA_RUN, model, str(threads), str(n)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"llama.cpp run failed (exit {p.returncode}):\n{p.stderr}")
    return float(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moat", action="append", default=[], metavar="LABEL=BINARY", help="a moat binary to measure")
    ap.add_argument("--threads", default="0,1,2", help="moat -t values (0: the default)")
    ap.add_argument("--llama-model", help="a GGUF for llama.cpp (llama-cpp-python must import)")
    ap.add_argument("--llama-threads", default="1,2", help="llama.cpp n_threads values")
    ap.add_argument("--llama-tokens", type=int, default=64, help="single-token evals timed")
    ap.add_argument("-r", "--repetitions", type=int, default=5)
    ap.add_argument("--busy-core", type=int, default=0)
    ap.add_argument("--no-busy", action="store_true", help="measure without the busy loop")
    ap.add_argument("run_args", nargs="*", help="arguments of moat run (after --)")
    a = ap.parse_args()

    configs = []  # (label, thunk)
    for spec in a.moat:
        label, _, binary = spec.partition("=")
        for t in [int(x) for x in a.threads.split(",")]:
            configs.append((f"moat {label} -t {t or 'default'}", lambda b=binary, t=t: moat_rate(b, t, a.run_args)))
    if a.llama_model:
        for t in [int(x) for x in a.llama_threads.split(",")]:
            configs.append((f"llama.cpp n_threads {t}", lambda t=t: llama_rate(a.llama_model, t, a.llama_tokens)))

    busy = None
    if not a.no_busy:
        busy = subprocess.Popen(["taskset", "-c", str(a.busy_core), "sh", "-c", "while :; do :; done"])
        time.sleep(0.5)
    load_before = os.getloadavg()[0]
    rates = {label: [] for label, _ in configs}
    try:
        for _ in range(a.repetitions):
            for label, measure in configs:
                rates[label].append(measure())
    finally:
        if busy:
            busy.kill()
            busy.wait()
    load_after = os.getloadavg()[0]

    print(f"busy loop on core {a.busy_core}" if busy else "no busy loop",
          f"| load average {load_before:.2f} -> {load_after:.2f} | {a.repetitions} repetitions")
    print("| configuration | median t/s | min | max |")
    print("|---|---:|---:|---:|")
    for label, values in rates.items():
        print(f"| {label} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |")


if __name__ == "__main__":
    main()
