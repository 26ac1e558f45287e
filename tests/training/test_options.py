"""Issue #23: each train/distill option is declared once, and what the help says is what a run does.

- Every "(default: X)" in ``fpdctl train --help`` and ``fpdctl distill --help`` equals the value
  config.json records for a run that leaves the option out (the config built as a run builds it).
- The option types the config file is checked against come from TrainConfig's annotations.
- The kd losses are a table: the CLI's choices and help, the config check and the loss read it.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import click
import pytest
import torch
import typer.main

from fpdctl.cli.app import app
from fpdctl.errors import UsageError
from fpdctl.training.config import TrainConfig, coerce_options, default_workers
from fpdctl.training.loss import KD_LOSS_TABLE, KD_LOSSES, fpd_loss, joints_kl, joints_mse
from fpdctl.training.sources import resolve_config

# Defaults the help states in words: the value each stands for, per command and option.
WORDED: dict[str, Any] = {
    "the free cores, shared among this node's processes, less one, at most 16": default_workers(),
    "once per epoch": None,
    "at each validation, else once per epoch": None,
}
DEFAULT = re.compile(r"\(default: ([^()]*)\)\.?$")


def _command(name: str) -> click.Command:
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _shown_defaults(name: str) -> dict[str, str]:
    """option dest -> the X of its help's "(default: X)"."""
    shown = {}
    for param in _command(name).params:
        match = DEFAULT.search(" ".join((param.help or "").split()))
        if match:
            shown[param.name] = match.group(1)
    return shown


def _as_value(text: str) -> Any:
    if text in WORDED:
        return WORDED[text]
    if text in ("on", "off"):
        return text == "on"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


# The dest of a flag whose field has another name.
FIELD = {"student": "model", "student_init": "init"}


@pytest.mark.parametrize("command", ["train", "distill"])
def test_every_default_in_the_help_is_what_the_run_records(command: str, tmp_path: Path) -> None:
    shown = _shown_defaults(command)
    # The teacher: a file that records no input size, so distill's default is the fallback.
    given = {"teacher": str(tmp_path / "t.pth")} if command == "distill" else {}
    recorded = resolve_config(command, {**given, "out": str(tmp_path / "run")}).to_dict()  # config.json's "options"
    assert len(shown) >= 20, shown
    for dest, text in shown.items():
        field = FIELD.get(dest, dest)
        if command == "distill" and field == "input_size":
            assert text.endswith("else 256"), text  # the teacher's size when it records one
            assert recorded[field] == 256
            continue
        assert recorded[field] == _as_value(text), f"--{dest}: help says {text!r}, the run records {recorded[field]!r}"
    # Every option with a default in TrainConfig says it (or is a path or switch without one).
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    silent = {
        "max_steps",
        "val_limit",
        "preset",
        "init",
        "teacher",
        "unlabeled",
        "out",
        "resume",
        "config",
        "overwrite",
        "student_init",
        "teacher_input_convention",
        "teacher_input_order",
        "teacher_input_mean",
        "teacher_input_std",
    }
    for param in _command(command).params:
        field = FIELD.get(param.name, param.name)
        if param.name not in silent and field in fields:
            assert param.name in shown, f"--{param.name} shows no default"


def test_help_defaults_follow_trainconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    """The help reads the defaults from TrainConfig: it is not a second copy."""
    import fpdctl.cli.train as cli_train

    assert cli_train._default("lr") == f"{TrainConfig.lr:g}"
    assert cli_train._default("channels_last") == "on" and cli_train._default("compile") == "off"
    epochs = _shown_defaults("train")["epochs"]
    assert int(epochs) == TrainConfig.epochs


def test_train_and_distill_share_one_declaration_of_each_common_option() -> None:
    import fpdctl.cli.train as cli_train

    train, distill = _command("train"), _command("distill")
    by_name = {p.name: p for p in distill.params}
    common = [p for p in train.params if p.name in by_name]
    assert len(common) >= 28
    for param in common:
        other = by_name[param.name]
        assert (param.opts, param.secondary_opts) == (other.opts, other.secondary_opts)
        if param.name != "input_size":  # distill's default follows the teacher
            assert param.help == other.help, param.name
    assert {o.name for o in cli_train.COMMON_OPTIONS} <= {p.name for p in train.params}


