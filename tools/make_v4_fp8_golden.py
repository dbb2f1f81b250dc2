#!/usr/bin/env python3
"""Writes tests/data/goldens/v4_fp8/: the v4 golden's model (tests/data/goldens/v4/, made by
make_v4_golden.py) stored the way DeepSeek releases V4 checkpoints -- FP8 E4M3 linear weights with
one UE8M0 (power-of-two, E8M0) scale per 128 x 128 block, routed experts in MXFP4 (packed E2M1
pairs with one E8M0 scale per 32 values of a row) -- and its reference logits, computed by
transformers' own DeepseekV4ForCausalLM on the weights dequantised from the stored bytes.

    /tmp/toolsvenv/bin/python tools/make_v4_fp8_golden.py [--converter LLAMA_CPP_DIR]

Reads v4/model.safetensors, v4/config.json and v4/tokens.json (nothing is re-seeded: the
weights are v4's, quantised). Files (tests/data/goldens/README.md, "v4_fp8/"):

  config.json        v4's, plus the release's "expert_dtype": "fp4" and
                     "quantization_config" {"activation_scheme": "dynamic", "fmt": "e4m3",
                     "quant_method": "fp8", "scale_fmt": "ue8m0", "weight_block_size": [128, 128]}
                     (tests/data/hf_v4_flash_config.json's form)
  model.safetensors  DeepSeek's released names, as v4's, with
                       FP8:   X.weight F8_E4M3 [out, in] + X.scale F8_E8M0 [ceil(out/128), ceil(in/128)]
                       MXFP4: layers.L.ffn.experts.E.wN.weight I8 [rows, cols/2] + .scale F8_E8M0 [rows, cols/32]
                     every other tensor as in v4/ (F32; ffn.gate.tid2eid I64). Written by this
                     script (safetensors' Python writers do not know F8_E8M0).
  tokens.json        v4's 320 ids (copied)
  logits.npy         f32 [320, 256]: transformers (5.23.0, f32, eager, one pass, no cache) on the
                     weights dequantised from the stored bytes

Which tensors are FP8 -- the release's, not a guess. A tensor dump of deepseek-ai/DeepSeek-V4-Flash
(all 46 shards; every name with its torch dtype) lists as float8_e4m3fn with a float8_e8m0fnu
`.scale` sibling exactly: attn.wq_a, attn.wq_b, attn.wkv, attn.wo_a, attn.wo_b, attn.indexer.wq_b,
ffn.shared_experts.w1 / w2 / w3 (and the MTP layer's e_proj / h_proj; no MTP layer here). In
bf16: embed, head, every norm, attn.compressor.wkv / wgate, attn.indexer.compressor.wkv / wgate,
attn.indexer.weights_proj, ffn.gate.weight; in f32: hc_*, attn_sink, ape, ffn.gate.bias; int64
tid2eid; the routed experts int8 [rows, cols/2] with float8_e8m0fnu scales [rows, cols/32].
DeepSeek's V4 inference/model.py agrees: `Linear` defaults to float8_e4m3fn (dtype "fp8"), while
Compressor declares wkv / wgate float32 ("wkv and wgate in the checkpoint is stored in bf16"),
Indexer declares weights_proj bfloat16, Gate's weight is a plain parameter, and wo_a, though
declared bfloat16, is noted "FP8 in checkpoint" (its convert.py dequantises wo_a's 128x128 blocks
to bf16); routed experts are float4_e2m1fn_x2 when expert_dtype is "fp4", and convert.py reads the
released expert bytes as torch.int8. So `I8` for the packed experts (llama.cpp's converter and
transformers' Fp8Dequantize view them as uint8 / int8 either way). (DeepSeek-V4-Flash-Base is
stored differently -- e.g. its attn.compressor.wkv has a .scale -- this golden follows V4-Flash,
whose config.json tests/data/hf_v4_flash_config.json is.)

Quantisation (exactly reproducible, no randomness):
  FP8, per 128 x 128 block of W [out, in] (edge blocks partial; grid [ceil(out/128), ceil(in/128)]):
    e = the smallest integer with amax <= 448 * 2^e (= ceil(log2(amax / 448)), computed exactly),
    clamped to [-127, 127]; an all-zero block gets e = -127 (scale byte 0: 2^-127, finite, never
    0 or inf). Stored: scale byte e + 127 (F8_E8M0), weight float8_e4m3fn(W / 2^e), rounded to
    nearest, ties to even (ml_dtypes' cast; |W / 2^e| <= 448, so nothing saturates). This is
    DeepSeek's own ue8m0 rule (kernel.py's fast_round_scale: 2^ceil(log2(amax * (1/448))), there
    in f32 bit arithmetic, here exact).
  MXFP4, per 32 consecutive values of a row of W [rows, cols] (cols a multiple of 32, asserted):
    e = the smallest integer with amax <= 6 * 2^e (ceil(log2(amax / 6))), clamped to [-127, 127],
    all-zero groups e = -127; code = the E2M1 value of x / 2^e nearest, ties to even (ml_dtypes'
    float4_e2m1fn cast; E2M1's even codes are the even mantissas, so 0.25 -> 0, 0.75 -> 1,
    1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4), a negative zero stored as code 0; codes
    0..7 = 0, 0.5, 1, 1.5, 2, 3, 4, 6 and 8..15 the same negated (sign bit 3). Packed: byte i of a
    row = code[2i] | code[2i + 1] << 4 (element 2i in the low nibble); scale byte e + 127.
    (ggml's own MXFP4 quantiser picks e = floor(log2(amax)) - 2 and clips values above 6 * 2^e;
    the ceil rule here never clips. Both are valid MXFP4; the stored bytes are what counts.)

Dequantisation, from the bytes as written (read back from the file, not from memory):
e4m3 byte -> ml_dtypes.float8_e4m3fn -> f32, times 2^(s - 127) of its block; fp4 code -> the
table value times 2^(s - 127) of its group (exact in f32). Those f32 weights go into transformers
through make_v4_golden.py's own loading (hf_state / load_weights / hf_forward, imported). Checks:
  - the file parsed by this script, by safetensors (safe_open, torch: F8_E4M3 -> float8_e4m3fn,
    F8_E8M0 -> float8_e8m0fnu, I8 -> int8) and re-dequantised in torch: bit-identical weights;
  - transformers loading the folder itself (config.json's quantization_config -> its
    FineGrainedFP8 quantizer, which renames the release's `.scale` to weight_scale_inv and, with
    no GPU, dequantises FP8 blocks and unpacks the int8 FP4 experts): the same logits, exactly;
    skipped with a note if that load is not possible here;
  - with --converter (default: llama-cpp-python 0.3.36's vendored llama.cpp, if present): llama.cpp's
    converter code (conversion/deepseek.py DeepseekV4Model.dequant_model for the FP8 tensors, its
    .scale sibling rule; conversion/base.py repack_mxfp4_blocks for the experts, decoded with that
    checkout's gguf-py MXFP4 dequantiser) reads the same f32 weights bit for bit;
  - make_v4_golden.py's numpy (f64) transcription of DeepSeek's V4 model.py on the same weights:
    max|d|/max|ref| < 2e-5 against transformers, the same indexer selections, the same argmax.
Margins: v4's seed was picked so that no choice is near a tie; quantising moves every weight, and
with the weights fixed there is nothing left to pick, so some choices now sit under
make_v4_golden.py's thresholds (indexer 8th / 9th score gap 1e-4 of the row's max|score|, expert
k-th / (k+1)-th biased score gap 2e-4, top-1 / top-2 logit gap 5e-4 of the row's max|logit|). The
script lists each (from hooks on transformers' router and indexer) with the effect of swapping it
-- the logits of transformers with just that choice made the other way: which rows change, by how
much, which argmax moves. (README, "v4_fp8/", has the numbers: one expert choice, layer 3 token
57, is a tie at f32 resolution.)
Printed: the FP8 and MXFP4 tensors, max relative dequantisation error per kind, max|logits -
v4/logits.npy| / max|v4/logits.npy| (the quantisation is real, and sane), file sizes.
Nothing here is needed to build, run or test the C++.
"""

