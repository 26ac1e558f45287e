"""The GPU check: fpdctl's training path measured and exercised on one CUDA GPU, in one script.

Sections (each a row group of the table and a key of the JSON):

    (a) step        distillation step throughput and peak memory (wall s: building, warm-up
                    and compilation included), hg4x128 from hg8x256 at 256 px,
                    batches 16 and 64: fpdctl's step (the trainer's own compute_losses,
                    reduce_step and apply_gradients: autocast bf16, channels_last, teacher under
                    inference_mode, fused Adam), eager and under torch.compile, against a
                    reference-style step (fp32, NCHW, the teacher's forward recorded by autograd,
                    the per-joint loss loop, loss.item() each step) on the same random tensors
    (b) distill     a short end-to-end ``fpdctl distill`` on synthetic data: img/s as the run
                    logs it (data loading included, evaluation not)
    (c) torchrun    a one-process ``torchrun`` distill: the multi-process path (process group,
                    DistributedDataParallel, the all-reduce) with NCCL
    (d) latency     the eager student's forward at batches 1 and 32 (fp32 NCHW and bf16
                    channels_last), median over timed iterations
    (e) resume      ``--deterministic``: 6 steps in one go, and 3 steps then ``--resume`` to 6, end
                    with the same weights bit for bit

Goals printed (section a): at least 1000 img/s for fpdctl's step at batch 64, and at least 4x the
reference-style step.

Runs from a plain checkout with the packages of a CUDA machine (torch, onnx, onnxruntime, typer,
rich, opencv-python-headless, safetensors, scipy; no pip install, no pycocotools)::

    PYTHONPATH=. python3 benchmarks/gpu_check.py --out gpu_check     # about 5 minutes on one H200
    PYTHONPATH=. python3 benchmarks/gpu_check.py --dry-run           # everything tiny, on the CPU

``--dry-run`` uses tiny models (hg1x16 from hg2x16 at 64 px), a few steps, the CPU and gloo
instead of NCCL, and ``torch.compile`` with its "eager" backend (no code generation): it checks
that every section runs, not how fast.
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
from typing import Any, Callable

import torch
from torch import nn

from benchmarks.train_throughput import _official_joints_mse
from fpdctl.models.checkpoint import read_checkpoint, save_model
from fpdctl.models.factory import create_model
from fpdctl.training.distributed import reduce_step
from fpdctl.training.precision import TrainPrecision, resolve_precision
from fpdctl.training.step import apply_gradients, compute_losses

GOAL_IMG_PER_S = 1000.0
GOAL_SPEEDUP = 4.0
# The checkout this script belongs to: the fpdctl its subprocesses import, whatever their folder.
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Plan:
    """What one invocation measures, full size on a GPU or tiny for ``--dry-run``."""

    device: torch.device
    student: str
    teacher: str
    size: int
    batches: tuple[int, ...]
    warmup: int
    steps: int
    compile_backend: str
    precision: str
    e2e_data: str
    e2e_batch: int
    e2e_steps: int
    latency_batches: tuple[int, ...]
    latency_iters: int


def make_plan(dry_run: bool) -> Plan:
    if dry_run:
        return Plan(
            torch.device("cpu"),
            "hg1x16",
            "hg2x16",
            64,
            (2, 4),
            1,
            2,
            "eager",
            "fp32",
            "synthetic:length=16",
            4,
            4,
            (1, 4),
            3,
        )
    if not torch.cuda.is_available():
        raise SystemExit(
            "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); "
            "use --dry-run to check the script on a CPU"
        )
    return Plan(
        torch.device("cuda", 0),
        "hg4x128",
        "hg8x256",
        256,
        (16, 64),
        5,
        20,
        "inductor",
        "auto",
        "synthetic:length=4096",
        64,
        60,
        (1, 32),
        50,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def _time_steps(step: Callable[[], None], device: torch.device, warmup: int, steps: int) -> float:
    """Seconds per step: ``warmup`` untimed steps (cuDNN autotuning, compilation), then the mean
    of ``steps`` steps timed together, the device synchronised at both ends."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


