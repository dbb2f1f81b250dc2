#!/usr/bin/env python3
"""Writes tests/data/goldens/llamacpp_keys/: the tiny V3 golden model (goldens/v3/model-f32.gguf)
re-keyed with deepseek2 metadata that DeepSeek's own releases do not use but llama.cpp
honours, and llama.cpp's logits for each file as the reference.

    /tmp/benchvenv/bin/pip install llama-cpp-python==0.3.36 gguf==0.19.0 numpy
    /tmp/benchvenv/bin/python tools/make_llamacpp_key_goldens.py

Files (each with llama.cpp's logits, float32 [48, 256], on goldens/tokens.json; the
weights are those of goldens/v3, so only the keys below differ from that model):
  linear.gguf       rope.scaling.type "linear", factor 2, rope.scaling.attn_factor 1.25
                    (no YaRN keys): positions divided by 2, cos / sin x 1.25, and llama.cpp's
                    deepseek2 kq_scale rule under a scaled rope
  scale-linear.gguf no rope.scaling.type (llama.cpp defaults it to linear) and the older
                    key rope.scale_linear = 3
  yarn-plain.gguf   YaRN without yarn_log_multiplier or original_context_length (llama.cpp
                    then scales cos / sin by 1 + 0.1 ln(factor) and takes the original
                    context from context_length)
  temperature.gguf  attention.temperature_scale 0.5, temperature_length 8 (Mistral-Large-3's
                    query temperature), the experts' gate and up fused into
                    ffn_gate_up_exps (convert_hf_to_gguf.py --fuse-gate-up-exps), and
                    head_count / expert_feed_forward_length / expert_used_count given as
                    per-layer arrays
llama.cpp runs the f32 weights on the CPU with an f32 cache (one batch of 48 tokens, every
position's logits).
Nothing here is needed to build, run or test the C++.
"""

import ctypes
import json
import os
import sys

import numpy as np
import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDENS = os.path.join(ROOT, "tests", "data", "goldens")
SOURCE = os.path.join(GOLDENS, "v3", "model-f32.gguf")
OUT = os.path.join(GOLDENS, "llamacpp_keys")
ARCH = "deepseek2"
YARN_KEYS = ["rope.scaling.type", "rope.scaling.factor", "rope.scaling.original_context_length",
             "rope.scaling.yarn_beta_fast", "rope.scaling.yarn_beta_slow", "rope.scaling.yarn_log_multiplier"]


def field_value(field):
    """A reader field -> (value, GGUFValueType, element type for arrays)."""
    vtype = field.types[0]
    if vtype == gguf.GGUFValueType.ARRAY:
        etype = field.types[-1]
        if etype == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data], vtype, etype
        return [field.parts[i].tolist()[0] for i in field.data], vtype, etype
    if vtype == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8"), vtype, None
    return field.parts[field.data[0]].tolist()[0], vtype, None


