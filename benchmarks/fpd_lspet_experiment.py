"""FPD on real photos: fine-tune the synthetic models on 300 LSPET photos, score PCK@0.2 on 100.

The only real-image accuracy these machines can measure. ``lsp:DIR`` with LSPET alone splits it
300 train / 100 validation (fixed: the last quarter is held out). Per seed, three runs, each
starting from what the synthetic experiment (``benchmarks/fpd_synthetic_experiment.py``) left:

- teacher: the reference teacher fine-tuned on the 300 photos (one run, seed 0, shared by all);
- student alone: that seed's synthetic student-alone checkpoint fine-tuned on the ground truth;
- FPD: that seed's synthetic FPD student, fine-tuned with FPD from the fine-tuned teacher.

With ``--loss kl`` the pair is the synthetic experiment's KL arms instead: "klgt" (the student
with the KL loss against the labels' own maps, ``--teacher ground-truth``) fine-tuned the same way,
and "kl" (FPD with the KL term) fine-tuned with it from the fine-tuned teacher; "kl" is paired
against "klgt", so the difference is what the teacher adds under one loss.

Same steps, seed, data order and augmentation for the two students of a seed. Every run is the
real command line (``python -m fpdctl ...``); results are each run's ``eval.json`` (PCK@0.2 on the
100 held-out photos, flip test). Finished runs are reused, interrupted ones resumed.

Usage::

    python benchmarks/fpd_lspet_experiment.py --synthetic runs/fpd-experiment --out runs/fpd-lspet

Without the shared data (``--data``'s folder missing), it says so and exits 0: the photos are not
part of a user's clone.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from fpd_synthetic_experiment import RunSpec, _cpu_name, render, run_one, summarize

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lspet400"


def plan(args: argparse.Namespace) -> list[RunSpec]:
    """The teacher's fine-tune first, then per seed the student alone and the FPD student."""
    root, synthetic = Path(args.out), Path(args.synthetic)
    common = [
        "--data",
        f"lsp:{args.data}",
        "--input-size",
        str(args.input_size),
        "--batch-size",
        str(args.batch_size),
        "--max-steps",
        str(args.steps),
        "--lr",
        str(args.lr),
        "--schedule",
        "cosine",
        "--eval-every",
        "0",
        "--save-every",
        str(max(args.steps // 4, 1)),
        "--log-every",
        str(max(args.steps // 10, 1)),
        "--workers",
        str(args.workers),
    ]
    teacher_dir = root / "teacher"
    runs = [
        RunSpec(
            "teacher",
            0,
            [
                "train",
                "--model",
                args.teacher_model,
                "--init",
                args.teacher,
                "--seed",
                "0",
                *common,
                "--out",
                str(teacher_dir),
            ],
            teacher_dir,
        )
    ]
    alone_arm, fpd_arm = ARMS[args.loss]
    kd = KL_FLAGS if args.loss == "kl" else []
    for seed in args.seeds:
        alone = synthetic / f"{alone_arm}-{args.student}-s{seed}" / "last.safetensors"
        fpd = synthetic / f"{fpd_arm}-{args.student}-s{seed}" / "last.safetensors"
        out = root / f"{alone_arm}-s{seed}"
        if args.loss == "kl":  # the same loss with the labels in the teacher's place
            head = [
                "distill",
                "--teacher",
                "ground-truth",
                "--student",
                args.student,
                "--student-init",
                str(alone),
                *kd,
            ]
        else:
            head = ["train", "--model", args.student, "--init", str(alone)]
        runs.append(RunSpec(alone_arm, seed, [*head, "--seed", str(seed), *common, "--out", str(out)], out))
        out = root / f"{fpd_arm}-s{seed}"
        runs.append(
            RunSpec(
                fpd_arm,
                seed,
                [
                    "distill",
                    "--teacher",
                    str(teacher_dir / "last.safetensors"),
                    "--student",
                    args.student,
                    "--student-init",
                    str(fpd),
                    *kd,
                    "--alpha",
                    "0.5",
                    "--seed",
                    str(seed),
                    *common,
                    "--out",
                    str(out),
                ],
                out,
            )
        )
    return runs


# --loss -> (the synthetic experiment's student-alone arm, its FPD arm).
ARMS: dict[str, tuple[str, str]] = {"mse": ("student", "fpd"), "kl": ("klgt", "kl")}
KL_FLAGS: list[str] = ["--kd-loss", "kl", "--kd-temperature", "0.1"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--synthetic", required=True, help="the synthetic experiment's --out folder")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the lspet400 folder")
    parser.add_argument("--teacher", default="synthetic-hg2x64", help="teacher name or checkpoint")
    parser.add_argument("--teacher-model", default="hg2x64")
    parser.add_argument("--student", default="hg1x32")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2.5e-4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--loss",
        choices=sorted(ARMS),
        default="mse",
        help="mse: the paper's pair (student alone, FPD); kl: the KL arms (klgt, kl)",
    )
    parser.add_argument("--json", default=None, help="results file (default: OUT/results.json, OUT/results-kl.json)")
    args = parser.parse_args(argv)
    if not (Path(args.data) / "joints.mat").is_file():
        print(f"skipped: no LSPET photos at {args.data} (the shared data is not part of a clone)")
        return 0
    root = Path(args.out)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    default_name = "results.json" if args.loss == "mse" else f"results-{args.loss}.json"
    results_file = Path(args.json) if args.json else root / default_name
    results, started = [], time.time()
    teacher_pck = None
    for spec in plan(args):
        print(f"[{time.strftime('%H:%M:%S')}] {spec.arm} seed {spec.seed}: fpdctl {' '.join(spec.command)}", flush=True)
        result = run_one(spec, logs)
        print(f"    PCK@0.2 {result['pckh']:.2f} ({result['seconds']:.0f} s)", flush=True)
        if spec.arm == "teacher":
            teacher_pck = result["pckh"]
            continue
        results.append(result)
        payload = {
            "experiment": "fpd-lspet-paired",
            "metric": "PCK@0.2 on the 100 held-out LSPET photos, flip test",
            "options": vars(args),
            "machine": {"platform": platform.platform(), "processor": _cpu_name()},
            "date": time.strftime("%Y-%m-%d"),
            "elapsed_s": round(time.time() - started, 1),
            "teacher": teacher_pck,
            "baseline": ARMS[args.loss][0],
            "summary": summarize(results, ARMS[args.loss][0]),
            "runs": results,
        }
        results_file.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nteacher (fine-tuned): PCK@0.2 {teacher_pck:.2f}\n")
    baseline = ARMS[args.loss][0]
    print(render(summarize(results, baseline), baseline).replace("PCKh@0.5", "PCK@0.2"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
