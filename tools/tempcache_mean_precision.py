#!/usr/bin/env python3
# Precision of TempCache running means on the GPU (docs/tempcache-cuda.md): bf16 hi + bf16 lo (the GPU scheme)
# vs an fp32 master vs a bf16-only mean, all against float64, with bf16 rounding emulated bit-exactly (numpy).
#   usage: python3 tools/tempcache_mean_precision.py
import numpy as np
def bf16(x):
    x = np.asarray(x, dtype=np.float32)
    b = x.view(np.uint32).astype(np.uint64)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)
rng = np.random.default_rng(0)
for m_total, drift in [(12, 0.0), (300, 0.0), (3000, 0.0), (3000, 1.0)]:
    cols = 4096
    base = bf16(rng.normal(size=cols).astype(np.float32))
    hi = bf16(base); lo = np.zeros(cols, np.float32); f32 = base.copy(); b16 = bf16(base); exact = base.astype(np.float64)
    for m in range(2, m_total + 1):
        v = bf16(base + drift * (m / m_total) + 0.3 * rng.normal(size=cols).astype(np.float32))
        inv = np.float32(1.0) / np.float32(m)
        mean = hi + lo
        nxt = (mean + (v - mean) * inv).astype(np.float32)
        hi = bf16(nxt); lo = bf16(nxt - hi)
        f32 = (f32 + (v - f32) * inv).astype(np.float32)
        b16 = bf16(b16 + (v - b16) * inv)
        exact += (v.astype(np.float64) - exact) / m
    scale = np.abs(exact).max()
    print(f"m={m_total:5d} drift={drift}: max|err|/max|mean|  hi+lo {np.abs(hi+lo-exact).max()/scale:.2e}  "
          f"fp32 {np.abs(f32-exact).max()/scale:.2e}  bf16 copy of hi+lo {np.abs(bf16(hi+lo)-exact).max()/scale:.2e}  "
          f"bf16-only running mean {np.abs(b16-exact).max()/scale:.2e}")
