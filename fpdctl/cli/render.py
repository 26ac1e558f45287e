"""What the CLI shows: result rows as a Rich table, JSON, CSV or Markdown, and the core's progress
events (:mod:`fpdctl.progress`) on stderr. Only the CLI prints."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from fpdctl.progress import Event

FORMATS = ("table", "json", "csv", "markdown")


@dataclass(frozen=True)
class Column:
    """One output column: the row key, its header, and how to format it for humans."""

    key: str
    header: str
    fmt: Callable[[Any], str] = str
    justify: str = "right"


def decimals(digits: int, suffix: str = "", per: float = 1.0) -> Callable[[Any], str]:
    """A :class:`Column` formatter: ``value / per`` with ``digits`` decimals, then ``suffix``.

    ``decimals(2)`` shows 12.3456 as "12.35"; ``decimals(2, "x")`` as "12.35x";
    ``decimals(1, "M", per=1e6)`` shows 4_500_000 as "4.5M".
    """
    return lambda value: f"{value / per:.{digits}f}{suffix}"


def check_format(fmt: str) -> str:
    """The --format value, in its own spelling (any case is accepted, as for every choice option)."""
    from fpdctl.utils.choices import parse_choice

    return parse_choice(fmt, FORMATS, "--format")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def to_json(data: Any) -> str:
    return json.dumps(_json_safe(data), indent=2)


def render_rows(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    fmt: str,
    title: str | None = None,
    caption: str | None = None,
) -> str:
    """Rows (dicts) as text in ``fmt``. JSON and CSV keep every key, raw; table/markdown use ``columns``."""
    fmt = check_format(fmt)
    if fmt == "json":
        return to_json(list(rows))
    if fmt == "csv":
        buffer = io.StringIO()
        keys = list(rows[0].keys()) if rows else [c.key for c in columns]
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in keys})
        return buffer.getvalue().rstrip("\n")

    def cell(column: Column, row: dict[str, Any]) -> str:
        value = row.get(column.key)
        return "-" if value is None else column.fmt(value)

    if fmt == "markdown":
        lines = []
        if title:
            lines += [f"**{title}**", ""]
        lines.append("| " + " | ".join(c.header for c in columns) + " |")
        lines.append("|" + "|".join("---:" if c.justify == "right" else "---" for c in columns) + "|")
        for row in rows:
            lines.append("| " + " | ".join(cell(c, row) for c in columns) + " |")
        if caption:
            lines += ["", caption]
        return "\n".join(lines)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption, caption_justify="left")
    for column in columns:
        table.add_column(column.header, justify=column.justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(cell(c, row) for c in columns))
    console = Console(file=io.StringIO(), width=200, force_terminal=False, color_system=None)
    console.print(table)
    return console.file.getvalue().rstrip("\n")  # type: ignore[attr-defined]


def check_outputs(*paths: str | None) -> None:
    """Fail before the command's work when an output file cannot be written (creates nothing)."""
    from fpdctl.utils.io import check_output_file

    for path in paths:
        if path:
            check_output_file(path)


def emit(text: str, output: str | None = None) -> None:
    """Print ``text``, or write it atomically to ``output`` and say so on stderr."""
    import typer

    if output:
        from fpdctl.utils.io import atomic_write_text

        atomic_write_text(output, text + "\n")
        typer.echo(f"wrote {output}", err=True)
    else:
        typer.echo(text)


def stage_lines(event: "Event") -> None:
    """A :data:`~fpdctl.progress.Progress` that prints each event's message on stderr as
    ``message ...`` (export and bench announce their slow steps this way)."""
    import typer

    if event.message:
        typer.echo(f"{event.message} ...", err=True)


class ProgressBar:
    """A :data:`~fpdctl.progress.Progress` drawn as a Rich bar on stderr (``done`` of ``total``),
    from the first counted event on; where stderr is not a terminal, or ``enabled`` is False, it
    shows nothing.

    Use it as a context manager: the bar is removed when the block ends.
    """

    def __init__(self, description: str, enabled: bool = True) -> None:
        self._description = description
        self._enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, event: "Event") -> None:
        if not self._enabled or event.done is None:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self._description, total=None)
        self._bar.update(self._task, completed=event.done, total=event.total)
