"""Training-step throughput: fpdctl distillation against the student alone and the naive recipe.

Variants, all on one machine in one process, timed one step at a time and interleaved round by
round (so a shared machine's load drifts over all of them alike):

    (a) student     the student trained alone (fpdctl's step: autocast precision, channels_last)
    (b) fpdctl      distillation as fpdctl runs it: bf16 autocast (where supported) and
                    channels_last for both networks, the teacher under torch.inference_mode
    (c) naive       distillation the way the reference code does it: fp32, NCHW, the teacher's
                    forward recorded by autograd, the per-joint JointsMSELoss loop
    (t) teacher     teacher inference alone, as (b) runs it

Batches are synthetic random tensors made once, so data loading is excluded. Reported: median
step time with the inter-quartile range, img/s, and the ratios (c)/(b) (the speed-up over the
naive recipe) and (b)/((a)+(t)) (distillation's overhead over training the student plus running
the teacher). Goals: (c)/(b) >= 4 and (b)/((a)+(t)) <= 1.1.

Usage::

    python benchmarks/train_throughput.py                      # hg4x128 + hg8x256, 256 px, batch 8
    python benchmarks/train_throughput.py --size 128 --steps 3 # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from fpdctl.models.factory import create_model
from fpdctl.training.precision import TrainPrecision, resolve_precision
from fpdctl.training.step import apply_gradients, compute_losses


def _official_joints_mse(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The reference JointsMSELoss(use_target_weight=True): a Python loop over joints."""
    criterion = nn.MSELoss(reduction="mean")
    n, j = output.shape[:2]
    pred = output.reshape(n, j, -1).split(1, 1)
    gt = target.reshape(n, j, -1).split(1, 1)
    loss = 0.0
    for idx in range(j):
        w = weight[:, idx : idx + 1]
        loss = loss + 0.5 * criterion(pred[idx].squeeze(1) * w, gt[idx].squeeze(1) * w)
    return loss / j


