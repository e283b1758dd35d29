#!/usr/bin/env python3
"""Runs one prompt, seed and action sequence under several memory policies and compares them with
the dense rollout (the papers' protocol, docs/design.md "Measuring what matters"): PSNR of the frames,
KV memory, speed, and the sparse policies' density.

    python3 examples/compare_policies.py --frames 12 --policies dense window tempcache tempcache+annsa
"""

from __future__ import annotations

import argparse

import fastar


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
    rows = fastar.eval(model, args.policies, prompt=args.prompt, actions=args.actions, frames=args.frames, seed=args.seed)
    print(f"{'policy':<22} {'PSNR vs dense':>14} {'KV MiB':>8} {'frames/s':>9} {'density':>8}")
    for r in rows:
        density = "-" if r["density"] is None else f"{r['density']:.3f}"
        print(f"{r['policy']:<22} {r['psnr']:>14.2f} {r['kv_bytes'] / 2**20:>8.1f} {r['frames_per_second']:>9.2f} {density:>8}")


if __name__ == "__main__":
    main()
