#!/usr/bin/env python3
"""The ARL² hybrid world model of tools/world_model/hybrid.py against `fastar generate --policy arl2`.

A tiny world model with 3 of its 4 layers hybrid (chunk-local softmax + gated delta-rule state) gets random
bf16-exact weights, is exported in fastar's tensor names (blocks.N.self_attn.phi_q/k/v, a/b/gate_proj, A_log,
dt_bias; config "hybrid_layers"), and is rolled out from the same prompt, actions and seed:
  - by `fastar generate --policy arl2` (C++: Arl2HybridMemory, chunked WY update of the state on commit passes),
  - by hybrid.reference_rollout (PyTorch: masked full-sequence forwards in which every chunk reads the state
    after the clean chunks before it, the state built by hybrid.delta_rule_chunked),
with the non-hybrid layer dense and with a window (--window 3 --sink 0). fp32 on both sides; uint8 frames must
agree to within rounding. Two sensitivity checks keep the comparison honest: the chunked update against the
token-by-token specification in float64, and the same rollout with the memory branch switched off (φ_v = 0,
so S = 0) must differ clearly from the hybrid one.

Usage: test_world_model_arl2_parity.py FASTAR_BINARY. Exits 77 (ctest: skipped) when torch is missing.
"""

import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError:
    print("skipped: needs numpy and torch (pip install torch numpy safetensors)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "world_model"))
import export  # noqa: E402
import hybrid  # noqa: E402
import wan_torch  # noqa: E402
import world_data  # noqa: E402
from test_world_model_parity import ACTIONS, PROMPT, VOCAB, read_png  # noqa: E402

# uint8 frames of two fp32 implementations (different summation orders, WY vs PyTorch's triangular solve).
MAX_LEVEL_DIFF = 2          # max |fastar − torch| in 0..255 levels
MAX_MEAN_LEVEL_DIFF = 0.05  # mean |fastar − torch|
# The memory branch must matter: switching it off moves frames by at least this much on average.
MIN_MEMORY_MEAN_DIFF = 1.0  # 20× the mean parity limit; measured 2.5
# Chunked WY update vs the token loop, float64 (an exact identity up to rounding).
MAX_WY_DIFF_F64 = 1e-10
FRAMES, CHUNK = 12, 3
HYBRID_LAYERS = [0, 1, 2]


def random_hybrid_model(seed=0):
    config = wan_torch.world_small_config(
        dim=64, ffn_dim=96, num_heads=2, num_layers=4, text_len=16, text_dim=32, latent_height=16, latent_width=12,
        text_encoder=dict(vocab_size=len(VOCAB), layers=1, heads=2, ffn_dim=48), hybrid_layers=HYBRID_LAYERS)
    model = wan_torch.random_init_(hybrid.HybridWorldModel(config), seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for i in HYBRID_LAYERS:
            attn = model.dit.blocks[i].self_attn
            # a slow decay (α ≈ 0.9..0.99 per token) so the state carries several chunks; β and gate around 1 and ½
            attn.A_log.copy_(torch.log(torch.empty(2).uniform_(0.02, 0.1, generator=gen)).bfloat16().float())
            attn.dt_bias.copy_(torch.empty(2).uniform_(-0.5, 0.5, generator=gen).bfloat16().float())
            # φ = identity + noise, so the memory keys differ from the softmax keys but stay related
            eye = torch.eye(32).repeat(2, 1)[:, :, None]
            attn.phi_q.weight.copy_((eye + 0.3 * attn.phi_q.weight).bfloat16().float())
            attn.phi_k.weight.copy_((eye + 0.3 * attn.phi_k.weight).bfloat16().float())
            attn.phi_v.weight.copy_((4.0 * (eye + 0.3 * attn.phi_v.weight)).bfloat16().float())  # a loud memory
    return model.eval()


def fastar_rollout(fastar, model_dir, out_dir, frames, policy_args, seed, actions):
    cmd = [fastar, "generate", "--model", model_dir, "--prompt", PROMPT, "--actions", actions, "--frames", str(frames),
           "--seed", str(seed), "--out", out_dir, "--threads", "2"] + policy_args
    run = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        raise SystemExit(f"fastar generate failed ({' '.join(cmd)}):\n{run.stderr}")
    return np.stack([read_png(os.path.join(out_dir, f"frame_{i:06d}.png")) for i in range(frames)])


def check_wy_identity():
    gen = torch.Generator().manual_seed(3)
    B, T, H, D = 2, 150, 3, 8
    k = hybrid.l2_normalize(torch.randn(B, T, H, D, generator=gen, dtype=torch.float64))
    v = torch.randn(B, T, H, D, generator=gen, dtype=torch.float64)
    g = -0.3 * torch.rand(B, T, H, generator=gen, dtype=torch.float64)
    b = 2 * torch.rand(B, T, H, generator=gen, dtype=torch.float64)
    s0 = torch.randn(B, H, D, D, generator=gen, dtype=torch.float64)
    diff = (hybrid.delta_rule_token_loop(s0, k, v, g, b) - hybrid.delta_rule_chunked(s0, k, v, g, b)).abs().max().item()
    print(f"WY chunked vs token loop (float64): max diff {diff:.2e} (limit {MAX_WY_DIFF_F64:.0e})")
    return diff <= MAX_WY_DIFF_F64


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: test_world_model_arl2_parity.py FASTAR_BINARY")
    fastar = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    failures = [] if check_wy_identity() else ["WY identity"]
    model = random_hybrid_model()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        export.write_model_folder(model, VOCAB, model_dir)
        ref_model, vocab = hybrid.load_hybrid_model_folder(model_dir)
        tokens = world_data.tokenize(PROMPT, vocab)
        tokens = torch.tensor(tokens + [0] * (16 - len(tokens)))
        actions = (ACTIONS * 2)[:FRAMES]
        acts = world_data.one_hot_actions(torch.tensor([world_data.ACTION_LETTERS.index(c) for c in actions]))
        hybrid_ref = None
        for label, policy_args, window_chunks in (("arl2 (dense)", ["--policy", "arl2"], 0),
                                                  ("arl2 + window 3", ["--policy", "arl2", "--window", "3", "--sink", "0"], 1)):
            ours = fastar_rollout(fastar, model_dir, os.path.join(tmp, f"out_{window_chunks}"), FRAMES, policy_args, seed=7,
                                  actions=actions)
            x0 = hybrid.reference_rollout(ref_model, tokens, acts, FRAMES // CHUNK, CHUNK, seed=7, window_chunks=window_chunks)
            ref = world_data.model_to_frames(x0).numpy()
            hybrid_ref = ref if hybrid_ref is None else hybrid_ref
            diff = np.abs(ours.astype(np.int32) - ref.astype(np.int32))
            print(f"{label:16s} max |fastar − torch| {diff.max()} levels, mean {diff.mean():.4f} "
                  f"(limits {MAX_LEVEL_DIFF}, {MAX_MEAN_LEVEL_DIFF})")
            if diff.max() > MAX_LEVEL_DIFF or diff.mean() > MAX_MEAN_LEVEL_DIFF:
                failures.append(label)
        with torch.no_grad():
            for i in HYBRID_LAYERS:
                ref_model.dit.blocks[i].self_attn.phi_v.weight.zero_()
        x0 = hybrid.reference_rollout(ref_model, tokens, acts, FRAMES // CHUNK, CHUNK, seed=7)
        off = world_data.model_to_frames(x0).numpy()
        # chunk 0 reads the empty state either way: compare the later chunks
        mem_diff = np.abs(off[CHUNK:].astype(np.int32) - hybrid_ref[CHUNK:].astype(np.int32)).mean()
        print(f"sensitivity: memory branch off moves frames of chunks >= 1 by {mem_diff:.2f} levels on average "
              f"(must be > {MIN_MEMORY_MEAN_DIFF})")
        if mem_diff <= MIN_MEMORY_MEAN_DIFF:
            failures.append("memory branch does not matter")
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    print("ok: the PyTorch hybrid world model and fastar generate --policy arl2 agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
