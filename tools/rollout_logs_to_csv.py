#!/usr/bin/env python3
"""Rebuilds a `fastar bench rollout` CSV from what runs print, for runs stopped before their report:

  - the progress lines of `fastar bench rollout` (stderr, one every 10 chunks):
      "  window chunk 190: video frame 2289, 387.3 ms, 30.98 frames/s, memory 8.28 GB, policy 3.450 GB"
  - the table of tools/bench_torch_chunk.py (one chunk forward at a cache depth) as a PyTorch dense rollout
    at those depths: a rollout chunk = STEPS + 1 forwards (denoising steps and the clean pass).

Memory in use stands for the peak too (the progress lines carry one figure). Then re-plot with
`fastar bench rollout --from-csv OUT.csv --out PREFIX`.

Usage: tools/rollout_logs_to_csv.py --out long.csv [--torch-chunk-log L] [--steps 4] LOG [LOG ...]
"""
import argparse
import re

PROGRESS = re.compile(r"^\s+(\S+) chunk (\d+): video frame (\d+), ([\d.]+) ms, ([\d.]+) frames/s, "
                      r"memory ([\d.]+) GB, policy ([\d.]+) GB")


def video_frames(latent):
    return 1 + 4 * (latent - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="*", help="stderr logs of fastar bench rollout")
    ap.add_argument("--torch-chunk-log", help="output of tools/bench_torch_chunk.py")
    ap.add_argument("--steps", type=int, default=4, help="denoising steps per chunk (the clean pass is added)")
    ap.add_argument("--chunk-frames", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for path in a.logs:
        with open(path) as f:
            for line in f:
                m = PROGRESS.match(line)
                if not m:
                    continue
                policy, chunk, _, ms, _, mem, pol = m.groups()
                latent = (int(chunk) + 1) * a.chunk_frames
                fps = a.chunk_frames * 4 / (float(ms) / 1000) if int(chunk) > 0 else (video_frames(latent)) / (float(ms) / 1000)
                mem_b, pol_b = int(float(mem) * 1e9), int(float(pol) * 1e9)
                rows.append((policy, int(chunk), latent, video_frames(latent), float(ms), fps, mem_b, mem_b, pol_b))
    if a.torch_chunk_log:
        with open(a.torch_chunk_log) as f:
            for line in f:
                cells = line.split()
                if len(cells) >= 8 and cells[0] in ("cudnn", "flash", "efficient", "math") and cells[4] != "n/a":
                    depth, ms, cache_gib, peak_gib = int(cells[2]), float(cells[4]), float(cells[6]), float(cells[7])
                    latent = depth + a.chunk_frames
                    chunk_ms = (a.steps + 1) * ms
                    rows.append((f"pytorch-dense-{cells[0]} ({a.steps + 1} x chunk forward)", latent // a.chunk_frames - 1,
                                 latent, video_frames(latent), chunk_ms, a.chunk_frames * 4 / (chunk_ms / 1000),
                                 int(peak_gib * 2**30), int(peak_gib * 2**30), int(cache_gib * 2**30)))
    with open(a.out, "w") as f:
        f.write("policy,chunk,latent_frames,video_frames,chunk_ms,video_fps,mem_in_use_bytes,mem_peak_bytes,cache_bytes\n")
        for r in rows:
            f.write(f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4]:.3f},{r[5]:.4f},{r[6]},{r[7]},{r[8]}\n")
    print(f"wrote {len(rows)} rows to {a.out}")


if __name__ == "__main__":
    main()