import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import ml_dtypes
import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_v4_golden import (CFG, GOLDENS, LAYER_TYPES, LLAMA_CPP, MIN_ARGMAX_GAP, MIN_INDEX_GAP,  # noqa: E402
                            MIN_ROUTE_GAP, TOKENS, build_hf, hf_forward, load_weights, reference_forward,
                            reference_table, selection_table)

SRC = os.path.join(GOLDENS, "v4")
OUT = os.path.join(GOLDENS, "v4_fp8")

FP8_BLOCK = 128          # quantization_config.weight_block_size [128, 128]
FP8_MAX = 448.0          # largest finite float8_e4m3fn
FP4_GROUP = 32           # MXFP4: one E8M0 scale per 32 values of a row
FP4_MAX = 6.0            # largest E2M1 value
FP4_VALUES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                       -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], np.float32)

# DeepSeek-V4-Flash's FP8 tensors (the docstring gives the evidence). Anchored at "layers.N.":
# attn.compressor.wkv and attn.indexer.compressor.wkv (bf16 in the release) do not match.
FP8_RE = re.compile(r"layers\.\d+\.(attn\.(wq_a|wq_b|wkv|wo_a|wo_b|indexer\.wq_b)|ffn\.shared_experts\.w[123])\.weight$")
MXFP4_RE = re.compile(r"layers\.\d+\.ffn\.experts\.\d+\.w[123]\.weight$")

QUANT_CFG = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "scale_fmt": "ue8m0",
             "weight_block_size": [FP8_BLOCK, FP8_BLOCK]}

