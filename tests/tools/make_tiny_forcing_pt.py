#!/usr/bin/env python3
"""Generate the tiny forcing-family checkpoint fixture (needs PyTorch).

Writes, next to this script:
  data/tiny_forcing.pt            torch.save dict {generator, generator_ema, critic, step}
  data/tiny_forcing_expected.npz  expected tensors after prefix stripping

The state dicts have the real Wan2.1 structure, scaled down: 2 layers, dim 32,
ffn_dim 64, 2 heads, in/out 4 channels, patch (1, 2, 2), text_dim 16,
freq_dim 256, qk_norm and cross_attn_norm on.

* generator_ema: float32, keys "model._fsdp_wrapped_module." + Wan name;
  contains a transposed (non-contiguous) view, q/k/v views sharing one fused
  storage at non-zero offsets, nn.Parameter entries, the state dict
  _metadata attribute (like a real module.state_dict()) and one non-tensor
  entry ("num_updates") that the converter must drop.
* generator: the same weights in bfloat16, keys "model." + Wan name, with a
  transposed view of its own.
* critic: a small unrelated state dict (must never be exported).

npz entries: "generator_ema:<name>" (float32) and "generator:<name>" (bf16 as
uint16 bit patterns).  generator is generator_ema cast to bf16 by PyTorch, so
the "generator:" arrays also check the converter's --dtype bf16 rounding.

Most values are small multiples of 1/16 (exact in bf16; they keep the
compressed npz small); a few tensors hold full-precision random values and
special values (ties, subnormals, inf, -0) to exercise rounding.

Run once and commit the outputs:  python3 tests/tools/make_tiny_forcing_pt.py
"""

import collections
import os

import numpy as np
import torch

DIM, FFN, HEADS, IN, OUT, PATCH, TEXT, FREQ, LAYERS = 32, 64, 2, 4, 4, (1, 2, 2), 16, 256, 2


def wan_shapes(layers=LAYERS):
    pv = PATCH[0] * PATCH[1] * PATCH[2]
    s = collections.OrderedDict()
    s["patch_embedding.weight"] = (DIM, IN) + PATCH
    s["patch_embedding.bias"] = (DIM,)
    s["text_embedding.0.weight"] = (DIM, TEXT)
    s["text_embedding.0.bias"] = (DIM,)
    s["text_embedding.2.weight"] = (DIM, DIM)
    s["text_embedding.2.bias"] = (DIM,)
    s["time_embedding.0.weight"] = (DIM, FREQ)
    s["time_embedding.0.bias"] = (DIM,)
    s["time_embedding.2.weight"] = (DIM, DIM)
    s["time_embedding.2.bias"] = (DIM,)
    s["time_projection.1.weight"] = (6 * DIM, DIM)
    s["time_projection.1.bias"] = (6 * DIM,)
    for i in range(layers):
        b = "blocks.%d." % i
        s[b + "modulation"] = (1, 6, DIM)
        for attn in ("self_attn", "cross_attn"):
            for p in "qkvo":
                s[b + "%s.%s.weight" % (attn, p)] = (DIM, DIM)
                s[b + "%s.%s.bias" % (attn, p)] = (DIM,)
            s[b + attn + ".norm_q.weight"] = (DIM,)
            s[b + attn + ".norm_k.weight"] = (DIM,)
        s[b + "norm3.weight"] = (DIM,)
        s[b + "norm3.bias"] = (DIM,)
        s[b + "ffn.0.weight"] = (FFN, DIM)
        s[b + "ffn.0.bias"] = (FFN,)
        s[b + "ffn.2.weight"] = (DIM, FFN)
        s[b + "ffn.2.bias"] = (DIM,)
    s["head.head.weight"] = (pv * OUT, DIM)
    s["head.head.bias"] = (pv * OUT,)
    s["head.modulation"] = (1, 2, DIM)
    return s


def special_values(n):
    vals = [
        0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"),
        1.0 + 2.0 ** -8,               # tie, rounds down to even (1.0)
        1.0 + 3 * 2.0 ** -8,           # tie, rounds up to even
        1.0 + 2.0 ** -8 + 2.0 ** -20,  # just above a tie: rounds up
        3.4e38,                        # rounds to inf in bf16
        1e-40, -1e-40, 1.5e-45,        # subnormals
        float(np.finfo(np.float32).tiny),
    ]
    vals += [0.1 * (k + 1) for k in range(n - len(vals))]
    return torch.tensor(vals[:n], dtype=torch.float32)


