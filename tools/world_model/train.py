#!/usr/bin/env python3
"""Trains fastar's small world model (Wan2.1 DiT + text encoder + actions) on the procedural world.

Flow matching, block-causal teacher forcing (see tools/world_model/README.md for the why):

  clip of L frames = K chunks of 3;  sequence = [clean chunks 0..K−2 ; noisy chunks 0..K−1]
  noisy chunk i: x_t = (1−σ_i)·x0 + σ_i·ε, t = 1000·σ_i (one σ per chunk); target v = ε − x0
  clean frames: t = context_noise (0), optionally lightly corrupted (robustness to generated context)
  mask: clean chunk j sees clean chunks [j−w, j]; noisy chunk i sees clean [i−w, i−1] and itself
        (w = window in chunks, 0 = all; drawn per step from --window-chunks) — exactly the K/V the
        rollout's dense or window memory shows the model
  RoPE time index = global frame: a random offset per sample (--pos-offset-max) so any position is seen

bf16 autocast (CUDA), AdamW, EMA, warmup-stable-decay LR over the wall budget, checkpoints every
--ckpt-minutes, resumable (--resume). Writes OUT/ckpt.pt and OUT/log.tsv; --export DIR writes the
fastar model folder at the end (same as export.py).

Tiny CPU smoke run:
  python3 tools/world_model/train.py --dataset D.safetensors --out /tmp/wm --tiny --max-steps 20
"""

import argparse
import copy
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wan_torch  # noqa: E402
import world_data  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--dataset", help="a `fastar world dataset` file; generated (into OUT/dataset.safetensors) if absent")
    d.add_argument("--fastar", default="build-dev/fastar", help="fastar binary used to generate the dataset")
    d.add_argument("--clips", type=int, default=2000, help="clips to generate")
    d.add_argument("--data-frames", type=int, default=24, help="frames per generated clip")
    d.add_argument("--data-seed", type=int, default=1)
    d.add_argument("--val-clips", type=int, default=32, help="last clips held out for the validation loss")
    m = p.add_argument_group("model")
    m.add_argument("--tiny", action="store_true", help="tiny config for CPU smoke tests (dim 64, 2 layers)")
    m.add_argument("--dim", type=int, default=256)
    m.add_argument("--layers", type=int, default=8)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--ffn", type=int, default=1024)
    m.add_argument("--text-dim", type=int, default=128)
    m.add_argument("--text-layers", type=int, default=2)
    t = p.add_argument_group("training")
    t.add_argument("--out", default="runs/world-small", help="checkpoint and log folder")
    t.add_argument("--minutes", type=float, default=6.0, help="wall budget of the training loop in this run")
    t.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = budget only)")
    t.add_argument("--resume", help="checkpoint to continue from (model, EMA, optimizer, step)")
    t.add_argument("--init-from", help="exported model folder (e.g. models/world-small) to start from: its config "
                   "(fastar_defaults included) and weights; fresh optimizer, step 0. For continuing on a machine "
                   "that no longer has the checkpoint")
    t.add_argument("--ckpt-minutes", type=float, default=2.0)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=4e-4)
    t.add_argument("--warmup-steps", type=int, default=150)
    t.add_argument("--decay-frac", type=float, default=0.25, help="final fraction of the budget with linear LR decay")
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--ema", type=float, default=0.998)
    t.add_argument("--clip-frames", type=int, default=15, help="frames per training clip (multiple of --chunk-frames)")
    t.add_argument("--chunk-frames", type=int, default=3)
    t.add_argument("--window-chunks", default="0,3", help="attention windows (chunks) drawn per step; 0 = all")
    t.add_argument("--context-noise", type=float, default=0.0, help="timestep of the clean context (rollout's)")
    t.add_argument("--context-aug", type=float, default=0.08,
                   help="max std of Gaussian corruption of clean context frames (half the samples)")
    t.add_argument("--prompt-dropout", type=float, default=0.05, help="fraction of samples trained with no prompt")
    t.add_argument("--pos-offset-max", type=int, default=4096, help="random RoPE start frame in [0, this]")
    t.add_argument("--rollout-steps", default="1000,750,500,250", help="the rollout's step list, trained on exactly")
    t.add_argument("--rollout-shift", type=float, default=5.0)
    t.add_argument("--rollout-step-frac", type=float, default=0.4, help="fraction of chunks at a rollout timestep")
    t.add_argument("--sigma-shift", type=float, default=3.0, help="shift of the continuous σ distribution")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--log-every", type=int, default=25)
    t.add_argument("--export", help="write the fastar model folder (config.json, model.safetensors, vocab.json) here")
    return p.parse_args(argv)


