#!/usr/bin/env python3
"""moatless vs llama.cpp on the CPU: prompt processing and generation speed, peak memory.

What it measures
  Tokens per second of pp64 (one batch of 64 prompt tokens) and tg32 (32 single-token
  decodes after a one-token prompt, which is moatless' `moat bench` definition) for
  llama.cpp (through llama-cpp-python's low-level API) and for moatless (`moat bench
  --device cpu`), on the same GGUF files and the same thread counts, at each --depth: the
  number of tokens already in the cache when the test starts (0, the default: an empty
  cache; llama-bench's -d and moat bench's -d, test names "pp64 @ d4096"). With --memory
  P,G: the peak resident memory (RSS) of each runtime, in a process of its own, for a
  P-token prompt followed by G decoded tokens. The files are random-weight models with
  DeepSeek-V2-Lite's real dimensions (hidden 2048, 16 heads, MLA without q-LoRA: kv_lora
  512, qk_nope 128, qk_rope 64, v_head 128; 64 routed experts top-6 + 2 shared, expert
  FFN 1408, dense FFN 10944, vocabulary 102400, context 163840 by YaRN factor 40 over
  4096) cut to 4 layers (1 dense + 3 MoE), stored as F16, Q8_0 and Q4_0. With random
  weights the speed is what a full V2-Lite layer costs, the text is noise.

How
  1. Writes the GGUFs (llama.cpp's deepseek2 keys and tensor names, the current
     attn_k_b / attn_v_b layout, the real DeepSeek LLM vocabulary copied from
     /work/shared/data/vocab/deepseek-llm.gguf) into --models (default
     /tmp/moat-bench-models), reusing files already there. Weights are N(0, 0.02^2),
     seeded per tensor, so the three files hold the same model; norms are ones (F32), the
     router stays F32, the rest is quantised with gguf.quants (rows that are not a
     multiple of 32 would stay F16, as llama.cpp's converter does). q4_k_m has the types
     of llama.cpp's Q4_K_M mix: Q4_K, Q6_K for output.weight and the ffn_down of layers 0
     and 2 (its use_more_bits rule for 4 layers); rows that are not a multiple of 256
     (attn_k_b, the dense and the expert ffn_down) Q8_0 where llama.cpp's quantiser would
     fall back to Q5_0 / Q8_0 (this file predates moat's Q5_0; llama-q4_k_m below is the
     real mix). Its blocks are random bytes with their f16 scales
     set so values have about the others' spread (a speed benchmark: gguf.quants has no
     K-type quantiser, and ggml's own, called per tensor, takes hours on this machine);
     it holds another random model than the other files. The files carry
     attention.q_lora_rank = 0: llama.cpp takes a DeepSeek-V2 file for "lite" (attn_q, no
     q-LoRA) only when it has 27 layers, and otherwise wants that key; 0 selects attn_q.
     llama-q4_k_m is what llama.cpp's own quantiser makes of the F16 file with Q4_K_M
     (llama_model_quantize through llama-cpp-python, the same llama.cpp as the peer, as
     `llama-quantize v2lite-4l-f16.gguf out.gguf Q4_K_M` would): Q4_K, Q6_K for the output
     and half the ffn_down, Q5_0 / Q8_0 where rows are not multiples of 256 — the file the
     acceptance of issue 16 names. llama-q5_k_m, llama-q4_1, llama-iq4_xs, llama-iq4_nl and
     llama-mxfp4_moe are made the same way (Q5_K_M's 128-wide rows fall back to Q5_1;
     IQ4_XS's to IQ4_NL; MXFP4_MOE: MXFP4 experts, Q8_0 elsewhere).
     A file from before the context was 163840 (it said 4096, which stops moat bench at
     -d 4096) gets that key rewritten in place.
  2. For each file, each thread count and each repetition, alternately: llama.cpp (model
     loaded once per file, n_ctx max(D) + max(64, 33) rounded up to a multiple of 256, at
     least 512 = n_batch = n_ubatch; llama_decode timed with time.perf_counter around the
     decode calls only, after one untimed warm-up of each test at each depth;
     llama_perf_context's own timings kept as a cross-check) and moatless (`moat bench
     -m FILE --device cpu -p 64 -n 32 -d D,... -t T --json F`; moat bench warms up and
     excludes JIT compilation from its timings; its rows are read by test name). Each
     llama.cpp run clears the KV cache (llama_memory_clear) and decodes the depth, D
     random token ids (fixed seed) in batches of at most 512, untimed, as moat bench
     does; then pp decodes its 64 tokens at positions D..D+63 in one batch, and tg one
     untimed token at position D and 32 timed single tokens after it. With --interleave
     rep (default) moat bench runs once per repetition with -r 1 and the mean +- sd is
     taken over those runs; with --interleave block it runs once per thread count with
     -r N and its own avg_ts / stddev_ts are used. Either way all depths run in each
     block, llama.cpp and moatless alike.
  3. Prints a Markdown table, a row per thread count, depth and test: t/s mean +- sd of
     both runtimes, moatless / llama.cpp, and for tg decode's use of memory bandwidth:
     moat bench's bandwidth_share (weight bytes read per token x t/s over the host read
     bandwidth moat bench measures, bandwidth_gbs), and the same computed here from the
     file (non-expert weights and the output matrix in full, one embedding row, 6 of 64
     routed experts per MoE layer) for both runtimes; weights only, the cache a token
     reads at a depth is not counted. The load average (1 min) at the start and end of
     each block is in the table too: the numbers are only as good as the machine was
     quiet. The JSON (--json) has every row, with moat bench's own rows of the test
     (per-token traffic, peak_rss_bytes, ...) in moat_json.
  --memory P,G, per file, with the first --threads value, one runtime at a time: moatless
  as `moat run -m FILE --tokens ID,... -n G --ctx C --batch 512 -t T` (P random prompt
  ids, fixed seed; G greedy tokens, fewer if it samples the end-of-text token, and the
  table says how many), llama.cpp in a child python (this script, hidden mode
  --child-llama) that loads the model with n_ctx = C, decodes the same P ids in batches
  of 512 and then G single tokens (random ids: the cost is the same), C = P + G rounded
  up to a multiple of 256. Each runs under a small python wrapper that reports
  ru_maxrss of its one child (RUSAGE_CHILDREN): on Linux exec keeps the high-water mark
  of the address space it replaces, so a child of this (large) process would inherit
  its peak. The llama.cpp child also records its own ru_maxrss after importing
  llama_cpp, before loading the model (the python baseline: interpreter, numpy, gguf,
  llama_cpp); the table gives moatless / llama.cpp against llama.cpp's peak minus that.
  --check compares the logits of an 8-token prompt on the F16 file (then on the other
  --types): llama.cpp (logits of every position) against `moat run --tokens ...
  --logits-out`: max|d| / max|ref| and whether the top-1 tokens agree.

How to run
  python3 -m venv V && V/bin/pip install llama-cpp-python gguf numpy
  V/bin/python tools/bench_vs_llamacpp.py [--types f16,q8_0,q4_0] [--threads 1,2] [-r 3]
      [--depth 0,4096] [--memory 4096,32] [--moat build/bin/moat]
      [--models /tmp/moat-bench-models] [--json OUT.json] [--check]
  --check-only and --memory-only skip the speed benchmark. Linux only (ru_maxrss in KiB,
  os.getloadavg).
"""

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