def test_config_types_come_from_trainconfig_annotations() -> None:
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name == "command":
            continue
        kind = hints[field.name]
        optional = type(None) in typing.get_args(kind)
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        sample = {int: "7", float: "0.5", bool: "yes", str: 3}[base]
        value = coerce_options({field.name: sample}, source="t")[field.name]
        assert type(value) is base, field.name
        if optional:
            assert coerce_options({field.name: None}, source="t")[field.name] is None
        else:
            with pytest.raises(UsageError, match="must be set"):
                coerce_options({field.name: None}, source="t")
    with pytest.raises(UsageError, match=r"^`epochs` must be an integer, got 'ten' \(in c.yaml\)$"):
        coerce_options({"epochs": "ten"}, source="c.yaml")


def test_kd_losses_are_one_table() -> None:
    assert KD_LOSSES == tuple(KD_LOSS_TABLE) == ("mse", "kl")
    help_text = " ".join((next(p for p in _command("distill").params if p.name == "kd_loss").help or "").split())
    for entry in KD_LOSS_TABLE.values():
        assert f"{entry.name} ({entry.summary})" in help_text
    gen = torch.Generator().manual_seed(0)
    student = torch.rand(2, 2, 3, 8, 8, generator=gen)
    target, teacher = torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen)
    weight = torch.ones(2, 3)
    # Each entry's term is the plain function it names.
    mse = fpd_loss(student, target, weight, teacher, alpha=1.0, kd_loss="mse").kd
    kl = fpd_loss(student, target, weight, teacher, alpha=1.0, kd_loss="kl", temperature=0.5).kd
    assert torch.equal(mse, joints_mse(student, teacher, weight))
    assert torch.equal(kl, joints_kl(student, teacher, weight, temperature=0.5))
    with pytest.raises(UsageError, match="^kd loss must be one of mse, kl, got 'l1'$"):
        resolve_config("distill", {"teacher": "t.pth", "kd_loss": "l1", "out": "r"})


def test_alpha_is_checked_when_the_config_is_built_not_per_step() -> None:
    from fpdctl.training.loss import KdSettings

    with pytest.raises(UsageError, match=r"^alpha must be in \[0, 1\], got 1.5$"):
        resolve_config("distill", {"teacher": "t.pth", "alpha": 1.5, "out": "r"})
    with pytest.raises(UsageError, match=r"^alpha must be in \[0, 1\], got nan$"):
        KdSettings(alpha=float("nan"))
    kd = resolve_config("distill", {"teacher": "t.pth", "alpha": 0.8, "alpha_schedule": "linear", "out": "r"}).kd
    assert [kd.alpha_at(step, 10) for step in (0, 5, 10)] == pytest.approx([0.8, 0.4, 0.0])


def test_run_training_builds_the_config_from_keyword_options(tmp_path: Path) -> None:
    """The core entry point the CLI and the Python API share: keyword options in, a run out."""
    import json

    from fpdctl.training.api import build_config, run_training

    options = dict(
        model="hg1x16",
        data="synthetic:length=8",
        input_size=64,
        batch_size=4,
        workers=0,
        val_limit=4,
        precision="fp32",
        device="cpu",
        max_steps=1,
        eval_every=0,
    )
    result = run_training("train", out=tmp_path / "run", **options)
    assert (result.status, result.steps) == ("completed", 1)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["options"]
    assert {k: recorded[k] for k in options} == options
    with pytest.raises(UsageError, match="^`alpha` is a distill option; use `fpdctl distill`$"):
        build_config("train", {"alpha": 0.9}, out=tmp_path / "other")
    with pytest.raises(UsageError, match="^`resume` and `overwrite` cannot be used together$"):
        build_config("train", {}, resume=tmp_path / "run", overwrite=True)
    resumed = build_config("train", {"max_steps": 3}, resume=tmp_path / "run")
    assert (resumed.max_steps, resumed.model) == (3, "hg1x16")
