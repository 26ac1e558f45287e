"""The fastest deployable path for the student on this CPU, in one run: every path's latency
against the compute floor and against the eager fp32 teacher, and its accuracy against fp32.

Prints a table and writes JSON (default benchmarks/results/deploy_paths.json).

    python benchmarks/deploy_paths.py --student RUN/best.safetensors [--rounds 8] [--threads 2] \
        [--validation-samples 304]

Paths: hg4x128 at 256 px, batch 1 and 8, as the rows of fpdctl's backend table built by its own
runner factory (``fpdctl.deploy.runtime.make_runner``, what ``fpdctl bench``, ``eval`` and
``predict`` use): ort (ONNX Runtime fp32), ort-int8, ov (OpenVINO, f32 hint), ov-bf16 (bf16 hint
on the fp32 file), ov-int8 (the int8 QDQ file), torch-bf16-compile (torch.compile, bf16 autocast,
channels_last) and torch (eager fp32 NCHW: the accuracy reference, timed at batch 1). The ONNX
files are the student's own exports (fp32; int8 calibrated on ``--calibration-samples``
synthetic training images).

Floor: as in benchmarks/deploy_latency.py, a path's FLOPs (2 x MACs of the convolutions, times the
batch) over the best fp32 GEMM peak measured in the same run (the higher of torch.matmul 2048 and
ONNX Runtime's MLAS MatMul 1024). "x floor" = median latency / floor.

Teacher: hg8x256 eager fp32 NCHW at batch 1 (random weights: latency does not depend on them);
"x teacher" = the teacher's median over the path's median per image.

All cases are interleaved round by round (benchmarks/deploy_latency.py's ``run_rounds``), so load
from other jobs hits every path alike; ratios are also given round by round.

Accuracy: PCKh@0.5 on the first ``--validation-samples`` persons of the synthetic validation split
(the pipeline of ``fpdctl eval``, without the flip test), in batches of 8, for every path; "drop"
is eager fp32 PyTorch's figure minus the path's. The recommendation applies the rule of
``fpdctl bench`` (``fpdctl.deploy.recommend.recommend``: the fastest path within 0.5 points).
"""

from __future__ import annotations

import os

# As in deploy_latency.py: PyTorch's OpenMP threads sleep at barriers instead of spinning, so a
# shared machine's other jobs do not make eager PyTorch several times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
from deploy_latency import Case, _median, _pct, gemm_cases, ratio, run_rounds  # noqa: E402

# The paths, in table order: backend-table rows.
PATHS: tuple[str, ...] = ("torch", "ort", "ort-int8", "ov", "ov-bf16", "ov-int8", "torch-bf16-compile")
BATCHES: tuple[int, ...] = (1, 8)


def ov_precisions(runner) -> dict[str, int]:
    """How many of an OpenVINO model's convolutions run at each precision (its runtime graph)."""
    counts: Counter[str] = Counter()
    for op in runner.compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            counts[info["runtimePrecision"].astype(str)] += 1
    return dict(counts)


def build_runners(student: str, paths: list[str], size: int, threads: int, calibration: int, work: Path, log):
    from fpdctl.deploy.backends import get_backend
    from fpdctl.deploy.export import export_onnx
    from fpdctl.deploy.runtime import make_runner, open_model

    source = open_model(student)
    files = {}
    for precision in ("fp32", "int8"):
        log(f"exporting the student ({precision}, {size} px)")
        files[precision] = work / f"student_{precision}.onnx"
        export_onnx(
            source.net,
            files[precision],
            input_size=size,
            precision=precision,
            calibration_samples=calibration,
            validation_samples=0,
            verify=False,
        )
    runners = {}
    for name in paths:
        row = get_backend(name)
        reason = row.unavailable()
        if reason is not None:
            log(f"skipping {name}: {reason}")
            continue
        runners[name] = make_runner(source, row, threads=threads, path=files.get(row.file_precision or ""))
    return source, runners


def timing_cases(source, runners, teacher, size: int, threads: int, log) -> list[Case]:
    from fpdctl.deploy.backends import get_backend
    from fpdctl.deploy.runtime import TorchRunner
    from fpdctl.profiling.analytic import analytic_cost

    s_flops = 2.0 * analytic_cost(source.spec, size).macs
    t_flops = 2.0 * analytic_cost(teacher.spec, size).macs
    rng = np.random.default_rng(0)
    cases = gemm_cases(threads)
    t_runner = TorchRunner(teacher, get_backend("torch"), "cpu")
    t_input = t_runner.prepare(rng.standard_normal((1, 3, size, size)).astype(np.float32))
    cases.append(Case(f"{teacher.spec.name} torch b1", lambda: t_runner.forward(t_input), t_flops, block=1))
    for batch in BATCHES:
        images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        for name, runner in runners.items():
            if name == "torch" and batch > 1:
                continue  # the reference for accuracy; its batch-1 time is enough
            prepared = runner.prepare(images)
            log(f"first run of {name} at batch {batch} (compiles where it must)")
            start = time.perf_counter()
            runner.forward(prepared)
            log(f"  {time.perf_counter() - start:.1f} s")
            cases.append(
                Case(
                    f"{source.spec.name} {name} b{batch}",
                    lambda r=runner, x=prepared: r.forward(x),
                    s_flops * batch,
                    block=3 if batch == 1 else 2,
                )
            )
    return cases


