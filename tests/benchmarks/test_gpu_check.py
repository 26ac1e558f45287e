"""benchmarks/gpu_check.py --dry-run: every section of the GPU check runs, tiny, on the CPU.

It runs as the GPU machine will run it: a plain ``python benchmarks/gpu_check.py`` with
``PYTHONPATH`` at the checkout, and with pycocotools made unimportable (that machine does not have
it), so an import of it anywhere on the check's path fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# Over 20 s in a full run on two busy cores: every section of the GPU check, in a subprocess.
@pytest.mark.slow
def test_dry_run(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "pycocotools"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        'raise ImportError("pycocotools is not on the GPU machine: gpu_check must not import it")\n'
    )
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{ROOT}", "FPDCTL_DEBUG": ""}
    out = tmp_path / "check"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] is True and report["plan"]["student"] == "hg1x16"
    steps = report["step"]
    assert [(r["variant"], r["batch"]) for r in steps] == [
        (v, b) for b in (2, 4) for v in ("fpdctl eager", "fpdctl compiled", "reference")
    ]
    assert all(r["img_per_s"] > 0 and r["peak_gib"] is None for r in steps)
    goals = report["goals"]
    assert goals["batch"] == 4 and goals["best_fpdctl_variant"].startswith("fpdctl")
    assert goals["speedup"] > 0 and isinstance(goals["img_per_s_goal_met"], bool)
    assert report["distill"]["exit_code"] == 0 and report["distill"]["img_per_s"] > 0
    assert report["torchrun"]["ok"] and report["torchrun"]["process_group"] == "gloo"
    assert report["resume"]["exit_codes"] == [0, 0, 0] and report["resume"]["bit_identical"]
    assert [(r["mode"], r["batch"]) for r in report["latency"]] == [("fp32", 1), ("fp32", 4)]
    table = (out / "gpu_check.txt").read_text()
    assert "goal: fpdctl's step at batch 4 >= 1000 img/s:" in table
    assert "goal: >= 4x the reference-style step:" in table
    assert "(c) torchrun, one process: OK: process group gloo, world size 1" in table
    assert "(e) --deterministic, 3 steps + --resume to 6 vs 6 steps: bit for bit" in table
    assert table in done.stdout
