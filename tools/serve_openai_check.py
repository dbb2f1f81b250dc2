#!/usr/bin/env python3
"""Drives `moat serve` with the official `openai` Python client (PyPI): the routes as a
client library sees them (chat and text completions, streamed and whole, models, an
error), then throughput: one stream alone against N concurrent streams, interleaved.

    python3 -m venv /tmp/toolsvenv && /tmp/toolsvenv/bin/pip install openai
    /tmp/toolsvenv/bin/python tools/serve_openai_check.py [--moat build/bin/moat] [-m MODEL]
        [--parallel 8] [--tokens 128] [--rounds 3] [--chat-template NAME]

It starts the server itself on a free port (--url to use a running one) and prints a
Markdown report. Throughput is generated tokens over wall time, measured on the client.
"""
import argparse
import concurrent.futures
import re
import subprocess
import sys
import time

import openai


def start_server(args):
    cmd = [args.moat, "serve", "--port", "0", "--parallel", str(args.parallel), "--ctx", str(args.ctx), "-t", str(args.threads)]
    if args.model:
        cmd += ["-m", args.model]
    if args.chat_template:
        cmd += ["--chat-template", args.chat_template]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://([\d.]+):(\d+)", line)
    if not match:
        proc.kill()
        sys.exit("moat serve did not start: " + line + proc.stderr.read())
    return proc, f"http://{match.group(1)}:{match.group(2)}/v1"


def stream_chat(client, model, content, max_tokens, temperature=0.0, ignore_eos=True):
    """One streamed chat: (text, finish_reason, completion tokens, seconds)."""
    start = time.perf_counter()
    text, reason, usage = "", None, None
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=temperature,
        stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": ignore_eos})
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reason = choice.finish_reason or reason
    return text, reason, usage.completion_tokens if usage else 0, time.perf_counter() - start


def routes(client, model):
    rows = []
    listed = [m.id for m in client.models.list().data]
    rows.append(("models.list", ", ".join(listed)))
    chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Who made the heaven?"}],
                                          max_tokens=24, temperature=0)
    rows.append(("chat.completions (whole)", f"{chat.usage.completion_tokens} tokens, finish {chat.choices[0].finish_reason}: "
                 f"{chat.choices[0].message.content!r}"))
    text, reason, tokens, _ = stream_chat(client, model, "Who made the heaven?", 24, ignore_eos=False)
    rows.append(("chat.completions (stream)", f"{tokens} tokens, finish {reason}, same text as whole: "
                 f"{text == chat.choices[0].message.content}"))
    done = client.completions.create(model=model, prompt="In the beginning", max_tokens=16, temperature=0)
    rows.append(("completions", f"{done.usage.completion_tokens} tokens: {done.choices[0].text!r}"))
    try:
        client.completions.create(model=model, prompt="x", max_tokens=16, temperature=7)
        rows.append(("bad temperature", "accepted (wrong)"))
    except openai.BadRequestError as e:
        rows.append(("bad temperature", f"BadRequestError {e.status_code}: {e.body['message'] if e.body else e}"))
    return rows


def throughput(client, model, parallel, tokens, rounds):
    """Interleaved rounds of: one stream alone, then `parallel` streams at once."""
    alone, together = [], []
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:  # warm-up: every batch size's plan compiled
        list(pool.map(lambda i: stream_chat(client, model, f"Warm up {i}", 8), range(parallel)))
    for r in range(rounds):
        _, _, n, seconds = stream_chat(client, model, f"Tell me of round {r}", tokens)
        alone.append(n / seconds)
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            results = list(pool.map(lambda i: stream_chat(client, model, f"Tell me of day {i} in round {r}", tokens),
                                    range(parallel)))
        total = sum(n for _, _, n, _ in results)
        together.append(total / (time.perf_counter() - start))
    return alone, together


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moat", default="build/bin/moat")
    p.add_argument("-m", "--model", default="")
    p.add_argument("--chat-template", default="", help="for a model whose template moat does not know (e.g. deepseek3)")
    p.add_argument("--url", default="", help="a running server's base URL (http://host:port/v1)")
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    proc, url = (None, args.url) if args.url else start_server(args)
    try:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
        model = client.models.list().data[0].id
        print(f"# moat serve driven by openai {openai.__version__} ({url}, --parallel {args.parallel})\n")
        print("| call | result |\n|---|---|")
        for name, result in routes(client, model):
            print(f"| {name} | {result.replace('|', '/')} |")
        alone, together = throughput(client, model, args.parallel, args.tokens, args.rounds)
        print(f"\n## Throughput: {args.tokens} generated tokens per stream, {args.rounds} interleaved rounds\n")
        print("| round | 1 stream, tokens/s | " + f"{args.parallel} streams, aggregate tokens/s | ratio |\n|---|---|---|---|")
        for i, (a, t) in enumerate(zip(alone, together)):
            print(f"| {i + 1} | {a:.1f} | {t:.1f} | {t / a:.2f}x |")
        print(f"| mean | {sum(alone) / len(alone):.1f} | {sum(together) / len(together):.1f} | "
              f"{sum(together) / sum(alone):.2f}x |")
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
