#!/usr/bin/env python3
"""PyTorch baseline for `fastar bench --device cuda` (docs/perf.md): one chunk forward of the Wan2.1 DiT.

What it measures: the wall time (torch.cuda.Event, median of --repeats after warm-up) of ONE
forward of the Wan2.1 DiT on one chunk, the way the causal forcing models (Self-Forcing,
Causal-Forcing, Rolling-Forcing) run it during denoising, for several KV-cache depths, plus the
peak CUDA memory (torch.cuda.max_memory_allocated) of that depth's run.

The model is written from /work/shared/docs/wan-spec.md §3-§4 (not from any other project):

* config from a Wan config.json (dim, ffn_dim, freq_dim, in/out_dim, num_heads, num_layers,
  text_len, text_dim, patch_size, eps); random weights, bf16 everywhere, batch 1;
* one chunk = --frames latent frames (default 3) of --latent HxW (default 60x104, i.e.
  1560 tokens per frame and 4680 queries per chunk), one timestep per frame (937.5);
* patchify (Conv3d, kernel = stride = patch), sinusoidal timestep embedding (cos first) and time
  MLP, the 6-way per-frame modulation, per block: LN -> self-attention (q/k RMSNorm over all
  heads in fp32, 3D RoPE on q and the chunk's k from a precomputed cos/sin table of real
  interleaved pairs, time index = global frame index = depth) -> gated residual -> affine-LN
  cross-attention to text_len text tokens (K/V cached) -> modulated GELU-tanh FFN -> gated
  residual; then the modulated head and unpatchify;
* self-attention runs F.scaled_dot_product_attention over [K/V cache of N cached frames + the
  chunk] in layout [1, heads, L, head_dim]. Per layer the cache is one preallocated bf16
  buffer [(N + frames) * tokens_per_frame, heads, head_dim] each for K and V; the first
  N * tokens_per_frame rows are random (post-RoPE keys) and the chunk's K/V are written into the
  tail slot on every call, as the causal models do (a denoising call overwrites the block's slot
  in place); q attends to the whole buffer with no mask;
* the cross-attention K/V (text embedding MLP, W_k/W_v, k RMSNorm) are computed once per run,
  outside the timing, as the causal models cache them on the first call.

The SDPA backend is pinned with torch.nn.attention.sdpa_kernel (cudnn | flash | efficient; math
for CPU smoke tests). `--compile default` wraps the model in torch.compile (mode default,
dynamic=False); each depth is a new shape, so it is compiled afresh per depth (dynamo reset) and
the compile time is reported separately, never in the timing. Everything runs under
torch.inference_mode().

    python3 tools/bench_torch_chunk.py --depths 0,21,60,120 --backend cudnn --compile none \
        --repeats 10 --config configs/wan2.1-t2v-1.3b/config.json --latent 60x104 --device cuda

CPU smoke test (tiny config; timings meaningless):

    python3 tools/bench_torch_chunk.py --device cpu --backend math --latent 16x24 --depths 0,3 \
        --repeats 2 --config tests/model/golden/wan_tiny_original/config.json
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs",
                              "wan2.1-t2v-1.3b", "config.json")
BACKENDS = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
TIMESTEP = 937.5  # second step of the 4-step warped list (spec §4.2); any value costs the same
ROPE_POSITIONS = 1024  # spec §3.4: rope_params(1024, ...)


# ----------------------------------------------------------------------------- configuration

def load_config(path):
    with open(path) as f:
        raw = json.load(f)
    cfg = {
        "dim": raw.get("dim", 1536),
        "ffn_dim": raw.get("ffn_dim", 8960),
        "freq_dim": raw.get("freq_dim", 256),
        "in_dim": raw.get("in_dim", 16),
        "out_dim": raw.get("out_dim", 16),
        "num_heads": raw.get("num_heads", 12),
        "num_layers": raw.get("num_layers", 30),
        "text_len": raw.get("text_len", 512),
        "text_dim": raw.get("text_dim", 4096),
        "patch_size": tuple(raw.get("patch_size", (1, 2, 2))),
        "eps": raw.get("eps", 1e-6),
    }
    if cfg["dim"] % cfg["num_heads"]:
        raise SystemExit(f"dim {cfg['dim']} is not a multiple of num_heads {cfg['num_heads']}")
    cfg["head_dim"] = cfg["dim"] // cfg["num_heads"]
    return cfg


# ----------------------------------------------------------------------------- model pieces

def rms_norm_fp32(x, weight, eps):
    """RMSNorm over the last dim (all heads at once), statistics in fp32, cast back, then weight."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    return y.to(x.dtype) * weight


