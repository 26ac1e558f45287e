"""``fpdctl bench``: latency, throughput and peak memory per model x backend x batch size.

What is timed (:data:`TIMED_MODEL`): by default the network alone, from an input already in the
runtime's memory and layout (a torch tensor on the device, channels_last where the row says so;
a numpy array for ONNX Runtime, which reads it in place) to the heatmaps the runtime returns,
synchronised on CUDA. With ``end_to_end`` each iteration also times, separately, pre-processing
(crop and resize a 640x480 BGR frame with ``cv2.warpAffine``, normalise, batch, hand to the
runtime) and post-processing (heatmaps to host numpy, decode, map back to frame pixels). A graph
exported with ``--embed-preprocess`` / ``--embed-decode`` gets uint8 crops and returns keypoints:
its model-only time (:data:`TIMED_MODEL_EMBEDDED`) includes that work, and end-to-end it is handed
the crops and its keypoints are only mapped back. Every row says which (``BenchRow.timed``).

With ``accuracy_samples`` every (model, backend) is also scored against its fp32 reference, and
the fastest row within :data:`~fpdctl.deploy.recommend.MAX_ACCURACY_DROP` points is recommended
(:mod:`fpdctl.deploy.recommend`); without scores only fp32 rows can be.

Cases are measured round-robin: each (model, backend, batch) runs :data:`ROUND_ITERS` timed
iterations in turn (after one untimed iteration that lets the previous runtime's spinning worker
threads go idle), so a slow spell on a shared machine slows all of them alike and their ratios
hold, while each runtime still runs back to back as it would in a deployed process.

Peak memory: on CPU the process's peak resident set (``VmHWM`` from ``/proc/self/status``, reset
before each case through ``/proc/self/clear_refs`` where Linux allows it), measured over the case's
warm-up, which runs alone; on CUDA ``torch.cuda.max_memory_allocated`` for PyTorch rows. The
process figure includes the libraries and every loaded model; ``mem_delta_mb`` is the rise over
the warm-up alone.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from fpdctl.deploy.bench_cases import Case, build_cases, check_embedding, frames, postprocess, preprocess
from fpdctl.deploy.bench_report import (
    TIMED_END_TO_END,
    TIMED_MODEL,
    TIMED_MODEL_EMBEDDED,
    BenchRow,
    environment,
    instruction_set,
)
from fpdctl.deploy.placement import ROW_CALIBRATION_SAMPLES
from fpdctl.errors import UsageError
from fpdctl.progress import Progress, report
from fpdctl.utils.device import DEFAULT_DEVICE
from fpdctl.utils.memory import peak_rss_mb, reset_peak_rss, rss_mb

if TYPE_CHECKING:
    from fpdctl.data.kinds import DataSpec
    from fpdctl.deploy.preprocess_decode import Embedding
    from fpdctl.deploy.recommend import BackendRecommendation
    from fpdctl.deploy.runtime import ModelSource
    from fpdctl.models.convention import ConventionOverride

DEFAULT_ITERS = 30
# Cases take turns in rounds of this many consecutive timed iterations each.
ROUND_ITERS = 5
# Calibration images for an int8 export made on the fly by `bench --backend all`.
BENCH_CALIBRATION_SAMPLES = ROW_CALIBRATION_SAMPLES


@dataclass(frozen=True)
class BenchResult:
    """A benchmark run: its rows and the conditions they were measured in.

    Attributes:
        rows: one per model x backend x batch, in that order.
        skipped: "model backend: reason" for each combination that could not run.
        device, threads, timed: as in the rows.
        environment: versions, CPU and OS, for reproducing the figures.
        recommendations: per model and batch, the path to ship (the rows marked recommended).
        accuracy_data, accuracy_samples: the split rows were scored on ("", 0: not scored).
    """

    rows: list[BenchRow]
    skipped: list[str] = field(default_factory=list)
    device: str = "cpu"
    threads: int = 1
    timed: str = TIMED_MODEL
    environment: dict[str, str] = field(default_factory=dict)
    recommendations: "list[BackendRecommendation]" = field(default_factory=list)
    accuracy_data: str = ""
    accuracy_samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "skipped": list(self.skipped),
            "device": self.device,
            "threads": self.threads,
            "timed": self.timed,
            "environment": dict(self.environment),
            "recommendations": [asdict(r) for r in self.recommendations],
            "accuracy_data": self.accuracy_data,
            "accuracy_samples": self.accuracy_samples,
        }


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


# Over 80 lines only through its signature and docstring (one entry per option); the body checks
# the options and calls _benchmark.
def benchmark(
    models: "Sequence[str | ModelSource]",
    *,
    backend: str = "auto",
    batches: Sequence[int] = (1,),
    threads: int | None = None,
    warmup: int = 5,
    iters: int | None = None,
    duration: float | None = None,
    device: str = DEFAULT_DEVICE,
    precisions: Sequence[str] | None = None,
    end_to_end: bool = False,
    input_size: int | None = None,
    calibration_samples: int = BENCH_CALIBRATION_SAMPLES,
    spin_us: int | None = None,
    input_convention: "ConventionOverride | None" = None,
    embedding: "Embedding | None" = None,
    accuracy_samples: int = 0,
    accuracy_data: "str | DataSpec" = "synthetic",
    progress: Progress | None = None,
) -> BenchResult:
    """Measure every model on every selected backend at every batch size.

    Args:
        models: checkpoints, .onnx files or model names (random weights), or models already
            opened (:class:`~fpdctl.deploy.runtime.ModelSource`, as ``fpdctl.Pose.bench`` gives).
        backend: "auto", "torch", "onnxruntime", "all" or comma-separated backend names (see
            :func:`~fpdctl.deploy.backends.select_backends`).
        batches: batch sizes.
        threads: intra-op threads for PyTorch and ONNX Runtime (None: PyTorch's default, used
            for both so they compete on equal terms).
        warmup: untimed iterations per case (they also measure peak memory).
        iters: timed iterations per case (default :data:`DEFAULT_ITERS` without ``duration``).
        duration: instead of ``iters``, time each case for about this many seconds.
        device: "auto", "cpu", "cuda" or "cuda:N"; each row runs where the library's one device
            rule puts its runtime (:func:`~fpdctl.deploy.placement.run_device`).
        precisions: keep backends of these precisions (None: fp32, or all with "all").
        end_to_end: also time pre- and post-processing, separately.
        input_size: input side for checkpoints and names (default: the size a checkpoint was
            trained at, else :data:`~fpdctl.models.spec.DEFAULT_INPUT_SIZE`); an .onnx file runs at
            its own size.
        calibration_samples: synthetic calibration images for an int8 export made on the fly.
        spin_us: how long ONNX Runtime's idle worker threads busy-wait for the next operator
            (None: fpdctl's default, 100 us; 0: never; see
            :func:`~fpdctl.deploy.runtime.session_options`).
        input_convention: override flags applied to every model's own input convention (the
            normalisation ``end_to_end`` times).
        embedding: put pre-processing and / or decoding inside the ONNX graphs bench exports for
            checkpoints (ONNX backends only; see :mod:`fpdctl.deploy.preprocess_decode`).
        accuracy_samples: also score each (model, backend) on this many validation persons of
            ``accuracy_data`` against its fp32 reference (0: don't); the recommendation then
            weighs reduced precisions too (:mod:`fpdctl.deploy.recommend`).
        accuracy_data: the ``--data`` spec of those persons.
        progress: gets a "bench.stage" event, with a short description, before each slow step.

    Raises:
        UsageError: bad options, or no model/backend combination that can run.
    """
    import torch

    from fpdctl.utils.device import resolve_device

    iters, spin_us = _check_options(models, batches, warmup, iters, duration, threads, spin_us)
    if accuracy_samples < 0:
        raise UsageError(f"`accuracy_samples` must be 0 or more, got {accuracy_samples}", params="accuracy_samples")
    if accuracy_samples:
        from fpdctl.data.kinds import parse_data_spec

        accuracy_data = parse_data_spec(accuracy_data)  # parsed once; a bad spec fails before minutes of timing
    _check_models(models, input_size)
    check_embedding([m for m in models if isinstance(m, str)], backend, precisions, embedding)
    target = resolve_device(device)
    if target.type not in ("cpu", "cuda"):
        raise UsageError(f"bench runs on cpu or cuda, not {target.type}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _benchmark(
            models,
            backend=backend,
            batches=batches,
            warmup=warmup,
            iters=iters,
            duration=duration,
            target=target,
            device=device,
            precisions=precisions,
            end_to_end=end_to_end,
            input_size=input_size,
            calibration_samples=calibration_samples,
            spin_us=spin_us,
            progress=progress,
            input_convention=input_convention,
            embedding=embedding,
            accuracy=(accuracy_data, accuracy_samples) if accuracy_samples else None,
        )
    finally:
        torch.set_num_threads(previous_threads)  # a library call must not leave torch changed


def _check_options(
    models: Sequence[str],
    batches: Sequence[int],
    warmup: int,
    iters: int | None,
    duration: float | None,
    threads: int | None,
    spin_us: int | None,
) -> tuple[int | None, int]:
    """Refuse bad options before any work; returns ``iters`` and ``spin_us`` with their defaults.

    Raises:
        UsageError: the first bad option.
    """
    if not models:
        raise UsageError("give at least one MODEL")
    if not batches or any(int(b) < 1 for b in batches):
        raise UsageError(f"`batches` must be positive integers, got {list(batches)}", params="batches")
    if warmup < 0:
        raise UsageError(f"`warmup` must be 0 or more, got {warmup}", params="warmup")
    if iters is not None and duration is not None:
        raise UsageError("give `iters` or `duration`, not both", params=("iters", "duration"))
    if iters is not None and iters < 1:
        raise UsageError(f"`iters` must be at least 1, got {iters}", params="iters")
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise UsageError(f"`duration` must be a positive number of seconds, got {duration}", params="duration")
    if threads is not None and threads < 1:
        raise UsageError(f"`threads` must be at least 1, got {threads}", params="threads")
    if iters is None and duration is None:
        iters = DEFAULT_ITERS
    if spin_us is None:
        from fpdctl.deploy.runtime import DEFAULT_SPIN_US

        spin_us = DEFAULT_SPIN_US
    if spin_us < 0:
        raise UsageError(f"`spin_us` must be 0 or more, got {spin_us}", params="spin_us")
    return iters, spin_us


def _check_models(models: Sequence[str], input_size: int | None) -> None:
    """Fail before the first progress line on what needs no loading: a missing file, an unknown
    model name, an input size the named network cannot take (a checkpoint's own spec is checked
    once it is loaded).

    Raises:
        InputError: a missing file; UsageError: an unknown name or a bad input size.
    """
    from fpdctl.deploy.runtime import is_onnx_path
    from fpdctl.models.checkpoint_files import checkpoint_file, resolve_input_size
    from fpdctl.models.spec import is_checkpoint_path, resolve_spec
    from fpdctl.pretrained import is_pretrained_name
    from fpdctl.utils.io import require_file

    if input_size is not None and input_size <= 0:
        raise UsageError(f"`input_size` must be positive, got {input_size}", params="input_size")
    for name in models:
        if not isinstance(name, str):  # already opened
            continue
        if is_onnx_path(name):
            require_file(name, "ONNX model")
        elif is_checkpoint_path(name) or is_pretrained_name(name):
            require_file(checkpoint_file(name), "checkpoint")
        else:
            resolve_spec(name).check_input_size(resolve_input_size(name, input_size))


def _benchmark(
    models: Sequence[str],
    *,
    backend: str,
    batches: Sequence[int],
    warmup: int,
    iters: int | None,
    duration: float | None,
    target: Any,
    device: str,
    precisions: Sequence[str] | None,
    end_to_end: bool,
    input_size: int | None,
    calibration_samples: int,
    spin_us: int,
    progress: Progress | None,
    input_convention: "ConventionOverride | None" = None,
    embedding: "Embedding | None" = None,
    accuracy: "tuple[str | DataSpec, int] | None" = None,
) -> BenchResult:
    import torch

    from fpdctl.deploy.recommend import recommend, score_cases
    from fpdctl.deploy.runtime import open_model

    thread_count = torch.get_num_threads()

    sources = []
    for name in models:
        if not isinstance(name, str):  # a model already opened (fpdctl.Pose.bench)
            sources.append(name)
            continue
        report(progress, "bench.stage", f"loading {name}")
        sources.append(open_model(name, input_convention))

    with tempfile.TemporaryDirectory(prefix="fpdctl-bench-") as work_dir:
        cases, skipped = build_cases(
            sources,
            backend,
            batches,
            precisions,
            device,
            thread_count,
            input_size,
            Path(work_dir),
            calibration_samples,
            spin_us,
            progress,
            embedding,
        )
        if not cases:
            reasons = "; ".join(skipped) if skipped else "no backend selected"
            raise UsageError(f"nothing to benchmark: {reasons}")
        _run_cases(cases, warmup, iters, duration, end_to_end, target, progress)
        scores = (
            {}
            if accuracy is None
            else score_cases(
                cases,
                data=accuracy[0],
                samples=accuracy[1],
                say=lambda line: report(progress, "bench.stage", line),
            )
        )
    rows = _rows(cases, target, thread_count, end_to_end, scores)
    recommendations = recommend(rows, scoring=accuracy is not None)
    chosen = {(r.model, r.batch, r.backend) for r in recommendations}
    isa = instruction_set()
    rows = [replace(r, recommended=(r.model, r.batch, r.backend) in chosen, isa=isa) for r in rows]
    return BenchResult(
        rows=rows,
        skipped=skipped,
        device=str(target),
        threads=thread_count,
        recommendations=recommendations,
        accuracy_data=str(accuracy[0]) if accuracy else "",
        accuracy_samples=accuracy[1] if accuracy else 0,
        timed=TIMED_END_TO_END if end_to_end else TIMED_MODEL,
        environment={
            **environment(thread_count),
            "onnxruntime_spin_us": str(spin_us),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", ""),
            "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT", ""),
        },
    )


def _run_cases(
    cases: list[Case],
    warmup: int,
    iters: int | None,
    duration: float | None,
    end_to_end: bool,
    target: Any,
    progress: Progress | None,
) -> None:
    import torch

    rng = np.random.default_rng(0)
    cuda = target.type == "cuda"
    for case in cases:
        report(progress, "bench.stage", f"warming up {case.source.label} {case.backend.name} batch {case.batch}")
        side = case.input_size
        if case.runner.io.takes_pixels:
            images = rng.integers(0, 256, (case.batch, side, side, 3), dtype=np.uint8)
        else:
            images = rng.standard_normal((case.batch, 3, side, side)).astype(np.float32)
        if end_to_end:
            case.frames = frames(case.batch)
            case.convention = case.source.input_convention
        case.prepared = case.runner.prepare(images)
        if cuda and case.backend.runtime == "torch":
            torch.cuda.reset_peak_memory_stats(target)
            case.mem_kind = "cuda"
            case.base_mb = torch.cuda.memory_allocated(target) / 1e6
        elif not cuda:
            case.mem_kind = "rss" if reset_peak_rss() else "rss-lifetime"
            case.base_mb = rss_mb() if case.mem_kind == "rss" else None
        for _ in range(max(warmup, 1)):  # one untimed run at least: first calls allocate and plan
            case.runner.forward(case.prepared)
        if case.mem_kind == "cuda":
            case.peak_mb = torch.cuda.max_memory_allocated(target) / 1e6
        elif case.mem_kind.startswith("rss"):
            case.peak_mb = peak_rss_mb()

    report(progress, "bench.stage", f"timing {len(cases)} case(s) round-robin")
    budget = None if duration is None else float(duration)
    elapsed = [0.0] * len(cases)
    while True:
        pending = [
            i
            for i, case in enumerate(cases)
            if (iters is not None and len(case.times) < iters)
            or (budget is not None and (elapsed[i] < budget or not case.times))
        ]
        if not pending:
            break
        for i in pending:
            case = cases[i]
            block = ROUND_ITERS if iters is None else min(ROUND_ITERS, iters - len(case.times))
            # One untimed run first: the previous case's runtime may still hold the cores (ORT
            # and OpenMP worker threads spin for a while after their last task).
            case.runner.forward(case.prepared)
            t_block = time.perf_counter()
            for _ in range(block):
                _time_once(case, end_to_end, cuda, target)
            elapsed[i] += time.perf_counter() - t_block


def _time_once(case: Case, end_to_end: bool, cuda: bool, target: Any) -> None:
    import torch

    if end_to_end:
        t0 = time.perf_counter()
        batch, affines = preprocess(case.frames, case.input_size, case.convention, case.runner.io)
        prepared = case.runner.prepare(batch)
        if cuda:
            torch.cuda.synchronize(target)
        t1 = time.perf_counter()
        output = case.runner.forward(prepared)
        t2 = time.perf_counter()
        postprocess(case.runner, output, affines, case.input_size)
        t3 = time.perf_counter()
        case.pre.append(t1 - t0)
        case.times.append(t2 - t1)
        case.post.append(t3 - t2)
    else:
        t0 = time.perf_counter()
        case.runner.forward(case.prepared)
        case.times.append(time.perf_counter() - t0)


def _rows(cases: list[Case], target: Any, threads: int, end_to_end: bool, scores: dict) -> list[BenchRow]:
    from fpdctl.deploy.metadata import GraphIO
    from fpdctl.profiling.analytic import analytic_cost

    rows: list[BenchRow] = []
    for case in cases:
        io = case.runner.io
        score = scores.get((case.source.label, case.backend.name))
        timed = TIMED_END_TO_END if end_to_end else TIMED_MODEL if io == GraphIO() else TIMED_MODEL_EMBEDDED
        model_s = np.asarray(case.times)
        total_s = model_s + np.asarray(case.pre) + np.asarray(case.post) if end_to_end else model_s
        ms = total_s * 1e3
        p50 = _percentile(ms, 50)
        model_ms = float(np.median(model_s) * 1e3)
        macs = analytic_cost(case.source.spec, case.input_size, batch=1).macs
        rows.append(
            BenchRow(
                model=case.source.label,
                arch=case.source.spec.name,
                backend=case.backend.name,
                runtime=case.backend.runtime,
                precision=case.backend.precision,
                memory_format=case.backend.memory_format,
                device=case.runner.device,
                batch=case.batch,
                threads=threads,
                input_size=case.input_size,
                iters=int(ms.size),
                mean_ms=float(ms.mean()),
                std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
                min_ms=float(ms.min()),
                p50_ms=p50,
                p90_ms=_percentile(ms, 90),
                p99_ms=_percentile(ms, 99),
                img_per_s=case.batch / (p50 / 1e3),
                model_ms=model_ms,
                pre_ms=float(np.median(case.pre) * 1e3) if end_to_end else None,
                post_ms=float(np.median(case.post) * 1e3) if end_to_end else None,
                peak_mem_mb=case.peak_mb,
                mem_delta_mb=(
                    case.peak_mb - case.base_mb if case.peak_mb is not None and case.base_mb is not None else None
                ),
                mem_kind=case.mem_kind,
                gmacs=macs / 1e9,
                gflops_per_s=2.0 * macs * case.batch / (model_ms / 1e3) / 1e9,
                timed=timed,
                graph=io.describe(),
                metric=score.metric if score else "",
                accuracy=score.value if score else None,
                accuracy_drop=score.drop if score else None,
            )
        )
    return _with_ratios(rows)


def _with_ratios(rows: list[BenchRow]) -> list[BenchRow]:
    """Fill ``speedup`` (against the first model) and ``vs_reference`` (against eager fp32)."""
    from dataclasses import replace

    models = list(dict.fromkeys(r.model for r in rows))
    by_key = {(r.model, r.backend, r.batch): r for r in rows}
    out = []
    for row in rows:
        speedup = None
        if len(models) > 1:
            first = by_key.get((models[0], row.backend, row.batch)) or next(
                (r for r in rows if r.model == models[0] and r.batch == row.batch), None
            )
            speedup = first.p50_ms / row.p50_ms if first is not None else None
        ref = by_key.get((row.model, "torch", row.batch))
        vs_reference = ref.p50_ms / row.p50_ms if ref is not None else None
        out.append(replace(row, speedup=speedup, vs_reference=vs_reference))
    return out


__all__ = [
    "BENCH_CALIBRATION_SAMPLES",
    "DEFAULT_ITERS",
    "ROUND_ITERS",
    "BenchResult",
    "benchmark",
]
