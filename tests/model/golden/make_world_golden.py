#!/usr/bin/env python3
"""Golden files of the world model's PyTorch implementation (tools/world_model/wan_torch.py) for the
C++ tests (tests/model/test_text_encoder.cpp), so CI checks fastar against it without torch.

Writes, next to this script:
  world_tiny/{config.json, model.safetensors, vocab.json}  tiny random world model (bf16-exact weights,
                                                           exported by tools/world_model/export.py)
  world_tiny_io.safetensors                                F32/I32 inputs and outputs (fp32 on the CPU):
    te.caseN.ids [16] int32, te.caseN.output [16, 32]      text encoder (case0: a prompt; case1: pads inside)
    te.prompt_ids [n] int32                                ids of metadata "prompt" (tokenizer check)
    dit.latent [3, 6, 16, 12], dit.timesteps [6], dit.actions [6, 5], dit.context [16, 32] (= te.case0.output)
    dit.output [3, 6, 16, 12]                              frames at global positions 6..11, bidirectional
    dit.output_causal [3, 6, 16, 12]                       same, chunk-causal over chunks of 3 frames

Run: python3 tests/model/golden/make_world_golden.py   (CPU, deterministic)
"""

import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tools", "world_model"))
import export  # noqa: E402
import wan_torch  # noqa: E402
import world_data  # noqa: E402

VOCAB = ["<pad>", "<unk>", ".", "a", "red", "blue", "circle", "square", "bounces", "stays", "background", "dots"]
PROMPT = "A red circle bounces. a blue square stays . background dots stays."
FRAME_START = 6


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = wan_torch.world_small_config(
        dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_len=16, text_dim=32, latent_height=16, latent_width=12,
        text_encoder=dict(vocab_size=len(VOCAB), layers=2, heads=2, ffn_dim=48))
    model = wan_torch.random_init_(wan_torch.WorldModel(config), seed=3).eval()
    folder = os.path.join(HERE, "world_tiny")
    export.write_model_folder(model, VOCAB, folder)
    model, _ = export.load_model_folder(folder)  # exactly the stored (bf16) weights, in fp32

    io, gen = {}, torch.Generator().manual_seed(5)
    prompt_ids = world_data.tokenize(PROMPT, VOCAB)
    io["te.prompt_ids"] = torch.tensor(prompt_ids, dtype=torch.int32)
    case0 = prompt_ids + [0] * (16 - len(prompt_ids))
    case1 = [3, 4, 0, 6, 8, 0, 0, 2, 10, 11, 9] + [0] * 5  # padding inside the prompt too
    with torch.no_grad():
        for name, ids in (("case0", case0), ("case1", case1)):
            t = torch.tensor(ids)
            io[f"te.{name}.ids"] = t.to(torch.int32)
            io[f"te.{name}.output"] = model.text_encoder(t[None])[0]
        latent = torch.randn(3, 6, 16, 12, generator=gen)
        timesteps = torch.tensor([937.5, 937.5, 937.5, 0.0, 250.0, 612.25])
        actions = world_data.one_hot_actions(torch.tensor([0, 4, 4, 1, 3, 2]))
        context = io["te.case0.output"].clone()
        fpos = torch.arange(FRAME_START, FRAME_START + 6)[None]
        chunk = torch.arange(6) // 3
        causal = chunk[None, :] <= chunk[:, None]  # [query frame, key frame]
        io["dit.latent"], io["dit.timesteps"], io["dit.actions"], io["dit.context"] = latent, timesteps, actions, context
        io["dit.output"] = model.dit(latent[None], timesteps[None], context[None], actions[None], fpos)[0]
        io["dit.output_causal"] = model.dit(latent[None], timesteps[None], context[None], actions[None], fpos, causal)[0]
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(HERE, "world_tiny_io.safetensors"),
              metadata={"prompt": PROMPT, "frame_start": str(FRAME_START)})
    print("wrote", folder, "and world_tiny_io.safetensors;",
          json.dumps({k: list(v.shape) for k, v in io.items()}))


if __name__ == "__main__":
    main()
