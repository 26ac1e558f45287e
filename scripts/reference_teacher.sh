#!/usr/bin/env bash
# `make reference-teacher`: train the shipped reference teacher (synthetic-hg2x64) and write its
# model card. Resumable: run it again after an interruption and it continues where it stopped.
#   scripts/reference_teacher.sh [RUN_DIR]        (default runs/reference-teacher)
# About 25 min on 2 idle cores (bf16 autocast on a CPU with AVX-512 BF16), longer on a busy one.
set -euo pipefail
RUN=${1:-runs/reference-teacher}
FPDCTL=${FPDCTL:-.venv/bin/fpdctl}
PY=${PY:-.venv/bin/python}
# The recipe of the shipped file: hg2x64 at 128 px on the built-in synthetic data (20,000 persons),
# batch 16, Adam 1e-3 with cosine decay over 12,000 steps, seed 0, the uniform augmentation
# (scale, rotation, flip, colour jitter) it was trained with.
ARGS=(--model hg2x64 --input-size 128 --batch-size 16 --lr 1e-3 --schedule cosine --max-steps 12000
      --augment-style uniform --eval-every 2000 --save-every 500 --val-limit 300 --log-every 100
      --workers 1 --seed 0 --data synthetic)
if [ -f "$RUN/eval.json" ]; then
  echo "$RUN is finished; writing the card"
elif [ -f "$RUN/config.json" ]; then
  $FPDCTL train --resume "$RUN"
else
  $FPDCTL train "${ARGS[@]}" --out "$RUN"
fi
$PY scripts/pretrained_card.py "$RUN" --name synthetic-hg2x64 --command "fpdctl train ${ARGS[*]} --out RUN"
