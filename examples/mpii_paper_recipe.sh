#!/usr/bin/env bash
# The FPD paper's MPII recipe (Zhang, Zhu & Ye, CVPR 2019) with fpdctl.
# Needs MPII at $MPII (images/ + annotations, see examples/README.md) and GPUs: the full recipe
# is 140 epochs per model. Expected MPII validation PCKh@0.5, pooled mean (the official FPD code's
# figures): teacher hg8x256 90.52, student hg4x128 alone 87.93, FPD student 89.04.
set -euo pipefail
MPII=${MPII:-data/mpii}
RUNS=${RUNS:-runs/mpii}
NPROC=${NPROC:-1}   # GPUs on this node
# The reference trains with a global batch of 16; fpdctl's --batch-size is per process.
if [ $((16 % NPROC)) -ne 0 ]; then echo "NPROC must divide 16 (the reference's global batch), got $NPROC" >&2; exit 2; fi
BATCH=$((16 / NPROC))
launch() { if [ "$NPROC" -gt 1 ]; then torchrun --nproc_per_node "$NPROC" -m fpdctl "$@" --batch-size "$BATCH"; else fpdctl "$@"; fi; }

# 1. The teacher (skip if you bring one: any pytorch-pose or official FPD checkpoint works).
launch train --model hg8x256 --data "mpii:$MPII" --out "$RUNS/teacher-hg8x256"
# 2. The baseline FPD must beat: the student trained alone.
launch train --model hg4x128 --data "mpii:$MPII" --out "$RUNS/student-alone-hg4x128"
# 3. Fast Pose Distillation, alpha 0.5 (defaults: Adam 2.5e-4, 140 epochs, x0.1 at 90 and 120).
launch distill --config configs/fpd_mpii.yaml --data "mpii:$MPII" \
  --teacher "$RUNS/teacher-hg8x256/best.safetensors" --student hg4x128 --alpha 0.5 \
  --out "$RUNS/fpd-hg4x128"
# 4. The three figures side by side, with the flip test, on the validation split.
for run in teacher-hg8x256 student-alone-hg4x128 fpd-hg4x128; do
  fpdctl eval "$RUNS/$run/best.safetensors" --data "mpii:$MPII" --flip \
    --save-predictions "$RUNS/$run/preds_valid.mat"
done
