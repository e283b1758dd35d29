#!/usr/bin/env python3
"""Streams the shipped world model from Python and writes what it saw.

    python3 examples/stream_world.py --frames 24 --actions RRRRRRUUUUUU --out world.gif

Writes the frames as a GIF or MP4 (imageio, else Pillow for a GIF; without either a folder of PNGs),
and, when matplotlib is installed, a plot of frames per second and KV memory per chunk next to it
(<out>.stats.png). The frames come out of the engine as numpy arrays without a copy (docs/python.md).
"""

from __future__ import annotations

import argparse
import struct
import zlib
from pathlib import Path

import numpy as np

import fastar


def write_png(path: Path, rgb: np.ndarray) -> None:
    """A plain 8-bit RGB PNG (no filter) with zlib alone: the fallback without imageio or Pillow."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def write_video(out: Path, frames: np.ndarray, fps: int) -> Path:
    """GIF/MP4 through imageio, GIF through Pillow, else PNGs in a folder named after `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio.v2 as imageio

        if out.suffix.lower() == ".mp4":
            imageio.mimwrite(out, list(frames), fps=fps)
        else:
            imageio.mimwrite(out, list(frames), duration=1000 / fps, loop=0)
        return out
    except ImportError:
        pass
    if out.suffix.lower() == ".gif":
        try:
            from PIL import Image

            images = [Image.fromarray(f) for f in frames]
            images[0].save(out, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
            return out
        except ImportError:
            pass
    folder = out.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        write_png(folder / f"frame_{i:06d}.png", f)
    return folder


def plot(path: Path, chunks: list[dict]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    x = [c["frame_end"] for c in chunks]
    fig, left = plt.subplots(figsize=(7, 3.5))
    left.plot(x, [c["fps"] for c in chunks], "o-", color="tab:blue")
    left.set_xlabel("latent frames generated")
    left.set_ylabel("frames / s", color="tab:blue")
    right = left.twinx()
    right.plot(x, [c["kv_mib"] for c in chunks], "s--", color="tab:red")
    right.set_ylabel("KV memory (MiB)", color="tab:red")
    left.set_title("fastar: speed and memory per chunk")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped world model)")
    parser.add_argument("--prompt", default="a red circle bounces . a blue square drifts left .")
    parser.add_argument("--actions", default="RRRRRRUUUUUULLLLLLDDDDDD", help="one per frame: . U D L R")
    parser.add_argument("--policy", default="tempcache+annsa")
    parser.add_argument("--frames", type=int, default=24, help="latent frames (rounded up to whole chunks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=4, help="pixel upscaling of the written frames")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("stream_world.gif"))
    args = parser.parse_args()

    model = fastar.load(args.model)
    frames, chunks = [], []
    with model.stream(prompt=args.prompt, policy=args.policy, seed=args.seed, frames=args.frames) as s:
        print(s.describe())
        s.set_actions(args.actions)
        for chunk in s:
            frames.append(chunk.frames.repeat(args.scale, axis=1).repeat(args.scale, axis=2))
            fps = len(chunk) / (chunk.ms / 1000)
            chunks.append({"frame_end": chunk.frame_start + len(chunk), "fps": fps, "kv_mib": chunk.stats["bytes"] / 2**20})
            print(f"chunk {chunk.index}: frames {chunk.frame_start}-{chunk.frame_start + len(chunk) - 1}, "
                  f"{fps:.2f} frames/s, KV {chunks[-1]['kv_mib']:.1f} MiB")
    written = write_video(args.out, np.concatenate(frames), args.fps)
    print(f"wrote {written}")
    stats_png = args.out.with_suffix(".stats.png")
    if plot(stats_png, chunks):
        print(f"wrote {stats_png}")
    else:
        print("matplotlib is not installed: no plot")


if __name__ == "__main__":
    main()
