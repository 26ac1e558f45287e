"""``fpdctl models``: the model names fpdctl knows, pretrained weights first."""

from __future__ import annotations

from typing import Optional

import typer

from fpdctl.cli.render import Column, check_format, check_outputs, emit, render_rows, to_json

HELP = """The pretrained weights fpdctl ships, reached by name wherever a checkpoint goes
(fpdctl eval synthetic-hg2x64, fpdctl distill --teacher synthetic-hg2x64, export, bench,
predict), and the architecture names that give random weights (any hg{S}x{C}[b{B}] works).
"""


def models_command(
    fmt: str = typer.Option("table", "--format", help="table, json, csv or markdown."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the list here instead of stdout."),
) -> None:
    """List the pretrained model names and the architecture names."""
    from fpdctl.models.spec import list_models
    from fpdctl.pretrained import describe_pretrained

    fmt = check_format(fmt)
    check_outputs(output)
    rows = describe_pretrained()
    columns = [
        Column("name", "pretrained", justify="left"),
        Column("model", "architecture", justify="left"),
        Column("input_size", "input px"),
        Column("pckh", "PCKh (card)", lambda v: f"{v:.2f}"),
        Column("ap", "AP (card)", lambda v: f"{v:.2f}"),
        Column("installed", "installed", lambda v: "yes" if v else "no"),
        Column("description", "what", justify="left"),
    ]
    caption = f"architectures (random weights): {', '.join(list_models())}"
    if fmt == "json":
        emit(to_json({"pretrained": rows, "architectures": list_models()}), output)
        return
    emit(render_rows(rows, columns, fmt, title="pretrained models", caption=caption), output)


def register(app: typer.Typer) -> None:
    app.command("models", help=HELP)(models_command)
