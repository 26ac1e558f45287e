"""The run directory of ``fpdctl train`` / ``fpdctl distill``: its files, ``config.json`` and
``metrics.csv``.

A run directory holds exactly :data:`RUN_FILES` (what ``--overwrite`` removes, and nothing
else): the options and resolved settings (``config.json``), one metrics row per logged step
(``metrics.csv``), the resume point (``state.pt``), the user's weights (``last.safetensors``,
``best.safetensors``), the curves, the final evaluation, and the images that could not be read
(``skipped_images.txt``, only when there were any). Only rank 0 writes it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fpdctl import __version__
from fpdctl.errors import CheckpointError, RuntimeFailure, UsageError
from fpdctl.models.checkpoint_files import TRAIN_INPUT_SIZE_KEY
from fpdctl.models.spec import HourglassSpec
from fpdctl.training.config import TrainConfig
from fpdctl.training.skipped import SKIPPED_FILE
from fpdctl.utils.io import atomic_write_text, check_folder_creatable, require_dir

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
BEST_FILE = "best.safetensors"
LAST_FILE = "last.safetensors"
STATE_FILE = "state.pt"
CURVES_FILE = "curves.png"
EVAL_FILE = "eval.json"
RUN_FILES: tuple[str, ...] = (
    CONFIG_FILE,
    METRICS_FILE,
    BEST_FILE,
    LAST_FILE,
    STATE_FILE,
    CURVES_FILE,
    EVAL_FILE,
    SKIPPED_FILE,
)
# The columns of metrics.csv before the validation column (``val_pckh`` or ``val_pck``).
TRAIN_COLUMNS: tuple[str, ...] = ("step", "epoch", "loss", "gt_loss", "kd_loss", "lr", "img_per_s")


# ---------------------------------------------------------------------------------- metrics log
class MetricsLog:
    """``metrics.csv``: one row per logged step, appended and flushed as the run goes.

    On resume the rows after the checkpoint's step are dropped (they belong to steps that will
    run again), and a half-written last line from a kill is discarded.

    Args:
        path: the CSV file.
        columns: its columns, in order.
    """

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns
        self.rows: list[dict[str, str]] = []

    def start(self, resume_step: int | None) -> None:
        """Keep the rows up to ``resume_step`` (none for a new run) and rewrite the file."""
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    try:
                        step = int(row.get("step") or "")
                    except ValueError:
                        continue
                    if step <= resume_step and all(row.get(c) is not None for c in self.columns):
                        kept.append({c: row.get(c) or "" for c in self.columns})
        self.rows = kept
        self.rewrite()

    def rewrite(self) -> None:
        """Write the rows held in memory (atomically), e.g. after filling in a figure."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buffer.getvalue())

    def append(self, row: dict[str, Any]) -> None:
        """Add one row (missing columns stay blank) and flush it to the file.

        Raises:
            RuntimeFailure: the file cannot be written (a full disk).
        """
        text = {c: format_value(row.get(c)) for c in self.columns}
        self.rows.append(text)
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as handle:
                csv.DictWriter(handle, fieldnames=list(self.columns), lineterminator="\n").writerow(text)
                handle.flush()
        except OSError as exc:  # a full disk: a half line is dropped again on resume
            raise RuntimeFailure(f"could not write {self.path}: {exc.strerror or exc}") from exc

    def set_last(self, step: int, column: str, value: Any) -> None:
        """Fill in ``column`` of the last row if it is the row of ``step``, and rewrite the file."""
        if self.rows and self.rows[-1]["step"] == str(step):
            self.rows[-1][column] = format_value(value)
            self.rewrite()


