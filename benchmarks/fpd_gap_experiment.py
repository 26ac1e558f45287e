"""How much of the teacher-vs-student gap does FPD give back, with a student close to its teacher?

The paper's own figures (official code, MPII validation): teacher 90.52, student alone 87.93, FPD
student 89.04, so FPD returns 1.11 of a 2.59 gap: 43 %. This experiment measures the same
fraction with the shipped reference teacher ``synthetic-hg2x64`` and a student sliced from it
(``fpdctl prune``), whose student alone ends a few points under the teacher.

Arms, per seed (same init, seed, data order and schedule; only the loss differs):

- ``alone``: the sliced student trained on the ground truth alone (``fpdctl train --init``);
- ``fpd``: the paper's loss, MSE, alpha 0.5 (``fpdctl distill --student-init``);
- ``klgt``: the control of the KL variant, KL to the labels' own heatmaps, no teacher
  (``fpdctl distill --teacher ground-truth --kd-loss kl``);
- ``kl``: the KL variant, alpha 0.5, T = 0.1, against ``klgt``.

The teacher is scored with ``fpdctl eval`` on the same validation persons with the same
protocol as every student (PCKh@0.5, pooled mean, flip test). Per seed, the fraction of the gap
recovered is ``(fpd - alone) / (teacher - alone)`` (and ``(kl - klgt) / (teacher - klgt)``).

Usage::

    python benchmarks/fpd_gap_experiment.py --out /work/runs/gap-hg2x32 --student hg2x32 --jobs 2
    python benchmarks/fpd_gap_experiment.py --out /tmp/smoke --student hg1x16 --steps 10 --seeds 0 \\
        --val-limit 16 --arms alone,fpd

Runs already finished in ``--out`` are reused and interrupted ones resumed (the runner of
``fpd_synthetic_experiment.py``), so rerunning the command trains only what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fpd_synthetic_experiment as paired  # the runner, t-interval and summary of section 1.2

PAPER = {"teacher": 90.52, "alone": 87.93, "fpd": 89.04}  # official code, MPII validation
KL_FLAGS = ["--kd-loss", "kl", "--kd-temperature", "0.1"]


def arm_flags(arm: str, init: Path) -> list[str]:
    """The variant flags of ``arm`` for the experiment runner (``--train`` = ``fpdctl train``)."""
    return {
        "alone": ["--train", "--init", str(init)],
        "fpd": ["--alpha", "0.5", "--student-init", str(init)],
        "klgt": ["--teacher", "ground-truth", *KL_FLAGS, "--student-init", str(init)],
        "kl": ["--alpha", "0.5", *KL_FLAGS, "--student-init", str(init)],
    }[arm]


def slice_teacher(teacher: str, student: str, input_size: int, out: Path) -> Path:
    """The student cut out of the teacher (its first stacks, its most important channels), made
    once: written under another name and renamed, so an interrupted run leaves no half file."""
    path = out / f"sliced-{student}.safetensors"
    if not path.is_file():
        partial = path.with_suffix(".part.safetensors")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fpdctl",
                "prune",
                "--teacher",
                teacher,
                "--to",
                student,
                "--input-size",
                str(input_size),
                "-o",
                str(partial),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        partial.replace(path)
    return path


def score_teacher(args: argparse.Namespace, out: Path) -> float:
    """The teacher's PCKh with ``fpdctl eval`` on the whole validation split: the persons and
    protocol of every student when ``--val-limit`` is the split's size (500, the default)."""
    cache = out / "teacher-eval.json"
    if not cache.is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fpdctl",
                "eval",
                args.teacher,
                "--data",
                args.data,
                "--input-size",
                str(args.input_size),
                "--format",
                "json",
                "--output",
                str(cache),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    report = json.loads(cache.read_text())
    return float(report["pckh"]["mean"])


def gap_fractions(teacher: float, base: dict[int, float], arm: dict[int, float]) -> dict[int, float]:
    """Per seed: the share of the teacher-vs-base gap the arm recovers."""
    return {s: (arm[s] - base[s]) / (teacher - base[s]) for s in sorted(set(base) & set(arm))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--teacher", default="synthetic-hg2x64")
    parser.add_argument("--student", default="hg2x32")
    parser.add_argument("--arms", default="alone,fpd,klgt,kl")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--curve-points", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--val-limit", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--augment-style", default="uniform")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at a time (one thread each)")
    parser.add_argument("--json", default=None, help="results file (default: OUT/fpd_gap_experiment.json)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    init = slice_teacher(args.teacher, args.student, args.input_size, out)
    teacher = score_teacher(args, out)

    runner_args = argparse.Namespace(**{**vars(args), "arms": [], "variant": [(a, arm_flags(a, init)) for a in arms]})
    specs = paired.plan(runner_args)
    if args.jobs > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.time()

    def one(spec: paired.RunSpec) -> dict | None:
        if args.report_only and not (spec.out / "eval.json").is_file():
            return None
        print(f"[{time.strftime('%H:%M:%S')}] {spec.arm} seed {spec.seed}", flush=True)
        result = paired.run_one(spec, out / "logs")
        print(f"    {spec.arm} seed {spec.seed}: PCKh {result['pckh']:.2f} ({result['seconds']:.0f} s)", flush=True)
        return result

    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        results = [r for r in pool.map(one, specs) if r is not None]

    per_arm: dict[str, dict[int, float]] = {}
    for r in results:
        per_arm.setdefault(r["arm"], {})[r["seed"]] = r["pckh"]
    summary = {"alone": paired.summarize(results, "alone"), "klgt": paired.summarize(results, "klgt")}
    recovered: dict[str, dict] = {}
    for arm, base in (("fpd", "alone"), ("kl", "klgt")):
        if arm in per_arm and base in per_arm:
            fractions = gap_fractions(teacher, per_arm[base], per_arm[arm])
            if fractions:
                recovered[f"{arm}_vs_{base}"] = {
                    "per_seed": fractions,
                    "mean": statistics.fmean(fractions.values()),
                    "of_means": (
                        statistics.fmean(per_arm[arm][s] for s in fractions)
                        - statistics.fmean(per_arm[base][s] for s in fractions)
                    )
                    / (teacher - statistics.fmean(per_arm[base][s] for s in fractions)),
                }
    seeds = sorted(set(per_arm.get("alone", {})) & set(per_arm.get("fpd", {})))
    payload = {
        "experiment": "fpd-gap",
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"processor": paired._cpu_name(), "cpus": os.cpu_count()},
        "date": time.strftime("%Y-%m-%d"),
        "elapsed_s": round(time.time() - started, 1),
        "teacher_pckh": teacher,
        "seeds": seeds,
        "alone": [per_arm["alone"][s] for s in seeds],
        "fpd": [per_arm["fpd"][s] for s in seeds],
        "per_arm": per_arm,
        "gap_recovered": recovered,
        "paper": {**PAPER, "gap_recovered": (PAPER["fpd"] - PAPER["alone"]) / (PAPER["teacher"] - PAPER["alone"])},
        "summary": summary,
        "runs": results,
    }
    target = Path(args.json) if args.json else out / "fpd_gap_experiment.json"
    target.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nteacher {teacher:.2f}")
    print(paired.render(summary["alone"], "alone"))
    print()
    print(paired.render(summary["klgt"], "klgt"))
    for name, row in recovered.items():
        per_seed = ", ".join(f"{v:.0%}" for _, v in sorted(row["per_seed"].items()))
        print(
            f"gap recovered, {name}: mean {row['mean']:.1%} (per seed {per_seed}); of the means {row['of_means']:.1%}"
        )
    print(f"results: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
