#!/usr/bin/env python3
"""The PyTorch baseline for the Wan2.1 VAE decoder timings of `cuda_wan_vae_check --bench`.

diffusers' AutoencoderKLWan with the real Wan2.1 config (base_dim 96, random weights), bf16 on CUDA,
decoding the same stream: a first chunk of 3 latents, then steady chunks of 3 latents, 480x832
(latent 60x104), and prints the same figures (ms per chunk, video frames/s, peak GPU memory).

Streaming (default, --mode stream): what AutoencoderKLWan._decode does for a whole clip (post_quant_conv,
then the decoder latent by latent with its feature cache `_feat_map`), but chunk by chunk, keeping
`_feat_map` between chunks: the cache is cleared once per video, so the frames equal a whole-clip decode
(pipeline-spec.md §2.5). Each chunk's output is clamped and converted to uint8 on the GPU, as fastar's
decode_chunk does. --mode whole times vae.decode() of the whole clip (first + steady chunks) once and
reports its per-frame rate instead.

Needs torch with CUDA and diffusers (pip install diffusers). Usage:
  python3 tools/bench_vae_torch.py [--chunks 6] [--memory-format channels_last] [--mode whole]
"""
import argparse
import inspect
import statistics
import time

import torch


def make_vae(memory_format):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                           temperal_downsample=[False, True, True], dropout=0.0)
    with torch.no_grad():  # random weights everywhere, norms included (the default init leaves gamma = 1)
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
    vae = vae.to(device="cuda", dtype=torch.bfloat16).eval()
    if memory_format == "channels_last":
        vae = vae.to(memory_format=torch.channels_last_3d)
    return vae


class StreamingDecoder:
    """AutoencoderKLWan's decoder, chunk after chunk, with its feature cache kept between chunks."""

    def __init__(self, vae):
        self.vae = vae
        self.takes_first_chunk = "first_chunk" in inspect.signature(vae.decoder.forward).parameters
        self.reset()

    def reset(self):
        self.vae.clear_cache()
        self.latents_decoded = 0

    def decode_chunk(self, z):  # z [1, 16, T, h, w] denormalised -> uint8 [T', 8h, 8w, 3]
        vae = self.vae
        x = vae.post_quant_conv(z)
        outs = []
        for i in range(z.shape[2]):
            vae._conv_idx = [0]
            kwargs = {}
            if self.takes_first_chunk:
                kwargs["first_chunk"] = self.latents_decoded == 0
            outs.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, **kwargs))
            self.latents_decoded += 1
        video = torch.cat(outs, 2).clamp(-1, 1)[0]  # [3, T', H, W]
        return (video.float() * 0.5 + 0.5).mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--chunk-latents", type=int, default=3)
    ap.add_argument("--chunks", type=int, default=6, help="chunks timed: the first + steady ones (default 6)")
    ap.add_argument("--memory-format", choices=["default", "channels_last"], default="default")
    ap.add_argument("--mode", choices=["stream", "whole"], default="stream")
    args = ap.parse_args()

    torch.backends.cudnn.benchmark = True
    h, w, n = args.height // 8, args.width // 8, args.chunk_latents
    vae = make_vae(args.memory_format)
    gen = torch.Generator(device="cuda").manual_seed(17)
    latents = [torch.randn(1, 16, n, h, w, device="cuda", generator=gen, dtype=torch.bfloat16)
               for _ in range(args.chunks)]
    print(f"diffusers AutoencoderKLWan (random weights, base_dim 96), bf16, {args.memory_format} memory format, "
          f"{args.height}x{args.width}, chunks of {n} latents, {torch.cuda.get_device_name()}, torch {torch.__version__}")

    with torch.inference_mode():
        if args.mode == "whole":
            clip = torch.cat(latents, 2)
            vae.decode(latents[0])  # warm-up (cudnn.benchmark's search)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            video = vae.decode(clip).sample
            torch.cuda.synchronize()
            ms = (time.perf_counter() - t0) * 1000
            frames = video.shape[2]
            print("| mode | latents | frames | ms | video frames/s | peak GPU GiB (allocated / reserved) |")
            print("|---|---|---|---|---|---|")
            print(f"| whole clip | {clip.shape[2]} | {frames} | {ms:.1f} | {frames / (ms / 1000):.1f} | "
                  f"{torch.cuda.max_memory_allocated() / 2**30:.2f} / {torch.cuda.max_memory_reserved() / 2**30:.2f} |")
            return

        stream = StreamingDecoder(vae)
        for k in range(3):  # warm-up stream: the first and the steady chunk shapes
            stream.decode_chunk(latents[k])
        torch.cuda.synchronize()
        stream.reset()
        torch.cuda.reset_peak_memory_stats()
        first_ms, first_frames, steady = 0.0, 0, []
        for k in range(args.chunks):
            t0 = time.perf_counter()
            frames = stream.decode_chunk(latents[k])
            torch.cuda.synchronize()
            ms = (time.perf_counter() - t0) * 1000
            if k == 0:
                first_ms, first_frames = ms, frames.shape[0]
            else:
                steady.append(ms)
        median = statistics.median(steady)
        print(f"| mode | first chunk (ms, frames) | steady chunk ms (median of {len(steady)}) | video frames/s | "
              "peak GPU GiB (allocated / reserved) |")
        print("|---|---|---|---|---|")
        print(f"| stream, feature cache kept | {first_ms:.1f} ms, {first_frames} | {median:.1f} (min {min(steady):.1f}, "
              f"max {max(steady):.1f}) | {4 * n / (median / 1000):.1f} | "
              f"{torch.cuda.max_memory_allocated() / 2**30:.2f} / {torch.cuda.max_memory_reserved() / 2**30:.2f} |")


if __name__ == "__main__":
    main()
