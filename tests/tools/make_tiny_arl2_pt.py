#!/usr/bin/env python3
"""Generate the tiny ARL² checkpoint fixture (needs PyTorch).

Writes, next to this script:
  data/tiny_arl2.pt            torch.save dict {generator, generator_ema, bad_*}
  data/tiny_arl2_expected.npz  expected tensors after prefix stripping

The model is make_tiny_forcing_pt.py's tiny Wan2.1 (dim 32, ffn_dim 64, 2 heads of 16,
patch (1, 2, 2), 4 channels, text_dim 16) with 3 layers, of which layers 0 and 2 are ARL²
hybrid layers as lky-ang/ARL2's inference.py builds them with its defaults (v2c):

* blocks.N.self_attn becomes a module with the hybrid attention's parameters: Wan's q/k/v/o and
  norm_q/norm_k, a_proj / b_proj / gate_proj (Linear dim -> heads, no bias), A_log and dt_bias
  [heads], phi_q/k/v (Conv1d(dim, dim, 1, groups=heads, no bias) -> [dim, head_dim, 1]) and the
  GDN LoRA lora_{q,k,v}_A [dim, r] / lora_{q,k,v}_B [r, dim] (rank 4);
* blocks.N.ffn.0 and ffn.2 are wrapped LoRA linears: the base under ffn.K.linear.{weight,bias},
  the pair as ffn.K.lora_A [in, r] / lora_B [r, out].

The names come from torch modules built here with that structure (module.state_dict()), not
from a hand-written list, so they are what torch.save of such a model holds.

* generator_ema: float32, keys "model._fsdp_wrapped_module." + name.
* generator: the same weights in bfloat16 except A_log and dt_bias, kept float32 (mixed dtypes),
  keys "model." + name.
* bad_unknown: generator_ema plus blocks.0.self_attn.q_conv1d.weight (ARL²'s earlier ShortConv,
  which fastar does not implement): the converter must refuse it and name it.
* bad_missing: generator_ema without blocks.2.self_attn.A_log.
* bad_half_lora: generator_ema without blocks.0.self_attn.lora_k_B.

npz entries: "generator_ema:<name>" (float32) and "generator:<name>" (bf16 as uint16 bit
patterns; A_log / dt_bias as float32).  All values are multiples of 1/64 (exact in bf16), so
generator == generator_ema widened, bit for bit.

Run once and commit the outputs:  python3 tests/tools/make_tiny_arl2_pt.py
"""

import collections
import os
import re

import numpy as np
import torch
from torch import nn

import make_tiny_forcing_pt as tiny

LAYERS = 3
HYBRID = (0, 2)
RANK = 4
HEADS = tiny.HEADS
DIM, FFN = tiny.DIM, tiny.FFN


class Norm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class HybridSelfAttention(nn.Module):
    """The parameter structure of a hybrid layer's self-attention (no forward needed here)."""

    def __init__(self, dim, heads, rank):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = Norm(dim), Norm(dim)
        self.a_proj = nn.Linear(dim, heads, bias=False)
        self.b_proj = nn.Linear(dim, heads, bias=False)
        self.A_log = nn.Parameter(torch.zeros(heads))
        self.dt_bias = nn.Parameter(torch.zeros(heads))
        self.phi_q, self.phi_k, self.phi_v = (nn.Conv1d(dim, dim, 1, groups=heads, bias=False) for _ in range(3))
        self.gate_proj = nn.Linear(dim, heads, bias=False)
        for p in "qkv":
            setattr(self, "lora_%s_A" % p, nn.Parameter(torch.zeros(dim, rank)))
            setattr(self, "lora_%s_B" % p, nn.Parameter(torch.zeros(rank, dim)))


class LoraLinear(nn.Module):
    """A linear wrapped with a LoRA pair: base under .linear, A [in, r], B [r, out]."""

    def __init__(self, fan_in, fan_out, rank):
        super().__init__()
        self.linear = nn.Linear(fan_in, fan_out)
        self.lora_A = nn.Parameter(torch.zeros(fan_in, rank))
        self.lora_B = nn.Parameter(torch.zeros(rank, fan_out))


