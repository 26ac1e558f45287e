"""``--tensorboard``: the run's scalars as TensorBoard event files, read back with TensorBoard's
own reader and compared with metrics.csv (skipped when tensorboard is not installed)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fpdctl.cli.app import main

pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'fpdctl[tensorboard]')")

RUN = [
    "--data",
    "synthetic:length=16",
    "--input-size",
    "64",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--val-limit",
    "8",
    "--precision",
    "fp32",
    "--device",
    "cpu",
    "--max-steps",
    "4",
    "--log-every",
    "2",
    "--eval-every",
    "2",
]


def _events(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reader = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


def test_distill_writes_losses_lr_speed_and_validation_as_scalars(tmp_path: Path, tiny_checkpoint: Path) -> None:
    run_dir = tmp_path / "run"
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_checkpoint),
            "--student",
            "hg1x16",
            *RUN,
            "--tensorboard",
            "--out",
            str(run_dir),
        ]
    )
    assert code == 0
    assert list(run_dir.glob("events.out.tfevents.*")), "no event file"
    events = _events(run_dir)
    assert set(events) == {"train/loss", "train/gt_loss", "train/kd_loss", "train/lr", "train/img_per_s", "val/PCKh"}
    with (run_dir / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [2, 4]
    for column in ("loss", "gt_loss", "kd_loss", "lr", "img_per_s"):
        logged = events[f"train/{column}"]
        assert [step for step, _ in logged] == [2, 4]
        # metrics.csv writes 6 significant digits, event files float32.
        assert [value for _, value in logged] == pytest.approx([float(r[column]) for r in rows], rel=1e-5)
    # Step 2's validation, then the final model's figure at step 4 (the csv's last row holds it).
    assert [step for step, _ in events["val/PCKh"]] == [2, 4]
    assert [v for _, v in events["val/PCKh"]] == pytest.approx([float(r["val_pckh"]) for r in rows], abs=1e-4)


def test_train_without_the_flag_writes_no_event_file(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--model", "hg1x16", *RUN, "--out", str(run_dir)]) == 0
    assert (run_dir / "metrics.csv").is_file() and (run_dir / "curves.png").is_file()
    assert not list(run_dir.glob("events.out.tfevents.*"))
    assert not (run_dir / "config.json").read_text().count('"tensorboard": true')


def test_a_resumed_run_keeps_every_logged_step(tmp_path: Path) -> None:
    """The checkpoint's own step survives --resume: TensorBoard holds each metrics.csv row once
    (before, the restart marker hid the scalars of the step the run had stopped at)."""
    run_dir = tmp_path / "run"
    assert main(["train", "--model", "hg1x16", *RUN, "--tensorboard", "--out", str(run_dir)]) == 0
    assert main(["train", "--resume", str(run_dir), "--max-steps", "6"]) == 0
    with (run_dir / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    events = _events(run_dir)
    assert [step for step, _ in events["train/loss"]] == [2, 4, 6]
    assert [v for _, v in events["train/loss"]] == pytest.approx([float(r["loss"]) for r in rows], rel=1e-5)
    assert [step for step, _ in events["val/PCKh"]] == [2, 4, 6]


def test_validation_scores_are_named_as_the_console_names_them() -> None:
    """COCO's OKS score is AP in TensorBoard too (the console's and eval's name), not val_oks."""
    from fpdctl.training.tensorboard import scalar_tag

    assert [scalar_tag(c) for c in ("val_oks", "val_pckh", "val_pck", "loss")] == [
        "val/AP",
        "val/PCKh",
        "val/PCK",
        "train/loss",
    ]
