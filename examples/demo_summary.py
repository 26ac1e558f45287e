"""The demo's closing table: the teacher, the student alone and with FPD after one schedule and
after two (the paper's protocol, with its control), and the two-schedule FPD student's int8 file,
on params, MACs, PCKh, latency and speed-up.

    python examples/demo_summary.py REPORT_DIR

Reads what the demo wrote (checkpoints, eval_*.json, bench.json), prints one table and writes
REPORT_DIR/summary.json and summary.md. Every PCKh is ``fpdctl eval``'s on the row's file (the int8
row included), one protocol for every row.
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
        ("teacher (shipped)", teacher_spec, "teacher", "teacher_fp32", "fp32"),
        ("student alone, 1 schedule", student_spec, "student_alone", "student_fp32", "fp32"),
        ("FPD student, 1 schedule", student_spec, "student_fpd_one_schedule", "student_fp32", "fp32"),
        ("student alone, 2 schedules", student_spec, "student_alone_two_schedules", "student_fp32", "fp32"),
        ("FPD student, 2 schedules", student_spec, "student_fpd", "student_fp32", "fp32"),
        ("FPD student, 2 schedules, int8", student_spec, "student_int8", "student_int8", "int8"),
    )
    rows = []
    for role, spec, name, onnx, precision in plan:
        cost = analytic_cost(spec, size)
        pckh = _pckh(report / f"eval_{name}.json")
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
    teacher, alone, fpd_one, alone_two, fpd_two = (row["pckh"] for row in rows[:5])
    caption = (
        "PCKh: fpdctl eval on each file, the whole synthetic validation split (500 persons), flip test. "
        "The students: same architecture, seed and init; in each pair only the loss differs. "
        f"One schedule, the protocol of the paper's FPD* row (MPII val 87.60, under 87.93 alone): "
        f"FPD - alone = {fpd_one - alone:+.2f}. Two schedules, the paper's FPD row (89.04, its 43 %): "
        f"(FPD - alone) / (teacher - alone) = {(fpd_two - alone) / (teacher - alone):.1%}, but the second "
        f"schedule alone gives {(alone_two - alone) / (teacher - alone):.1%}; the teacher's own share is "
        f"{(fpd_two - alone_two) / (teacher - alone_two):.1%} (FPD - alone = {fpd_two - alone_two:+.2f}). "
        "Latency: this CPU, batch 1, median."
    )
    print(render_rows(rows, columns, "table", title="fpdctl demo: teacher vs students", caption=caption))
    atomic_write_text(report / "summary.json", json.dumps(rows, indent=2) + "\n")
    atomic_write_text(report / "summary.md", render_rows(rows, columns, "markdown", caption=caption) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-output"))
