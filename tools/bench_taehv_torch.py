#!/usr/bin/env python3
"""PyTorch baseline for fastar's CUDA tiny decoder (TAEHV taew2_1; pipeline-spec.md §3): the independent
reference tools/pipeline_golden/taehv_reference.py, run in bf16 on the GPU with random weights at the
published widths (256, 128, 64, 64), streaming chunk after chunk like the C++ decoder, and timed with the
same figures as `cuda_taehv_check --bench`:

    python3 tools/bench_taehv_torch.py [--chunks 8] [--chunk-latents 3] [--height 60 --width 104]
                                       [--contiguous] [--compile]

Streaming: the reference decodes a whole clip with each MemBlock's "past" the input shifted one step;
here each chunk's MemBlocks take past = [the block's last input of the previous chunk, x_0 … x_{n−2}]
(§3.3), which gives the same frames. Per chunk: soft clamp, decoder, drop the stream's first 3 raw
frames, clamp to [0, 1], round to uint8 [frames, H, W, 3] on the GPU (what the C++ decode_chunk returns).
Activations are channels_last unless --contiguous; cuDNN autotuning is on (cudnn.benchmark).
"""

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline_golden"))
import taehv_reference as ref  # noqa: E402


def random_params(widths, device, dtype, generator):
    """weights normal(0, 1/sqrt(fan_in)), biases normal(0, 0.1), as fastar's random_taehv_decoder_weights."""
    params = {}
    for name, shape in ref.decoder_shapes(widths).items():
        noise = torch.randn(shape, generator=generator)
        value = 0.1 * noise if name.endswith("bias") else noise / (shape[1] * shape[2] * shape[3]) ** 0.5
        params[name] = value.to(device=device, dtype=dtype)
    return params


class StreamingDecoder:
    """ref.decode_raw with one frame of state per MemBlock (9 slots), chunk after chunk."""

    def __init__(self, params, memory_format):
        self.params = params
        self.memory_format = memory_format
        self.state = {}  # decoder index -> [1, C, H, W]
        self.raw_frames = 0

    def mem_block(self, x, index):
        past = self.state.get(index)
        if past is None:
            past = torch.zeros_like(x[:1])
        self.state[index] = x[-1:]
        past = torch.cat([past, x[:-1]], dim=0)
        p = f"decoder.{index}.conv."
        h = F.relu(ref.conv3x3(torch.cat([x, past], dim=1), self.params[p + "0.weight"], self.params[p + "0.bias"]))
        h = F.relu(ref.conv3x3(h, self.params[p + "2.weight"], self.params[p + "2.bias"]))
        h = ref.conv3x3(h, self.params[p + "4.weight"], self.params[p + "4.bias"])
        return F.relu(h + x)

    def decode_raw(self, latent):
        """latent [T, 16, h, w] -> raw [4T, 3, 8h, 8w]."""
        x = (torch.tanh(latent / 3) * 3).contiguous(memory_format=self.memory_format)
        x = F.relu(ref.conv3x3(x, self.params["decoder.1.weight"], self.params["decoder.1.bias"]))
        for s in range(3):
            blocks, _, tgrow, conv = ref.stage_indices(s)
            for b in blocks:
                x = self.mem_block(x, b)
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = ref.t_grow(x, self.params[f"decoder.{tgrow}.conv.weight"], ref.TIME_STRIDES[s])
            x = x.contiguous(memory_format=self.memory_format)
            x = ref.conv3x3(x, self.params[f"decoder.{conv}.weight"])
        return ref.conv3x3(F.relu(x), self.params["decoder.22.weight"], self.params["decoder.22.bias"])

    def decode_chunk(self, latent_normalised):
        """[16, T, h, w] (fastar's layout) -> uint8 [T', 8h, 8w, 3]."""
        raw = self.decode_raw(latent_normalised.permute(1, 0, 2, 3))
        trim = max(0, min(ref.FRAMES_TO_TRIM - self.raw_frames, raw.shape[0]))
        self.raw_frames += raw.shape[0]
        frames = raw[trim:].clamp(0, 1).float()
        return torch.round(frames * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--chunk-latents", type=int, default=3)
    parser.add_argument("--height", type=int, default=60)
    parser.add_argument("--width", type=int, default=104)
    parser.add_argument("--contiguous", action="store_true", help="NCHW activations instead of channels_last")
    parser.add_argument("--compile", action="store_true", help="torch.compile the per-chunk decode")
    args = parser.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    torch.backends.cudnn.benchmark = True
    device, dtype = torch.device("cuda"), torch.bfloat16
    memory_format = torch.contiguous_format if args.contiguous else torch.channels_last
    generator = torch.Generator().manual_seed(1)
    params = random_params(ref.PUBLISHED_WIDTHS, device, dtype, generator)
    if not args.contiguous:
        params = {k: (v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v) for k, v in params.items()}
    n, h, w = args.chunk_latents, args.height, args.width
    latents = [torch.randn(16, n, h, w, generator=generator).to(device) for _ in range(args.chunks)]  # fp32, as the DiT's
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name()}, bf16, "
          f"{'NCHW' if args.contiguous else 'channels_last'}{', torch.compile' if args.compile else ''}")
    print(f"TAEHV decoder (taew2_1 widths 256/128/64/64, random weights), latents {h}x{w} -> {8 * h}x{8 * w}, "
          f"chunks of {n} latents, {args.chunks} chunks")

    decoder = StreamingDecoder(params, memory_format)
    step = decoder.decode_chunk
    if args.compile:
        step = torch.compile(decoder.decode_chunk, dynamic=False)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ms, frames = [], 0
    with torch.no_grad():
        for c in range(args.chunks):
            start.record()
            out = step(latents[c].to(dtype))
            end.record()
            end.synchronize()
            ms.append(start.elapsed_time(end))
            if c > 0:
                frames = out.shape[0]
        # Back to back: a new stream, chunk 0 first, then the rest without synchronising.
        decoder.state, decoder.raw_frames = {}, 0
        step(latents[0].to(dtype))
        torch.cuda.synchronize()
        start.record()
        frames_b2b = sum(step(latents[c].to(dtype)).shape[0] for c in range(1, args.chunks))
        end.record()
        end.synchronize()
        total = start.elapsed_time(end)
    steady = ms[1:]
    mean = sum(steady) / len(steady)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    state = sum(t.numel() * t.element_size() for t in decoder.state.values()) / 2**20
    print("| latents per pass | first chunk ms | ms per chunk (mean / min, chunks 2..) | video frames/s | "
          "back-to-back frames/s | GPU memory MiB (peak allocated) | state MiB |")
    print("|---|---|---|---|---|---|---|")
    print(f"| whole chunk ({n}) | {ms[0]:.1f} | {mean:.2f} / {min(steady):.2f} | {frames * 1000 / mean:.0f} | "
          f"{frames_b2b * 1000 / total:.0f} | {peak:.0f} | {state:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
