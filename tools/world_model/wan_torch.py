"""The Wan2.1 DiT and fastar's small text encoder in plain PyTorch (training side of fastar).

This computes exactly what src/fastar/model/wan_dit.cpp computes (docs: /work/shared/docs/wan-spec.md §3),
with the same parameter names as an original Wan checkpoint, so `model.state_dict()` is what fastar loads:

  patch_embedding (Conv3d, kernel = stride = patch) → tokens raster over (frame, h, w)
  e  = time_embedding(sinusoid(t))   [+ action_embedding(one-hot action): fastar's world-model extension]
  e0 = time_projection(e) → 6 per-frame modulation vectors per block
  block: x += SelfAttn(LN(x)(1+scale)+shift)·gate      q/k RMSNorm over dim, 3D RoPE (global frame index)
         x += CrossAttn(LN3_affine(x), text)           q/k RMSNorm, no RoPE, no mask
         x += FFN(LN(x)(1+scale)+shift)·gate            GELU(tanh)
  head:  Linear(LN(x)(1+scale)+shift) with (shift, scale) = head.modulation + e; unpatchify (channel-minor)

Self-attention takes an optional frame-level mask (query frame, key frame) → used for block-causal
training. The text encoder (TextEncoder, tensors `text_encoder.*`) is fastar's own small model whose
C++ twin is src/fastar/model/text_encoder.cpp.

Shapes: x [B, C, F, H, W]; t [B, F] (float, 0..1000); context [B, text_len, text_dim];
actions [B, F, action_dim]; frame_pos [B, F] (RoPE time index per frame).
"""

import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

def world_small_config(**overrides):
    """The shipped world model (issue 5): pixel space 64×64, patch (1,4,4) → 256 tokens per frame."""
    c = dict(
        _class_name="WanModel", model_type="t2v",
        dim=256, ffn_dim=1024, freq_dim=256, in_dim=3, out_dim=3, num_heads=4, num_layers=8,
        text_len=48, text_dim=128, patch_size=[1, 4, 4], eps=1e-6, qk_norm=True, cross_attn_norm=True,
        action_dim=5, latent_height=64, latent_width=64,
        text_encoder=dict(vocab_size=64, layers=2, heads=2, ffn_dim=512),
    )
    c.update(overrides)
    return c


def save_config(config, path):
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# Building blocks (each matches one CPU kernel of src/fastar/kernels/cpu/ops.h)
# ---------------------------------------------------------------------------------------------

def sinusoidal_embedding(t, dim):
    """t [...] → [..., dim]: [cos(t·ω_k), sin(t·ω_k)], ω_k = 10000^(−k/half), computed in float64."""
    half = dim // 2
    omega = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    angle = t.to(torch.float64)[..., None] * omega
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1).to(torch.float32)


