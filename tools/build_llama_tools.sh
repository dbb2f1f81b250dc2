#!/usr/bin/env bash
# Builds llama.cpp's command-line quantisation tools, CPU only, from the llama.cpp that
# llama-cpp-python 0.3.36 vendors (the same llama.cpp that tools/bench_vs_llamacpp.py and
# tools/quant_perplexity.py load through llama-cpp-python), so that the files quantised by
# them and the perplexities they report come from one llama.cpp revision.
#
#   tools/build_llama_tools.sh [--libs DIR] [OUT_DIR]      default OUT_DIR: /tmp/llama-tools
#
# Writes OUT_DIR/src/ (the unpacked sdist), OUT_DIR/build/ (the CMake build) and
# OUT_DIR/bin/{llama-quantize,llama-imatrix,llama-perplexity,llama-bench,llama-batched-bench,test-llama-archs}
# (links into the build; test-llama-archs -a ARCH -o DIR writes llama.cpp's tiny random model
# files of an architecture, tools/check_llamacpp_archs.py). Nothing is written inside the
# repository. Reuses an existing OUT_DIR/src and build, so a second run only rebuilds what
# changed. Needs pip (any Python 3), cmake, a C++17 compiler and network access for the one
# `pip download`. The full build compiles ggml, libllama and common: about 140 compile jobs,
# tens of minutes on two busy cores.
#
# --libs DIR: compile only the tools' own sources (seconds) and link them against the
# shared libraries in DIR (libllama, libggml*, and libllama-common if there; else common's
# sources are compiled here, minutes, and only the tools that need no argument parsing,
# llama-quantize and test-llama-archs, link), which must come from the same
# llama-cpp-python 0.3.36 built from source, e.g. a venv's site-packages/lib after
# `pip install llama-cpp-python==0.3.36`. The binaries go to OUT_DIR/bin and find DIR by RPATH.
# Environment: JOBS (parallel compile jobs, default 2), PIP (default: pip3), CXX (default g++).
set -euo pipefail

libs=""
if [ "${1:-}" = "--libs" ]; then
  libs=$(cd "${2:?--libs needs a folder}" && pwd)
  shift 2
fi

version=0.3.36
out=${1:-/tmp/llama-tools}
jobs=${JOBS:-2}
pip=${PIP:-pip3}
tools=(llama-quantize llama-imatrix llama-perplexity llama-bench llama-batched-bench test-llama-archs)

mkdir -p "$out"
src="$out/src/llama_cpp_python-$version"
if [ ! -d "$src/vendor/llama.cpp" ]; then
  sdist_dir="$out/sdist"
  mkdir -p "$sdist_dir" "$out/src"
  # --no-binary for this package only: with :all: pip would also build its build backend
  # (scikit-build-core, hatchling, ...) from source just to read the sdist's metadata.
  "$pip" download --no-binary llama-cpp-python --no-deps -d "$sdist_dir" "llama-cpp-python==$version"
  sdist=$(ls "$sdist_dir"/llama_cpp_python-"$version".tar.gz)
  tar -xzf "$sdist" -C "$out/src"
fi
llama="$src/vendor/llama.cpp"
[ -f "$llama/CMakeLists.txt" ] || { echo "no llama.cpp sources in $llama" >&2; exit 1; }

