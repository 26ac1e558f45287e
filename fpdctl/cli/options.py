"""Options and parsing helpers shared by the subcommands (one clear UsageError per bad value)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from fpdctl.errors import UsageError
from fpdctl.models.spec import DEFAULT_INPUT_SIZE
from fpdctl.utils.device import DEFAULT_DEVICE, DEVICE_CHOICES_TEXT

if TYPE_CHECKING:
    from fpdctl.models.convention import ConventionOverride


def parse_int_list(text: str, option: str, minimum: int | None = None) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; a clear error for anything else."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise UsageError(f"{option} must be a comma-separated list of integers, got '{text}'")
    values = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise UsageError(f"{option} must be a comma-separated list of integers, got '{text}'") from None
        if minimum is not None and value < minimum:
            raise UsageError(f"{option} values must be at least {minimum}, got {value}")
        values.append(value)
    return values


# ----------------------------------------------------------------------------- input convention
# One option group, shared by every command that loads a model: eval, predict, export and bench
# take --input-*; distill, prune and prune-sweep take --teacher-input-* for their teacher (the
# student of distill trains in fpdctl's own convention). Typer builds a command's options from its
# signature, so each group is four module-level defaults, and conventions() turns their values
# into the one object the core takes.
# The input side of a command that runs a checkpoint, a name or an export: what it was trained at.
CHECKPOINT_SIZE_HELP = f"(default: the size an fpdctl checkpoint was trained at, else {DEFAULT_INPUT_SIZE})"

CONVENTION_PANEL = "Input convention (how pixels become the network input)"
_PRESET_HELP = (
    "Preset: native (RGB, ImageNet mean/std), pytorch-pose-mpii, pytorch-pose-lsp (RGB, the "
    "dataset mean, no std) or fpd-official (BGR, ImageNet stats). Default: what the {what} records "
    "or its format implies."
)
_ORDER_HELP = "Channel order the {what} expects: rgb or bgr (replaces the preset's)."
_MEAN_HELP = "Mean subtracted after scaling pixels to 0..1: 3 numbers from 0 to 1, in the {what}'s channel order."
_STD_HELP = "Std divided by after subtracting: 3 positive numbers (1,1,1: none), in the {what}'s channel order."


def _convention_options(prefix: str, what: str) -> tuple[Any, Any, Any, Any]:
    return (
        typer.Option(
            None, f"{prefix}-convention", help=_PRESET_HELP.format(what=what), rich_help_panel=CONVENTION_PANEL
        ),
        typer.Option(None, f"{prefix}-order", help=_ORDER_HELP.format(what=what), rich_help_panel=CONVENTION_PANEL),
        typer.Option(None, f"{prefix}-mean", help=_MEAN_HELP.format(what=what), rich_help_panel=CONVENTION_PANEL),
        typer.Option(None, f"{prefix}-std", help=_STD_HELP.format(what=what), rich_help_panel=CONVENTION_PANEL),
    )


INPUT_PREFIX = "input"  # the parameters input_convention... (flags --input-convention...)
TEACHER_INPUT_PREFIX = "teacher_input"
INPUT_CONVENTION, INPUT_ORDER, INPUT_MEAN, INPUT_STD = _convention_options("--input", "model")
TEACHER_INPUT_CONVENTION, TEACHER_INPUT_ORDER, TEACHER_INPUT_MEAN, TEACHER_INPUT_STD = _convention_options(
    "--teacher-input", "teacher"
)


def convention_override(
    preset: str | None,
    order: str | None,
    mean: str | None,
    std: str | None,
    prefix: str = INPUT_PREFIX,
) -> "ConventionOverride | None":
    """The override the flags ask for (None when none is given), checked before any loading.

    Raises:
        UsageError: one line naming the bad value (unknown preset or order, a wrong count, a mean
            outside [0, 1], a std of 0 or less).
    """
    from fpdctl.models.convention import ConventionOverride

    override = ConventionOverride(preset, order, mean, std, param_prefix=prefix)
    return override.check() if override.given else None


# The runtime `eval` and `predict` run a model in (bench has its own, wider --backend).
RUN_BACKEND: Any = typer.Option(
    "auto",
    "--backend",
    help="The backend to run MODEL on (see fpdctl bench --help): auto (a checkpoint in PyTorch, an "
    ".onnx file in ONNX Runtime), a runtime (onnxruntime, openvino) or a row such as ov-bf16.",
)


def device_option(purpose: str = "") -> Any:
    """The ``--device`` option, with the one default every command shares (:data:`DEFAULT_DEVICE`);
    ``purpose`` starts its help ("Where --recalibrate-bn runs: ")."""
    return typer.Option(
        DEFAULT_DEVICE,
        "--device",
        help=f"{purpose}{DEVICE_CHOICES_TEXT} (auto: CUDA, then Apple MPS, then the CPU).",
    )


DEVICE = device_option()


# ----------------------------------------------------------------------------- old spellings
# An option renamed so one concept has one spelling across commands keeps its documented old
# name working: a hidden option of its own (typer shows every name of an option in --help), read
# through renamed() so the command sees one value. Both helpers read which options the command
# line gave from the command's typer.Context (a ``ctx: typer.Context`` parameter).
def old_spelling(*param_decls: str, **checks: Any) -> Any:
    """A hidden option for an option's old name(s), e.g. ``old_spelling("--flip/--no-flip")``;
    ``checks`` are the new option's typer checks (``dir_okay=False``...)."""
    return typer.Option(None, *param_decls, hidden=True, show_default=False, **checks)


def _given(ctx: typer.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def renamed(ctx: typer.Context, value: Any, old_value: Any, *, param: str, flag: str, old_flag: str) -> Any:
    """The value of option ``param`` (spelled ``flag``), or of its old spelling when that is given.

    Raises:
        UsageError: both spellings are given.
    """
    if old_value is None:
        return value
    if _given(ctx, param):
        raise UsageError(f"{old_flag} is the old spelling of {flag}: give only {flag}")
    return old_value


# ----------------------------------------------------------------------------- no-effect notices
def given_flags(ctx: typer.Context, *params: str) -> list[str]:
    """The flags (first spelling) of those option parameters the command line gave, in order."""
    flags = {p.name: "/".join(p.opts[:1] + getattr(p, "secondary_opts", [])[:1]) for p in ctx.command.params}
    return [flags[p] for p in params if _given(ctx, p)]


def warn_no_effect(ctx: typer.Context, params: "tuple[str, ...] | list[str]", why: str) -> None:
    """One ``warning:`` line on stderr for each of ``params`` given on the command line, saying
    why it changes nothing (``why`` completes "--x has no effect ...")."""
    for flag in given_flags(ctx, *params):
        typer.echo(f"warning: {flag} has no effect {why}", err=True)