import gguf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = "/work/shared/data/vocab/deepseek-llm.gguf"
PP, TG = 64, 32
N_BATCH = 512  # llama.cpp's n_batch = n_ubatch, moat run's --batch, and the depth's fill batches in both runtimes
CTX_STEP = 256  # llama.cpp's n_ctx and moat run's --ctx are rounded up to a multiple of this many tokens
SEED = 1234
STD = 0.02

# DeepSeek-V2-Lite's config.json, 4 layers instead of 27.
CFG = dict(n_layer=4, n_dense=1, hidden=2048, n_head=16, kv_lora=512, qk_nope=128, qk_rope=64, v_head=128,
           n_expert=64, n_expert_used=6, n_expert_shared=2, ff_expert=1408, ff_dense=10944, vocab=102400,
           ctx=163840, rope_theta=10000.0, rms_eps=1e-6, yarn_factor=40.0, yarn_orig_ctx=4096, yarn_beta_fast=32.0,
           yarn_beta_slow=1.0, mscale=0.707, mscale_all_dim=0.707)

Q = gguf.GGMLQuantizationType
FILE_TYPES = {"f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16),
              "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
              "q4_0": (Q.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
              "q4_k_m": (Q.Q4_K, gguf.LlamaFileType.MOSTLY_Q4_K_M),
              # llama.cpp's quantiser on the f16 file (types that need no importance matrix)
              "llama-q4_k_m": (None, gguf.LlamaFileType.MOSTLY_Q4_K_M),
              "llama-q5_k_m": (None, gguf.LlamaFileType.MOSTLY_Q5_K_M),
              "llama-q4_1": (None, gguf.LlamaFileType.MOSTLY_Q4_1),
              "llama-iq4_xs": (None, gguf.LlamaFileType.MOSTLY_IQ4_XS),
              "llama-iq4_nl": (None, gguf.LlamaFileType.MOSTLY_IQ4_NL),
              "llama-mxfp4_moe": (None, gguf.LlamaFileType.MOSTLY_MXFP4_MOE),
              "llama-iq2_xxs": (None, gguf.LlamaFileType.MOSTLY_IQ2_XXS)}  # made by hand: see NEEDS_IMATRIX
# llama.cpp quantises these only with an importance matrix: the file must exist already, made
# with llama.cpp's tools (tools/build_llama_tools.sh) from the F16 file, e.g.
#   llama-imatrix -m v2lite-4l-f16.gguf -f kjv-train.txt --chunks 4 -c 256 -o v2lite-4l.imatrix.gguf
#   llama-quantize --imatrix v2lite-4l.imatrix.gguf v2lite-4l-f16.gguf v2lite-4l-llama-iq2_xxs.gguf IQ2_XXS
NEEDS_IMATRIX = {"llama-iq2_xxs"}


def q4_k_m_type(name, shape):
    """The tensor types of a Q4_K_M file as llama.cpp picks them for these 4 layers."""
    if shape[-1] % 256 != 0:
        return Q.Q8_0  # llama.cpp: Q4_K -> Q5_0, Q6_K -> Q8_0 (see the docstring)
    if name == "output.weight":
        return Q.Q6_K
    if ".ffn_down" in name and name.split(".")[1] in ("0", "2"):
        return Q.Q6_K
    return Q.Q4_K


# f16 scale fields of the synthetic blocks: (byte offset, value) so that values spread
# about like N(0, STD^2) (Q4_K: d * 6-bit scale * nibble - dmin * 6-bit min; Q6_K: d *
# int8 scale * (q - 32); Q8_0: d * int8).
SYNTHETIC_SCALES = {Q.Q4_K: [(0, STD / 200), (2, STD / 200)], Q.Q6_K: [(208, STD / 1000)], Q.Q8_0: [(0, STD / 70)]}


def synthetic_blocks(rows, shape, qtype, rng):
    """`rows` rows of `shape`'s last dimension as random blocks of qtype."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (rows * shape[-1] // block, size), dtype=np.uint8)
    for offset, value in SYNTHETIC_SCALES[qtype]:
        raw[:, offset:offset + 2] = np.array([value], dtype="<f2").view(np.uint8)
    return raw.reshape(-1)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load1():
    return os.getloadavg()[0]


def round_up(n, step):
    return -(-n // step) * step


def token_ids(rng, n):
    """n random token ids in [100, vocab - 1000): the range of every test's tokens."""
    return rng.integers(100, CFG["vocab"] - 1000, n).tolist()


# ---------------------------------------------------------------------------------------
# The model files
# ---------------------------------------------------------------------------------------

def tensor_plan(c):
    """[(gguf name, numpy shape (rows last), kind)]; kind: norm (ones, F32), router (F32),
    weight (the file type)."""
    h, H = c["hidden"], c["n_head"]
    out = [("token_embd.weight", (c["vocab"], h), "weight")]
    for i in range(c["n_layer"]):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", (h,), "norm"),
                (b + "attn_q.weight", (H * (c["qk_nope"] + c["qk_rope"]), h), "weight"),
                (b + "attn_kv_a_mqa.weight", (c["kv_lora"] + c["qk_rope"], h), "weight"),
                (b + "attn_kv_a_norm.weight", (c["kv_lora"],), "norm"),
                (b + "attn_k_b.weight", (H, c["kv_lora"], c["qk_nope"]), "weight"),
                (b + "attn_v_b.weight", (H, c["v_head"], c["kv_lora"]), "weight"),
                (b + "attn_output.weight", (h, H * c["v_head"]), "weight"),
                (b + "ffn_norm.weight", (h,), "norm")]
        if i < c["n_dense"]:
            f = c["ff_dense"]
            out += [(b + "ffn_gate.weight", (f, h), "weight"), (b + "ffn_up.weight", (f, h), "weight"),
                    (b + "ffn_down.weight", (h, f), "weight")]
        else:
            E, f, fs = c["n_expert"], c["ff_expert"], c["ff_expert"] * c["n_expert_shared"]
            out += [(b + "ffn_gate_inp.weight", (E, h), "router"),
                    (b + "ffn_gate_exps.weight", (E, f, h), "weight"),
                    (b + "ffn_up_exps.weight", (E, f, h), "weight"),
                    (b + "ffn_down_exps.weight", (E, h, f), "weight"),
                    (b + "ffn_gate_shexp.weight", (fs, h), "weight"),
                    (b + "ffn_up_shexp.weight", (fs, h), "weight"),
                    (b + "ffn_down_shexp.weight", (h, fs), "weight")]
    out += [("output_norm.weight", (h,), "norm"), ("output.weight", (c["vocab"], h), "weight")]
    return out


