"""``fpdctl predict`` peak memory on one crowded image: 1, 50, 200 and 3,000 person boxes, the
crops run all at once (``--batch-size 100000``: what predict did before issue 28) and in chunks
of the default ``--batch-size`` (32).

Prints a table and writes JSON (default benchmarks/results/predict_memory.json).

    python benchmarks/predict_memory.py [--counts 1,50,200,3000] [--time-limit 240]
        [--small-model hg1x16 --small-counts 3000] [--threads 1]

Each case is a fresh ``python -m fpdctl predict MODEL.onnx crowd.png --boxes K.json`` (drawing
on, as a user runs it). Its peak resident memory is the kernel's (``ru_maxrss`` from
``os.wait4``), which counts everything the process held: Python, torch and ONNX Runtime
imported, the model, the image, crops, heatmaps, the drawing. While it runs, ``/proc/PID/status``
is read every 20 ms: a case past ``--memory-cap`` GB (the shared machine must not run out) or
past ``--time-limit`` seconds is killed, and its peak is then a lower bound (shown as ">=").

The model: ``create_model(NAME)`` with random weights, exported by ``fpdctl export`` to ONNX fp32
(``export_onnx(..., verify=False)``), run with ONNX Runtime on the CPU (backend row ``ort``):
memory does not depend on the weights' values. The image: 1920 x 1080; the boxes: seeded random
person-shaped boxes (60 to 240 px high, aspect 0.3 to 0.6) inside it. Exports are cached in
``--work`` so a rerun skips them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

# The size that predict ran every box of an image as one batch at (no chunking).
ALL_AT_ONCE = 100_000
WIDTH, HEIGHT = 1920, 1080
POLL_S = 0.02


@dataclass
class Case:
    """One fresh predict process and what it held at most."""

    model: str
    input_size: int
    boxes: int
    batch_size: int
    peak_rss_mb: float
    seconds: float
    status: str  # "done", "time limit" (killed) or "memory cap" (killed)
    exit_code: int


def crowd_boxes(count: int, seed: int = 0) -> list[list[float]]:
    """``count`` person-shaped boxes (x, y, w, h) inside the WIDTH x HEIGHT image."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(60, 240, count)
    w = h * rng.uniform(0.3, 0.6, count)
    x = rng.uniform(0, WIDTH - w)
    y = rng.uniform(0, HEIGHT - h)
    return np.round(np.stack([x, y, w, h], 1), 1).tolist()


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_case(
    model_path: Path,
    image: Path,
    boxes: Path,
    out: Path,
    batch_size: int,
    threads: int,
    time_limit: float,
    cap_mb: float,
) -> tuple[float, float, str, int]:
    """(peak RSS MB, seconds, status, exit code) of one predict process."""
    command = [sys.executable, "-m", "fpdctl", "predict", str(model_path), str(image), "--boxes", str(boxes)]
    command += ["--out", str(out), "--overwrite", "--batch-size", str(batch_size), "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status = "done"
    while True:
        pid, wait_status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid == child.pid:
            break
        rss = _rss_mb(child.pid)
        if rss is not None and rss > cap_mb:
            status = "memory cap"
        elif time.perf_counter() - start > time_limit:
            status = "time limit"
        if status != "done":
            os.kill(child.pid, signal.SIGKILL)
            pid, wait_status, usage = os.wait4(child.pid, 0)
            break
        time.sleep(POLL_S)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(wait_status)  # reaped here, not by Popen
    if status == "done" and child.returncode != 0:
        err = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"predict failed ({child.returncode}): {err.strip().splitlines()[-1:]}")
    return usage.ru_maxrss / 1024, seconds, status, child.returncode


def _cpu() -> dict[str, object]:
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return {"model": model, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hg4x128")
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--counts", default="1,50,200,3000")
    parser.add_argument("--small-model", default="hg1x16", help="also run --small-counts with this model")
    parser.add_argument("--small-counts", default="3000")
    parser.add_argument("--batch-sizes", default=f"{ALL_AT_ONCE},32", help="comma-separated; 100000 = all at once")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds per case, then killed")
    parser.add_argument("--memory-cap", type=float, default=6.0, help="GB per case, then killed")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fpdctl-predict-memory"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "predict_memory.json")
    args = parser.parse_args()

    import cv2

    from fpdctl.deploy.export import export_onnx
    from fpdctl.pipeline import INFERENCE_BATCH_SIZE

    args.work.mkdir(parents=True, exist_ok=True)
    image = args.work / "crowd.png"
    ramp = np.linspace(0, 255, WIDTH, dtype=np.uint8)
    cv2.imwrite(str(image), np.broadcast_to(ramp[None, :, None], (HEIGHT, WIDTH, 3)).copy())
    plan = [(args.model, int(c)) for c in args.counts.split(",") if c]
    if args.small_model:
        plan += [(args.small_model, int(c)) for c in args.small_counts.split(",") if c]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    cases: list[Case] = []
    print(f"{'model':<10} {'boxes':>6} {'batch':>7} {'peak RSS MB':>12} {'seconds':>8}  status", flush=True)
    for name, count in plan:
        model_path = args.work / f"{name}_{args.input_size}.onnx"
        if not model_path.exists():
            export_onnx(name, model_path, input_size=args.input_size, verify=False, threads=args.threads)
        boxes = args.work / f"boxes_{count}.json"
        entries = [{"file_name": image.name, "bbox": b, "score": 1.0} for b in crowd_boxes(count)]
        boxes.write_text(json.dumps(entries))
        for batch_size in batch_sizes:
            out = args.work / f"out_{name}_{count}_{batch_size}"
            peak, seconds, status, code = run_case(
                model_path, image, boxes, out, batch_size, args.threads, args.time_limit, args.memory_cap * 1024
            )
            case = Case(name, args.input_size, count, batch_size, round(peak, 1), round(seconds, 1), status, code)
            cases.append(case)
            shown = f"{'>=' if status != 'done' else ''}{peak:.0f}"
            print(f"{name:<10} {count:>6} {batch_size:>7} {shown:>12} {seconds:>8.1f}  {status}", flush=True)
    result = {
        "benchmark": "predict_memory",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu(),
        "load_average_1min": {"start": round(load_before[0], 1), "end": round(os.getloadavg()[0], 1)},
        "runtime": "onnxruntime fp32, CPU (backend ort), drawing on",
        "threads": args.threads,
        "image": f"{WIDTH}x{HEIGHT}",
        "default_batch_size": INFERENCE_BATCH_SIZE,
        "all_at_once_batch_size": ALL_AT_ONCE,
        "time_limit_s": args.time_limit,
        "memory_cap_gb": args.memory_cap,
        "cases": [asdict(c) for c in cases],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