def main():
    g = torch.Generator().manual_seed(1234)
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = os.path.join(here, "data")
    os.makedirs(out_dir, exist_ok=True)

    full_precision = {"blocks.1.ffn.2.weight", "head.head.weight"}
    ema = collections.OrderedDict()
    for name, shape in wan_shapes().items():
        if name in full_precision:
            t = torch.randn(shape, generator=g) * 0.05
        else:
            t = torch.randint(-8, 9, shape, generator=g).float() / 16.0
        ema[name] = t
    ema["blocks.1.ffn.2.bias"] = special_values(DIM)

    # Non-contiguous: store blocks.0.self_attn.o.weight as a transposed view.
    ema["blocks.0.self_attn.o.weight"] = ema["blocks.0.self_attn.o.weight"].t().contiguous().t()
    assert not ema["blocks.0.self_attn.o.weight"].is_contiguous()
    # Views into one fused qkv storage (shared storage, non-zero offsets).
    qkv = torch.cat([ema["blocks.1.cross_attn.%s.weight" % p] for p in "qkv"], 0)
    for i, p in enumerate("qkv"):
        ema["blocks.1.cross_attn.%s.weight" % p] = qkv[i * DIM:(i + 1) * DIM]
    # A strided (every other element) view.
    wide = torch.randint(-8, 9, (2 * DIM,), generator=g).float() / 16.0
    ema["patch_embedding.bias"] = wide[::2]
    assert not ema["patch_embedding.bias"].is_contiguous()

    gen = collections.OrderedDict((k, v.to(torch.bfloat16)) for k, v in ema.items())
    gen["blocks.1.ffn.0.weight"] = gen["blocks.1.ffn.0.weight"].t().contiguous().t()
    assert not gen["blocks.1.ffn.0.weight"].is_contiguous()

    # Per block (and once for the non-block tensors), the small tensors
    # (biases, norm weights, modulations) become views into one flat storage
    # at increasing offsets, as flattened parameters would be; this also keeps
    # the fixture small (fewer zip records).
    for sd in (ema, gen):
        for group in ["blocks.%d." % i for i in range(LAYERS)] + [None]:
            names = [k for k, v in sd.items()
                     if (k.startswith(group) if group else not k.startswith("blocks."))
                     and v.numel() <= 6 * DIM and v.is_contiguous()]
            flat = torch.cat([sd[k].reshape(-1) for k in names])
            off = 0
            for k in names:
                n = sd[k].numel()
                sd[k] = flat[off:off + n].view(sd[k].shape)
                off += n

    def saved(sd, prefix, params, extra=()):
        out = collections.OrderedDict()
        for k, v in sd.items():
            out[prefix + k] = torch.nn.Parameter(v, requires_grad=False) if k in params else v
        for k, v in extra:
            out[prefix + k] = v  # non-tensor entry: the converter must drop it
        out._metadata = collections.OrderedDict([("", {"version": 1})])
        return out

    params = {"patch_embedding.weight", "head.modulation", "blocks.0.modulation"}
    critic = collections.OrderedDict([
        ("model._fsdp_wrapped_module.blocks.0.self_attn.q.weight",
         torch.randn(8, 8, generator=g)),
        ("model._fsdp_wrapped_module.head.head.weight", torch.randn(4, 8, generator=g)),
    ])
    ckpt = {
        "generator": saved(gen, "model.", params),
        "critic": critic,
        "generator_ema": saved(ema, "model._fsdp_wrapped_module.", params,
                               extra=[("num_updates", 7)]),
        "step": 1000,
    }
    pt_path = os.path.join(out_dir, "tiny_forcing.pt")
    torch.save(ckpt, pt_path)

    expected = {}
    for k, v in ema.items():
        expected["generator_ema:" + k] = v.contiguous().numpy()
    for k, v in gen.items():
        expected["generator:" + k] = v.contiguous().view(torch.int16).numpy().view(np.uint16)
    npz_path = os.path.join(out_dir, "tiny_forcing_expected.npz")
    np.savez_compressed(npz_path, **expected)

    # Sanity check: torch reads back what we wrote.
    back = torch.load(pt_path, weights_only=True)
    for k, v in ema.items():
        assert torch.equal(back["generator_ema"]["model._fsdp_wrapped_module." + k], v), k
    print("wrote %s (%d bytes)" % (pt_path, os.path.getsize(pt_path)))
    print("wrote %s (%d bytes)" % (npz_path, os.path.getsize(npz_path)))


if __name__ == "__main__":
    main()
