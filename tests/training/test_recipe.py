"""The official recipe as the default: batch, augmentation style, checks at construction, and
unreadable training images named in the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fpdctl.data.transforms import AugmentConfig
from fpdctl.errors import DataError, UsageError
from fpdctl.progress import Event
from fpdctl.training.config import TrainConfig
from fpdctl.training.events import TRAIN_SKIPPED, SkippedLog
from fpdctl.training.run_dir import load_run_config
from fpdctl.training.sources import check_resume_changes, resolve_config
from fpdctl.training.trainer import Trainer
from tests.data.formats import write_hrnet_mpii

TINY: dict[str, Any] = {
    "model": "hg1x16",
    "input_size": 64,
    "workers": 0,
    "val_limit": 8,
    "eval_batch_size": 8,
    "precision": "fp32",
    "log_every": 1,
    "data": "synthetic:length=16",
}


def test_defaults_are_the_official_recipe(tmp_path: Path) -> None:
    cfg = resolve_config("distill", {"teacher": "t.safetensors", "out": str(tmp_path / "run")})
    assert (cfg.batch_size, cfg.augment_style, cfg.lr, cfg.epochs, cfg.schedule, cfg.sigma) == (
        4,
        "official",
        2.5e-4,
        140,
        "step:90,120",
        2.0,
    )
    trainer = Trainer(resolve_config("train", {**TINY, "max_steps": 1, "out": str(tmp_path / "run")}))
    assert trainer.train_set.augment == AugmentConfig() == AugmentConfig.for_style("official")
    assert trainer.train_set.augment.color == 0.0


def test_augment_style_is_stored_and_kept_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = resolve_config(
        "train", {**TINY, "augment_style": "uniform", "max_steps": 1, "eval_every": 0, "out": str(out)}
    )
    Trainer(cfg).run()
    saved = load_run_config(out)
    assert json.loads((out / "config.json").read_text())["options"]["augment_style"] == "uniform"
    assert saved.augment_style == "uniform"
    trainer = Trainer(check_resume_changes(saved, {"max_steps": 2}), resume=True)
    assert trainer.train_set.augment == AugmentConfig(style="uniform", color=0.2)
    with pytest.raises(UsageError) as info:
        check_resume_changes(saved, {"augment_style": "official"})
    assert str(info.value) == (
        "`augment_style` cannot change when resuming (the run used 'uniform'); start a new run with `out` instead"
    )


def test_a_config_json_from_before_the_option_means_the_old_draws(tmp_path: Path) -> None:
    """A run started before --augment-style existed drew uniformly with colour jitter: resuming
    it keeps doing so."""
    options = TrainConfig(out=str(tmp_path)).to_dict()
    del options["augment_style"]
    assert TrainConfig.from_dict(options).augment_style == "uniform"
    assert TrainConfig.from_dict({**options, "augment_style": "official"}).augment_style == "official"


def test_bad_augment_style() -> None:
    with pytest.raises(UsageError) as info:
        resolve_config("train", {"augment_style": "gaussian", "out": "x"})
    assert str(info.value) == "augment style must be one of official, uniform, got 'gaussian'"


def test_batch_size_help_says_per_process() -> None:
    import typer.main

    from fpdctl.cli.app import app

    root = typer.main.get_command(app)
    for command in ("train", "distill"):
        (option,) = [p for p in root.commands[command].params if p.opts[0] == "--batch-size"]
        assert option.help == (
            "Images per step per process; the global batch is this x the number of processes "
            "(torchrun --nproc_per_node N); the default is the official recipe's batch on one GPU "
            "(default: 4)."
        )


# ----------------------------------------------------------------------------- a tiny MPII folder
def test_missing_ground_truth_fails_when_the_run_is_built(tmp_path: Path) -> None:
    data = write_hrnet_mpii(tmp_path / "mpii", ground_truth=False)
    out = tmp_path / "run"
    cfg = resolve_config("train", {**TINY, "data": f"mpii:{data}", "batch_size": 4, "max_steps": 100, "out": str(out)})
    with pytest.raises(DataError) as info:
        Trainer(cfg)  # not at the first validation, an epoch later
    assert str(info.value) == (
        "PCKh needs head boxes, which valid.json does not have: put the validation ground truth "
        f"(gt_valid.mat or mpii_val_gt_tompson.mat or detections_our_format.mat) in {data / 'annot'}"
    )
    assert not out.exists()


def test_unreadable_training_images_are_named(tmp_path: Path) -> None:
    """One corrupt training image: the run goes on (it is far below max_bad_fraction after the
    grace), names it once in skipped_images.txt, reports a train.skipped event and counts it."""
    data = write_hrnet_mpii(tmp_path / "mpii", corrupt="train3.jpg")
    out = tmp_path / "run"
    cfg = resolve_config(
        "train", {**TINY, "data": f"mpii:{data}", "batch_size": 4, "max_steps": 4, "eval_every": 0, "out": str(out)}
    )
    events: list[Event] = []
    result = Trainer(cfg, progress=events.append).run()
    assert result.status == "completed" and result.skipped_images == 1
    skipped = [e for e in events if e.kind == TRAIN_SKIPPED]
    message = f"cannot decode image: {data / 'images' / 'train3.jpg'}"
    assert len(skipped) == 1  # two epochs meet it; it is named once
    log = skipped[0].data
    assert isinstance(log, SkippedLog) and log.new == (message,) and log.total == 1
    assert log.step in (1, 2) and log.file == out / "skipped_images.txt"
    assert (out / "skipped_images.txt").read_text() == f"{log.step}\t{message}\n"
    assert result.files["skipped_images.txt"] == out / "skipped_images.txt"