def build_config(args, vocab_size):
    if args.tiny:
        args.dim, args.layers, args.heads, args.ffn, args.text_dim, args.text_layers = 64, 2, 2, 128, 32, 1
    return wan_torch.world_small_config(
        dim=args.dim, num_layers=args.layers, num_heads=args.heads, ffn_dim=args.ffn, text_dim=args.text_dim,
        text_encoder=dict(vocab_size=vocab_size, layers=args.text_layers, heads=max(1, args.text_dim // 64),
                          ffn_dim=4 * args.text_dim))


class Ema:
    def __init__(self, model):
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model, decay):
        for k, v in model.state_dict().items():
            self.shadow[k].mul_(decay).add_(v.detach().float(), alpha=1 - decay)


def sample_sigmas(shape, rollout_sigmas, step_frac, shift, gen, device):
    """One σ per noisy chunk: a rollout timestep with probability step_frac, else shift-warped uniform."""
    u = torch.rand(shape, generator=gen, device=device)
    cont = shift * u / (1 + (shift - 1) * u)
    table = torch.tensor(rollout_sigmas, device=device)
    pick = table[torch.randint(len(rollout_sigmas), shape, generator=gen, device=device)]
    use_table = torch.rand(shape, generator=gen, device=device) < step_frac
    return torch.where(use_table, pick, cont).clamp(1e-3, 1.0)


