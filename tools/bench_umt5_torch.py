#!/usr/bin/env python3
"""transformers' UMT5EncoderModel at the umT5-XXL config, as the baseline of `cuda_umt5_check --bench`.

Same shapes and method as the C++ bench (pipeline-spec.md §4.1: 24 layers, d_model 4096, 64 heads x 64,
d_ff 10240, vocab 256384): random weights, bf16, batch 1, n real tokens and no padding (fastar encodes only
the real tokens, §4.4), 512 and 128 tokens; ms per encode = mean of 20 back-to-back forwards between two
torch.cuda.Event records, after 3 warm-up forwards; TFLOP/s counts the linear layers and the two attention
products. Prints the same table rows as the C++ bench. Two rows per length:
  - everything bf16 (the module cast with .to(bfloat16));
  - `wo` kept in fp32, as from_pretrained(torch_dtype=bfloat16) leaves it when the class lists "wo" in
    _keep_in_fp32_modules (transformers' UMT5 does; diffusers' Wan pipelines load it that way).
Weights are generated on the GPU (no host copy of the 11 GB model).

    python3 tools/bench_umt5_torch.py                        # on the GPU machine
    python3 tools/bench_umt5_torch.py --attn eager           # transformers' eager attention instead of its default
    python3 tools/bench_umt5_torch.py --tiny --device cpu    # smoke test of the script itself
"""
import argparse
import sys

import torch


def xxl_config(UMT5Config, tiny):
    dims = dict(vocab_size=256384, d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=24)
    if tiny:
        dims = dict(vocab_size=1000, d_model=64, d_kv=16, num_heads=4, d_ff=96, num_layers=2)
    return UMT5Config(**dims, num_decoder_layers=dims["num_layers"], relative_attention_num_buckets=32,
                      relative_attention_max_distance=128, feed_forward_proj="gated-gelu", dropout_rate=0.0,
                      layer_norm_epsilon=1e-6, is_encoder_decoder=False, use_cache=False)


@torch.no_grad()
def randomise(model):
    """T5-like scales so activations stay finite: linears N(0, 1/in_features), norms 1, embedding and bias N(0, 1)."""
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(0)
    for name, p in model.named_parameters():
        if "layer_norm" in name:
            p.fill_(1.0)
        elif p.dim() == 2 and ("relative_attention_bias" in name or "shared" in name or "embed_tokens" in name):
            p.copy_(torch.randn(p.shape, generator=gen, device=p.device, dtype=torch.float32))
        else:
            p.copy_(torch.randn(p.shape, generator=gen, device=p.device, dtype=torch.float32) * p.shape[1] ** -0.5)


def mean_ms(fn, device, warmup, iters):
    import time
    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / iters
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) * 1e3 / iters


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="512,128", help="comma-separated real-token counts (default 512,128)")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer d_model 64 config (smoke test)")
    parser.add_argument("--attn", default=None, help="attn_implementation (eager, sdpa, ...); default: transformers' own")
    args = parser.parse_args()
    try:
        import transformers
        from transformers import UMT5Config, UMT5EncoderModel
    except ImportError as error:
        print(f"bench_umt5_torch: transformers is needed ({error}); pip install transformers", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_umt5_torch: no CUDA device (use --device cpu --tiny for a smoke test)", file=sys.stderr)
        return 2
    device = args.device
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"device: {name}  torch {torch.__version__}  transformers {transformers.__version__}")

    config = xxl_config(UMT5Config, args.tiny)
    if args.attn:
        config._attn_implementation = args.attn
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # parameters are created in bf16 directly: no fp32 copy
    with torch.device(device):
        model = UMT5EncoderModel(config)
    torch.set_default_dtype(previous)
    model = model.to(device=device, dtype=torch.bfloat16).eval()
    randomise(model)
    params = sum(p.numel() for p in model.parameters())
    attention = getattr(model.config, "_attn_implementation", None) or "eager"
    print(f"{'umT5-tiny' if args.tiny else 'umT5-XXL'}: {params / 1e9:.3f} G parameters, bf16, attention {attention}")

    keep_fp32 = list(getattr(UMT5EncoderModel, "_keep_in_fp32_modules", None) or [])
    variants = [("bf16", None)]
    if "wo" in keep_fp32:
        variants.append(("bf16, wo fp32 as from_pretrained", "wo"))

    c = config
    inner = c.num_heads * c.d_kv
    gen = torch.Generator(device=device).manual_seed(5)
    model_name = "umT5-tiny encode" if args.tiny else "umT5-XXL encode"
    print("| model | implementation | tokens | ms per encode | TFLOP/s |\n|---|---|---|---|---|")
    for label, fp32_module in variants:
        if fp32_module:
            for block in model.encoder.block:
                block.layer[-1].DenseReluDense.wo.float()
        for n in (int(t) for t in args.tokens.split(",")):
            ids = torch.randint(0, c.vocab_size, (1, n), generator=gen, device=device)
            mask = torch.ones(1, n, dtype=torch.long, device=device)
            with torch.inference_mode():
                out = model(input_ids=ids, attention_mask=mask).last_hidden_state
                if not torch.isfinite(out.float()).all():
                    print(f"FAIL non-finite output at {n} tokens ({label})")
                ms = mean_ms(lambda: model(input_ids=ids, attention_mask=mask), device, args.warmup, args.iters)
            flops = c.num_layers * (2.0 * n * (4 * c.d_model * inner + 3 * c.d_model * c.d_ff) + 4.0 * n * n * inner)
            impl = f"transformers UMT5EncoderModel ({label}, {attention})"
            print(f"| {model_name} | {impl} | {n} | {ms:.3f} | {flops / (ms * 1e-3) / 1e12:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
