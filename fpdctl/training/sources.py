"""Where a run's options come from, and how the layers merge into one :class:`TrainConfig`.

Lowest priority first: the dataclass defaults (the official FPD MPII recipe), a preset
(``--preset quick``), a config file (``--config FILE``, YAML or TOML), then the command-line
flags. :func:`resolve_config` merges the layers and validates the result, so every bad option is a
:class:`~fpdctl.errors.UsageError` before anything is created on disk.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from fpdctl.data.unlabeled import absolute_unlabeled
from fpdctl.errors import InputError, UsageError
from fpdctl.models.spec import DEFAULT_INPUT_SIZE
from fpdctl.pretrained import is_pretrained_name
from fpdctl.training.config import (
    COMMANDS,
    DEFAULT_MODEL,
    DISTILL_OPTIONS,
    PRESETS,
    RESUMABLE_CHANGES,
    TrainConfig,
    coerce_options,
    validate_config,
)
from fpdctl.training.loss import DEFAULT_KD_LOSS, GROUND_TRUTH_TEACHER, KD_LOSS_TABLE, KD_TERM_OPTIONS, kd_loss_entry
from fpdctl.utils.io import require_file


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file of options.

    The file is a flat mapping of option names (as on the command line, with dashes or
    underscores) to values; TOML may also put them under a ``[train]`` or ``[distill]`` table.

    Raises:
        InputError: missing or unparsable file, or not a mapping.
        UsageError: an unknown option (named) or a wrong value type.
    """
    file = require_file(path, "config file")
    text = file.read_text(encoding="utf-8")
    suffix = file.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml", ".json"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise InputError(f"config file must be .yaml, .yml or .toml, got {file.name}")
    except InputError:
        raise
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot parse config file {file}: {first}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"config file {file} must hold a mapping of option names to values")
    # One level of nesting ([train] / [distill] tables) is accepted and flattened.
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in COMMANDS and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return coerce_options(flat, source=str(file))


def resolve_config(
    command: str,
    cli: Mapping[str, Any],
    *,
    config_file: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """Merge defaults, preset, config file and flags into a validated :class:`TrainConfig`.

    Args:
        command: "train" or "distill".
        cli: the options given on the command line (only those explicitly given).
        config_file: optional YAML / TOML file of options.

    Raises:
        UsageError: unknown option, bad value or bad combination (nothing is created).
    """
    if command not in COMMANDS:
        raise UsageError(f"command must be train or distill, got {command!r}")
    cli_values = coerce_options({k: v for k, v in cli.items() if v is not None}, source="the command line")
    if "epochs" in cli_values and "max_steps" in cli_values:
        raise UsageError("give `epochs` or `max_steps`, not both", params=("epochs", "max_steps"))
    file_values = load_config_file(config_file) if config_file is not None else {}
    if "command" in file_values:
        raise UsageError(f"unknown option 'command' in {config_file}")
    preset_name = cli_values.get("preset", file_values.get("preset"))
    preset_values: dict[str, Any] = {}
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise UsageError(f"unknown preset '{preset_name}'; available: {', '.join(sorted(PRESETS))}")
        preset_values = dict(PRESETS[preset_name])

    layers = (
        (preset_values, f"preset {preset_name}"),
        (file_values, str(config_file)),
        (cli_values, None),
    )
    if command == "train":
        for values, source in layers:
            for name in DISTILL_OPTIONS:
                if values.get(name) is not None:
                    where = f" (in {source})" if source else ""
                    raise UsageError(f"`{name}` is a distill option{where}; use `fpdctl distill`", params=name)
    merged: dict[str, Any] = {"command": command, "model": DEFAULT_MODEL[command]}
    for values, _ in layers:
        # --epochs and --max-steps are one setting (the run's length): a higher layer that
        # gives either replaces both.
        if "epochs" in values or "max_steps" in values:
            merged.pop("epochs", None)
            merged["max_steps"] = None
        merged.update(values)
    if command == "distill" and "input_size" not in merged and merged.get("teacher"):
        # The size the teacher learned at (its header or model card), as eval and export do.
        from fpdctl.models.checkpoint_files import trained_input_size

        teacher = str(merged["teacher"])
        if teacher != GROUND_TRUTH_TEACHER:
            merged["input_size"] = trained_input_size(teacher) or DEFAULT_INPUT_SIZE
    if "unlabeled_ratio" in merged and not merged.get("unlabeled"):
        raise UsageError(
            "`unlabeled_ratio` needs `unlabeled` DIR or `unlabeled` synthetic", params=("unlabeled_ratio", "unlabeled")
        )
    # Absolute paths, so a run resumed from another working directory finds the same files
    # (a pretrained name, such as synthetic-hg2x64, stays a name).
    for name in ("teacher", "init", "out"):
        if (
            merged.get(name)
            and not is_pretrained_name(str(merged[name]))
            and not (name == "teacher" and merged[name] == GROUND_TRUTH_TEACHER)
        ):
            merged[name] = os.path.abspath(os.path.expanduser(str(merged[name])))
    if merged.get("unlabeled"):
        merged["unlabeled"] = absolute_unlabeled(str(merged["unlabeled"]))
    config = TrainConfig(**merged)
    validate_config(config)
    _refuse_unused_kd_options(merged, layers)
    return config


def _refuse_unused_kd_options(merged: Mapping[str, Any], layers: Any) -> None:
    """An option only some distillation terms read (``--kd-temperature``), given for a term that
    does not read it, has no effect: refuse it rather than ignore it.

    Raises:
        UsageError: naming the option, the term and the terms that read it.
    """
    entry = kd_loss_entry(str(merged.get("kd_loss", DEFAULT_KD_LOSS)))
    for name in sorted(KD_TERM_OPTIONS - entry.options):
        for values, source in layers:
            if values.get(name) is not None:
                where = f" (in {source})" if source else ""
                users = [e.name for e in KD_LOSS_TABLE.values() if name in e.options]
                raise UsageError(
                    f"`{name}`{where} has no effect with `kd_loss` {entry.name}; "
                    f"only `kd_loss` {' or '.join(users)} uses it",
                    params=(name, "kd_loss"),
                )


def check_resume_changes(saved: TrainConfig, cli: Mapping[str, Any]) -> TrainConfig:
    """The saved config with the flags a resumed run may change applied.

    Raises:
        UsageError: a flag that would change the arithmetic of the run (model, lr, data, seed...).
    """
    given = coerce_options({k: v for k, v in cli.items() if v is not None}, source="the command line")
    changes: dict[str, Any] = {}
    for name, value in given.items():
        old = getattr(saved, name)
        if value == old:
            continue
        if name not in RESUMABLE_CHANGES:
            raise UsageError(
                f"`{name}` cannot change when resuming (the run used {old!r}); start a new run with `out` instead",
                params=(name, "out"),
            )
        changes[name] = value
    if "epochs" in changes and "max_steps" not in given:
        changes["max_steps"] = None
    if "max_steps" in changes and changes["max_steps"] is None and "epochs" not in given:
        changes.pop("max_steps")
    config = saved.replace(**changes)
    validate_config(config)
    return config


__all__ = ["check_resume_changes", "load_config_file", "resolve_config"]