def format_value(value: Any) -> str:
    """A metrics.csv cell: blank for None, 6 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# ---------------------------------------------------------------------------------- the folder
def load_run_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The options of an existing run (its ``config.json``), for ``--resume``.

    A run killed before its first checkpoint has a ``config.json`` but no ``state.pt``: it
    resumes from step 0 (nothing was saved, so nothing is lost and the result is the same).

    Raises:
        InputError / CheckpointError: not a run directory, or weights without the ``state.pt``
            they need to resume from.
    """
    folder = require_dir(run_dir, "run directory")
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{folder} is not an fpdctl run directory (no {CONFIG_FILE})")
    if (folder / STATE_FILE).exists() and not (folder / STATE_FILE).is_file():
        raise CheckpointError(f"training state is not a file: {folder / STATE_FILE}")
    if not (folder / STATE_FILE).is_file() and (folder / LAST_FILE).is_file():
        raise CheckpointError(
            f"{folder} has {LAST_FILE} but no {STATE_FILE} to resume from; start a new run "
            f"(`overwrite`, or `init` {folder / LAST_FILE} with a new `out`)",
            params=("overwrite", "init", "out"),
        )
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        options = data["options"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read {config_path}: {exc}") from exc
    return TrainConfig.from_dict(options, source=str(config_path))


def check_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run directory unless told to.

    Raises:
        UsageError: the directory exists and is not empty, and neither --resume nor --overwrite
            was given; or --overwrite on a folder that is not a run directory.
        InputError: the directory cannot be created (a file in its path, a read-only parent).
    """
    if resume:
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"`out` {out} exists and is not a directory", params="out")
    check_folder_creatable(out)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(
                f"run directory {out} already exists; pass `resume` {out} to continue it or `overwrite` to start again",
                params=("resume", "overwrite"),
            )
        if not (out / CONFIG_FILE).is_file():
            raise UsageError(
                f"`overwrite`: {out} is not an fpdctl run directory (no {CONFIG_FILE}); "
                "refusing to delete anything in it",
                params="overwrite",
            )


def prepare_run_dir(out: Path, *, clear: bool) -> None:
    """Create the run directory; remove its run files first when ``clear`` (``--overwrite``),
    and always the temporaries a killed write left behind."""
    out.mkdir(parents=True, exist_ok=True)
    if clear:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    _clear_stale_temporaries(out)


def _clear_stale_temporaries(out: Path) -> None:
    """Remove the temporary files a killed atomic write can leave (``.state.pt.XXXX.tmp``).

    safetensors writes through a temporary of its own (``.tmpXXXXXX``, Rust's tempfile) before
    fpdctl's rename; a kill inside that write leaves one too.
    """
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    for tmp in out.glob(".tmp??????"):
        if tmp.name[4:].isalnum() and tmp.is_file():
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- config.json
def write_run_config(
    out: Path,
    config: TrainConfig,
    *,
    resolved: dict[str, Any],
    spec: HourglassSpec,
    teacher: dict[str, Any] | None,
    init: dict[str, Any] | None,
    resumed_at: int | None,
    warnings: list[str] | tuple[str, ...] = (),
) -> None:
    """Write ``config.json``: the options, what they resolved to, the models and the versions.

    Args:
        out: the run directory.
        config: the run's options.
        resolved: settings derived from the options and the machine (device, steps...).
        spec: the trained model's architecture.
        teacher, init: path, sha256 (and spec) of the teacher and of the initial weights.
        resumed_at: the step a resumed run continues from (appended to ``resumed_at_steps``),
            None for a new run.
        warnings: the warnings the run started with (settings that work but are probably not
            meant, such as a teacher run at another input size than it learned at).
    """
    path = out / CONFIG_FILE
    previous: dict[str, Any] = {}
    if resumed_at is not None and path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            previous = {}
    resumed = list(previous.get("resumed_at_steps", [])) + ([resumed_at] if resumed_at is not None else [])
    payload = {
        "fpdctl_version": __version__,
        "command": config.command,
        "options": config.to_dict(),
        "resolved": resolved,
        "spec": spec.to_dict(),
        "model_name": spec.name,
        "teacher": teacher,
        "init": init,
        "warnings": list(warnings),
        "versions": _versions(),
        "created": previous.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resumed_at_steps": resumed,
    }
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def _versions() -> dict[str, str]:
    return {
        "fpdctl": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


STEP_KEY = "fpdctl.train.step"


def weights_step(path: Path) -> int | None:
    """The training step ``last.safetensors`` (or ``best.safetensors``) was written at, from its
    header; None for a missing or unreadable file, or one without the entry."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            return int((handle.metadata() or {})[STEP_KEY])
    except Exception:  # missing, damaged or foreign: the caller rewrites the file
        return None


def weights_metadata(config: TrainConfig, step: int, value: float | None) -> dict[str, str]:
    """The metadata of ``last.safetensors`` / ``best.safetensors`` written at ``step``.

    Args:
        config: the run's options (command, seed, input size).
        step: optimizer steps done.
        value: the validation figure of these weights, if measured.
    """
    meta = {
        "fpdctl.train.command": config.command,
        STEP_KEY: str(step),
        "fpdctl.train.seed": str(config.seed),
        TRAIN_INPUT_SIZE_KEY: str(config.input_size),
    }
    if value is not None:
        meta["fpdctl.train.val_metric"] = f"{value:.4f}"
    return meta


__all__ = [
    "STEP_KEY",
    "weights_step",
    "BEST_FILE",
    "CONFIG_FILE",
    "CURVES_FILE",
    "EVAL_FILE",
    "LAST_FILE",
    "METRICS_FILE",
    "MetricsLog",
    "RUN_FILES",
    "STATE_FILE",
    "TRAIN_COLUMNS",
    "check_run_dir",
    "format_value",
    "load_run_config",
    "prepare_run_dir",
    "weights_metadata",
    "write_run_config",
]
