#!/usr/bin/env bash
# `make reference-teacher`: train the shipped reference teachers and write their model cards:
# synthetic-hg2x64 (MPII's 16 joints) and synthetic-coco-hg2x64 (COCO's 17 keypoints). Resumable:
# run it again after an interruption and each run continues where it stopped; a finished run
# (eval.json present) only gets its card rewritten.
#   scripts/reference_teacher.sh [RUN_DIR] [COCO_RUN_DIR]   (default runs/reference-teacher, runs/reference-coco)
# About 25 min for the first on 2 idle cores (bf16 autocast on a CPU with AVX-512 BF16), 60-80 min
# for the second under load; longer on a busy machine.
set -euo pipefail
RUN=${1:-runs/reference-teacher}
COCO_RUN=${2:-runs/reference-coco}
FPDCTL=${FPDCTL:-.venv/bin/fpdctl}
PY=${PY:-.venv/bin/python}

# train_and_card NAME RUN_DIR TRAIN_ARGS...: train (or resume, or skip when finished), then the card.
train_and_card() {
  local name=$1 run=$2
  shift 2
  if [ -f "$run/eval.json" ]; then
    echo "$run is finished; writing the card of $name"
  elif [ -f "$run/config.json" ]; then
    $FPDCTL train --resume "$run"
  else
    $FPDCTL train "$@" --out "$run"
  fi
  $PY scripts/pretrained_card.py "$run" --name "$name" --command "fpdctl train $* --out RUN"
}

# The recipe of synthetic-hg2x64: hg2x64 at 128 px on the built-in synthetic data (20,000
# persons), batch 16, Adam 1e-3 with cosine decay over 12,000 steps, seed 0, the uniform
# augmentation (scale, rotation, flip, colour jitter) it was trained with.
ARGS=(--model hg2x64 --input-size 128 --batch-size 16 --lr 1e-3 --schedule cosine --max-steps 12000
      --augment-style uniform --eval-every 2000 --save-every 500 --val-limit 300 --log-every 100
      --workers 1 --seed 0 --data synthetic)
train_and_card synthetic-hg2x64 "$RUN" "${ARGS[@]}"

# The recipe of synthetic-coco-hg2x64: the shipped 16-joint teacher with its heads remapped to
# COCO's keypoints (scripts/coco_init_from_mpii.py: body keypoints from their MPII joints, face
# points from the head; zero-shot AP 46.18), fine-tuned 3,000 steps on the synthetic persons
# annotated with COCO's 17 keypoints (synthetic:layout=coco, one person per image); its card also
# gives the AP on the simulated detector's boxes.
COCO_INIT=${COCO_INIT:-$(dirname "$COCO_RUN")/coco-init.safetensors}
if [ ! -f "$COCO_RUN/config.json" ] && [ ! -f "$COCO_INIT" ]; then
  $PY scripts/coco_init_from_mpii.py "$COCO_INIT"
fi
COCO_ARGS=(--model hg2x64j17 --init "$COCO_INIT" --input-size 128 --batch-size 16 --lr 1e-3 --schedule cosine
           --max-steps 3000 --augment-style uniform --eval-every 1000 --save-every 250 --val-limit 300
           --log-every 100 --workers 1 --seed 0 --data synthetic:layout=coco)
train_and_card synthetic-coco-hg2x64 "$COCO_RUN" "${COCO_ARGS[@]}"