# ----------------------------------------------------------------------------- (a) the step
def _fpdctl_step(plan: Plan, batch: int, compiled: bool, data: tuple[torch.Tensor, ...]) -> Callable[[], None]:
    """The trainer's step: compute_losses, the one reduction, apply_gradients."""
    device = plan.device
    precision: TrainPrecision = resolve_precision(plan.precision, device)
    cl = torch.channels_last
    student = create_model(plan.student).train().to(device=device, memory_format=cl)
    teacher = create_model(plan.teacher).eval().to(device=device, memory_format=cl)
    for p in teacher.parameters():
        p.requires_grad_(False)
    model: nn.Module = torch.compile(student, backend=plan.compile_backend) if compiled else student
    optimizer = torch.optim.Adam(student.parameters(), lr=2.5e-4, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scaler)
    images, target, weight = data
    images = images.contiguous(memory_format=cl)

    def step() -> None:
        terms = compute_losses(model, teacher, images, target, weight, precision=precision, alpha=0.5)
        reduce_step(terms.total, terms.gt, terms.kd, stop=False)
        apply_gradients(terms.total, optimizer, scaler)

    return step


def _reference_step(plan: Plan, data: tuple[torch.Tensor, ...]) -> Callable[[], None]:
    """Distillation as the reference code runs it: fp32 NCHW, the teacher's forward recorded by
    autograd (its parameters still require grad), the per-joint loss loop, a loss.item() each
    step for the log."""
    student = create_model(plan.student).train().to(plan.device)
    teacher = create_model(plan.teacher).eval().to(plan.device)
    optimizer = torch.optim.Adam(student.parameters(), lr=2.5e-4)
    images, target, weight = data

    def step() -> None:
        outputs = student(images)
        toutput = teacher(images)[:, -1]
        pose = sum(_official_joints_mse(outputs[:, s], target, weight) for s in range(outputs.shape[1]))
        kd = sum(_official_joints_mse(outputs[:, s], toutput, weight) for s in range(outputs.shape[1]))
        loss = 0.5 * pose + 0.5 * kd
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()

    return step


def check_step(plan: Plan) -> list[dict[str, Any]]:
    """(a): img/s and peak memory of each step variant at each batch."""
    torch.backends.cudnn.benchmark = True  # fixed sizes, as fpdctl's trainer runs (fair to both)
    rows = []
    for batch in plan.batches:
        gen = torch.Generator().manual_seed(0)
        heat = plan.size // 4
        data = (
            torch.randn(batch, 3, plan.size, plan.size, generator=gen).to(plan.device),
            torch.rand(batch, 16, heat, heat, generator=gen).to(plan.device),
            (torch.rand(batch, 16, generator=gen) > 0.2).float().to(plan.device),
        )
        variants: list[tuple[str, Callable[[], Callable[[], None]]]] = [
            ("fpdctl eager", lambda: _fpdctl_step(plan, batch, False, data)),
            ("fpdctl compiled", lambda: _fpdctl_step(plan, batch, True, data)),
            ("reference", lambda: _reference_step(plan, data)),
        ]
        for name, build in variants:
            _reset_memory(plan.device)
            row: dict[str, Any] = {"variant": name, "batch": batch}
            try:
                started = time.perf_counter()
                seconds = _time_steps(build(), plan.device, plan.warmup, plan.steps)
                row.update(
                    s_per_step=seconds,
                    img_per_s=batch / seconds,
                    peak_gib=_peak_gib(plan.device),
                    wall_s=time.perf_counter() - started,
                )
            except torch.cuda.OutOfMemoryError:
                row.update(error="out of memory")
            torch._dynamo.reset()  # drop the compiled graphs (and the weights they hold)
            rows.append(row)
            print(
                f"  (a) {name:<16} batch {batch:>3}: "
                + (f"{row['img_per_s']:.1f} img/s" if "img_per_s" in row else row["error"]),
                flush=True,
            )
    return rows


