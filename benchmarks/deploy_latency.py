"""Deployment latency on this CPU: the student against its compute floor and against the teacher.

Prints a table and writes JSON (default benchmarks/results/deploy_latency.json).

    python benchmarks/deploy_latency.py [--rounds 15] [--student CKPT --student-input-size 128]
    python benchmarks/deploy_latency.py --only 'gemm|hg4x128 onnxruntime fp32$'   # the floor check

Every case runs at batch 1, 256 px, with the same number of threads (default 2), and the cases
are interleaved: each round runs every case for a block of iterations (after one untimed run, so
the previous runtime's spinning threads have gone idle), and ratios are taken round by round
between blocks of the same round. On a machine shared with other jobs this keeps the ratios
meaningful even while absolute times drift; the JSON keeps every block so the spread can be
checked.

Cases:
- fp32 GEMM peaks: a 2048^3 ``torch.matmul`` (PyTorch's BLAS) and a 1024^3 ONNX Runtime MatMul
  (MLAS, the library ORT's convolutions run on), each the fastest round's block median. The
  compute floor of a model is FLOPs (2 x MACs, convolutions only) / peak; the table's "x floor"
  uses the higher peak, the JSON has both. Per-round ratios to the same round's GEMM are given
  too, as a check that does not depend on picking the best round.
- the teacher hg8x256: eager fp32 PyTorch (NCHW), ONNX Runtime fp32 and int8;
- the student hg4x128: eager fp32 (NCHW, channels_last), bf16 autocast; ONNX Runtime fp32 from
  the dynamo exporter (fpdctl's default) and from the TorchScript exporter, with fpdctl's session
  options (idle threads spin 100 us), without spinning, with ORT's unbounded spinning, without
  the NCHWc layout pass (ORT_ENABLE_EXTENDED), and with the exported stacked output (all stacks
  concatenated, the last gathered) instead of fpdctl's last-stack-only graph; ONNX Runtime fp16
  and int8 (static QDQ, calibrated on synthetic images).

Accuracy (with ``--student``, a trained checkpoint): PCKh@0.5 on the synthetic validation split of
ONNX Runtime fp32, int8 and fp16 exports and of PyTorch under bf16 autocast, at the input size
the student was trained at, without the flip test (``fpdctl eval --no-flip-test``: a deployed model
runs one forward; the figures in docs/BENCHMARKS.md were measured so). Latency does not depend on
the weights, so random weights are used for the teacher (and for the student without
``--student``).
"""

from __future__ import annotations

import os

# OpenMP threads (PyTorch's) sleep at barriers instead of spinning without bound, as ORT's
# threads do with fpdctl's session options (100 us of spinning, then sleep). On a machine shared
# with other jobs, spinning threads steal the cores the other thread of the same op is waiting
# for: measured here under load, hg4x128 eager took 480-690 ms with OMP_WAIT_POLICY=ACTIVE and
# 170 ms with PASSIVE. libgomp reads this once, when torch is first imported; set it in the
# environment to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

DEFAULT = object()  # "fpdctl's default session options"