def rope_pairs(head_dim):
    """Complex pairs per axis (time, height, width): c − 2(c//3), c//3, c//3 with c = head_dim/2."""
    c = head_dim // 2
    return c - 2 * (c // 3), c // 3, c // 3


def rope_angles(pos, pairs):
    """pos [...] (int) → angles [..., pairs] = pos · 10000^(−2j/(2·pairs)), float64."""
    j = torch.arange(pairs, dtype=torch.float64, device=pos.device)
    omega = torch.pow(10000.0, -2.0 * j / (2.0 * pairs))
    return pos.to(torch.float64)[..., None] * omega


def rope_tables(frame_pos, grid_h, grid_w, head_dim):
    """cos, sin [B, N, head_dim/2] (float32) for tokens raster over (frame, h, w).

    frame_pos [B, F]: the RoPE time index of each token-frame (the global frame index)."""
    pt, ph, pw = rope_pairs(head_dim)
    B, nf = frame_pos.shape
    dev = frame_pos.device
    a_t = rope_angles(frame_pos, pt)                                      # [B, F, pt]
    a_h = rope_angles(torch.arange(grid_h, device=dev), ph)               # [H, ph]
    a_w = rope_angles(torch.arange(grid_w, device=dev), pw)               # [W, pw]
    a_t = a_t[:, :, None, None, :].expand(B, nf, grid_h, grid_w, pt)
    a_h = a_h[None, None, :, None, :].expand(B, nf, grid_h, grid_w, ph)
    a_w = a_w[None, None, None, :, :].expand(B, nf, grid_h, grid_w, pw)
    angle = torch.cat([a_t, a_h, a_w], dim=-1).reshape(B, nf * grid_h * grid_w, pt + ph + pw)
    return torch.cos(angle).to(torch.float32), torch.sin(angle).to(torch.float32)


def apply_rope(x, cos, sin):
    """x [B, N, heads, head_dim]; interleaved pairs (x[2i], x[2i+1]) rotated by the table's angle."""
    dtype = x.dtype
    x = x.float().reshape(*x.shape[:-1], -1, 2)
    a, b = x[..., 0], x[..., 1]
    c, s = cos[:, :, None, :], sin[:, :, None, :]
    out = torch.stack([a * c - b * s, a * s + b * c], dim=-1)
    return out.flatten(-2).to(dtype)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight over the last axis, statistics in fp32."""

    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


def layer_norm(x, eps):
    """Parameter-free LayerNorm in fp32."""
    return F.layer_norm(x.float(), (x.shape[-1],), eps=eps)


class Attention(nn.Module):
    """Wan self-/cross-attention: q, k, v, o Linear with bias; q/k RMSNorm over the full dim."""

    def __init__(self, dim, heads, eps, qk_norm):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def forward(self, x, kv_source, rope=None, mask=None):
        B, N, D = x.shape
        M = kv_source.shape[1]
        hd = D // self.heads
        q = self.norm_q(self.q(x)).view(B, N, self.heads, hd)
        k = self.norm_k(self.k(kv_source)).view(B, M, self.heads, hd)
        v = self.v(kv_source).view(B, M, self.heads, hd)
        if rope is not None:
            q = apply_rope(q, *rope)
            k = apply_rope(k, *rope)
        q, k, v = (y.transpose(1, 2) for y in (q, k, v))
        dtype = v.dtype
        y = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v, attn_mask=mask)
        return self.o(y.transpose(1, 2).reshape(B, N, D))


class WanBlock(nn.Module):
    def __init__(self, dim, ffn_dim, heads, eps, qk_norm, cross_attn_norm):
        super().__init__()
        self.eps = eps
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)
        self.self_attn = Attention(dim, heads, eps, qk_norm)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True) if cross_attn_norm else nn.Identity()
        self.cross_attn = Attention(dim, heads, eps, qk_norm)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))

    def forward(self, x, e0, text, rope, mask, tokens_per_frame):
        # x [B, N, D]; e0 [B, F, 6, D] → per-frame (shift, scale, gate) × (attention, FFN), in fp32.
        B, N, D = x.shape
        nf = N // tokens_per_frame
        m = (self.modulation.float()[None] + e0.float()).unbind(2)  # 6 × [B, F, D]
        m = [t[:, :, None, :] for t in m]                          # broadcast over a frame's tokens

        def per_frame(y):
            return y.view(B, nf, tokens_per_frame, D)

        h = per_frame(layer_norm(x, self.eps)) * (1 + m[1]) + m[0]
        y = self.self_attn(h.view(B, N, D).to(x.dtype), h.view(B, N, D).to(x.dtype), rope=rope, mask=mask)
        x = (per_frame(x.float()) + per_frame(y.float()) * m[2]).view(B, N, D)
        x = x + self.cross_attn(self.norm3(x), text).float()
        h = per_frame(layer_norm(x, self.eps)) * (1 + m[4]) + m[3]
        y = self.ffn(h.view(B, N, D).to(x.dtype))
        x = (per_frame(x.float()) + per_frame(y.float()) * m[5]).view(B, N, D)
        return x


class Head(nn.Module):
    def __init__(self, dim, out_features, eps):
        super().__init__()
        self.eps = eps
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim ** 0.5)
        self.head = nn.Linear(dim, out_features)

    def forward(self, x, e, tokens_per_frame):
        B, N, D = x.shape
        nf = N // tokens_per_frame
        shift, scale = (self.modulation.float()[None] + e.float()[:, :, None, :]).unbind(2)  # [B, F, D] each
        h = layer_norm(x, self.eps).view(B, nf, tokens_per_frame, D) * (1 + scale[:, :, None]) + shift[:, :, None]
        return self.head(h.view(B, N, D))


# ---------------------------------------------------------------------------------------------
# The DiT
# ---------------------------------------------------------------------------------------------

class WanDiT(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = config
        self.config = c
        self.dim, self.heads = c["dim"], c["num_heads"]
        self.patch = tuple(c["patch_size"])
        self.freq_dim, self.eps = c["freq_dim"], c["eps"]
        self.in_dim, self.out_dim = c["in_dim"], c["out_dim"]
        self.action_dim = c.get("action_dim", 0)
        d = self.dim
        self.patch_embedding = nn.Conv3d(c["in_dim"], d, kernel_size=self.patch, stride=self.patch)
        self.text_embedding = nn.Sequential(nn.Linear(c["text_dim"], d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(self.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        if self.action_dim > 0:
            self.action_embedding = nn.Sequential(nn.Linear(self.action_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(
            WanBlock(d, c["ffn_dim"], self.heads, self.eps, c.get("qk_norm", True), c.get("cross_attn_norm", True))
            for _ in range(c["num_layers"]))
        self.head = Head(d, math.prod(self.patch) * self.out_dim, self.eps)
        self.reset_parameters()

    def reset_parameters(self):
        """Small init for outputs of residual branches (stable start); Wan's own init is similar in spirit."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.view(self.dim, -1))
        nn.init.zeros_(self.patch_embedding.bias)
        for b in self.blocks:
            nn.init.zeros_(b.self_attn.o.weight)
            nn.init.zeros_(b.ffn[2].weight)
            nn.init.zeros_(b.cross_attn.o.weight)
        nn.init.zeros_(self.head.head.weight)

    def embed_time(self, t, actions):
        """t [B, F'], actions [B, F', action_dim] or None → e [B, F', D], e0 [B, F', 6, D] (fp32)."""
        e = self.time_embedding(sinusoidal_embedding(t, self.freq_dim).to(self.time_embedding[0].weight.dtype))
        if self.action_dim > 0:
            assert actions is not None, "this model takes per-frame actions"
            e = e + self.action_embedding(actions.to(e.dtype))
        e = e.float()
        e0 = self.time_projection(e).float().unflatten(-1, (6, self.dim))
        return e, e0

    def forward(self, x, t, context, actions=None, frame_pos=None, frame_mask=None):
        """x [B, C, F, H, W]; t [B, F]; context [B, L, text_dim]; actions [B, F, A]; frame_pos [B, F] (RoPE
        time index, default 0..F−1); frame_mask [F', F'] bool (query token-frame, key token-frame; True =
        attend) or None (bidirectional). Returns the flow prediction v [B, out_dim, F, H, W] in fp32."""
        B, C, nF, H, W = x.shape
        pt, ph, pw = self.patch
        gf, gh, gw = nF // pt, H // ph, W // pw
        T = gh * gw
        if frame_pos is None:
            frame_pos = torch.arange(nF, device=x.device)[None].expand(B, nF)
        tok = self.patch_embedding(x.to(self.patch_embedding.weight.dtype))   # [B, D, gf, gh, gw]
        tok = tok.flatten(2).transpose(1, 2)                                     # [B, N, D]
        t_frames = t[:, ::pt]
        a_frames = actions[:, ::pt] if actions is not None else None
        e, e0 = self.embed_time(t_frames, a_frames)
        text = self.text_embedding(context.to(self.text_embedding[0].weight.dtype))
        rope = rope_tables(frame_pos[:, ::pt] // pt, gh, gw, self.dim // self.heads)
        mask = None
        if frame_mask is not None:
            mask = frame_mask.repeat_interleave(T, 0).repeat_interleave(T, 1)
        xs = tok.float()  # the residual stream stays fp32; under autocast the matmuls run in bf16
        for block in self.blocks:
            xs = block(xs, e0, text, rope, mask, T)
        out = self.head(xs, e, T).float()  # [B, N, pt·ph·pw·C]
        out = out.view(B, gf, gh, gw, pt, ph, pw, self.out_dim)
        out = out.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(B, self.out_dim, nF, H, W)
        return out


# ---------------------------------------------------------------------------------------------
# Text encoder (fastar's own; C++ twin in src/fastar/model/text_encoder.cpp)
# ---------------------------------------------------------------------------------------------

class TextEncoderLayer(nn.Module):
    """Pre-norm transformer layer: x += Attn(LN1(x)); x += FFN(LN2(x)), FFN = Linear → GELU(tanh) → Linear."""

    def __init__(self, dim, heads, ffn_dim, eps):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))

    def forward(self, x, mask):
        B, L, D = x.shape
        hd = D // self.heads
        h = self.norm1(x)
        q, k, v = (lin(h).view(B, L, self.heads, hd).transpose(1, 2) for lin in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])
        x = x + self.o(y.transpose(1, 2).reshape(B, L, D))
        return x + self.ffn(self.norm2(x))


