#!/usr/bin/env bash
# Multi-GPU distillation with torchrun + DistributedDataParallel. --batch-size is per process;
# only rank 0 writes the run directory; the frozen teacher is never wrapped in DDP.
# Without GPUs the same command runs N CPU processes with the gloo backend (slow, but it works).
set -euo pipefail
NPROC=${NPROC:-2}
TEACHER=${TEACHER:-runs/teacher/best.safetensors}
torchrun --standalone --nproc_per_node "$NPROC" -m fpdctl distill \
  --teacher "$TEACHER" --student hg4x128 --alpha 0.5 --data "${DATA:-synthetic}" \
  --batch-size "${BATCH:-8}" ${STEPS:+--max-steps "$STEPS"} --out "${OUT:-runs/fpd-ddp}"
# Multi-node: torchrun --nnodes 2 --node_rank $RANK --rdzv_endpoint $HOST:29400 -m fpdctl distill ...
