"""The demo's closing table: teacher against student on params, MACs, PCKh, latency, speed-up.

    python examples/demo_summary.py REPORT_DIR

Reads what the demo wrote (checkpoints, eval_*.json, bench.json), prints one table and writes
REPORT_DIR/summary.json and summary.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fpdctl.cli.render import Column, render_rows
from fpdctl.models.checkpoint import describe_checkpoint
from fpdctl.profiling.analytic import analytic_cost
from fpdctl.utils.io import atomic_write_text


def main(report: Path) -> None:
    bench = json.loads((report / "bench.json").read_text())
    latency = {Path(row["model"]).stem: row["p50_ms"] for row in bench if row["batch"] == 1}
    input_size = json.loads((report / "student" / "config.json").read_text())
    size = int(input_size.get("input_size") or input_size.get("options", {}).get("input_size", 128))
    rows = []
    for role, onnx in (("teacher", "teacher_fp32"), ("student", "student_fp32"), ("student int8", "student_int8")):
        run = "teacher" if role == "teacher" else "student"
        spec = describe_checkpoint(report / run / "best.safetensors")["spec"]
        cost = analytic_cost(spec, size)
        if role == "student int8":
            pckh = json.loads((report / "export_int8.json").read_text())["accuracy"]["candidate_mean"]
        else:
            pckh = json.loads((report / f"eval_{run}.json").read_text())["pckh"]["mean"]
        rows.append({
            "role": role, "model": spec.name, "params": cost.params, "macs": cost.macs,
            "pckh": pckh,
            "latency_ms": latency.get(onnx), "runtime": "ONNX Runtime " + onnx.split("_")[1],
        })
    teacher_ms = rows[0]["latency_ms"]
    for row in rows:
        row["speedup"] = teacher_ms / row["latency_ms"] if teacher_ms and row["latency_ms"] else None
        row["params_reduction"] = rows[0]["params"] / row["params"]
    columns = [
        Column("role", "", justify="left"), Column("model", "model", justify="left"),
        Column("params", "params", lambda v: f"{v / 1e6:.3f}M"),
        Column("macs", f"GMACs @{size}", lambda v: f"{v / 1e9:.3f}"),
        Column("pckh", "PCKh@0.5", lambda v: f"{v:.2f}"),
        Column("runtime", "runtime", justify="left"),
        Column("latency_ms", "p50 ms (b1)", lambda v: f"{v:.2f}"),
        Column("speedup", "speed-up", lambda v: f"{v:.1f}x"),
    ]
    caption = "PCKh: synthetic validation split, flip test; latency: this CPU, batch 1, median."
    print(render_rows(rows, columns, "table", title="fpdctl demo: teacher vs student", caption=caption))
    atomic_write_text(report / "summary.json", json.dumps(rows, indent=2) + "\n")
    atomic_write_text(report / "summary.md", render_rows(rows, columns, "markdown", caption=caption) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-output"))
