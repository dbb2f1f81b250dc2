#!/usr/bin/env python3
"""Writes the conversion and dequantisation test vectors under tests/data/quant/.

Run from anywhere (deterministic: fixed seed; rewrites every file):

    /tmp/venv/bin/python tools/make_quant_vectors.py

Needs numpy, ml_dtypes and the PyPI `gguf` package (gguf-py from llama.cpp). The
oracles are independent of moatless's code: gguf.quants.dequantize for the block
formats, gguf.quants.quantize for the q8_0 / q4_0 quantisers, numpy / ml_dtypes
casts for the narrow floats. The C++ side is tests/ir/quant_test.cpp and
tests/support/half_test.cpp; the file format is in tests/data/quant/README.md.
"""

from __future__ import annotations

import pathlib

import ml_dtypes
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "quant"
RNG = np.random.default_rng(20240607)

F16 = np.float16
BF16 = ml_dtypes.bfloat16
FP8 = ml_dtypes.float8_e4m3fn


def write(name: str, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    assert array.dtype.byteorder in ("<", "=", "|"), name
    (OUT / name).write_bytes(array.tobytes())


def f16_bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(F16).view(np.uint16)


# ---------------------------------------------------------------- narrow floats


def widen_tables() -> None:
    # f16 -> f32: a strided sample of all 65536 patterns plus every special class
    # (the C++ test also checks all patterns against exact arithmetic).
    bits = np.unique(np.concatenate([
        np.arange(0, 65536, 37, dtype=np.uint32),
        [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x3C00],
    ]).astype(np.uint16))
    write("f16_to_f32.u16.bin", bits)
    write("f16_to_f32.f32.bin", bits.view(F16).astype(np.float32))

    bits = np.unique(np.concatenate([
        RNG.integers(0, 65536, 1000),
        [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x7F7F, 0x7F80, 0xFF80, 0x7FC0, 0x3F80],
    ]).astype(np.uint16))
    write("bf16_to_f32.u16.bin", bits)
    write("bf16_to_f32.f32.bin", bits.view(BF16).astype(np.float32))

    write("fp8_e4m3_to_f32.f32.bin", np.arange(256, dtype=np.uint8).view(FP8).astype(np.float32))


def ties_and_neighbours(grid: np.ndarray, count: int) -> np.ndarray:
    """Midpoints of `count` random pairs of consecutive finite values of a narrow
    format (exact in f32), and the f32 values one ulp either side of each."""
    grid = np.sort(np.unique(grid[np.isfinite(grid) & (grid >= 0)].astype(np.float64)))
    idx = RNG.choice(len(grid) - 1, size=min(count, len(grid) - 1), replace=False)
    mid = ((grid[idx] + grid[idx + 1]) / 2).astype(np.float32)
    assert np.all(mid.astype(np.float64) == (grid[idx] + grid[idx + 1]) / 2)
    out = np.concatenate([mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(0))])
    signs = np.where(RNG.random(out.size) < 0.5, -1, 1).astype(np.float32)
    return out * signs


def random_f32_with_exponents(lo: int, hi: int, count: int) -> np.ndarray:
    """Random f32 bit patterns with biased exponents in [lo, hi] and random sign."""
    exp = RNG.integers(lo, hi + 1, count).astype(np.uint32)
    bits = (RNG.integers(0, 2, count).astype(np.uint32) << 31) | (exp << 23) | RNG.integers(0, 1 << 23, count).astype(np.uint32)
    return bits.view(np.float32)


SPECIAL_F32 = np.array([
    0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 1e-45, -1e-45, 1.17549435e-38,
    3.4028235e38, -3.4028235e38, 1e-30, 0.3, 1 / 3,
], dtype=np.float32)