def stored_type(shape, kind, qtype):
    if kind in ("norm", "router"):
        return Q.F32
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    return qtype if shape[-1] % block == 0 else Q.F16  # as convert_hf_to_gguf.py falls back


def nbytes(shape, qtype):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape[:-1], dtype=np.int64)) * shape[-1] // block * size


def chunks(name, shape, kind):
    """The tensor's values in slices of whole rows (about 4M elements each), the same for
    every file type: a generator per tensor, seeded by its name."""
    if kind == "norm":
        yield np.ones(shape, dtype=np.float32)
        return
    rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    step = max(1, (1 << 22) // cols)
    for r in range(0, rows, step):
        x = rng.standard_normal((min(step, rows - r), cols), dtype=np.float32)
        x *= STD
        yield x


def copy_tokenizer(w, path):
    r = gguf.GGUFReader(path)
    for key, field in r.fields.items():
        if not key.startswith("tokenizer.ggml."):
            continue
        sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), field.types[0], sub_type=sub)


def write_model(path, type_name, vocab):
    c = CFG
    qtype, ftype = FILE_TYPES[type_name]
    plan = [(n, s, k, q4_k_m_type(n, s) if type_name == "q4_k_m" and k not in ("norm", "router")
             else stored_type(s, k, qtype)) for n, s, k in tensor_plan(c)]
    tmp = path + ".part"
    w = gguf.GGUFWriter(tmp, "deepseek2")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(f"moatless-bench-v2lite-4l-{type_name}")
    w.add_block_count(c["n_layer"])
    w.add_context_length(c["ctx"])
    w.add_embedding_length(c["hidden"])
    w.add_feed_forward_length(c["ff_dense"])
    w.add_head_count(c["n_head"])
    w.add_head_count_kv(1)  # MLA: one latent "head"
    w.add_rope_freq_base(c["rope_theta"])
    w.add_layer_norm_rms_eps(c["rms_eps"])
    w.add_expert_used_count(c["n_expert_used"])
    w.add_expert_group_count(1)
    w.add_expert_group_used_count(1)
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(c["yarn_factor"])
    w.add_rope_scaling_orig_ctx_len(c["yarn_orig_ctx"])
    w.add_rope_scaling_yarn_beta_fast(c["yarn_beta_fast"])
    w.add_rope_scaling_yarn_beta_slow(c["yarn_beta_slow"])
    w.add_rope_scaling_yarn_log_mul(0.1 * c["mscale_all_dim"])
    w.add_file_type(ftype)
    w.add_leading_dense_block_count(c["n_dense"])
    w.add_vocab_size(c["vocab"])
    # V2-Lite has no q-LoRA; llama.cpp reads this key unless the file has 27 layers (its
    # test for "lite"), and 0 then selects attn_q. moatless reads 0 as "no q-LoRA" too.
    w.add_q_lora_rank(0)
    w.add_kv_lora_rank(c["kv_lora"])
    w.add_key_length(c["kv_lora"] + c["qk_rope"])  # the MLA layout: keys and values are the latent
    w.add_value_length(c["kv_lora"])
    w.add_key_length_mla(c["qk_nope"] + c["qk_rope"])
    w.add_value_length_mla(c["v_head"])
    w.add_expert_feed_forward_length(c["ff_expert"])
    w.add_expert_count(c["n_expert"])
    w.add_expert_shared_count(c["n_expert_shared"])
    w.add_expert_weights_scale(1.0)
    w.add_expert_weights_norm(False)
    w.add_rope_dimension_count(c["qk_rope"])
    copy_tokenizer(w, vocab)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, shape, kind, t in plan:
        w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes(shape, t), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    for name, shape, kind, t in plan:
        w.write_padding(fout, fout.tell())
        written = 0
        synthetic = type_name == "q4_k_m" and t in SYNTHETIC_SCALES
        rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
        rows, step = int(np.prod(shape[:-1])), max(1, (1 << 22) // shape[-1])
        pieces = ((synthetic_blocks(min(step, rows - r), shape, t, rng) for r in range(0, rows, step)) if synthetic
                  else (gguf.quants.quantize(x, t) for x in chunks(name, shape, kind)))
        for raw in pieces:
            raw.tofile(fout)
            written += raw.nbytes
        assert written == nbytes(shape, t), name
        w.write_padding(fout, written)
    w.close()
    os.replace(tmp, path)


def set_context_length(path):
    """Files written when CFG["ctx"] was 4096 (moat bench stops -d + -p at the file's
    context) differ from today's in that key alone: it is rewritten in place."""
    r = gguf.GGUFReader(path, "r+")
    field = r.get_field("deepseek2.context_length")
    value = field.parts[field.data[0]]
    if int(value[0]) != CFG["ctx"]:
        log(f"{path}: context_length {int(value[0])} -> {CFG['ctx']}")
        value[0] = CFG["ctx"]
        r.data.flush()


def ensure_models(types, folder, vocab):
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for t in types:
        p = os.path.join(folder, f"v2lite-4l-{t}.gguf")
        if os.path.exists(p):
            set_context_length(p)
        elif t in NEEDS_IMATRIX:
            sys.exit(f"{p} is missing: llama.cpp quantises {t} only with an importance matrix; make it as the "
                     "comment above NEEDS_IMATRIX in tools/bench_vs_llamacpp.py shows")
        elif FILE_TYPES[t][0] is None:  # llama.cpp quantises the F16 file
            f16 = ensure_models(["f16"], folder, vocab)["f16"]
            log(f"writing {p} with llama.cpp's quantiser ...")
            t0 = time.time()
            llama_quantize(f16, p, FILE_TYPES[t][1])
            log(f"  {time.time() - t0:.0f} s")
        else:
            log(f"writing {p} ...")
            t0 = time.time()
            write_model(p, t, vocab)
            log(f"  {time.time() - t0:.0f} s")
        paths[t] = p
    return paths


def llama_quantize(src, dst, file_type):
    """llama.cpp's llama_model_quantize (llama-cpp-python's binding) of src into dst."""
    import llama_cpp as L
    params = L.llama_model_quantize_default_params()
    params.ftype = int(file_type)
    params.nthread = os.cpu_count() or 1
    if L.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) != 0:
        raise RuntimeError(f"llama_model_quantize {src} -> {dst} failed")


