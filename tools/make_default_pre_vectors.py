#!/usr/bin/env python3
"""llama.cpp's own ids for its "default" BPE pre-tokenizer, on a real vocabulary.

llama.cpp falls back to its "default" pre-tokenizer expressions for a BPE vocabulary
whose tokenizer.ggml.pre is "default" (older converters wrote that). This copies the
DeepSeek LLM vocabulary (../shared/data/vocab/deepseek-llm.gguf) with
tokenizer.ggml.pre set to "default", loads it vocabulary-only into llama.cpp (the
llama-cpp-python package, which builds llama.cpp from source) and writes the ids it
gives for every input of deepseek-llm.gguf.inp (no BOS, special tokens parsed) to
tests/data/tokenizer/default_llamacpp.json: {"llama_cpp_python": VERSION, "cases":
[{"text": ..., "ids": [...]}, ...]}.

Usage: python3 tools/make_default_pre_vectors.py   (a venv with: pip install llama-cpp-python gguf)
"""
import json
import pathlib
import tempfile

import gguf
import llama_cpp

ROOT = pathlib.Path(__file__).resolve().parent.parent
VOCAB = ROOT.parent / "shared/data/vocab/deepseek-llm.gguf"
OUT = ROOT / "tests/data/tokenizer/default_llamacpp.json"


def read_inputs(path):
    """llama.cpp's .inp format: inputs, each followed by a separator line."""
    text = path.read_text(encoding="utf-8")
    return text.split("\n__ggml_vocab_test__\n")[:-1]


def copy_with_pre(src, dst, pre):
    """Every key of `src` (a vocabulary-only GGUF) into `dst`, with tokenizer.ggml.pre = `pre`."""
    reader = gguf.GGUFReader(str(src))
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(dst), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = pre if name == "tokenizer.ggml.pre" else field.contents()
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, value, vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(name, value, vtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


def main():
    inputs = read_inputs(VOCAB.with_suffix(".gguf.inp"))
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "default.gguf"
        copy_with_pre(VOCAB, path, "default")
        model = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        cases = [{"text": t, "ids": model.tokenize(t.encode("utf-8"), add_bos=False, special=True)} for t in inputs]
    OUT.write_text(json.dumps({"llama_cpp_python": llama_cpp.__version__, "cases": cases}, ensure_ascii=False,
                              indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
