#!/usr/bin/env bash
# Trains the shipped world model further on a GPU machine in one call, checks it against the world and
# packs what must come back into OUTDIR (the device tool returns at most 8 files of 16 MiB each):
#   OUTDIR/model.safetensors.part-??   the exported bf16 weights, split (cat them back together, in order)
#   OUTDIR/files.tgz                   files/: config.json, vocab.json, log.tsv, check.tsv, contact_sheet.png, model.sha256
#
#   tools/world_model/device_train.sh OUTDIR
# Environment: TRAIN_MINUTES (wall budget of the training loop, default 6.5), TRAIN_INIT (model folder to
# start from, default models/world-small; empty = from scratch), TRAIN_CLIPS (default 10000),
# TRAIN_DATA_SEED (default 2: other clips than the first run's seed 1). Needs build-dev/fastar (CPU build).
set -euo pipefail
cd "$(dirname "$0")/../.."
outdir="${1:?usage: device_train.sh OUTDIR}"
minutes="${TRAIN_MINUTES:-6.5}"
init="${TRAIN_INIT-models/world-small}"
run=runs/world-small
mkdir -p "$outdir/files" "$run"
export PYTHONUNBUFFERED=1

init_args=()
[ -n "$init" ] && init_args=(--init-from "$init")
python3 tools/world_model/train.py --fastar build-dev/fastar --clips "${TRAIN_CLIPS:-10000}" --data-frames 24 \
  --data-seed "${TRAIN_DATA_SEED:-2}" --out "$run" --minutes "$minutes" "${init_args[@]}" --export "$run/model"

build-dev/fastar world dataset --clips 8 --frames 24 --seed 999 --out "$run/check.safetensors"
python3 tools/world_model/check.py "$run/model" --dataset "$run/check.safetensors" --out "$run" \
  --settings "1000,750,500,250@5/window3;1000,750,500,250@5/dense;1000,875,750,625,500,375,250,125@5/window3;1000,667,333@5/window3"

split -b 15M -d "$run/model/model.safetensors" "$outdir/model.safetensors.part-"
cp "$run/model/config.json" "$run/model/vocab.json" "$run/log.tsv" "$run/check.tsv" "$run/contact_sheet.png" \
  "$outdir/files/"
sha256sum "$run/model/model.safetensors" | tee "$outdir/files/model.sha256"
tar czf "$outdir/files.tgz" -C "$outdir" files && rm -rf "$outdir/files"