def summarise(cases: list[Case], runners: dict, scores: dict[str, float], student: str, teacher: str) -> dict:
    """Peaks, the floor ratios, the teacher ratios, the accuracy drops and the recommendation."""
    from fpdctl.deploy.recommend import recommend

    by_name = {c.name: c for c in cases}
    peaks = {"torch.matmul": "gemm torch.matmul 2048", "onnxruntime MatMul": "gemm onnxruntime MatMul 1024"}
    peaks = {k: by_name[v].flops / min(by_name[v].blocks) / 1e9 for k, v in peaks.items()}
    peak = max(peaks.values())
    teacher_case = by_name[f"{teacher} torch b1"]
    teacher_ms = _median(teacher_case.times) * 1e3
    reference = scores.get("torch")
    rows = []
    for case in cases:
        if not case.name.startswith(student + " "):
            continue
        _, name, b = case.name.split(" ")
        batch = int(b[1:])
        median = _median(case.times) * 1e3
        floor = case.flops / (peak * 1e9) * 1e3
        rows.append(
            {
                "path": name,
                "batch": batch,
                "precision": runners[name].backend.precision,
                "median_ms": median,
                "p10_ms": _pct(case.times, 10) * 1e3,
                "p90_ms": _pct(case.times, 90) * 1e3,
                "per_image_ms": median / batch,
                "floor_ms": floor,
                "x_floor": median / floor,
                "x_teacher": teacher_ms / (median / batch),
                "x_teacher_rounds": ratio(teacher_case, case)["median"] if batch == 1 else None,
                "pckh": scores[name],
                "pckh_drop": None if reference is None else reference - scores[name],
            }
        )
    chosen = recommend(
        [
            SimpleNamespace(
                model=student,
                batch=r["batch"],
                backend=r["path"],
                precision=r["precision"],
                p50_ms=r["median_ms"],
                accuracy_drop=r["pckh_drop"],
            )
            for r in rows
        ]
    )
    return {
        "gemm_peak_gflops": peaks,
        "peak": peak,
        "teacher_eager_fp32_b1_ms": teacher_ms,
        "reference_pckh": reference,
        "rows": rows,
        "recommended": [{"batch": r.batch, "path": r.backend, "median_ms": r.p50_ms, "drop": r.drop} for r in chosen],
    }


def print_report(summary: dict, opts: argparse.Namespace, env: dict, student: str, metric: str, count: int) -> None:
    from fpdctl.deploy.recommend import MAX_ACCURACY_DROP

    print(
        f"\n{student} ({opts.student}) at {opts.input_size} px, {opts.threads} threads, {opts.rounds} interleaved "
        f"rounds; {env['cpu']} ({env['cpu_flags']}); fp32 GEMM peak {summary['peak']:.0f} GFLOP/s; teacher "
        f"hg8x256 eager fp32 b1 {summary['teacher_eager_fp32_b1_ms']:.1f} ms; {metric.upper()} on {count} synthetic "
        f"val persons; load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'path':20s} {'batch':>5s} {'median ms':>10s} {'ms/img':>8s} {'x floor':>8s} {'x teacher':>9s} "
        f"{metric.upper():>7s} {'drop':>6s}"
    )
    for r in summary["rows"]:
        drop = "" if r["pckh_drop"] is None else f"{r['pckh_drop']:+6.2f}"
        print(
            f"{r['path']:20s} {r['batch']:5d} {r['median_ms']:10.2f} {r['per_image_ms']:8.2f} {r['x_floor']:8.2f} "
            f"{r['x_teacher']:9.1f} {r['pckh']:7.2f} {drop:>6s}"
        )
    for rec in summary["recommended"]:
        print(
            f"recommended (fastest within {MAX_ACCURACY_DROP} {metric.upper()} of fp32) at batch {rec['batch']}: "
            f"{rec['path']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", required=True, help="the student checkpoint (hg4x128)")
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration-samples", type=int, default=256, help="int8 calibration (export's default)")
    parser.add_argument("--validation-samples", type=int, default=304, help="a multiple of 8 (one compiled shape)")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated backend rows (default: all)")
    parser.add_argument("--json", default="benchmarks/results/deploy_paths.json")
    opts = parser.parse_args()

    import torch

    from fpdctl.deploy.bench_report import environment
    from fpdctl.deploy.verify import score_runners
    from fpdctl.models.factory import create_model

    torch.set_num_threads(opts.threads)
    log = lambda message: print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: E731
    started = time.perf_counter()
    torch.manual_seed(0)
    teacher = create_model("hg8x256").eval()
    with tempfile.TemporaryDirectory(prefix="deploy-paths-") as tmp:
        paths = [p.strip() for p in opts.paths.split(",") if p.strip()]
        source, runners = build_runners(
            opts.student,
            paths,
            opts.input_size,
            opts.threads,
            opts.calibration_samples,
            Path(tmp),
            log,
        )
        cases = timing_cases(source, runners, teacher, opts.input_size, opts.threads, log)
        run_rounds(cases, opts.rounds, log)
        log(f"scoring {len(runners)} paths on {opts.validation_samples} synthetic validation persons")
        count, metric, results = score_runners(
            list(runners.values()),
            data="synthetic",
            input_size=opts.input_size,
            samples=opts.validation_samples,
            flip_test=False,
            batch_size=8,
            input_convention=source.input_convention,
        )
        scores = {name: float(r.mean) for name, r in zip(runners, results)}
        precisions = {name: ov_precisions(r) for name, r in runners.items() if name.startswith("ov")}

    summary = summarise(cases, runners, scores, source.spec.name, teacher.spec.name)
    env = environment(opts.threads)
    print_report(summary, opts, env, source.spec.name, metric, count)
    report = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/deploy_paths.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(opts).items() if k != "json"),
        "environment": env,
        "load_average_end": os.getloadavg(),
        "seconds": time.perf_counter() - started,
        "metric": metric,
        "validation_samples": count,
        **summary,
        "openvino_convolution_precisions": precisions,
        "blocks_ms": {c.name: [b * 1e3 for b in c.blocks] for c in cases},
    }
    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out} ({report['seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