def hybrid_block_tensors(layer):
    """{name: shape} of the self_attn.* and ffn.* tensors of a hybrid block, from the modules."""
    out = collections.OrderedDict()
    for k, v in HybridSelfAttention(DIM, HEADS, RANK).state_dict().items():
        out["blocks.%d.self_attn.%s" % (layer, k)] = tuple(v.shape)
    ffn = nn.Sequential(LoraLinear(DIM, FFN, RANK), nn.GELU(), LoraLinear(FFN, DIM, RANK))
    for k, v in ffn.state_dict().items():
        out["blocks.%d.ffn.%s" % (layer, k)] = tuple(v.shape)
    return out


def arl2_shapes():
    shapes = collections.OrderedDict()
    for name, shape in tiny.wan_shapes(LAYERS).items():
        layer = name.split(".")[1] if name.startswith("blocks.") else None
        if layer is not None and int(layer) in HYBRID and (".self_attn." in name or ".ffn." in name):
            continue  # replaced by the hybrid block's own tensors below
        shapes[name] = shape
    for layer in HYBRID:
        shapes.update(hybrid_block_tensors(layer))
    return collections.OrderedDict(sorted(shapes.items(), key=lambda kv: natural_key(kv[0])))


def natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def main():
    g = torch.Generator().manual_seed(4321)
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = os.path.join(here, "data")
    os.makedirs(out_dir, exist_ok=True)

    hd = DIM // HEADS
    ema = collections.OrderedDict()
    for name, shape in arl2_shapes().items():
        t = torch.randint(-8, 9, shape, generator=g).float() / 64.0
        if ".phi_" in name:  # near identity per head, as ARL² initialises φ
            t = t + torch.eye(hd).repeat(HEADS, 1).unsqueeze(-1)
        elif name.endswith("norm_q.weight") or name.endswith("norm_k.weight") or name.endswith("norm3.weight"):
            t = 1.0 + t
        elif name.endswith("A_log"):
            t = torch.tensor([-1.0, 0.5])
        elif name.endswith("dt_bias"):
            t = torch.tensor([-2.0, 0.25])
        ema[name] = t.contiguous()
    for name in ema:
        assert torch.equal(ema[name].to(torch.bfloat16).float(), ema[name]), name

    keep_f32 = lambda k: k.endswith("A_log") or k.endswith("dt_bias")
    gen = collections.OrderedDict((k, v if keep_f32(k) else v.to(torch.bfloat16)) for k, v in ema.items())

    def saved(sd, prefix, drop=(), extra=()):
        out = collections.OrderedDict()
        for k, v in sd.items():
            if k not in drop:
                out[prefix + k] = v
        for k, v in extra:
            out[prefix + k] = v
        out._metadata = collections.OrderedDict([("", {"version": 1})])
        return out

    fsdp = "model._fsdp_wrapped_module."
    short_conv = torch.randint(-8, 9, (DIM, 1, 4), generator=g).float() / 64.0
    ckpt = {
        "generator": saved(gen, "model."),
        "generator_ema": saved(ema, fsdp),
        "bad_unknown": saved(ema, fsdp, extra=[("blocks.0.self_attn.q_conv1d.weight", short_conv)]),
        "bad_missing": saved(ema, fsdp, drop=("blocks.2.self_attn.A_log",)),
        "bad_half_lora": saved(ema, fsdp, drop=("blocks.0.self_attn.lora_k_B",)),
    }
    pt_path = os.path.join(out_dir, "tiny_arl2.pt")
    torch.save(ckpt, pt_path)

    expected = {}
    for k, v in ema.items():
        expected["generator_ema:" + k] = v.numpy()
    for k, v in gen.items():
        expected["generator:" + k] = (v.numpy() if v.dtype == torch.float32
                                      else v.view(torch.int16).numpy().view(np.uint16))
    npz_path = os.path.join(out_dir, "tiny_arl2_expected.npz")
    np.savez_compressed(npz_path, **expected)

    back = torch.load(pt_path, weights_only=True)
    for k, v in ema.items():
        assert torch.equal(back["generator_ema"][fsdp + k], v), k
    print("wrote %s (%d bytes, %d tensors per state dict)" % (pt_path, os.path.getsize(pt_path), len(ema)))
    print("wrote %s (%d bytes)" % (npz_path, os.path.getsize(npz_path)))


if __name__ == "__main__":
    main()
