#!/usr/bin/env python3
"""Held-out perplexity of llama.cpp-quantised demo-model files, llama.cpp against moatless:
the acceptance table of issue 16 (every ggml quantisation type).

Files: the demo model models/kjv-tiny.gguf (F16) and the kjv-tiny-TYPE.gguf files that
tools/make_quant_models.py writes into --models (default /tmp/moat-quant-models); absent
ones are listed as absent. Text: models/kjv-heldout.txt (never trained on, and not in the
importance matrix).

Scoring convention (the same for both runtimes in the compared columns)
  moat perplexity's: the text's ids (no BOS) cut into non-overlapping windows of --ctx ids
  (256, the demo model's context; the last window shorter), each evaluated from an empty
  cache as [BOS] + its ids but the last, and every id scored.
  llama.cpp under that convention ("llama.cpp ppl"): the same ids through llama-cpp-python's
  low-level API (the llama.cpp that tools/build_llama_tools.sh builds the tools from), the
  same windows, logits of every position, log-softmax in double precision here.
  llama-perplexity's own number ("llama-perplexity", with --tools): it tokenizes the text
  with BOS, cuts it into chunks of --ctx tokens (dropping the incomplete last one), puts BOS
  in each chunk's first position and scores only the second half of each chunk (positions
  ctx/2 .. ctx-2 predicting the next token: ctx/2 - 1 tokens a chunk), so its tokens all see
  at least ctx/2 tokens of context. It is shown for reference and is not compared: its
  perplexity is lower than the every-token one. moat perplexity has no second-half mode.
Tokenization parity: the script checks that llama.cpp (llama_tokenize, no BOS, no special
parsing) and `moat tokenize --no-bos` give the same ids for the held-out text and says so;
the compared columns use moat's ids either way.

Table: file, type mix, llama.cpp ppl and its ratio to F16's, moat's ppl per --devices and
the ratio to moat's F16 ppl on that device, |moat ratio - llama ratio| / llama ratio against
the threshold (1 %; 3 % for Q2_K, Q3_K_M, IQ3_XXS, IQ2_XXS, IQ1_S) and pass / fail. A file
moat cannot load or run is a row with moat's error, not a failure of the script.

  /tmp/benchvenv/bin/python tools/quant_perplexity.py [--models /tmp/moat-quant-models]
      [--moat build/bin/moat] [--devices cpu,opencl:0] [--tools /tmp/llama-tools/bin]
      [--threads 2] [--json OUT.json]
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bench_vs_llamacpp as bench  # noqa: E402  its LlamaCpp wrapper of llama-cpp-python's low-level API
import make_quant_models as makeq  # noqa: E402  the type list and the type mix

DEMO = os.path.join(ROOT, "models", "kjv-tiny.gguf")
HELDOUT = os.path.join(ROOT, "models", "kjv-heldout.txt")
LOOSE = {"Q2_K", "Q3_K_M", "IQ3_XXS", "IQ2_XXS", "IQ1_S"}  # 3 % types; the others 1 %


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def moat_ids(moat, text_path):
    p = subprocess.run([moat, "tokenize", "-m", DEMO, "-f", text_path, "--no-bos"], capture_output=True, text=True,
                       check=True)
    return [int(x) for x in p.stdout.split()]


def llama_ids(path, text):
    import llama_cpp as L
    llm = bench.LlamaCpp(path, 256, 256)
    try:
        vocab = L.llama_model_get_vocab(llm.model)
        raw = text.encode("utf-8")
        buf = (L.llama_token * (len(raw) + 16))()
        n = L.llama_tokenize(vocab, raw, len(raw), buf, len(buf), False, False)
        assert n >= 0, n
        bos = L.llama_vocab_bos(vocab)
        add_bos = bool(L.llama_vocab_get_add_bos(vocab))
        return list(buf[:n]), bos, add_bos
    finally:
        llm.close()


def windows(ids, window):
    return [ids[s:s + window] for s in range(0, len(ids), window)]


def nll_sum(logits, targets):
    """Sum over rows of -log softmax(logits)[target], in double precision."""
    x = logits.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(x - m).sum(axis=1)))
    return float((lse - x[np.arange(len(targets)), targets]).sum())


def llama_ppl(path, ids, bos, window, threads):
    """Perplexity by moat perplexity's convention, through llama.cpp."""
    llm = bench.LlamaCpp(path, window, window)
    try:
        llm.set_threads(threads)
        total, count = 0.0, 0
        for w in windows(ids, window):
            logits = llm.logits([bos] + w[:-1])
            total += nll_sum(logits, np.array(w))
            count += len(w)
        return math.exp(total / count), count
    finally:
        llm.close()


