#!/usr/bin/env bash
# FPD on LSP + LSPET (paper: 90.8 PCK@0.2 for the FPD hg4x128 student on the LSP test set).
# $LSP holds lsp_dataset/ (joints.mat 3x14x2000, images/) and/or lspet_dataset/ (joints.mat
# 14x3x10000, images/); the standard split trains on LSPET + LSP 1-1000 and tests on LSP 1001-2000.
# Try it on the 400 LSPET images shipped beside the repo: LSP=../shared/data/lspet400 (300/100 split).
set -euo pipefail
LSP=${LSP:-data/lsp}
RUNS=${RUNS:-runs/lsp}
STEPS=${STEPS:-}   # e.g. STEPS=200 for a quick CPU try-out
length=()
[ -n "$STEPS" ] && length=(--max-steps "$STEPS")
fpdctl train --model hg8x256 --data "lsp:$LSP" "${length[@]}" --out "$RUNS/teacher"
fpdctl distill --teacher "$RUNS/teacher/best.safetensors" --student hg4x128 --alpha 0.5 \
  --data "lsp:$LSP" "${length[@]}" --out "$RUNS/fpd-hg4x128"
fpdctl eval "$RUNS/fpd-hg4x128/best.safetensors" --data "lsp:$LSP"   # PCK@0.2, torso-normalised
