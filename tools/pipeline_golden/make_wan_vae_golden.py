#!/usr/bin/env python3
"""Goldens for fastar's Wan2.1 VAE decoder (tests/model/test_wan_vae.cpp; pipeline-spec.md §2.9).

Run from the repository root (needs torch, diffusers, safetensors and numpy; CI does not: the C++
tests read only the files this writes):

    pip install torch diffusers safetensors numpy
    python3 tools/pipeline_golden/make_wan_vae_golden.py

It builds diffusers' AutoencoderKLWan with the real Wan2.1 topology (dim_mult [1,2,4,4],
num_res_blocks 2, temperal_downsample [False,True,True], no attention in the up blocks) but narrow
channels (base_dim 8: decoder widths [32,32,32,16,8]), randomises every decoder parameter (gammas
included), and writes into tests/model/golden/:

  wan_vae_tiny_diffusers.safetensors  decoder.* + post_quant_conv.* under diffusers names, F32
  wan_vae_tiny_original.safetensors   the same values under the original Wan2.1_VAE.pth names
                                      (pipeline-spec.md §2.3 map), stored as BF16
  wan_vae_tiny_io.safetensors         latent_normalised [16, 6, 4, 6] (what the DiT outputs) and
                                      decoded [3, 21, 32, 48]: diffusers' decode of
                                      z = latent_normalised · std + mean, before its clamp

All weights are rounded to bf16-exact values, so both files hold identical fp32 numbers and fastar
must give bit-identical output from either. diffusers runs in fp32 on one thread, decoding the
whole clip latent by latent with its feature cache (the reference semantics of §2.4). The
unclamped output is read with a forward hook on vae.decoder, so a wrong value cannot hide under
the clamp; the script checks that clamping it reproduces vae.decode().

Optional cross-check against Wan's own implementation (pipeline-spec.md §2.9), which also proves
the original-name file is exactly the .pth key set of the decoder: give the path of
wan/modules/vae.py from a Wan2.1 checkout (it needs einops):

    python3 tools/pipeline_golden/make_wan_vae_golden.py --wan-vae-py /path/to/Wan2.1/wan/modules/vae.py
"""

import argparse
import importlib.util
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "model", "golden")

BASE_DIM = 8
LATENT_SHAPE = (16, 6, 4, 6)  # [channels, latent frames, height, width]
SEED = 20261216

# Wan2.1 latent statistics (pipeline-spec.md §2.6), the same as diffusers' config defaults.
MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


def diffusers_to_original(name: str, num_res_blocks: int = 2, blocks: int = 4) -> str:
    """The pipeline-spec.md §2.3 name map, diffusers -> original Wan."""
    if name.startswith("post_quant_conv."):
        return "conv2." + name[len("post_quant_conv."):]
    p = name.split(".")
    assert p[0] == "decoder", name
    if p[1] == "conv_in":
        return "decoder.conv1." + p[2]
    if p[1] == "norm_out":
        return "decoder.head.0." + p[2]
    if p[1] == "conv_out":
        return "decoder.head.2." + p[2]
    res_part = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3", "conv2": "residual.6",
                "conv_shortcut": "shortcut"}
    if p[1] == "mid_block":
        if p[2] == "resnets":
            return f"decoder.middle.{2 * int(p[3])}.{res_part[p[4]]}.{p[5]}"
        assert p[2] == "attentions" and p[3] == "0", name
        return "decoder.middle.1." + ".".join(p[4:])
    assert p[1] == "up_blocks", name
    block = int(p[2])
    # flat index: each block before has num_res_blocks + 1 res blocks and (except the last) a resample
    start = block * (num_res_blocks + 2)
    if p[3] == "resnets":
        return f"decoder.upsamples.{start + int(p[4])}.{res_part[p[5]]}.{p[6]}"
    assert p[3] == "upsamplers" and p[4] == "0" and block < blocks - 1, name
    return f"decoder.upsamples.{start + num_res_blocks + 1}." + ".".join(p[5:])


