#!/usr/bin/env python3
"""Convert Wan2.1's pickled ``.pth`` parts (the VAE, the umT5 text encoder) to safetensors.

Wan2.1's Hugging Face repos (Wan-AI/Wan2.1-T2V-1.3B, -14B) ship two parts as
``torch.save`` state dicts, which fastar does not unpickle at run time::

    Wan2.1_VAE.pth                      the Wan VAE, 194 tensors, fp32, original names
    models_t5_umt5-xxl-enc-bf16.pth     the umT5-XXL encoder, 242 tensors, bf16, Wan names

This tool writes each as safetensors with the names fastar's loaders take (the
original Wan names, unchanged), next to the DiT in the model folder::

    MODEL/Wan2.1_VAE.safetensors                   decoder.* + conv2.* only (108 tensors)
    MODEL/models_t5_umt5-xxl-enc-bf16.safetensors  every encoder tensor (242)

Usage
-----
::

    python3 tools/convert_wan_parts.py vae Wan2.1_VAE.pth MODEL/Wan2.1_VAE.safetensors [--dtype keep|bf16|f32]
    python3 tools/convert_wan_parts.py t5 models_t5_umt5-xxl-enc-bf16.pth \\
        MODEL/models_t5_umt5-xxl-enc-bf16.safetensors [--dtype keep|bf16|f32]

The tokenizer (``google/umt5-xxl/``) is copied as it is; the diffusers folders
(``vae/``, ``text_encoder/``, ``tokenizer/``) are read directly and need no
conversion.

What it does
------------
* Needs only Python 3 and numpy -- PyTorch is NOT required.  The ``.pth`` zip
  archive is read with tools/convert_forcing_checkpoint.py's restricted
  unpickler (a file from the internet never runs code) and its lazy storages:
  tensors are read and written one at a time, so the 11.4 GB encoder is never
  held in memory at once.  Legacy (non-zip) pickles are refused with a message.
* ``--dtype keep`` (default) copies the stored bytes (bf16 stays BF16); ``bf16``
  / ``f32`` cast floating-point tensors.
* Validation (pipeline-spec.md §6, "Checkpoint files and loading"): the VAE must
  have every one of the decoder's 106 tensors plus ``conv2.{weight,bias}`` (the
  layer structure is fixed; only the width varies) and z_dim 16 -- Wan2.2's
  z_dim-48 VAE and diffusers-named files are refused; the encoder must have
  ``token_embedding.weight``, ``norm.weight`` and exactly 10 tensors in every
  block ``blocks.0 .. blocks.N-1``.  Missing or unexpected names are listed and
  the tool exits with status 2.  Output files are written to a temporary file and
  renamed into place, so a failed run leaves nothing half-written.
"""

import argparse
import collections
import os
import re
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)

import convert_forcing_checkpoint as cf  # noqa: E402  (the .pt reader and the safetensors writer)

ConvertError = cf.ConvertError

# --------------------------------------------------------------------------
# expected names
# --------------------------------------------------------------------------

def vae_decoder_names():
    """The Wan2.1 VAE decoder's tensor names in Wan's original naming (106) + conv2 (2)."""
    names = ["conv2.weight", "conv2.bias", "decoder.conv1.weight", "decoder.conv1.bias"]

    def res(prefix, shortcut):
        out = [prefix + "residual.0.gamma", prefix + "residual.2.weight", prefix + "residual.2.bias",
               prefix + "residual.3.gamma", prefix + "residual.6.weight", prefix + "residual.6.bias"]
        if shortcut:
            out += [prefix + "shortcut.weight", prefix + "shortcut.bias"]
        return out

    names += res("decoder.middle.0.", False)
    names += ["decoder.middle.1.norm.gamma", "decoder.middle.1.to_qkv.weight", "decoder.middle.1.to_qkv.bias",
              "decoder.middle.1.proj.weight", "decoder.middle.1.proj.bias"]
    names += res("decoder.middle.2.", False)
    # upsamples: 4 stages of 3 residual blocks, a resample after the first three (the first two temporal).
    # Only the first block of stage 1 changes its width (the resample before it halved the channels,
    # pipeline-spec.md §2.3), so it alone has a 1x1x1 shortcut.
    index = 0
    for stage in range(4):
        for block in range(3):
            shortcut = block == 0 and stage == 1
            names += res("decoder.upsamples.%d." % index, shortcut)
            index += 1
        if stage < 3:
            prefix = "decoder.upsamples.%d." % index
            names += [prefix + "resample.1.weight", prefix + "resample.1.bias"]
            if stage < 2:
                names += [prefix + "time_conv.weight", prefix + "time_conv.bias"]
            index += 1
    names += ["decoder.head.0.gamma", "decoder.head.2.weight", "decoder.head.2.bias"]
    return names


