#!/usr/bin/env bash
# Builds fastar's CUDA code on a GPU machine, checks every CUDA kernel against the CPU reference,
# and times it beside PyTorch SDPA in the same call. Logs go to $OUT (or ./device-out); the last
# lines printed are the summary tables.
#   usage: tools/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
cmake -S . -B build-device -G Ninja -DFASTAR_TESTS=OFF -DFASTAR_VIDEO=OFF >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
ninja -C build-device cuda_attention_check cuda_ops_check cuda_dit_check >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
status=0
for check in attention ops dit; do
  ./build-device/cuda_${check}_check >"$out/${check}_check.log" 2>&1 || status=1
  grep -E "FAIL|PASSED|passed|failed" "$out/${check}_check.log" | tail -4
done
grep -E "^(PASS|FAIL)" "$out/dit_check.log"
./build-device/cuda_ops_check --bench 2>&1 | tee "$out/ops_bench.log" | tail -6
./build-device/cuda_dit_check --bench 2>&1 | tee "$out/dit_bench.log" | tail -6
python3 tools/bench_torch_chunk.py --depths 0,21,60,120 --backend cudnn --compile none --repeats 10 2>&1 | tee "$out/torch_chunk.log" | tail -8
./build-device/cuda_attention_check --bench 2>&1 | tee "$out/attention_bench.log" | tail -15
python3 tools/bench_sdpa.py 2>&1 | tee "$out/sdpa_bench.log" | tail -8
exit $status
