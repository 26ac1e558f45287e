"""Does Fast Pose Distillation help? A fixed, CPU-sized experiment on the synthetic data.

For each seed: train a teacher on the ground truth, train the student on the ground truth alone,
and distil the student from that seed's teacher (FPD, alpha 0.5). Every run goes through the real
command line (``python -m fpdctl train|distill``), so the commands printed here reproduce it.
Accuracy is the final model's validation PCKh@0.5 (pooled mean, flip test) on the synthetic val
split, read from each run's ``eval.json``; the table gives mean +- sample std over the seeds.

Usage::

    python benchmarks/fpd_synthetic_experiment.py --out /tmp/fpd-experiment
    python benchmarks/fpd_synthetic_experiment.py --out /tmp/fpd-experiment --steps 200  # smoke run

Runs already finished in ``--out`` are reused (their eval.json is read), so an interrupted
experiment continues where it stopped when started again with the same options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunSpec:
    """One training run of the experiment.

    Attributes:
        role: "teacher", "student" (ground truth only) or "fpd" (distilled student).
        seed: seed of weights, data order and augmentation.
        command: the argv after ``python -m fpdctl``.
        out: the run directory.
    """

    role: str
    seed: int
    command: list[str]
    out: Path


def plan(args: argparse.Namespace) -> list[RunSpec]:
    """The runs in execution order: per seed, teacher, student alone, FPD student."""
    common = [
        "--data", args.data,
        "--input-size", str(args.input_size),
        "--batch-size", str(args.batch_size),
        "--max-steps", str(args.steps),
        "--lr", str(args.lr),
        "--schedule", "cosine",
        "--eval-every", "0",
        "--log-every", str(max(args.steps // 20, 1)),
        "--workers", str(args.workers),
        "--precision", args.precision,
        "--val-limit", str(args.val_limit),
    ]
    runs: list[RunSpec] = []
    root = Path(args.out)
    for seed in args.seeds:
        teacher_dir = root / f"teacher-{args.teacher}-s{seed}"
        runs.append(RunSpec("teacher", seed, ["train", "--model", args.teacher, "--seed", str(seed), *common,
                                             "--out", str(teacher_dir)], teacher_dir))
        student_dir = root / f"student-{args.student}-s{seed}"
        runs.append(RunSpec("student", seed, ["train", "--model", args.student, "--seed", str(seed), *common,
                                             "--out", str(student_dir)], student_dir))
        fpd_dir = root / f"fpd-{args.student}-a{args.alpha:g}-s{seed}"
        fpd = ["distill", "--teacher", str(teacher_dir / "last.safetensors"), "--student", args.student,
               "--alpha", str(args.alpha), "--seed", str(seed), *common, "--out", str(fpd_dir)]
        if not args.mask_teacher:
            fpd.insert(1, "--no-mask-teacher")
        runs.append(RunSpec("fpd", seed, fpd, fpd_dir))
    return runs


def run_one(spec: RunSpec, log_dir: Path) -> dict:
    """Run (or reuse) one training run and return its summary."""
    eval_file = spec.out / "eval.json"
    started = time.time()
    if not eval_file.is_file():
        if spec.out.exists():  # an interrupted run: continue it exactly
            argv = [spec.command[0], "--resume", str(spec.out)]
        else:
            argv = spec.command
        log = log_dir / f"{spec.out.name}.log"
        with open(log, "w") as handle:
            done = subprocess.run([sys.executable, "-m", "fpdctl", *argv], stdout=handle, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise SystemExit(f"{spec.role} seed {spec.seed} failed (exit {done.returncode}); see {log}")
    data = json.loads(eval_file.read_text())
    final = data["final"]
    config = json.loads((spec.out / "config.json").read_text())
    return {
        "role": spec.role,
        "seed": spec.seed,
        "model": data["model"],
        "pckh": final["pckh"]["mean"],
        "pckh_at_0_1": final.get("pckh@0.1"),
        "groups": final["pckh"],
        "persons": final.get("persons"),
        "steps": final["step"],
        "command": "fpdctl " + " ".join(spec.command),
        "run_dir": str(spec.out),
        "precision": config["resolved"]["precision"],
        "seconds": round(time.time() - started, 1),
    }


def summarize(results: list[dict]) -> dict[str, dict]:
    """Mean, sample std and the per-seed values of each role."""
    table: dict[str, dict] = {}
    for role in ("teacher", "student", "fpd"):
        values = [r["pckh"] for r in results if r["role"] == role]
        if not values:
            continue
        table[role] = {
            "model": next(r["model"] for r in results if r["role"] == role),
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values),
            "per_seed": values,
        }
    return table


def diagnose(args: argparse.Namespace, seed: int) -> dict:
    """Split one seed's validation joints by whether the teacher is right, and compare students.

    A joint counts as right when its PCKh@0.5 test passes (pelvis and thorax excluded, as in the
    mean). Also reports how often a student's prediction lands within the PCKh radius of the
    teacher's WRONG answer (copying the teacher's mistakes) and the mean heatmap peak.
    """
    import numpy as np
    import torch

    from fpdctl.data.registry import build_dataset
    from fpdctl.evaluate import predict_dataset
    from fpdctl.metrics.pckh import PCKH_THRESHOLD, head_sizes
    from fpdctl.models.checkpoint import create_model

    root = Path(args.out)
    val = build_dataset(args.data, "val", input_size=args.input_size)
    n = min(args.val_limit, len(val))
    ref = val.eval_reference()
    joints, visible = ref.joints[:n], ref.visible[:n].copy()
    visible[:, [6, 7]] = False  # pelvis, thorax: not in the PCKh mean
    size = head_sizes(ref.headboxes[:n])[:, None]
    subset = torch.utils.data.Subset(val, range(n))

    def predict(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        coords, scores = predict_dataset(create_model(run_dir / "last.safetensors"), subset, flip=True, batch_size=50)
        return coords, scores

    runs = {spec.role: spec.out for spec in plan(args) if spec.seed == seed}
    (tc, ts), (sc, ss), (fc, fs) = predict(runs["teacher"]), predict(runs["student"]), predict(runs["fpd"])

    def hit(coords: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.linalg.norm(coords - target, axis=2) / size <= PCKH_THRESHOLD

    right, s_hit, f_hit = hit(tc, joints), hit(sc, joints), hit(fc, joints)
    out: dict = {"seed": seed}
    for name, mask in (("teacher_right", right & visible), ("teacher_wrong", ~right & visible)):
        out[name] = {
            "share": float(100 * mask.sum() / visible.sum()),
            "student": float(100 * s_hit[mask].mean()),
            "fpd": float(100 * f_hit[mask].mean()),
        }
    wrong = ~right & visible
    out["near_teacher_mistake"] = {
        "student": float(100 * hit(sc, tc)[wrong].mean()),
        "fpd": float(100 * hit(fc, tc)[wrong].mean()),
    }
    out["mean_peak"] = {k: float(v[visible].mean()) for k, v in (("teacher", ts), ("student", ss), ("fpd", fs))}
    return out


def render_diagnosis(rows: list[dict]) -> str:
    lines = [
        "| seed | teacher right: share, student, FPD | teacher wrong: share, student, FPD "
        "| near the teacher's mistake: student, FPD | mean peak: teacher, student, FPD |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        a, b, c, p = r["teacher_right"], r["teacher_wrong"], r["near_teacher_mistake"], r["mean_peak"]
        lines.append(
            f"| {r['seed']} | {a['share']:.1f}%: {a['student']:.1f}, {a['fpd']:.1f} "
            f"| {b['share']:.1f}%: {b['student']:.1f}, {b['fpd']:.1f} "
            f"| {c['student']:.1f}, {c['fpd']:.1f} "
            f"| {p['teacher']:.3f}, {p['student']:.3f}, {p['fpd']:.3f} |"
        )
    return "\n".join(lines)


def render(table: dict[str, dict]) -> str:
    names = {"teacher": "teacher", "student": "student alone", "fpd": "FPD student"}
    lines = ["| run | model | PCKh@0.5 (mean +- std) | seeds | per seed |", "|---|---|---|---|---|"]
    for role, row in table.items():
        per_seed = ", ".join(f"{v:.2f}" for v in row["per_seed"])
        lines.append(
            f"| {names[role]} | {row['model']} | {row['mean']:.2f} +- {row['std']:.2f} | {row['n']} | {per_seed} |"
        )
    if "student" in table and "fpd" in table:
        pairs = min(table["student"]["n"], table["fpd"]["n"])
        deltas = [f - s for f, s in zip(table["fpd"]["per_seed"][:pairs], table["student"]["per_seed"][:pairs])]
        lines.append("")
        lines.append(
            f"FPD - student alone, paired by seed: {', '.join(f'{d:+.2f}' for d in deltas)} "
            f"(mean {statistics.fmean(deltas):+.2f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the run directories, logs and results")
    parser.add_argument("--teacher", default="hg2x64")
    parser.add_argument("--student", default="hg1x32")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--no-mask-teacher", dest="mask_teacher", action="store_false")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--val-limit", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", default=None, help="results file (default: OUT/results.json)")
    parser.add_argument("--no-diagnose", dest="diagnose", action="store_false",
                        help="skip the per-joint comparison split by the teacher's hits")
    args = parser.parse_args(argv)

    root = Path(args.out)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results_file = Path(args.json) if args.json else root / "results.json"
    results: list[dict] = []
    started = time.time()
    for spec in plan(args):
        print(f"[{time.strftime('%H:%M:%S')}] {spec.role} seed {spec.seed}: fpdctl {' '.join(spec.command)}", flush=True)
        result = run_one(spec, logs)
        results.append(result)
        print(f"    PCKh {result['pckh']:.2f} ({result['seconds']:.0f} s)", flush=True)
        table = summarize(results)
        payload = {
            "experiment": "fpd-synthetic",
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "date": time.strftime("%Y-%m-%d"),
            "elapsed_s": round(time.time() - started, 1),
            "summary": table,
            "runs": results,
        }
        results_file.write_text(json.dumps(payload, indent=2) + "\n")
    print()
    print(render(summarize(results)))
    if args.diagnose:
        diagnosis = [diagnose(args, seed) for seed in args.seeds]
        payload["diagnosis"] = diagnosis
        results_file.write_text(json.dumps(payload, indent=2) + "\n")
        print()
        print(render_diagnosis(diagnosis))
    print(f"\nresults: {results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
