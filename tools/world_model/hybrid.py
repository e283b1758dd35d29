"""ARL² hybrid layers for the world model (issue 5 item 4), computing exactly what fastar's `--policy arl2` computes.

The reference is src/fastar/attention/arl2_hybrid_memory.cpp (docs/arl2.md). For one hybrid layer and the n
tokens of one chunk (x = the self-attention input, the adaLN-modulated LayerNorm of the residual stream):

  q, k, v   = RMSNorm(x Wqᵀ+bq), RMSNorm(x Wkᵀ+bk), x Wvᵀ+bv        (the teacher's projections, shared)
  local     = softmax(RoPE(q) RoPE(k)ᵀ/√D) v                         this chunk only, bidirectional
  q̂, k̂, v̂  = L2norm(RoPE(φ_q q)), L2norm(RoPE(φ_k k)), φ_v v          φ: one D×D matrix per head
  out       = local + sigmoid(x W_gateᵀ) · D^-½ · (q̂ · S_before)       every token reads the state before its chunk
  S ← α_t (I − β_t k̂_t k̂_tᵀ) S + β_t k̂_t v̂_tᵀ   over a CLEAN (commit) chunk's tokens, raster order, after the read
  α_t = exp(−exp(A_log)·softplus(x_t W_aᵀ + dt_bias)),   β_t = 2·sigmoid(x_t W_bᵀ)

In a sequence of frames grouped into chunks (the teacher-forcing layout of train.py [clean 0..K−2 ; noisy 0..K−1],
or the rollout's [committed 0..i−1 ; noisy i]), a chunk with index c (clean or noisy) reads S_c = the state after
the clean chunks 0..c−1. The state recurrence runs over the clean chunks in the chunked WY/UT form of
src/fastar/kernels/cpu/gated_delta_rule.h (differentiable, fp32); `delta_rule_token_loop` is the specification.

Tensor names are fastar's hybrid section of wan_weights.cpp (ARL²'s HybridBlockAttention): under
blocks.N.self_attn.: phi_{q,k,v}.weight [dim, D, 1] (Conv1d k=1, groups=heads), {a,b,gate}_proj.weight [heads, dim],
A_log [heads], dt_bias [heads]. config.json: "hybrid_layers": [...].

Distillation losses (papers.md §2.4): `layer_distill_loss` (stage 1, per layer, MSE of the hybrid attention output
against the teacher's softmax attention output on the teacher's own layer input) and `flow_distill_loss` (stage 2,
MSE of the student's flow prediction against the teacher's).
"""

import math
import os
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wan_torch  # noqa: E402

L2NORM_EPS = 1e-6      # fastar's kL2NormEps: y / sqrt(Σy² + eps)
WY_TILE = 64           # tokens per tile of the chunked update (any value gives the same result up to rounding)
HYBRID_PARAM_KEYS = ("phi_q", "phi_k", "phi_v", "a_proj", "b_proj", "gate_proj", "A_log", "dt_bias")


def is_hybrid_param(name):
    leaf = name.split(".")
    return any(k in leaf for k in HYBRID_PARAM_KEYS)


# ---------------------------------------------------------------------------------------------
# Layout: which frames form which chunk, clean or noisy
# ---------------------------------------------------------------------------------------------

@dataclass
class ChunkLayout:
    """A sequence of frames cut into groups of `chunk_frames` consecutive frames.

    chunk [G] long: the chunk index of each group; noisy [G] bool: a noisy (read-only) group, else clean (commit).
    The clean groups must be chunks 0..m−1 (any order); a group of chunk c reads the state after clean chunks < c."""
    chunk: torch.Tensor
    noisy: torch.Tensor
    chunk_frames: int

    @staticmethod
    def from_frames(frame_chunk, frame_noisy, chunk_frames):
        """frame_chunk [F], frame_noisy [F] (per frame) → the group layout; checks that groups are uniform."""
        nf = frame_chunk.numel()
        assert nf % chunk_frames == 0, f"{nf} frames are not whole chunks of {chunk_frames}"
        c = frame_chunk.view(-1, chunk_frames)
        z = frame_noisy.view(-1, chunk_frames)
        assert bool((c == c[:, :1]).all()) and bool((z == z[:, :1]).all()), "a chunk's frames must be consecutive"
        layout = ChunkLayout(c[:, 0].clone(), z[:, 0].clone(), chunk_frames)
        clean = sorted(int(i) for i in layout.chunk[~layout.noisy])
        assert clean == list(range(len(clean))), f"clean chunks must be 0..m−1, got {clean}"
        assert int(layout.chunk.max()) <= len(clean), "a chunk reads a state after clean chunks that are not in the sequence"
        return layout


# ---------------------------------------------------------------------------------------------
# The gated delta rule (fp32): specification and chunked WY/UT form
# ---------------------------------------------------------------------------------------------