def decode_bytes_per_token(path):
    """Weight bytes one decode step reads, by moatless' rule (runtime/model_size.h):
    routed experts n_used / n_expert of their bytes, the token embedding one row, the rest
    in full. Returns (that, file size)."""
    r = gguf.GGUFReader(path)
    total = 0
    for t in r.tensors:
        b = int(t.n_bytes)
        if "_exps" in t.name:
            total += b // CFG["n_expert"] * CFG["n_expert_used"]
        elif t.name == "token_embd.weight":
            total += b // CFG["vocab"]
        else:
            total += b
    return total


# ---------------------------------------------------------------------------------------
# llama.cpp
# ---------------------------------------------------------------------------------------

class LlamaCpp:
    """One model and one context, through llama-cpp-python's ctypes bindings."""

    def __init__(self, path, n_ctx, n_batch=N_BATCH):
        import llama_cpp as L
        self.L = L
        self.log_lines = []

        @L.llama_log_callback
        def _log(level, text, user_data):
            self.log_lines.append(text.decode("utf-8", "replace"))
            del self.log_lines[:-200]
        self._log_cb = _log  # keep the callback alive
        L.llama_log_set(_log, ctypes.c_void_p(0))
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            raise RuntimeError("llama.cpp could not load " + path + ":\n" + "".join(self.log_lines[-15:]))
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = n_ctx, n_batch, n_batch  # llama.cpp caps n_batch at n_ctx
        self.n_batch = min(n_batch, n_ctx)
        cp.no_perf = False
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context:\n" + "".join(self.log_lines[-15:]))
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        self.mem = L.llama_get_memory(self.ctx)
        self.info = {"flash_attn_type": cp.flash_attn_type,
                     "system_info": L.llama_print_system_info().decode(errors="replace").strip()}

    def close(self):
        L = self.L
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)

    def set_threads(self, n):
        self.L.llama_set_n_threads(self.ctx, n, n)

    def clear(self):
        self.L.llama_memory_clear(self.mem, True)

    def decode(self, tokens, pos0, all_logits=False):
        """tokens at positions pos0.. in one llama_decode -> its seconds."""
        if len(tokens) > self.n_batch:
            raise ValueError(f"{len(tokens)} tokens do not fit in one batch of {self.n_batch}")
        b = self.batch
        b.n_tokens = len(tokens)
        for i, tok in enumerate(tokens):
            b.token[i] = int(tok)
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if all_logits or i == len(tokens) - 1 else 0
        t0 = time.perf_counter()
        rc = self.L.llama_decode(self.ctx, b)
        self.L.llama_synchronize(self.ctx)
        dt = time.perf_counter() - t0
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        return dt

    def perf(self):
        p = self.L.llama_perf_context(self.ctx)
        return {"t_p_eval_ms": p.t_p_eval_ms, "n_p_eval": p.n_p_eval, "t_eval_ms": p.t_eval_ms, "n_eval": p.n_eval}

    def fill(self, tokens):
        """Clears the KV cache and decodes tokens at positions 0.. in batches of at most
        n_batch: prompt processing, or the cache a test runs after (its depth)."""
        self.clear()
        for i in range(0, len(tokens), self.n_batch):
            self.decode(tokens[i:i + self.n_batch], i)

    def pp(self, tokens, depth):
        """tokens in one batch after the cached ids `depth` (decoded untimed) -> (t/s by
        perf_counter, t/s by llama_perf_context)."""
        self.fill(depth)
        self.L.llama_perf_context_reset(self.ctx)
        dt = self.decode(tokens, len(depth))
        p = self.perf()
        internal = p["n_p_eval"] / p["t_p_eval_ms"] * 1e3 if p["t_p_eval_ms"] > 0 else None
        return len(tokens) / dt, internal

    def tg(self, first, tokens, depth):
        """first (a one-token prompt, untimed), then tokens one at a time, after the cached
        ids `depth` -> (t/s by perf_counter, t/s by llama_perf_context)."""
        self.fill(depth)
        self.decode([first], len(depth))
        self.L.llama_perf_context_reset(self.ctx)
        total = sum(self.decode([tok], len(depth) + 1 + i) for i, tok in enumerate(tokens))
        p = self.perf()
        internal = p["n_eval"] / p["t_eval_ms"] * 1e3 if p["t_eval_ms"] > 0 else None
        return len(tokens) / total, internal

    def logits(self, tokens):
        self.clear()
        self.decode(tokens, 0, all_logits=True)
        ptr = self.L.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(len(tokens), self.n_vocab)).copy()


