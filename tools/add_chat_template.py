#!/usr/bin/env python3
"""Writes a copy of a GGUF file with `tokenizer.chat_template` set, everything else kept:
every other metadata key with its type and value, in order, and every tensor's info and
bytes unchanged (checked after writing).

Used once for the demo model, which was trained before it carried a template:

    /tmp/benchvenv/bin/python tools/add_chat_template.py models/kjv-tiny.gguf

The template is DeepSeek-V3's (the "deepseek3" entry of tests/data/tokenizer/
chat_vectors.json, the text of deepseek-ai/DeepSeek-V3's tokenizer_config.json, as V3
GGUFs carry it); tools/train_tiny.py writes the same key when it exports a new model.
Without --out the file is replaced (written next to it, then renamed).

Needs the `gguf` package (0.19) and numpy.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests/data/tokenizer/chat_vectors.json"
CHAT_TEMPLATE = gguf.Keys.Tokenizer.CHAT_TEMPLATE  # "tokenizer.chat_template"


def deepseek3_template():
    """The DeepSeek-V3 chat template text, from the chat formatter's test vectors."""
    return json.loads(VECTORS.read_text(encoding="utf-8"))["templates"]["deepseek3"]


def copy_with_template(src, dst, template):
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(dst, arch, endianess=reader.endianess)
    # Alignment is written by GGUFWriter from `data_alignment`; keep the source's.
    alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = int(alignment.contents())
    for field in reader.fields.values():
        # GGUF.* are the reader's virtual fields; the writer writes the architecture itself.
        if field.name.startswith("GGUF.") or field.name in (gguf.Keys.General.ARCHITECTURE, CHAT_TEMPLATE):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_chat_template(template)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()


def check_same_but_template(src, dst, template):
    """Every key but the template equal, the template as given, every tensor byte-identical."""
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(dst)
    keys = lambda r: {n: f.contents() for n, f in r.fields.items() if not n.startswith("GGUF.") and n != CHAT_TEMPLATE}
    assert keys(a) == keys(b), "metadata changed"
    assert b.fields[CHAT_TEMPLATE].contents() == template, "template not written"
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors], "tensor order changed"
    for ta, tb in zip(a.tensors, b.tensors):
        assert ta.tensor_type == tb.tensor_type and list(ta.shape) == list(tb.shape), ta.name
        assert np.array_equal(np.asarray(ta.data).view(np.uint8), np.asarray(tb.data).view(np.uint8)), ta.name


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("gguf", help="the GGUF file")
    p.add_argument("--out", help="where to write the copy (default: replace the file)")
    args = p.parse_args()
    template = deepseek3_template()
    out = args.out or args.gguf + ".tmp"
    copy_with_template(args.gguf, out, template)
    check_same_but_template(args.gguf, out, template)
    if not args.out:
        os.replace(out, args.gguf)
    print(f"{args.out or args.gguf}: {CHAT_TEMPLATE} set ({len(template)} characters); "
          "other metadata and all tensor bytes unchanged", file=sys.stderr)


if __name__ == "__main__":
    main()