# safetensors dtype strings <-> numpy storage (1-byte formats kept as raw bytes)
ST_NUMPY = {"F32": np.float32, "I64": np.int64, "F8_E4M3": np.uint8, "F8_E8M0": np.uint8, "I8": np.int8}
# safetensors' own writer orders tensors by dtype, widest first, then by name; so every tensor's
# offset is a multiple of its element size.
ST_ORDER = ["I64", "F32", "F8_E8M0", "F8_E4M3", "I8"]


# ---------------------------------------------------------------------------------------
# quantisation
# ---------------------------------------------------------------------------------------

def pow2_exponent(amax, vmax):
    """Per element of amax (>= 0): the smallest integer e with amax <= vmax * 2^e, i.e.
    ceil(log2(amax / vmax)), exactly (a frexp estimate, then corrected with exact f64 products),
    clamped to [-127, 127]; amax 0 -> -127 (E8M0 byte 0, the smallest scale)."""
    a = np.asarray(amax, np.float64)
    pos = a > 0
    mant, ex = np.frexp(np.where(pos, a / vmax, 1.0))
    e = np.where(mant == 0.5, ex - 1, ex).astype(np.int64)
    e = np.where(a > vmax * np.exp2(e.astype(np.float64)), e + 1, e)      # too small: one up
    e = np.where(a <= vmax * np.exp2(e.astype(np.float64) - 1), e - 1, e)  # not the smallest: one down
    assert np.all(~pos | ((a <= vmax * np.exp2(e)) & (a > vmax * np.exp2(e - 1.0))))
    return np.clip(np.where(pos, e, -127), -127, 127)


