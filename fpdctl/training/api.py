"""The core entry point of ``fpdctl train`` and ``fpdctl distill``: options in, a run out.

:func:`prepare_trainer` builds the :class:`~fpdctl.training.config.TrainConfig` from keyword
options (the command line's, a config file, a preset; or a resumed run's own, with the changes a
resume allows) and a :class:`~fpdctl.training.trainer.Trainer` that has checked everything and
created nothing. :func:`run_training` does both and trains. The CLI and the Python API call these;
neither prints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from fpdctl.errors import UsageError
from fpdctl.progress import Progress
from fpdctl.training.config import TrainConfig
from fpdctl.training.events import TrainResult
from fpdctl.training.run_dir import load_run_config
from fpdctl.training.sources import check_resume_changes, resolve_config
from fpdctl.training.trainer import Trainer

PathLike = str | os.PathLike[str]


def build_config(
    command: str,
    options: Mapping[str, Any],
    *,
    out: PathLike | None = None,
    resume: PathLike | None = None,
    overwrite: bool = False,
    config_file: PathLike | None = None,
) -> TrainConfig:
    """The validated config of a new run in ``out``, or of the run in ``resume`` continued.

    Args:
        command: "train" or "distill".
        options: TrainConfig fields given explicitly (None values count as not given).
        out: the new run's directory.
        resume: a run directory to continue (its saved options, plus the changes a resume may make).
        overwrite: replace an existing run directory's files (not with ``resume``).
        config_file: a YAML or TOML file of options (not with ``resume``).

    Raises:
        UsageError: a bad option or combination, in one line.
    """
    given = {k: v for k, v in options.items() if v is not None}
    if resume is not None:
        if overwrite:
            raise UsageError("`resume` and `overwrite` cannot be used together", params=("resume", "overwrite"))
        if config_file is not None:
            raise UsageError(
                "`config` cannot be used with `resume` (the run keeps its options)", params=("config", "resume")
            )
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise UsageError(
                f"`out` {out} differs from `resume` {resume}; give only `resume`", params=("out", "resume")
            )
        saved = load_run_config(resume)
        if saved.command != command:
            raise UsageError(f"{resume} is a `fpdctl {saved.command}` run; resume it with that command")
        return check_resume_changes(saved, {**given, "out": str(resume)})
    if out is None:
        raise UsageError("`out` RUN_DIR is required (or `resume` RUN_DIR)", params=("out", "resume"))
    return resolve_config(command, {**given, "out": str(out)}, config_file=config_file)


def prepare_trainer(
    command: str,
    options: Mapping[str, Any],
    *,
    out: PathLike | None = None,
    resume: PathLike | None = None,
    overwrite: bool = False,
    config_file: PathLike | None = None,
    progress: Progress | None = None,
) -> Trainer:
    """A trainer for :func:`build_config`'s config: the teacher, the data and the run directory
    are checked, nothing is created yet; its ``warnings`` are the lines to show before
    :meth:`Trainer.run`.
    """
    config = build_config(command, options, out=out, resume=resume, overwrite=overwrite, config_file=config_file)
    return Trainer(config, progress=progress, resume=resume is not None, overwrite=overwrite)


def run_training(
    command: str,
    *,
    out: PathLike | None = None,
    resume: PathLike | None = None,
    overwrite: bool = False,
    config_file: PathLike | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> TrainResult:
    """Build the config from keyword options and train: ``run_training("distill",
    teacher="synthetic-hg2x64", model="hg1x16", max_steps=100, out="runs/fpd")``."""
    trainer = prepare_trainer(
        command, options, out=out, resume=resume, overwrite=overwrite, config_file=config_file, progress=progress
    )
    return trainer.run()


__all__ = ["build_config", "prepare_trainer", "run_training"]
