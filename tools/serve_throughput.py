#!/usr/bin/env python3
"""Aggregate generation speed of `moat serve`: N concurrent chats against one, through the
HTTP API, with a client light enough not to be what is measured (the standard library's
http.client, a kept-alive connection per stream, whole responses: no per-token parsing,
so the client's threads stay off the two cores the server computes on).

    python3 tools/serve_throughput.py [--moat build/bin/moat] [-m MODEL] [--parallel 8]
        [--tokens 128] [--requests 4] [--rounds 3] [--port 18080]

It starts `moat serve --parallel N` itself, warms every batch size's plan, then runs
interleaved rounds of: `--requests` x N chats one after another on one connection (one
stream), then N connections each sending `--requests` chats (N streams). Every chat asks
for exactly --tokens tokens (ignore_eos). Prints a Markdown table of generated tokens per
wall second, the server's own /metrics share of busy time and its forward passes. tools/serve_openai_check.py
drives the same server with the official openai client instead (streams parsed chunk by
chunk in Python: on two cores the client is then the bottleneck).
"""
import argparse
import http.client
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request


def chat(conn, content, tokens):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": tokens,
                       "temperature": 0, "ignore_eos": True})
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    raw = response.read()
    if response.status != 200:
        raise RuntimeError(f"the server answered {response.status}: {raw[:300]!r}")
    return json.loads(raw)["usage"]["completion_tokens"]


def streams(port, n, requests, tokens, tag):
    """Generated tokens per wall second of n connections sending `requests` chats each
    (http.client reconnects by itself where the server closes a kept-alive connection)."""
    conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(n)]
    got, errors = [0] * n, []

    def worker(j):
        try:
            got[j] = sum(chat(conns[j], f"Tell me of day {j} in {tag} {i}", tokens) for i in range(requests))
        except Exception as e:  # reported by the caller: a thread's exception would only print
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(j,)) for j in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    for c in conns:
        c.close()
    if errors:
        sys.exit(f"a chat failed: {errors[0]}")
    return sum(got) / seconds


def metrics(port):
    """(busy seconds, passes) so far, from the server's /metrics (passes: 0 where a
    server older than moat_passes_total does not export it)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    busy = float(re.search(r"^moat_busy_seconds_total (\S+)", text, re.M).group(1))
    passes = re.search(r"^moat_passes_total (\S+)", text, re.M)
    return busy, int(float(passes.group(1))) if passes else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moat", default="build/bin/moat")
    p.add_argument("-m", "--model", default="")
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--requests", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--port", type=int, default=18080)
    args = p.parse_args()
    cmd = [args.moat, "serve", "--port", str(args.port), "--parallel", str(args.parallel), "--ctx", str(args.ctx),
           "-t", str(args.threads)] + (["-m", args.model] if args.model else [])
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        if "http://" not in line:
            sys.exit("moat serve did not start: " + line)
        for n in range(args.parallel, 0, -1):  # the decode passes of every batch size compiled
            streams(args.port, n, 1, 8, f"warm-up {n}")
        print(f"| round | 1 stream, tokens/s | {args.parallel} streams, tokens/s | ratio | server busy (1 / {args.parallel}) "
              f"| passes (1 / {args.parallel}) |")
        print("|---|---:|---:|---:|---|---|")
        for r in range(args.rounds):
            (b0, p0), t0 = metrics(args.port), time.perf_counter()
            alone = streams(args.port, 1, args.requests * args.parallel, args.tokens, f"round {r} alone")
            (b1, p1), t1 = metrics(args.port), time.perf_counter()
            together = streams(args.port, args.parallel, args.requests, args.tokens, f"round {r}")
            (b2, p2), t2 = metrics(args.port), time.perf_counter()
            print(f"| {r + 1} | {alone:.0f} | {together:.0f} | {together / alone:.2f}x | "
                  f"{100 * (b1 - b0) / (t1 - t0):.0f}% / {100 * (b2 - b1) / (t2 - t1):.0f}% | {p1 - p0} / {p2 - p1} |")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
