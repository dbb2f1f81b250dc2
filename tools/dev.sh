#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (run as root, or with sudo available):
#   tools/dev.sh demo            install what is missing, build, run the demo
#   tools/dev.sh test            install what is missing, build, run the whole test suite (CTest)
#   tools/dev.sh fuzz [SECONDS]  build the libFuzzer targets (clang-14) and run each for SECONDS (default 60)
#   tools/dev.sh sanitize        build with ASan + UBSan and run the test suite, less the suites
#                                labelled "toolchains" (dominated by PoCL, hiprtc, ptxas compiles)
# Package installs are idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${MOAT_JOBS:-2}

build_packages=(cmake ninja-build g++ pkg-config libpcre2-dev nlohmann-json3-dev doctest-dev libedit-dev libcpp-httplib-dev libopenmpi-dev openmpi-bin llvm-14-dev libllvmspirvlib-14-dev spirv-tools
  opencl-c-headers)
fuzz_packages=(clang-14 libclang-rt-14-dev)
# Optional for the tests (they skip, saying why, without them): Debian's ROCm 5.2 HIP
# runtime, whose hiprtc compiles the HIP tests' kernels for gfx90a / gfx1030 without a GPU;
# the OpenCL ICD loader with PoCL, an OpenCL device on the CPU.
test_packages=(libamdhip64-5 libhiprtc-builtins5 ocl-icd-libopencl1 pocl-opencl-icd clinfo)

# Installs the packages of "$@" that are not installed yet (apt-get only when needed).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR [cmake args...]: configure once, then build everything (or only the
# targets in $targets, space separated).
build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  fi
  if [ -n "${targets:-}" ]; then
    # shellcheck disable=SC2086
    cmake --build "$dir" -j "$jobs" --target $targets
  else
    cmake --build "$dir" -j "$jobs"
  fi
}

case "${1:-}" in
  demo)
    ensure_packages "${build_packages[@]}" "${test_packages[@]}"
    build build
    devices=$(build/bin/moat devices --json | sed -n 's/.*"id": *"\([a-z]*:\{0,1\}[0-9]*\)".*/\1/p')
    echo
    echo "== moat devices"
    build/bin/moat devices
    echo
    echo "== the demo model (models/kjv-tiny.gguf: a DeepSeek-V3-style MoE trained on the King James Bible,"
    echo "   docs/demo_model.md) on every device, greedy: the same text everywhere"
    for device in $devices; do
      echo "-- $device"
      build/bin/moat run -p "And God said," -n 48 --temp 0 --device "$device" || echo "($device could not run it)"
    done
    echo
    echo "== sampled with llama.cpp's defaults (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05), seed 7"
    build/bin/moat run -p "The LORD is my shepherd;" -n 48 --seed 7
    echo
    echo "== moat bench: every device, prompt 64 tokens, generation 32 tokens"
    build/bin/moat bench --device all -p 64 -n 32 -r 3
    echo
    echo "== one graph (tests/data/graphs/ffn.mir) for every target: moat emit --target ..."
    out=$(mktemp -d)
    for target in llvm opencl spirv hip ptx; do
      build/bin/moat emit --graph tests/data/graphs/ffn.mir --sym T=1 --target "$target" -o "$out/$target"
    done
    rm -rf "$out"
    ;;
  test)
    ensure_packages "${build_packages[@]}" "${test_packages[@]}"
    build build
    ctest --test-dir build --output-on-failure -j "$jobs"
    ;;
  sanitize)
    ensure_packages "${build_packages[@]}" "${test_packages[@]}"
    build build-asan -DMOAT_SANITIZE=ON
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE toolchains
    ;;
  fuzz)
    seconds=${2:-60}
    ensure_packages "${build_packages[@]}" "${fuzz_packages[@]}"
    targets=moat_fuzzers CC=clang-14 CXX=clang++-14 build build-fuzz -DMOAT_FUZZ=ON -DMOAT_BUILD_TESTS=OFF
    for target in build-fuzz/fuzz/*_fuzz; do
      name=$(basename "$target" _fuzz)
      work=$(mktemp -d)  # the fuzzer adds inputs to its corpus: keep the committed seeds unchanged
      echo "== fuzzing $name for ${seconds}s (seeds: tests/fuzz/corpus/$name)"
      "$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$work/" "$work" "tests/fuzz/corpus/$name" 2>&1 | tail -n 12
      rm -rf "$work"
    done
    ;;
  *)
    sed -n '2,7p' "$0"
    exit 2
    ;;
esac