def quant_fp8(w):
    """W f32 [out, in] -> (e4m3 bytes uint8 [out, in], E8M0 bytes uint8 [ceil(out/128), ceil(in/128)])."""
    out, inn = w.shape
    go, gi = -(-out // FP8_BLOCK), -(-inn // FP8_BLOCK)
    pad = np.zeros((go * FP8_BLOCK, gi * FP8_BLOCK), np.float32)
    pad[:out, :inn] = w
    blocks = pad.reshape(go, FP8_BLOCK, gi, FP8_BLOCK)
    e = pow2_exponent(np.abs(blocks).max(axis=(1, 3)), FP8_MAX)                 # [go, gi]
    scaled = blocks * np.exp2(-e.astype(np.float32))[:, None, :, None]          # exact: a power of two
    assert np.abs(scaled).max() <= FP8_MAX
    q = scaled.astype(ml_dtypes.float8_e4m3fn).reshape(go * FP8_BLOCK, gi * FP8_BLOCK)[:out, :inn]
    return np.ascontiguousarray(q).view(np.uint8), (e + 127).astype(np.uint8)


def quant_mxfp4(w, name):
    """W f32 [rows, cols] -> (packed int8 [rows, cols/2], E8M0 bytes uint8 [rows, cols/32])."""
    rows, cols = w.shape
    if cols % FP4_GROUP:
        raise SystemExit(f"{name}: {cols} columns, not a multiple of {FP4_GROUP}: MXFP4 cannot store it")
    groups = w.reshape(rows, cols // FP4_GROUP, FP4_GROUP)
    e = pow2_exponent(np.abs(groups).max(axis=-1), FP4_MAX)                      # [rows, cols/32]
    scaled = groups * np.exp2(-e.astype(np.float32))[..., None]
    assert np.abs(scaled).max() <= FP4_MAX
    codes = scaled.astype(ml_dtypes.float4_e2m1fn).view(np.uint8).reshape(rows, cols)
    assert codes.max() < 16
    codes = np.where(codes == 8, 0, codes).astype(np.uint8)                     # -0 -> +0
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    return packed.view(np.int8), (e + 127).astype(np.uint8)


def e8m0(b):
    """E8M0 bytes -> f32 2^(b - 127) (byte 255, NaN, never written)."""
    b = np.asarray(b, np.uint8)
    assert (b < 255).all()
    return np.exp2(b.astype(np.float32) - 127)


def dequant_fp8(q, s):
    """e4m3 bytes [out, in] + E8M0 bytes [go, gi] -> f32 [out, in]."""
    out, inn = q.shape
    scale = np.repeat(np.repeat(e8m0(s), FP8_BLOCK, 0), FP8_BLOCK, 1)[:out, :inn]
    return q.view(ml_dtypes.float8_e4m3fn).astype(np.float32) * scale


def dequant_mxfp4(packed, s):
    """packed int8 [rows, cols/2] + E8M0 bytes [rows, cols/32] -> f32 [rows, cols]."""
    p = packed.view(np.uint8)
    codes = np.stack([p & 0x0F, p >> 4], -1).reshape(p.shape[0], 2 * p.shape[1])
    return FP4_VALUES[codes] * np.repeat(e8m0(s), FP4_GROUP, 1)


def quantise(weights):
    """-> ({name: (safetensors dtype, array)}, {kind: [weight names]})."""
    stored, kinds = {}, collections.defaultdict(list)
    for name in sorted(weights):
        w = weights[name]
        base = name[:-len(".weight")]
        if FP8_RE.match(name):
            assert w.dtype == np.float32 and w.ndim == 2, name
            q, s = quant_fp8(w)
            stored[name], stored[base + ".scale"] = ("F8_E4M3", q), ("F8_E8M0", s)
            kinds["fp8"].append(name)
        elif MXFP4_RE.match(name):
            assert w.dtype == np.float32 and w.ndim == 2, name
            q, s = quant_mxfp4(w, name)
            stored[name], stored[base + ".scale"] = ("I8", q), ("F8_E8M0", s)
            kinds["mxfp4"].append(name)
        else:
            dt = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[w.dtype]
            stored[name] = (dt, w)
            kinds["unchanged"].append(name)
    return stored, kinds


def dequantise(stored):
    """{name: (dtype, array)} as read from the file -> {name: f32 / int64 array}, the released names."""
    out = {}
    for name, (dt, a) in stored.items():
        if name.endswith(".scale"):
            continue
        if dt == "F8_E4M3":
            out[name] = dequant_fp8(a, stored[name[:-len(".weight")] + ".scale"][1])
        elif dt == "I8":
            out[name] = dequant_mxfp4(a, stored[name[:-len(".weight")] + ".scale"][1])
        else:
            out[name] = a
    return out


# ---------------------------------------------------------------------------------------
# safetensors, written and read here
# ---------------------------------------------------------------------------------------

def write_safetensors(path, stored):
    """8-byte little-endian header length, the JSON header {name: {dtype, shape, data_offsets}}
    (compact, "__metadata__" {"format": "pt"} first, padded with spaces to a multiple of 8), then
    the data, tensors ordered as safetensors orders them (dtype widest first, then name)."""
    names = sorted(stored, key=lambda n: (ST_ORDER.index(stored[n][0]), n))
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for n in names:
        dt, a = stored[n]
        b = np.ascontiguousarray(a, ST_NUMPY[dt]).astype(np.dtype(ST_NUMPY[dt]).newbyteorder("<")).tobytes()
        assert off % np.dtype(ST_NUMPY[dt]).itemsize == 0
        header[n] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    """-> {name: (dtype, array)} straight from the bytes (1-byte float formats as uint8)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    assert header.pop("__metadata__") == {"format": "pt"}
    data, out, end = raw[8 + n:], {}, 0
    for name, m in header.items():
        a, b = m["data_offsets"]
        dt = np.dtype(ST_NUMPY[m["dtype"]]).newbyteorder("<")
        out[name] = (m["dtype"], np.frombuffer(data[a:b], dt).astype(dt.newbyteorder("=")).reshape(m["shape"]))
        end = max(end, b)
    assert end == len(data), "trailing bytes"
    return out


def torch_dequantised(path):
    """The same file through safetensors' own reader (torch: F8_E4M3 -> float8_e4m3fn, F8_E8M0 ->
    float8_e8m0fnu, I8 -> int8) and a torch dequantisation -> {name: f32 / int64 numpy}."""
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
    lut = torch.tensor(FP4_VALUES)
    out = {}
    for name, x in t.items():
        if name.endswith(".scale"):
            continue
        if x.dtype == torch.float8_e4m3fn:
            s = t[name[:-len(".weight")] + ".scale"]
            assert s.dtype == torch.float8_e8m0fnu
            s = s.float().repeat_interleave(FP8_BLOCK, 0)[:x.shape[0]].repeat_interleave(FP8_BLOCK, 1)[:, :x.shape[1]]
            out[name] = (x.float() * s).numpy()
        elif x.dtype == torch.int8:
            s = t[name[:-len(".weight")] + ".scale"]
            assert s.dtype == torch.float8_e8m0fnu
            u = x.view(torch.uint8).long()
            v = torch.stack([lut[u & 15], lut[u >> 4]], -1).flatten(1)
            out[name] = (v * s.float().repeat_interleave(FP4_GROUP, 1)).numpy()
        else:
            out[name] = x.numpy()
    return out


# ---------------------------------------------------------------------------------------
# cross-checks by other readers
# ---------------------------------------------------------------------------------------

def llama_cpp_dequantised(llama_dir, path):
    """llama.cpp's converter code on the file: DeepseekV4Model.dequant_model (FP8 weight + .scale
    sibling -> f32) and ModelBase.repack_mxfp4_blocks (experts -> ggml block_mxfp4), decoded with
    that checkout's gguf-py -> {name: f32} for the FP8 and MXFP4 weights."""
    harness = f"""
import sys
import numpy as np, torch
sys.path.insert(0, {os.path.join(llama_dir, 'gguf-py')!r}); sys.path.insert(0, {llama_dir!r})
import gguf
import conversion.deepseek as ds
from conversion.base import ModelBase
from safetensors import safe_open
with safe_open({path!r}, "pt") as f:
    t = {{k: f.get_tensor(k) for k in f.keys()}}
V4 = ds.DeepseekV4Model
m = object.__new__(V4)  # only dequant_model's state: model_tensors and the set it fills
m.model_tensors = {{k: (lambda v=v: v) for k, v in t.items()}}
m._dsv4_fp8_dequantized = set()
V4.dequant_model(m)
out = {{}}
for name in sorted(m._dsv4_fp8_dequantized):
    out[name] = m.model_tensors[name]().float().numpy()
for name in sorted(t):
    if name.endswith(".weight") and ".ffn.experts." in name:
        raw = ModelBase.repack_mxfp4_blocks(t[name], t[name[:-7] + ".scale"])
        out[name] = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.MXFP4).reshape(raw.shape[0], -1)
np.savez({path + '.llamacpp.npz'!r}, **out)
print(len(m._dsv4_fp8_dequantized), "fp8", sum(".ffn.experts." in k for k in out), "mxfp4")
"""
    run = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"llama.cpp's converter code fails on {path}:\n{run.stderr[-4000:]}")
    with np.load(path + ".llamacpp.npz") as z:
        got = {k: z[k] for k in z.files}
    os.remove(path + ".llamacpp.npz")
    return got, run.stdout.strip()


