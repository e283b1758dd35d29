#!/usr/bin/env python3
"""A Wan2.1-T2V-1.3B folder of the diffusers layout with random weights at the real shapes, for the
GPU benchmarks of prompt → MP4 (issue 16): what users download, less the trained values.

    python3 tools/make_random_wan_folder.py OUT [--no-umt5]

OUT/transformer/config.json   the 1.3B DiT's config only (fastar generate --random-weights S fills the weights)
OUT/text_encoder/             transformers' UMT5EncoderModel at the umT5-XXL config, random, bf16 (11.4 GB)
OUT/tokenizer/                the small test SentencePiece model of tests/model/golden/umt5_tiny (ids < 900;
                              the real one is only a bigger vocabulary: the encoder's cost does not depend on it)
The decoders' random weights (vae/ at the Wan2.1 config, taew2_1.safetensors at the published widths) are
written by `cuda_pipeline_check --bench OUT` itself, from fastar's own random-weight builders.

Needs torch and transformers (both on the device).
Random values: every parameter normal(0, 1/sqrt(fan_in)) or the libraries' own initialisation, so that
activations stay finite; the speed of a forward does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def umt5_xxl_config():
    from transformers import UMT5Config

    return UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_encoder_decoder=False,
                      tie_word_embeddings=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--no-umt5", action="store_true", help="skip the 11.4 GB text encoder")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    (out / "transformer").mkdir(exist_ok=True)
    shutil.copy(ROOT / "configs" / "wan2.1-t2v-1.3b" / "config.json", out / "transformer" / "config.json")
    (out / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}) + "\n")

    if not args.no_umt5:
        from transformers import UMT5EncoderModel

        with torch.device(device):
            encoder = UMT5EncoderModel(umt5_xxl_config()).to(torch.bfloat16)
        encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
        del encoder
        shutil.copytree(ROOT / "tests" / "model" / "golden" / "umt5_tiny" / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
        print(f"text_encoder/ and tokenizer/ written", flush=True)

    print(f"folder {out}: the decoders (vae/, taew2_1.safetensors) are written with random weights by "
          "cuda_pipeline_check --bench", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
