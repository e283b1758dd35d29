#!/usr/bin/env python3
"""Distils the shipped world model into an ARL² hybrid one (issue 5 item 4; papers.md §2.4; hybrid.py).

  student = the teacher (--teacher, a fastar model folder) with --hybrid-layers (default 0-5 of 8) turned into
            hybrid layers (chunk-local softmax + gated delta-rule state, tools/world_model/hybrid.py)
  stage 1 = per-layer distillation: on the teacher's own layer inputs, MSE of each hybrid attention output
            against the teacher's softmax attention output (normalised by its mean square), memory-branch
            parameters only (φ_q/k/v, a/b/gate projections, A_log, dt_bias)
  stage 2 = end-to-end distillation: MSE of the student's flow prediction against the frozen teacher's on the
            noisy frames of train.py's block-causal teacher-forced sequences (same data, σ, masks, RoPE offsets);
            --stage2-train picks the trainable set (hybrid = memory branch only, ~2% as in ARL²; layers = all
            parameters of the hybrid blocks; all); --data-weight adds the flow-matching loss on the data

--minutes is split: --stage1-frac of it to stage 1, the rest to stage 2 (a resumed run whose checkpoint has
finished stage 1 gives all of it to stage 2). bf16 autocast on CUDA, AdamW, EMA (stage 2), checkpoints OUT/ckpt.pt
every --ckpt-minutes, log OUT/log.tsv, --export DIR writes the fastar model folder ("hybrid_layers" in config.json).

Tiny CPU smoke run (teacher from train.py --tiny):
  python3 tools/world_model/train_hybrid.py --teacher /tmp/wm/model --dataset D.safetensors --out /tmp/wmh \
      --hybrid-layers 0 --batch 2 --clip-frames 9 --max-steps 4 --export /tmp/wmh/model
"""

