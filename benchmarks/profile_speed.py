"""How long `fpdctl profile` takes, as a whole process, and how flat counting is in input size.

Prints a table and writes JSON (default benchmarks/results/profile_speed.json).

    python benchmarks/profile_speed.py [--runs 7] [--json PATH]

Rows:
- `fpdctl profile` (the 12-model grid) end to end: Python start-up, imports, counting, rendering;
- `fpdctl profile --counter meta`, the meta-device counter (imports torch);
- in-process counting of hg8x256 at 256 and 1024 px, closed-form and meta-device.
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
from datetime import date
from pathlib import Path


def _time_process(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs + 1):  # one warm-up
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times[1:]


def _time_call(fn, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", default="benchmarks/results/profile_speed.json")
    opts = parser.parse_args()

    import torch

    from fpdctl.models.hourglass import HourglassNet
    from fpdctl.models.spec import HourglassSpec
    from fpdctl.profiling.analytic import analytic_cost
    from fpdctl.profiling.counter import count_cost

    teacher = HourglassSpec(8, 256)

    def meta(size: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            with torch.device("meta"):
                model = HourglassNet(teacher)
            count_cost(model, (1, 3, size, size))

        return run

    cli = [sys.executable, "-m", "fpdctl", "profile"]
    rows = [
        ("fpdctl profile (grid, process)", _time_process(cli, opts.runs)),
        ("fpdctl profile --counter meta (process)", _time_process(cli + ["--counter", "meta"], opts.runs)),
        ("closed-form hg8x256 @256", _time_call(lambda: analytic_cost(teacher, 256), opts.runs)),
        ("closed-form hg8x256 @1024", _time_call(lambda: analytic_cost(teacher, 1024), opts.runs)),
        ("meta-device hg8x256 @256", _time_call(meta(256), opts.runs)),
        ("meta-device hg8x256 @1024", _time_call(meta(1024), opts.runs)),
    ]
    results = []
    print(f"{'what':42s} {'median s':>9s} {'min s':>8s} {'max s':>8s}")
    for name, times in rows:
        med = statistics.median(times)
        print(f"{name:42s} {med:9.4f} {min(times):8.4f} {max(times):8.4f}")
        results.append({"what": name, "median_s": med, "min_s": min(times), "max_s": max(times), "runs": len(times)})
    by = {r["what"]: r["median_s"] for r in results}
    ratio_closed = by["closed-form hg8x256 @1024"] / by["closed-form hg8x256 @256"]
    ratio_meta = by["meta-device hg8x256 @1024"] / by["meta-device hg8x256 @256"]
    print(f"1024 px / 256 px cost: closed-form {ratio_closed:.2f}x, meta-device {ratio_meta:.2f}x")
    out = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "torch": torch.__version__,
        "rows": results,
        "ratio_1024_vs_256": {"closed_form": ratio_closed, "meta": ratio_meta},
    }
    Path(opts.json).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {opts.json}")


if __name__ == "__main__":
    main()