def transformers_reload(folder):
    """transformers loading the folder itself -> logits [T, vocab], or None with the reason."""
    from transformers.quantizers import quantizer_finegrained_fp8 as qf
    if torch.cuda.is_available() or transformers.utils.is_torch_xpu_available():
        return None, "a GPU is visible: transformers would run its FP8 kernels instead of dequantising"
    check, patched = qf.is_accelerate_available, False
    try:
        import accelerate  # noqa: F401
    except ImportError:
        # Only validate_environment asks for accelerate; the CPU dequantise path does not use it.
        qf.is_accelerate_available, patched = (lambda: True), True
    try:
        model, info = transformers.AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    except Exception as exc:  # noqa: BLE001  (reported, not fatal: an extra check)
        return None, f"from_pretrained failed: {type(exc).__name__}: {str(exc)[:300]}"
    finally:
        qf.is_accelerate_available = check
    model.eval()
    assert not any(info.values()), info  # no missing / unexpected / mismatched keys, no errors
    assert model.config.layer_types == LAYER_TYPES
    assert all(p.dtype == torch.float32 for p in model.parameters()), "not dequantised to f32"
    with torch.no_grad():
        logits = model(torch.tensor([TOKENS]), use_cache=False).logits[0].numpy().copy()
    note = ("its FineGrainedFP8 quantizer, no GPU here, so dequantised on load; no missing, unexpected or "
            "mismatched keys" + ("; accelerate is not installed here, so the quantizer's check for it was "
                                 "bypassed" if patched else ""))
    return logits, note


# ---------------------------------------------------------------------------------------

def make_config():
    with open(os.path.join(SRC, "config.json")) as f:
        src = json.load(f)
    assert src == CFG, "v4/config.json is not make_v4_golden.py's CFG"
    cfg = {}
    for k, v in src.items():
        cfg[k] = v
        if k == "eos_token_id":
            cfg["expert_dtype"] = "fp4"
        if k == "qk_rope_head_dim":
            cfg["quantization_config"] = dict(QUANT_CFG)
    with open(os.path.join(GOLDENS, "..", "hf_v4_flash_config.json")) as f:
        real = json.load(f)
    assert real["quantization_config"] == cfg["quantization_config"] and real["expert_dtype"] == cfg["expert_dtype"]
    return cfg


