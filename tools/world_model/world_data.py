"""The procedural-world dataset of `fastar world dataset` (src/fastar/world/), read with safetensors.

File tensors: frames uint8 [N, F, 64, 64, 3] RGB, actions uint8 [N, F] (0 none, 1 up, 2 down, 3 left,
4 right), tokens int32 [N, text_len] word ids (0 = pad); metadata "vocab" = JSON list of words (id = index).
"""

import json
import os
import subprocess
import time

import numpy as np
import torch

NUM_ACTIONS = 5
ACTION_LETTERS = ".UDLR"  # fastar generate --actions: one letter per frame


def generate_dataset(fastar, clips, frames, seed, out):
    """Runs `fastar world dataset`; returns the seconds it took."""
    if not os.path.exists(fastar):
        raise SystemExit(f"{fastar}: no fastar binary; build it first (cmake -S . -B build-dev -G Ninja "
                         f"-DFASTAR_TESTS=OFF -DFASTAR_CUDA=OFF && ninja -C build-dev fastar) or pass --fastar")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    cmd = [fastar, "world", "dataset", "--clips", str(clips), "--frames", str(frames), "--seed", str(seed), "--out", out]
    print("dataset:", " ".join(cmd), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - start


def load_dataset(path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(path, framework="np") as f:
        meta = f.metadata() or {}
    if "vocab" not in meta:
        raise SystemExit(f"{path}: no 'vocab' metadata; is this a `fastar world dataset` file?")
    vocab = json.loads(meta["vocab"])
    t = load_file(path)
    for name in ("frames", "actions", "tokens"):
        if name not in t:
            raise SystemExit(f"{path}: missing tensor '{name}'")
    frames, actions, tokens = t["frames"], t["actions"], t["tokens"]
    n, f = frames.shape[:2]
    if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
        raise SystemExit(f"{path}: frames must be uint8 [N, F, H, W, 3], got {frames.dtype} {frames.shape}")
    if actions.shape != (n, f) or tokens.shape[0] != n:
        raise SystemExit(f"{path}: actions {actions.shape} / tokens {tokens.shape} do not match frames {frames.shape}")
    if int(tokens.max(initial=0)) >= len(vocab) or int(actions.max(initial=0)) >= NUM_ACTIONS:
        raise SystemExit(f"{path}: token or action ids out of range")
    return dict(frames=torch.from_numpy(frames), actions=torch.from_numpy(actions.astype(np.int64)),
                tokens=torch.from_numpy(tokens.astype(np.int64)), vocab=vocab)


def frames_to_model(frames_u8):
    """uint8 [B, F, H, W, 3] → float [B, 3, F, H, W] in [−1, 1]."""
    return frames_u8.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def model_to_frames(x):
    """float [B, 3, F, H, W] (or [3, F, H, W]) → uint8 [..., F, H, W, 3], as fastar's latent_frame_to_rgb."""
    y = torch.clamp((x + 1.0) * 127.5, 0, 255).round().to(torch.uint8)
    return y.movedim(-4, -1)


def one_hot_actions(actions):
    return torch.nn.functional.one_hot(actions, NUM_ACTIONS).float()


def split_words(text):
    """fastar's word split (src/fastar/model/text_encoder.cpp): lowercase, whitespace, "." a word of its own."""
    return text.lower().replace(".", " . ").split()


def tokenize(text, vocab):
    """Word ids of a prompt (no padding), as fastar's TextEncoder::tokenize."""
    index = {w: i for i, w in enumerate(vocab)}
    ids = []
    for word in split_words(text):
        if word not in index:
            raise ValueError(f"unknown word '{word}'")
        ids.append(index[word])
    return ids


def detokenize(ids, vocab):
    return " ".join(vocab[i] for i in ids if i != 0)