if [ -n "$libs" ]; then
  for l in libllama.so libggml.so libggml-base.so; do
    [ -e "$libs/$l" ] || { echo "--libs $libs: no $l there" >&2; exit 1; }
  done
  mkdir -p "$out/bin"
  common=(-lllama-common)
  if [ ! -e "$libs/libllama-common.so" ]; then
    # pip's llama-cpp-python installs no libllama-common: compile common's sources into an
    # archive (the linker takes only what a tool uses). Without arg.cpp / download.cpp,
    # which need cpp-httplib and SSL, the tools that parse common's arguments do not link.
    arc="$out/common"
    mkdir -p "$arc"
    sed -e "s|@LLAMA_BUILD_NUMBER@|0|; s|@LLAMA_BUILD_COMMIT@|llama-cpp-python-$version|" \
        -e "s|@BUILD_COMPILER@|$(basename "${CXX:-g++}")|; s|@BUILD_TARGET@|$(uname -m)|" \
        "$llama/common/build-info.cpp.in" > "$arc/build-info.cpp"
    objs=() pids=()
    for f in "$llama"/common/*.cpp "$llama"/common/jinja/*.cpp "$llama"/common/parsers/*.cpp "$arc/build-info.cpp"; do
      [ -e "$f" ] || continue
      case "$(basename "$f")" in arg.cpp|download.cpp|hf-cache.cpp|llguidance.cpp) continue ;; esac
      o="$arc/$(echo "$f" | md5sum | cut -c1-8)_$(basename "$f" .cpp).o"
      rm -f "$o"
      objs+=("$o")
      "${CXX:-g++}" -O1 -std=c++17 -fPIC -I"$llama/include" -I"$llama/ggml/include" -I"$llama/common" -I"$llama/vendor" \
        -I"$llama/src" -c "$f" -o "$o" &
      pids+=($!)
      if [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; then wait -n || true; fi
    done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done  # failures: the missing objects below
    for o in "${objs[@]}"; do
      [ -s "$o" ] || { echo "compiling llama.cpp's common failed: no $o" >&2; exit 1; }
    done
    rm -f "$arc/libllama-common.a"
    ar rcs "$arc/libllama-common.a" "${objs[@]}"
    common=("$arc/libllama-common.a")
  fi
  # tool: its sources (tools/<dir>/...), the same split as the tools' CMakeLists.txt.
  declare -A sources=([llama-quantize]="quantize/quantize.cpp quantize/main.cpp"
                      [llama-imatrix]="imatrix/imatrix.cpp"
                      [llama-perplexity]="perplexity/perplexity.cpp perplexity/main.cpp"
                      [llama-bench]="llama-bench/llama-bench.cpp llama-bench/main.cpp"
                      [llama-batched-bench]="batched-bench/batched-bench.cpp batched-bench/main.cpp"
                      [test-llama-archs]="../tests/test-llama-archs.cpp")
  for t in "${tools[@]}"; do
    files=()
    for f in ${sources[$t]}; do files+=("$llama/tools/$f"); done
    dir=$(dirname "${files[0]}")
    rm -f "$out/bin/$t"
    # --disable-new-dtags: an RPATH (not RUNPATH) also serves libllama-common's own
    # dependencies on libllama and libggml.
    "${CXX:-g++}" -O2 -std=c++17 -I"$llama/include" -I"$llama/ggml/include" -I"$llama/common" -I"$llama/vendor" -I"$llama/src" \
      -I"$dir" "${files[@]}" -o "$out/bin/$t" -L"$libs" "${common[@]}" -lllama -lggml -lggml-base \
      -Wl,--disable-new-dtags,-rpath,"$libs" -pthread 2> "$out/bin/$t.log" &
    if [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; then wait -n || true; fi
  done
  wait
  built=() missing=()
  for t in "${tools[@]}"; do
    if [ -x "$out/bin/$t" ]; then built+=("$t"); else missing+=("$t"); fi
  done
  [ ${#built[@]} -gt 0 ] || { echo "no tool was built (logs: $out/bin/*.log)" >&2; exit 1; }
  echo "built: ${built[*]} in $out/bin (against $libs)"
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "${common[0]}" = "-lllama-common" ]; then
      echo "not built: ${missing[*]} (logs: $out/bin/<tool>.log)" >&2
      exit 1
    fi
    echo "not built: ${missing[*]} (without libllama-common.so they lack common's argument parsing: give --libs a" \
         "folder with it, or build without --libs; logs: $out/bin/<tool>.log)" >&2
    for t in llama-quantize test-llama-archs; do
      [ -x "$out/bin/$t" ] || { echo "$t was not built (log: $out/bin/$t.log)" >&2; exit 1; }
    done
  fi
  exit 0
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

# CPU only (no CUDA/Metal/Vulkan/...), no libcurl (the tools read local files only), static
# libraries so the binaries do not need the build folder's shared objects at run time.
cmake "${generator[@]}" -S "$llama" -B "$out/build" -DCMAKE_BUILD_TYPE=Release \
  "${launcher[@]}" \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON -DGGML_NATIVE=ON
cmake --build "$out/build" -j "$jobs" --target "${tools[@]}"

mkdir -p "$out/bin"
for t in "${tools[@]}"; do
  ln -sf "$out/build/bin/$t" "$out/bin/$t"
done
echo "built: ${tools[*]} in $out/bin"