def decisions(model, weights, flip=None):
    """One transformers pass (make_v4_golden's loading) with hooks -> (logits [T, vocab], choices,
    picked {(kind, layer, token): the set kept}). choices:
    every routing choice of a score-routed MoE layer (the k-th against the (k+1)-th biased score,
    absolute, as transformers computes them in f32) and every indexer choice of a query with more
    than index_topk visible blocks (k-th against (k+1)-th score, over max|score| of the row), as
    (kind, layer, token, gap, kept, dropped). flip = (kind, layer, token): that one choice is
    swapped (the (k+1)-th kept instead of the k-th; the routing weights recomputed as the
    router does) and nothing else, to measure what a runtime that rounds it the other way gets."""
    ke, ki = CFG["num_experts_per_tok"], CFG["index_topk"]
    choices, picked, scores, hooks = [], {}, {}, []

    def router_hook(mod, args, out, i):
        logits, w, idx = out
        s = mod.score_fn(logits)
        biased = s + mod.e_score_correction_bias
        order = torch.argsort(biased, dim=-1, descending=True, stable=True)
        ranked = biased.gather(1, order).double()
        for t in range(len(order)):
            assert set(idx[t].tolist()) == set(order[t, :ke].tolist())
            choices.append(("expert", i, t, float(ranked[t, ke - 1] - ranked[t, ke]),
                            int(order[t, ke - 1]), int(order[t, ke])))
            picked["expert", i, t] = frozenset(order[t, :ke].tolist())
        if flip and flip[:2] == ("expert", i):
            t = flip[2]
            new = torch.cat([order[t, :ke - 1], order[t, ke:ke + 1]])
            idx, w = idx.clone(), w.clone()
            idx[t] = new
            w[t] = s[t, new] / (s[t, new].sum() + 1e-20) * mod.routed_scaling_factor
            return logits, w, idx

    def indexer_hook(mod, args, out, i):
        sc = scores.pop(i)[0]                                                 # [T, blocks]
        for t in range(sc.shape[0]):
            row = sc[t, :(t + 1) // 4].double()
            if len(row) <= ki:
                continue
            order = torch.argsort(row, descending=True, stable=True)
            assert set(out[0, t].tolist()) == set(order[:ki].tolist())
            choices.append(("indexer", i, t, float((row[order[ki - 1]] - row[order[ki]]) / row.abs().max()),
                            int(order[ki - 1]), int(order[ki])))
            picked["indexer", i, t] = frozenset(order[:ki].tolist())
            if flip == ("indexer", i, t):
                out = out.clone()
                out[0, t][out[0, t] == order[ki - 1]] = order[ki]
        return out

    load_weights(model, weights)
    for i, layer in enumerate(model.model.layers):
        if not layer.mlp.is_hash:
            hooks.append(layer.mlp.gate.register_forward_hook(lambda m, a, o, i=i: router_hook(m, a, o, i)))
        if LAYER_TYPES[i] == "compressed_sparse_attention":
            ix = layer.self_attn.compressor.indexer
            hooks.append(ix.scorer.register_forward_hook(lambda m, a, o, i=i: scores.__setitem__(i, o)))
            hooks.append(ix.register_forward_hook(lambda m, a, o, i=i: indexer_hook(m, a, o, i)))
    try:
        with torch.no_grad():
            logits = model(torch.tensor([TOKENS]), use_cache=False).logits[0].numpy().copy()
    finally:
        for h in hooks:
            h.remove()
    return logits, choices, picked


def rel_err(deq, w):
    return float(np.abs(deq.astype(np.float64) - w).max() / np.abs(w).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--converter", metavar="LLAMA_CPP_DIR", default=LLAMA_CPP,
                    help="a llama.cpp checkout with conversion/deepseek.py (DeepseekV4Model): its converter "
                         "code must read the same weights from the file (skipped if absent; default %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, numpy {np.__version__}, "
          f"ml_dtypes {ml_dtypes.__version__}")
    assert transformers.__version__ == "5.23.0", "make_v4_golden.py's checks are written against transformers 5.23.0"

    from safetensors.numpy import load_file
    weights = load_file(os.path.join(SRC, "model.safetensors"))
    with open(os.path.join(SRC, "tokens.json")) as f:
        assert json.load(f) == TOKENS
    f32_logits = np.load(os.path.join(SRC, "logits.npy"))
    f32_table = np.load(os.path.join(SRC, "indexer_topk.npy"))
    cfg = make_config()

    # quantise, write, read back
    stored, kinds = quantise(weights)
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        os.remove(os.path.join(args.out, f))
    st_path = os.path.join(args.out, "model.safetensors")
    write_safetensors(st_path, stored)
    back = read_safetensors(st_path)
    assert back.keys() == stored.keys()
    for n, (dt, a) in stored.items():
        assert back[n][0] == dt and np.array_equal(back[n][1].view(a.dtype), a), n
    deq = dequantise(back)
    assert deq.keys() == weights.keys()
    assert all(deq[k].dtype == weights[k].dtype and deq[k].shape == weights[k].shape for k in weights)
    for k in kinds["unchanged"]:
        assert np.array_equal(deq[k], weights[k]), k
    via_torch = torch_dequantised(st_path)
    assert via_torch.keys() == deq.keys()
    for k in deq:
        assert via_torch[k].dtype == deq[k].dtype and np.array_equal(via_torch[k], deq[k]), k
    print("  file read back by this script and by safetensors (torch) + torch dequantisation: bit-identical")

    if os.path.isfile(os.path.join(args.converter, "conversion", "deepseek.py")):
        got, msg = llama_cpp_dequantised(args.converter, st_path)
        assert sorted(got) == sorted(kinds["fp8"] + kinds["mxfp4"]), sorted(set(got) ^ set(kinds["fp8"] + kinds["mxfp4"]))
        for k, v in got.items():
            assert v.dtype == np.float32 and np.array_equal(v, deq[k]), k
        print(f"  llama.cpp's converter code ({args.converter}): dequant_model + repack_mxfp4_blocks / "
              f"gguf-py MXFP4 give the same f32 weights bit for bit ({msg})")
    else:
        print(f"  (no llama.cpp checkout at {args.converter}: converter cross-check skipped)")

    # quantisation error
    errs = {kind: max(rel_err(deq[k], weights[k]) for k in kinds[kind]) for kind in ("fp8", "mxfp4")}
    rms = {kind: max(float(np.sqrt(((deq[k].astype(np.float64) - weights[k]) ** 2).sum() / (weights[k].astype(np.float64) ** 2).sum()))
                     for k in kinds[kind]) for kind in ("fp8", "mxfp4")}

    # transformers on the dequantised weights (make_v4_golden's loading), checked by model.py (f64)
    model = build_hf(CFG)
    logits, raw = hf_forward(model, deq)
    table = selection_table(raw)
    ref, stats = reference_forward(CFG, deq)
    err = float(np.abs(logits - ref).max() / np.abs(ref).max())
    same_sel = np.array_equal(table, reference_table(stats))
    top2 = -np.sort(-logits, -1)[:, :2]
    row_gap = (top2[:, 0] - top2[:, 1]) / np.abs(logits).max(-1)
    argmax_gap = float(row_gap.min())
    print(f"  transformers vs model.py (f64) on the dequantised weights: max|d|/max|ref| = {err:.2e}, "
          f"same indexer selections {same_sel}, same argmax {bool((logits.argmax(-1) == ref.argmax(-1)).all())}")
    assert err < 2e-5 and same_sel and (logits.argmax(-1) == ref.argmax(-1)).all()

    # Margins. The weights are v4's, fixed, so no seed can be picked to clear make_v4_golden's
    # thresholds: list every choice under them and what swapping it (a runtime rounding it the
    # other way) does to the logits.
    hooked, choices, picked = decisions(model, deq)
    assert np.array_equal(hooked, logits)
    for kind, key in (("expert", "expert_gap"), ("indexer", "index_gap")):  # f32 hooks vs model.py's f64
        assert abs(min(c[3] for c in choices if c[0] == kind) - stats[key]) < 1e-5, (kind, stats[key])
    limit = {"expert": MIN_ROUTE_GAP, "indexer": MIN_INDEX_GAP}
    near = sorted((c for c in choices if c[3] < limit[c[0]]), key=lambda c: c[3])
    print(f"  margins (thresholds of make_v4_golden.py): indexer {stats['index_gap']:.3g} (> {MIN_INDEX_GAP:g}), "
          f"expert {stats['expert_gap']:.3g} (> {MIN_ROUTE_GAP:g}), argmax {argmax_gap:.3g} (> {MIN_ARGMAX_GAP:g}); "
          f"choices under them and the effect of swapping each:")
    ties = []
    for kind, layer, t, gap, kept, dropped in near:
        flipped = decisions(model, deq, (kind, layer, t))[0]
        d = np.abs(flipped - logits).max(-1) / np.abs(logits).max()
        rows = np.nonzero(d > 1e-6)[0]
        assert len(rows) and rows.min() == t, (kind, layer, t)
        moved = np.nonzero(flipped.argmax(-1) != logits.argmax(-1))[0]
        what = "block" if kind == "indexer" else "expert"
        print(f"    {kind} layer {layer} token {t}: gap {gap:.3g} ({what} {kept} kept, {dropped} dropped); "
              f"swapped: rows {rows.min()}..{rows.max()} ({len(rows)}) change, max|d|/max|ref| {d.max():.3g}, "
              f"argmax changes at {moved.tolist()}")
        ties.append({"kind": kind, "layer": layer, "token": t, "gap": gap, "kept": kept, "dropped": dropped,
                     "rows_changed": len(rows), "first_row": int(rows.min()), "max_rel_change": float(d.max()),
                     "argmax_changes": moved.tolist()})
    for t in np.argsort(row_gap):
        if row_gap[t] < MIN_ARGMAX_GAP:
            print(f"    argmax row {t}: top-1 minus top-2 = {row_gap[t]:.3g} x max|logit| of the row")
    assert logits.shape == (len(TOKENS), CFG["vocab_size"]) and logits.dtype == np.float32 and np.isfinite(logits).all()

    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    shutil.copyfile(os.path.join(SRC, "tokens.json"), os.path.join(args.out, "tokens.json"))
    np.save(os.path.join(args.out, "logits.npy"), logits)

    reloaded, note = transformers_reload(args.out)
    if reloaded is None:
        print(f"  transformers' own load of the folder: skipped ({note})")
        reload_err = None
    else:
        reload_err = float(np.abs(reloaded - logits).max() / np.abs(logits).max())
        print(f"  transformers' own load of the folder (FineGrainedFP8, dequantised): max|d|/max|ref| = "
              f"{reload_err:.2e} ({note})")
        assert reload_err < 1e-6

    # against v4's f32 model: its choices, its logits (everything quantised, then each kind alone)
    picked_f32 = decisions(model, weights)[2]
    assert picked_f32.keys() == picked.keys()
    n_exp = sum(k[0] == "expert" for k in picked)
    moved = {kind: sum(picked[k] != picked_f32[k] for k in picked if k[0] == kind) for kind in ("expert", "indexer")}
    print(f"  choices other than v4's f32 model makes: {moved['expert']} of {n_exp} expert selections (score-routed "
          f"layers x tokens), {moved['indexer']} of {len(picked) - n_exp} indexer selections (CSA layers x queries "
          f"with more than {CFG['index_topk']} visible blocks)")
    ref_max = np.abs(f32_logits).max()
    vs_f32 = float(np.abs(logits - f32_logits).max() / ref_max)
    against_f32 = {}
    for label, keep in (("fp8 + mxfp4 (this golden)", []), ("fp8 alone", kinds["mxfp4"]), ("mxfp4 alone", kinds["fp8"])):
        part = logits if not keep else hf_forward(model, {k: (weights[k] if k in keep else v) for k, v in deq.items()})[0]
        d = np.abs(part - f32_logits).max(-1) / ref_max
        against_f32[label] = {"max": float(d.max()), "median_row": float(np.median(d)),
                              "same_argmax": int((part.argmax(-1) == f32_logits.argmax(-1)).sum())}
    print("against v4/logits.npy (max|d| per row / max|v4 logit|: largest, median over rows; rows of 320 "
          "with v4's argmax):")
    for label, v in against_f32.items():
        print(f"  {label}: {v['max']:.3g}, {v['median_row']:.3g}; {v['same_argmax']}")
    files = {}
    for f in sorted(os.listdir(args.out)):
        path = os.path.join(args.out, f)
        os.chmod(path, 0o644)
        with open(path, "rb") as fh:
            files[f] = {"bytes": os.path.getsize(path), "sha256": hashlib.sha256(fh.read()).hexdigest()[:16]}
    print("FP8 (F8_E4M3 weight + F8_E8M0 scale per 128x128 block):")
    for k in kinds["fp8"]:
        print(f"  {k} {list(stored[k][1].shape)} scale {list(stored[k[:-7] + '.scale'][1].shape)}"
              f"  rel err {rel_err(deq[k], weights[k]):.3g}")
    generic = {n: re.sub(r"\.\d+\.", ".*.", n) for n in kinds["mxfp4"]}     # layers.*.ffn.experts.*.wN.weight
    shapes = collections.Counter((generic[n], stored[n][1].shape, stored[n[:-7] + ".scale"][1].shape, weights[n].shape)
                                 for n in kinds["mxfp4"])
    print(f"MXFP4 ({len(kinds['mxfp4'])} routed expert weights, I8 packed + F8_E8M0 per 32 of a row):")
    for (k, ws, ss, fs), c in sorted(shapes.items()):
        worst = max(rel_err(deq[n], weights[n]) for n in kinds["mxfp4"] if generic[n] == k)
        print(f"  {k} [{fs[0]}, {fs[1]}]: I8 {list(ws)}, scale {list(ss)}  x{c}  rel err <= {worst:.3g}")
    print(f"unchanged: {len(kinds['unchanged'])} tensors (F32, tid2eid I64)")
    summary = {
        "files": files, "total_bytes": sum(v["bytes"] for v in files.values()),
        "tensors_in_file": len(stored), "fp8": len(kinds["fp8"]), "mxfp4": len(kinds["mxfp4"]),
        "max_rel_dequant_err (max|dW|/max|W| per tensor, worst)": errs,
        "max_rel_rms_dequant_err (|dW|/|W| per tensor, worst)": rms,
        "logits_shape": list(logits.shape), "max_abs_logit": float(np.abs(logits).max()),
        "max|logits - v4/logits| / max|v4/logits|": vs_f32, "against_v4_logits": against_f32,
        "argmax_same_as_v4": int((logits.argmax(-1) == f32_logits.argmax(-1)).sum()),
        "indexer_rows_differing_from_v4": int((table != f32_table).any(-1).sum()),
        "choices_differing_from_v4": moved,
        "transformers_vs_model_py": err, "transformers_reload_vs_logits": reload_err,
        "index_gap": stats["index_gap"], "expert_gap": stats["expert_gap"], "argmax_gap": argmax_gap,
        "choices_under_thresholds": ties,
        "argmax_rows_under_threshold": {int(t): float(row_gap[t]) for t in np.nonzero(row_gap < MIN_ARGMAX_GAP)[0]},
        "clamped": {k: v for k, v in stats.items() if k.startswith("clamped")},
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