T5_BLOCK_SUFFIXES = ("norm1.weight", "attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight",
                     "pos_embedding.embedding.weight", "norm2.weight", "ffn.gate.0.weight", "ffn.fc1.weight",
                     "ffn.fc2.weight")


def _listed(names, limit=12):
    names = sorted(names, key=cf.natural_key)
    text = ", ".join(names[:limit])
    return text + (", ... (%d in all)" % len(names) if len(names) > limit else "")


# --------------------------------------------------------------------------
# parts
# --------------------------------------------------------------------------

def _state_dict(path):
    ckpt = cf.TorchZipArchive(path).load()
    if not isinstance(ckpt, dict):
        raise ConvertError("%s: the top level is a %s, expected a state dict" % (path, type(ckpt).__name__))
    if not any(isinstance(v, cf.LazyTensor) for v in ckpt.values()):
        # A wrapper such as {"state_dict": {...}} or {"model": {...}}: exactly one dict of tensors inside.
        inner = [k for k, v in ckpt.items() if isinstance(v, dict) and any(isinstance(t, cf.LazyTensor) for t in v.values())]
        if len(inner) != 1:
            raise ConvertError("%s: no state dict of tensors at the top level; keys: %s"
                               % (path, ", ".join(repr(k) for k in ckpt) or "(none)"))
        ckpt = ckpt[inner[0]]
    sd, _ = cf.clean_state_dict(ckpt)
    return sd


def select_vae(sd, path):
    if any(k.startswith("decoder.mid_block.") or k.startswith("decoder.up_blocks.") for k in sd):
        raise ConvertError("%s: diffusers tensor names (decoder.mid_block...): fastar reads a diffusers vae/ folder "
                           "directly; this tool converts Wan's original Wan2.1_VAE.pth" % path)
    if "conv2.weight" in sd and sd["conv2.weight"].shape[:2] != (16, 16):
        raise ConvertError("%s: conv2.weight has shape %s: z_dim %d is not the Wan2.1 VAE's 16 (Wan2.2's VAE has z_dim 48 "
                           "and another layout; fastar decodes Wan2.1 latents)"
                           % (path, list(sd["conv2.weight"].shape), sd["conv2.weight"].shape[0]))
    expected = vae_decoder_names()
    present = {k for k in sd if k.startswith("decoder.") or k.startswith("conv2.")}
    missing = [n for n in expected if n not in sd]
    unexpected = present - set(expected)
    if missing or unexpected:
        raise ConvertError("%s: not a Wan2.1 VAE decoder: %s%s" % (
            path, ("missing %d tensors: %s" % (len(missing), _listed(missing))) if missing else "",
            ("; unexpected: %s" % _listed(unexpected)) if unexpected else ""))
    return {n: sd[n] for n in expected}


