#!/usr/bin/env python3
"""Convert a TAEHV / LightTAE .pth (taew2_1.pth, lighttaew2_1.pth) to the safetensors file fastar loads.

The tiny Wan2.1 decoders (pipeline-spec.md §3) are published as ``torch.save`` state dicts with keys
``encoder.<i>.*`` and ``decoder.<i>.*``. fastar reads safetensors only; this tool rewrites the state
dict under the same names (no torch needed: the pickle is read by the restricted, allow-listed
unpickler of convert_forcing_checkpoint.py, which refuses anything but plain tensors)::

    python3 tools/convert_taehv.py taew2_1.pth [taew2_1.safetensors] [--variant auto|taew2_1|lighttaew2_1]
                                   [--dtype keep|bf16|f32] [--decoder-only]

``--variant``
    Which latent the decoder takes (§3.2): taew2_1 the DiT's normalised latent, lighttaew2_1 the
    denormalised one. Stored as metadata ``fastar_taehv_variant``; ``auto`` (default) picks
    lighttaew2_1 when the input file name contains "lighttae", else taew2_1.
``--dtype``
    ``keep`` (default) writes floating-point tensors in their stored dtype; ``bf16`` / ``f32`` cast them.
``--decoder-only``
    Drop the ``encoder.*`` tensors (fastar only decodes).

The decoder tensors are checked before anything is written: all 64 present, with the shapes of the
published layer structure (any channel widths, read off decoder.1/8/14/20). A TGrow weight stored
oversize (§3.1: some files store decoder.7 for stride 2) is kept as is; fastar's loader uses its last
rows. The output is written atomically (a temporary file in the same folder, then a rename). Errors
go to stderr with exit status 2.
"""

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_forcing_checkpoint import (  # noqa: E402  (the torch-free .pth reader and writer)
    ConvertError,
    LazyTensor,
    TorchZipArchive,
    clean_state_dict,
    out_dtype,
    write_safetensors,
)

VARIANTS = ("taew2_1", "lighttaew2_1")
VARIANT_KEY = "fastar_taehv_variant"
TIME_STRIDES = (1, 2, 2)  # TGrow of decoder.7, 13, 19
PROBE = "decoder.22.bias"


def expected_decoder_shapes(widths, latent_channels=16):
    """{name: shape} of the 64 decoder tensors (pipeline-spec.md §3.1 layer table)."""
    n = widths
    shapes = {"decoder.1.weight": (n[0], latent_channels, 3, 3), "decoder.1.bias": (n[0],)}
    for s in range(3):
        c, base = n[s], 3 + 6 * s
        for b in range(base, base + 3):
            for j, cin in ((0, 2 * c), (2, c), (4, c)):
                shapes["decoder.%d.conv.%d.weight" % (b, j)] = (c, cin, 3, 3)
                shapes["decoder.%d.conv.%d.bias" % (b, j)] = (c,)
        shapes["decoder.%d.conv.weight" % (base + 4)] = (TIME_STRIDES[s] * c, c, 1, 1)
        shapes["decoder.%d.weight" % (base + 5)] = (n[s + 1], c, 3, 3)
    shapes["decoder.22.weight"] = (3, n[3], 3, 3)
    shapes["decoder.22.bias"] = (3,)
    return shapes


def select_state_dict(ckpt, path):
    if not isinstance(ckpt, dict):
        raise ConvertError("%s: the pickle holds a %s, expected a state dict" % (path, type(ckpt).__name__))
    if PROBE in ckpt:
        return ckpt
    for key in ("state_dict", "model", "decoder_state_dict"):
        inner = ckpt.get(key)
        if isinstance(inner, dict) and any(isinstance(k, str) and k.endswith(PROBE) for k in inner):
            return inner
    return ckpt  # the key check below reports what is there


