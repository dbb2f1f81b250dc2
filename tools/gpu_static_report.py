#!/usr/bin/env python3
"""What moatless' PTX would cost on an H100 / H200 (sm_90), measured without a GPU, next to
llama.cpp's own CUDA kernels compiled here from the same llama.cpp as the CPU peer.

What it prints (Markdown)
  1. Every distinct kernel of the V2-Lite-shaped Q4_0 and Q8_0 files' decode and prefill
     plans (`moat emit --target ptx --arch sm_90`; decode: `--sym T=1`, prefill: the
     kernels a 32-token prompt adds), grouped by kind: ptxas's registers, spill bytes and
     shared memory, and the theoretical occupancy those give on sm_90 (64 warps, 64 K
     registers, 228 KiB of shared memory per SM; 1 KiB reserved per block).
  2. The decode GEMV's hot loop (Q4_0, Q8_0, and the Q4_K tensors of the q4_k_m file) (the innermost loop of the kernel that reads weights in
     16-byte loads), in SASS instructions per weight byte: the loop's instructions over
     the file bytes a warp streams per trip. moatless (jit/matmul/gpu_int8_tiles.cpp,
     sub-groups of 32): a trip reads P blocks of a 16-row tile, P = 2 for Q4_0 (4 vectors
     per block, 8 lanes per 4-row group) and 1 for Q8_0, so 2 x 16 x 18 and 16 x 34 bytes.
     llama.cpp's mul_mat_vec_q<type, 1> (ggml-cuda/mmvq.cu, ncols_dst 1): a warp's trip
     covers vdr x 32 / qi blocks (Q4_0: 2 x 32 / 4 = 16 blocks of 18 bytes; Q8_0: 2 x 32 /
     8 = 8 of 34); ptxas unrolls that loop, so its body is divided by the unroll factor
     (the global loads per trip: Q4_0 10, Q8_0 8).
  3. llama.cpp's MMQ kernels (mmq-instance-q4_0.cu, -q8_0.cu): registers, spills, shared
     memory, the prefill side of the comparison.

Needs: a built `moat` (--moat), ptxas and nvcc (the CUDA toolkit), nvdisasm (PyPI
`nvidia-cuda-nvdisasm`, or --nvdisasm), the llama.cpp source (--llama, default: the one
llama-cpp-python 0.3.36's sdist vendors, as tools/build_llama_tools.sh unpacks it) and the
V2-Lite-shaped files (--models; tools/bench_vs_llamacpp.py writes them, needs gguf).

    tools/gpu_static_report.py > report.md
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA = "/tmp/llama-tools/src/llama_cpp_python-0.3.36/vendor/llama.cpp"

# sm_90 per SM: warps, registers, shared memory (bytes); blocks per SM
SM90 = {"warps": 64, "registers": 65536, "smem": 233472, "blocks": 32, "smem_reserved": 1024}

# Per file type (q4_k_m: its Q4_K tensors): bytes a warp streams per trip of the hot loop.
# moatless gpu_int8_tiles_k.cpp: 32 lanes x one 16-byte vector = 8 of a super-block's 32
# vectors for 16 rows, so 16 x 144 x 8 / 32 file bytes. llama.cpp: vdr x 32 / qi blocks
# (Q4_K: 2 x 32 / 32 = 2 super-blocks of 144), and the loads of one trip (Q4_K: qs 2,
# scales 2, dm 1, q8_1 quants 4, their ds 2, and one more).
MOAT_BYTES_PER_TRIP = {"q4_0": 2 * 16 * 18, "q8_0": 16 * 34, "q4_k_m": 16 * 144 * 8 // 32}
LLAMA_BYTES_PER_TRIP = {"q4_0": 16 * 18, "q8_0": 8 * 34, "q4_k_m": 2 * 144}
LLAMA_LOADS_PER_TRIP = {"q4_0": 10, "q8_0": 8, "q4_k_m": 12}
GGML_TYPE = {"q4_0": 2, "q8_0": 8, "q4_k_m": 12}
KERNEL_TYPE = {"q4_0": "q4_0", "q8_0": "q8_0", "q4_k_m": "q4_k"}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def occupancy(registers, smem, threads):
    """Theoretical occupancy (fraction of the SM's warps) of a kernel on sm_90."""
    warps = max(1, (threads + 31) // 32)
    regs_per_warp = ((max(registers, 1) * 32 + 255) // 256) * 256
    by_regs = SM90["registers"] // (regs_per_warp * warps)
    by_smem = SM90["smem"] // (smem + SM90["smem_reserved"]) if smem else SM90["blocks"]
    by_threads = SM90["warps"] // warps
    blocks = min(by_regs, by_smem, by_threads, SM90["blocks"])
    return blocks * warps / SM90["warps"]


def ptxas_info(text):
    """ptxas -v lines -> {function: (registers, spill bytes, smem bytes)}."""
    out, fn = {}, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line) or re.search(r"Function properties for (\S+)", line)
        if m:
            fn = m.group(1)
            out.setdefault(fn, [0, 0, 0])
        m = re.search(r"(\d+) bytes spill stores", line)
        if m and fn:
            out[fn][1] = max(out[fn][1], int(m.group(1)))
        m = re.search(r"Used (\d+) registers", line)
        if m and fn:
            out[fn][0] = int(m.group(1))
            m2 = re.search(r"(\d+) bytes smem", line)
            out[fn][2] = int(m2.group(1)) if m2 else 0
    return out


def sass_functions(sass):
    funcs, cur = {}, None
    for line in sass.splitlines():
        m = re.match(r"\s*\.text\.(\S+):", line)
        if m:
            cur = m.group(1)
            funcs[cur] = []
        elif cur is not None:
            funcs[cur].append(line)
    return funcs


def loops(lines):
    """Backward-branch loops of a function: (first, last, instructions) in SASS order."""
    where, seq = {}, []
    for line in lines:
        text = re.sub(r"^\s*/\*[0-9a-f]+\*/\s*", "", line).strip()
        if re.match(r"^\.L\w*:$", text):
            where[text[:-1]] = len(seq)
        elif text.endswith(";") and not text.startswith("/*"):
            seq.append(text)
    out = []
    for i, ins in enumerate(seq):
        m = re.search(r"BRA\s+`\((\.L\w+)\)", ins)
        if m and m.group(1) in where and where[m.group(1)] <= i:
            out.append((where[m.group(1)], i, seq[where[m.group(1)]:i + 1]))
    return out


def hot_loop(lines, load="LDG"):
    """The innermost loop with the most `load`s (ties: the longest)."""
    best = None
    for first, last, body in loops(lines):
        inner = not any(f > first and l < last for f, l, _ in loops(lines))
        loads = sum(load in ins for ins in body)
        if inner and loads and (best is None or (loads, len(body)) > (best[0], len(best[1]))):
            best = (loads, body)
    return best


def emit_kernels(moat, model, workdir, symbols):
    out = os.path.join(workdir, os.path.basename(model) + "-" + symbols.replace("=", ""))
    run([moat, "emit", "-m", model, "--target", "ptx", "--arch", "sm_90", "--sym", symbols, "-o", out])
    return {os.path.basename(p)[:-4]: p for p in glob.glob(os.path.join(out, "*.ptx"))}


def moat_rows(moat, model, workdir, nvdisasm, kernel_type):
    decode = emit_kernels(moat, model, workdir, "T=1")
    both = emit_kernels(moat, model, workdir, "T=32")
    rows, hot = [], None
    for name, path in sorted(both.items()):
        text = open(path).read()
        threads = int(re.search(r"\.reqntid (\d+)", text).group(1)) if ".reqntid" in text else 256
        cubin = path[:-4] + ".cubin"
        info = ptxas_info(run(["ptxas", "-arch=sm_90", "-v", path, "-o", cubin]).stderr).get(name, [0, 0, 0])
        rows.append((name, "decode" if name in decode else "prefill", threads, *info, occupancy(info[0], info[2], threads)))
        if name in decode and name.startswith("matmul_" + kernel_type) and "ld.global.nc.v4.u32" in text and "dp4a" in text:
            funcs = sass_functions(run([nvdisasm, "-c", cubin]).stdout)
            found = hot_loop(funcs.get(name, []), "LDG.E.128")
            if found and (hot is None or len(found[1]) > len(hot[1])):
                hot = (name, found[1])
    return rows, hot


def llama_cubin(llama, source, workdir, jobs_note):
    cubin = os.path.join(workdir, os.path.basename(source).replace(".cu", ".cubin"))
    res = run(["nvcc", "-arch=sm_90", "-cubin", "-O3", "-std=c++17", "-Xptxas", "-v", "-I" + llama + "/ggml/include",
               "-I" + llama + "/ggml/src", "-I" + llama + "/ggml/src/ggml-cuda", "-o", cubin, source])
    print(f"<!-- nvcc {os.path.relpath(source, llama)}: {jobs_note} -->", file=sys.stderr)
    return cubin, ptxas_info(res.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moat", default=os.path.join(REPO, "build", "bin", "moat"))
    ap.add_argument("--models", default="/tmp/moat-bench-models")
    ap.add_argument("--llama", default=LLAMA, help="llama.cpp source tree")
    ap.add_argument("--nvdisasm", default=shutil.which("nvdisasm") or "", help="nvdisasm (PyPI nvidia-cuda-nvdisasm)")
    ap.add_argument("--types", default="q4_0,q8_0,q4_k_m", help="file types of tools/bench_vs_llamacpp.py (q4_k_m: its Q4_K kernels)")
    args = ap.parse_args()
    if not args.nvdisasm:
        hits = glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nvidia", "**", "nvdisasm"), recursive=True)
        hits += glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "**", "bin", "nvdisasm"), recursive=True)
        args.nvdisasm = hits[0] if hits else ""
    if not args.nvdisasm:
        sys.exit("nvdisasm not found: pip install nvidia-cuda-nvdisasm, or pass --nvdisasm")
    types = args.types.split(",")
    workdir = tempfile.mkdtemp(prefix="gpu-static-")
    print(f"# GPU static report (sm_90, no GPU): moatless {run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD']).stdout.strip()}"
          f" vs llama.cpp ({args.llama})\n")

    hot_rows = []
    for t in types:
        model = os.path.join(args.models, f"v2lite-4l-{t}.gguf")
        if not os.path.exists(model):
            sys.exit(f"{model} is missing: tools/bench_vs_llamacpp.py --types {t} writes it")
        rows, hot = moat_rows(args.moat, model, workdir, args.nvdisasm, KERNEL_TYPE[t])
        print(f"## moatless, V2-Lite-shaped {t.upper()}: {len(rows)} distinct kernels\n")
        print("| kernel | pass | threads | registers | spill bytes | smem bytes | occupancy |")
        print("|---|---|--:|--:|--:|--:|--:|")
        for name, pas, threads, regs, spill, smem, occ in rows:
            print(f"| {name} | {pas} | {threads} | {regs} | {spill} | {smem} | {occ:.0%} |")
        print(f"\nBy kind ({t.upper()}):\n")
        print("| kind | pass | kernels | registers | spill bytes | smem bytes (max) | occupancy (min) |")
        print("|---|---|--:|--:|--:|--:|--:|")
        kinds = {}
        for name, pas, threads, regs, spill, smem, occ in rows:
            kinds.setdefault((name.rsplit("_", 1)[0], pas), []).append((regs, spill, smem, occ))
        for (kind, pas), ks in sorted(kinds.items()):
            regs = sorted(k[0] for k in ks)
            print(f"| {kind} | {pas} | {len(ks)} | {regs[0]}–{regs[-1]} | {sum(k[1] for k in ks)} | "
                  f"{max(k[2] for k in ks)} | {min(k[3] for k in ks):.0%} |")
        spills = sum(1 for r in rows if r[4] > 0)
        print(f"\nKernels with spills: {spills}; 64-bit division or remainder in the PTX: "
              f"{sum(1 for r in rows if re.search('(div|rem)[.][su]64', open(glob.glob(os.path.join(workdir, '*', r[0] + '.ptx'))[0]).read()))}\n")
        if hot:
            hot_rows.append((t, "moatless gpu_int8_tiles (decode)", hot[0], len(hot[1]), 1, MOAT_BYTES_PER_TRIP[t]))

    mmvq = os.path.join(args.llama, "ggml", "src", "ggml-cuda", "mmvq.cu")
    cubin, info = llama_cubin(args.llama, mmvq, workdir, "mul_mat_vec_q")
    funcs = sass_functions(run([args.nvdisasm, "-c", cubin]).stdout)
    for t in types:
        name = next(n for n in funcs if n.startswith(f"_Z13mul_mat_vec_qIL9ggml_type{GGML_TYPE[t]}ELi1ELb0ELb0ELb0E"))
        loads, body = hot_loop(funcs[name], "LDG")
        unroll = max(1, round(loads / LLAMA_LOADS_PER_TRIP[t]))
        hot_rows.append((t, "llama.cpp mul_mat_vec_q<1>", name[:48] + "…", len(body), unroll, LLAMA_BYTES_PER_TRIP[t]))

    print("## Decode GEMV hot loop (SASS instructions per weight byte, per warp)\n")
    print("| type | kernel | function | loop instructions | trips unrolled | bytes per trip | per weight byte |")
    print("|---|---|---|--:|--:|--:|--:|")
    for t, who, name, n, unroll, nbytes in hot_rows:
        print(f"| {t.upper()} | {who} | `{name}` | {n} | {unroll} | {nbytes} | {n / unroll / nbytes:.3f} |")
    for t in types:
        ours = [n / u / b for tt, w, _, n, u, b in hot_rows if tt == t and w.startswith("moatless")]
        theirs = [n / u / b for tt, w, _, n, u, b in hot_rows if tt == t and w.startswith("llama")]
        if ours and theirs:
            print(f"\n{t.upper()}: moatless / llama.cpp = {ours[0] / theirs[0]:.2f}x", end="")
    print("\n")

    # mul_mat_q<type, mmq_x, need_check>: one kernel per tile width; its shared memory is
    # dynamic (not in ptxas's figures). Variants of 24 registers are the ones this
    # architecture does not build (a stub).
    print("## llama.cpp MMQ (prefill) kernels, for comparison\n")
    print("| type | mul_mat_q variants built | registers | variants with spills | spill bytes (max) |")
    print("|---|--:|--:|--:|--:|")
    for t in types:
        source = os.path.join(args.llama, "ggml", "src", "ggml-cuda", "template-instances", f"mmq-instance-{KERNEL_TYPE[t]}.cu")
        _, info = llama_cubin(args.llama, source, workdir, "mmq")
        built = [v for n, v in info.items() if n.startswith("_Z9mul_mat_qI") and v[0] > 24]
        if built:
            regs = sorted(v[0] for v in built)
            print(f"| {t.upper()} | {len(built)} | {regs[0]}–{regs[-1]} | {sum(1 for v in built if v[1])} | {max(v[1] for v in built)} |")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
