"""FPD as the official code ran it: a trained student given a second schedule, with and without its teacher.

The official code's FPD row (MPII val: teacher 90.52, student alone 87.93, FPD 89.04, the "43 %")
is a student first trained alone, then trained a second full schedule from those weights with the
teacher (``TRAIN.CHECKPOINT``); FPD from scratch (its FPD* row) got 87.60, under the student alone.
No official row gives the same student the second schedule without the teacher, so the 43 % mixes
a second schedule with the teacher. This experiment separates them (issue 29).

``--mode protocol`` (the default), per seed (0-4 by default):

- ``stage1``: the student alone from scratch (``fpdctl train``), once;
- ``continued_alone``: a second schedule from stage 1's weights without the teacher
  (``fpdctl train --init STAGE1``: fresh optimiser, schedule and step count);
- ``continued_fpd``: the same second schedule with the teacher, the paper's loss, alpha 0.5
  (``fpdctl distill --student-init STAGE1``).

The two stage-2 arms share the seed, data order, augmentation, schedule and initial weights;
only the loss differs. Per seed it reports the paper's measure ``(FPD - stage1) / (teacher -
stage1)`` (the official 43 %) and the teacher's own share ``(FPD - continued alone) / (teacher -
continued alone)``, with means, 95 % t-intervals and wins.

``--demo``: the same protocol at the demo's size and recipe (issue 29, item 4): hg1x32 sliced from
the teacher (``fpdctl prune``), 500 steps a schedule, fp32 on the AVX2 kernels, the demo's
training flags. It adds the demo's own arm, ``one_schedule_fpd`` (FPD from the same sliced weights,
one schedule), so one seed list tells which protocol shows FPD more clearly within the demo's
time, and records each run's wall time (``--init sliced`` and ``--one-schedule`` give the same for
any student).

``--mode noise``: the README's open hypothesis, that the paper's gain comes from smoothing
annotation noise, tested where the README states it (section 1.7's student close to its teacher).
A teacher (``--noise-teacher-model``, the reference teacher's recipe) is trained on
``synthetic:label_noise=NOISE``; then ``fpd_gap_experiment.py`` (1.7's design) runs on those noisy
labels: per seed the student sliced from the noisy teacher, trained alone and with FPD from it,
one schedule. The exact-label condition is the same design with the shipped teacher, taken from
``--clean-json`` (1.7's results) when its recipe matches, else run. It reports the teacher's share
under noise against the share without it, per seed, and what the noise costs the student alone.

Protocol-mode rows are scored by ``fpdctl eval`` on the final weights (the same function for every row and
the teacher, flip test on, the whole synthetic validation split, whose labels are exact in both
modes), written to ``RUN/final-eval.json``; noise-mode rows by the trainer's final validation on
the same 500 persons, as in 1.7. A run whose final eval exists is not trained again, an
interrupted one is resumed (``--resume``), and each finished row is written to the results JSON at
once, so the command can be stopped and started again across sessions. Stage-1 checkpoints (under
1 MB for small students) and their evals are kept under ``--store``, so stage 2 can run in a later
session without the stage-1 run directory.

Usage::

    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/fpd_protocol_experiment.py \\
        --out runs/fpd-protocol --student hg1x64 --steps 4000 --jobs 2
    python benchmarks/fpd_protocol_experiment.py --out runs/fpd-noise --mode noise --student hg1x64 \
        --steps 1000 --curve-points 2 --workers 1 --jobs 2
    python benchmarks/fpd_protocol_experiment.py --out runs/demo-protocol --demo --jobs 2
    python benchmarks/fpd_protocol_experiment.py --out /tmp/smoke --student hg1x16 --steps 4 --seeds 0 \\
        --input-size 64 --val-limit 8 --store /tmp/smoke/store --json /tmp/smoke/r.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fpd_gap_experiment as gap  # the slice of the teacher
import fpd_synthetic_experiment as paired  # the recipe flags, the t-interval, the CPU name

# The official code's README, MPII val PCKh@0.5 ("Results on MPII val").
PAPER = {"teacher": 90.520, "alone": 87.934, "fpd_scratch": 87.598, "fpd_two_schedule": 89.040}
# fpdctl's one-schedule shares (docs/RESULTS.md 1.3 and 1.7), the analogue of the FPD* row.
ONE_SCHEDULE = {"hg1x32 sliced, 4,000 steps (1.3)": 0.047, "hg1x64 sliced, 1,000 steps (1.7)": 0.022}
MAX_STORED_BYTES = 1 << 20
DEFAULT_SEEDS = [0, 1, 2, 3, 4]
# ``--demo``: examples/demo.sh's students (its step 4), and its kernels.
DEMO = {
    "student": "hg1x32",
    "init": "sliced",
    "one_schedule": True,
    "steps": 500,
    "precision": "fp32",
    "workers": 1,
    "val_limit": 100,
    "curve_points": 0,
    "augment_style": "",
    "store": "benchmarks/results/fpd_demo_protocol",
    "json": "benchmarks/results/fpd_demo_protocol_experiment.json",
}
DEMO_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
LOCK = threading.Lock()


def fpdctl(argv: list[str], log: Path) -> None:
    """Run ``python -m fpdctl ARGV``, appending its output to ``log``; fail loudly."""
    with open(log, "a") as handle:
        handle.write(f"\n$ fpdctl {shlex.join(argv)}\n")
        handle.flush()
        done = subprocess.run(
            [sys.executable, "-m", "fpdctl", *argv], stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        raise SystemExit(f"fpdctl {argv[0]} failed (exit {done.returncode}); see {log}")


def score(checkpoint: Path, report: Path, args: argparse.Namespace, log: Path) -> float:
    """PCKh@0.5 (pooled mean) of ``checkpoint`` by ``fpdctl eval``: flip test on, the whole
    validation split of ``--eval-data``; the report is cached in ``report``."""
    if not report.is_file():
        partial = report.with_suffix(f".{os.getpid()}.partial.json")  # invocations may run side by side
        fpdctl(
            [
                "eval",
                str(checkpoint),
                "--data",
                args.eval_data,
                "--input-size",
                str(args.input_size),
                "--workers",
                "0",
                "--format",
                "json",
                "--output",
                str(partial),
            ],
            log,
        )
        partial.replace(report)
    return float(json.loads(report.read_text())["pckh"]["mean"])


def train_run(head: list[str], seed: int, run: Path, args: argparse.Namespace, data: str, log: Path) -> Path:
    """Train (or resume, or reuse) one run; its final weights."""
    if not (run / "eval.json").is_file():  # the trainer writes it last
        if (run / "config.json").is_file():
            fpdctl([head[0], "--resume", str(run)], log)
        else:
            recipe = paired.common_flags(argparse.Namespace(**{**vars(args), "data": data}))
            extra = ["--overwrite"] if run.exists() else []
            fpdctl([*head, "--seed", str(seed), *recipe, "--out", str(run), *extra], log)
    return run / "last.safetensors"


def command_of(head: list[str], seed: int, args: argparse.Namespace, data: str, run: Path) -> str:
    recipe = paired.common_flags(argparse.Namespace(**{**vars(args), "data": data}))
    return "fpdctl " + shlex.join([*head, "--seed", str(seed), *recipe, "--out", str(run)])


class Results:
    """The results JSON, rewritten (atomically) each time a row finishes.

    Several invocations may run at once (say ``--seeds 0`` beside ``--seeds 1 2 3 4``): each write
    takes an exclusive lock and first merges in the rows the others have written since.
    """

    def __init__(self, path: Path, base: dict[str, Any], arms: list[str], lock: Path) -> None:
        seeds = base["seeds"]  # the lists are by seed whatever order the seeds run in
        self.path, self.seeds, self.arms, self.lock = path, seeds, arms, lock
        self.data = {**base, "commands": [base["command"]], "runs": {}}
        for arm in arms:
            self.data[arm] = [None] * len(seeds)
        with self._locked():
            self._merge()
            self.save()

    def _locked(self):
        import contextlib
        import fcntl

        @contextlib.contextmanager
        def hold():
            with LOCK, open(self.lock, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

        return hold()

    def _merge(self) -> None:
        """Take in the rows already on disk for the same schedule and seeds."""
        old = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if old.get("schedule") != self.data["schedule"] or old.get("seeds") != self.seeds:
            return
        for arm in self.arms:
            for k, value in enumerate(old.get(arm) or []):
                if value is not None and self.data[arm][k] is None:
                    self.data[arm][k] = value
        for arm, rows in old.get("runs", {}).items():
            for seed, row in rows.items():
                self.data["runs"].setdefault(arm, {}).setdefault(seed, row)
        if "date" in old:  # the last row's date, until a new row is written
            self.data.setdefault("date", old["date"])
        commands = old.get("commands") or ([old["command"]] if "command" in old else [])
        self.data["commands"] = commands + [c for c in self.data["commands"] if c not in commands]
        self.data["command"] = self.data["commands"][0]

    def get(self, arm: str, seed: int) -> float | None:
        return self.data[arm][self.seeds.index(seed)]

    def put(self, arm: str, seed: int, pckh: float, **info: Any) -> None:
        with self._locked():
            self._merge()
            self.data[arm][self.seeds.index(seed)] = pckh
            self.data["runs"].setdefault(arm, {})[str(seed)] = {"pckh": pckh, **info}
            self.data["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            self.save()

    def save(self) -> None:
        self.data["summary"] = summarize(self.data)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


def shares(num: dict[int, float], base: dict[int, float], top: float | dict[int, float], seeds: list[int]) -> dict:
    """Per seed ``(num - base) / (top - base)``; a seed whose gap is zero has no share."""
    gap = {s: (top[s] if isinstance(top, dict) else top) - base[s] for s in seeds}
    return {s: (num[s] - base[s]) / gap[s] for s in seeds if gap[s] != 0}


def share_stats(values: dict[int, float]) -> dict[str, Any]:
    """Per-seed values, mean and 95 % t-interval."""
    if not values:
        return {}
    mean, low, high = paired.t_interval(list(values.values()))
    ci = [low, high] if len(values) > 1 else None  # no interval from one seed (and no NaN in JSON)
    return {"per_seed": values, "mean": mean, "ci95": ci, "n": len(values)}


def difference(fpd: dict[int, float], alone: dict[int, float], seeds: list[int]) -> dict[str, Any]:
    """FPD minus alone per seed: mean, interval, wins, and ``t`` (mean over its standard error,
    how clearly the seeds show it)."""
    deltas = {s: fpd[s] - alone[s] for s in seeds}
    out = {**share_stats(deltas), "wins": sum(d > 0 for d in deltas.values())}
    if len(deltas) > 1 and statistics.stdev(deltas.values()) > 0:
        out["t"] = out["mean"] / (statistics.stdev(deltas.values()) / len(deltas) ** 0.5)
    return out


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    """The measures of the mode, over the seeds where every arm they need has finished."""
    seeds = data["seeds"]

    def col(arm: str) -> dict[int, float]:
        return {s: v for s, v in zip(seeds, data.get(arm) or []) if v is not None}

    out: dict[str, Any] = {}
    if data["mode"] == "protocol":
        teacher = data["teacher_pckh"]
        s1, alone, fpd = col("stage1"), col("continued_alone"), col("continued_fpd")
        both = sorted(set(s1) & set(alone) & set(fpd))
        out["paper_measure"] = share_stats(shares(fpd, s1, teacher, both))
        out["second_schedule_share"] = share_stats(shares(alone, s1, teacher, both))
        out["teacher_share"] = share_stats(shares(fpd, alone, teacher, both))
        out["fpd_minus_alone"] = difference(fpd, alone, both)
        if "one_schedule_fpd" in data:  # the FPD* analogue: one schedule from stage 1's own init
            one = col("one_schedule_fpd")
            paired_one = sorted(set(s1) & set(one))
            out["one_schedule_share"] = share_stats(shares(one, s1, teacher, paired_one))
            out["one_schedule_fpd_minus_alone"] = difference(one, s1, paired_one)
    else:
        noisy_teacher, clean_teacher = data["teacher_pckh"], data["clean_teacher_pckh"]
        alone, fpd = col("noisy_alone"), col("noisy_fpd")
        clean_alone, clean_fpd = col("clean_alone"), col("clean_fpd")
        noisy = sorted(set(alone) & set(fpd))
        clean = sorted(set(clean_alone) & set(clean_fpd))
        share_noisy = shares(fpd, alone, noisy_teacher, noisy)
        share_clean = shares(clean_fpd, clean_alone, clean_teacher, clean)
        out["teacher_share_noisy"] = share_stats(share_noisy)
        out["teacher_share_clean"] = share_stats(share_clean)
        both = sorted(set(share_noisy) & set(share_clean))
        diff = {s: share_noisy[s] - share_clean[s] for s in both}
        out["share_noisy_minus_clean"] = {**share_stats(diff), "wins": sum(d > 0 for d in diff.values())}
        if len(diff) > 1:
            out["share_noisy_minus_clean"]["two_se"] = 2 * statistics.stdev(diff.values()) / len(diff) ** 0.5
        lost = {s: clean_alone[s] - alone[s] for s in sorted(set(alone) & set(clean_alone))}
        out["alone_loses_to_noise"] = share_stats(lost)
    return out


def store_stage1(checkpoint: Path, report: Path, store: Path, stem: str) -> Path | None:
    """Keep a copy of a stage-1 checkpoint (under 1 MB) and its eval for later sessions."""
    if checkpoint.stat().st_size >= MAX_STORED_BYTES:
        return None
    store.mkdir(parents=True, exist_ok=True)
    for source, target in ((checkpoint, store / f"{stem}.safetensors"), (report, store / f"{stem}.eval.json")):
        if not target.is_file():
            shutil.copyfile(source, target.with_suffix(".part"))
            target.with_suffix(".part").replace(target)
    return store / f"{stem}.safetensors"


def stage1(seed: int, args: argparse.Namespace, results: Results, out: Path) -> tuple[Path, float]:
    """Stage 1 of ``seed``: the student alone (from scratch, or the slice) on the exact labels, reused from the
    store when it holds it. Returns its final checkpoint and PCKh."""
    store = Path(args.store)
    sliced = "-sliced" if args.init == "sliced" else ""
    precision = "" if args.precision == "auto" else f"-{args.precision}"
    stem = f"stage1-{args.student}{sliced}-{args.steps}{precision}-s{seed}"
    kept, kept_eval = store / f"{stem}.safetensors", store / f"{stem}.eval.json"
    run = out / f"stage1-{args.student}-s{seed}"
    log = out / "logs" / f"{run.name}.log"
    start = sliced_init(args, out)
    head = ["train", "--model", args.student, *(["--init", str(start)] if start else [])]
    seconds = None  # trained in this invocation: its wall time
    if kept.is_file() and kept_eval.is_file():
        pckh = float(json.loads(kept_eval.read_text())["pckh"]["mean"])
        checkpoint = kept
    else:
        started = time.time()
        checkpoint = train_run(head, seed, run, args, args.data, log)
        pckh = score(checkpoint, run / "final-eval.json", args, log)
        checkpoint = store_stage1(checkpoint, run / "final-eval.json", store, stem) or checkpoint
        seconds = round(time.time() - started)
        print(f"    stage1 seed {seed}: {pckh:.2f} ({seconds} s)", flush=True)
    if results.get("stage1", seed) is None:
        results.put(
            "stage1",
            seed,
            pckh,
            **({"seconds": seconds} if seconds is not None else {}),
            command=command_of(head, seed, args, args.data, run),
            checkpoint=str(checkpoint),
            checkpoint_sha256=_sha256(checkpoint),
            curve=paired._validation_curve(run / "metrics.csv"),
        )
    return checkpoint, pckh


def sliced_init(args: argparse.Namespace, out: Path) -> Path | None:
    """What stage 1 (and the one-schedule arm) start from: None from scratch, or with ``--init
    sliced`` the student cut out of the teacher (``fpdctl prune``), made once."""
    if args.init != "sliced":
        return None
    with LOCK:  # seeds run in threads; one of them makes the slice
        return gap.slice_teacher(args.teacher, args.student, args.input_size, out)


def arm_run(
    arm: str,
    head: list[str],
    seed: int,
    args: argparse.Namespace,
    data: str,
    results: Results,
    out: Path,
):
    """One run of a second-stage or one-schedule arm, scored and recorded."""
    run = out / f"{arm}-{args.student}-s{seed}"
    log = out / "logs" / f"{run.name}.log"
    if results.get(arm, seed) is not None:
        return  # recorded already (its run directory may be gone): keep the row as it was measured
    started = time.time()
    checkpoint = train_run(head, seed, run, args, data, log)
    pckh = score(checkpoint, run / "final-eval.json", args, log)
    seconds = round(time.time() - started)
    results.put(
        arm,
        seed,
        pckh,
        command=command_of(head, seed, args, data, run),
        curve=paired._validation_curve(run / "metrics.csv"),
        seconds=seconds,
    )
    print(f"    {arm} seed {seed}: {pckh:.2f} ({seconds} s)", flush=True)


def schedule_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "student": args.student,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "input_size": args.input_size,
        "lr": args.lr,
        "schedule": "cosine",
        "optimizer": "adam",
        "augment_style": args.augment_style,
        "data": args.data,
        "val_limit_during_training": args.val_limit,
        "eval": f"fpdctl eval CHECKPOINT --data {args.eval_data} --input-size {args.input_size} (flip test on)",
        # Named only when not the default, so the results written before these options still merge.
        **({"init": args.init} if args.init != "scratch" else {}),
        **({"precision": args.precision} if args.precision != "auto" else {}),
        **({"kernels": "AVX2 (" + ", ".join(f"{k}={v}" for k, v in DEMO_ENV.items()) + ")"} if args.demo else {}),
    }


def base_payload(args: argparse.Namespace, mode: str, teacher_pckh: float) -> dict[str, Any]:
    return {
        "experiment": f"fpd-{mode}",
        "mode": mode,
        "command": "python benchmarks/fpd_protocol_experiment.py " + shlex.join(sys.argv[1:]),
        "schedule": schedule_of(args),
        "teacher": args.teacher,
        "teacher_pckh": teacher_pckh,
        # Every list covers seeds 0-4 (and any other run), so invocations with different --seeds
        # (say 0 beside 1 2 3 4) share one file.
        "seeds": sorted(set(DEFAULT_SEEDS) | set(args.seeds)),
        "machine": {"processor": paired._cpu_name(), "cpus": os.cpu_count()},
        "paper": PAPER,
        "one_schedule_shares": ONE_SCHEDULE,
    }


def run_protocol(args: argparse.Namespace, out: Path) -> Results:
    teacher = score(Path(args.teacher), out / "teacher-eval.json", args, out / "logs" / "teacher.log")
    results = Results(
        Path(args.json),
        base_payload(args, "protocol", teacher),
        ["stage1", "continued_alone", "continued_fpd", *(["one_schedule_fpd"] if args.one_schedule else [])],
        lock=out / "results.lock",
    )

    def one_seed(seed: int) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] seed {seed}", flush=True)
        init, _ = stage1(seed, args, results, out)
        alone = ["train", "--model", args.student, "--init", str(init)]
        fpd = ["distill", "--teacher", args.teacher, "--student", args.student, "--alpha", "0.5"]
        arm_run("continued_alone", alone, seed, args, args.data, results, out)
        arm_run("continued_fpd", [*fpd, "--student-init", str(init)], seed, args, args.data, results, out)
        if args.one_schedule:
            start = sliced_init(args, out)
            from_start = ["--student-init", str(start)] if start else []
            arm_run("one_schedule_fpd", [*fpd, *from_start], seed, args, args.data, results, out)

    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        list(pool.map(one_seed, args.seeds))
    return results


GAP_SCRIPT = Path(__file__).with_name("fpd_gap_experiment.py")
# What must match for section 1.7's clean rows to stand in for this run's (``--clean-json``).
GAP_RECIPE = ("teacher", "student", "steps", "curve_points", "batch_size", "input_size", "lr", "data", "val_limit")
GAP_RECIPE += ("workers", "precision", "augment_style")


def gap_condition(teacher: str, data: str, args: argparse.Namespace, out: Path, json_path: Path) -> dict[str, Any]:
    """One condition of the noise experiment: ``fpd_gap_experiment.py`` (section 1.7's design: the
    student sliced from ``teacher``, then alone and with FPD on ``data``, paired by seed). Returns
    its results file, reusing it when it already holds every seed of the same recipe."""
    options = {**{k: getattr(args, k) for k in GAP_RECIPE}, "teacher": teacher, "data": data}
    if json_path.is_file():
        done = json.loads(json_path.read_text())
        if {k: done["options"].get(k) for k in GAP_RECIPE} == options and set(done["seeds"]) >= set(args.seeds):
            return done
    argv = [sys.executable, str(GAP_SCRIPT), "--out", str(out), "--arms", "alone,fpd", "--seeds"]
    argv += [str(s) for s in args.seeds] + ["--jobs", str(args.jobs), "--json", str(json_path)]
    for key in GAP_RECIPE:
        argv += [f"--{key.replace('_', '-')}", str(options[key])]
    print(f"[{time.strftime('%H:%M:%S')}] {shlex.join(argv[1:])}", flush=True)
    subprocess.run(argv, check=True)
    return json.loads(json_path.read_text())


def run_noise(args: argparse.Namespace, out: Path) -> Results:
    """A teacher trained on noisy labels, then section 1.7's paired design on those labels, beside
    the same design on the exact labels (section 1.7's own results when they match the recipe)."""
    noisy_data = (
        f"{args.data}:label_noise={args.noise}" if ":" not in args.data else f"{args.data},label_noise={args.noise}"
    )
    logs = out / "logs"
    teacher_run = out / f"noisy-teacher-{args.noise_teacher_model}-{args.noise}"
    # The reference teacher's recipe (section 1.1), data made in the training process.
    teacher_args = argparse.Namespace(
        **{**vars(args), "steps": args.noise_teacher_steps, "curve_points": 6, "workers": 0}
    )
    noisy_teacher_ckpt = train_run(
        ["train", "--model", args.noise_teacher_model],
        0,
        teacher_run,
        teacher_args,
        noisy_data,
        logs / "noisy-teacher.log",
    )
    noisy = gap_condition(str(noisy_teacher_ckpt), noisy_data, args, out / f"noisy-{args.noise}", out / "noisy.json")
    clean_json = Path(args.clean_json) if args.clean_json else out / "clean.json"
    clean = gap_condition(args.teacher, args.data, args, out / "clean", clean_json)
    base = base_payload(args, "noise", noisy["teacher_pckh"])
    base["schedule"]["noise"] = args.noise
    base["schedule"]["init"] = "sliced from each condition's teacher (fpdctl prune)"
    base["noisy_teacher"] = {
        "model": args.noise_teacher_model,
        "steps": args.noise_teacher_steps,
        "command": command_of(["train", "--model", args.noise_teacher_model], 0, teacher_args, noisy_data, teacher_run),
        "checkpoint_sha256": _sha256(noisy_teacher_ckpt),
        "curve": paired._validation_curve(teacher_run / "metrics.csv"),
    }
    base["clean_teacher_pckh"] = clean["teacher_pckh"]
    base["clean_source"] = str(clean_json)
    arms = ["noisy_alone", "noisy_fpd", "clean_alone", "clean_fpd"]
    results = Results(Path(args.json), base, arms, lock=out / "results.lock")
    for condition, found in (("noisy", noisy), ("clean", clean)):
        runs = {(r["arm"], r["seed"]): r for r in found["runs"]}
        for (arm, seed), run in sorted(runs.items()):
            if seed in args.seeds and results.get(f"{condition}_{arm}", seed) is None:
                results.put(f"{condition}_{arm}", seed, run["pckh"], command=run["command"], curve=run["curve"])
    return results


def _sha256(path: Path) -> str:
    from fpdctl.models.checkpoint_files import file_sha256

    return file_sha256(path)


def render(data: dict[str, Any]) -> str:
    """The per-seed table and the measures, as text."""
    seeds, lines = data["seeds"], []
    arms = [
        k
        for k in (
            "stage1",
            "continued_alone",
            "continued_fpd",
            "one_schedule_fpd",
            "noisy_alone",
            "noisy_fpd",
            "clean_alone",
            "clean_fpd",
        )
        if k in data
    ]
    lines.append(
        f"teacher {data['teacher_pckh']:.2f}"
        + (f" (clean teacher {data['clean_teacher_pckh']:.2f})" if "clean_teacher_pckh" in data else "")
    )
    lines.append("| arm | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    lines.append("|---|" + "---|" * len(seeds))
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in data[arm]) + " |")
    for name, row in data["summary"].items():
        if not row:
            lines.append(f"{name}: not yet measured")
            continue
        per_seed = ", ".join(f"s{s} {v:+.3f}" for s, v in row["per_seed"].items())
        ci = f" [{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]" if row["ci95"] else ""
        extra = f", wins {row['wins']}/{row['n']}" if "wins" in row else ""
        extra += f", t {row['t']:.2f}" if "t" in row else ""
        lines.append(f"{name}: mean {row['mean']:+.3f}{ci}{extra} (per seed {per_seed})")
    paper = data["paper"]
    official = (paper["fpd_two_schedule"] - paper["alone"]) / (paper["teacher"] - paper["alone"])
    lines.append(
        f"official two-schedule share (FPD row): {official:.1%}; FPD* from scratch: "
        f"{(paper['fpd_scratch'] - paper['alone']) / (paper['teacher'] - paper['alone']):.1%}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the run directories and logs")
    parser.add_argument("--mode", choices=("protocol", "noise"), default="protocol")
    parser.add_argument("--teacher", default="synthetic-hg2x64")
    parser.add_argument("--student", default="hg1x64")
    parser.add_argument("--seeds", type=int, nargs="+", default=DEFAULT_SEEDS, help="in the order they run")
    parser.add_argument("--steps", type=int, default=4000, help="steps of each schedule (both stages)")
    parser.add_argument("--curve-points", type=int, default=4, help="validations per run during training")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--eval-data", default="synthetic", help="what fpdctl eval scores (its val split)")
    parser.add_argument("--val-limit", type=int, default=500, help="persons of the validations during training")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--augment-style", default="uniform")
    parser.add_argument("--noise", default="coco", help="noise mode: the label_noise value")
    parser.add_argument("--noise-teacher-model", default="hg2x64")
    parser.add_argument("--noise-teacher-steps", type=int, default=12000)
    parser.add_argument(
        "--clean-json",
        default="benchmarks/results/fpd_gap_experiment.json",
        help="noise mode: the exact-label condition's results (section 1.7's), reused when the recipe matches",
    )
    parser.add_argument("--jobs", type=int, default=1, help="seeds at a time (one thread each)")
    parser.add_argument("--store", default="benchmarks/results/fpd_protocol", help="stage-1 checkpoints kept")
    parser.add_argument("--init", choices=("scratch", "sliced"), default="scratch", help="stage 1 starts from")
    parser.add_argument("--one-schedule", action="store_true", help="also FPD for one schedule from stage 1's init")
    parser.add_argument("--demo", action="store_true", help="the demo's students, recipe and kernels (see above)")
    parser.add_argument(
        "--json", default=None, help="results file (default: benchmarks/results/fpd_MODE_experiment.json)"
    )
    args = parser.parse_args(argv)
    if args.demo:  # the preset wins over the defaults; the JSON records what ran
        vars(args).update(DEMO)
        for name, value in DEMO_ENV.items():
            os.environ.setdefault(name, value)
    if args.json is None:
        noise = "" if args.noise == "coco" else f"_{args.noise}"
        name = "fpd_protocol_experiment" if args.mode == "protocol" else f"fpd_label_noise{noise}_experiment"
        args.json = f"benchmarks/results/{name}.json"
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    results = run_protocol(args, out) if args.mode == "protocol" else run_noise(args, out)
    print()
    print(render(results.data))
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
