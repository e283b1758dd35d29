#!/usr/bin/env python3
"""Tests for tools/convert_wan_parts.py (Wan2.1_VAE.pth / models_t5_umt5-xxl-enc-bf16.pth -> safetensors).

The tiny .pth files are made in the set-up with torch.save from the repository's
tiny goldens (tests/model/golden/wan_vae_tiny_original.safetensors and
umt5_tiny/wan_text_encoder_bf16.safetensors, which the C++ tests load), plus
encoder tensors the VAE converter must drop. Without PyTorch the tests are
skipped (exit 77); the converter itself needs only numpy.

With the fastar binary as argv[1], the converted VAE is also put beside a DiT
config and read back by `fastar inspect`.

Run:  python3 tests/tools/test_convert_wan_parts.py [path/to/fastar]
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

HERE = os.path.dirname(os.path.realpath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONVERTER = os.path.join(ROOT, "tools", "convert_wan_parts.py")
GOLDEN = os.path.join(ROOT, "tests", "model", "golden")
VAE_GOLDEN = os.path.join(GOLDEN, "wan_vae_tiny_original.safetensors")
T5_GOLDEN = os.path.join(GOLDEN, "umt5_tiny", "wan_text_encoder_bf16.safetensors")
FASTAR = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else None

NP_DTYPES = {"F32": np.dtype("<f4"), "BF16": np.dtype("<u2"), "F16": np.dtype("<f2")}


def read_safetensors(path):
    """Minimal safetensors reader: (metadata, {name: (dtype, shape, raw bytes)})."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    data = blob[8 + hlen:]
    meta = header.pop("__metadata__", {})
    return meta, {n: (i["dtype"], tuple(i["shape"]), data[i["data_offsets"][0]:i["data_offsets"][1]])
                  for n, i in header.items()}


