#!/usr/bin/env bash
# The device check, for a machine with a GPU (the `device` tool's machine): builds what
# the GPU tests need, then runs every CUDA / HIP test case, the golden models and the
# session's traffic checks on each GPU present, and a short benchmark; writes a report
# (Markdown) to $OUT/gpu_report.md (or build-gpu/gpu_report.md) and prints it.
#
#   tools/gpu_check.sh            # all of it (about 5 minutes on 16 cores)
#   MOAT_JOBS=16 tools/gpu_check.sh
#
# Exit status: 0 when every selected test passed or was skipped, 1 otherwise. A
# machine without a GPU reports the GPU cases as skipped (CTest exit code 77).
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=${MOAT_JOBS:-$(nproc)}
dir=${MOAT_BUILD_DIR:-build-gpu}
report=${OUT:-$dir}/gpu_report.md
mkdir -p "$(dirname "$report")"

{
  echo "# moatless GPU check — $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  echo '```'
  (nvidia-smi -L 2>/dev/null || true; rocm-smi --showproductname 2>/dev/null | grep -i 'card series' || true)
  echo '```'
} >"$report"

if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
fi
targets="moat_cli cuda_device_test hip_device_test conformance_test goldens_test session_test ptx_check_test"
# shellcheck disable=SC2086
cmake --build "$dir" -j "$jobs" --target $targets >"$dir/gpu_build.log" 2>&1 || {
  tail -40 "$dir/gpu_build.log" >>"$report"
  cat "$report"
  exit 1
}

{
  echo
  echo '## moat devices'
  echo '```'
  "$dir/bin/moat" devices
  echo '```'
  echo
  echo '## GPU test cases (ctest)'
  echo '```'
} >>"$report"
status=0
(cd "$dir" && ctest -j 4 -R '^(cuda|hip)|goldens|decoded token|session' --output-on-failure 2>&1) | tail -80 >>"$report" || status=1
grep -q "tests failed out of" "$report" && ! grep -q " 0 tests failed out of" "$report" && status=1
echo '```' >>"$report"

# Each GPU against the CPU on the demo model: greedy text (identical expected), perplexity
# on the held-out text (equal within rounding expected), and the bench side by side.
gpus=$("$dir/bin/moat" devices 2>/dev/null | grep -oE '^ *(cuda|hip):[0-9]+' | tr -d ' ')
prompt="In the beginning God created"
cpu_text=$("$dir/bin/moat" run --device cpu -p "$prompt" -n 64 --temp 0 2>/dev/null)
cpu_ppl=$("$dir/bin/moat" perplexity --device cpu -f models/kjv-heldout.txt --window 256 2>&1 | grep -i 'perplexity' | tail -1)
for gpu in $gpus; do
  gpu_text=$("$dir/bin/moat" run --device "$gpu" -p "$prompt" -n 64 --temp 0 2>/dev/null)
  gpu_ppl=$("$dir/bin/moat" perplexity --device "$gpu" -f models/kjv-heldout.txt --window 256 2>&1 | grep -i 'perplexity' | tail -1)
  {
    echo
    echo "## $gpu against cpu: the demo model"
    echo
    if [ -n "$gpu_text" ] && [ "$gpu_text" = "$cpu_text" ]; then echo "greedy text (64 tokens): identical"; else echo "greedy text: DIFFERS"; fi
    echo '```'
    echo "cpu:  $cpu_text"
    echo "$gpu: $gpu_text"
    echo "cpu perplexity:  $cpu_ppl"
    echo "$gpu perplexity: $gpu_ppl"
    echo '```'
  } >>"$report"
  [ -n "$gpu_text" ] && [ "$gpu_text" = "$cpu_text" ] || status=1
done

{
  echo
  echo '## moat bench: the demo model on every device'
  echo '```'
  "$dir/bin/moat" bench --device all -p 64 -n 32 -r 3 2>&1 | tail -20
  echo '```'
} >>"$report"

cat "$report"
exit $status