@dataclass
class Case:
    name: str
    run: Callable[[], object]
    flops: float  # per call
    block: int = 5  # timed iterations per round
    times: list[float] = field(default_factory=list)
    blocks: list[float] = field(default_factory=list)  # median of each round's block


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def gemm_cases(threads: int) -> list[Case]:
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    n = 2048
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch_case = Case("gemm torch.matmul 2048", lambda: torch.matmul(a, b, out=c), 2.0 * n**3, block=3)

    m = 1024
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((m, m)).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["C"])],
        "gemm",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, m])],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, [m, m])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    from fpdctl.deploy.runtime import session_options

    session = ort.InferenceSession(
        model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(1).standard_normal((m, m)).astype(np.float32)
    ort_case = Case("gemm onnxruntime MatMul 1024", lambda: session.run(None, {"A": x}), 2.0 * m**3, block=10)
    return [torch_case, ort_case]


def _ort_session(path: Path, threads: int, *, spin_us: int | None = DEFAULT, level: str = "all"):
    import onnxruntime as ort

    from fpdctl.deploy.runtime import session_options

    options = session_options(threads, **({} if spin_us is DEFAULT else {"spin_us": spin_us}))
    if level == "extended":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def model_cases(student_net, teacher_net, threads: int, work: Path, size: int, wanted, log) -> list[Case]:
    """The model cases whose names ``wanted(name)`` accepts; exports only what those need."""
    import functools

    import onnx

    from fpdctl.deploy.backends import get_backend
    from fpdctl.deploy.export import export_onnx
    from fpdctl.deploy.onnx_graph import take_last_stack_directly
    from fpdctl.deploy.runtime import TorchRunner
    from fpdctl.deploy.torch_onnx import torch_to_onnx
    from fpdctl.profiling.analytic import analytic_cost

    image = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    t_flops = 2.0 * analytic_cost(teacher_net.spec, size).macs
    s_flops = 2.0 * analytic_cost(student_net.spec, size).macs

    @functools.lru_cache(maxsize=None)
    def exported(which: str) -> Path:
        path = work / f"{which}.onnx"
        log(f"exporting {which}")
        if which in ("teacher", "teacher_int8"):
            precision = "fp32" if which == "teacher" else "int8"
            export_onnx(teacher_net, path, input_size=size, precision=precision, calibration_samples=64, verify=False)
        elif which in ("student_ts", "student_stacked"):
            # TorchScript: the same graph clean-up as `fpdctl export`, so only the exporter differs;
            # stacked: the dynamo graph as exported, all stacks concatenated and the last gathered.
            exporter = "torchscript" if which == "student_ts" else "dynamo"
            torch_to_onnx(student_net, path, input_size=size, exporter=exporter)
            if which == "student_ts":
                model = onnx.load(str(path))
                take_last_stack_directly(model)
                onnx.save(model, str(path))
        else:
            precision = {"student": "fp32", "student_fp16": "fp16", "student_int8": "int8"}[which]
            export_onnx(student_net, path, input_size=size, precision=precision, calibration_samples=64, verify=False)
        return path

    def torch_case(net, backend: str, flops: float, block: int):
        def make(name: str) -> Case:
            runner = TorchRunner(copy.deepcopy(net), get_backend(backend), "cpu")
            prepared = runner.prepare(image)
            return Case(name, lambda: runner.forward(prepared), flops, block=block)

        return make

    def ort_case(which: str, flops: float, block: int = 5, **session):
        def make(name: str) -> Case:
            sess = _ort_session(exported(which), threads, **session)
            feed = {sess.get_inputs()[0].name: image}
            return Case(name, lambda: sess.run(None, feed), flops, block=block)

        return make

    plan = {
        "hg8x256 torch eager fp32 nchw": torch_case(teacher_net, "torch", t_flops, 2),
        "hg8x256 onnxruntime fp32": ort_case("teacher", t_flops, 2),
        "hg8x256 onnxruntime int8": ort_case("teacher_int8", t_flops, 2),
        "hg4x128 torch eager fp32 nchw": torch_case(student_net, "torch", s_flops, 3),
        "hg4x128 torch eager fp32 channels_last": torch_case(student_net, "torch-cl", s_flops, 3),
        "hg4x128 torch eager bf16 channels_last": torch_case(student_net, "torch-bf16", s_flops, 3),
        "hg4x128 onnxruntime fp32": ort_case("student", s_flops),
        "hg4x128 onnxruntime fp32 (torchscript export)": ort_case("student_ts", s_flops),
        "hg4x128 onnxruntime fp32 (stacked output)": ort_case("student_stacked", s_flops),
        "hg4x128 onnxruntime fp32 (no spinning)": ort_case("student", s_flops, spin_us=0),
        "hg4x128 onnxruntime fp32 (unbounded spinning)": ort_case("student", s_flops, spin_us=None),
        "hg4x128 onnxruntime fp32 (no NCHWc)": ort_case("student", s_flops, level="extended"),
        "hg4x128 onnxruntime fp16": ort_case("student_fp16", s_flops, 2),
        "hg4x128 onnxruntime int8": ort_case("student_int8", s_flops),
    }
    return [make(name) for name, make in plan.items() if wanted(name)]


def run_rounds(cases: list[Case], rounds: int, log) -> None:
    for case in cases:  # warm-up: first calls allocate and plan
        for _ in range(2):
            case.run()
    for r in range(rounds):
        log(f"round {r + 1}/{rounds}")
        for case in cases:
            case.run()  # untimed: let the previous runtime's threads go idle
            block = []
            for _ in range(case.block):
                start = time.perf_counter()
                case.run()
                block.append(time.perf_counter() - start)
            case.times.extend(block)
            case.blocks.append(_median(block))


def ratio(a: Case, b: Case) -> dict[str, float]:
    """a's time over b's, round by round (> 1: b is faster)."""
    values = [x / y for x, y in zip(a.blocks, b.blocks)]
    return {"median": _median(values), "p10": _pct(values, 10), "p90": _pct(values, 90)}


def accuracy(checkpoint: str, size: int, samples: int, threads: int, work: Path, log) -> dict:
    from fpdctl.deploy.backends import get_backend
    from fpdctl.deploy.export import export_onnx
    from fpdctl.deploy.runtime import OrtRunner, TorchRunner
    from fpdctl.deploy.verify import compare_accuracy
    from fpdctl.models.factory import create_model

    net = create_model(Path(checkpoint))
    paths = {}
    for precision in ("fp32", "int8", "fp16"):
        log(f"exporting the trained student ({precision}, {size} px)")
        paths[precision] = work / f"trained_{precision}.onnx"
        export_onnx(net, paths[precision], input_size=size, precision=precision, calibration_samples=256, verify=False)
    fp32 = OrtRunner(paths["fp32"], threads=threads)
    out = {"checkpoint": checkpoint, "input_size": size, "samples": samples}
    for precision in ("int8", "fp16"):
        log(f"scoring fp32 and {precision} on {samples} synthetic validation persons")
        result = compare_accuracy(
            fp32,
            OrtRunner(paths[precision], threads=threads),
            data="synthetic",
            input_size=size,
            samples=samples,
            flip_test=False,
            candidate_precision=precision,
        )
        out["fp32"] = result.reference_mean
        out[precision] = result.candidate_mean
        out[f"{precision}_drop"] = result.drop
    log("scoring PyTorch bf16 autocast")
    bf16 = TorchRunner(copy.deepcopy(net), get_backend("torch-bf16"), "cpu")
    result = compare_accuracy(
        fp32, bf16, data="synthetic", input_size=size, samples=samples, flip_test=False, candidate_precision="bf16"
    )
    out["bf16"] = result.candidate_mean
    out["bf16_drop"] = result.drop
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--student", help="trained student checkpoint for the accuracy check")
    parser.add_argument("--student-input-size", type=int, default=256, help="the size it was trained at")
    parser.add_argument("--validation-samples", type=int, default=500)
    parser.add_argument("--only", help="regex: run only the cases whose names match")
    parser.add_argument("--json", default="benchmarks/results/deploy_latency.json")
    opts = parser.parse_args()

    import onnxruntime
    import torch

    from fpdctl.models.factory import create_model

    torch.set_num_threads(opts.threads)
    log = lambda message: print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: E731
    torch.manual_seed(0)
    teacher = create_model("hg8x256").eval()
    student = create_model(Path(opts.student)) if opts.student else create_model("hg4x128").eval()

    with tempfile.TemporaryDirectory(prefix="deploy-latency-") as tmp:
        work = Path(tmp)
        wanted = (lambda name: re.search(opts.only, name) is not None) if opts.only else (lambda name: True)
        cases = [c for c in gemm_cases(opts.threads) if wanted(c.name)]
        cases += model_cases(student, teacher, opts.threads, work, opts.input_size, wanted, log)
        run_rounds(cases, opts.rounds, log)
        acc = (
            accuracy(opts.student, opts.student_input_size, opts.validation_samples, opts.threads, work, log)
            if opts.student
            else None
        )

    by_name = {c.name: c for c in cases}

    def peak(name: str) -> float | None:
        # A peak is the best the machine does: the fastest round's block (its median), which on a
        # shared machine is the round least disturbed by other jobs.
        case = by_name.get(name)
        return case.flops / min(case.blocks) / 1e9 if case is not None else None

    peaks = {"torch.matmul": peak("gemm torch.matmul 2048"), "onnxruntime MatMul": peak("gemm onnxruntime MatMul 1024")}
    best_peak = max((p for p in peaks.values() if p is not None), default=None)
    rows = []
    for case in cases:
        med = _median(case.times) * 1e3
        row = {
            "case": case.name,
            "median_ms": med,
            "p10_ms": _pct(case.times, 10) * 1e3,
            "p90_ms": _pct(case.times, 90) * 1e3,
            "best_block_ms": min(case.blocks) * 1e3,
            "iters": len(case.times),
            "gflops_per_s": case.flops / (med / 1e3) / 1e9,
        }
        if not case.name.startswith("gemm") and best_peak is not None:
            row["floor_ms"] = case.flops / (best_peak * 1e9) * 1e3
            row["x_floor"] = med / row["floor_ms"]
            row["best_x_floor"] = row["best_block_ms"] / row["floor_ms"]
            for label, value in peaks.items():
                if value is not None:
                    row[f"floor_ms ({label})"] = case.flops / (value * 1e9) * 1e3
        rows.append(row)

    pairs = {
        "teacher eager / student ort fp32": ("hg8x256 torch eager fp32 nchw", "hg4x128 onnxruntime fp32"),
        "teacher eager / student ort int8": ("hg8x256 torch eager fp32 nchw", "hg4x128 onnxruntime int8"),
        "teacher ort fp32 / student ort fp32": ("hg8x256 onnxruntime fp32", "hg4x128 onnxruntime fp32"),
        "teacher ort fp32 / student ort int8": ("hg8x256 onnxruntime fp32", "hg4x128 onnxruntime int8"),
        "teacher ort int8 / student ort int8": ("hg8x256 onnxruntime int8", "hg4x128 onnxruntime int8"),
        "student ort fp32 / student ort int8": ("hg4x128 onnxruntime fp32", "hg4x128 onnxruntime int8"),
        "student eager fp32 / student eager bf16": (
            "hg4x128 torch eager fp32 nchw",
            "hg4x128 torch eager bf16 channels_last",
        ),
        "student ort fp32 / student eager bf16": ("hg4x128 onnxruntime fp32", "hg4x128 torch eager bf16 channels_last"),
        "dynamo / torchscript export (ort fp32)": (
            "hg4x128 onnxruntime fp32",
            "hg4x128 onnxruntime fp32 (torchscript export)",
        ),
        "no spinning / 100 us (ort fp32)": ("hg4x128 onnxruntime fp32 (no spinning)", "hg4x128 onnxruntime fp32"),
        "unbounded spinning / 100 us (ort fp32)": (
            "hg4x128 onnxruntime fp32 (unbounded spinning)",
            "hg4x128 onnxruntime fp32",
        ),
        "no NCHWc / NCHWc (ort fp32)": ("hg4x128 onnxruntime fp32 (no NCHWc)", "hg4x128 onnxruntime fp32"),
        "stacked output / last stack only (ort fp32)": (
            "hg4x128 onnxruntime fp32 (stacked output)",
            "hg4x128 onnxruntime fp32",
        ),
    }
    ratios = {k: ratio(by_name[a], by_name[b]) for k, (a, b) in pairs.items() if a in by_name and b in by_name}
    # The student against its floor, round by round: its time over the time the same round's MLAS
    # GEMM would take for the same FLOPs (a check that does not depend on picking the best round).
    gemm = by_name.get("gemm onnxruntime MatMul 1024")
    for label, name in (("", "hg4x128 onnxruntime fp32"), (", no spinning", "hg4x128 onnxruntime fp32 (no spinning)")):
        s_ort = by_name.get(name)
        if gemm is not None and s_ort is not None:
            per_round = [(s / s_ort.flops) / (g / gemm.flops) for s, g in zip(s_ort.blocks, gemm.blocks)]
            ratios[f"student ort fp32{label} x floor (same-round MLAS GEMM)"] = {
                "median": _median(per_round),
                "p10": _pct(per_round, 10),
                "p90": _pct(per_round, 90),
            }

    peak_text = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items() if v is not None)
    print(
        f"\nbatch 1, {opts.input_size} px, {opts.threads} threads, {opts.rounds} interleaved rounds; "
        f"fp32 GEMM peak (best round): {peak_text or 'not measured'}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'case':48s} {'median ms':>10s} {'p10':>8s} {'p90':>8s} {'best':>8s} {'GFLOP/s':>8s} {'x floor':>8s}")
    for row in rows:
        floor = f"{row['x_floor']:8.2f}" if "x_floor" in row else " " * 8
        print(
            f"{row['case']:48s} {row['median_ms']:10.2f} {row['p10_ms']:8.2f} {row['p90_ms']:8.2f} "
            f"{row['best_block_ms']:8.2f} {row['gflops_per_s']:8.0f} {floor}"
        )
    print("\nratios (round by round: median [p10, p90])")
    for name, r in ratios.items():
        print(f"  {name:48s} {r['median']:6.2f} [{r['p10']:.2f}, {r['p90']:.2f}]")
    if acc:
        print(
            f"\nPCKh@0.5 on {acc['samples']} synthetic val persons at {acc['input_size']} px ({acc['checkpoint']}): "
            f"fp32 {acc['fp32']:.2f}, int8 {acc['int8']:.2f} ({-acc['int8_drop']:+.2f}), "
            f"fp16 {acc['fp16']:.2f} ({-acc['fp16_drop']:+.2f}), bf16 {acc['bf16']:.2f} ({-acc['bf16_drop']:+.2f})"
        )

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    report = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/deploy_latency.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(opts).items() if v is not None and k != "json"),
        "machine": {
            "cpu": cpu,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "threads": opts.threads,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "load_average": os.getloadavg(),
        },
        "gemm_peak_gflops": peaks,
        "rows": rows,
        "ratios": ratios,
        "accuracy": acc,
        "blocks_ms": {c.name: [b * 1e3 for b in c.blocks] for c in cases},
    }
    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