def delta_rule_token_loop(state, k, v, log_alpha, beta):
    """The specification: S ← α_t S + β_t k_t (v_t − α_t Sᵀk_t)ᵀ token by token.

    state [B, H, Dk, Dv]; k [B, T, H, Dk]; v [B, T, H, Dv]; log_alpha, beta [B, T, H]. Returns the new state."""
    S = state
    for t in range(k.shape[1]):
        a = log_alpha[:, t].exp()[..., None, None]
        kt, vt, bt = k[:, t], v[:, t], beta[:, t][..., None]
        u = bt * (vt - torch.einsum("bhk,bhkv->bhv", kt, a * S))
        S = a * S + kt[..., :, None] * u[..., None, :]
    return S


def delta_rule_chunked(state, k, v, log_alpha, beta, tile=WY_TILE):
    """The same update in the WY/UT form (gated_delta_rule.h), tiles of `tile` tokens; differentiable.

    Inside a tile: c_i = Σ_{j≤i} g_j, A[i][j] = β_i e^{c_i−c_j} k_i·k_j (j < i), T = (I+A)⁻¹,
    W = T diag(β e^c) K, Û = T diag(β) V, U = Û − W S, S ← e^{c_C} S + Σ_i e^{c_C−c_i} k_i u_iᵀ."""
    B, T, H, Dk = k.shape
    S = state
    for s in range(0, T, tile):
        kt = k[:, s:s + tile].transpose(1, 2)                   # [B, H, C, Dk]
        vt = v[:, s:s + tile].transpose(1, 2)                   # [B, H, C, Dv]
        g = log_alpha[:, s:s + tile].transpose(1, 2)            # [B, H, C]
        b = beta[:, s:s + tile].transpose(1, 2)                 # [B, H, C]
        C = kt.shape[2]
        c = torch.cumsum(g, dim=-1)
        lower = torch.ones(C, C, dtype=torch.bool, device=k.device).tril(-1)
        diff = torch.where(lower, c[..., :, None] - c[..., None, :], torch.zeros((), device=k.device))
        A = torch.where(lower, b[..., :, None] * diff.exp() * (kt @ kt.transpose(-1, -2)), torch.zeros((), device=k.device))
        eye = torch.eye(C, dtype=k.dtype, device=k.device)
        I_A = eye + A                                           # unit lower triangular
        W = torch.linalg.solve_triangular(I_A, (b * c.exp())[..., None] * kt, upper=False, unitriangular=True)
        U_hat = torch.linalg.solve_triangular(I_A, b[..., None] * vt, upper=False, unitriangular=True)
        U = U_hat - W @ S                                       # [B, H, C, Dv]
        decay = (c[..., -1:] - c).exp()                         # e^{c_C − c_i}
        S = c[..., -1].exp()[..., None, None] * S + (kt * decay[..., None]).transpose(-1, -2) @ U
    return S


# ---------------------------------------------------------------------------------------------
# The hybrid self-attention layer
# ---------------------------------------------------------------------------------------------

def l2_normalize(x):
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + L2NORM_EPS)


