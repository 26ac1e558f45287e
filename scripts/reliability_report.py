"""Render the reliability suite's JSON record as the table in docs/RELIABILITY.md.

    make reliability            # runs tests/reliability, then this script
    python scripts/reliability_report.py RECORD.json docs/RELIABILITY.md

The table sits between the ``<!-- reliability-table:begin -->`` and ``<!-- reliability-table:end
-->`` markers of the document; the prose around it is left as written. Rows are grouped by area
in the order the areas first appear, and the header line gives the totals and the date of the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

BEGIN = "<!-- reliability-table:begin -->"
END = "<!-- reliability-table:end -->"
MARK = {"passed": "pass", "failed": "**FAIL**", "skipped": "skipped", "not run": "not run"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: list[dict]) -> str:
    """The markdown block (markers included) for ``rows`` from ``--reliability-report``."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    total = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    lines = [
        BEGIN,
        f"{len(rows)} cases ({total}); run {dt.date.today().isoformat()} on {platform.machine()} "
        f"{platform.system()}, Python {platform.python_version()}.",
        "",
    ]
    areas: list[str] = []
    for row in rows:
        if row["area"] not in areas:
            areas.append(row["area"])
    lines += ["| area | cases | pass | fail | skipped |", "|---|---:|---:|---:|---:|"]
    for area in areas:
        mine = [r["outcome"] for r in rows if r["area"] == area]
        lines.append(
            f"| {area or 'other'} | {len(mine)} | {mine.count('passed')} | "
            f"{mine.count('failed')} | {mine.count('skipped')} |"
        )
    lines.append("")
    for area in areas:
        lines += [
            f"### {area or 'other'}",
            "",
            "| What was tried | Expected | What fpdctl did | Result |",
            "|---|---|---|---|",
        ]
        for row in (r for r in rows if r["area"] == area):
            observed = "; ".join(row["observed"]) or "-"
            lines.append(
                f"| {_cell(row['tried'])} | {_cell(row['expected'])} | {_cell(observed)} "
                f"| {MARK.get(row['outcome'], row['outcome'])} |"
            )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help="JSON written by pytest --reliability-report")
    parser.add_argument("document", type=Path, help="markdown file holding the table markers")
    args = parser.parse_args()
    rows = json.loads(args.record.read_text())
    text = args.document.read_text()
    if BEGIN not in text or END not in text:
        print(f"error: {args.document} lacks the markers {BEGIN} ... {END}", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    fd, tmp = tempfile.mkstemp(dir=args.document.parent, prefix=f".{args.document.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(head + render(rows) + tail)
    os.replace(tmp, args.document)
    failed = sum(r["outcome"] == "failed" for r in rows)
    print(f"{args.document}: {len(rows)} cases, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