def validate(sd, path):
    """Checks the decoder tensors; returns the widths (n0, n1, n2, n3)."""
    if PROBE not in sd:
        sample = ", ".join(sorted(sd)[:6]) or "(none)"
        raise ConvertError("%s: not a TAEHV / LightTAE checkpoint: no tensor '%s' (the taew2_1 and lighttaew2_1 "
                           "files name the decoder decoder.<i>.*); first keys: %s" % (path, PROBE, sample))

    def width(name, expected_in=None):
        if name not in sd:
            raise ConvertError("%s: tensor '%s' is missing; the file is not a complete TAEHV decoder" % (path, name))
        shape = sd[name].shape
        if len(shape) != 4 or (expected_in is not None and shape[1] != expected_in):
            raise ConvertError("%s: tensor '%s' has shape %s, expected a Conv2d weight [out, %s, k, k]"
                               % (path, name, list(shape), expected_in if expected_in is not None else "in"))
        return shape[0]

    n0 = width("decoder.1.weight")
    n1 = width("decoder.8.weight", n0)
    n2 = width("decoder.14.weight", n1)
    n3 = width("decoder.20.weight", n2)
    widths = (n0, n1, n2, n3)
    latent_channels = sd["decoder.1.weight"].shape[1]
    if latent_channels != 16:
        raise ConvertError("%s: tensor 'decoder.1.weight' takes %d latent channels; the Wan2.1 tiny decoders "
                           "take 16" % (path, latent_channels))
    missing = []
    for name, shape in expected_decoder_shapes(widths).items():
        if name not in sd:
            missing.append(name)
            continue
        got = tuple(sd[name].shape)
        oversize_tgrow = (name.endswith(".conv.weight") and len(got) == 4 and got[1:] == shape[1:]
                          and got[0] > shape[0] and got[0] % shape[1] == 0)
        if got != shape and not oversize_tgrow:
            raise ConvertError("%s: tensor '%s' has shape %s, expected %s for widths %s"
                               % (path, name, list(got), list(shape), list(widths)))
        if sd[name].dtype not in ("F32", "F16", "BF16", "F64"):
            raise ConvertError("%s: tensor '%s' has dtype %s; expected a float tensor" % (path, name, sd[name].dtype))
    if missing:
        raise ConvertError("%s: %d decoder tensors are missing: %s" % (path, len(missing), ", ".join(missing[:5])))
    return widths


def convert(input_path, output_path=None, variant="auto", dtype_mode="keep", decoder_only=False, log=print):
    if output_path is None:
        output_path = os.path.splitext(input_path)[0] + ".safetensors"
    if os.path.abspath(output_path) == os.path.abspath(input_path):
        raise ConvertError("the output %s would overwrite the input" % output_path)
    if variant == "auto":
        variant = "lighttaew2_1" if "lighttae" in os.path.basename(input_path).lower() else "taew2_1"
    if variant not in VARIANTS:
        raise ConvertError("unknown variant %r; use one of %s" % (variant, ", ".join(VARIANTS)))

    archive = TorchZipArchive(input_path)
    sd, dropped = clean_state_dict(select_state_dict(archive.load(), input_path))
    if dropped:
        log("dropped %d non-tensor entries: %s" % (len(dropped), ", ".join(map(str, dropped))))
    widths = validate(sd, input_path)
    if decoder_only:
        sd = {k: v for k, v in sd.items() if k.startswith("decoder.")}
    unexpected = sorted(k for k in sd if not (k.startswith("decoder.") or k.startswith("encoder.")))
    if unexpected:
        log("note: keeping %d tensors outside encoder./decoder.: %s" % (len(unexpected), ", ".join(unexpected[:5])))

    outdir = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(outdir):
        raise ConvertError("output folder %s does not exist" % outdir)
    metadata = collections.OrderedDict([
        ("format", "pt"),
        ("source", os.path.basename(input_path)),
        ("converted_by", "fastar convert_taehv"),
        (VARIANT_KEY, variant),
    ])
    try:
        nbytes = write_safetensors(output_path, sd, dtype_mode, metadata)
    except OSError as e:
        raise ConvertError("cannot write %s: %s" % (output_path, e))
    dtypes = collections.Counter(out_dtype(t.dtype, dtype_mode) for t in sd.values())
    log("%s: variant %s, decoder widths %s, %d tensors (%s), %d bytes of tensor data -> %s"
        % (os.path.basename(input_path), variant, list(widths), len(sd),
           ", ".join("%s x%d" % kv for kv in sorted(dtypes.items())), nbytes, output_path))
    return output_path


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert taew2_1.pth / lighttaew2_1.pth to safetensors for fastar "
                                             "(no torch needed).")
    ap.add_argument("input", help="the .pth written by torch.save")
    ap.add_argument("output", nargs="?", help="the .safetensors to write (default: next to the input)")
    ap.add_argument("--variant", default="auto", choices=("auto",) + VARIANTS,
                    help="latent the decoder takes: taew2_1 normalised, lighttaew2_1 denormalised "
                         "(default: from the file name)")
    ap.add_argument("--dtype", default="keep", choices=("keep", "bf16", "f32"),
                    help="floating-point output dtype (default: keep)")
    ap.add_argument("--decoder-only", action="store_true", help="drop the encoder.* tensors")
    args = ap.parse_args(argv)
    try:
        convert(args.input, args.output, args.variant, args.dtype, args.decoder_only)
    except ConvertError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory while converting", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