class HybridAttention(wan_torch.Attention):
    """Wan self-attention (q, k, v, o, norm_q, norm_k: the teacher's) + ARL²'s memory branch parameters.

    forward(x, kv_source, rope, mask) with `self.layout` set (HybridWanDiT does that) computes the hybrid layer;
    the softmax mask is ignored (the softmax branch is chunk-local)."""

    def __init__(self, dim, heads, eps, qk_norm):
        super().__init__(dim, heads, eps, qk_norm)
        hd = dim // heads
        self.phi_q = nn.Conv1d(dim, dim, 1, groups=heads, bias=False)
        self.phi_k = nn.Conv1d(dim, dim, 1, groups=heads, bias=False)
        self.phi_v = nn.Conv1d(dim, dim, 1, groups=heads, bias=False)
        self.a_proj = nn.Linear(dim, heads, bias=False)
        self.b_proj = nn.Linear(dim, heads, bias=False)
        self.gate_proj = nn.Linear(dim, heads, bias=False)
        self.A_log = nn.Parameter(torch.zeros(heads))
        self.dt_bias = nn.Parameter(torch.zeros(heads))
        self.layout = None
        self.reset_hybrid_parameters(hd)

    @torch.no_grad()
    def reset_hybrid_parameters(self, hd, seed=0):
        """φ = identity (the memory keys start as the softmax keys), decay A ∈ [1, 16], dt ∈ [1e-3, 1e-1] log-uniform
        (Gated DeltaNet's init), β logits and gate logits 0 (β = 1, gate = ½), small random decay projection."""
        gen = torch.Generator().manual_seed(seed)
        eye = torch.eye(hd).repeat(self.heads, 1)[:, :, None]   # [dim, D, 1]: out h·D+i, in j → δ_ij
        for phi in (self.phi_q, self.phi_k, self.phi_v):
            phi.weight.copy_(eye)
        nn.init.zeros_(self.b_proj.weight)
        nn.init.zeros_(self.gate_proj.weight)
        self.a_proj.weight.copy_(torch.randn(self.a_proj.weight.shape, generator=gen) * 0.02)
        self.A_log.copy_(torch.log(torch.empty(self.heads).uniform_(1, 16, generator=gen)))
        dt = torch.exp(torch.rand(self.heads, generator=gen) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)

    def phi(self, conv, x):
        """Per-head D×D map: x [B, N, H, D] → [B, N, H, D], out[i] = Σ_j W[h·D+i, j] x[j]."""
        H, D = x.shape[2], x.shape[3]
        w = conv.weight.view(H, D, D).to(x.dtype)
        return torch.einsum("bnhj,hij->bnhi", x, w)

    def forward(self, x, kv_source, rope=None, mask=None):
        layout = self.layout
        assert layout is not None, "HybridAttention needs a ChunkLayout (run it through HybridWanDiT)"
        B, N, D = x.shape
        H, hd = self.heads, D // self.heads
        G = layout.chunk.numel()
        n = N // G
        q = self.norm_q(self.q(x)).view(B, N, H, hd)
        k = self.norm_k(self.k(x)).view(B, N, H, hd)
        v = self.v(x).view(B, N, H, hd)
        # Softmax branch: each chunk with itself, bidirectional.
        qr, kr = apply_rope_opt(q, rope), apply_rope_opt(k, rope)
        grp = lambda y: y.reshape(B, G, n, H, hd).permute(0, 1, 3, 2, 4).reshape(B * G, H, n, hd)  # noqa: E731
        local = F.scaled_dot_product_attention(grp(qr).to(v.dtype), grp(kr).to(v.dtype), grp(v))
        local = local.reshape(B, G, H, n, hd).permute(0, 1, 3, 2, 4).reshape(B, N, H, hd)
        # Memory branch, fp32.
        with torch.autocast(x.device.type, enabled=False):
            mem = self.memory_read(x.float(), q.float(), k.float(), v.float(), rope, layout)
        y = local.float() + mem
        return self.o(y.reshape(B, N, D))  # under autocast the projection runs in bf16

    def memory_read(self, x, q, k, v, rope, layout):
        """gate · D^-½ · q̂·S_c for every token, S_c = the state after clean chunks < c. Returns [B, N, H, D] fp32."""
        B, N, H, hd = q.shape
        G = layout.chunk.numel()
        n = N // G
        xg = x.view(B, G, n, -1)
        q_hat = l2_normalize(apply_rope_opt(self.phi(self.phi_q, q), rope, fp32=True)).view(B, G, n, H, hd)
        k_hat = l2_normalize(apply_rope_opt(self.phi(self.phi_k, k), rope, fp32=True)).view(B, G, n, H, hd)
        v_hat = self.phi(self.phi_v, v).view(B, G, n, H, hd)
        log_alpha = -self.A_log.float().exp() * F.softplus(F.linear(xg, self.a_proj.weight.float()) + self.dt_bias.float())
        beta = 2.0 * torch.sigmoid(F.linear(xg, self.b_proj.weight.float()))
        gate = torch.sigmoid(F.linear(xg, self.gate_proj.weight.float()))              # [B, G, n, H]
        chunk = layout.chunk.tolist()
        noisy = layout.noisy.tolist()
        clean_group = {c: g for g, (c, z) in enumerate(zip(chunk, noisy)) if not z}
        states = [torch.zeros(B, H, hd, hd, device=x.device, dtype=torch.float32)]
        for c in range(max(chunk)):
            g = clean_group[c]
            states.append(delta_rule_chunked(states[-1], k_hat[:, g], v_hat[:, g], log_alpha[:, g], beta[:, g]))
        S = torch.stack([states[c] for c in chunk], dim=1)                               # [B, G, H, Dk, Dv]
        read = torch.einsum("bgnhk,bghkv->bgnhv", q_hat, S)
        out = gate[..., None] * (hd ** -0.5) * read
        return out.reshape(B, N, H, hd)


def apply_rope_opt(x, rope, fp32=False):
    if rope is None:
        return x.float() if fp32 else x
    y = wan_torch.apply_rope(x, *rope)
    return y.float() if fp32 else y


# ---------------------------------------------------------------------------------------------
# The hybrid DiT and world model
# ---------------------------------------------------------------------------------------------

