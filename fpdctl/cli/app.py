"""The ``fpdctl`` Typer application and the ``main()`` entry point.

``main()`` runs Click in non-standalone mode so that every failure becomes exactly one
``error: ...`` line with exit code 2 (usage or input) or 1 (runtime), and a traceback only with
``FPDCTL_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

import typer
from typer.exceptions import Abort, Exit, TyperException

from fpdctl import __version__
from fpdctl.errors import FpdError
from fpdctl.utils.io import PATH_ERRNOS, short_path

# Each module defines ``register(app)``; the order is the order of ``fpdctl --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "profile",
    "models",
    "eval",
    "data",
    "train",
    "prune",
    "export",
    "bench",
    "predict",
)

app = typer.Typer(
    name="fpdctl",
    help=(
        "Fast Pose Distillation toolkit: profile, prune, train, distill, evaluate, export and "
        "benchmark Stacked Hourglass pose models."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"fpdctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Fast Pose Distillation toolkit."""


# A command's core parameters named otherwise than its own (``num_workers`` for ``--workers``):
# each module may declare ``CORE_PARAMS = {command: {core name: command parameter}}``.
CORE_PARAMS: dict[str, dict[str, str]] = {}
for _name in COMMAND_MODULES:
    _module = importlib.import_module(f"fpdctl.cli.{_name}")
    _module.register(app)
    CORE_PARAMS.update(getattr(_module, "CORE_PARAMS", {}))


# ----------------------------------------------------------------------------- errors in flags
def _command_path(args: list[str]) -> list[str]:
    """The (sub)command names ``args`` run, e.g. ``["data", "synth"]``; root options take no value."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    for arg in args:
        if not hasattr(command, "commands"):  # not a group
            break
        if arg.startswith("-"):
            continue
        sub = command.commands.get(arg)
        if sub is None:
            break
        path.append(arg)
        command = sub
    return path


def _own_flags(command: Any, path: list[str]) -> dict[str, str]:
    """Parameter name -> flag of one command, from its options and its :data:`CORE_PARAMS`."""
    flags: dict[str, str] = {}
    for param in command.params:
        if getattr(param, "param_type_name", "") == "option" and not getattr(param, "hidden", False) and param.name:
            long = [opt for opt in param.opts if opt.startswith("--")]
            flags[param.name] = (long or param.opts)[0]
    for core, own in CORE_PARAMS.get(" ".join(path), {}).items():
        if own in flags:
            flags[core] = flags[own]
    return flags


def _all_commands(command: Any, path: list[str]) -> "list[tuple[list[str], Any]]":
    subs = getattr(command, "commands", None)
    if subs is None:
        return [(path, command)]
    return [found for name, sub in subs.items() for found in _all_commands(sub, [*path, name])]


def flag_table(path: list[str]) -> dict[str, str]:
    """Parameter name -> flag for errors of the command ``path`` names: its own options (the one
    table of them) and :data:`CORE_PARAMS`, then any other command's for a parameter it lacks
    (``train`` refusing distill's ``alpha`` names ``--alpha``): ``{"max_frames": "--max-frames"}``."""
    root: Any = typer.main.get_command(app)
    command = root
    for name in path:
        command = command.commands[name]
    flags: dict[str, str] = {}
    for other_path, other in _all_commands(root, []):
        for name, flag in _own_flags(other, other_path).items():
            flags.setdefault(name, flag)
    flags.update(_own_flags(command, path))
    return flags


_QUOTED_PARAM = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def in_flags(message: str, flags: dict[str, str]) -> str:
    """``message`` with each parameter it quotes (```max_frames```) written as the command's flag
    (``--max-frames``); a parameter the command has no flag for keeps its quoted name."""
    return _QUOTED_PARAM.sub(lambda m: flags.get(m.group(1), m.group(0)), message)


def _error_line(exc: FpdError, args: list[str]) -> str:
    """The one line of a library error, in the flags of the command that ran."""
    line = _one_line(exc)
    if "`" not in line:
        return line
    try:
        flags = flag_table(_command_path(args))
    except Exception:  # the message is right in the core's words; never lose it to a lookup
        return line
    return in_flags(line, flags)


def _debug() -> bool:
    return os.environ.get("FPDCTL_DEBUG", "") not in ("", "0")


def _print_traceback_if_debugging() -> None:
    """With FPDCTL_DEBUG=1, the traceback of the exception being handled goes to stderr.

    The error line and the exit code stay the same, so scripts see the same result either way.
    """
    if _debug():
        import traceback

        traceback.print_exc()


def _one_line(exc: BaseException) -> str:
    """The user-facing line of an error, also when a DataLoader worker re-raised it.

    PyTorch re-raises a worker's exception with the worker's whole traceback as the message
    ("Caught DataError in DataLoader worker process 0. Original Traceback ..."); the original
    message is its last line, after the exception's class name.
    """
    text = str(exc).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.splitlines()[-1]
        name = type(exc).__name__
        marker = f"{name}: "
        text = last.split(marker, 1)[1] if marker in last else last
    return " ".join(text.split("\n")[0:1]) if text else type(exc).__name__


# PyTorch's OpenMP threads (libgomp) busy-wait at every barrier for up to 300,000 spins before
# they sleep. When other multi-threaded jobs share the cores, a spinning thread holds the core
# its partner thread needs to reach the same barrier, and every operator waits for the scheduler.
# A short spin keeps nearly all of the speed on idle cores and avoids that collapse (hg2x64
# training at 128 px on the 2-core VM, docs/BENCHMARKS.md "Training under CPU contention"):
#   idle:                        default 157 img/s, 1,000 spins 140, OMP_WAIT_POLICY=PASSIVE 101;
#   beside a PyTorch process:    default 7.0,       1,000 spins 15.7, PASSIVE 15.4.
# libgomp reads these once, when torch is first imported, so main() sets the spin count before
# any command imports torch; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
OPENMP_SPIN_COUNT: str = "1000"


def _bound_openmp_spinning() -> None:
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (0 ok, 1 runtime failure, 2 usage or input error)."""
    _bound_openmp_spinning()
    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args, prog_name="fpdctl", standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except Exit as exc:
        return exc.exit_code
    except (Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        return 130
    except FpdError as exc:
        _print_traceback_if_debugging()
        typer.echo(f"error: {_error_line(exc, args)}", err=True)
        return exc.exit_code
    except TyperException as exc:  # Click-style usage errors: unknown option, bad value...
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message())
            return 0
        _print_traceback_if_debugging()
        typer.echo(f"error: {exc.format_message()}", err=True)
        return 2 if getattr(exc, "exit_code", 2) == 2 else 1
    except OSError as exc:  # a path no command checked: too long, a link loop... is still input
        _print_traceback_if_debugging()
        if exc.errno not in PATH_ERRNOS:
            return _unexpected(exc)
        where = f": {short_path(exc.filename)}" if exc.filename is not None else ""
        typer.echo(f"error: {exc.strerror or os.strerror(exc.errno)}{where}", err=True)
        return 2
    except MemoryError:
        _print_traceback_if_debugging()
        typer.echo("error: out of memory", err=True)
        return 1
    except Exception as exc:  # a bug: one line unless debugging
        _print_traceback_if_debugging()
        return _unexpected(exc)


def _unexpected(exc: BaseException) -> int:
    """Report an exception no handler expected (a bug) in one line; exit code 1."""
    typer.echo(
        f"error: unexpected {type(exc).__name__}: {_one_line(exc)} (set FPDCTL_DEBUG=1 for the traceback)",
        err=True,
    )
    return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
