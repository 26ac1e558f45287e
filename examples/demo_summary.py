"""The demo's closing table: teacher, student alone, FPD student and its int8 file on params, MACs,
PCKh, latency and speed-up.

    python examples/demo_summary.py REPORT_DIR

Reads what the demo wrote (checkpoints, eval_*.json, bench.json), prints one table and writes
REPORT_DIR/summary.json and summary.md. Every PCKh is ``fpdctl eval``'s on the row's file (the int8
row included), one protocol for all four.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fpdctl.cli.render import Column, render_rows
from fpdctl.models.checkpoint import describe_checkpoint
from fpdctl.models.checkpoint_files import checkpoint_file
from fpdctl.profiling.analytic import analytic_cost
from fpdctl.utils.io import atomic_write_text


def _pckh(path: Path) -> float:
    return float(json.loads(path.read_text())["pckh"]["mean"])


def main(report: Path) -> None:
    bench = json.loads((report / "bench.json").read_text())
    latency = {Path(row["model"]).stem: row["p50_ms"] for row in bench if row["batch"] == 1}
    size = int(json.loads((report / "eval_teacher.json").read_text()).get("input_size") or 128)
    teacher_spec = describe_checkpoint(checkpoint_file("synthetic-hg2x64"))["spec"]
    student_spec = describe_checkpoint(report / "student_fpd" / "last.safetensors")["spec"]
    plan = (
        ("teacher (shipped)", teacher_spec, _pckh(report / "eval_teacher.json"), "teacher_fp32", "fp32"),
        ("student alone", student_spec, _pckh(report / "eval_student_alone.json"), "student_fp32", "fp32"),
        ("FPD student", student_spec, _pckh(report / "eval_student_fpd.json"), "student_fp32", "fp32"),
        ("FPD student int8", student_spec, _pckh(report / "eval_student_int8.json"), "student_int8", "int8"),
    )
    rows = []
    for role, spec, pckh, onnx, precision in plan:
        cost = analytic_cost(spec, size)
        rows.append(
            {
                "role": role,
                "model": spec.name,
                "params": cost.params,
                "macs": cost.macs,
                "pckh": pckh,
                "latency_ms": latency.get(onnx),
                "runtime": f"ONNX Runtime {precision}",
            }
        )
    teacher_ms = rows[0]["latency_ms"]
    for row in rows:
        row["speedup"] = teacher_ms / row["latency_ms"] if teacher_ms and row["latency_ms"] else None
        row["params_reduction"] = rows[0]["params"] / row["params"]
    columns = [
        Column("role", "", justify="left"),
        Column("model", "model", justify="left"),
        Column("params", "params", lambda v: f"{v / 1e6:.3f}M"),
        Column("macs", f"GMACs @{size}", lambda v: f"{v / 1e9:.3f}"),
        Column("pckh", "PCKh@0.5", lambda v: f"{v:.2f}"),
        Column("runtime", "runtime", justify="left"),
        Column("latency_ms", "p50 ms (b1)", lambda v: f"{v:.2f}"),
        Column("speedup", "speed-up", lambda v: f"{v:.1f}x"),
    ]
    gain = rows[2]["pckh"] - rows[1]["pckh"]
    caption = (
        "PCKh: fpdctl eval on each file, the whole synthetic validation split (500 persons), flip test; "
        "the two students: same "
        f"architecture, steps, seed and init, only the loss differs (FPD - alone = {gain:+.2f}). "
        "Latency: this CPU, batch 1, median."
    )
    print(render_rows(rows, columns, "table", title="fpdctl demo: teacher vs students", caption=caption))
    atomic_write_text(report / "summary.json", json.dumps(rows, indent=2) + "\n")
    atomic_write_text(report / "summary.md", render_rows(rows, columns, "markdown", caption=caption) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-output"))