def select_t5(sd, path):
    if any(k.startswith("encoder.block.") or k == "shared.weight" for k in sd):
        raise ConvertError("%s: Hugging Face tensor names: fastar reads a diffusers text_encoder/ folder (config.json "
                           "+ safetensors) directly; this tool converts Wan's models_t5_umt5-xxl-enc-bf16.pth" % path)
    blocks = set()
    for k in sd:
        m = re.match(r"blocks\.(\d+)\.", k)
        if m:
            blocks.add(int(m.group(1)))
    if not blocks or "token_embedding.weight" not in sd:
        raise ConvertError("%s: not a umT5 encoder in Wan's naming (no token_embedding.weight / blocks.N.*); keys "
                           "start with: %s" % (path, _listed(sd, 6)))
    expected = ["token_embedding.weight", "norm.weight"]
    for b in range(max(blocks) + 1):
        expected += ["blocks.%d.%s" % (b, s) for s in T5_BLOCK_SUFFIXES]
    missing = [n for n in expected if n not in sd]
    unexpected = set(sd) - set(expected)
    if missing or unexpected:
        raise ConvertError("%s: not a complete umT5 encoder: %s%s" % (
            path, ("missing %d tensors: %s" % (len(missing), _listed(missing))) if missing else "",
            ("; unexpected: %s" % _listed(unexpected)) if unexpected else ""))
    d_model = sd["token_embedding.weight"].shape[1]
    if sd["norm.weight"].shape != (d_model,):
        raise ConvertError("%s: norm.weight has shape %s, expected [%d] (token_embedding's width)"
                           % (path, list(sd["norm.weight"].shape), d_model))
    return {n: sd[n] for n in expected}


def convert(part, input_path, output_path, dtype_mode="keep", log=print):
    if part not in ("vae", "t5"):
        raise ConvertError("unknown part %r; choose vae or t5" % part)
    if not output_path.endswith(".safetensors"):
        raise ConvertError("output %s must end in .safetensors" % output_path)
    sd = _state_dict(input_path)
    tensors = select_vae(sd, input_path) if part == "vae" else select_t5(sd, input_path)
    outdir = os.path.dirname(os.path.abspath(output_path))
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise ConvertError("cannot create output directory %s: %s" % (outdir, e))
    metadata = collections.OrderedDict([
        ("format", "pt"),
        ("source", os.path.basename(input_path)),
        ("converted_by", "fastar convert_wan_parts " + part),
    ])
    try:
        nbytes = cf.write_safetensors(output_path, tensors, dtype_mode, metadata)
    except OSError as e:
        raise ConvertError("cannot write %s: %s" % (output_path, e))
    dtypes = collections.Counter(cf.out_dtype(t.dtype, dtype_mode) for t in tensors.values())
    if part == "vae":
        log("Wan2.1 VAE decoder: %d tensors (of %d in the file), base_dim %d, z_dim 16"
            % (len(tensors), len(sd), tensors["decoder.head.2.weight"].shape[1]))
    else:
        emb = tensors["token_embedding.weight"].shape
        log("umT5 encoder: %d tensors, %d blocks, d_model %d, vocabulary %d"
            % (len(tensors), (len(tensors) - 2) // len(T5_BLOCK_SUFFIXES), emb[1], emb[0]))
    log("dtypes out: %s" % ", ".join("%s x%d" % kv for kv in sorted(dtypes.items())))
    log("wrote %s (%d bytes of tensor data)" % (output_path, nbytes))
    return sorted(tensors)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert Wan2.1's Wan2.1_VAE.pth / models_t5_umt5-xxl-enc-bf16.pth to safetensors with the "
                    "names fastar reads (no torch needed).")
    ap.add_argument("part", choices=("vae", "t5"), help="vae: Wan2.1_VAE.pth; t5: models_t5_umt5-xxl-enc-bf16.pth")
    ap.add_argument("input", help="the .pth file written by torch.save")
    ap.add_argument("output", help="the .safetensors file to write (e.g. MODEL/Wan2.1_VAE.safetensors)")
    ap.add_argument("--dtype", default="keep", choices=("keep", "bf16", "f32"),
                    help="floating-point output dtype (default: keep the stored one)")
    args = ap.parse_args(argv)
    try:
        convert(args.part, args.input, args.output, args.dtype)
    except ConvertError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory while converting", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
