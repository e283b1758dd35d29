#!/usr/bin/env python3
"""Tests for tools/convert_forcing_checkpoint.py (needs only Python 3 + numpy).

Fixture: data/tiny_forcing.pt and data/tiny_forcing_expected.npz, generated
once by make_tiny_forcing_pt.py (which needs PyTorch).

Run:  python3 tests/tools/test_convert_forcing.py
"""

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.realpath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONVERTER = os.path.join(ROOT, "tools", "convert_forcing_checkpoint.py")
FIXTURE = os.path.join(HERE, "data", "tiny_forcing.pt")
EXPECTED = os.path.join(HERE, "data", "tiny_forcing_expected.npz")

# Independent of the converter: safetensors dtype -> numpy dtype (bf16 as raw bits).
NP_DTYPES = {"F32": np.dtype("<f4"), "BF16": np.dtype("<u2"), "F16": np.dtype("<f2"),
             "F64": np.dtype("<f8"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4")}


def read_safetensors(path):
    """Minimal safetensors reader: returns (metadata, {name: (dtype, array)})."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    assert hlen % 8 == 0, "header length %d not a multiple of 8" % hlen
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    data = blob[8 + hlen:]
    meta = header.pop("__metadata__", {})
    out = {}
    end_max = 0
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = NP_DTYPES[info["dtype"]]
        arr = np.frombuffer(data[b:e], dtype=dt).reshape(info["shape"])
        out[name] = (info["dtype"], arr)
        end_max = max(end_max, e)
    assert end_max == len(data), "trailing bytes after tensor data"
    return meta, out


def run_converter(*args):
    proc = subprocess.run([sys.executable, CONVERTER] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def expected_arrays(prefix):
    npz = np.load(EXPECTED)
    return {k[len(prefix) + 1:]: npz[k] for k in npz.files if k.startswith(prefix + ":")}


def make_zip_checkpoint(path, pkl_bytes, root="archive"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(root + "/data.pkl", pkl_bytes)
        z.writestr(root + "/byteorder", "little")


class ConvertForcingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fastar_convert_test_")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def outdir(self, name):
        return os.path.join(self.tmp, name)

    def assert_tensors_equal(self, tensors, expected, dtype):
        self.assertEqual(sorted(tensors), sorted(expected))
        for name, want in expected.items():
            got_dtype, got = tensors[name]
            self.assertEqual(got_dtype, dtype, name)
            self.assertEqual(got.shape, want.shape, name)
            # Bit-exact comparison (covers NaN/-0/inf patterns).
            self.assertTrue(np.array_equal(got.view(np.uint8), np.ascontiguousarray(want).view(np.uint8)),
                            "tensor %s differs" % name)

    def check_config(self, outdir):
        with open(os.path.join(outdir, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg, {
            "_class_name": "WanModel", "model_type": "t2v",
            "dim": 32, "ffn_dim": 64, "freq_dim": 256, "in_dim": 4, "out_dim": 4,
            "num_heads": 2, "num_layers": 2, "text_len": 512, "text_dim": 16,
            "patch_size": [1, 2, 2], "eps": 1e-06, "qk_norm": True, "cross_attn_norm": True,
        })

    def test_auto_key_exports_generator_ema_f32(self):
        out = self.outdir("auto")
        rc, stdout, stderr = run_converter(FIXTURE, out, "--num-heads", "2")
        self.assertEqual(rc, 0, stderr)
        self.assertIn("generator_ema", stdout)
        self.assertIn("num_heads=2", stdout)
        self.assertIn("dropped 1 non-tensor entries", stdout)
        self.assertEqual(sorted(os.listdir(out)),
                         ["config.json", "diffusion_pytorch_model.safetensors"])
        meta, tensors = read_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"))
        self.assertEqual(meta, {"format": "pt", "source": "tiny_forcing.pt",
                                "converted_by": "fastar convert_forcing_checkpoint"})
        expected = expected_arrays("generator_ema")
        self.assertEqual(len(expected), 15 + 2 * 27)
        self.assert_tensors_equal(tensors, expected, "F32")
        self.check_config(out)

    def test_explicit_f32(self):
        out = self.outdir("ema_f32")
        rc, _, stderr = run_converter(FIXTURE, out, "--key", "generator_ema",
                                      "--dtype", "f32", "--num-heads", "2")
        self.assertEqual(rc, 0, stderr)
        _, tensors = read_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"))
        self.assert_tensors_equal(tensors, expected_arrays("generator_ema"), "F32")

    def test_generator_keep_bf16(self):
        out = self.outdir("gen_keep")
        rc, stdout, stderr = run_converter(FIXTURE, out, "--key", "generator",
                                           "--dtype", "keep", "--num-heads", "2")
        self.assertEqual(rc, 0, stderr)
        self.assertIn("BF16", stdout)
        _, tensors = read_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"))
        self.assert_tensors_equal(tensors, expected_arrays("generator"), "BF16")
        self.check_config(out)

    def test_f32_to_bf16_rounding_matches_torch(self):
        # generator in the fixture is generator_ema cast to bf16 by PyTorch.
        out = self.outdir("ema_bf16")
        rc, _, stderr = run_converter(FIXTURE, out, "--dtype", "bf16", "--num-heads", "2")
        self.assertEqual(rc, 0, stderr)
        _, tensors = read_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"))
        self.assert_tensors_equal(tensors, expected_arrays("generator"), "BF16")

    def test_bf16_to_f32_widening(self):
        out = self.outdir("gen_f32")
        rc, _, stderr = run_converter(FIXTURE, out, "--key", "generator",
                                      "--dtype", "f32", "--num-heads", "2")
        self.assertEqual(rc, 0, stderr)
        _, tensors = read_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"))
        widened = {k: (v.astype(np.uint32) << 16).view(np.float32)
                   for k, v in expected_arrays("generator").items()}
        self.assert_tensors_equal(tensors, widened, "F32")

    def test_default_num_heads_requires_multiple_of_128(self):
        rc, _, stderr = run_converter(FIXTURE, self.outdir("heads"))
        self.assertEqual(rc, 2)
        self.assertIn("--num-heads", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_critic_is_rejected_with_layout_error(self):
        rc, _, stderr = run_converter(FIXTURE, self.outdir("critic"), "--key", "critic",
                                      "--num-heads", "2")
        self.assertEqual(rc, 2)
        self.assertIn("missing tensors", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_missing_key_lists_available(self):
        rc, _, stderr = run_converter(FIXTURE, self.outdir("nokey"), "--key", "nope")
        self.assertEqual(rc, 2)
        self.assertIn("'generator_ema'", stderr)
        self.assertIn("'critic'", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_auto_without_generator_lists_available(self):
        path = os.path.join(self.tmp, "nogen.pt")
        make_zip_checkpoint(path, pickle.dumps({"critic": {}, "step": 3}, protocol=2))
        rc, _, stderr = run_converter(path, self.outdir("nogen"))
        self.assertEqual(rc, 2)
        self.assertIn("'critic'", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_malicious_pickle_is_refused(self):
        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned > " + os.path.join(self_tmp, "pwned"),))

        self_tmp = self.tmp
        payload = pickle.dumps({"generator_ema": Evil()}, protocol=2)
        self.assertIn(b"system", payload)
        path = os.path.join(self.tmp, "evil.pt")
        make_zip_checkpoint(path, payload)
        out = self.outdir("evil")
        rc, _, stderr = run_converter(path, out)
        self.assertEqual(rc, 2)
        self.assertIn("disallowed global", stderr)
        # pickle records os.system under its defining module (posix / nt).
        self.assertRegex(stderr, r"'(os|posix|nt)\.system'")
        self.assertNotIn("Traceback", stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "pwned")))
        self.assertFalse(os.path.exists(os.path.join(out, "diffusion_pytorch_model.safetensors")))

    def test_builtins_eval_is_refused(self):
        payload = (b"\x80\x02cbuiltins\neval\nX\x0b\x00\x00\x00print('hi')\x85R.")
        path = os.path.join(self.tmp, "eval.pt")
        make_zip_checkpoint(path, payload)
        rc, _, stderr = run_converter(path, self.outdir("eval"))
        self.assertEqual(rc, 2)
        self.assertIn("'builtins.eval'", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_out_of_bounds_view_is_refused(self):
        # A tensor view larger than its storage must not read foreign memory.
        # Hand-written protocol-2 opcodes for
        #   {"generator_ema": {"patch_embedding.weight": _rebuild_tensor_v2(
        #       <storage FloatStorage key "0" numel 4>, 0, (1000,), (1,), False, OrderedDict())}}
        pkl = (
            b"\x80\x02}X\x0d\x00\x00\x00generator_ema}X\x16\x00\x00\x00patch_embedding.weight"
            b"ctorch._utils\n_rebuild_tensor_v2\n("
            b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
            b"K\x00M\xe8\x03\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR"
            b"ss."
        )
        path = os.path.join(self.tmp, "oob.pt")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", pkl)
            z.writestr("archive/data/0", np.zeros(4, np.float32).tobytes())
        rc, _, stderr = run_converter(path, self.outdir("oob"), "--num-heads", "2")
        self.assertEqual(rc, 2)
        self.assertIn("exceeds its storage", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_not_a_zip(self):
        path = os.path.join(self.tmp, "not_a_zip.pt")
        with open(path, "wb") as f:
            f.write(pickle.dumps({"generator": {}}))
        rc, stdout, stderr = run_converter(path, self.outdir("nozip"))
        self.assertEqual(rc, 2)
        self.assertIn("not a zip archive", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_zip_without_data_pkl(self):
        path = os.path.join(self.tmp, "nopkl.pt")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/other.txt", "x")
        rc, _, stderr = run_converter(path, self.outdir("nopkl"))
        self.assertEqual(rc, 2)
        self.assertIn("data.pkl", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_missing_input(self):
        rc, _, stderr = run_converter(os.path.join(self.tmp, "does_not_exist.pt"),
                                      self.outdir("missing"))
        self.assertEqual(rc, 2)
        self.assertIn("not found", stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