class Trainer:
    def __init__(self, args, data, config):
        self.args, self.config, self.dev = args, config, torch.device(args.device)
        self.cf = args.chunk_frames
        assert args.clip_frames % self.cf == 0 and args.clip_frames >= 2 * self.cf, "--clip-frames: >= 2 chunks"
        self.K = args.clip_frames // self.cf
        n_all, f_all = data["frames"].shape[:2]
        assert f_all >= args.clip_frames, f"dataset clips have {f_all} frames < --clip-frames {args.clip_frames}"
        n_val = min(args.val_clips, n_all // 4)
        self.frames = data["frames"].to(self.dev)
        self.actions = data["actions"].to(self.dev)
        self.tokens = data["tokens"].to(self.dev)
        self.n_train, self.n_val = n_all - n_val, n_val
        self.windows = [int(w) for w in args.window_chunks.split(",")]
        self.masks = {}
        for w in set(self.windows) | {0}:
            mask, source, noisy = wan_torch.teacher_forcing_layout(self.K, self.cf, w, self.dev)
            self.masks[w] = mask
        self.source, self.is_noisy = source, noisy
        ts = wan_torch.schedule_timesteps([float(s) for s in args.rollout_steps.split(",")], args.rollout_shift)
        self.rollout_sigmas = [t / 1000.0 for t in ts]
        self.amp = self.dev.type == "cuda"

    def batch(self, gen, clip_ids=None):
        a, dev, B = self.args, self.dev, self.args.batch
        L = a.clip_frames
        if clip_ids is None:
            clip_ids = torch.randint(self.n_train, (B,), generator=gen, device=dev)
        B = clip_ids.shape[0]
        start = torch.randint(self.frames.shape[1] - L + 1, (B,), generator=gen, device=dev)
        fidx = start[:, None] + torch.arange(L, device=dev)[None]
        x0 = world_data.frames_to_model(self.frames[clip_ids[:, None], fidx])           # [B, 3, L, H, W]
        act = world_data.one_hot_actions(self.actions[clip_ids[:, None], fidx])       # [B, L, 5]
        tok = self.tokens[clip_ids].clone()
        drop = torch.rand(B, generator=gen, device=dev) < a.prompt_dropout
        tok[drop] = 0
        offset = torch.randint(a.pos_offset_max + 1, (B, 1), generator=gen, device=dev)
        offset[torch.rand(B, 1, generator=gen, device=dev) < 0.25] = 0  # also the plain start of a video
        return x0, act, tok, offset

    def make_inputs(self, x0, act, offset, gen, aug=True):
        a, dev = self.args, self.dev
        B = x0.shape[0]
        src, noisy = self.source, self.is_noisy
        seq0 = x0[:, :, src]                                                            # [B, 3, S, H, W]
        sig_chunk = sample_sigmas((B, self.K), self.rollout_sigmas, a.rollout_step_frac, a.sigma_shift, gen, dev)
        sig = torch.where(noisy[None], sig_chunk[:, src // self.cf], torch.zeros((), device=dev))  # [B, S]
        eps = torch.randn(seq0.shape, generator=gen, device=dev)
        s5 = sig[:, None, :, None, None]
        xt = (1 - s5) * seq0 + s5 * eps
        if aug and a.context_aug > 0:
            std = torch.rand(B, generator=gen, device=dev) * a.context_aug
            std = std * (torch.rand(B, generator=gen, device=dev) < 0.5)
            corrupt = std[:, None, None, None, None] * torch.randn(seq0.shape, generator=gen, device=dev)
            xt = torch.where(noisy[None, None, :, None, None], xt, xt + corrupt)
        t = torch.where(noisy[None], sig * 1000.0, torch.full_like(sig, a.context_noise))
        target = (eps - seq0)[:, :, noisy]
        return xt, t, act[:, src], offset + src[None], target

    def loss(self, model, x0, act, tok, offset, gen, window, aug=True):
        xt, t, a_seq, fpos, target = self.make_inputs(x0, act, offset, gen, aug)
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            ctx = model.text_encoder(tok)
            v = model.dit(xt, t, ctx, a_seq, fpos, self.masks[window])
        return F.mse_loss(v[:, :, self.is_noisy].float(), target)

    @torch.no_grad()
    def val_loss(self, model):
        """Fixed clips, fixed noise, every window: comparable across checkpoints."""
        if self.n_val == 0:
            return float("nan")
        gen = torch.Generator(device=self.dev).manual_seed(1234)
        ids = torch.arange(self.n_train, self.n_train + self.n_val, device=self.dev)
        total = 0.0
        for chunk in ids.split(self.args.batch):
            x0, act, tok, offset = self.batch(gen, chunk)
            total += self.loss(model, x0, act, tok, offset, gen, self.windows[0], aug=False).item() * len(chunk)
        return total / self.n_val


def atomic_save(path, state):
    """torch.save that never leaves half a file at `path` (written beside it, then renamed)."""
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def save_checkpoint(path, model, ema, opt, step, elapsed, config, vocab, args):
    atomic_save(path, dict(model=model.state_dict(), ema=ema.shadow, opt=opt.state_dict(), step=step, elapsed=elapsed,
                           config=config, vocab=vocab, args=vars(args)))


def start_run(args):
    """What every training run does first (train.py, train_hybrid.py): seed, TF32 on CUDA, the output folder."""
    torch.manual_seed(args.seed)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    os.makedirs(args.out, exist_ok=True)


def load_or_generate_dataset(args):
    """--dataset, or OUT/dataset.safetensors generated with `fastar world dataset` when absent → (path, data)."""
    dataset = args.dataset or os.path.join(args.out, "dataset.safetensors")
    if not os.path.exists(dataset):
        secs = world_data.generate_dataset(args.fastar, args.clips, args.data_frames, args.data_seed, dataset)
        print(f"dataset: generated in {secs:.1f} s", flush=True)
    return dataset, world_data.load_dataset(dataset)


def main(argv=None):
    args = parse_args(argv)
    start_run(args)
    dataset, data = load_or_generate_dataset(args)
    vocab = data["vocab"]
    print(f"dataset: {dataset}: {tuple(data['frames'].shape)} frames, vocab {len(vocab)}", flush=True)

    if args.resume and args.init_from:
        raise SystemExit("train.py: give --resume (a checkpoint) or --init-from (a model folder), not both")
    resume = torch.load(args.resume, map_location="cpu", weights_only=False) if args.resume else None
    init_model = None
    if args.init_from:
        import export
        init_model, init_vocab = export.load_model_folder(args.init_from)
        if init_vocab != vocab:
            raise SystemExit(f"train.py: {args.init_from}/vocab.json differs from the dataset's vocabulary; "
                             "regenerate the dataset with this fastar binary")
    config = resume["config"] if resume else init_model.config if init_model else build_config(args, len(vocab))
    assert config["text_encoder"]["vocab_size"] == len(vocab), "the dataset's vocabulary differs from the checkpoint's"
    model = wan_torch.WorldModel(config).to(args.device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=args.weight_decay), dict(params=no_decay, weight_decay=0.0)],
                            lr=args.lr, betas=(0.9, 0.99), eps=1e-8)
    if init_model is not None:
        model.load_state_dict(init_model.state_dict())
        print(f"initialised from {args.init_from} (fresh optimizer, step 0)", flush=True)
    ema = Ema(model)
    step, elapsed_before = 0, 0.0
    if resume:
        model.load_state_dict(resume["model"])
        ema.shadow = {k: v.to(args.device) for k, v in resume["ema"].items()}
        opt.load_state_dict(resume["opt"])
        step, elapsed_before = resume["step"], resume["elapsed"]
        print(f"resumed {args.resume}: step {step}, {elapsed_before / 60:.1f} min trained", flush=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f} M parameters ({2 * params / 1e6:.1f} MB bf16); config "
          f"{json.dumps({k: v for k, v in config.items() if not k.startswith('_')})}", flush=True)

    trainer = Trainer(args, data, config)
    S = trainer.source.numel()
    print(f"training: {trainer.K} chunks of {args.chunk_frames} frames, sequence {S} frames = "
          f"{S * (64 // config['patch_size'][1]) ** 2} tokens, batch {args.batch}, windows {trainer.windows}, "
          f"device {args.device}", flush=True)
    gen = torch.Generator(device=args.device).manual_seed(args.seed + step)
    log_path = os.path.join(args.out, "log.tsv")
    log = open(log_path, "a")
    if os.path.getsize(log_path) == 0:
        log.write("step\tminutes\tloss\tval_loss\tlr\tsamples_per_s\n")
    ckpt_path = os.path.join(args.out, "ckpt.pt")
    budget = args.minutes * 60.0
    start = last_ckpt = last_log = time.time()
    run_steps, loss_sum, loss_n = 0, 0.0, 0
    warmup = args.warmup_steps if not (resume or init_model) else min(50, args.warmup_steps)
    while True:
        now = time.time()
        run_elapsed = now - start
        if run_elapsed >= budget or (args.max_steps and run_steps >= args.max_steps):
            break
        frac = run_elapsed / budget
        lr = args.lr * min(1.0, (run_steps + 1) / warmup)
        if frac > 1 - args.decay_frac:
            lr *= 1.0 - 0.9 * (frac - (1 - args.decay_frac)) / args.decay_frac
        for g in opt.param_groups:
            g["lr"] = lr
        window = trainer.windows[int(torch.randint(len(trainer.windows), (1,), generator=gen, device=args.device))]
        x0, act, tok, offset = trainer.batch(gen)
        loss = trainer.loss(model, x0, act, tok, offset, gen, window)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run_steps += 1
        ema.update(model, min(args.ema, (1 + step) / (10 + step)))
        loss_sum += loss.item()
        loss_n += 1
        if run_steps % args.log_every == 0 or run_steps == 1:
            t_now = time.time()
            val = trainer.val_loss(model) if run_steps % (args.log_every * 8) == 0 else float("nan")
            rate = args.batch * loss_n / max(t_now - last_log, 1e-9)
            minutes = (elapsed_before + t_now - start) / 60
            print(f"step {step:6d}  {minutes:6.2f} min  loss {loss_sum / loss_n:.4f}  val {val:.4f}  lr {lr:.2e}  "
                  f"{rate:.1f} samples/s", flush=True)
            log.write(f"{step}\t{minutes:.3f}\t{loss_sum / loss_n:.5f}\t{val:.5f}\t{lr:.3e}\t{rate:.1f}\n")
            log.flush()
            loss_sum, loss_n, last_log = 0.0, 0, time.time()
        if time.time() - last_ckpt >= args.ckpt_minutes * 60:
            save_checkpoint(ckpt_path, model, ema, opt, step, elapsed_before + time.time() - start, config, vocab, args)
            last_ckpt = time.time()
            print(f"checkpoint: {ckpt_path} (step {step})", flush=True)
    total = elapsed_before + time.time() - start
    save_checkpoint(ckpt_path, model, ema, opt, step, total, config, vocab, args)
    ema_model = copy.deepcopy(model)
    ema_model.load_state_dict({k: v.to(next(model.parameters()).dtype) for k, v in ema.shadow.items()})
    val_raw, val_ema = trainer.val_loss(model), trainer.val_loss(ema_model)
    print(f"done: step {step}, {total / 60:.2f} min trained; val loss {val_raw:.4f} (raw) {val_ema:.4f} (EMA); "
          f"checkpoint {ckpt_path}", flush=True)
    log.write(f"# done step {step} val_raw {val_raw:.5f} val_ema {val_ema:.5f}\n")
    log.close()
    if args.export:
        import export
        export.export(ckpt_path, args.export)


if __name__ == "__main__":
    main()