class TextEncoder(nn.Module):
    """tokens [B, L] (int, 0 = pad) → context [B, L, text_dim]; padded rows are exactly zero.

    x = token_embedding[tokens] + position_embedding; layers (attention sees only non-pad keys); final
    LayerNorm `norm`; rows of pad tokens set to zero."""

    def __init__(self, vocab_size, text_len, text_dim, layers, heads, ffn_dim, eps=1e-6):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, text_dim)
        self.position_embedding = nn.Parameter(torch.randn(text_len, text_dim) * 0.02)
        self.layers = nn.ModuleList(TextEncoderLayer(text_dim, heads, ffn_dim, eps) for _ in range(layers))
        self.norm = nn.LayerNorm(text_dim, eps=eps)
        nn.init.normal_(self.token_embedding.weight, std=0.5)

    def forward(self, tokens):
        B, L = tokens.shape
        valid = tokens != 0                                                   # [B, L]
        x = self.token_embedding(tokens) + self.position_embedding[:L]
        # query i sees non-pad keys; a pad query also sees itself (never a row with no key; its output is
        # discarded), so non-pad rows equal attention over the non-pad tokens alone.
        eye = torch.eye(L, dtype=torch.bool, device=tokens.device)[None]
        mask = valid[:, None, :] | eye                                        # [B, L(query), L(key)]
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x)
        return torch.where(valid[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))