def step_goals(rows: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """The goal lines at ``batch``: fpdctl's best variant's img/s, and its ratio to the reference."""
    at = {r["variant"]: r for r in rows if r["batch"] == batch and "img_per_s" in r}
    ours = max((r for name, r in at.items() if name.startswith("fpdctl")), key=lambda r: r["img_per_s"], default=None)
    reference = at.get("reference")
    out: dict[str, Any] = {"batch": batch, "best_fpdctl_variant": None if ours is None else ours["variant"]}
    if ours is not None:
        out["img_per_s"] = ours["img_per_s"]
        out["img_per_s_goal_met"] = ours["img_per_s"] >= GOAL_IMG_PER_S
    if ours is not None and reference is not None:
        out["speedup"] = ours["img_per_s"] / reference["img_per_s"]
        out["speedup_goal_met"] = out["speedup"] >= GOAL_SPEEDUP
    return out


# ----------------------------------------------------------------------------- (b), (c), (e) runs
def _fpdctl(*commands: list[str], torchrun: bool = False, timeout: float = 420.0) -> list[tuple[int, str, float]]:
    """Run fpdctl commands side by side (optionally each under a one-process torchrun).

    Returns:
        Exit code, output and seconds of each.
    """
    prefix = [sys.executable, "-m"]
    if torchrun:
        prefix += ["torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m"]
    started = time.perf_counter()
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "FPDCTL_DEBUG": "1", "PYTHONPATH": path}
    procs = [
        subprocess.Popen(
            [*prefix, "fpdctl", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        for args in commands
    ]
    results = []
    for proc in procs:
        output, _ = proc.communicate(timeout=timeout)
        results.append((proc.returncode, output, time.perf_counter() - started))
    return results


def _distill_args(plan: Plan, teacher: Path, out: Path, *, steps: int, batch: int) -> list[str]:
    return [
        "distill",
        "--teacher",
        str(teacher),
        "--student",
        plan.student,
        "--data",
        plan.e2e_data,
        "--input-size",
        str(plan.size),
        "--batch-size",
        str(batch),
        "--max-steps",
        str(steps),
        "--eval-every",
        "0",
        "--val-limit",
        str(2 * batch),
        "--log-every",
        str(max(steps // 6, 1)),
        "--device",
        plan.device.type,
        "--precision",
        plan.precision,
        "--out",
        str(out),
    ]


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def check_distill(plan: Plan, teacher: Path, work: Path) -> dict[str, Any]:
    """(b): img/s of the logged windows after the first (worker start-up, autotuning)."""
    run = work / "distill"
    ((code, output, seconds),) = _fpdctl(_distill_args(plan, teacher, run, steps=plan.e2e_steps, batch=plan.e2e_batch))
    result: dict[str, Any] = {
        "exit_code": code,
        "seconds": seconds,
        "steps": plan.e2e_steps,
        "batch": plan.e2e_batch,
        "data": plan.e2e_data,
    }
    if code != 0:
        return {**result, "error": _tail(output)}
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    speeds = [float(row.split(",")[header.index("img_per_s")]) for row in lines[1:]]
    steady = speeds[1:] or speeds
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    return {
        **result,
        "img_per_s": statistics.median(steady),
        "img_per_s_windows": speeds,
        "workers": resolved.get("workers"),
        "precision": resolved.get("precision"),
    }


def check_torchrun(plan: Plan, teacher: Path, work: Path) -> dict[str, Any]:
    """(c): a one-process torchrun distill joins a process group (NCCL on a GPU) and finishes."""
    run = work / "torchrun"
    steps = max(plan.e2e_steps // 3, 2)
    ((code, output, seconds),) = _fpdctl(
        _distill_args(plan, teacher, run, steps=steps, batch=plan.e2e_batch), torchrun=True
    )
    result: dict[str, Any] = {"exit_code": code, "seconds": seconds, "steps": steps}
    if code != 0:
        return {**result, "error": _tail(output)}
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    expected = "nccl" if plan.device.type == "cuda" else "gloo"
    return {
        **result,
        "process_group": resolved.get("process_group"),
        "world_size": resolved.get("world_size"),
        "ok": resolved.get("process_group") == expected and resolved.get("world_size") == 1,
    }


def check_deterministic_resume(plan: Plan, teacher: Path, work: Path) -> dict[str, Any]:
    """(e): with --deterministic, 3 steps + --resume to 6 equal 6 steps, bit for bit."""
    batch = plan.batches[0]
    whole, part = work / "det-whole", work / "det-part"
    started = time.perf_counter()
    runs = _fpdctl(
        [*_distill_args(plan, teacher, whole, steps=6, batch=batch), "--deterministic"],
        [*_distill_args(plan, teacher, part, steps=3, batch=batch), "--deterministic"],
    )
    if runs[1][0] == 0:
        runs += _fpdctl(["distill", "--resume", str(part), "--max-steps", "6"])
    result: dict[str, Any] = {"exit_codes": [r[0] for r in runs], "seconds": time.perf_counter() - started}
    failed = next((r for r in runs if r[0] != 0), None)
    if failed is not None:
        return {**result, "error": _tail(failed[1])}
    a = read_checkpoint(whole / "last.safetensors")[0]
    b = read_checkpoint(part / "last.safetensors")[0]
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    return {**result, "bit_identical": not differ, "tensors_differing": len(differ)}


# ----------------------------------------------------------------------------- (d) latency
def check_latency(plan: Plan) -> list[dict[str, Any]]:
    rows = []
    modes = ("fp32",) if plan.precision == "fp32" else ("fp32", "bf16 channels_last")
    for mode in modes:
        cl = mode != "fp32"
        net = create_model(plan.student).eval().to(plan.device)
        if cl:
            net = net.to(memory_format=torch.channels_last)
        dtype = torch.bfloat16 if cl else None
        for batch in plan.latency_batches:
            images = torch.randn(batch, 3, plan.size, plan.size, device=plan.device)
            if cl:
                images = images.contiguous(memory_format=torch.channels_last)
            times = []
            with torch.inference_mode(), torch.autocast(plan.device.type, dtype=dtype, enabled=dtype is not None):
                for k in range(plan.latency_iters + 5):
                    _sync(plan.device)
                    start = time.perf_counter()
                    net(images)
                    _sync(plan.device)
                    if k >= 5:  # warm-up: cuDNN autotuning
                        times.append(time.perf_counter() - start)
            median = statistics.median(times)
            rows.append({"mode": mode, "batch": batch, "median_ms": 1000 * median, "img_per_s": batch / median})
    return rows


# ----------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": len(os.sched_getaffinity(0)),
    }
    if torch.cuda.is_available():
        info.update(
            gpu=torch.cuda.get_device_name(0),
            capability=list(torch.cuda.get_device_capability(0)),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def render(report: dict[str, Any]) -> str:
    lines = [
        f"gpu_check {'(dry run) ' if report['dry_run'] else ''}on {report['machine'].get('gpu', 'CPU')}, "
        f"torch {report['machine']['torch']}, {report['date']}",
        "",
        f"(a) distillation step, {report['plan']['student']} from {report['plan']['teacher']} "
        f"at {report['plan']['size']} px",
        f"    {'variant':<16} {'batch':>5} {'img/s':>9} {'ms/step':>9} {'peak GiB':>9} {'wall s':>7}",
    ]
    for row in report["step"]:
        if "error" in row:
            lines.append(f"    {row['variant']:<16} {row['batch']:>5} {row['error']:>29}")
            continue
        peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
        lines.append(
            f"    {row['variant']:<16} {row['batch']:>5} {row['img_per_s']:>9.1f} "
            f"{1000 * row['s_per_step']:>9.2f} {peak:>9} {row['wall_s']:>7.1f}"
        )
    goals = report["goals"]
    if "img_per_s" in goals:
        lines.append(
            f"    goal: fpdctl's step at batch {goals['batch']} >= {GOAL_IMG_PER_S:.0f} img/s: "
            f"{'MET' if goals['img_per_s_goal_met'] else 'NOT MET'} ({goals['img_per_s']:.1f} img/s, "
            f"{goals['best_fpdctl_variant']})"
        )
    if "speedup" in goals:
        lines.append(
            f"    goal: >= {GOAL_SPEEDUP:.0f}x the reference-style step: "
            f"{'MET' if goals['speedup_goal_met'] else 'NOT MET'} ({goals['speedup']:.2f}x)"
        )
    d = report["distill"]
    lines += [
        "",
        "(b) fpdctl distill end to end (synthetic data, data loading included): "
        + (
            f"{d['img_per_s']:.1f} img/s at batch {d['batch']}, {d['workers']} workers, {d['precision']}, "
            f"{d['seconds']:.0f} s"
            if "img_per_s" in d
            else f"FAILED (exit {d['exit_code']})\n{d.get('error', '')}"
        ),
    ]
    t = report["torchrun"]
    lines.append(
        "(c) torchrun, one process: "
        + (
            f"{'OK' if t['ok'] else 'WRONG'}: process group {t['process_group']}, world size "
            f"{t['world_size']}, {t['seconds']:.0f} s"
            if "ok" in t
            else f"FAILED (exit {t['exit_code']})\n{t.get('error', '')}"
        )
    )
    lines += [
        "",
        f"(d) eager {report['plan']['student']} latency at {report['plan']['size']} px",
        f"    {'mode':<20} {'batch':>5} {'median ms':>10} {'img/s':>9}",
    ]
    for row in report["latency"]:
        lines.append(f"    {row['mode']:<20} {row['batch']:>5} {row['median_ms']:>10.2f} {row['img_per_s']:>9.1f}")
    e = report["resume"]
    lines += [
        "",
        "(e) --deterministic, 3 steps + --resume to 6 vs 6 steps: "
        + (
            ("bit for bit" if e["bit_identical"] else f"{e['tensors_differing']} tensors differ")
            if "bit_identical" in e
            else f"FAILED (exits {e['exit_codes']})\n{e.get('error', '')}"
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny models on the CPU, gloo, a few steps")
    parser.add_argument("--out", default="gpu_check", help="folder for gpu_check.json, the table and the runs")
    args = parser.parse_args(argv)
    plan = make_plan(args.dry_run)
    if args.dry_run:  # tiny models: threads only add synchronisation (subprocesses inherit it)
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    out = Path(args.out)
    work = out / "runs"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"gpu_check: {plan.student} from {plan.teacher} at {plan.size} px on {plan.device}", flush=True)
    teacher = save_model(create_model(plan.teacher), work / "teacher.safetensors")
    step_rows = check_step(plan)
    report: dict[str, Any] = {
        "benchmark": "gpu_check",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "dry_run": args.dry_run,
        "machine": machine(),
        "plan": {
            "student": plan.student,
            "teacher": plan.teacher,
            "size": plan.size,
            "batches": list(plan.batches),
            "warmup": plan.warmup,
            "steps": plan.steps,
            "compile_backend": plan.compile_backend,
        },
        "step": step_rows,
        "goals": step_goals(step_rows, plan.batches[-1]),
    }
    for key, check in (
        ("distill", check_distill),
        ("torchrun", check_torchrun),
        ("resume", check_deterministic_resume),
    ):
        report[key] = check(plan, teacher, work)
        print(f"  ({key}) done", flush=True)
    report["latency"] = check_latency(plan)
    report["seconds"] = time.perf_counter() - started
    table = render(report)
    print(table)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.txt").write_text(table + "\n")
    print(f"results: {out / 'gpu_check.json'} ({report['seconds']:.0f} s)")
    failed = [k for k in ("distill", "torchrun", "resume") if "error" in report[k]]
    failed += ["torchrun"] if report["torchrun"].get("ok") is False else []
    failed += ["resume"] if report["resume"].get("bit_identical") is False else []
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