def narrow_tables() -> None:
    all16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)

    # f32 -> f16 (numpy's cast: RNE, overflow to inf, correct subnormals).
    f16_grid = all16.view(F16).astype(np.float32)
    x = np.concatenate([
        SPECIAL_F32,
        np.array([65504, 65519.996, 65520, 65535, 65536, 1e5, 2.0**-24, 2.0**-25, np.nextafter(2.0**-25, 1),
                  2.0**-26, 6.1e-5, 2.0**-14, np.nextafter(2.0**-14, 0)], dtype=np.float32),
        ties_and_neighbours(f16_grid, 700),
        random_f32_with_exponents(127 - 30, 127 + 17, 1200),  # around the f16 range
        RNG.integers(0, 1 << 32, 200, dtype=np.uint64).astype(np.uint32).view(np.float32),
    ]).astype(np.float32)
    write("f32_to_f16.in.f32.bin", x)
    with np.errstate(over="ignore", invalid="ignore"):
        write("f32_to_f16.out.u16.bin", x.astype(F16).view(np.uint16))

    # f32 -> bf16 (ml_dtypes: RNE, overflow to inf).
    bf16_grid = all16.view(BF16).astype(np.float32)
    x = np.concatenate([
        SPECIAL_F32,
        np.array([3.3895314e38, 3.3961776e38, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8], dtype=np.float32),
        ties_and_neighbours(bf16_grid, 700),
        random_f32_with_exponents(1, 254, 1000),
        RNG.integers(0, 1 << 32, 200, dtype=np.uint64).astype(np.uint32).view(np.float32),
    ]).astype(np.float32)
    write("f32_to_bf16.in.f32.bin", x)
    write("f32_to_bf16.out.u16.bin", x.astype(BF16).view(np.uint16))

    # f32 -> f8_e4m3, SATURATING (support/half.h): clamp to ±448 first, then
    # ml_dtypes' RNE cast; NaN stays NaN through the clamp.
    fp8_grid = np.arange(256, dtype=np.uint8).view(FP8).astype(np.float32)
    x = np.concatenate([
        SPECIAL_F32,
        np.array([448, 449, 463.99, 464, 480, 1e4, 2.0**-9, 2.0**-10, np.nextafter(2.0**-10, 1), 2.0**-11,
                  3 * 2.0**-10, 2.0**-6, 0.3125, 0.3], dtype=np.float32),
        ties_and_neighbours(fp8_grid, 200),
        random_f32_with_exponents(127 - 12, 127 + 9, 1500),
        RNG.uniform(-500, 500, 300).astype(np.float32),
    ]).astype(np.float32)
    write("f32_to_fp8_e4m3.in.f32.bin", x)
    write("f32_to_fp8_e4m3.out.u8.bin", np.clip(x, -448, 448).astype(FP8).view(np.uint8))


# ---------------------------------------------------------------- quantised blocks


def f16_field(values) -> np.ndarray:
    """f16 values as (n, 2) little-endian bytes."""
    return f16_bits(values).astype("<u2").view(np.uint8).reshape(-1, 2)


def random_bytes(n: int, size: int) -> np.ndarray:
    return RNG.integers(0, 256, (n, size), dtype=np.uint8)


def q8_0_blocks() -> np.ndarray:
    d = [0.0125, -0.03, 0.0, 65504.0, 5.96e-8, 1.0, -0.0, 2.5e-3]  # 5.96e-8: smallest f16 subnormal
    qs = RNG.integers(-128, 128, (len(d), 32)).astype(np.int8)
    qs[3] = np.tile([127, -128], 16)
    qs[5] = np.arange(-16, 16)
    return np.concatenate([f16_field(d), qs.view(np.uint8)], axis=1)


def q4_0_blocks() -> np.ndarray:
    d = [0.02, -0.07, 0.0, 1000.0, -1.5, 3e-5, 0.5, 0.125]
    qs = random_bytes(len(d), 16)
    qs[4] = 0xFF  # every nibble 15
    qs[5] = 0x00  # every nibble 0
    qs[6] = 0xF0  # elements 0..15 are nibble 0, 16..31 nibble 15
    qs[7] = np.arange(16, dtype=np.uint8) | (np.arange(15, -1, -1, dtype=np.uint8) << 4)
    return np.concatenate([f16_field(d), qs], axis=1)


def q4_k_blocks() -> np.ndarray:
    n = 8
    d = RNG.uniform(1e-4, 5e-2, n).astype(np.float32)
    dmin = RNG.uniform(1e-4, 5e-2, n).astype(np.float32)
    d[1], dmin[1] = -d[1], -dmin[1]  # negative super-scales
    d[2] = 0.0                       # zero scale: only the mins remain
    d[3], dmin[3] = 60000.0, 0.0     # large scale, no mins
    scales = random_bytes(n, 12)
    scales[4] = 0xFF                 # every scale and min 63
    scales[5] = 0x00                 # every scale and min 0
    scales[6] = [0xC0, 0x40, 0x80, 0x00, 0x3F, 0x7F, 0xBF, 0xFF, 0x1E, 0x2D, 0x3C, 0x4B]  # high bits only
    qs = random_bytes(n, 128)
    qs[4] = 0xFF
    qs[5] = 0x0F
    return np.concatenate([f16_field(d), f16_field(dmin), scales, qs], axis=1)