# ---------------------------------------------------------------------------------------
# moatless
# ---------------------------------------------------------------------------------------

def test_name(kind, depth):
    """moat bench's (and llama-bench's) name of a test: "pp64", "tg32 @ d4096"."""
    name = f"pp{PP}" if kind == "pp" else f"tg{TG}"
    return f"{name} @ d{depth}" if depth else name


def moat_bench(moat, path, threads, reps, depths, tmpdir):
    """-> (the JSON rows by test name, None) or (None, the error)."""
    out = os.path.join(tmpdir, "moat.json")
    if os.path.exists(out):
        os.remove(out)
    cmd = [moat, "bench", "-m", path, "--device", "cpu", "-p", str(PP), "-n", str(TG), "-d", ",".join(map(str, depths)),
           "-r", str(reps), "-t", str(threads), "--json", out]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(out):
        return None, f"`{' '.join(cmd)}` exited {p.returncode}: {(p.stderr or p.stdout).strip()[-2000:]}"
    rows = json.load(open(out))
    return {r["test"]: r for r in rows if r.get("device") == "cpu"}, None


def mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


# ---------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------

def bench_file(type_name, path, threads_list, reps, depths, moat, interleave, tmpdir, rng):
    """Every thread count and depth of one file -> result rows, errors."""
    rows, errors = [], []
    prompt = token_ids(rng, PP)
    gen = token_ids(rng, TG + 1)
    cached = token_ids(np.random.default_rng([SEED, 1]), max(depths))  # depth d: the first d of these
    tests = [(d, k) for d in depths for k in ("pp", "tg")]  # in moat bench's order
    try:
        t0 = time.time()
        # llama.cpp caps n_batch at n_ctx: at least N_BATCH keeps both batch sizes at N_BATCH
        llama = LlamaCpp(path, max(N_BATCH, round_up(max(depths) + max(PP, TG + 1), CTX_STEP)))
        log(f"  llama.cpp loaded in {time.time() - t0:.1f} s (flash_attn_type {llama.info['flash_attn_type']})")
    except Exception as e:  # noqa: BLE001 -- reported, the other runtime still runs
        llama = None
        errors.append(f"llama.cpp, {type_name}: {e}")
        log("  " + errors[-1])

    def llama_test(d, k):
        return llama.pp(prompt, cached[:d]) if k == "pp" else llama.tg(gen[0], gen[1:], cached[:d])

    for t in threads_list:
        load_start = load1()
        res = {dk: {"llama": [], "llama_int": [], "moat": []} for dk in tests}
        moat_rows = []
        if llama:
            llama.set_threads(t)
            for d, k in tests:  # warm-up
                llama_test(d, k)

        def run_llama():
            if not llama:
                return
            for d, k in tests:
                s, i = llama_test(d, k)
                res[d, k]["llama"].append(s)
                res[d, k]["llama_int"].append(i)

        moat_failed = False

        def run_moat(r):  # after a failure, the same file and thread count are not retried
            nonlocal moat_failed
            if moat_failed:
                return
            got, err = moat_bench(moat, path, t, r, depths, tmpdir)
            if err:
                moat_failed = True
                errors.append(f"moatless, {type_name}, {t} threads: {err}")
                log("  " + errors[-1])
                return
            moat_rows.append(got)
            for d, k in tests:
                res[d, k]["moat"].extend(got[test_name(k, d)]["samples_ts"])

        if interleave == "rep":  # llama.cpp first on even repetitions, moatless first on odd ones
            for rep in range(reps):
                steps = (run_llama, lambda: run_moat(1))
                for step in steps if rep % 2 == 0 else reversed(steps):
                    step()
                last = "; ".join(f"{test_name(k, d)} llama {res[d, k]['llama'][-1:]} moat {res[d, k]['moat'][-1:]}"
                                 for d, k in tests)
                log(f"  {type_name} t={t} rep {rep + 1}/{reps}: {last} (load {load1():.2f})")
        else:  # one block each, the order alternating between thread counts
            moat_first = threads_list.index(t) % 2 == 1
            if moat_first:
                run_moat(reps)
            for _ in range(reps):
                run_llama()
            if not moat_first:
                run_moat(reps)
        load_end = load1()
        for d, k in tests:
            test = test_name(k, d)
            lm, lsd = mean_sd(res[d, k]["llama"])
            li, _ = mean_sd(res[d, k]["llama_int"])
            if interleave == "block" and moat_rows:
                mm, msd = moat_rows[0][test]["avg_ts"], moat_rows[0][test]["stddev_ts"]
            else:
                mm, msd = mean_sd(res[d, k]["moat"])
            share = mean_sd([m[test].get("bandwidth_share") for m in moat_rows])[0]
            bw = mean_sd([m[test].get("bandwidth_gbs") for m in moat_rows])[0]
            rows.append({"type": type_name, "threads": t, "depth": d, "test": test_name(k, 0), "llama_ts": lm,
                         "llama_sd": lsd, "llama_internal_ts": li, "moat_ts": mm, "moat_sd": msd,
                         "ratio": mm / lm if lm and mm else None, "moat_bandwidth_share": share,
                         "moat_bandwidth_gbs": bw,
                         "moat_build": sorted({m[test].get("build_commit") for m in moat_rows}),
                         "moat_decode_bytes_per_token": moat_rows[0][test].get("decode_bytes_per_token") if moat_rows else None,
                         "llama_samples": res[d, k]["llama"], "moat_samples": res[d, k]["moat"],
                         "moat_json": [m[test] for m in moat_rows],
                         "load_start": load_start, "load_end": load_end})
    if llama:
        llama.close()
    return rows, errors


