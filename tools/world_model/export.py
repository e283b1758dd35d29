#!/usr/bin/env python3
"""Exports a training checkpoint (its EMA weights) as a fastar model folder:

  DIR/config.json        Wan config keys + fastar's (action_dim, latent size, text_encoder)
  DIR/model.safetensors  bf16; original Wan tensor names, action_embedding.*, text_encoder.*
  DIR/vocab.json         the word list (id = index, 0 = pad) of the text encoder

Usage: python3 tools/world_model/export.py runs/world-small/ckpt.pt models/world-small [--raw]
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wan_torch  # noqa: E402


def write_model_folder(model, vocab, out_dir, dtype=torch.bfloat16, extra_config=None):
    from safetensors.torch import save_file

    os.makedirs(out_dir, exist_ok=True)
    config = dict(model.config)
    if extra_config:
        config.update(extra_config)
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.export_state_dict().items()}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt", "producer": "fastar world_model"})
    wan_torch.save_config(config, os.path.join(out_dir, "config.json"))
    with open(os.path.join(out_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f, indent=0)
        f.write("\n")
    size = os.path.getsize(os.path.join(out_dir, "model.safetensors"))
    print(f"export: {out_dir}: {len(tensors)} tensors, {size / 1e6:.1f} MB", flush=True)


def load_model_folder(path, device="cpu"):
    """Reads a fastar model folder back into a WorldModel (fp32) and its vocabulary."""
    from safetensors.torch import load_file

    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(path, "vocab.json")) as f:
        vocab = json.load(f)
    model = wan_torch.WorldModel(config)
    model.load_export_state_dict({k: v.float() for k, v in load_file(os.path.join(path, "model.safetensors")).items()})
    return model.to(device).eval(), vocab


def export(ckpt_path, out_dir, use_ema=True):
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = wan_torch.WorldModel(ckpt["config"])
    state = ckpt["ema"] if use_ema else ckpt["model"]
    model.load_state_dict({k: v.float() for k, v in state.items()})
    write_model_folder(model, ckpt["vocab"], out_dir)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("out_dir")
    p.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    a = p.parse_args()
    export(a.checkpoint, a.out_dir, use_ema=not a.raw)
