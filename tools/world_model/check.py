#!/usr/bin/env python3
"""Rolls out an exported world model with the PyTorch reference of fastar's rollout and measures it.

For the first --clips clips of a dataset (use one made with another seed than training, e.g. by
`fastar world dataset --seed 999`), each (schedule, policy) setting rolls out --chunks chunks from the
clip's prompt tokens and actions (fastar's noise, seed 0) and is compared with the ground-truth world:
PSNR over all frames, and per-chunk PSNR of the last chunk (drift). Writes a table (stdout and
OUT/check.tsv) and a contact sheet OUT/contact_sheet.png (rows: ground truth, then one per setting).

  python3 tools/world_model/check.py models/world-small --dataset runs/world-small/check.safetensors
"""

import argparse
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402
import wan_torch  # noqa: E402
import world_data  # noqa: E402


def write_png(path, rgb):
    """rgb: uint8 [H, W, 3]."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def psnr(a_u8, b_u8):
    mse = np.mean((a_u8.astype(np.float64) - b_u8.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def parse_settings(text):
    """'1000,750,500,250@5/dense;1000,750,500,250@1/window3' → [(steps, shift, window_chunks, label)]."""
    out = []
    for item in text.split(";"):
        sched, policy = item.split("/")
        steps, shift = sched.split("@")
        w = 0 if policy == "dense" else int(policy.replace("window", ""))
        out.append(([float(s) for s in steps.split(",")], float(shift), w, item))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--dataset", required=True)
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--chunks", type=int, default=8)
    p.add_argument("--settings", default="1000,750,500,250@5/dense;1000,750,500,250@5/window3;"
                                         "1000,750,500,250@1/dense;1000,667,333@1/dense;1000,800,600,400,200@2/dense")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for check.tsv and contact_sheet.png (default: the model folder)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    out_dir = a.out or a.model
    os.makedirs(out_dir, exist_ok=True)
    model, vocab = export.load_model_folder(a.model, a.device)
    data = world_data.load_dataset(a.dataset)
    assert data["vocab"] == vocab, "the dataset's vocabulary differs from the model's"
    cf = 3
    n_frames = min(a.chunks * cf, data["frames"].shape[1] // cf * cf)
    chunks = n_frames // cf
    settings = parse_settings(a.settings)
    rows = {"ground truth": []}
    results = []
    for steps, shift, w, label in settings:
        scores, last_scores, start = [], [], time.time()
        rows[label] = []
        for clip in range(min(a.clips, data["frames"].shape[0])):
            gt = data["frames"][clip, :n_frames].numpy()
            act = world_data.one_hot_actions(data["actions"][clip, :n_frames])
            x0 = wan_torch.reference_rollout(model, data["tokens"][clip], act, chunks, cf, steps, shift, 0.0, a.seed,
                                             w, device=a.device)
            frames = world_data.model_to_frames(x0.cpu()).numpy()  # [F, H, W, 3]
            scores.append(psnr(frames, gt))
            last_scores.append(psnr(frames[-cf:], gt[-cf:]))
            if clip == 0:
                rows[label] = frames
                rows["ground truth"] = gt
        res = (label, float(np.mean(scores)), float(np.mean(last_scores)), time.time() - start)
        results.append(res)
        print(f"{label:45s}  PSNR {res[1]:6.2f} dB  last chunk {res[2]:6.2f} dB  ({res[3]:.1f} s)", flush=True)
    prompt = world_data.detokenize(data["tokens"][0].tolist(), vocab)
    print(f"contact sheet clip 0: '{prompt}', actions "
          f"'{''.join(world_data.ACTION_LETTERS[i] for i in data['actions'][0, :n_frames].tolist())}'")
    with open(os.path.join(out_dir, "check.tsv"), "w") as f:
        f.write("setting\tpsnr_db\tlast_chunk_psnr_db\tseconds\n")
        for r in results:
            f.write(f"{r[0]}\t{r[1]:.3f}\t{r[2]:.3f}\t{r[3]:.2f}\n")
    sheet = np.concatenate([np.concatenate(list(fr), axis=1) for fr in rows.values()], axis=0)
    write_png(os.path.join(out_dir, "contact_sheet.png"), sheet)
    print(f"wrote {os.path.join(out_dir, 'check.tsv')} and contact_sheet.png (rows: {', '.join(rows)})")


if __name__ == "__main__":
    main()
