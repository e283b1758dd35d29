#!/usr/bin/env bash
# fastar on a GPU machine, in one call: builds the CUDA code, checks every CUDA kernel and policy
# against the CPU reference, and times them beside PyTorch (SDPA cuDNN / FlashAttention-2) in the
# same call. Logs go to $OUT (or ./device-out); the last lines printed are the summary tables.
#
#   tools/device_check.sh [build] [check] [bench] [sparse] [rollout] [long]   (no argument: build check bench)
#     build    cmake + ninja of fastar and the GPU check programs (build-device/)
#     check    correctness: attention (Hopper and mma.sync kernels), ops, DiT + rollouts + policies,
#              gated delta rule, TempCache merge, AnnSA, AnnCA; exit 1 if any check fails
#     bench    timings: GEMMs, attention vs SDPA, one chunk forward vs PyTorch eager at 0/21/60/120
#              cached frames, TempCache forced densities, ARL² 22/30, GDN and TempCache commit kernels
#     rollout  fastar bench rollout at Wan2.1-1.3B shapes (dense, window, tempcache+window, arl2) and
#              the PyTorch dense rollout, same call (ROLLOUT_FRAMES latent frames, default 60)
#     sparse   only the TempCache commit and AnnSA timings of `bench`
#     pipeline prompt → pixels (issue 16): checks of umT5, the Wan VAE and TAEHV decoders and the whole
#              pipeline on the GPU against the CPU; their benchmarks beside transformers / diffusers /
#              the PyTorch TAEHV (same call; diffusers may have to be carried as a wheel); then a random
#              Wan2.1-1.3B folder (tools/make_random_wan_folder.py, WAN_FOLDER, default
#              /tmp/fastar-wan-random) streamed for PIPELINE_CHUNKS chunks (default 40) per decoder
#     python   the Python package's GPU test (tests/python/test_gpu.py; PYTHONPATH must hold the
#              built package, e.g. build-device/python of a -DFASTAR_PYTHON=ON build)
#     long     the long-rollout report (issue 9): the bounded policies rolled out to LONG_FRAMES (default
#              750 latent = 2997 video frames; LONG_POLICIES, default window,tempcache+window+annsa,
#              arl2+window, empty skips; one run under LONG_TIMEOUT s, default 500; TempCache's search LONG_ANN, default
#              quant), ARL² with its 8 dense layers to
#              LONG_ARL2_FRAMES (default 240 = 957 video frames, ARL²'s 921-frame comparison; 0 skips), the
#              trained world model (window, tempcache+window, tempcache, dense) to LONG_SMALL_FRAMES
#              (default 3000 frames: a pixel-space model, one frame per latent frame; 0 skips; one run
#              under LONG_SMALL_TIMEOUT s, default 200), and
#              one chunk forward of PyTorch dense (LONG_DEPTHS) and fastar dense (LONG_FASTAR_DEPTHS) at
#              deep caches until they no longer fit (default 180,210,240,270 latent frames; empty skips).
#              All of it is more than one 10-minute device call; three calls (H100, measured):
#                LONG_SMALL_FRAMES=0 LONG_ARL2_FRAMES=0 LONG_DEPTHS= LONG_FASTAR_DEPTHS=   bounded policies, ~340 s
#                LONG_POLICIES= LONG_SMALL_FRAMES=0                                      ARL², deep dense, ~130 s
#                LONG_POLICIES= LONG_ARL2_FRAMES=0 LONG_DEPTHS= LONG_FASTAR_DEPTHS= LONG_SMALL_TIMEOUT=330
#                                                                                         world model, ~330 s
#              Add `build` to the first call on a fresh machine (or build build-device/ elsewhere with
#              -DFASTAR_CUDA_ARCHS=90a and carry it: the binaries need only CUDA 13 and OpenBLAS).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-out}"
mkdir -p "$out"
phases="${*:-build check bench}"
has() { [[ " $phases " == *" $1 "* ]]; }
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"

