#!/usr/bin/env bash
# Distil from a teacher you already have: a bearpaw/pytorch-pose checkpoint (hg_s8_b1
# model_best.pth.tar, a dict with a 'module.'-prefixed state_dict) or an official FPD checkpoint.
# fpdctl reads it with torch.load(weights_only=True) and infers stacks/channels/blocks itself.
set -euo pipefail
TEACHER=${TEACHER:-checkpoint/mpii/hg_s8_b1/model_best.pth.tar}
MPII=${MPII:-data/mpii}
fpdctl profile "$TEACHER" hg4x128                      # what the student saves
fpdctl eval "$TEACHER" --data "mpii:$MPII"             # should match the teacher's published PCKh
fpdctl distill --teacher "$TEACHER" --student hg4x128 --alpha 0.5 --data "mpii:$MPII" --out runs/fpd-from-pytorch-pose
fpdctl export runs/fpd-from-pytorch-pose/best.safetensors -o student.onnx
