#!/usr/bin/env bash
# `make demo`: the whole fpdctl pipeline on the built-in synthetic data, on a CPU, in minutes.
#   profile -> train a small teacher -> prune-sweep -> distill the recommended student -> eval
#   -> export fp32 + int8 -> bench teacher against student -> predict -> summary table.
# Everything lands in the report directory ($1, default demo-output/).
set -euo pipefail
OUT=${1:-demo-output}
FPDCTL=${FPDCTL:-.venv/bin/fpdctl}
PY=${PY:-.venv/bin/python}
SIZE=128                  # input side: small so a 2-core CPU finishes in minutes
TEACHER=hg2x64
TEACHER_STEPS=${TEACHER_STEPS:-400}
SWEEP_STEPS=${SWEEP_STEPS:-60}
DISTILL_STEPS=${DISTILL_STEPS:-250}
VAL=synthetic:length=200  # validation persons for every PCKh figure
rm -rf "$OUT"
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
start=$(date +%s)

step "1. profile: what each hourglass size costs (paper grid, 256 px)"
$FPDCTL profile --plot "$OUT/profile.png" --format table
$FPDCTL profile --format json --output "$OUT/profile.json"
$FPDCTL data preview --out "$OUT/synthetic_samples.png" --count 16

step "2. train a small teacher ($TEACHER, $TEACHER_STEPS steps, quick preset)"
$FPDCTL train --preset quick --model $TEACHER --input-size $SIZE --max-steps "$TEACHER_STEPS" \
  --data synthetic --out "$OUT/teacher"

step "3. prune-sweep: which student? (sliced from the teacher vs from scratch)"
$FPDCTL prune-sweep --teacher "$OUT/teacher/best.safetensors" --stacks 1,2 --channels 32 \
  --init both --max-steps "$SWEEP_STEPS" --input-size $SIZE --val-limit 200 --max-drop 5 --out "$OUT/sweep"
STUDENT=$($PY -c "import json,sys; r=json.load(open(sys.argv[1]))['recommendation']; print(r.get('model') or 'hg1x32')" "$OUT/sweep/summary.json")
INIT=$($PY -c "import json,sys; r=json.load(open(sys.argv[1]))['recommendation']; print(r.get('checkpoint') or '')" "$OUT/sweep/summary.json")
echo "recommended student: $STUDENT ${INIT:+(init from $INIT)}"

step "4. distill the recommended student ($STUDENT, alpha 0.5, $DISTILL_STEPS steps)"
$FPDCTL distill --preset quick --teacher "$OUT/teacher/best.safetensors" --student "$STUDENT" \
  ${INIT:+--student-init "$INIT"} --alpha 0.5 --input-size $SIZE --max-steps "$DISTILL_STEPS" \
  --data synthetic --out "$OUT/student"

step "5. eval teacher and student on the synthetic validation split (PCKh@0.5, flip test)"
$FPDCTL eval "$OUT/teacher/best.safetensors" --data $VAL --input-size $SIZE --format json --output "$OUT/eval_teacher.json"
$FPDCTL eval "$OUT/student/best.safetensors" --data $VAL --input-size $SIZE --format json --output "$OUT/eval_student.json"

step "6. export the student to ONNX: fp32 (verified against PyTorch) and int8 (calibrated)"
$FPDCTL export "$OUT/student/best.safetensors" -o "$OUT/student_fp32.onnx" --input-size $SIZE
$FPDCTL export "$OUT/student/best.safetensors" -o "$OUT/student_int8.onnx" --input-size $SIZE \
  --precision int8 --calibration-data synthetic --calibration-samples 64 --validation-samples 200 \
  --format json > "$OUT/export_int8.json"
$PY -c "import json,sys; a=json.load(open(sys.argv[1]))['accuracy']; print(f\"int8 student: PCKh {a['candidate_mean']:.2f} vs fp32 {a['reference_mean']:.2f} on {a['samples']} synthetic val persons (drop {a['drop']:.2f})\")" "$OUT/export_int8.json"
$FPDCTL export "$OUT/teacher/best.safetensors" -o "$OUT/teacher_fp32.onnx" --input-size $SIZE

step "7. bench: teacher against student, batch 1, ONNX Runtime (the summary shows the figures)"
$FPDCTL bench "$OUT/teacher_fp32.onnx" "$OUT/student_fp32.onnx" "$OUT/student_int8.onnx" \
  --batch 1 --iters 30 --format json --output "$OUT/bench.json"

step "8. predict: keypoints drawn on a few images"
mkdir -p "$OUT/inputs"
$FPDCTL data synth --out "$OUT/inputs/synth" --count 4 --size 256
$FPDCTL predict "$OUT/student_fp32.onnx" "$OUT/inputs/synth/images" --out "$OUT/predictions"

step "summary"
$PY examples/demo_summary.py "$OUT"
echo "demo finished in $(( $(date +%s) - start )) s; report in $OUT/"