def make_text_encoder(config):
    te = config["text_encoder"]
    return TextEncoder(te["vocab_size"], config["text_len"], config["text_dim"], te["layers"], te["heads"],
                       te["ffn_dim"], config["eps"])


class WorldModel(nn.Module):
    """DiT + text encoder; state_dict names: Wan original names and `text_encoder.*`."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.dit = WanDiT(config)
        self.text_encoder = make_text_encoder(config)

    def export_state_dict(self):
        out = {k: v for k, v in self.dit.state_dict().items()}
        out.update({"text_encoder." + k: v for k, v in self.text_encoder.state_dict().items()})
        return out

    def load_export_state_dict(self, tensors):
        dit = {k: v for k, v in tensors.items() if not k.startswith("text_encoder.")}
        te = {k[len("text_encoder."):]: v for k, v in tensors.items() if k.startswith("text_encoder.")}
        self.dit.load_state_dict(dit, strict=True)
        self.text_encoder.load_state_dict(te, strict=True)


@torch.no_grad()
def random_init_(model, seed):
    """Deterministic bf16-exact random weights that make every term matter (tests and goldens)."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        z = torch.randn(p.shape, generator=gen)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "modulation":
            v = 0.1 * z
        elif p.ndim == 1 and "norm" in name and leaf == "weight":
            v = 1.0 + 0.1 * z
        elif p.ndim == 1:
            v = 0.05 * z
        elif name.endswith("token_embedding.weight") or leaf == "position_embedding":
            v = z
        else:
            v = z / (p[0].numel() ** 0.5)  # fan-in scaled: activations O(1)
        if ".head.head." in "." + name:
            v = 0.5 * v  # outputs mostly inside [-1, 1], so uint8 frames keep their information
        p.copy_(v.to(torch.bfloat16).float())
    return model


