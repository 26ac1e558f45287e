"""Does Fast Pose Distillation help? Paired seeds on the synthetic data, from the reference teacher.

One fixed teacher (by default the shipped reference teacher ``synthetic-hg2x64``) and one student
architecture (by default ``hg1x32``: the teacher at half the stacks and half the width, as in the
paper). For every seed, each arm trains the student with the same steps, seed, data order and
augmentation; only the loss (or the initialisation) differs:

- ``student``: the ground truth alone (``fpdctl train``);
- ``fpd``: the paper's loss, alpha 0.5 (``fpdctl distill``);
- any ``--variant NAME=FLAGS``: ``fpdctl distill`` with extra flags, e.g.
  ``--variant "a0.9=--alpha 0.9"`` or ``--variant "nomask=--no-mask-teacher"``; FLAGS starting
  with ``--train`` run ``fpdctl train`` instead (another student-alone arm, e.g.
  ``--variant "alone-sliced=--train --init sliced.safetensors"``).

Every run goes through the real command line (``python -m fpdctl ...``), so the printed commands
reproduce it. Accuracy is the final model's PCKh@0.5 (pooled mean, flip test) on the synthetic
validation split, read from the run's ``eval.json``. The report gives each arm's per-seed values,
and each arm's paired differences against the student alone with their mean and 95% t-interval.

Usage::

    python benchmarks/fpd_synthetic_experiment.py --out runs/fpd-experiment
    python benchmarks/fpd_synthetic_experiment.py --out /tmp/smoke --steps 20 --seeds 0 1 --val-limit 20

Runs already finished in ``--out`` are reused (their eval.json is read) and interrupted ones are
resumed, so the experiment continues where it stopped when started again with the same options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
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
        arm: "student" (ground truth only), "fpd", or a variant's name.
        seed: seed of weights, data order and augmentation.
        command: the argv after ``python -m fpdctl``.
        out: the run directory.
    """

    arm: str
    seed: int
    command: list[str]
    out: Path


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=FLAGS`` -> (NAME, FLAGS split as a shell would)."""
    name, sep, flags = text.partition("=")
    if not sep or not name or name in ("student", "fpd"):
        raise SystemExit(f"error: --variant must be NAME=FLAGS with a new NAME, got {text!r}")
    return name, shlex.split(flags)


def common_flags(args: argparse.Namespace) -> list[str]:
    """The recipe every arm shares."""
    return [
        "--data",
        args.data,
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
        str(max(args.steps // args.curve_points, 1)) if args.curve_points else "0",
        "--save-every",
        str(max(args.steps // 8, 1)),
        "--log-every",
        str(max(args.steps // 20, 1)),
        "--workers",
        str(args.workers),
        "--precision",
        args.precision,
        "--val-limit",
        str(args.val_limit),
        *(["--augment-style", args.augment_style] if args.augment_style else []),
    ]


def plan(args: argparse.Namespace) -> list[RunSpec]:
    """The runs in execution order: seed by seed, every arm."""
    common = common_flags(args)
    arms: list[tuple[str, list[str]]] = []
    if "student" in args.arms:
        arms.append(("student", ["train", "--model", args.student]))
    distill = ["distill", "--teacher", args.teacher, "--student", args.student]
    if "fpd" in args.arms:
        arms.append(("fpd", [*distill, "--alpha", "0.5"]))
    for name, flags in args.variant:
        if flags[:1] == ["--train"]:
            arms.append((name, ["train", "--model", args.student, *flags[1:]]))
        else:
            arms.append((name, [*distill, *flags]))
    root = Path(args.out)
    runs: list[RunSpec] = []
    for seed in args.seeds:
        for name, head in arms:
            out = root / f"{name}-{args.student}-s{seed}"
            runs.append(RunSpec(name, seed, [*head, "--seed", str(seed), *common, "--out", str(out)], out))
    return runs


def run_one(spec: RunSpec, log_dir: Path) -> dict:
    """Run (or reuse) one training run and return its summary."""
    eval_file = spec.out / "eval.json"
    started = time.time()
    if not eval_file.is_file():
        if (spec.out / "config.json").is_file():  # an interrupted run: continue it exactly
            argv = [spec.command[0], "--resume", str(spec.out)]
        else:
            argv = [*spec.command, "--overwrite"] if spec.out.exists() else spec.command
        log = log_dir / f"{spec.out.name}.log"
        with open(log, "a") as handle:
            done = subprocess.run(
                [sys.executable, "-m", "fpdctl", *argv], stdout=handle, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            raise SystemExit(f"{spec.arm} seed {spec.seed} failed (exit {done.returncode}); see {log}")
    data = json.loads(eval_file.read_text())
    final = data["final"]
    curve = _validation_curve(spec.out / "metrics.csv")
    return {
        "arm": spec.arm,
        "seed": spec.seed,
        "model": data["model"],
        "pckh": final[data["metric"]]["mean"],  # PCKh, or PCK@0.2 on LSP
        "metric": data["metric"],
        "groups": final[data["metric"]],
        "persons": final.get("persons"),
        "steps": final["step"],
        "curve": curve,
        "command": "fpdctl " + " ".join(spec.command),
        "run_dir": str(spec.out),
        "seconds": round(time.time() - started, 1),
    }


def _validation_curve(metrics_csv: Path) -> list[tuple[int, float]]:
    """(step, PCKh) of every validation the run logged, to show where the student flattened out."""
    import csv

    if not metrics_csv.is_file():
        return []
    with open(metrics_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    column = next((c for c in (rows[0] if rows else {}) if c.startswith("val_")), None)
    return [(int(row["step"]), float(row[column])) for row in rows if column and row.get(column)]


def t_interval(deltas: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided ``level`` Student-t interval of paired differences."""
    from scipy import stats

    mean = statistics.fmean(deltas)
    if len(deltas) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(deltas) - 1) * statistics.stdev(deltas) / len(deltas) ** 0.5
    return mean, mean - half, mean + half