def make_variants(args: argparse.Namespace) -> tuple[dict[str, Callable[[], None]], dict[str, str]]:
    """Build the four step functions (each runs one full step) and their descriptions."""
    device = torch.device("cpu")
    precision: TrainPrecision = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    n, size = args.batch, args.size
    images = torch.randn(n, 3, size, size)
    target = torch.rand(n, 16, size // 4, size // 4)
    weight = (torch.rand(n, 16) > 0.2).float()
    cl = torch.channels_last

    student_a = create_model(args.student).train().to(memory_format=cl)
    student_b = create_model(args.student).train().to(memory_format=cl)
    student_c = create_model(args.student).train()
    teacher_fast = create_model(args.teacher).eval().to(memory_format=cl)
    for p in teacher_fast.parameters():
        p.requires_grad_(False)
    teacher_naive = create_model(args.teacher).eval()  # left with requires_grad, as the reference
    opt_a = torch.optim.Adam(student_a.parameters(), lr=2.5e-4)
    opt_b = torch.optim.Adam(student_b.parameters(), lr=2.5e-4)
    opt_c = torch.optim.Adam(student_c.parameters(), lr=2.5e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=precision.scaler)
    images_cl = images.contiguous(memory_format=cl)

    def step_student() -> None:
        terms = compute_losses(student_a, None, images_cl, target, weight, precision=precision)
        apply_gradients(terms.total, opt_a, scaler)

    def step_fpdctl() -> None:
        terms = compute_losses(student_b, teacher_fast, images_cl, target, weight, precision=precision, alpha=0.5)
        apply_gradients(terms.total, opt_b, scaler)

    def step_naive() -> None:
        outputs = student_c(images)
        toutput = teacher_naive(images)[:, -1]  # autograd records the teacher's graph
        pose = sum(_official_joints_mse(outputs[:, s], target, weight) for s in range(outputs.shape[1]))
        kd = sum(_official_joints_mse(outputs[:, s], toutput, weight) for s in range(outputs.shape[1]))
        loss = 0.5 * pose + 0.5 * kd
        opt_c.zero_grad()
        loss.backward()
        opt_c.step()

    def step_teacher() -> None:
        with torch.inference_mode(), precision.autocast(device):
            teacher_fast(images_cl)

    variants = {"student": step_student, "fpdctl": step_fpdctl, "naive": step_naive, "teacher": step_teacher}
    notes = {
        "student": f"(a) {args.student} trained alone, {precision.name}, channels_last",
        "fpdctl": (
            f"(b) distill {args.teacher} -> {args.student}, {precision.name}, channels_last, teacher inference_mode"
        ),
        "naive": "(c) distill fp32 NCHW, teacher with autograd, per-joint loss loop",
        "teacher": f"(t) {args.teacher} inference, {precision.name}, channels_last",
    }
    return variants, notes


def measure(variants: dict[str, Callable[[], None]], warmup: int, steps: int) -> dict[str, list[float]]:
    """Interleaved timing: each round runs every variant once, in a rotating order."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(steps):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
        done = ", ".join(f"{name} {times[name][-1]:.2f}s" for name in names)
        print(f"round {round_index + 1}/{steps}: {done}", file=sys.stderr, flush=True)
    return times


def quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if len(ordered) < 4:
        return ordered[0], statistics.median(ordered), ordered[-1]
    q = statistics.quantiles(ordered, n=4)
    return q[0], q[1], q[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="hg4x128")
    parser.add_argument("--teacher", default="hg8x256")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (each runs every variant once)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", default="train_throughput.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    variants, notes = make_variants(args)
    times = measure(variants, args.warmup, args.steps)
    rows = {}
    for name, values in times.items():
        q1, median, q3 = quartiles(values)
        rows[name] = {
            "description": notes[name],
            "median_s": median,
            "q1_s": q1,
            "q3_s": q3,
            "img_per_s": args.batch / median,
            "times_s": values,
        }
    b, c = rows["fpdctl"]["median_s"], rows["naive"]["median_s"]
    a, t = rows["student"]["median_s"], rows["teacher"]["median_s"]
    # Ratios per round too: the rounds see the same load, so their spread is the honest error.
    per_round_speedup = [tc / tb for tb, tc in zip(times["fpdctl"], times["naive"])]
    per_round_overhead = [tb / (ta + tt) for tb, ta, tt in zip(times["fpdctl"], times["student"], times["teacher"])]
    result = {
        "benchmark": "train_throughput",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "options": vars(args),
        "data": "synthetic random tensors made once (data loading excluded)",
        "variants": rows,
        "speedup_naive_over_fpdctl": c / b,
        "speedup_per_round": per_round_speedup,
        "overhead_fpdctl_over_student_plus_teacher": b / (a + t),
        "overhead_per_round": per_round_overhead,
        "goals": {"speedup_at_least": 4.0, "overhead_at_most": 1.1},
    }
    print(
        f"{args.student} student, {args.teacher} teacher, {args.size} px, batch {args.batch}, "
        f"{args.steps} interleaved rounds after {args.warmup} warm-up, {torch.get_num_threads()} threads"
    )
    print(f"{'variant':<9} {'median s/step':>14} {'IQR':>17} {'img/s':>8}  description")
    for name, row in rows.items():
        print(
            f"{name:<9} {row['median_s']:>14.3f} {row['q1_s']:>8.3f}-{row['q3_s']:<8.3f} "
            f"{row['img_per_s']:>8.2f}  {row['description']}"
        )
    print(
        f"(c)/(b) speed-up over the naive recipe: {c / b:.2f}x "
        f"(per round {min(per_round_speedup):.2f}-{max(per_round_speedup):.2f}; goal >= 4)"
    )
    print(
        f"(b)/((a)+(t)) distillation overhead: {b / (a + t):.3f} "
        f"(per round {min(per_round_overhead):.3f}-{max(per_round_overhead):.3f}; goal <= 1.1)"
    )
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