def rewrite(path, drop=(), add=None, arrays=(), fuse_gate_up=False):
    """SOURCE with keys `drop` (names without the arch prefix) removed, `add` set, `arrays`
    turned into per-layer arrays, and the experts' gate / up fused if asked."""
    reader = gguf.GGUFReader(SOURCE)
    writer = gguf.GGUFWriter(path, ARCH)
    n_layer = None
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        short = name[len(ARCH) + 1:] if name.startswith(ARCH + ".") else None
        if short in drop:
            continue
        value, vtype, etype = field_value(field)
        if short == "block_count":
            n_layer = value
        if short in arrays:
            writer.add_array(name, [value] * 3)  # the golden models have 3 layers
            continue
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, value, vtype, sub_type=etype)
        else:
            writer.add_key_value(name, value, vtype)
    assert n_layer == 3
    for key, (value, vtype) in (add or {}).items():
        writer.add_key_value(f"{ARCH}.{key}", value, vtype)
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    for name, data in tensors.items():
        if fuse_gate_up and name.endswith("ffn_gate_exps.weight"):
            up = tensors[name.replace("gate_exps", "up_exps")]
            fused = np.concatenate([data, up], axis=1)  # [E, 2F, D]: each expert's gate rows, then its up rows
            writer.add_tensor(name.replace("gate_exps", "gate_up_exps"), np.ascontiguousarray(fused))
            continue
        if fuse_gate_up and name.endswith("ffn_up_exps.weight"):
            continue
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama_logits(path, tokens):
    import llama_cpp as L
    lines = []

    @L.llama_log_callback
    def log(level, text, user_data):
        lines.append(text.decode("utf-8", "replace"))
    L.llama_log_set(log, ctypes.c_void_p(0))
    L.llama_backend_init()
    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    if not model:
        sys.exit("llama.cpp could not load " + path + ":\n" + "".join(lines[-20:]))
    cp = L.llama_context_default_params()
    batch_size = max(64, len(tokens))  # every token in one batch (and one ubatch)
    cp.n_ctx, cp.n_batch, cp.n_ubatch = max(128, len(tokens)), batch_size, batch_size
    cp.type_k = cp.type_v = 0  # GGML_TYPE_F32: llama.cpp's default f16 cache would round the latent
    cp.flash_attn_type = 0  # disabled: the CPU flash attention rounds Q and K to f16
    ctx = L.llama_init_from_model(model, cp)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    batch = L.llama_batch_init(len(tokens), 0, 1)
    batch.n_tokens = len(tokens)
    for i, tok in enumerate(tokens):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, i, 1
        batch.seq_id[i][0], batch.logits[i] = 0, 1
    if L.llama_decode(ctx, batch) != 0:
        sys.exit("llama_decode failed:\n" + "".join(lines[-20:]))
    out = np.array([np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,)) for i in range(len(tokens))],
                   dtype=np.float32)
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return out, "".join(lines)


def llama_logits_in(python, path, tokens):
    """llama_logits(path, tokens) run by `python` (a venv with llama-cpp-python 0.3.36, which
    need not be the caller's, e.g. one with torch but not llama.cpp). Exits with llama.cpp's
    own log if it cannot load or run the file."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.npy")
        harness = f"""
import sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import numpy as np
from make_llamacpp_key_goldens import llama_logits
logits, log = llama_logits({path!r}, {list(tokens)!r})
np.save({out!r}, logits)
"""
        run = subprocess.run([python, "-c", harness], capture_output=True, text=True)
        if run.returncode != 0 or not os.path.exists(out):
            raise SystemExit(f"llama.cpp failed on {path}:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
        return np.load(out)


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(GOLDENS, "tokens.json")) as f:
        tokens = json.load(f)
    F32, STR, U32 = gguf.GGUFValueType.FLOAT32, gguf.GGUFValueType.STRING, gguf.GGUFValueType.UINT32
    variants = {
        "linear": dict(drop=YARN_KEYS, add={"rope.scaling.type": ("linear", STR), "rope.scaling.factor": (2.0, F32),
                                            "rope.scaling.attn_factor": (1.25, F32)}),
        "scale-linear": dict(drop=YARN_KEYS, add={"rope.scale_linear": (3.0, F32)}),
        "yarn-plain": dict(drop=["rope.scaling.yarn_log_multiplier", "rope.scaling.original_context_length"]),
        "temperature": dict(add={"attention.temperature_scale": (0.5, F32), "attention.temperature_length": (8, U32)},
                            arrays=["attention.head_count", "expert_feed_forward_length", "expert_used_count"],
                            fuse_gate_up=True),
    }
    reference = np.load(os.path.join(GOLDENS, "v3", "logits.npy"))
    for name, spec in variants.items():
        path = os.path.join(OUT, name + ".gguf")
        rewrite(path, **spec)
        logits, log = llama_logits(path, tokens)
        np.save(os.path.join(OUT, name + "-logits.npy"), logits)
        differs = float(np.max(np.abs(logits - reference)))
        print(f"{name}: {os.path.getsize(path)} bytes, max |logit - v3 golden| = {differs:.4f} "
              f"(how much the keys change the model)")


if __name__ == "__main__":
    main()