def randomise_(vae: AutoencoderKLWan, generator: torch.Generator) -> None:
    """Every decoder parameter random and bf16-exact: conv weights normal(0, 1/sqrt(fan_in)) so
    activations stay O(1) through the residual stack, biases normal(0, 0.05), gammas 1 + normal(0, 0.2)."""
    with torch.no_grad():
        for name, param in vae.named_parameters():
            if not (name.startswith("decoder.") or name.startswith("post_quant_conv.")):
                continue
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("gamma"):
                value = 1.0 + 0.2 * noise
            elif name.endswith("bias"):
                value = 0.05 * noise
            else:
                fan_in = param[0].numel()
                value = noise / fan_in ** 0.5
            param.copy_(value.to(torch.bfloat16).to(torch.float32))


def check_against_wan(vae_py: str, original_state: dict, z: torch.Tensor, decoded: torch.Tensor) -> None:
    """Decodes with [WAN] WanVAE_ loaded from the original-name weights (strict on the decoder keys)."""
    spec = importlib.util.spec_from_file_location("wan_vae_reference", vae_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.WanVAE_(dim=BASE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                           temperal_downsample=[False, True, True], dropout=0.0).eval()
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in original_state.items()}, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("encoder.") or k.startswith("conv1.") for k in missing), missing
    with torch.no_grad():
        wan = model.decode(z, scale=[0.0, 1.0])  # z / 1 + 0: z is already denormalised
    diff = (wan - decoded).abs().max().item() / decoded.abs().max().item()
    print(f"[WAN] WanVAE_.decode vs diffusers: max relative difference {diff:.2e}")
    assert diff < 1e-5, diff


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wan-vae-py", help="Wan2.1's wan/modules/vae.py, to cross-check diffusers against it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    vae = AutoencoderKLWan(base_dim=BASE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                           temperal_downsample=[False, True, True], dropout=0.0).eval()
    randomise_(vae, generator)

    decoder_state = {k: v.detach().clone().contiguous() for k, v in vae.state_dict().items()
                     if k.startswith("decoder.") or k.startswith("post_quant_conv.")}
    original_state = {diffusers_to_original(k): v.to(torch.bfloat16) for k, v in decoder_state.items()}
    assert len(decoder_state) == len(original_state) == 108, len(decoder_state)

    latent_normalised = torch.randn((1,) + LATENT_SHAPE, generator=generator)
    mean = torch.tensor(MEAN).view(1, 16, 1, 1, 1)
    std = torch.tensor(STD).view(1, 16, 1, 1, 1)
    z = latent_normalised * std + mean

    pieces = []
    hook = vae.decoder.register_forward_hook(lambda module, args, output: pieces.append(output.detach().clone()))
    with torch.no_grad():
        clamped = vae.decode(z).sample
    hook.remove()
    decoded = torch.cat(pieces, dim=2)  # one piece per latent frame
    t = LATENT_SHAPE[1]
    assert decoded.shape == (1, 3, 1 + 4 * (t - 1), 8 * LATENT_SHAPE[2], 8 * LATENT_SHAPE[3]), decoded.shape
    assert torch.equal(decoded.clamp(-1, 1), clamped)
    clipped = (decoded.abs() > 1).float().mean().item()
    print(f"decoded {tuple(decoded.shape)}: std {decoded.std().item():.3f}, max |x| {decoded.abs().max().item():.3f}, "
          f"{100 * clipped:.1f}% outside [-1, 1]")

    if args.wan_vae_py:
        check_against_wan(args.wan_vae_py, original_state, z, decoded)

    os.makedirs(OUT, exist_ok=True)
    meta = {"source": "tools/pipeline_golden/make_wan_vae_golden.py", "base_dim": str(BASE_DIM), "seed": str(SEED),
            "torch": torch.__version__, "diffusers": __import__("diffusers").__version__}
    save_file(decoder_state, os.path.join(OUT, "wan_vae_tiny_diffusers.safetensors"), metadata=meta)
    save_file(original_state, os.path.join(OUT, "wan_vae_tiny_original.safetensors"), metadata=meta)
    save_file({"latent_normalised": latent_normalised[0].contiguous(), "decoded": decoded[0].contiguous()},
              os.path.join(OUT, "wan_vae_tiny_io.safetensors"), metadata=meta)
    for name in ("wan_vae_tiny_diffusers", "wan_vae_tiny_original", "wan_vae_tiny_io"):
        path = os.path.join(OUT, name + ".safetensors")
        print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