def check_logits(moat, path, threads, tmpdir):
    """8 prompt tokens on `path`: llama.cpp's logits of every position vs moatless'."""
    tokens = token_ids(np.random.default_rng(7), 8)
    llama = LlamaCpp(path, N_BATCH)
    llama.set_threads(threads)
    ref = llama.logits(tokens)
    llama.close()
    out = os.path.join(tmpdir, "moat-logits.npy")
    cmd = [moat, "run", "-m", path, "--device", "cpu", "-t", str(threads), "--tokens", ",".join(map(str, tokens)),
           "--ctx", str(CTX_STEP), "--logits-out", out]  # --ctx: not the file's 163840 tokens of cache
    p = subprocess.run(cmd, capture_output=True, text=True)
    result = {"file": path, "tokens": tokens}
    if p.returncode != 0:
        result["error"] = f"`{' '.join(cmd)}` exited {p.returncode}: {(p.stderr or p.stdout).strip()[-2000:]}"
        return result
    got = np.load(out).astype(np.float32).reshape(ref.shape)
    top_ref, top_got = ref.argmax(-1), got.argmax(-1)
    srt = np.sort(ref[-1])
    result.update({
        "max_abs_diff_over_max_abs_ref": float(np.abs(got - ref).max() / np.abs(ref).max()),
        "max_abs_ref": float(np.abs(ref).max()),
        "top1_last_llama": int(top_ref[-1]), "top1_last_moat": int(top_got[-1]),
        "top1_last_agree": bool(top_ref[-1] == top_got[-1]),
        "top1_agree_positions": int((top_ref == top_got).sum()), "positions": len(tokens),
        "last_top1_margin_llama": float(srt[-1] - srt[-2]),
    })
    return result


# ---------------------------------------------------------------------------------------
# Peak memory (--memory)
# ---------------------------------------------------------------------------------------

