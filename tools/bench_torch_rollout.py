#!/usr/bin/env python3
"""PyTorch baseline for `fastar bench rollout`: the dense Self-Forcing rollout as users run it today.

The Wan DiT of tools/bench_torch_chunk.py (written from wan-spec.md; random bf16 weights, SDPA with a
pinned back end) rolls out chunk after chunk: per chunk, --steps denoising forwards that attend to
[all cached frames + the chunk] and one clean forward that commits the chunk's K/V. The cache grows
with every chunk (capacity doubling, as a growing cache does) until the GPU runs out of memory; the
script reports where. Per chunk it records the wall time (torch.cuda.Event), video frames per second,
torch.cuda.memory_allocated and its peak, and the cache bytes, and writes them as CSV in the format
of `fastar bench rollout` (policy column "pytorch-dense-<backend>"), so both land in one plot.

    python3 tools/bench_torch_rollout.py --frames 120 --backend cudnn --out out/torch-rollout.csv
CPU smoke test (tiny config):
    python3 tools/bench_torch_rollout.py --device cpu --backend math --latent 16x24 --frames 9 \
        --config tests/model/golden/wan_tiny_original/config.json --out /tmp/t.csv
"""
import argparse
import os
import sys

import torch
from torch.nn.attention import sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_torch_chunk as chunk  # noqa: E402


def video_frames(latent):
    return 0 if latent <= 0 else 1 + 4 * (latent - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=chunk.DEFAULT_CONFIG)
    ap.add_argument("--frames", type=int, default=60, help="latent frames to roll out (stops earlier on OOM)")
    ap.add_argument("--chunk-frames", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="denoising forwards per chunk (plus one clean pass)")
    ap.add_argument("--backend", choices=sorted(chunk.BACKENDS), default="cudnn")
    ap.add_argument("--latent", type=chunk.parse_latent, default=(60, 104))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="torch-rollout.csv")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_torch_rollout: no CUDA device", file=sys.stderr)
        return 2
    cfg = chunk.load_config(args.config)
    pt, ph, pw = cfg["patch_size"]
    lat_h, lat_w = args.latent
    gh, gw = lat_h // ph, lat_w // pw
    tokens = gh * gw
    f = args.chunk_frames
    n = f // pt * tokens
    heads, hd, layers = cfg["num_heads"], cfg["head_dim"], cfg["num_layers"]
    policy = f"pytorch-dense-{args.backend}"
    rows = ["policy,chunk,latent_frames,video_frames,chunk_ms,video_fps,mem_in_use_bytes,mem_peak_bytes,cache_bytes"]
    with torch.inference_mode(), sdpa_kernel(chunk.BACKENDS[args.backend]):
        model = chunk.WanChunkDiT(cfg)
        chunk.init_random_(model, args.seed)
        model = model.to(device=device, dtype=torch.bfloat16).eval()
        gen = torch.Generator(device=device).manual_seed(args.seed + 1)
        context = torch.randn(cfg["text_len"], cfg["text_dim"], device=device, dtype=torch.bfloat16, generator=gen)
        cross = model.cross_kv(context)
        capacity = 2 * n
        caches_k = [torch.zeros(capacity, heads, hd, device=device, dtype=torch.bfloat16) for _ in range(layers)]
        caches_v = [torch.zeros(capacity, heads, hd, device=device, dtype=torch.bfloat16) for _ in range(layers)]
        cached = 0
        timer = chunk.Timer(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        chunks = (args.frames + f - 1) // f
        for c in range(chunks):
            try:
                if cached + n > capacity:  # grow: double the capacity, copy the kept rows
                    capacity = max(2 * capacity, cached + n)
                    for lst in (caches_k, caches_v):
                        for i in range(layers):
                            grown = torch.zeros(capacity, heads, hd, device=device, dtype=torch.bfloat16)
                            grown[:cached] = lst[i][:cached]
                            lst[i] = grown
                cos, sin = chunk.rope_tables(cfg, f, gh, gw, c * f // pt, device)
                x = torch.randn(1, cfg["in_dim"], f, lat_h, lat_w, device=device, dtype=torch.bfloat16, generator=gen)

                def run_chunk():
                    xx = x
                    for s in range(args.steps):
                        sigma = 1.0 - s / args.steps
                        t = torch.full((f,), 1000.0 * sigma, device=device)
                        v = model(xx, t, cos, sin, caches_k, caches_v, cached, cross)
                        x0 = xx - sigma * v
                        nxt = 1.0 - (s + 1) / args.steps
                        xx = (1 - nxt) * x0 + nxt * torch.randn_like(x0)
                    model(x0, torch.zeros(f, device=device), cos, sin, caches_k, caches_v, cached, cross)

                ms = timer(run_chunk)
            except torch.OutOfMemoryError:
                print(f"{policy}: out of GPU memory at chunk {c} (cache of {cached // tokens} latent frames = "
                      f"{video_frames(cached // tokens)} video frames)", file=sys.stderr)
                break
            cached += n
            latent = (c + 1) * f
            new_video = video_frames(latent) - video_frames(latent - f)
            in_use = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
            peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
            cache_bytes = 2 * layers * cached * heads * hd * 2
            rows.append(f"{policy},{c},{latent},{video_frames(latent)},{ms:.3f},{new_video / (ms / 1e3):.4f},"
                        f"{in_use},{peak},{cache_bytes}")
            if c % 10 == 0:
                print(f"{policy} chunk {c}: video frame {video_frames(latent)}, {ms:.1f} ms, "
                      f"{in_use / 1e9:.2f} GB in use", file=sys.stderr, flush=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(rows) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({len(rows) - 1} chunks)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