if has build; then
  cmake -S . -B build-device -G Ninja -DFASTAR_TESTS=OFF -DFASTAR_VIDEO=OFF >"$out/configure.log" 2>&1 ||
    { tail -30 "$out/configure.log"; exit 1; }
  ninja -C build-device fastar cuda_attention_check cuda_ops_check cuda_dit_check cuda_gdn_check cuda_tempcache_check cuda_annsa_check cuda_annca_check \
    >"$out/build.log" 2>&1 || { grep -E "error" -A3 "$out/build.log" | head -40; exit 1; }
fi

if has check; then
  for check in attention ops dit gdn tempcache annsa annca; do
    # The attention check picks its kernels itself (Hopper, then FASTAR_ATTENTION=fa2); the others
    # inherit FASTAR_ATTENTION from the caller.
    if [ "$check" = attention ]; then runner=(env -u FASTAR_ATTENTION); else runner=(env); fi
    timeout 300 "${runner[@]}" ./build-device/cuda_${check}_check >"$out/${check}_check.log" 2>&1 || status=1
    echo "== ${check}: $(grep -cE '^(PASS|ok)' "$out/${check}_check.log") pass lines, $(grep -cE '^FAIL' "$out/${check}_check.log") FAIL lines"
    grep -E "^FAIL" "$out/${check}_check.log" | head -8
    tail -2 "$out/${check}_check.log"
  done
fi

if has bench; then
  ./build-device/cuda_ops_check --bench 2>&1 | tee "$out/ops_bench.log" | tail -5
  ./build-device/cuda_attention_check --bench 2>&1 | tee "$out/attention_bench.log" | tail -15
  python3 tools/bench_sdpa.py 2>&1 | tee "$out/sdpa_bench.log" | tail -6
  ./build-device/cuda_gdn_check --bench 2>&1 | tee "$out/gdn_bench.log" | tail -6
  ./build-device/cuda_tempcache_check --bench 2>&1 | tee "$out/tempcache_bench.log" | tail -6
  ./build-device/cuda_annsa_check --bench 2>&1 | tee "$out/annsa_bench.log" | tail -14
  ./build-device/cuda_annca_check --bench 2>&1 | tee "$out/annca_bench.log" | tail -10
  ./build-device/cuda_dit_check --bench 2>&1 | tee "$out/dit_bench.log" | grep -E "^\|"
  python3 tools/bench_torch_chunk.py --depths 0,21,60,120 --backend cudnn --compile none --repeats 10 2>&1 |
    tee "$out/torch_chunk.log" | tail -6
fi

if has sparse; then
  ./build-device/cuda_tempcache_check --bench 2>&1 | tee "$out/tempcache_bench.log" | tail -8
  ./build-device/cuda_annsa_check --bench 2>&1 | tee "$out/annsa_bench.log" | tail -14
fi

if has pipeline; then
  for check in umt5 wan_vae taehv pipeline; do
    timeout 300 ./build-device/cuda_${check}_check >"$out/${check}_check.log" 2>&1 || status=1
    echo "== ${check}: $(grep -cE '^(PASS|ok)' "$out/${check}_check.log") pass lines, $(grep -cE '^FAIL' "$out/${check}_check.log") FAIL lines"
    grep -E "^FAIL" "$out/${check}_check.log" | head -8
    tail -2 "$out/${check}_check.log"
  done
  ./build-device/cuda_umt5_check --bench 2>&1 | tee "$out/umt5_bench.log" | grep -E "^\|"
  python3 tools/bench_umt5_torch.py 2>&1 | tee "$out/umt5_torch.log" | grep -E "^\|"
  ./build-device/cuda_wan_vae_check --bench 2>&1 | tee "$out/wan_vae_bench.log" | grep -E "^\|"
  python3 tools/bench_vae_torch.py 2>&1 | tee "$out/vae_torch.log" | grep -E "^\|"
  ./build-device/cuda_taehv_check --bench 2>&1 | tee "$out/taehv_bench.log" | grep -E "^\|"
  python3 tools/bench_taehv_torch.py 2>&1 | tee "$out/taehv_torch.log" | grep -E "^\|"
  wan="${WAN_FOLDER:-/tmp/fastar-wan-random}"
  [ -f "$wan/taew2_1.safetensors" ] || python3 tools/make_random_wan_folder.py "$wan" 2>&1 | tail -3
  timeout 400 ./build-device/cuda_pipeline_check --bench "$wan" "${PIPELINE_CHUNKS:-40}" 2>&1 | tee "$out/pipeline_bench.log"