def summarize(results: list[dict], baseline: str = "student") -> dict[str, dict]:
    """Per arm: mean, sample std, per-seed values; against the ``baseline`` arm (by default the
    student alone): paired deltas."""
    by_arm: dict[str, dict[int, float]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r["pckh"]
    base = by_arm.get(baseline, {})
    table: dict[str, dict] = {}
    for arm, values in by_arm.items():
        row: dict = {
            "mean": statistics.fmean(values.values()),
            "std": statistics.stdev(values.values()) if len(values) > 1 else 0.0,
            "n": len(values),
            "per_seed": values,
        }
        paired = sorted(set(values) & set(base))
        if arm != baseline and paired:
            deltas = [values[s] - base[s] for s in paired]
            mean, low, high = t_interval(deltas)
            row["paired"] = {
                "seeds": paired,
                "deltas": deltas,
                "mean": mean,
                "ci95": [low, high],
                "wins": sum(d > 0 for d in deltas),
            }
        table[arm] = row
    return table


def render(table: dict[str, dict], baseline: str = "student") -> str:
    """A markdown table of the arms and their paired differences."""
    against = "student alone" if baseline == "student" else baseline
    lines = [
        f"| arm | PCKh@0.5 mean +- std | seeds | per seed | minus {against}: mean [95% CI] | wins |",
        "|---|---|---|---|---|---|",
    ]
    for arm, row in table.items():
        per_seed = ", ".join(f"{v:.2f}" for _, v in sorted(row["per_seed"].items()))
        paired = row.get("paired")
        delta = f"{paired['mean']:+.2f} [{paired['ci95'][0]:+.2f}, {paired['ci95'][1]:+.2f}]" if paired else ""
        wins = f"{paired['wins']}/{len(paired['deltas'])}" if paired else ""
        lines.append(f"| {arm} | {row['mean']:.2f} +- {row['std']:.2f} | {row['n']} | {per_seed} | {delta} | {wins} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the run directories, logs and results")
    parser.add_argument("--teacher", default="synthetic-hg2x64", help="teacher name or checkpoint")
    parser.add_argument("--student", default="hg1x32")
    parser.add_argument("--arms", default="student,fpd", help="which of student,fpd to run")
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        help="NAME=FLAGS: one more distillation arm with extra flags (repeatable)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument(
        "--curve-points",
        type=int,
        default=4,
        help="validations per run, to see the student flatten out (0: only at the end)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--val-limit", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--augment-style",
        default=None,
        help="official or uniform (default: fpdctl's default; the 2026-11-30 runs used uniform)",
    )
    parser.add_argument("--json", default=None, help="results file (default: OUT/results.json)")
    parser.add_argument(
        "--baseline",
        default="student",
        help="the arm the others are paired against (e.g. klgt: the same loss without a teacher)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: report the planned runs that have finished"
    )
    args = parser.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]

    root = Path(args.out)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results_file = Path(args.json) if args.json else root / "results.json"
    results: list[dict] = []
    started = time.time()
    payload: dict = {}
    for spec in plan(args):
        if args.report_only and not (spec.out / "eval.json").is_file():
            print(f"not finished: {spec.arm} seed {spec.seed} ({spec.out})")
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {spec.arm} seed {spec.seed}: fpdctl {' '.join(spec.command)}", flush=True)
        result = run_one(spec, logs)
        results.append(result)
        print(f"    PCKh {result['pckh']:.2f} ({result['seconds']:.0f} s)", flush=True)
        payload = {
            "experiment": "fpd-synthetic-paired",
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": {
                "platform": platform.platform(),
                "processor": _cpu_name(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            },
            "date": time.strftime("%Y-%m-%d"),
            "elapsed_s": round(time.time() - started, 1),
            "baseline": args.baseline,
            "summary": summarize(results, args.baseline),
            "runs": results,
        }
        results_file.write_text(json.dumps(payload, indent=2) + "\n")
    print()
    print(render(summarize(results, args.baseline), args.baseline))
    print(f"\nresults: {results_file}")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