def q6_k_blocks() -> np.ndarray:
    n = 8
    ql, qh = random_bytes(n, 128), random_bytes(n, 64)
    scales = RNG.integers(-128, 128, (n, 16)).astype(np.int8)
    d = RNG.uniform(1e-4, 5e-2, n).astype(np.float32)
    d[1] = -d[1]
    d[2] = 0.0
    d[3] = 60000.0
    scales[3] = np.tile(np.array([127, -128], dtype=np.int8), 8)
    ql[4], qh[4] = 0xFF, 0xFF  # every q6 = 63 -> +31
    ql[5], qh[5] = 0x00, 0x00  # every q6 = 0 -> -32
    scales[5] = np.arange(-8, 8)
    qh[6] = 0xE4               # bits 2k..2k+1 = k: each quarter gets a distinct high part
    scales[6] = np.arange(1, 17)
    return np.concatenate([ql, qh, scales.view(np.uint8), f16_field(d)], axis=1)


# q4_1, q5_0, q5_1, q2_k, q3_k, q5_k: each draws from its own generator, so adding
# other types' vectors leaves these files unchanged.


def legacy_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """n f16 scales: random, then negative, zero, the f16 maximum, the smallest subnormal."""
    d = rng.uniform(1e-3, 5e-2, n).astype(np.float32)
    d[1], d[2], d[3], d[4] = -d[1], 0.0, 65504.0, 5.96e-8
    return d


def q5_high_bits(rng: np.random.Generator, n: int) -> np.ndarray:
    """n little-endian u32 masks of fifth bits: random, all set, none, alternating."""
    qh = rng.integers(0, 256, (n, 4), dtype=np.uint8)
    qh[3], qh[4], qh[5] = 0xFF, 0x00, 0x55
    qh[6] = [0x01, 0x80, 0x00, 0x80]  # bits 0, 15, 31: the first and last of each half
    return qh


def legacy_nibbles(rng: np.random.Generator, n: int) -> np.ndarray:
    qs = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    qs[3], qs[4], qs[5] = 0xFF, 0x00, 0xF0
    qs[6] = np.arange(16, dtype=np.uint8) | (np.arange(15, -1, -1, dtype=np.uint8) << 4)
    return qs


def q4_1_blocks() -> np.ndarray:
    rng = np.random.default_rng(41)
    d, m = legacy_scales(rng, 8), -legacy_scales(rng, 8)
    m[3] = -65504.0  # x = 15 * 65504 - 65504, no overflow in f32
    return np.concatenate([f16_field(d), f16_field(m), legacy_nibbles(rng, 8)], axis=1)


def q5_0_blocks() -> np.ndarray:
    rng = np.random.default_rng(50)
    return np.concatenate([f16_field(legacy_scales(rng, 8)), q5_high_bits(rng, 8), legacy_nibbles(rng, 8)], axis=1)


def q5_1_blocks() -> np.ndarray:
    rng = np.random.default_rng(51)
    d, m = legacy_scales(rng, 8), legacy_scales(rng, 8)[::-1].copy()
    return np.concatenate([f16_field(d), f16_field(m), q5_high_bits(rng, 8), legacy_nibbles(rng, 8)], axis=1)