# ---------------------------------------------------------------------------------------------
# Masks, schedule, noise, rollout (the reference of src/fastar/rollout/self_forcing.cpp)
# ---------------------------------------------------------------------------------------------

def chunk_causal_mask(frame_chunks_q, frame_chunks_k, clean_k, window_chunks=0, noisy_q=None):
    """Frame-level mask for a [clean frames ; noisy frames] sequence.

    frame_chunks_*: chunk index of each frame (query / key side); clean_k: key frame is a clean one;
    noisy_q: query frame is a noisy one. Clean query chunk j sees clean chunks [j−w, j]; noisy query chunk i
    sees clean chunks [i−w, i−1] and noisy chunk i (itself). w = window_chunks (0 = unlimited).
    This is exactly what the rollout's KV memory shows: dense, or window W = w·chunk frames with no sink."""
    qc = frame_chunks_q[:, None]
    kc = frame_chunks_k[None, :]
    ck = clean_k[None, :]
    nq = noisy_q[:, None]
    lo = (qc - window_chunks) if window_chunks > 0 else torch.full_like(qc, -(1 << 30))
    clean_rows = ~nq & ck & (kc <= qc) & (kc >= lo)
    noisy_rows = nq & ((ck & (kc < qc) & (kc >= lo)) | (~ck & (kc == qc)))
    return clean_rows | noisy_rows


def teacher_forcing_layout(num_chunks, chunk_frames, window_chunks=0, device="cpu"):
    """Frame order [clean chunks 0..K−2 ; noisy chunks 0..K−1] (the last clean chunk has no reader).

    Returns (mask [S, S] bool, source_frame [S] long: which clip frame each position shows, is_noisy [S])."""
    clean = torch.arange((num_chunks - 1) * chunk_frames, device=device)
    noisy = torch.arange(num_chunks * chunk_frames, device=device)
    source = torch.cat([clean, noisy])
    is_noisy = torch.cat([torch.zeros_like(clean, dtype=torch.bool), torch.ones_like(noisy, dtype=torch.bool)])
    chunk = source // chunk_frames
    mask = chunk_causal_mask(chunk, chunk, ~is_noisy, window_chunks, is_noisy)
    return mask, source, is_noisy


def schedule_timesteps(steps, shift, warp=True, num_train_timesteps=1000):
    """The rollout's timestep list (src/fastar/rollout/schedule.cpp)."""
    out = []
    T = num_train_timesteps
    for s in steps:
        if not warp:
            out.append(float(s))
            continue
        index = T - int(round(s))
        if index >= T:
            out.append(0.0)
            continue
        sigma = 1.0 - index / T
        out.append(float(T * (shift * sigma / (1.0 + (shift - 1.0) * sigma))))
    return out


def _philox4x32_10(c0, c1, c2, c3, key0, key1):
    """Vectorised Philox-4x32-10 on numpy uint64 arrays holding uint32 values."""
    import numpy as np
    m32 = np.uint64(0xFFFFFFFF)
    k0, k1 = np.uint64(key0), np.uint64(key1)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ k0
        n1 = p1 & m32
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ k1
        n3 = p0 & m32
        c0, c1, c2, c3 = n0, n1, n2, n3
        k0 = (k0 + np.uint64(0x9E3779B9)) & m32
        k1 = (k1 + np.uint64(0xBB67AE85)) & m32
    return c0, c1, c2, c3


