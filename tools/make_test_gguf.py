#!/usr/bin/env python3
"""Writes tests/data/tiny.gguf with the PyPI `gguf` package — a GGUF writer we did not
write — so the C++ reader is tested against an independent implementation.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf numpy
    /tmp/venv/bin/python tools/make_test_gguf.py

The values below are hard-coded in tests/frontend/gguf_reader_test.cpp; keep them in step.
The output is deterministic (gguf 0.19.0: 1888 bytes). What the tests also rely on:
  - general.alignment is absent (default 32); the data section starts at byte 896;
  - tensors are packed in order, each padded to 32: offsets 0, 64, 96, 256, 352;
  - blk.0.q8_0 block 0 is d = f16 0x2008 (1/127), qs = -127, -125, ...; its last byte is 127;
  - test.nested is an array of i32 arrays, [[1, 2], [3]] (gguf-py writes nested arrays).
"""
import pathlib

import numpy as np
import gguf

out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "tiny.gguf"
w = gguf.GGUFWriter(str(out), "deepseek2")
w.add_name("tiny-test")
w.add_uint8("test.u8", 200)
w.add_int8("test.i8", -100)
w.add_uint16("test.u16", 60000)
w.add_int16("test.i16", -30000)
w.add_uint32("test.u32", 4000000000)
w.add_int32("test.i32", -2000000000)
w.add_float32("test.f32", 0.15625)
w.add_bool("test.bool", True)
w.add_string("test.string", "héllo ｜world｜")
w.add_uint64("test.u64", 2**63 + 5)
w.add_int64("test.i64", -(2**62))
w.add_float64("test.f64", 2.718281828459045)
w.add_array("test.strings", ["a", "bc", "", "日本"])
w.add_array("test.i32s", [1, -2, 3])
w.add_array("test.nested", [[1, 2], [3]])

f32 = np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5 - 1.0          # shape [3, 4]
f16 = (np.arange(8, dtype=np.float32).reshape(2, 4) / 4).astype(np.float16)  # shape [2, 4]
q_src = np.linspace(-1, 1, 2 * 64, dtype=np.float32).reshape(2, 64)
w.add_tensor("blk.0.f32", f32)
w.add_tensor("blk.0.f16", f16)
w.add_tensor("blk.0.q8_0", gguf.quants.quantize(q_src, gguf.GGMLQuantizationType.Q8_0),
             raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.add_tensor("blk.0.q4_0", gguf.quants.quantize(q_src, gguf.GGMLQuantizationType.Q4_0),
             raw_dtype=gguf.GGMLQuantizationType.Q4_0)
w.add_tensor("token_embd.weight", np.ones((5, 32), dtype=np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print("wrote", out, out.stat().st_size, "bytes")