class HybridWanDiT(wan_torch.WanDiT):
    """WanDiT whose layers in config["hybrid_layers"] use HybridAttention. forward(..., layout=ChunkLayout)."""

    def __init__(self, config):
        super().__init__(config)
        self.hybrid_layers = sorted(int(i) for i in config.get("hybrid_layers", []))
        for i in self.hybrid_layers:
            assert 0 <= i < len(self.blocks), f"hybrid layer {i} out of range"
            self.blocks[i].self_attn = HybridAttention(self.dim, self.heads, self.eps, config.get("qk_norm", True))

    def forward(self, x, t, context, actions=None, frame_pos=None, frame_mask=None, layout=None):
        if self.hybrid_layers:
            assert layout is not None, "a hybrid DiT needs the chunk layout of the sequence"
        for i in self.hybrid_layers:
            self.blocks[i].self_attn.layout = layout
        try:
            return super().forward(x, t, context, actions, frame_pos, frame_mask)
        finally:
            for i in self.hybrid_layers:
                self.blocks[i].self_attn.layout = None


class HybridWorldModel(wan_torch.WorldModel):
    def __init__(self, config):
        super().__init__(config)
        self.dit = HybridWanDiT(config)


def hybrid_from_teacher(teacher, hybrid_layers):
    """A student that starts as the teacher (all shared weights copied) with fresh memory-branch parameters."""
    config = dict(teacher.config)
    config["hybrid_layers"] = sorted(int(i) for i in hybrid_layers)
    student = HybridWorldModel(config)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert not unexpected and all(is_hybrid_param(m) for m in missing), (missing, unexpected)
    return student


def load_hybrid_model_folder(path, device="cpu"):
    """Reads an exported hybrid model folder (fp32)."""
    import json
    from safetensors.torch import load_file

    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(path, "vocab.json")) as f:
        vocab = json.load(f)
    model = HybridWorldModel(config)
    model.load_export_state_dict({k: v.float() for k, v in load_file(os.path.join(path, "model.safetensors")).items()})
    return model.to(device).eval(), vocab


# ---------------------------------------------------------------------------------------------
# Distillation losses (papers.md §2.4)
# ---------------------------------------------------------------------------------------------

class AttentionTap:
    """Records, for the given layers of a (teacher) WanDiT, the self-attention input and output of the last forward."""

    def __init__(self, dit, layers):
        self.inputs, self.outputs, self.handles = {}, {}, []
        for i in layers:
            self.handles.append(dit.blocks[i].self_attn.register_forward_hook(self._hook(i)))

    def _hook(self, i):
        def hook(module, args, output):
            self.inputs[i] = args[0].detach()
            self.outputs[i] = output.detach()
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def layer_distill_loss(student_dit, tap, rope, layout):
    """Stage 1: Σ_layers MSE(hybrid attention output, teacher softmax attention output) / mean(teacher output²),
    both on the teacher's layer input (so the layers train independently). Returns (loss, per-layer list)."""
    per_layer = []
    for i in student_dit.hybrid_layers:
        attn = student_dit.blocks[i].self_attn
        x = tap.inputs[i]
        attn.layout = layout
        try:
            y = attn(x, x, rope=rope)
        finally:
            attn.layout = None
        ref = tap.outputs[i].float()
        per_layer.append(F.mse_loss(y.float(), ref) / ref.pow(2).mean().clamp_min(1e-8))
    return torch.stack(per_layer).sum(), [float(v.detach()) for v in per_layer]


def flow_distill_loss(v_student, v_teacher):
    """Stage 2: regression of the student's flow prediction to the teacher's (noisy frames selected by the caller)."""
    return F.mse_loss(v_student.float(), v_teacher.float())


# ---------------------------------------------------------------------------------------------
# Reference rollout (what `fastar generate --policy arl2` computes)
# ---------------------------------------------------------------------------------------------

class _RolloutView:
    """Lets wan_torch.reference_rollout drive a hybrid model: its sequences are [committed chunks ; noisy chunk]."""

    def __init__(self, model, chunk_frames):
        self.config, self.text_encoder, self._model, self._cf = model.config, model.text_encoder, model, chunk_frames

    def dit(self, seq, t, context, actions, frame_pos, mask):
        nf = seq.shape[2]
        chunk = frame_pos[0] // self._cf
        noisy = torch.arange(nf, device=seq.device) >= nf - self._cf
        layout = ChunkLayout.from_frames(chunk, noisy, self._cf)
        return self._model.dit(seq, t, context, actions, frame_pos, mask, layout=layout)


@torch.no_grad()
def reference_rollout(model, tokens, actions, num_chunks, chunk_frames=3, **kw):
    """wan_torch.reference_rollout for a hybrid model (non-hybrid layers: dense, or window with window_chunks)."""
    return wan_torch.reference_rollout(_RolloutView(model, chunk_frames), tokens, actions, num_chunks, chunk_frames, **kw)
