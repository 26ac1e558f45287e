"""The trainer in-process: run directory, frozen teacher, exact resume, divergence stop."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from fpdctl.errors import TrainingDiverged
from fpdctl.models.checkpoint import read_checkpoint, save_model
from fpdctl.models.factory import create_model
from fpdctl.progress import Event
from fpdctl.training.events import TRAIN_CHECKPOINT, TRAIN_STEP, EvalLog, RunInfo, StepLog
from fpdctl.training.run_dir import load_run_config
from fpdctl.training.sources import resolve_config
from fpdctl.training.trainer import Trainer
from tests.conftest import make_net

TINY: dict[str, Any] = {
    "model": "hg1x16",
    "input_size": 64,
    "batch_size": 4,
    "workers": 0,
    "val_limit": 8,
    "eval_batch_size": 8,
    "precision": "fp32",
    "log_every": 1,
}


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher with more stacks than the hg1x16 student, so the run's records tell them apart."""
    return save_model(make_net("hg2x16", seed=11), tmp_path_factory.mktemp("teacher") / "teacher.safetensors")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[0]


def test_distill_run_directory_and_frozen_teacher(tmp_path: Path, teacher_ckpt: Path) -> None:
    out = tmp_path / "run"
    cfg = resolve_config(
        "distill", {**TINY, "teacher": str(teacher_ckpt), "max_steps": 4, "eval_every": 2, "out": str(out)}
    )
    events: list[Event] = []
    trainer = Trainer(cfg, progress=events.append)
    assert not out.exists()  # construction validates and creates nothing
    result = trainer.run()
    assert result.status == "completed" and result.steps == 4 and result.exit_code == 0

    # The events: start first, end last, every one counted in steps.
    assert events[0].kind == "train.start" and isinstance(events[0].data, RunInfo)
    assert events[0].data.teacher == "hg2x16" and events[0].data.total_steps == 4
    assert events[-1].kind == "train.end" and events[-1].data is result
    assert all(e.total == 4 for e in events)
    by_kind = {
        kind: [e.done for e in events if e.kind == kind] for kind in ("train.step", "train.eval", "train.checkpoint")
    }
    assert by_kind == {"train.step": [1, 2, 3, 4], "train.eval": [2, 4], "train.checkpoint": [2, 4]}
    assert all(isinstance(e.data, StepLog) and e.data.step == e.done for e in events if e.kind == "train.step")
    assert all(isinstance(e.data, EvalLog) for e in events if e.kind == "train.eval")
    assert [e.data for e in events if e.kind == "train.checkpoint"] == [out / "last.safetensors"] * 2

    # The teacher: frozen, in eval mode, its weights exactly those of the file.
    teacher = trainer.teacher
    assert teacher is not None and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    original = _weights(teacher_ckpt)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, original[key]), key

    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "metrics.csv",
        "best.safetensors",
        "last.safetensors",
        "state.pt",
        "curves.png",
        "eval.json",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]

    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["step", "epoch", "loss", "gt_loss", "kd_loss", "lr", "img_per_s", "val_pckh"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    for row in rows:  # total = alpha * kd + (1 - alpha) * gt, alpha 0.5
        expected = 0.5 * float(row["kd_loss"]) + 0.5 * float(row["gt_loss"])
        assert float(row["loss"]) == pytest.approx(expected, rel=1e-4)
    assert rows[1]["val_pckh"] != "" and rows[3]["val_pckh"] != "" and rows[0]["val_pckh"] == ""

    config = json.loads((out / "config.json").read_text())
    assert config["options"]["alpha"] == 0.5 and config["options"]["teacher"] == str(teacher_ckpt)
    assert config["spec"] == {"stacks": 1, "channels": 16, "blocks": 1, "joints": 16, "depth": 4}
    assert config["teacher"]["spec"]["stacks"] == 2 and len(config["teacher"]["sha256"]) == 64
    assert config["resolved"]["precision"] == "fp32" and config["versions"]["torch"] == torch.__version__

    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["final"]["step"] == 4 and evaluation["metric"] == "pckh"
    assert evaluation["final"]["pckh"]["mean"] == pytest.approx(result.final_eval["pckh"]["mean"])
    assert float(rows[3]["val_pckh"]) == pytest.approx(evaluation["final"]["pckh"]["mean"], abs=1e-3)

    last = create_model(out / "last.safetensors")
    assert last.spec.name == "hg1x16"
    best = create_model(out / "best.safetensors")
    assert best.spec.name == "hg1x16"
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["step"] == 4
    for key, value in last.state_dict().items():
        assert torch.equal(value, state["model"][key])


class _SignalAt:
    """Sends this process a real SIGINT after a given step: the handler's path, not a shortcut."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, event: Event) -> None:
        if event.kind == TRAIN_STEP and event.data.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_sigint_saves_and_resume_matches_an_uninterrupted_run(tmp_path: Path, teacher_ckpt: Path) -> None:
    options = {**TINY, "teacher": str(teacher_ckpt), "max_steps": 7, "eval_every": 0, "save_every": 0}
    full = Trainer(resolve_config("distill", {**options, "out": str(tmp_path / "full")})).run()
    assert full.status == "completed"

    out = tmp_path / "cut"
    first = Trainer(resolve_config("distill", {**options, "out": str(out)}), progress=_SignalAt(3)).run()
    assert first.status == "interrupted" and first.steps == 3 and first.exit_code == 130
    assert torch.load(out / "state.pt", weights_only=True)["step"] == 3
    assert not (out / "eval.json").exists()

    second = Trainer(load_run_config(out), resume=True).run()
    assert second.status == "completed" and second.steps == 7
    a, b = _weights(tmp_path / "full" / "last.safetensors"), _weights(out / "last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # Same losses step by step, and the optimizer state too.
    assert (tmp_path / "full" / "metrics.csv").read_text().splitlines()[1:] != []
    full_rows = [r.split(",")[:6] for r in (tmp_path / "full" / "metrics.csv").read_text().splitlines()]
    cut_rows = [r.split(",")[:6] for r in (out / "metrics.csv").read_text().splitlines()]
    assert full_rows == cut_rows
    sa = torch.load(tmp_path / "full" / "state.pt", weights_only=True)["optimizer"]["state"]
    sb = torch.load(out / "state.pt", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)
    assert json.loads((out / "config.json").read_text())["resumed_at_steps"] == [3]


class _Poison:
    """Turns one weight of the live network into NaN after a checkpoint, as a divergence would."""

    def __init__(self, step: int) -> None:
        self.trainer: Trainer | None = None
        self.step = step

    def __call__(self, event: Event) -> None:
        if event.kind != TRAIN_CHECKPOINT or event.done != self.step:
            return
        if self.trainer is not None and self.trainer.student is not None:
            weight = next(self.trainer.student.parameters())
            with torch.no_grad():
                weight[(0,) * weight.dim()] = math.nan


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = resolve_config("train", {**TINY, "max_steps": 6, "save_every": 1, "eval_every": 0, "out": str(out)})
    poison = _Poison(2)
    trainer = Trainer(cfg, progress=poison)
    poison.trainer = trainer
    message = (
        r"^training diverged: the loss is nan at step 3; the last good checkpoint "
        r"\(.*last\.safetensors, step 2\) is kept; try a lower `lr`$"
    )
    with pytest.raises(TrainingDiverged, match=message):
        trainer.run()
    saved = torch.load(out / "state.pt", weights_only=True)
    assert saved["step"] == 2
    weights = _weights(out / "last.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert not (out / "eval.json").exists()


def test_precision_resolution_on_cpu() -> None:
    from fpdctl.errors import UsageError
    from fpdctl.training.precision import cpu_supports_bf16, resolve_precision

    cpu = torch.device("cpu")
    auto = resolve_precision("auto", cpu)
    assert auto.name == ("bf16" if cpu_supports_bf16() else "fp32")
    assert resolve_precision("fp16", cpu).scaler and resolve_precision("fp16", cpu).dtype == torch.float16
    assert resolve_precision("bf16", cpu).dtype == torch.bfloat16 and not resolve_precision("bf16", cpu).scaler
    assert resolve_precision("fp32", cpu).dtype is None
    with pytest.raises(UsageError, match="`precision` must be"):
        resolve_precision("int8", cpu)
