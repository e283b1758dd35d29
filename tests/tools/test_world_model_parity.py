#!/usr/bin/env python3
"""What we train is what fastar runs: the PyTorch world model (tools/world_model/wan_torch.py) against
`fastar generate` on a tiny random model.

A tiny config with every part of the world model (text encoder, actions, pixel-space patches) gets
random bf16-exact weights, is exported as a fastar model folder (export.py), and is rolled out twice
from the same prompt text, action string and seed:
  - by `fastar generate --prompt ... --actions ... --out DIR` (C++: text encoder, DiT, KV memory, noise),
  - by wan_torch.reference_rollout (PyTorch: masked full-sequence forwards, fastar's Philox noise ported),
for the dense policy and the window policy (no sink). Both write uint8 frames; they must agree to
within rounding (fp32 on both sides, different summation orders).

Usage: test_world_model_parity.py FASTAR_BINARY. Exits 77 (ctest: skipped) when torch is missing.
"""

import os
import struct
import subprocess
import sys
import tempfile
import zlib

try:
    import numpy as np
    import torch
except ImportError:
    print("skipped: needs numpy and torch (pip install torch numpy safetensors)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "world_model"))
import export  # noqa: E402
import wan_torch  # noqa: E402
import world_data  # noqa: E402

# uint8 frames of two fp32 implementations: a value near a rounding boundary may land on either side.
MAX_LEVEL_DIFF = 2        # max |fastar − torch| in 0..255 levels
MAX_MEAN_LEVEL_DIFF = 0.05  # mean |fastar − torch|
# A bug (wrong RoPE position, action or mask) moves frames by far more: the rollouts of two seeds
# differ by ~this much, checked so the comparison cannot pass trivially.
MIN_SEED_MEAN_DIFF = 5.0

VOCAB = ["<pad>", "<unk>", ".", "a", "red", "blue", "circle", "square", "bounces", "stays"]
PROMPT = "a red circle bounces . a blue square stays."
ACTIONS = "RRUUD.LLR"


def read_png(path):
    """Minimal PNG decoder (8-bit RGB, non-interlaced; every filter type)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color == 2 and interlace == 0, f"{path}: not 8-bit RGB"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = w * 3
    out = np.zeros((h, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        for x in range(stride):
            a = cur[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, 3).astype(np.uint8)


def random_world_model(seed=0):
    config = wan_torch.world_small_config(
        dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_len=16, text_dim=32, latent_height=16, latent_width=12,
        text_encoder=dict(vocab_size=len(VOCAB), layers=1, heads=2, ffn_dim=48))
    model = wan_torch.random_init_(wan_torch.WorldModel(config), seed)
    return model.eval()


def fastar_rollout(fastar, model_dir, out_dir, frames, policy_args, seed):
    cmd = [fastar, "generate", "--model", model_dir, "--prompt", PROMPT, "--actions", ACTIONS, "--frames", str(frames),
           "--seed", str(seed), "--out", out_dir, "--threads", "2"] + policy_args
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return np.stack([read_png(os.path.join(out_dir, f"frame_{i:06d}.png")) for i in range(frames)])


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: test_world_model_parity.py FASTAR_BINARY")
    fastar = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = random_world_model()
    frames, chunk = 9, 3
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        export.write_model_folder(model, VOCAB, model_dir)
        ref_model, vocab = export.load_model_folder(model_dir)
        tokens = world_data.tokenize(PROMPT, vocab)
        tokens = torch.tensor(tokens + [0] * (16 - len(tokens)))
        acts = world_data.one_hot_actions(torch.tensor([world_data.ACTION_LETTERS.index(c) for c in ACTIONS]))
        failures, dense = [], None
        for label, policy_args, window_chunks in (("dense", ["--policy", "dense"], 0),
                                                  ("window 3, sink 0", ["--policy", "window", "--window", "3",
                                                                        "--sink", "0"], 1)):
            ours = fastar_rollout(fastar, model_dir, os.path.join(tmp, "out_" + str(window_chunks)), frames,
                                  policy_args, seed=7)
            x0 = wan_torch.reference_rollout(ref_model, tokens, acts, frames // chunk, chunk, seed=7,
                                             window_chunks=window_chunks)
            ref = world_data.model_to_frames(x0).numpy()
            dense = ours if dense is None else dense
            diff = np.abs(ours.astype(np.int32) - ref.astype(np.int32))
            print(f"{label:18s} max |fastar − torch| {diff.max()} levels, mean {diff.mean():.4f} "
                  f"(limits {MAX_LEVEL_DIFF}, {MAX_MEAN_LEVEL_DIFF})")
            if diff.max() > MAX_LEVEL_DIFF or diff.mean() > MAX_MEAN_LEVEL_DIFF:
                failures.append(label)
        other = fastar_rollout(fastar, model_dir, os.path.join(tmp, "out_seed"), frames, ["--policy", "dense"], seed=8)
        seed_diff = np.abs(other.astype(np.int32) - dense.astype(np.int32)).mean()
        print(f"sensitivity: seeds 7 vs 8 differ by {seed_diff:.2f} levels on average (must be > {MIN_SEED_MEAN_DIFF})")
        if seed_diff <= MIN_SEED_MEAN_DIFF:
            failures.append("insensitive comparison")
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    print("ok: the PyTorch world model and fastar generate agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
