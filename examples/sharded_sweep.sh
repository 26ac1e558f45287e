#!/usr/bin/env bash
# A prune-sweep split across N workers that share one output directory (e.g. a Slurm job array:
# K=$((SLURM_ARRAY_TASK_ID + 1)) N=$SLURM_ARRAY_TASK_COUNT). Each finished config is its own JSON
# file, so a killed worker resumes where it stopped; any worker can rebuild the merged summary.
set -euo pipefail
TEACHER=${TEACHER:-runs/teacher/best.safetensors}
OUT=${OUT:-runs/sweep}
N=${N:-2}
common=(--teacher "$TEACHER" --stacks 1,2 --channels 32,64 --init both --max-steps "${STEPS:-100}"
        --input-size "${SIZE:-128}" --out "$OUT")
if [ -n "${K:-}" ]; then
  fpdctl prune-sweep "${common[@]}" --shard "$K/$N"          # one worker of the array
else
  for k in $(seq 1 "$N"); do fpdctl prune-sweep "${common[@]}" --shard "$k/$N" & done; wait
  fpdctl prune-sweep "${common[@]}" --summary-only            # merge: summary.json, sweep.png
fi
