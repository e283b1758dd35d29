"""fastar.eval: several memory policies on one prompt, seed and action sequence, each compared with a
reference policy's frames (dense by default) — the papers' protocol (docs/design.md, "Measuring what
matters"; FAST-AR and ARL² both report fidelity to the dense rollout beside memory and speed). The CLI's
`fastar eval` does the same over many clips of the procedural world with SSIM and a contact sheet; this
is the in-process version for notebooks and scripts."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from fastar._model import Model


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 frame stacks of one shape (inf when equal)."""
    if a.shape != b.shape:
        raise ValueError(f"fastar.psnr: shapes differ, {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _rollout(model: "Model", policy: Optional[str], prompt: Optional[str], actions: str, frames: int, seed: int,
             device: str) -> Dict:
    start = time.perf_counter()
    with model.stream(prompt=prompt, policy=policy, seed=seed, frames=frames, device=device) as s:
        if actions:
            s.set_actions(actions)
        chunks = list(s)
        stats = s.stats()
    seconds = time.perf_counter() - start
    video = np.concatenate([np.asarray(c.frames) if device == "cpu" else _to_host(c.frames) for c in chunks])
    density = stats.get("density")
    return {"frames": video, "seconds": seconds, "kv_bytes": stats["bytes"],
            "density": density if density is not None else stats.get("kv_density")}


def _to_host(frames) -> np.ndarray:
    import torch  # a GPU stream's frames are DLPack on the device

    return torch.from_dlpack(frames).cpu().numpy()


def evaluate(model: "Model", policies: Sequence[str], prompt: Optional[str] = None, actions: str = "", frames: int = 12,
             seed: int = 0, reference: str = "dense", device: str = "cpu") -> List[Dict]:
    """Rolls out `reference`, then each of `policies`, with the same prompt, actions and seed.

    Returns one dict per policy (the reference first): policy, psnr (dB against the reference's frames;
    inf for the reference itself), kv_bytes (the memory's bytes at the end), frames_per_second,
    density (the sparse policies' attention density, else the KV density), frames (uint8 [F, H, W, 3]).
    frames: latent frames, a multiple of the chunk length (3).
    """
    if frames <= 0:
        raise ValueError(f"fastar.eval: frames must be a positive int, got {frames!r}")
    if isinstance(policies, str):
        raise ValueError("fastar.eval: policies is a list of policy specs, e.g. ['window', 'tempcache+annsa']")
    base = _rollout(model, reference, prompt, actions, frames, seed, device)
    rows = []
    for policy in [reference] + [p for p in policies if p != reference]:
        r = base if policy == reference else _rollout(model, policy, prompt, actions, frames, seed, device)
        rows.append({"policy": policy, "psnr": psnr(r["frames"], base["frames"]), "kv_bytes": r["kv_bytes"],
                     "frames_per_second": len(r["frames"]) / r["seconds"], "density": r["density"],
                     "frames": r["frames"]})
    return rows