def gaussian_noise(count, seed, stream):
    """fastar's counter-based noise (src/fastar/rollout/noise.cpp), bit-for-bit: float32 numpy [count]."""
    import numpy as np
    blocks = (count + 3) // 4
    b = np.arange(blocks, dtype=np.uint64)
    m32 = np.uint64(0xFFFFFFFF)
    c0, c1 = b & m32, b >> np.uint64(32)
    c2 = np.full_like(b, np.uint64(stream & 0xFFFFFFFF))
    c3 = np.full_like(b, np.uint64((stream >> 32) & 0xFFFFFFFF))
    bits = _philox4x32_10(c0, c1, c2, c3, seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)
    unit = [(x.astype(np.float64) + 1.0) / 4294967296.0 for x in bits]
    out = np.empty((blocks, 4), dtype=np.float64)
    for pair in range(2):
        radius = np.sqrt(-2.0 * np.log(unit[2 * pair]))
        angle = 6.283185307179586 * unit[2 * pair + 1]
        out[:, 2 * pair] = radius * np.cos(angle)
        out[:, 2 * pair + 1] = radius * np.sin(angle)
    return out.reshape(-1)[:count].astype(np.float32)


def rollout_noise_stream(chunk, step):
    return (chunk << 16) | step


@torch.no_grad()
def reference_rollout(model, tokens, actions, num_chunks, chunk_frames=3, steps=(1000, 750, 500, 250), shift=5.0,
                      context_noise=0.0, seed=0, window_chunks=0, height=None, width=None, device="cpu"):
    """What `fastar generate` computes (self-forcing schedule, dense or window policy without sink), written
    as masked full-sequence forwards: for chunk i the sequence is [committed clean chunks ; noisy chunk i]
    under chunk_causal_mask, which gives the same K/V the rollout's memory holds. Noise is fastar's.

    tokens [L] long; actions [num_chunks·chunk_frames, action_dim] float or None. Returns x0 frames
    [C, F, H, W] float32 (one batch element)."""
    dit, te = model.dit, model.text_encoder
    c = model.config
    H = height or c["latent_height"]
    W = width or c["latent_width"]
    C = c["in_dim"]
    ts = schedule_timesteps(list(steps), shift)
    context = te(tokens[None].to(device))
    n = C * chunk_frames * H * W
    clean = []  # committed x0 chunks [C, chunk_frames, H, W]
    for i in range(num_chunks):
        # every committed chunk is recomputed (the mask applies the window): a windowed chunk's K/V were
        # computed from its own window, which reaches further back.
        ctx_chunks = list(range(0, i))
        ctx = [clean[j] for j in ctx_chunks]
        x = torch.from_numpy(gaussian_noise(n, seed, rollout_noise_stream(i, 0))).view(C, chunk_frames, H, W).to(device)
        for s, t in enumerate(ts):
            seq = torch.cat(ctx + [x], dim=1)[None]
            tv = torch.tensor([context_noise] * (len(ctx) * chunk_frames) + [t] * chunk_frames, device=device)[None]
            frames = [j * chunk_frames + f for j in ctx_chunks for f in range(chunk_frames)] + \
                     [i * chunk_frames + f for f in range(chunk_frames)]
            fpos = torch.tensor(frames, device=device)[None]
            act = actions[frames][None].to(device) if actions is not None else None
            chunk_id = fpos[0] // chunk_frames
            is_noisy = torch.tensor([False] * (len(ctx) * chunk_frames) + [True] * chunk_frames, device=device)
            mask = chunk_causal_mask(chunk_id, chunk_id, ~is_noisy, window_chunks, is_noisy)
            v = dit(seq, tv, context, act, fpos, mask)[0, :, -chunk_frames:]
            sigma = t / 1000.0
            x0 = (x.double() - sigma * v.double()).float()
            if s + 1 < len(ts):
                ns = ts[s + 1] / 1000.0
                eps = torch.from_numpy(gaussian_noise(n, seed, rollout_noise_stream(i, s + 1))).view_as(x).to(device)
                x = ((1.0 - ns) * x0.double() + ns * eps.double()).float()
        clean.append(x0)
    return torch.cat(clean, dim=1)