fi

if has python; then
  python3 -m pytest -q tests/python/test_gpu.py 2>&1 | tee "$out/python_gpu.log" | tail -5
fi

if has long; then
  # Bounded policies first (the report's core), in one run (the weights are generated once); the report
  # is rewritten every 10 chunks, so a run stopped by the timeout still leaves PREFIX.csv/.svg/.md.
  policies="${LONG_POLICIES-window,tempcache+window+annsa,arl2+window}"
  if [ -n "$policies" ]; then
    timeout "${LONG_TIMEOUT:-500}" ./build-device/fastar bench rollout --shape wan2.1-1.3b --device cuda \
      --frames "${LONG_FRAMES:-750}" --policy "$policies" --window 9 --sink 3 --ann "${LONG_ANN:-quant}" \
      --report-every 10 --out "$out/long" 2>"$out/long.log" | tail -6 || { grep -E "chunk .*0:" "$out/long.log" | tail -4; tail -6 "$out/long.md"; }
  fi
  # The trained world model (real weights: TempCache merges), the same frame range.
  if [ "${LONG_SMALL_FRAMES:-3000}" -gt 0 ]; then
    # Bounded policies first: dense grows with every frame and may use up the time limit.
    timeout "${LONG_SMALL_TIMEOUT:-200}" ./build-device/fastar bench rollout --model models/world-small --device cuda \
      --frames "${LONG_SMALL_FRAMES:-3000}" --policy window,tempcache+window,tempcache,dense --window 9 --sink 0 \
      --report-every 10 --out "$out/long_small" 2>"$out/long_small.log" | tail -6 || tail -6 "$out/long_small.md"
  fi
  if [ "${LONG_ARL2_FRAMES:-240}" -gt 0 ]; then
    timeout 150 ./build-device/fastar bench rollout --shape wan2.1-1.3b --device cuda --frames "${LONG_ARL2_FRAMES:-240}" \
      --policy arl2 --out "$out/long_arl2" 2>"$out/long_arl2.log" | tail -3 || tail -3 "$out/long_arl2.log"
  fi
  # Dense at deep caches: one chunk forward (a rollout chunk is 4 of them + the clean pass), until it no
  # longer fits: PyTorch (what users run) and fastar.
  if [ -n "${LONG_DEPTHS-180,210,240,270}" ]; then
    timeout 150 python3 tools/bench_torch_chunk.py --depths "${LONG_DEPTHS-180,210,240,270}" --backend cudnn \
      --compile none --warmup 1 --repeats 2 2>&1 | tee "$out/long_torch_chunk.log" | tail -6
  fi
  if [ -n "${LONG_FASTAR_DEPTHS-180,210,240,270}" ]; then
    timeout 150 ./build-device/cuda_dit_check --bench-depths "${LONG_FASTAR_DEPTHS-180,210,240,270}" 2>&1 |
      tee "$out/long_dense_chunk.log" | grep -E "^\|"
  fi
fi

if has rollout; then
  frames="${ROLLOUT_FRAMES:-60}"
  python3 tools/bench_torch_rollout.py --frames "$frames" --backend cudnn --out "$out/torch_rollout.csv" 2>&1 | tail -3
  ./build-device/fastar bench rollout --shape wan2.1-1.3b --device cuda --frames "$frames" \
    --policy dense,window,tempcache+window,arl2 --window 9 --sink 3 --out "$out/rollout" \
    --baseline-csv "$out/torch_rollout.csv" 2>"$out/rollout.log" | tail -12
fi
exit $status