def k_super_scales(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """d and dmin of n super-blocks: random, negative, zero d, large d without mins."""
    d = rng.uniform(1e-4, 5e-2, n).astype(np.float32)
    dmin = rng.uniform(1e-4, 5e-2, n).astype(np.float32)
    d[1], dmin[1] = -d[1], -dmin[1]
    d[2] = 0.0
    d[3], dmin[3] = 60000.0, 0.0
    return d, dmin


def q2_k_blocks() -> np.ndarray:
    rng = np.random.default_rng(210)
    d, dmin = k_super_scales(rng, 8)
    scales = rng.integers(0, 256, (8, 16), dtype=np.uint8)
    scales[4], scales[5], scales[6] = 0xFF, 0x00, np.arange(16, dtype=np.uint8) * 0x11
    qs = rng.integers(0, 256, (8, 64), dtype=np.uint8)
    qs[4], qs[5] = 0xFF, 0x00
    qs[6] = 0xE4  # crumb j = j: each quarter gets a distinct value
    return np.concatenate([scales, qs, f16_field(d), f16_field(dmin)], axis=1)


def q3_k_blocks() -> np.ndarray:
    rng = np.random.default_rng(310)
    d, _ = k_super_scales(rng, 8)
    hmask = rng.integers(0, 256, (8, 32), dtype=np.uint8)
    hmask[4], hmask[5], hmask[6] = 0xFF, 0x00, 0xA5
    qs = rng.integers(0, 256, (8, 64), dtype=np.uint8)
    qs[4], qs[5], qs[6] = 0xFF, 0x00, 0xE4
    scales = rng.integers(0, 256, (8, 12), dtype=np.uint8)
    scales[4] = 0xFF  # every scale 63 - 32 = 31
    scales[5] = 0x00  # every scale -32
    scales[6] = [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE, 0x1B, 0x6C, 0xB1, 0xE4]  # distinct scales
    return np.concatenate([hmask, qs, scales, f16_field(d)], axis=1)


def q5_k_blocks() -> np.ndarray:
    rng = np.random.default_rng(510)
    d, dmin = k_super_scales(rng, 8)
    scales = rng.integers(0, 256, (8, 12), dtype=np.uint8)
    scales[4], scales[5] = 0xFF, 0x00
    scales[6] = [0xC0, 0x40, 0x80, 0x00, 0x3F, 0x7F, 0xBF, 0xFF, 0x1E, 0x2D, 0x3C, 0x4B]  # high bits only
    qh = rng.integers(0, 256, (8, 32), dtype=np.uint8)
    qh[4], qh[5], qh[6] = 0xFF, 0x00, 0xA5
    qs = rng.integers(0, 256, (8, 128), dtype=np.uint8)
    qs[4], qs[5] = 0xFF, 0x0F
    return np.concatenate([f16_field(d), f16_field(dmin), scales, qh, qs], axis=1)


# The 4-bit table formats draw from their own generator: the other files do not change
# when these are added.
IQ4_RNG = np.random.default_rng(20261203)


def iq4_nl_blocks() -> np.ndarray:
    d = [0.02, -0.07, 0.0, 1000.0, -1.5, 3e-5, 0.5, 0.125]
    qs = IQ4_RNG.integers(0, 256, (len(d), 16), dtype=np.uint8)
    qs[4] = 0xFF  # every index 15
    qs[5] = 0x00  # every index 0
    qs[7] = np.arange(16, dtype=np.uint8) | (np.arange(15, -1, -1, dtype=np.uint8) << 4)  # every codebook entry
    return np.concatenate([f16_field(d), qs], axis=1)


def iq4_xs_blocks() -> np.ndarray:
    n = 8
    d = IQ4_RNG.uniform(1e-4, 5e-2, n).astype(np.float32)
    d[1] = -d[1]
    d[2] = 0.0
    d[3] = 60000.0
    scales_h = IQ4_RNG.integers(0, 1 << 16, n).astype("<u2")
    scales_l = IQ4_RNG.integers(0, 256, (n, 4), dtype=np.uint8)
    scales_h[4], scales_l[4] = 0xFFFF, 0xFF  # every scale 63 -> +31
    scales_h[5], scales_l[5] = 0x0000, 0x00  # every scale 0 -> -32
    scales_h[6], scales_l[6] = 0xE4E4, [0x10, 0x32, 0x54, 0x76]  # sub-block j: low bits j, high bits j % 4
    qs = IQ4_RNG.integers(0, 256, (n, 128), dtype=np.uint8)
    qs[6] = np.tile(np.arange(16, dtype=np.uint8) | (np.arange(15, -1, -1, dtype=np.uint8) << 4), 8)
    return np.concatenate([f16_field(d), scales_h.view(np.uint8).reshape(n, 2), scales_l, qs], axis=1)


def mxfp4_blocks() -> np.ndarray:
    e = np.array([127, 0, 1, 2, 254, 255, 100, 130], dtype=np.uint8)  # 0 and 1: subnormal scales
    qs = IQ4_RNG.integers(0, 256, (len(e), 16), dtype=np.uint8)
    qs[0] = np.arange(16, dtype=np.uint8) | (np.arange(15, -1, -1, dtype=np.uint8) << 4)  # every codebook entry
    qs[3] = 0x88  # index 8: the negative zero of E2M1, decoded as 0
    return np.concatenate([e.reshape(-1, 1), qs], axis=1)


def iq_grid_blocks(qtype: Q) -> np.ndarray:
    """8 random raw blocks of a grid IQ type (gguf-py cannot quantise them: ggml needs an
    importance matrix). Every field is random bytes except the f16 super-scale, which is
    sane: block 1 negative, block 2 zero, block 3 large; block 4 has every other bit set,
    block 5 every other bit clear (highest / lowest grid indices, scales and signs). Own
    generator per type, so the shared RNG's later draws do not move."""
    rng = np.random.default_rng([20240607, int(qtype)])
    n, block_bytes = 8, quants.GGML_QUANT_SIZES[qtype][1]
    d = rng.uniform(1e-4, 5e-2, n).astype(np.float32)
    d[1], d[2], d[3] = -d[1], 0.0, 1000.0
    blocks = rng.integers(0, 256, (n, block_bytes), dtype=np.uint8)
    blocks[4], blocks[5] = 0xFF, 0x00
    d_bits = f16_bits(d)
    if qtype == Q.IQ1_M:
        # d's 16 bits sit in the top nibbles of the 4 little-endian u16 of `scales` (last 8 bytes).
        scales = blocks[:, -8:].copy().view("<u2")
        for k in range(4):
            scales[:, k] = (scales[:, k] & 0x0FFF) | (((d_bits >> (4 * k)) & 0xF) << 12)
        blocks[:, -8:] = scales.view(np.uint8)
    else:
        blocks[:, :2] = d_bits.astype("<u2").view(np.uint8).reshape(-1, 2)
    return blocks


IQ_GRID_TYPES = {"iq3_xxs": Q.IQ3_XXS, "iq3_s": Q.IQ3_S, "iq2_xxs": Q.IQ2_XXS, "iq2_xs": Q.IQ2_XS,
                 "iq2_s": Q.IQ2_S, "iq1_s": Q.IQ1_S, "iq1_m": Q.IQ1_M}


def write_blocks(name: str, qtype: Q, blocks: np.ndarray) -> None:
    blocks = np.ascontiguousarray(blocks, dtype=np.uint8)
    block_elems, block_bytes = quants.GGML_QUANT_SIZES[qtype]
    assert blocks.shape[1] == block_bytes, (name, blocks.shape)
    expected = quants.dequantize(blocks.reshape(1, -1), qtype).reshape(-1)
    assert expected.dtype == np.float32 and expected.size == blocks.shape[0] * block_elems
    write(f"{name}.blocks.bin", blocks)
    write(f"{name}.f32.bin", expected)


def quantiser_inputs() -> np.ndarray:
    """16 blocks of 32: varied magnitudes, zeros, ties for roundf, a repeated max."""
    x = RNG.standard_normal((16, 32)).astype(np.float32)
    x *= np.float32(10.0) ** RNG.integers(-3, 3, (16, 1)).astype(np.float32)
    x[1] = 0.0
    x[2] = np.arange(-16, 16, dtype=np.float32) + np.float32(0.5)  # half-integers, amax 15.5
    x[3, :] = np.linspace(-1, 1, 32, dtype=np.float32)
    x[3, 7] = -2.0                                                 # the max is negative
    x[3, 20] = 2.0                                                 # same |max|, later: the first wins
    x[4] *= np.float32(1e4)
    x[5] *= np.float32(1e-6)                                      # d is an f16 subnormal
    x[6] = np.where(np.arange(32) % 2 == 0, np.float32(127), np.float32(-62.5))  # d = 1: exact ties (roundf: -63, not even -62)
    return x.reshape(-1)


def q4_0_f32_reference(x: np.ndarray) -> np.ndarray:
    """ggml's quantize_row_q4_0_ref in plain f32 arithmetic (no FMA), to confirm that
    gguf-py's float64 shortcut agrees on these inputs."""
    blocks = x.reshape(-1, 32)
    out = []
    for b in blocks:
        imax = int(np.argmax(np.abs(b)))
        d = np.float32(b[imax] / np.float32(-8))
        idv = np.float32(0) if d == 0 else np.float32(np.float32(1) / d)
        q = np.minimum(15, np.trunc((b * idv).astype(np.float32) + np.float32(8.5)).astype(np.int32))
        qs = (q[:16] | (q[16:] << 4)).astype(np.uint8)
        out.append(np.concatenate([f16_field([d])[0], qs]))
    return np.stack(out)


def q8_k_inputs() -> np.ndarray:
    """4 blocks of 256: varied magnitudes, a zero block, exact ties, a positive max."""
    x = RNG.standard_normal((4, 256)).astype(np.float32)
    x[0] *= np.float32(0.1)
    x[1] = 0.0
    x[2] = np.tile(np.arange(-63, 65, dtype=np.float32) - np.float32(0.5), 2)  # half-integers
    x[2, 5] = -127.0                          # the max: iscale = 1, so the halves are ties (to even)
    x[3] *= np.float32(1e-3)
    x[3, 9] = 0.75                            # a positive max maps to -127
    x[3, 200] = -0.75                         # same |max|, later: the first wins; maps to +127
    return x.reshape(-1)


def q8_k_reference(x: np.ndarray) -> np.ndarray:
    """ggml's quantize_row_q8_K_ref restated in f32 numpy (gguf.quants has no Q8_K):
    iscale = -127 / (first element of largest |x|), q = min(127, nearest_int(iscale * x))
    (round half to even), bsums per 16, d = 1 / iscale; a zero block stays zero."""
    out = []
    for b in x.reshape(-1, 256):
        imax = int(np.argmax(np.abs(b)))
        qs, bsums, d = np.zeros(256, np.int8), np.zeros(16, "<i2"), np.float32(0)
        if b[imax] != 0:
            iscale = np.float32(np.float32(-127) / b[imax])
            q = np.minimum(127, np.rint((iscale * b).astype(np.float32))).astype(np.int32)
            qs = q.astype(np.int8)
            bsums = q.reshape(16, 16).sum(axis=1).astype("<i2")
            d = np.float32(np.float32(1) / iscale)
        out.append(np.concatenate([np.array([d], "<f4").view(np.uint8), qs.view(np.uint8), bsums.view(np.uint8)]))
    return np.stack(out)


def q8_k_decode(blocks: np.ndarray) -> np.ndarray:
    """ggml's dequantize_row_q8_K: x = d * q in f32."""
    d = blocks[:, :4].copy().view("<f4")
    qs = blocks[:, 4:260].view(np.int8).astype(np.float32)
    return (d * qs).astype(np.float32).reshape(-1)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    widen_tables()
    narrow_tables()

    write_blocks("q8_0", Q.Q8_0, q8_0_blocks())
    write_blocks("q4_0", Q.Q4_0, q4_0_blocks())
    write_blocks("q4_k", Q.Q4_K, q4_k_blocks())
    write_blocks("q6_k", Q.Q6_K, q6_k_blocks())
    write_blocks("q4_1", Q.Q4_1, q4_1_blocks())
    write_blocks("q5_0", Q.Q5_0, q5_0_blocks())
    write_blocks("q5_1", Q.Q5_1, q5_1_blocks())
    write_blocks("q2_k", Q.Q2_K, q2_k_blocks())
    write_blocks("q3_k", Q.Q3_K, q3_k_blocks())
    write_blocks("q5_k", Q.Q5_K, q5_k_blocks())
    for name, qtype in IQ_GRID_TYPES.items():
        write_blocks(name, qtype, iq_grid_blocks(qtype))

    x = quantiser_inputs()
    write("quantize.in.f32.bin", x)
    write("quantize_q8_0.out.bin", quants.quantize(x.reshape(1, -1), Q.Q8_0).reshape(-1))
    q4 = quants.quantize(x.reshape(1, -1), Q.Q4_0).reshape(-1, 18)
    assert np.array_equal(q4, q4_0_f32_reference(x)), "gguf-py's q4_0 disagrees with f32 arithmetic; change the inputs"
    write("quantize_q4_0.out.bin", q4.reshape(-1))

    write_blocks("iq4_nl", Q.IQ4_NL, iq4_nl_blocks())
    write_blocks("iq4_xs", Q.IQ4_XS, iq4_xs_blocks())
    write_blocks("mxfp4", Q.MXFP4, mxfp4_blocks())
    xk = q8_k_inputs()
    q8_k = q8_k_reference(xk)
    assert q8_k.shape[1] == quants.GGML_QUANT_SIZES[Q.Q8_K][1]
    write("quantize_q8_k.in.f32.bin", xk)
    write("quantize_q8_k.out.bin", q8_k.reshape(-1))
    write("q8_k.f32.bin", q8_k_decode(q8_k))

    total = sum(p.stat().st_size for p in OUT.glob("*.bin"))
    print(f"wrote {len(list(OUT.glob('*.bin')))} files, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
