#!/usr/bin/env bash
# Distils the ARL² hybrid version of the shipped world model on a GPU machine in one call (the two stages
# of train_hybrid.py), judges it against its dense teacher with `fastar eval`, and packs what must come
# back into OUTDIR (the device tool returns at most 8 files of 16 MiB each):
#   OUTDIR/model.safetensors.part-??   the exported bf16 weights, split (cat them back together, in order)
#   OUTDIR/files.tgz                   files/: config.json, vocab.json, log.tsv, eval.md/json, contact sheet, model.sha256
#
#   tools/world_model/device_train_hybrid.sh OUTDIR
# Environment: HYBRID_MINUTES (wall budget of both stages, default 6), HYBRID_CLIPS (default 10000),
# HYBRID_TEACHER (the dense teacher's model folder, default models/world-small; after device_train.sh on the
# same warm machine: runs/world-small/model, the new teacher the hybrid must follow).
# Needs build-dev/fastar (CPU build).
set -euo pipefail
cd "$(dirname "$0")/../.."
outdir="${1:?usage: device_train_hybrid.sh OUTDIR}"
teacher="${HYBRID_TEACHER:-models/world-small}"
run=runs/world-small-arl2
mkdir -p "$outdir/files" "$run"
export PYTHONUNBUFFERED=1

python3 tools/world_model/train_hybrid.py --teacher "$teacher" --fastar build-dev/fastar \
  --clips "${HYBRID_CLIPS:-10000}" --data-frames 24 --data-seed 3 --out "$run" --minutes "${HYBRID_MINUTES:-6}" \
  --export "$run/model"

# Fidelity to the teacher: the teacher's dense rollout is the reference; the hybrid model with ARL²
# (its 2 softmax layers dense).
build-dev/fastar eval --model "$run/model" --reference-model "$teacher" --policies dense,arl2 \
  --clips 4 --frames 24 --out "$run/eval"

split -b 15M -d "$run/model/model.safetensors" "$outdir/model.safetensors.part-"
cp "$run/model/config.json" "$run/model/vocab.json" "$run/log.tsv" "$run/eval/eval.md" "$run/eval/eval.json" \
  "$outdir/files/"
cp "$run/eval/contact_sheet.png" "$outdir/files/eval_contact_sheet.png"
sha256sum "$run/model/model.safetensors" | tee "$outdir/files/model.sha256"
tar czf "$outdir/files.tgz" -C "$outdir" files && rm -rf "$outdir/files"