def llama_perplexity_tool(tools, path, window, threads):
    """llama-perplexity's own estimate (its convention: second half of each chunk) or an error."""
    exe = os.path.join(tools, "llama-perplexity")
    p = subprocess.run([exe, "-m", path, "-f", HELDOUT, "-c", str(window), "-b", str(window), "-t", str(threads)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", p.stdout + p.stderr)
    if p.returncode == 0 and m:
        return float(m.group(1)), None
    # The tools linked by build_llama_tools.sh --libs lose the last lines of their log at exit
    # (the final chunk and "Final estimate"); the last running estimate "[N]ppl" is kept instead.
    chunks = re.findall(r"\[(\d+)\]([0-9.]+),", p.stdout + p.stderr)
    if p.returncode == 0 and chunks:
        return float(chunks[-1][1]), [f"running estimate after {chunks[-1][0]} chunks"]
    return None, (p.stdout + p.stderr).strip().splitlines()[-1:] or [f"exit {p.returncode}"]


def moat_ppl(moat, path, device, window, threads):
    cmd = [moat, "perplexity", "-m", path, "-f", HELDOUT, "--device", device, "--ctx", str(window), "--window",
           str(window), "-t", str(threads), "--json"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        # The last line, less "moat: error: FILE: ": the table names the file already.
        return None, (lines[-1].removeprefix("moat: error: ").removeprefix(path + ": ") if lines else
                      f"exit {p.returncode}")
    j = json.loads(p.stdout)
    return j["perplexity"], j["scored_tokens"]


def short_mix(mix):
    """The type mix without the F32 norms / routers: 'Q4_K 24, Q5_0 18, Q8_0 4, Q6_K 1'."""
    return ", ".join(f"{k} {n}" for k, n, _ in mix if k != "F32")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="/tmp/moat-quant-models")
    ap.add_argument("--moat", default=os.path.join(ROOT, "build", "bin", "moat"))
    ap.add_argument("--devices", default="cpu,opencl:0")
    ap.add_argument("--tools", default="", help="folder with llama-perplexity: adds its own estimate as a column")
    ap.add_argument("--types", default=",".join(makeq.TYPES))
    ap.add_argument("--ctx", type=int, default=256, help="window / chunk length (the demo model's context)")
    ap.add_argument("--threads", type=int, default=2, help="moat's -t and llama-perplexity's -t")
    ap.add_argument("--llama-threads", type=int, default=1,
                    help="llama.cpp's threads in this process (default 1: its worker threads spin while they wait, "
                         "which on a shared, loaded machine costs more than they gain on this small model)")
    ap.add_argument("--json", default="", help="write every row measured so far here, after each file")
    ap.add_argument("--reuse", default="", help="a --json of an earlier run: what its rows (same file path) measured "
                    "is kept (llama.cpp's numbers, moat's per device); only moat's errors and missing devices run again")
    args = ap.parse_args()
    devices = [d for d in args.devices.split(",") if d]
    with open(HELDOUT, encoding="utf-8") as f:
        text = f.read()

    ids = moat_ids(args.moat, HELDOUT)
    l_ids, bos, add_bos = llama_ids(DEMO, text)
    parity = ids == l_ids
    first_diff = next((i for i, (a, b) in enumerate(zip(ids, l_ids)) if a != b), min(len(ids), len(l_ids)))
    print(f"Tokenization of models/kjv-heldout.txt: moat {len(ids)} ids, llama.cpp {len(l_ids)} ids: "
          + ("identical." if parity else f"DIFFERENT from id {first_diff}; moat's ids are used for both runtimes.")
          + f" BOS id {bos} (llama.cpp adds BOS: {add_bos}).\n")

    files = [("F16", DEMO)] + [(t, os.path.join(args.models, f"kjv-tiny-{t.lower()}.gguf"))
                               for t in args.types.split(",") if t]
    reuse = {}
    if args.reuse:  # rows of an earlier run (e.g. llama.cpp's numbers, which do not change with moat)
        with open(args.reuse) as f:
            reuse = {r["file"]: r for r in json.load(f)["rows"] if not r.get("absent")}
    print("| file | type mix (non-F32 tensors) | llama.cpp ppl | ratio to F16 | "
          + ("llama-perplexity (its convention) | " if args.tools else "")
          + " | ".join(f"moat {d} ppl | ratio to F16" for d in devices)
          + " | \\|moat ratio - llama ratio\\| / llama ratio | threshold | result |")
    print("|" + "---|" * (7 + (1 if args.tools else 0) + 2 * len(devices)), flush=True)
    rows = []
    for name, path in files:
        row = measure(name, path, ids, bos, args, devices, reuse.get(path))
        rows.append(row)
        print(table_row(row, rows[0], args, devices), flush=True)
        if args.json:  # after every file: a cut-short run keeps what it measured
            with open(args.json, "w") as f:
                json.dump({"parity": parity, "n_ids": len(ids), "rows": rows}, f, indent=1)
    print(f"\nConvention of the compared columns: windows of {args.ctx} ids, [BOS] + ids[:-1], every id scored "
          f"({rows[0].get('scored')} tokens). llama-perplexity's own column scores the second half of each "
          f"{args.ctx}-token chunk only.")


def measure(name, path, ids, bos, args, devices, earlier=None):
    """A file's row; what `earlier` (a row of a previous run) measured successfully is kept."""
    row = {"type": name, "file": path}
    if earlier and "llama_ppl" in earlier:
        row.update({k: earlier[k] for k in ("mix", "llama_ppl", "scored", "llama_tool_ppl", "llama_tool_error")
                    if k in earlier})
        row["moat"] = {d: m for d, m in earlier.get("moat", {}).items() if m.get("ppl") is not None}
    if not os.path.exists(path):
        row["absent"] = True
        return row
    row["mix"] = short_mix(makeq.type_mix(path))
    t0 = time.time()
    if "llama_ppl" not in row:
        try:
            row["llama_ppl"], row["scored"] = llama_ppl(path, ids, bos, args.ctx, args.llama_threads)
        except Exception as e:  # noqa: BLE001  a file llama.cpp cannot run is a row, not the end
            row["llama_error"] = str(e).splitlines()[0]
    if args.tools and "llama_tool_ppl" not in row:
        row["llama_tool_ppl"], err = llama_perplexity_tool(args.tools, path, args.ctx, args.threads)
        if err:
            row["llama_tool_error"] = err[0]
    for d in devices:
        if d in row.get("moat", {}):
            continue
        ppl, extra = moat_ppl(args.moat, path, d, args.ctx, args.threads)
        row.setdefault("moat", {})[d] = {"ppl": ppl, "error": extra} if ppl is None else {"ppl": ppl, "scored": extra}
    log(f"{name}: {time.time() - t0:.0f} s  {row.get('llama_ppl')}  {row.get('moat')}")
    return row


def table_row(r, f16, args, devices):
    """One Markdown row; ratios against `f16`'s row (llama.cpp's and each device's own)."""
    name = os.path.basename(r["file"])
    if r.get("absent"):
        return f"| {name} | (absent: not made) |" + " |" * (5 + (1 if args.tools else 0) + 2 * len(devices))
    lp = r.get("llama_ppl")
    lr = lp / f16["llama_ppl"] if lp and f16.get("llama_ppl") else None
    cells = [name, r["mix"], f"{lp:.4f}" if lp else f"error: {r.get('llama_error')}", f"{lr:.4f}" if lr else "-"]
    if args.tools:
        tool = r.get("llama_tool_ppl")
        note = f" ({r['llama_tool_error']})" if r.get("llama_tool_error") else ""
        cells.append(f"{tool:.4f}{note}" if tool else f"error{note}")
    limit = 0.03 if r["type"] in LOOSE else 0.01
    devs, verdicts = [], []
    for d in devices:
        m = r["moat"].get(d) or {"ppl": None, "error": "not run"}
        base = (f16["moat"].get(d) or {}).get("ppl")
        if m["ppl"] is None:
            error = m["error"].removeprefix("moat: error: ").removeprefix(r["file"] + ": ")  # rows of older runs
            cells += [f"error: {error}", "-"]
            devs.append(f"{d}: -")
            verdicts.append(None)
            continue
        mr = m["ppl"] / base if base else None
        cells += [f"{m['ppl']:.4f}", f"{mr:.4f}" if mr else "-"]
        if mr and lr:
            dev = abs(mr - lr) / lr
            devs.append(f"{d}: {100 * dev:.2f} %")
            verdicts.append(dev <= limit)
        else:
            devs.append(f"{d}: -")
            verdicts.append(None)
    if False in verdicts:
        result = "FAIL"
    elif None in verdicts:
        result = "pass where run" if True in verdicts else "not run (moat error)"
    else:
        result = "pass"
    cells += ["; ".join(devs), f"{100 * limit:.0f} %", result]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
