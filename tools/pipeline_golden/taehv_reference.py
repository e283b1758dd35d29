"""An independent PyTorch reference of the TAEHV / LightTAE decoder, written from pipeline-spec.md §3.

Used by make_taehv_golden.py to produce the goldens of tests/model/test_taehv.cpp. It is written
from the spec's layer table and definitions (§3.1), not from [TAE]'s code, and deliberately in a
different form from fastar's C++ decoder: it works on the whole clip at once, time-major
([T, C, H, W]), and gives each MemBlock its "past" by shifting the whole sequence one step with a
zero frame in front, where the C++ streams chunk by chunk and carries one frame per MemBlock.

Layout of `decoder.<i>` (§3.1), with widths (n0, n1, n2, n3) = (256, 128, 64, 64) for the published
files and time strides (1, 2, 2):

    0  soft clamp tanh(x / 3) · 3
    1  Conv2d 3×3 16 → n0 (+bias), 2 ReLU
    3, 4, 5     MemBlock(n0)   6  Upsample ×2   7  TGrow(n0, 1)  8  Conv2d 3×3 n0 → n1 (no bias)
    9, 10, 11   MemBlock(n1)  12  Upsample ×2  13  TGrow(n1, 2) 14  Conv2d 3×3 n1 → n2 (no bias)
    15, 16, 17  MemBlock(n2)  18  Upsample ×2  19  TGrow(n2, 2) 20  Conv2d 3×3 n2 → n3 (no bias)
    21 ReLU, 22 Conv2d 3×3 n3 → 3 (+bias)

MemBlock(x, past) = ReLU(conv3(ReLU(conv2(ReLU(conv1(cat[x, past]))))) + x), past = the block's input
one time step earlier (zeros at t = 0). TGrow(s): 1×1 conv C → s·C, channel group k of step τ
becomes frame s·τ + k. decode_video (§3.2): drop the first 3 raw frames, clamp to [0, 1].
"""

import torch
import torch.nn.functional as F

LATENT_CHANNELS = 16
OUT_CHANNELS = 3
TIME_STRIDES = (1, 2, 2)
PUBLISHED_WIDTHS = (256, 128, 64, 64)
FRAMES_TO_TRIM = 3  # 2^(number of stride-2 TGrows) − 1 (§3.2)

# Wan2.1 latent statistics (pipeline-spec.md §2.6): LightTAE takes z = z_n · std + mean.
WAN_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
            0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
WAN_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
           3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


def stage_indices(stage):
    """decoder.<i> indices of stage 0, 1, 2: (three MemBlocks, upsample, TGrow, conv)."""
    base = 3 + 6 * stage
    return (base, base + 1, base + 2), base + 3, base + 4, base + 5


def decoder_shapes(widths=PUBLISHED_WIDTHS):
    """{checkpoint name: shape} of every decoder tensor, in layer order (64 for any widths)."""
    n = list(widths)
    shapes = {"decoder.1.weight": (n[0], LATENT_CHANNELS, 3, 3), "decoder.1.bias": (n[0],)}
    for s in range(3):
        c, c_next = n[s], n[s + 1]
        blocks, _, tgrow, conv = stage_indices(s)
        for b in blocks:
            shapes[f"decoder.{b}.conv.0.weight"] = (c, 2 * c, 3, 3)
            shapes[f"decoder.{b}.conv.0.bias"] = (c,)
            shapes[f"decoder.{b}.conv.2.weight"] = (c, c, 3, 3)
            shapes[f"decoder.{b}.conv.2.bias"] = (c,)
            shapes[f"decoder.{b}.conv.4.weight"] = (c, c, 3, 3)
            shapes[f"decoder.{b}.conv.4.bias"] = (c,)
        shapes[f"decoder.{tgrow}.conv.weight"] = (TIME_STRIDES[s] * c, c, 1, 1)
        shapes[f"decoder.{conv}.weight"] = (c_next, c, 3, 3)
    shapes["decoder.22.weight"] = (OUT_CHANNELS, n[3], 3, 3)
    shapes["decoder.22.bias"] = (OUT_CHANNELS,)
    return shapes


def conv3x3(x, weight, bias=None):
    return F.conv2d(x, weight, bias, padding=1)


def mem_block(x, params, index):
    """x: [T, C, H, W]; past is x delayed by one step, zeros first."""
    past = torch.cat([torch.zeros_like(x[:1]), x[:-1]], dim=0)
    p = f"decoder.{index}.conv."
    h = F.relu(conv3x3(torch.cat([x, past], dim=1), params[p + "0.weight"], params[p + "0.bias"]))
    h = F.relu(conv3x3(h, params[p + "2.weight"], params[p + "2.bias"]))
    h = conv3x3(h, params[p + "4.weight"], params[p + "4.bias"])
    return F.relu(h + x)


def t_grow(x, weight, stride):
    """x: [T, C, H, W] -> [stride·T, C, H, W]; channel group k of step τ is frame stride·τ + k.
    A weight with more rows than stride·C (an oversize file, §3.1) contributes its last rows."""
    t, c, h, w = x.shape
    weight = weight[weight.shape[0] - stride * c:]
    y = F.conv2d(x, weight)  # [T, stride·C, H, W]
    return y.view(t, stride, c, h, w).reshape(t * stride, c, h, w)


def decode_raw(params, latent):
    """latent: [T, 16, h, w] (the decoder's input, already scaled for the variant)
    -> raw frames [4T, 3, 8h, 8w]: no trim, no clamp."""
    x = torch.tanh(latent / 3) * 3
    x = F.relu(conv3x3(x, params["decoder.1.weight"], params["decoder.1.bias"]))
    for s in range(3):
        blocks, _, tgrow, conv = stage_indices(s)
        for b in blocks:
            x = mem_block(x, params, b)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = t_grow(x, params[f"decoder.{tgrow}.conv.weight"], TIME_STRIDES[s])
        x = conv3x3(x, params[f"decoder.{conv}.weight"])
    x = F.relu(x)
    return conv3x3(x, params["decoder.22.weight"], params["decoder.22.bias"])


def denormalise(latent_normalised):
    """[T, 16, h, w] normalised (what the DiT outputs) -> z = z_n · std + mean."""
    mean = torch.tensor(WAN_MEAN, dtype=latent_normalised.dtype).view(1, 16, 1, 1)
    std = torch.tensor(WAN_STD, dtype=latent_normalised.dtype).view(1, 16, 1, 1)
    return latent_normalised * std + mean


def decode_video(params, latent_normalised, lighttae=False):
    """The stream's output for a normalised latent [T, 16, h, w]: [1 + 4(T − 1), 3, 8h, 8w] in [0, 1].
    taew2_1 decodes the normalised latent as is; LightTAE decodes the denormalised one (§3.2)."""
    x = denormalise(latent_normalised) if lighttae else latent_normalised
    return decode_raw(params, x)[FRAMES_TO_TRIM:].clamp(0, 1)
