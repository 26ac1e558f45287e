"""Data pipeline throughput: samples per second per worker (one core), with augmentation.

Measures :class:`fpdctl.data.dataset.FilePoseDataset` on MPII-sized JPEGs (1280 x 720, generated
into a temporary folder, persons of MPII-like scale) with and without reduced-size JPEG decoding,
and the synthetic generator (``fpdctl.data.synthetic.SyntheticPose``) when it is installed. Every
sample is a full training sample: 256 px input, 64 x 64 targets, default AugmentConfig.

One process, OpenCV and torch limited to one thread, so each figure is what one DataLoader worker
on one core delivers. Wall-clock rates depend on what else the machine runs; the CPU-time rate
(samples per CPU second of this process) is the per-core figure on an idle core.

    python benchmarks/data_throughput.py --json runs/data_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import torch

from fpdctl.data.dataset import PoseDataset
from fpdctl.data.file_dataset import AnnotationTable, FilePoseDataset
from fpdctl.data.transforms import AugmentConfig
from fpdctl.utils.io import atomic_write_text

IMAGE_W, IMAGE_H = 1280, 720
# MPII person scales (height / 200 px) mostly fall between about 1.5 and 4 at this image size;
# the loader then enlarges them by 1.25, as for real MPII annotations.
SCALE_RANGE = (1.5, 4.0)
MPII_SCALE_MARGIN = 1.25


@dataclass(frozen=True)
class ThroughputRow:
    """One measured configuration.

    Attributes:
        loader: what was measured.
        samples: samples timed (after warm-up).
        seconds: wall time for them.
        samples_per_s: samples / seconds, one worker on one core.
        ms_per_sample: 1000 / samples_per_s.
        cpu_seconds: CPU time of the process for them (insensitive to other load on the machine).
        samples_per_cpu_s: samples / cpu_seconds, the per-core throughput on an idle core.
    """

    loader: str
    samples: int
    seconds: float
    samples_per_s: float
    ms_per_sample: float
    cpu_seconds: float
    samples_per_cpu_s: float


def make_jpegs(folder: Path, count: int, seed: int = 0) -> list[str]:
    """Photo-like 1280 x 720 JPEGs: smooth colour fields, texture and edges (about 150-300 KB)."""
    rng = np.random.default_rng(seed)
    names = []
    for k in range(count):
        coarse = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
        image = cv2.resize(coarse, (IMAGE_W, IMAGE_H), interpolation=cv2.INTER_CUBIC)
        noise = rng.normal(0, 12, (IMAGE_H, IMAGE_W, 3))
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        for _ in range(40):
            p = tuple(int(v) for v in rng.integers(0, (IMAGE_W, IMAGE_H)))
            q = tuple(int(v) for v in rng.integers(0, (IMAGE_W, IMAGE_H)))
            cv2.line(image, p, q, tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(2, 12)))
        name = f"{k:09d}.jpg"
        cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        names.append(name)
    return names


class FullDecodeDataset(FilePoseDataset):
    """The same loader with reduced decoding switched off, for comparison."""

    def load_record_reduced(self, index: int, scale_factor: float):  # noqa: D102
        return self.load_record(index), 1


def file_dataset(folder: Path, names: list[str], reduced: bool, seed: int = 1) -> FilePoseDataset:
    rng = np.random.default_rng(seed)
    n = len(names)
    scales = rng.uniform(*SCALE_RANGE, n) * MPII_SCALE_MARGIN
    centers = np.stack([rng.uniform(300, IMAGE_W - 300, n), rng.uniform(250, IMAGE_H - 250, n)], axis=1)
    joints = np.zeros((n, 16, 3), np.float32)
    joints[:, :, :2] = centers[:, None, :] + rng.normal(0, 60, (n, 16, 2))
    joints[:, :, 2] = 1
    table = AnnotationTable(image_files=names, joints=joints, centers=centers, scales=scales)
    cls = FilePoseDataset if reduced else FullDecodeDataset
    return cls(table, folder, input_size=256, heatmap_size=64, augment=AugmentConfig())


def time_dataset(name: str, dataset: PoseDataset, samples: int, repeats: int = 3, warmup: int = 5) -> ThroughputRow:
    """Best of ``repeats`` timed passes over ``samples`` samples (the least disturbed one)."""
    n = len(dataset)
    for k in range(warmup):
        dataset[k % n]
    seconds = cpu_seconds = float("inf")
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        for k in range(samples):
            dataset[k % n]
        seconds = min(seconds, time.perf_counter() - start)
        cpu_seconds = min(cpu_seconds, time.process_time() - cpu_start)
    rate, cpu_rate = samples / seconds, samples / cpu_seconds
    return ThroughputRow(
        name,
        samples,
        round(seconds, 3),
        round(rate, 1),
        round(1000.0 / rate, 2),
        round(cpu_seconds, 3),
        round(cpu_rate, 1),
    )


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(samples: int, images: int, repeats: int = 3) -> tuple[list[ThroughputRow], float]:
    """Measure every configuration.

    Returns:
        one row per configuration, and the generated JPEGs' mean size in KB (for comparison:
        MPII's own images average about 500 KB, 12.9 GB for 24,987 images).
    """
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = make_jpegs(folder, images)
        mean_jpeg_kb = round(float(np.mean([(folder / n).stat().st_size for n in names])) / 1024, 1)
        rows.append(
            time_dataset(
                "file loader, 1280x720 JPEG, reduced decode", file_dataset(folder, names, True), samples, repeats
            )
        )
        rows.append(
            time_dataset(
                "file loader, 1280x720 JPEG, full decode", file_dataset(folder, names, False), samples, repeats
            )
        )
    try:
        from fpdctl.data.synthetic import SyntheticPose
    except ImportError:
        SyntheticPose = None
    if SyntheticPose is not None:
        synthetic = SyntheticPose(split="train", input_size=256, heatmap_size=64, augment=AugmentConfig())
        rows.append(time_dataset("synthetic generator (SyntheticPose)", synthetic, samples, repeats))
    return rows, mean_jpeg_kb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="samples timed per configuration")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the fastest is kept")
    parser.add_argument("--images", type=int, default=48, help="distinct JPEGs generated")
    parser.add_argument("--json", type=Path, default=Path("data_throughput.json"), help="JSON output")
    args = parser.parse_args(argv)
    rows, mean_jpeg_kb = run(args.samples, args.images, args.repeats)
    width = max(len(r.loader) for r in rows)
    print(f"{'loader':<{width}}  {'samples/s':>10}  {'ms/sample':>10}  {'samples/cpu-s':>14}")
    for r in rows:
        print(f"{r.loader:<{width}}  {r.samples_per_s:>10.1f}  {r.ms_per_sample:>10.2f}  {r.samples_per_cpu_s:>14.1f}")
    report = {
        "benchmark": "data_throughput",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "opencv": cv2.__version__,
            "torch": torch.__version__,
        },
        "settings": {
            "input_size": 256,
            "heatmap_size": 64,
            "augment": asdict(AugmentConfig()),
            "threads": 1,
            "repeats": args.repeats,
            "image_size": [IMAGE_W, IMAGE_H],
            "mean_jpeg_kb": mean_jpeg_kb,
            "scale_range": SCALE_RANGE,
        },
        "rows": [asdict(r) for r in rows],
    }
    atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
