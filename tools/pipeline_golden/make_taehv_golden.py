#!/usr/bin/env python3
"""Goldens for fastar's TAEHV / LightTAE decoder (tests/model/test_taehv.cpp; pipeline-spec.md §3, §8 item 5).

Run from the repository root (needs torch, safetensors and numpy; CI does not: the C++ tests read
only the files this writes):

    pip install torch safetensors numpy
    python3 tools/pipeline_golden/make_taehv_golden.py

It builds the decoder of taehv_reference.py (an independent implementation of the spec's layer
table, §3.1) with the published layer structure but narrow widths (n0..n3 = 16, 12, 8, 8 instead of
256, 128, 64, 64), random fp16-exact weights, and writes into tests/model/golden/:

  taehv_tiny.safetensors     the 64 decoder tensors under the published `decoder.<i>.*` names, F16
                             (as the published taew2_1.safetensors), plus one `encoder.0.weight`
                             that a decoder loader must ignore
  taehv_tiny_io.safetensors  latent_normalised [16, 6, 3, 5] (what the DiT outputs, fastar's
                             [C, T, h, w] layout) and, all fp32 [frames, 3, 24, 40]:
                               raw              [24, ...] decode of the latent as is: 4 raw frames
                                                per latent, no trim, no clamp
                               frames           [21, ...] taew2_1's stream output: trim 3, clamp [0, 1]
                               frames_lighttae  [21, ...] LightTAE's: the same weights decoding the
                                                denormalised latent z_n · std + mean (§3.2)

PyTorch runs in fp32 on one thread over the whole clip at once.
"""

import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taehv_reference as ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "model", "golden")

WIDTHS = (16, 12, 8, 8)
LATENT_SHAPE = (16, 6, 3, 5)  # [channels, latent frames, height, width]
SEED = 20261216


def random_params(generator):
    """Conv weights normal(0, 1 / sqrt(fan_in)) (with the MemBlocks' residuals this keeps the
    activations O(1); the ReLU gain of 2 makes them grow ~40× by the output), biases normal(0, 0.1),
    the output bias 0.5 so that most raw values land inside [0, 1] and the final clamp hides
    little. Rounded to fp16-exact values."""
    params = {}
    for name, shape in ref.decoder_shapes(WIDTHS).items():
        noise = torch.randn(shape, generator=generator)
        if name.endswith("bias"):
            value = 0.1 * noise + (0.5 if name == "decoder.22.bias" else 0.0)
        else:
            fan_in = shape[1] * shape[2] * shape[3]
            value = noise / fan_in ** 0.5
        params[name] = value.to(torch.float16).to(torch.float32)
    return params


def main() -> int:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(SEED)
    params = random_params(generator)
    assert len(params) == 64, len(params)

    latent_normalised = torch.randn(LATENT_SHAPE, generator=generator)  # [16, T, h, w]
    time_major = latent_normalised.permute(1, 0, 2, 3).contiguous()     # [T, 16, h, w]
    with torch.no_grad():
        raw = ref.decode_raw(params, time_major)
        frames = ref.decode_video(params, time_major)
        frames_lighttae = ref.decode_video(params, time_major, lighttae=True)
    t, h, w = LATENT_SHAPE[1:]
    assert raw.shape == (4 * t, 3, 8 * h, 8 * w), raw.shape
    assert frames.shape == frames_lighttae.shape == (1 + 4 * (t - 1), 3, 8 * h, 8 * w), frames.shape
    for label, x in (("raw", raw), ("lighttae raw", ref.decode_raw(params, ref.denormalise(time_major)))):
        outside = ((x < 0) | (x > 1)).float().mean().item()
        print(f"{label}: mean {x.mean().item():.3f}, std {x.std().item():.3f}, "
              f"{100 * outside:.1f}% outside [0, 1]")

    os.makedirs(OUT, exist_ok=True)
    meta = {"source": "tools/pipeline_golden/make_taehv_golden.py", "widths": ",".join(map(str, WIDTHS)),
            "seed": str(SEED), "torch": torch.__version__}
    weights = {k: v.to(torch.float16).contiguous() for k, v in params.items()}
    weights["encoder.0.weight"] = torch.zeros(4, 4, 3, 3, dtype=torch.float16)  # ignored by the decoder
    save_file(weights, os.path.join(OUT, "taehv_tiny.safetensors"), metadata=meta)
    save_file({"latent_normalised": latent_normalised.contiguous(), "raw": raw.contiguous(),
               "frames": frames.contiguous(), "frames_lighttae": frames_lighttae.contiguous()},
              os.path.join(OUT, "taehv_tiny_io.safetensors"), metadata=meta)
    for name in ("taehv_tiny", "taehv_tiny_io"):
        path = os.path.join(OUT, name + ".safetensors")
        print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
