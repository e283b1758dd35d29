#!/usr/bin/env python3
"""PyTorch SDPA timings for the shapes of `cuda_attention_check --bench`, as a baseline.

bf16, layout [1, heads, len, head_dim], 12 heads x 128, q_len 4680, kv_len in {4680, 37440,
191880}; backends cuDNN and FLASH_ATTENTION (torch.nn.attention.sdpa_kernel). Median of 10 timed
runs (torch.cuda.Event) after warm-up; TFLOP/s = 4 * q_len * kv_len * head_dim * heads / time.
SDPA has no block-sparse mask, so only the dense rows are comparable.

    python3 tools/bench_sdpa.py
"""
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

HEADS, HEAD_DIM, Q_LEN = 12, 128, 4680
KV_LENS = (4680, 37440, 191880)
BACKENDS = (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION))


def time_ms(fn, warmup=3, reps=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    if not torch.cuda.is_available():
        print("bench_sdpa: no CUDA device", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(f"heads={HEADS} head_dim={HEAD_DIM} q_len={Q_LEN} bf16 [1, heads, len, d]; median of 10 after warm-up")
    print(f"{'backend':<12} {'kv_len':>8} {'time_ms':>10} {'TFLOP/s':>10}")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for kv_len in KV_LENS:
        q = torch.randn(1, HEADS, Q_LEN, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(1, HEADS, kv_len, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
        v = torch.randn(1, HEADS, kv_len, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
        flops = 4.0 * Q_LEN * kv_len * HEAD_DIM * HEADS
        for name, backend in BACKENDS:
            try:
                with sdpa_kernel(backend):
                    ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v))
                print(f"{name:<12} {kv_len:>8} {ms:>10.3f} {flops / (ms * 1e-3) / 1e12:>10.1f}")
            except RuntimeError as error:  # backend not available for this shape / build
                print(f"{name:<12} {kv_len:>8} {'n/a':>10} {'n/a':>10}  ({str(error).splitlines()[0][:80]})")
        del q, k, v
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
