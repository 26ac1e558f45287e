"""Distillation variants in the trainer: KL term, decaying alpha, unlabeled images, teachers by
pretrained name; options kept in config.json and exact resume with all of them on."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from fpdctl.errors import UsageError
from fpdctl.models.checkpoint import read_checkpoint, save_model
from fpdctl.pretrained import PRETRAINED, PRETRAINED_DIR_ENV
from fpdctl.progress import Event
from fpdctl.training.events import TRAIN_STEP
from fpdctl.training.run_dir import load_run_config
from fpdctl.training.sources import check_resume_changes, resolve_config
from fpdctl.training.trainer import Trainer
from tests.conftest import make_net
from tests.models.test_pretrained_registry import NAME, write_entry

TINY: dict[str, Any] = {
    "model": "hg1x16",
    "input_size": 64,
    "batch_size": 4,
    "workers": 0,
    "val_limit": 4,
    "eval_batch_size": 8,
    "precision": "fp32",
    "log_every": 1,
    "data": "synthetic:length=16",
    "eval_every": 0,
    "save_every": 0,
}
VARIANTS: dict[str, Any] = {
    "kd_loss": "kl",
    "kd_temperature": 0.2,
    "alpha_schedule": "linear",
    "alpha": 0.8,
    "unlabeled": "synthetic:length=12",
    "unlabeled_ratio": 0.5,
}


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(make_net("hg2x16", seed=11), tmp_path_factory.mktemp("teacher") / "teacher.safetensors")


class _SignalAt:
    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, event: Event) -> None:
        if event.kind == TRAIN_STEP and event.data.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_variants_resume_exactly_and_use_the_schedule(tmp_path: Path, teacher_ckpt: Path) -> None:
    options = {**TINY, **VARIANTS, "teacher": str(teacher_ckpt), "max_steps": 10}
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    trainer = Trainer(resolve_config("distill", {**options, "out": str(full_dir)}))
    # 16 labelled persons, 2 per batch (+ 2 unlabeled): 8 steps per epoch, so 10 cross an epoch.
    assert trainer.steps_per_epoch == 8 and trainer.num_labelled == 16
    assert trainer.run().status == "completed"
    config = json.loads((full_dir / "config.json").read_text())
    assert {k: config["options"][k] for k in VARIANTS} == VARIANTS
    assert config["resolved"]["train_size"] == 16 and config["resolved"]["unlabeled_size"] == 12

    # Row k (1-based step) used alpha(k - 1) = 0.8 * (1 - (k - 1) / 10).
    for row in _rows(full_dir):
        alpha = 0.8 * (1 - (int(row["step"]) - 1) / 10)
        expected = alpha * float(row["kd_loss"]) + (1 - alpha) * float(row["gt_loss"])
        assert float(row["loss"]) == pytest.approx(expected, rel=1e-4)

    first = Trainer(resolve_config("distill", {**options, "out": str(cut_dir)}), progress=_SignalAt(3)).run()
    assert first.status == "interrupted" and first.steps == 3
    saved = load_run_config(cut_dir)
    assert {k: getattr(saved, k) for k in VARIANTS} == VARIANTS
    assert Trainer(saved, resume=True).run().steps == 10
    a, b = read_checkpoint(full_dir / "last.safetensors")[0], read_checkpoint(cut_dir / "last.safetensors")[0]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["loss"] for r in _rows(full_dir)] == [r["loss"] for r in _rows(cut_dir)]
    # A resumed run keeps them: changing one is refused.
    with pytest.raises(UsageError, match=r"`kd_loss` cannot change when resuming \(the run used 'kl'\)"):
        check_resume_changes(saved, {"kd_loss": "mse"})
    with pytest.raises(UsageError, match="`unlabeled_ratio` cannot change when resuming"):
        check_resume_changes(saved, {"unlabeled_ratio": 0.25})


def test_unlabeled_images_have_no_ground_truth_in_the_batch(tmp_path: Path, teacher_ckpt: Path) -> None:
    cfg = resolve_config(
        "distill", {**TINY, **VARIANTS, "teacher": str(teacher_ckpt), "max_steps": 1, "out": str(tmp_path / "run")}
    )
    trainer = Trainer(cfg)
    trainer.sampler.set_epoch(0)
    trainer.train_set.set_epoch(0, cfg.seed)
    loader = torch.utils.data.DataLoader(trainer.train_set, batch_size=4, sampler=trainer.sampler)
    batch = next(iter(loader))
    assert batch["labelled"].tolist() == [True, True, False, False]
    assert batch["target_weight"][2:].sum() == 0 and batch["target_weight"][:2].sum() > 0


def test_distill_only_options_and_ratio_without_images() -> None:
    for name, value in (
        ("kd_loss", "kl"),
        ("alpha_schedule", "linear"),
        ("unlabeled", "synthetic"),
        ("kd_temperature", 0.5),
    ):
        with pytest.raises(UsageError, match=f"^`{name}` is a distill option; use `fpdctl distill`$"):
            resolve_config("train", {name: value, "out": "run"})
    with pytest.raises(UsageError, match="^`unlabeled_ratio` needs `unlabeled` DIR or `unlabeled` synthetic$"):
        resolve_config("distill", {"teacher": "t.pth", "unlabeled_ratio": 0.5, "out": "run"})
    cfg = resolve_config("distill", {"teacher": "t.pth", "out": "run"})
    assert (cfg.kd_loss, cfg.kd_temperature, cfg.alpha_schedule, cfg.unlabeled) == ("mse", 1.0, "constant", None)


def test_teacher_and_init_by_pretrained_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setenv(PRETRAINED_DIR_ENV, str(folder))
    monkeypatch.setitem(PRETRAINED, NAME, "a tiny test model")
    monkeypatch.chdir(tmp_path)
    weights = write_entry(folder)
    cfg = resolve_config("distill", {**TINY, "teacher": NAME, "init": NAME, "max_steps": 1, "out": "run"})
    assert cfg.teacher == NAME and cfg.init == NAME  # names stay names (not made absolute paths)
    trainer = Trainer(cfg)
    assert trainer.teacher is not None and trainer.teacher.spec.name == "hg1x16"
    assert trainer.teacher_info is not None and trainer.teacher_info["path"] == NAME
    from fpdctl.models.checkpoint_files import file_sha256

    assert trainer.teacher_info["sha256"] == trainer.init_info["sha256"] == file_sha256(weights)


# ----------------------------------------------------------------------------- ground-truth teacher
def test_ground_truth_teacher_is_the_labels_in_the_teacher_term(tmp_path: Path) -> None:
    """``--teacher ground-truth``: no network; the distillation term compares with the labels."""
    from fpdctl.training.loss import KdSettings, joints_kl
    from fpdctl.training.precision import resolve_precision
    from fpdctl.training.step import compute_losses

    cfg = resolve_config(
        "distill",
        {
            **TINY,
            "teacher": "ground-truth",
            "kd_loss": "kl",
            "kd_temperature": 0.5,
            "max_steps": 2,
            "out": str(tmp_path / "gt"),
        },
    )
    assert cfg.teacher == "ground-truth"  # a name, not made into a path
    trainer = Trainer(cfg)
    assert trainer.teacher is None and trainer.labels_as_teacher and trainer.teacher_name == "ground-truth"
    result = trainer.run()
    assert result.steps == 2
    assert load_run_config(tmp_path / "gt").teacher == "ground-truth"
    assert json.loads((tmp_path / "gt" / "config.json").read_text())["teacher"] == {"name": "ground-truth"}
    rows = _rows(tmp_path / "gt")
    assert rows and all(float(row["kd_loss"]) > 0 for row in rows)

    # The step's loss is alpha * KL(labels) + (1 - alpha) * MSE(labels), by an independent sum.
    gen = torch.Generator().manual_seed(3)
    model = make_net("hg1x16", seed=4).train()
    images = torch.rand(2, 3, 64, 64, generator=gen)
    target = torch.rand(2, 16, 16, 16, generator=gen)
    weight = torch.tensor([[1.0] * 15 + [0.0], [1.0] * 16])
    terms = compute_losses(
        model,
        None,
        images,
        target,
        weight,
        precision=resolve_precision("fp32", torch.device("cpu")),
        kd=KdSettings(alpha=0.25, kd_loss="kl", temperature=0.5),
        labels_as_teacher=True,
    )
    with torch.no_grad():
        outputs = model(images)
    expected_kd = joints_kl(outputs, target, weight, temperature=0.5).item()
    assert terms.kd is not None and terms.kd.item() == pytest.approx(expected_kd, rel=1e-5)
    assert terms.total.item() == pytest.approx(0.25 * expected_kd + 0.75 * terms.gt.item(), rel=1e-5)


def test_ground_truth_teacher_refuses_what_needs_a_network() -> None:
    with pytest.raises(UsageError, match="^`unlabeled` needs a teacher network; `teacher` ground-truth has no maps"):
        resolve_config("distill", {"teacher": "ground-truth", "unlabeled": "synthetic", "out": "run"})
    with pytest.raises(UsageError, match=r"^`teacher_input_convention` needs a teacher network"):
        resolve_config("distill", {"teacher": "ground-truth", "teacher_input_convention": "fpd-official", "out": "run"})
