#!/usr/bin/env python3
"""Tests of tools/convert_forcing_checkpoint.py on ARL² checkpoints, and of fastar loading the result.

Fixture: data/tiny_arl2.pt and data/tiny_arl2_expected.npz, generated once by make_tiny_arl2_pt.py
(which needs PyTorch): a tiny 3-layer Wan2.1 whose layers 0 and 2 are ARL² hybrid layers with GDN
LoRA and FFN LoRA (rank 4), as generator_ema (f32) and generator (bf16, A_log/dt_bias f32), plus
broken variants bad_unknown / bad_missing / bad_half_lora.

Run:  python3 tests/tools/test_convert_arl2.py [PATH/TO/fastar]
Without a fastar binary (argument or $FASTAR) the tests that run it are skipped.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from test_convert_forcing import read_safetensors, run_converter

HERE = os.path.dirname(os.path.realpath(__file__))
FIXTURE = os.path.join(HERE, "data", "tiny_arl2.pt")
EXPECTED = os.path.join(HERE, "data", "tiny_arl2_expected.npz")
FASTAR = os.environ.get("FASTAR", "")

HYBRID_NAMES = ["phi_q.weight", "phi_k.weight", "phi_v.weight", "a_proj.weight", "b_proj.weight",
                "gate_proj.weight", "A_log", "dt_bias"] + ["lora_%s_%s" % (p, h) for p in "qkv" for h in "AB"]
WAN_CONFIG = {
    "_class_name": "WanModel", "model_type": "t2v",
    "dim": 32, "ffn_dim": 64, "freq_dim": 256, "in_dim": 4, "out_dim": 4,
    "num_heads": 2, "num_layers": 3, "text_len": 512, "text_dim": 16,
    "patch_size": [1, 2, 2], "eps": 1e-06, "qk_norm": True, "cross_attn_norm": True,
}


def expected_arrays(prefix):
    npz = np.load(EXPECTED)
    return {k[len(prefix) + 1:]: npz[k] for k in npz.files if k.startswith(prefix + ":")}


def read_frames(out_dir):
    """The PNG files of a `fastar generate --out DIR` run, as raw bytes by name."""
    frames = {}
    for n in sorted(n for n in os.listdir(out_dir) if n.endswith(".png")):
        with open(os.path.join(out_dir, n), "rb") as f:
            frames[n] = f.read()
    return frames


class ConvertArl2Test(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fastar_convert_arl2_test_")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def outdir(self, name):
        return os.path.join(self.tmp, name)

    def convert(self, name, *args):
        out = self.outdir(name)
        if not os.path.isdir(out):
            rc, stdout, stderr = run_converter(FIXTURE, out, *args)
            self.assertEqual(rc, 0, stderr)
        return out

    def config(self, outdir):
        with open(os.path.join(outdir, "config.json")) as f:
            return json.load(f)

    def assert_tensors_equal(self, tensors, expected):
        self.assertEqual(sorted(tensors), sorted(expected))
        for name, want in expected.items():
            got_dtype, got = tensors[name]
            self.assertEqual(got_dtype, "F32" if want.dtype == np.float32 else "BF16", name)
            self.assertEqual(got.shape, want.shape, name)
            self.assertTrue(np.array_equal(got.view(np.uint8), np.ascontiguousarray(want).view(np.uint8)),
                            "tensor %s differs" % name)

    # ---- the converter --------------------------------------------------------------------------

    def test_auto_detects_hybrid_layers_and_passes_tensors_through(self):
        out = self.outdir("auto")
        rc, stdout, stderr = run_converter(FIXTURE, out)  # no --num-heads: read off a_proj
        self.assertEqual(rc, 0, stderr)
        self.assertIn("num_heads=2 (ARL² a_proj.weight)", stdout)
        self.assertIn("hybrid_layers=[0,2] (2 of 3)", stdout)
        self.assertIn("FFN LoRA on layers: [0,2]", stdout)
        self.assertIn("LoRA rank(s): 4", stdout)
        _, tensors = read_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"))
        expected = expected_arrays("generator_ema")
        # Names as fastar reads them (docs/arl2.md): ARL²'s own, only the prefixes stripped.
        for layer in (0, 2):
            for n in HYBRID_NAMES:
                self.assertIn("blocks.%d.self_attn.%s" % (layer, n), expected)
            for k in (0, 2):
                for n in ("linear.weight", "linear.bias", "lora_A", "lora_B"):
                    self.assertIn("blocks.%d.ffn.%d.%s" % (layer, k, n), expected)
                self.assertNotIn("blocks.%d.ffn.%d.weight" % (layer, k), expected)
        self.assertIn("blocks.1.ffn.0.weight", expected)
        self.assertNotIn("blocks.1.self_attn.A_log", expected)
        self.assertEqual(len(expected), 15 + 27 + 2 * (27 + 14 + 4))
        self.assert_tensors_equal(tensors, expected)
        self.assertEqual(self.config(out), dict(WAN_CONFIG, hybrid_layers=[0, 2], hybrid_lora_alpha=32.0))

    def test_generator_keep_mixed_dtypes(self):
        out = self.convert("gen_keep", "--key", "generator", "--hybrid-layers", "0,2")
        _, tensors = read_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"))
        expected = expected_arrays("generator")
        self.assertEqual(expected["blocks.0.self_attn.A_log"].dtype, np.float32)
        self.assertEqual(expected["blocks.0.self_attn.phi_q.weight"].dtype, np.uint16)
        self.assert_tensors_equal(tensors, expected)

    def test_hybrid_lora_alpha_option(self):
        out = self.convert("alpha16", "--hybrid-lora-alpha", "16")
        self.assertEqual(self.config(out)["hybrid_lora_alpha"], 16.0)
        rc, _, stderr = run_converter(FIXTURE, self.outdir("alpha0"), "--hybrid-lora-alpha", "0")
        self.assertEqual(rc, 2)
        self.assertIn("--hybrid-lora-alpha must be positive", stderr)

    def test_hybrid_layers_must_match_the_keys(self):
        for given in ("0-2", "0", "2,0,5", "none"):
            rc, _, stderr = run_converter(FIXTURE, self.outdir("mismatch"), "--hybrid-layers", given)
            self.assertEqual(rc, 2, given)
            self.assertIn("does not match the checkpoint", stderr)
            self.assertIn("on layers [0,2]", stderr)
            self.assertNotIn("Traceback", stderr)
        self.assertFalse(os.path.exists(self.outdir("mismatch")))
        rc, _, stderr = run_converter(FIXTURE, self.outdir("badlist"), "--hybrid-layers", "0-x")
        self.assertEqual(rc, 2)
        self.assertIn("cannot read '0-x'", stderr)
        rc, _, stderr = run_converter(FIXTURE, self.outdir("twice"), "--hybrid-layers", "0-2,2")
        self.assertEqual(rc, 2)
        self.assertIn("twice", stderr)

    def test_num_heads_must_match_a_proj(self):
        rc, _, stderr = run_converter(FIXTURE, self.outdir("heads"), "--num-heads", "4")
        self.assertEqual(rc, 2)
        self.assertIn("--num-heads 4 contradicts the checkpoint", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_unknown_key_is_refused_by_name(self):
        rc, _, stderr = run_converter(FIXTURE, self.outdir("unknown"), "--key", "bad_unknown")
        self.assertEqual(rc, 2)
        self.assertIn("blocks.0: unexpected self_attn.q_conv1d.weight (neither a Wan2.1 nor an ARL² tensor)", stderr)
        self.assertNotIn("Traceback", stderr)
        self.assertFalse(os.path.exists(os.path.join(self.outdir("unknown"), "config.json")))

    def test_missing_hybrid_tensor(self):
        rc, _, stderr = run_converter(FIXTURE, self.outdir("missing"), "--key", "bad_missing")
        self.assertEqual(rc, 2)
        self.assertIn("blocks.2: missing self_attn.A_log", stderr)
        self.assertNotIn("Traceback", stderr)

    def test_half_lora_pair(self):
        rc, _, stderr = run_converter(FIXTURE, self.outdir("half"), "--key", "bad_half_lora")
        self.assertEqual(rc, 2)
        self.assertIn("blocks.0: missing self_attn.lora_k_B", stderr)
        self.assertNotIn("Traceback", stderr)

    # ---- fastar on the converted model ----------------------------------------------------------

    def fastar(self, *args):
        if not FASTAR:
            self.skipTest("no fastar binary given")
        proc = subprocess.run([FASTAR] + [str(a) for a in args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=240)
        return proc.returncode, proc.stdout

    def generate(self, model, name):
        out = self.outdir(name)
        rc, log = self.fastar("generate", "--model", model, "--frames", 3, "--chunk-frames", 1,
                              "--latent-size", "8x12", "--policy", "arl2", "--threads", 1, "--out", out)
        self.assertEqual(rc, 0, log)
        self.assertIn("memory arl2 (2 of 3 layers hybrid", log)
        frames = read_frames(out)
        self.assertEqual(len(frames), 3, log)
        return frames

    def test_fastar_inspect_lists_hybrid_layers(self):
        rc, log = self.fastar("inspect", self.convert("auto_f32"))
        self.assertEqual(rc, 0, log)
        self.assertIn("hybrid layers    0,2 (2 of 3, ARL² gated delta-rule memory; LoRA alpha 32)", log)
        self.assertIn("all 112 tensors present", log)
        rc, log = self.fastar("inspect", self.convert("gen_keep", "--key", "generator", "--hybrid-layers", "0,2"))
        self.assertEqual(rc, 0, log)
        self.assertIn("hybrid layers    0,2", log)

    def test_fastar_generate_runs_on_converted_weights(self):
        # 3 chunks of 1 frame: chunks 2 and 3 read the gated delta-rule state chunk 1 committed.
        ema = self.generate(self.convert("auto_f32"), "gen_ema")
        # generator is generator_ema in bf16 (values exact in bf16) with A_log/dt_bias in f32:
        # after fastar widens to f32 the models are identical, so the frames must be too.
        self.assertEqual(ema, self.generate(self.convert("gen_keep", "--key", "generator", "--hybrid-layers", "0,2"),
                                            "gen_bf16"))
        # The LoRA pairs are merged with scale alpha / rank: another alpha is another model.
        self.assertNotEqual(ema, self.generate(self.convert("alpha16", "--hybrid-lora-alpha", "16"), "gen_alpha16"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        FASTAR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