import argparse
import copy
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402
import hybrid  # noqa: E402
import train  # noqa: E402
import wan_torch  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="models/world-small", help="the dense fastar model folder to distil")
    p.add_argument("--hybrid-layers", default="0,1,2,3,4,5", help="layers made hybrid (ARL²: the first ~75%%)")
    d = p.add_argument_group("data (as train.py)")
    d.add_argument("--dataset", help="a `fastar world dataset` file; generated (into OUT/dataset.safetensors) if absent")
    d.add_argument("--fastar", default="build-dev/fastar", help="fastar binary used to generate the dataset")
    d.add_argument("--clips", type=int, default=2000)
    d.add_argument("--data-frames", type=int, default=24)
    d.add_argument("--data-seed", type=int, default=1)
    d.add_argument("--val-clips", type=int, default=32)
    t = p.add_argument_group("training")
    t.add_argument("--out", default="runs/world-small-arl2")
    t.add_argument("--minutes", type=float, default=8.0, help="wall budget of this run, both stages")
    t.add_argument("--stage1-frac", type=float, default=0.3, help="fraction of --minutes for stage 1")
    t.add_argument("--max-steps", type=int, default=0, help="per stage: stop after this many steps (0 = budget only)")
    t.add_argument("--resume", help="checkpoint to continue from (stage, model, EMA, optimizer, step)")
    t.add_argument("--ckpt-minutes", type=float, default=2.0)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr1", type=float, default=1e-3, help="stage 1 learning rate")
    t.add_argument("--lr2", type=float, default=2e-4, help="stage 2 learning rate")
    t.add_argument("--warmup-steps", type=int, default=50)
    t.add_argument("--decay-frac", type=float, default=0.25)
    t.add_argument("--ema", type=float, default=0.998)
    t.add_argument("--stage2-train", choices=("hybrid", "layers", "all"), default="layers")
    t.add_argument("--data-weight", type=float, default=0.0, help="stage 2: weight of the flow-matching loss on data")
    t.add_argument("--clip-frames", type=int, default=15)
    t.add_argument("--chunk-frames", type=int, default=3)
    t.add_argument("--window-chunks", default="0,3", help="softmax layers' windows (chunks) drawn per step; 0 = all")
    t.add_argument("--context-noise", type=float, default=0.0)
    t.add_argument("--context-aug", type=float, default=0.08)
    t.add_argument("--prompt-dropout", type=float, default=0.05)
    t.add_argument("--pos-offset-max", type=int, default=4096)
    t.add_argument("--rollout-steps", default="1000,750,500,250")
    t.add_argument("--rollout-shift", type=float, default=5.0)
    t.add_argument("--rollout-step-frac", type=float, default=0.4)
    t.add_argument("--sigma-shift", type=float, default=3.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--log-every", type=int, default=25)
    t.add_argument("--export", help="write the hybrid fastar model folder here at the end")
    return p.parse_args(argv)


class Distiller:
    """Teacher-forced sequences of train.Trainer + the teacher and the student on them."""

    def __init__(self, args, data, teacher, student):
        self.args, self.teacher, self.student = args, teacher, student
        self.tr = train.Trainer(args, data, teacher.config)
        self.dev, self.amp = self.tr.dev, self.tr.amp
        cf = args.chunk_frames
        self.layout = hybrid.ChunkLayout.from_frames(self.tr.source // cf, self.tr.is_noisy, cf)
        c = teacher.config
        self.grid = (c["latent_height"] // c["patch_size"][1], c["latent_width"] // c["patch_size"][2])
        self.head_dim = c["dim"] // c["num_heads"]
        self.tap = hybrid.AttentionTap(teacher.dit, student.dit.hybrid_layers)

    def inputs(self, gen, clip_ids=None, aug=True):
        x0, act, tok, offset = self.tr.batch(gen, clip_ids)
        xt, t, a_seq, fpos, target = self.tr.make_inputs(x0, act, offset, gen, aug)
        return xt, t, a_seq, fpos, target, tok

    def stage1_loss(self, inp, window):
        xt, t, a_seq, fpos, _, tok = inp
        with torch.no_grad(), torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            self.teacher.dit(xt, t, self.teacher.text_encoder(tok), a_seq, fpos, self.tr.masks[window])
        rope = wan_torch.rope_tables(fpos, *self.grid, self.head_dim)  # patch_t = 1
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            return hybrid.layer_distill_loss(self.student.dit, self.tap, rope, self.layout)

    def stage2_loss(self, model, inp, window):
        xt, t, a_seq, fpos, target, tok = inp
        noisy = self.tr.is_noisy
        with torch.no_grad(), torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            v_teacher = self.teacher.dit(xt, t, self.teacher.text_encoder(tok), a_seq, fpos, self.tr.masks[window])
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            v = model.dit(xt, t, model.text_encoder(tok), a_seq, fpos, self.tr.masks[window], layout=self.layout)
        v = v[:, :, noisy].float()
        loss = hybrid.flow_distill_loss(v, v_teacher[:, :, noisy])
        parts = [float(loss.detach())]
        if self.args.data_weight > 0:
            data_loss = torch.nn.functional.mse_loss(v, target)
            loss = loss + self.args.data_weight * data_loss
            parts.append(float(data_loss.detach()))
        return loss, parts

    @torch.no_grad()
    def val(self, model):
        """Stage-2 distillation loss on fixed held-out clips and noise (dense window): comparable across runs."""
        tr = self.tr
        if tr.n_val == 0:
            return float("nan")
        gen = torch.Generator(device=self.dev).manual_seed(1234)
        ids = torch.arange(tr.n_train, tr.n_train + tr.n_val, device=self.dev)
        total = 0.0
        for chunk in ids.split(self.args.batch):
            total += self.stage2_loss(model, self.inputs(gen, chunk, aug=False), tr.windows[0])[1][0] * len(chunk)
        return total / tr.n_val


def trainable(student, stage, which):
    out = []
    for name, p in student.named_parameters():
        if stage == 1 or which == "hybrid":
            on = hybrid.is_hybrid_param(name)
        elif which == "layers":
            on = any(name.startswith(f"dit.blocks.{i}.") for i in student.dit.hybrid_layers)
        else:
            on = True
        p.requires_grad_(on)
        if on:
            out.append(p)
    return out


def make_optimizer(params, lr):
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([dict(params=decay, weight_decay=0.01), dict(params=no_decay, weight_decay=0.0)],
                             lr=lr, betas=(0.9, 0.99), eps=1e-8)


def main(argv=None):
    args = parse_args(argv)
    train.start_run(args)
    teacher, vocab = export.load_model_folder(args.teacher, args.device)
    teacher.requires_grad_(False)
    _, data = train.load_or_generate_dataset(args)
    assert data["vocab"] == vocab, "the dataset's vocabulary differs from the teacher's"

    resume = torch.load(args.resume, map_location="cpu", weights_only=False) if args.resume else None
    layers = resume["config"]["hybrid_layers"] if resume else [int(i) for i in args.hybrid_layers.split(",")]
    student = hybrid.hybrid_from_teacher(teacher.cpu(), layers).to(args.device)
    teacher.to(args.device)
    stage, step, elapsed = 1, 0, 0.0
    ema = None
    if resume:
        student.load_state_dict(resume["model"])
        stage, step, elapsed = resume["stage"], resume["step"], resume["elapsed"]
        print(f"resumed {args.resume}: stage {stage}, step {step}, {elapsed / 60:.1f} min trained", flush=True)
    n_all = sum(p.numel() for p in student.parameters())
    n_hyb = sum(p.numel() for n, p in student.named_parameters() if hybrid.is_hybrid_param(n))
    print(f"student: {n_all / 1e6:.2f} M parameters, hybrid layers {student.dit.hybrid_layers} of "
          f"{len(student.dit.blocks)}, memory-branch parameters {n_hyb / 1e3:.1f} k ({100 * n_hyb / n_all:.1f}%)", flush=True)

    dist = Distiller(args, data, teacher, student)
    print(f"training: {dist.tr.K} chunks of {args.chunk_frames} frames, batch {args.batch}, device {args.device}",
          flush=True)
    log_path = os.path.join(args.out, "log.tsv")
    log = open(log_path, "a")
    if os.path.getsize(log_path) == 0:
        log.write("stage\tstep\tminutes\tloss\tval_loss\tlr\tsamples_per_s\n")
    ckpt_path = os.path.join(args.out, "ckpt.pt")
    run_start = time.time()
    budgets = {1: args.minutes * 60 * args.stage1_frac if stage == 1 else 0.0}
    budgets[2] = args.minutes * 60 - budgets[1]
    gen = torch.Generator(device=args.device).manual_seed(args.seed + step)

    def checkpoint(stage_now, opt, opt_stage):
        train.atomic_save(ckpt_path, dict(model=student.state_dict(), ema=ema.shadow if ema else None, stage=stage_now,
                                          step=step, elapsed=elapsed + time.time() - run_start, opt=opt.state_dict(),
                                          opt_stage=opt_stage, config=student.config, vocab=vocab, args=vars(args)))

    for st in (1, 2):
        if st < stage or budgets[st] <= 0:
            continue
        stage = st
        params = trainable(student, st, args.stage2_train)
        opt = make_optimizer(params, args.lr1 if st == 1 else args.lr2)
        if resume and resume.get("opt_stage") == st and resume.get("opt"):
            opt.load_state_dict(resume["opt"])
        if st == 2:
            ema = train.Ema(student)
            if resume and resume.get("ema") and resume["stage"] == 2:
                ema.shadow = {k: v.to(args.device) for k, v in resume["ema"].items()}
        print(f"stage {st}: {budgets[st] / 60:.2f} min, {sum(p.numel() for p in params) / 1e3:.1f} k trainable "
              f"parameters", flush=True)
        start = last_ckpt = last_log = time.time()
        run_steps, loss_sum, loss_n, base_lr = 0, 0.0, 0, args.lr1 if st == 1 else args.lr2
        while True:
            run_elapsed = time.time() - start
            if run_elapsed >= budgets[st] or (args.max_steps and run_steps >= args.max_steps):
                break
            frac = run_elapsed / budgets[st]
            lr = base_lr * min(1.0, (run_steps + 1) / args.warmup_steps)
            if frac > 1 - args.decay_frac:
                lr *= 1.0 - 0.9 * (frac - (1 - args.decay_frac)) / args.decay_frac
            for g in opt.param_groups:
                g["lr"] = lr
            window = dist.tr.windows[int(torch.randint(len(dist.tr.windows), (1,), generator=gen, device=args.device))]
            inp = dist.inputs(gen)
            if st == 1:
                loss, parts = dist.stage1_loss(inp, window)
            else:
                loss, parts = dist.stage2_loss(student, inp, window)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            run_steps += 1
            if ema:
                ema.update(student, min(args.ema, (1 + run_steps) / (10 + run_steps)))
            loss_sum += float(loss.detach())
            loss_n += 1
            if run_steps % args.log_every == 0 or run_steps == 1:
                t_now = time.time()
                val = dist.val(student) if st == 2 and run_steps % (args.log_every * 8) == 0 else float("nan")
                rate = args.batch * loss_n / max(t_now - last_log, 1e-9)
                minutes = (elapsed + t_now - run_start) / 60
                detail = " ".join(f"{v:.4f}" for v in parts)
                print(f"stage {st} step {step:6d}  {minutes:6.2f} min  loss {loss_sum / loss_n:.4f} [{detail}]  "
                      f"val {val:.4f}  lr {lr:.2e}  {rate:.1f} samples/s", flush=True)
                log.write(f"{st}\t{step}\t{minutes:.3f}\t{loss_sum / loss_n:.5f}\t{val:.5f}\t{lr:.3e}\t{rate:.1f}\n")
                log.flush()
                loss_sum, loss_n, last_log = 0.0, 0, time.time()
            if time.time() - last_ckpt >= args.ckpt_minutes * 60:
                checkpoint(st, opt, st)
                last_ckpt = time.time()
                print(f"checkpoint: {ckpt_path} (stage {st}, step {step})", flush=True)
        stage = 2  # stage 1 done: a resumed run continues with stage 2
        checkpoint(stage, opt, st)
    dist.tap.close()

    final = student
    if ema:
        final = copy.deepcopy(student)
        final.load_state_dict({k: v.to(next(student.parameters()).dtype) for k, v in ema.shadow.items()})
        train.atomic_save(ckpt_path, {**torch.load(ckpt_path, map_location="cpu", weights_only=False),
                                      "ema": ema.shadow})
    val = dist.val(final)
    total = elapsed + time.time() - run_start
    print(f"done: step {step}, {total / 60:.2f} min; val distillation loss {val:.5f} (EMA); checkpoint {ckpt_path}",
          flush=True)
    log.write(f"# done step {step} val {val:.5f}\n")
    log.close()
    if args.export:
        export_hybrid(final, vocab, args.export)


def export_hybrid(model, vocab, out_dir):
    """The fastar model folder: the teacher's config + "hybrid_layers", hybrid tensors in fastar's names, bf16.
    Its rollout defaults are the teacher's with policy arl2 (memory on the hybrid layers, the window on the
    softmax ones); the teacher's AnnSA layer choice was measured on the teacher's layers, so it is dropped."""
    defaults = dict(model.config.get("fastar_defaults", {}))
    defaults["policy"] = "arl2"
    defaults.pop("ann_layers", None)
    export.write_model_folder(model, vocab, out_dir, extra_config={"fastar_defaults": defaults})
    with open(os.path.join(out_dir, "config.json")) as f:
        config = json.load(f)
    assert config.get("hybrid_layers") == model.dit.hybrid_layers, "config.json lost hybrid_layers"


def export_checkpoint(ckpt_path, out_dir, use_ema=True):
    """Re-export a train_hybrid checkpoint (EMA weights when present)."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = hybrid.HybridWorldModel(ckpt["config"])
    state = ckpt["ema"] if use_ema and ckpt.get("ema") else ckpt["model"]
    model.load_state_dict({k: v.float() for k, v in state.items()})
    export_hybrid(model, ckpt["vocab"], out_dir)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "export":
        if len(sys.argv) != 4:
            raise SystemExit("usage: train_hybrid.py export CKPT OUT_DIR")
        export_checkpoint(sys.argv[2], sys.argv[3])
    else:
        main()