# Runs argv[1:] as its only child, passing its output through, then prints as the last
# line of stdout the child's exit status and ru_maxrss (RUSAGE_CHILDREN: the maximum over
# waited-for children, here that one; KiB on Linux). Plain python without numpy: exec
# keeps the high-water mark of the address space it replaces, so the child's number
# starts at this wrapper's (about 10 MB), not at the benchmark process's.
RSS_WRAPPER = ("import json, resource, subprocess, sys\n"
               "rc = subprocess.run(sys.argv[1:]).returncode\n"
               "print(json.dumps({'rc': rc, 'maxrss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def memory_tokens(p, g):
    """A --memory run's p prompt ids (both runtimes) and the g ids llama.cpp decodes after them."""
    rng = np.random.default_rng([SEED, 2])
    return token_ids(rng, p), token_ids(rng, g)


def peak_rss(cmd):
    """cmd under RSS_WRAPPER -> (its peak RSS in bytes, its stdout lines, None) or (None, None, the error)."""
    p = subprocess.run([sys.executable, "-c", RSS_WRAPPER] + cmd, capture_output=True, text=True)
    lines = p.stdout.splitlines()
    status = json.loads(lines[-1]) if p.returncode == 0 and lines else {"rc": p.returncode}
    if status["rc"] != 0:
        shown = " ".join(a if len(a) <= 80 else a[:40] + "..." for a in cmd)
        return None, None, f"`{shown}` exited {status['rc']}: {p.stderr.strip()[-2000:]}"
    return status["maxrss_kib"] * 1024, lines[:-1], None


def child_llama(path, p, g, threads, n_ctx):
    """--child-llama: llama.cpp's side of a --memory run, in this (fresh) process. Prints one
    JSON line: ru_maxrss in bytes after importing llama_cpp, before the model (the python
    baseline), and at the end."""
    import llama_cpp  # noqa: F401 -- the library is part of the baseline
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    llama = LlamaCpp(path, n_ctx)
    llama.set_threads(threads)
    prompt, gen = memory_tokens(p, g)
    llama.fill(prompt)
    for i, tok in enumerate(gen):
        llama.decode([tok], p + i)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    llama.close()
    print(json.dumps({"baseline_rss_bytes": baseline, "peak_rss_bytes": peak}))
    return 0


def measure_memory(type_name, path, moat, p, g, threads):
    """Each runtime's peak RSS for p prompt tokens then g decoded ones on one file, one
    runtime at a time -> the result, errors."""
    n_ctx = round_up(p + g, CTX_STEP)
    prompt, _ = memory_tokens(p, g)
    out, errors = {"prompt": p, "generated": g, "n_ctx": n_ctx, "threads": threads}, []
    rss, lines, err = peak_rss([moat, "run", "-m", path, "--device", "cpu", "--tokens", ",".join(map(str, prompt)),
                                "-n", str(g), "--ctx", str(n_ctx), "--batch", str(N_BATCH), "-t", str(threads),
                                "--temp", "0"])
    if err:
        errors.append(f"moatless, {type_name}, memory: {err}")
    else:  # moat run --tokens prints the generated ids, and nothing else, on stdout
        out.update(moat_peak_rss_bytes=rss, moat_generated=len(" ".join(lines).split()))
    rss, lines, err = peak_rss([sys.executable, os.path.abspath(__file__), "--child-llama", path, str(p), str(g),
                                str(threads), str(n_ctx)])
    if err:
        errors.append(f"llama.cpp, {type_name}, memory: {err}")
    else:
        child = json.loads(lines[-1])
        out.update(llama_peak_rss_bytes=rss, llama_self_peak_rss_bytes=child["peak_rss_bytes"],
                   llama_baseline_rss_bytes=child["baseline_rss_bytes"])
    return out, errors


def memory_table(memory, sizes):
    gib = 1 << 30
    head = ("| type | file GiB | prompt + generated (context) | moatless peak RSS GiB | llama.cpp peak RSS GiB "
            "| llama.cpp − python baseline GiB | moatless / llama.cpp | tokens moatless generated |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for t, m in memory.items():
        moat = m.get("moat_peak_rss_bytes")
        llama = m.get("llama_peak_rss_bytes")
        own = llama - m["llama_baseline_rss_bytes"] if llama else None
        lines.append(f"| {t} | {sizes[t] / gib:.2f} | {m['prompt']} + {m['generated']} ({m['n_ctx']}) | "
                     f"{fmt(moat and moat / gib)} | {fmt(llama and llama / gib)} | {fmt(own and own / gib)} | "
                     f"{fmt(moat / own if moat and own else None)} | {m.get('moat_generated', '—')} |")
    return "\n".join(lines)


def fmt(m, sd=None, digits=2):
    if m is None:
        return "—"
    return f"{m:.{digits}f} ± {sd:.{digits}f}" if sd is not None else f"{m:.{digits}f}"


def table(rows, bytes_per_token):
    head = ("| type | threads | depth | test | llama.cpp t/s | llama.cpp t/s (own perf) | moatless t/s | moatless / llama.cpp "
            "| moat bench bandwidth share | weight GB/s moatless (llama.cpp) | share of measured bandwidth moatless "
            "(llama.cpp) | measured GB/s | load avg start→end |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        bw_cols = ["—", "—", "—"]
        share = "—"
        if r["test"].startswith("tg"):
            bpt = bytes_per_token[r["type"]]
            m = bpt * r["moat_ts"] / 1e9 if r["moat_ts"] else None
            l = bpt * r["llama_ts"] / 1e9 if r["llama_ts"] else None
            meas = r["moat_bandwidth_gbs"]
            bw_cols[0] = f"{fmt(m, digits=1)} ({fmt(l, digits=1)})"
            if meas:
                bw_cols[1] = (f"{fmt(m / meas * 100 if m else None, digits=0)}% "
                              f"({fmt(l / meas * 100 if l else None, digits=0)}%)")
                bw_cols[2] = f"{meas:.1f}"
            if r["moat_bandwidth_share"] is not None:
                share = f"{r['moat_bandwidth_share'] * 100:.0f}%"
        lines.append(f"| {r['type']} | {r['threads']} | {r['depth']} | {r['test']} | {fmt(r['llama_ts'], r['llama_sd'])} | "
                     f"{fmt(r['llama_internal_ts'])} | {fmt(r['moat_ts'], r['moat_sd'])} | {fmt(r['ratio'])} | "
                     f"{share} | {bw_cols[0]} | {bw_cols[1]} | {bw_cols[2]} | "
                     f"{r['load_start']:.2f}→{r['load_end']:.2f} |")
    return "\n".join(lines)


def main():
    if sys.argv[1:2] == ["--child-llama"]:  # the hidden mode of --memory: FILE P G THREADS N_CTX
        path, p, g, threads, n_ctx = sys.argv[2:]
        return child_llama(path, int(p), int(g), int(threads), int(n_ctx))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", default="f16,q8_0,q4_0", help="file types (f16, q8_0, q4_0, q4_k_m; llama-q4_k_m, llama-q5_k_m, llama-q4_1, llama-iq4_xs, "
                    "llama-iq4_nl, llama-mxfp4_moe, llama-iq2_xxs: llama.cpp's quantiser on the f16 file), comma-separated")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("-r", type=int, default=3, help="repetitions of each test (default 3)")
    ap.add_argument("--depth", default="0",
                    help="tokens in the cache before each test (llama-bench's -d), comma-separated (default 0)")
    ap.add_argument("--memory", metavar="P,G",
                    help="peak RSS of each runtime for a P-token prompt and G decoded tokens, first --threads value")
    ap.add_argument("--memory-only", action="store_true", help="only --memory, no speed benchmark")
    ap.add_argument("--moat", default=os.path.join(REPO, "build", "bin", "moat"), help="the moat binary")
    ap.add_argument("--models", default="/tmp/moat-bench-models", help="where the GGUFs are written and reused")
    ap.add_argument("--vocab", default=VOCAB, help="GGUF whose tokenizer.ggml.* keys the models get")
    ap.add_argument("--json", help="write the results as JSON too")
    ap.add_argument("--interleave", choices=("rep", "block"), default="rep",
                    help="rep: alternate the runtimes every repetition (moat bench -r 1 each time); "
                         "block: moat bench -r N once per thread count")
    ap.add_argument("--check", action="store_true",
                    help="first compare 8-token-prompt logits with llama.cpp's: the F16 file, then the other --types")
    ap.add_argument("--check-only", action="store_true", help="only --check, no benchmark")
    args = ap.parse_args()
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    for t in types:
        if t not in FILE_TYPES:
            ap.error(f"unknown type {t!r}; use {', '.join(FILE_TYPES)}")
    threads = [int(t) for t in args.threads.split(",")]
    depths = [int(d) for d in args.depth.split(",")]
    if min(depths) < 0:
        ap.error("--depth: a depth is a number of cached tokens, 0 or more")
    memory = [int(n) for n in args.memory.split(",")] if args.memory else None
    if memory and (len(memory) != 2 or memory[0] < 1 or memory[1] < 0):
        ap.error("--memory P,G: P >= 1 prompt tokens, G >= 0 generated ones")
    if args.memory_only and not memory:
        ap.error("--memory-only needs --memory P,G")

    wanted = (["f16"] if (args.check or args.check_only) and "f16" not in types else []) + types
    paths = ensure_models(wanted, args.models, args.vocab)
    sizes = {t: os.path.getsize(p) for t, p in paths.items()}
    bpt = {t: decode_bytes_per_token(p) for t, p in paths.items()}
    print("## Files\n")
    print("| type | file | size | weight bytes per decoded token |\n|---|---|---|---|")
    for t, p in paths.items():
        print(f"| {t} | {p} | {sizes[t] / 1e9:.3f} GB ({sizes[t]} B) | {bpt[t] / 1e6:.1f} MB |")
    print(flush=True)

    results = {"config": CFG, "pp": PP, "tg": TG, "depths": depths, "reps": args.r, "interleave": args.interleave,
               "files": {t: {"path": p, "bytes": sizes[t], "decode_bytes_per_token": bpt[t]} for t, p in paths.items()},
               "rows": [], "errors": [], "check": {}, "memory": {}}
    with tempfile.TemporaryDirectory(prefix="moat-vs-llama-") as tmp:
        if args.check or args.check_only:
            print("## Logit check (8 prompt tokens, every position; reference llama.cpp)\n")
            print("| type | max\\|Δ\\| / max\\|ref\\| | max\\|ref\\| | top-1 last position llama.cpp / moatless "
                  "| llama.cpp's top-1 margin | top-1 agrees at |\n|---|---|---|---|---|---|")
            for t in ["f16"] + [t for t in types if t != "f16"]:  # F16 first: the one that should agree best
                log(f"check: logits of an 8-token prompt on {paths[t]} (load {load1():.2f})")
                c = check_logits(args.moat, paths[t], min(threads), tmp)
                results["check"][t] = c
                if "error" in c:
                    print(f"| {t} | moatless failed: {c['error']} | | | | |")
                    results["errors"].append(f"moatless, {t}, check: {c['error']}")
                else:
                    print(f"| {t} | {c['max_abs_diff_over_max_abs_ref']:.3g} | {c['max_abs_ref']:.3g} | "
                          f"{c['top1_last_llama']} / {c['top1_last_moat']} "
                          f"({'agree' if c['top1_last_agree'] else 'DISAGREE'}) | {c['last_top1_margin_llama']:.3g} | "
                          f"{c['top1_agree_positions']}/{c['positions']} positions |", flush=True)
            print()
        if not (args.check_only or args.memory_only):
            rng = np.random.default_rng(SEED)
            for t in types:
                log(f"{t}: {paths[t]} (load {load1():.2f})")
                rows, errors = bench_file(t, paths[t], threads, args.r, depths, args.moat, args.interleave, tmp, rng)
                results["rows"] += rows
                results["errors"] += errors
            builds = sorted({b for r in results["rows"] for b in r["moat_build"] if b})
            print(f"## pp{PP} / tg{TG} at depth {', '.join(map(str, depths))}, CPU, {args.r} repetitions, mean ± sd "
                  f"(interleave: {args.interleave}; {os.cpu_count()} CPUs; moatless build {', '.join(builds) or '?'})\n")
            print(table(results["rows"], bpt) + "\n", flush=True)
        if memory:
            p, g = memory
            for t in types:
                log(f"memory: {p} + {g} tokens on {paths[t]}, {threads[0]} threads (load {load1():.2f})")
                results["memory"][t], errors = measure_memory(t, paths[t], args.moat, p, g, threads[0])
                results["errors"] += errors
            baselines = sorted({m["llama_baseline_rss_bytes"] for m in results["memory"].values()
                                if "llama_baseline_rss_bytes" in m})
            print(f"## Peak resident memory: {p} prompt tokens (batches of {N_BATCH}), then {g} decoded, "
                  f"{threads[0]} threads, each runtime in a process of its own\n")
            print(memory_table(results["memory"], sizes))
            print(f"\nmoatless / llama.cpp is against llama.cpp's peak minus its python baseline (ru_maxrss after "
                  f"importing llama_cpp, before the model: {', '.join(f'{b / (1 << 30):.3f}' for b in baselines) or '?'} "
                  f"GiB). Both runtimes map the file: the weight pages they read count in their RSS.\n")
        if results["errors"]:
            print("### Errors\n")
            for e in results["errors"]:
                print(f"- {e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
