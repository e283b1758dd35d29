#!/usr/bin/env python3
"""Runs one prompt, seed and action sequence under several memory policies and compares them with
the dense rollout (the papers' protocol, docs/design.md "Measuring what matters"): PSNR of the frames,
KV memory, speed, and the sparse policies' density.

    python3 examples/compare_policies.py --frames 12 --policies dense window tempcache tempcache+annsa
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import fastar


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def run(model: fastar.Model, policy: str, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    with model.stream(prompt=args.prompt, policy=policy, seed=args.seed, frames=args.frames) as s:
        s.set_actions(args.actions)
        chunks = list(s)
        stats = s.stats()
    return {
        "frames": np.concatenate([c.frames for c in chunks]),
        "seconds": time.perf_counter() - start,
        "kv_mib": stats["bytes"] / 2**20,
        "density": stats["density"] if stats["density"] is not None else stats["kv_density"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped world model)")
    parser.add_argument("--prompt", default="a red circle bounces . a blue square drifts left .")
    parser.add_argument("--actions", default="RRRRRRUUUUUULLLLLL")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policies", nargs="+", default=["window", "tempcache", "tempcache+annsa", "dense+annsa+annca"])
    args = parser.parse_args()

    model = fastar.load(args.model)
    if model.action_dim != 5:
        args.actions = ""
    if not model.has_text_encoder:
        args.prompt = None
    reference = run(model, "dense", args)
    print(f"{'policy':<22} {'PSNR vs dense':>14} {'KV MiB':>8} {'frames/s':>9} {'density':>8}")
    rows = [("dense", reference)] + [(p, run(model, p, args)) for p in args.policies if p != "dense"]
    for policy, r in rows:
        fps = len(r["frames"]) / r["seconds"]
        density = "-" if r["density"] is None else f"{r['density']:.3f}"
        print(f"{policy:<22} {psnr(r['frames'], reference['frames']):>14.2f} {r['kv_mib']:>8.1f} {fps:>9.2f} {density:>8}")


if __name__ == "__main__":
    main()