def apply_rope(x, cos, sin):
    """x [L, heads, head_dim]; cos/sin [L, 1, head_dim/2] fp32. Pairs (x[2i], x[2i+1]) = (re, im)."""
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def timestep_sinusoid(t, freq_dim):
    """t [F] float -> [F, freq_dim]: cos(t*w_k) for k < half, then sin(t*w_k); w_k = 10000^(-k/half)."""
    half = freq_dim // 2
    k = torch.arange(half, device=t.device, dtype=torch.float64)
    omega = torch.pow(10000.0, -k / half)
    angle = t.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat((torch.cos(angle), torch.sin(angle)), dim=1)


def rope_tables(cfg, frames, grid_h, grid_w, first_frame, device):
    """cos/sin [frames*grid_h*grid_w, 1, head_dim/2] for tokens in raster order (f, h, w).

    head_dim/2 complex pairs split time / height / width as (d - 4*(d//6), 2*(d//6), 2*(d//6))
    real dims, i.e. 22/21/21 pairs at d = 128; angle = pos * 10000^(-2j/n) per axis (float64).
    """
    d = cfg["head_dim"]
    n_hw = 2 * (d // 6)
    n_t = d - 2 * n_hw

    def axis_angles(n, positions):
        j = torch.arange(n // 2, dtype=torch.float64)
        omega = torch.pow(10000.0, -2.0 * j / n)
        return positions.to(torch.float64)[:, None] * omega[None, :]

    if first_frame + frames > ROPE_POSITIONS:
        raise SystemExit(f"RoPE table has {ROPE_POSITIONS} positions; frame {first_frame + frames} is past it")
    ang_t = axis_angles(n_t, torch.arange(first_frame, first_frame + frames))  # [frames, n_t/2]
    ang_h = axis_angles(n_hw, torch.arange(grid_h))                            # [grid_h, n_hw/2]
    ang_w = axis_angles(n_hw, torch.arange(grid_w))                            # [grid_w, n_hw/2]
    angles = torch.cat((
        ang_t[:, None, None, :].expand(frames, grid_h, grid_w, -1),
        ang_h[None, :, None, :].expand(frames, grid_h, grid_w, -1),
        ang_w[None, None, :, :].expand(frames, grid_h, grid_w, -1),
    ), dim=-1).reshape(frames * grid_h * grid_w, 1, d // 2)
    return torch.cos(angles).float().to(device), torch.sin(angles).float().to(device)


class Attention(nn.Module):
    """q/k/v/o projections plus the across-heads q/k RMSNorm weights (used for self and cross)."""

    def __init__(self, dim):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = nn.Parameter(torch.ones(dim))
        self.norm_k = nn.Parameter(torch.ones(dim))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dim = cfg["dim"]
        self.eps, self.heads, self.head_dim = cfg["eps"], cfg["num_heads"], cfg["head_dim"]
        self.modulation = nn.Parameter(torch.zeros(1, 6, dim))
        self.self_attn = Attention(dim)
        self.norm3 = nn.LayerNorm(dim, eps=cfg["eps"], elementwise_affine=True)  # cross-attn pre-norm
        self.cross_attn = Attention(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, cfg["ffn_dim"]), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg["ffn_dim"], dim))

    def cross_kv(self, ctx):
        """ctx [text_len, dim] (already text-embedded) -> K, V as [1, heads, text_len, head_dim]."""
        k = rms_norm_fp32(self.cross_attn.k(ctx), self.cross_attn.norm_k, self.eps)
        v = self.cross_attn.v(ctx)
        return tuple(t.view(-1, self.heads, self.head_dim).transpose(0, 1).unsqueeze(0).contiguous()
                     for t in (k, v))

    def forward(self, x, e0, cos, sin, cache_k, cache_v, slot, cross_k, cross_v):
        """x [frames, tokens, dim]; e0 [frames, 6, dim]; cache_* [cap, heads, head_dim] (chunk -> rows slot:)."""
        frames, tokens, dim = x.shape
        n = frames * tokens
        shift_msa, scale_msa, gate_msa, shift_ffn, scale_ffn, gate_ffn = \
            (self.modulation + e0).unsqueeze(2).unbind(dim=1)  # each [frames, 1, dim]

        # self-attention over [cache + chunk]
        h = F.layer_norm(x, (dim,), eps=self.eps) * (1 + scale_msa) + shift_msa
        h = h.view(n, dim)
        sa = self.self_attn
        q = rms_norm_fp32(sa.q(h), sa.norm_q, self.eps).view(n, self.heads, self.head_dim)
        k = rms_norm_fp32(sa.k(h), sa.norm_k, self.eps).view(n, self.heads, self.head_dim)
        v = sa.v(h).view(n, self.heads, self.head_dim)
        q = apply_rope(q, cos, sin)
        cache_k[slot:slot + n] = apply_rope(k, cos, sin)  # keys are stored post-RoPE
        cache_v[slot:slot + n] = v
        y = F.scaled_dot_product_attention(
            q.transpose(0, 1).unsqueeze(0),           # [1, heads, n, head_dim]
            cache_k[:slot + n].transpose(0, 1).unsqueeze(0),  # [1, heads, slot+n, head_dim]
            cache_v[:slot + n].transpose(0, 1).unsqueeze(0))
        y = sa.o(y.squeeze(0).transpose(0, 1).reshape(n, dim))
        x = x + y.view(frames, tokens, dim) * gate_msa

        # cross-attention to the cached text K/V (no RoPE, no mask, no modulation)
        ca = self.cross_attn
        hq = rms_norm_fp32(ca.q(self.norm3(x).view(n, dim)), ca.norm_q, self.eps)
        y = F.scaled_dot_product_attention(
            hq.view(n, self.heads, self.head_dim).transpose(0, 1).unsqueeze(0), cross_k, cross_v)
        x = x + ca.o(y.squeeze(0).transpose(0, 1).reshape(n, dim)).view(frames, tokens, dim)

        # FFN
        h = F.layer_norm(x, (dim,), eps=self.eps) * (1 + scale_ffn) + shift_ffn
        return x + self.ffn(h) * gate_ffn


class WanChunkDiT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dim, self.cfg = cfg["dim"], cfg
        self.patch_embedding = nn.Conv3d(cfg["in_dim"], dim, kernel_size=cfg["patch_size"],
                                         stride=cfg["patch_size"])
        self.text_embedding = nn.Sequential(nn.Linear(cfg["text_dim"], dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(cfg["freq_dim"], dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg["num_layers"]))
        self.head_modulation = nn.Parameter(torch.zeros(1, 2, dim))
        self.head = nn.Linear(dim, math.prod(cfg["patch_size"]) * cfg["out_dim"])

    def cross_kv(self, context):
        """context [text_len, text_dim] -> per-layer (K, V); computed once, outside the timing."""
        ctx = self.text_embedding(context)
        return [blk.cross_kv(ctx) for blk in self.blocks]

    def forward(self, latent, t, cos, sin, caches_k, caches_v, slot, cross):
        """latent [1, in_dim, frames, H, W]; t [frames] -> velocity [1, out_dim, frames, H, W]."""
        cfg, dim = self.cfg, self.cfg["dim"]
        pt, ph, pw = cfg["patch_size"]
        x = self.patch_embedding(latent)                       # [1, dim, f, gh, gw]
        _, _, f, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2).reshape(f, gh * gw, dim)  # raster tokens per frame

        e = self.time_embedding(timestep_sinusoid(t, cfg["freq_dim"]).to(x.dtype))  # [f, dim]
        e0 = self.time_projection(e).view(f, 6, dim)

        for i, blk in enumerate(self.blocks):
            x = blk(x, e0, cos, sin, caches_k[i], caches_v[i], slot, *cross[i])

        shift, scale = (self.head_modulation + e.unsqueeze(1)).unsqueeze(2).unbind(dim=1)
        out = self.head(F.layer_norm(x, (dim,), eps=cfg["eps"]) * (1 + scale) + shift)
        # unpatchify: features ordered (pt, ph, pw, c), channel fastest
        c = cfg["out_dim"]
        out = out.view(f, gh, gw, pt, ph, pw, c).permute(6, 0, 3, 1, 4, 2, 5)
        return out.reshape(1, c, f * pt, gh * ph, gw * pw)


def init_random_(model, seed):
    """Small random weights (N(0, 0.02)); norm weights stay 1, modulation tables small."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith(("norm_q", "norm_k")) or ".norm3." in name:
            continue
        p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


# ----------------------------------------------------------------------------- benchmark

def model_flops(cfg, queries, kv_len):
    """Matmul FLOPs of one chunk forward (projections, FFN, both attentions, head); 2 per MAC."""
    d, ff, layers = cfg["dim"], cfg["ffn_dim"], cfg["num_layers"]
    per_layer = 2 * queries * (6 * d * d + 2 * d * ff)       # self q,k,v,o + cross q,o + FFN
    per_layer += 4 * queries * kv_len * d + 4 * queries * cfg["text_len"] * d  # QK^T and PV
    head = 2 * queries * d * math.prod(cfg["patch_size"]) * cfg["out_dim"]
    return layers * per_layer + head


class Timer:
    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn):
        if self.cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_depth(model, cfg, args, depth, device, grid, cross, latent, t):
    frames, (gh, gw) = args.frames, grid
    tokens = gh * gw
    slot, cap = depth * tokens, (depth + frames) * tokens
    heads, hd, layers = cfg["num_heads"], cfg["head_dim"], cfg["num_layers"]
    gen = torch.Generator(device=device).manual_seed(1000 + depth)

    def random_cache():
        buf = torch.empty(cap, heads, hd, device=device, dtype=torch.bfloat16)
        buf[:slot].normal_(generator=gen)
        buf[slot:].zero_()
        return buf

    caches_k = [random_cache() for _ in range(layers)]
    caches_v = [random_cache() for _ in range(layers)]
    cos, sin = rope_tables(cfg, frames, gh, gw, depth, device)

    fn, compile_s = model, None
    if args.compile == "default":
        torch._dynamo.reset()  # a fresh compile for this depth's shapes
        fn = torch.compile(model, mode="default", dynamic=False)
    run = lambda: fn(latent, t, cos, sin, caches_k, caches_v, slot, cross)  # noqa: E731

    if args.compile == "default":
        sync(device)
        t0 = time.perf_counter()
        run()  # the first call compiles; not timed
        sync(device)
        compile_s = time.perf_counter() - t0
    warmup = args.warmup if args.warmup is not None else (8 if args.compile == "default" else 3)
    for _ in range(warmup):
        run()
    sync(device)
    timer = Timer(device)
    times = [timer(run) for _ in range(args.repeats)]
    out = run()
    sync(device)
    finite = bool(torch.isfinite(out).all())
    shape = tuple(out.shape)
    del caches_k, caches_v, out, fn
    return statistics.median(times), compile_s, finite, shape, slot + frames * tokens


def parse_latent(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--latent wants HxW, e.g. 60x104, not {text!r}")
    return h, w


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="Wan config.json (default: wan2.1-t2v-1.3b)")
    ap.add_argument("--depths", default="0,21,60,120", help="cached frames, comma-separated")
    ap.add_argument("--backend", choices=sorted(BACKENDS), default="cudnn", help="SDPA backend")
    ap.add_argument("--compile", choices=("none", "default"), default="none")
    ap.add_argument("--repeats", type=int, default=10, help="timed runs; the median is reported")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs (default 3; 8 with --compile)")
    ap.add_argument("--latent", type=parse_latent, default=(60, 104), help="latent HxW (default 60x104)")
    ap.add_argument("--frames", type=int, default=3, help="latent frames per chunk (default 3)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_torch_chunk: no CUDA device (use --device cpu --backend math for a smoke test)",
              file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    depths = [int(v) for v in args.depths.split(",") if v.strip()]
    pt, ph, pw = cfg["patch_size"]
    lat_h, lat_w = args.latent
    if lat_h % ph or lat_w % pw or args.frames % pt:
        raise SystemExit(f"latent {lat_h}x{lat_w}x{args.frames} is not divisible by patch {cfg['patch_size']}")
    grid = (lat_h // ph, lat_w // pw)
    tokens = grid[0] * grid[1]
    queries = args.frames // pt * tokens

    torch.manual_seed(args.seed)
    with torch.inference_mode():
        model = WanChunkDiT(cfg)
        init_random_(model, args.seed)
        model = model.to(device=device, dtype=torch.bfloat16).eval()
        n_params = sum(p.numel() for p in model.parameters())

        gen = torch.Generator(device=device).manual_seed(args.seed + 1)
        context = torch.randn(cfg["text_len"], cfg["text_dim"], device=device, dtype=torch.bfloat16,
                              generator=gen)
        cross = model.cross_kv(context)  # cached once, outside the timing
        latent = torch.randn(1, cfg["in_dim"], args.frames, lat_h, lat_w, device=device,
                             dtype=torch.bfloat16, generator=gen)
        t = torch.full((args.frames,), TIMESTEP, device=device, dtype=torch.float32)

        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"device: {name}  torch {torch.__version__}")
        print(f"config: {args.config}: dim {cfg['dim']}, {cfg['num_layers']} layers, "
              f"{cfg['num_heads']}x{cfg['head_dim']} heads, ffn {cfg['ffn_dim']}, "
              f"text {cfg['text_len']}x{cfg['text_dim']}, {n_params / 1e6:.1f} M params bf16")
        print(f"chunk: {args.frames} frames x {lat_h}x{lat_w} latent = {tokens} tokens/frame, "
              f"{queries} queries; median of {args.repeats} (torch.cuda.Event on cuda)")
        print(f"{'backend':<10} {'compile':<8} {'cached':>6} {'kv_len':>7} {'ms/chunk':>10} "
              f"{'TFLOP/s':>8} {'cache GiB':>9} {'peak GiB':>9} {'compile s':>9}")

        shape = None
        for depth in depths:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            cache_gib = 2 * cfg["num_layers"] * (depth + args.frames) * tokens * cfg["dim"] * 2 / 2**30
            try:
                with sdpa_kernel(BACKENDS[args.backend]):
                    ms, compile_s, finite, shape, kv_len = bench_depth(
                        model, cfg, args, depth, device, grid, cross, latent, t)
            except (RuntimeError, torch.OutOfMemoryError) as error:  # backend refuses shape, OOM, ...
                msg = str(error).strip().splitlines()[0][:100] if str(error).strip() else type(error).__name__
                print(f"{args.backend:<10} {args.compile:<8} {depth:>6} {'-':>7} {'n/a':>10}  ({msg})")
                continue
            peak = (f"{torch.cuda.max_memory_allocated(device) / 2**30:>9.2f}"
                    if device.type == "cuda" else f"{'n/a':>9}")
            tflops = model_flops(cfg, queries, kv_len) / (ms * 1e-3) / 1e12
            comp = f"{compile_s:>9.1f}" if compile_s is not None else f"{'-':>9}"
            note = "" if finite else "  (non-finite output)"
            print(f"{args.backend:<10} {args.compile:<8} {depth:>6} {kv_len:>7} {ms:>10.3f} "
                  f"{tflops:>8.1f} {cache_gib:>9.2f} {peak} {comp}{note}", flush=True)
        print(f"output {shape} per chunk; kv_len = cached + chunk tokens; peak = weights + cache + activations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