def to_torch(dtype, shape, raw):
    arr = np.frombuffer(raw, dtype=NP_DTYPES[dtype]).reshape(shape).copy()
    if dtype == "BF16":
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def run_converter(*args):
    proc = subprocess.run([sys.executable, CONVERTER] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc.returncode, proc.stdout, proc.stderr


@unittest.skipIf(torch is None, "needs torch to write the .pth fixtures")
class ConvertWanParts(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fastar_convert_wan_parts_")
        _, self.vae = read_safetensors(VAE_GOLDEN)
        _, self.t5 = read_safetensors(T5_GOLDEN)
        # Wan2.1_VAE.pth: the decoder + conv2 (fp32, as Wan ships it), plus encoder tensors and conv1.
        sd = {n: to_torch(*v).float() for n, v in self.vae.items()}
        sd["encoder.conv1.weight"] = torch.randn(8, 3, 3, 3, 3)
        sd["encoder.conv1.bias"] = torch.randn(8)
        sd["conv1.weight"] = torch.randn(32, 32, 1, 1, 1)
        sd["conv1.bias"] = torch.randn(32)
        self.vae_sd = sd
        self.vae_pth = os.path.join(self.dir, "Wan2.1_VAE.pth")
        torch.save(sd, self.vae_pth)
        self.t5_sd = {n: to_torch(*v) for n, v in self.t5.items()}
        self.t5_pth = os.path.join(self.dir, "models_t5_umt5-xxl-enc-bf16.pth")
        torch.save(self.t5_sd, self.t5_pth)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def assert_no_partial_files(self):
        leftovers = [n for n in os.listdir(self.dir) if n.endswith(".tmp")]
        self.assertEqual(leftovers, [])

    def test_vae_keeps_the_decoder_and_conv2_with_their_values(self):
        out = os.path.join(self.dir, "model", "Wan2.1_VAE.safetensors")
        rc, stdout, stderr = run_converter("vae", self.vae_pth, out)
        self.assertEqual(rc, 0, stderr)
        self.assertIn("108 tensors", stdout)
        meta, got = read_safetensors(out)
        self.assertEqual(meta["converted_by"], "fastar convert_wan_parts vae")
        self.assertEqual(set(got), set(self.vae))  # encoder.* and conv1.* dropped
        for name, (dtype, shape, raw) in got.items():
            self.assertEqual(dtype, "F32", name)
            self.assertEqual(shape, self.vae[name][1], name)
            np.testing.assert_array_equal(np.frombuffer(raw, "<f4").reshape(shape), self.vae_sd[name].numpy())

    def test_vae_to_bf16_matches_the_bf16_golden_bytes(self):
        out = os.path.join(self.dir, "vae_bf16.safetensors")
        rc, _, stderr = run_converter("vae", self.vae_pth, out, "--dtype", "bf16")
        self.assertEqual(rc, 0, stderr)
        _, got = read_safetensors(out)
        for name, (dtype, shape, raw) in got.items():
            self.assertEqual((dtype, raw), (self.vae[name][0], self.vae[name][2]), name)  # golden is bf16-exact

    def test_t5_copies_every_tensor_bit_for_bit(self):
        out = os.path.join(self.dir, "models_t5_umt5-xxl-enc-bf16.safetensors")
        rc, stdout, stderr = run_converter("t5", self.t5_pth, out)
        self.assertEqual(rc, 0, stderr)
        self.assertIn("3 blocks, d_model 64, vocabulary 960", stdout)
        _, got = read_safetensors(out)
        self.assertEqual(got, self.t5)

    def test_errors_exit_2_with_a_message_and_leave_no_file(self):
        cases = []
        # A decoder tensor missing.
        sd = dict(self.vae_sd)
        del sd["decoder.upsamples.4.shortcut.weight"]
        cases.append(("vae", sd, "missing 1 tensors: decoder.upsamples.4.shortcut.weight"))
        # Wan2.2-style z_dim 48.
        sd = dict(self.vae_sd)
        sd["conv2.weight"] = torch.randn(48, 48, 1, 1, 1)
        cases.append(("vae", sd, "z_dim 48"))
        # Diffusers names.
        cases.append(("vae", {"decoder.mid_block.resnets.0.norm1.gamma": torch.ones(32, 1, 1, 1)}, "diffusers tensor names"))
        # An encoder block incomplete; an HF-named encoder.
        sd = dict(self.t5_sd)
        del sd["blocks.1.ffn.fc1.weight"]
        cases.append(("t5", sd, "missing 1 tensors: blocks.1.ffn.fc1.weight"))
        cases.append(("t5", {"shared.weight": torch.zeros(4, 4)}, "Hugging Face tensor names"))
        for i, (part, sd, message) in enumerate(cases):
            pth = os.path.join(self.dir, "bad%d.pth" % i)
            torch.save(sd, pth)
            out = os.path.join(self.dir, "bad%d.safetensors" % i)
            rc, _, stderr = run_converter(part, pth, out)
            self.assertEqual(rc, 2, stderr)
            self.assertIn(message, stderr)
            self.assertIn(pth, stderr)
            self.assertFalse(os.path.exists(out))
        # Legacy (non-zip) pickle and a missing file.
        legacy = os.path.join(self.dir, "legacy.pth")
        torch.save(self.t5_sd, legacy, _use_new_zipfile_serialization=False)
        rc, _, stderr = run_converter("t5", legacy, os.path.join(self.dir, "legacy.safetensors"))
        self.assertEqual(rc, 2)
        self.assertIn("not a zip archive", stderr)
        rc, _, stderr = run_converter("vae", os.path.join(self.dir, "nope.pth"), os.path.join(self.dir, "x.safetensors"))
        self.assertEqual(rc, 2)
        self.assertIn("not found", stderr)
        self.assert_no_partial_files()

    @unittest.skipIf(FASTAR is None, "pass the fastar binary to read the result back")
    def test_fastar_reads_the_converted_parts(self):
        # A folder with a DiT of the golden shapes made by fastar itself is the C++ tests' job; here the
        # converted files must load as fastar's VAE and umT5 (fastar inspect prints their checkpoints).
        for part, pth, name in (("vae", self.vae_pth, "Wan2.1_VAE.safetensors"),
                                ("t5", self.t5_pth, "models_t5_umt5-xxl-enc-bf16.safetensors")):
            out = os.path.join(self.dir, name)
            self.assertEqual(run_converter(part, pth, out)[0], 0)
            proc = subprocess.run([FASTAR, "inspect", out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.assertEqual(proc.returncode, 0, proc.stdout)
            self.assertIn("tensors     %d" % (108 if part == "vae" else 32), proc.stdout)


if __name__ == "__main__":
    if torch is None:
        print("skipped: torch is not importable (the .pth fixtures are written with torch.save)")
        sys.exit(77)
    sys.exit(0 if unittest.main(argv=[sys.argv[0]], exit=False).result.wasSuccessful() else 1)
