"""The official FPD protocol, two schedules: the README's recipe runs as written (tiny model, a
few steps), and stage 2 starts from stage 1's weights only, with a fresh optimiser, schedule and
step count, its config.json naming the init file by sha256."""

from __future__ import annotations

import csv
import json
import math
import re
import shlex
from pathlib import Path

import pytest
import torch

from fpdctl.cli.app import main
from fpdctl.models.checkpoint import save_model
from fpdctl.models.checkpoint_files import file_sha256
from fpdctl.models.factory import create_model

README = Path(__file__).resolve().parents[2] / "README.md"
TINY = ["--input-size", "64", "--batch-size", "4", "--workers", "0", "--val-limit", "8", "--precision", "fp32"]
TINY += ["--log-every", "1", "--eval-every", "0", "--schedule", "cosine", "--lr", "0.001"]
STAGE1_STEPS, STAGE2_STEPS = 4, 3


def readme_recipe() -> list[list[str]]:
    """The commands of the README's two-stage recipe (the paragraph of the workflow block that
    starts with its comment)."""
    text = README.read_text()
    block = text[text.index("# The paper's own protocol") :]
    block = block[: block.index("\n\n")]
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line) for line in joined.splitlines() if line.startswith("fpdctl ")]


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's three commands with a tiny model, synthetic data and a few steps."""
    root = tmp_path_factory.mktemp("two-stage")
    teacher = root / "teacher.safetensors"
    torch.manual_seed(0)
    save_model(create_model("hg1x16"), teacher)
    commands = readme_recipe()
    assert [c[:2] for c in commands] == [["fpdctl", "train"], ["fpdctl", "distill"], ["fpdctl", "train"]]
    for argv in commands:
        argv = [
            str(root / a)
            if a.startswith("runs/stage")
            else str(teacher)
            if a == "runs/teacher/best.safetensors"
            else "hg1x16"
            if a == "hg4x128"
            else "synthetic:length=16"
            if a == "mpii:data/mpii"
            else a
            for a in argv[1:]
        ]
        stage1 = not any(a in ("--init", "--student-init") for a in argv)
        steps = STAGE1_STEPS if stage1 else STAGE2_STEPS
        assert main([*argv, *TINY, "--max-steps", str(steps)]) == 0, argv
    return root


def test_the_recipe_names_stage_one_in_both_arms() -> None:
    stage1, fpd, alone = readme_recipe()
    out = stage1[stage1.index("--out") + 1]
    assert fpd[fpd.index("--student-init") + 1] == f"{out}/last.safetensors"
    assert alone[alone.index("--init") + 1] == f"{out}/last.safetensors"
    assert fpd[fpd.index("--student") + 1] == alone[alone.index("--model") + 1] == stage1[stage1.index("--model") + 1]


def test_stage_two_records_the_init_file_by_sha256(recipe_runs: Path) -> None:
    init = recipe_runs / "runs/stage1/last.safetensors"
    for arm in ("runs/stage2-fpd", "runs/stage2-alone"):
        config = json.loads((recipe_runs / arm / "config.json").read_text())
        assert config["init"]["sha256"] == file_sha256(init)
        assert config["init"]["path"] == str(init)


def test_stage_two_starts_a_fresh_optimiser_schedule_and_step_count(recipe_runs: Path) -> None:
    stage1 = torch.load(recipe_runs / "runs/stage1/state.pt", weights_only=True)
    assert stage1["step"] == STAGE1_STEPS
    for arm in ("runs/stage2-fpd", "runs/stage2-alone"):
        state = torch.load(recipe_runs / arm / "state.pt", weights_only=True)
        assert state["step"] == STAGE2_STEPS  # not 4 + 3
        assert state["scheduler"]["last_epoch"] == STAGE2_STEPS
        adam = list(state["optimizer"]["state"].values())
        assert adam and all(float(s["step"]) == STAGE2_STEPS for s in adam)  # Adam's moments from 0
        rows = _rows(recipe_runs / arm)
        assert [int(r["step"]) for r in rows] == list(range(1, STAGE2_STEPS + 1))
        # A fresh cosine schedule over stage 2's own 3 steps: step s uses lr (1 + cos(pi (s-1) / 3)) / 2
        # (the full base rate at step 1, not where stage 1's schedule ended, at 0).
        expected = [0.001 * (1 + math.cos(math.pi * (s - 1) / STAGE2_STEPS)) / 2 for s in range(1, STAGE2_STEPS + 1)]
        assert [float(r["lr"]) for r in rows] == pytest.approx(expected, abs=1e-9)


def test_both_arms_start_from_stage_one_weights_on_the_same_batch(recipe_runs: Path) -> None:
    """Step 1's ground-truth loss is computed before any update: the same in both arms (same
    weights, seed, data order and augmentation; only the loss differs), and not the loss of a
    freshly initialised student (stage 1's own step 1)."""
    first_gt = {arm: float(_rows(recipe_runs / arm)[0]["gt_loss"]) for arm in ("runs/stage2-fpd", "runs/stage2-alone")}
    assert first_gt["runs/stage2-fpd"] == first_gt["runs/stage2-alone"]
    assert first_gt["runs/stage2-alone"] != float(_rows(recipe_runs / "runs/stage1")[0]["gt_loss"])
    fpd = _rows(recipe_runs / "runs/stage2-fpd")[0]
    assert fpd["kd_loss"] != ""  # the teacher's term is there in the FPD arm only
    assert _rows(recipe_runs / "runs/stage2-alone")[0]["kd_loss"] == ""


def test_the_ground_truth_teacher_is_the_same_control_as_train_init(recipe_runs: Path, tmp_path: Path) -> None:
    """The control could also be ``distill --teacher ground-truth`` (MSE, alpha 0.5): its loss is
    0.5 * MSE(student, labels) + 0.5 * MSE(student, labels), which is ``train``'s MSE(student,
    labels). Run from stage 1, the two give the same loss at every step and the same weights."""
    from safetensors.torch import load_file

    init = str(recipe_runs / "runs/stage1/last.safetensors")
    head = ["--seed", "0", "--data", "synthetic:length=16", *TINY, "--max-steps", str(STAGE2_STEPS)]
    gt = ["distill", "--teacher", "ground-truth", "--student", "hg1x16", "--student-init", init, "--alpha", "0.5"]
    assert main([*gt, *head, "--out", str(tmp_path / "gt")]) == 0
    assert main(["train", "--model", "hg1x16", "--init", init, *head, "--out", str(tmp_path / "alone")]) == 0
    gt_rows, alone_rows = _rows(tmp_path / "gt"), _rows(tmp_path / "alone")
    assert [float(r["kd_loss"]) for r in gt_rows] == pytest.approx([float(r["gt_loss"]) for r in gt_rows], rel=1e-6)
    assert [float(r["loss"]) for r in gt_rows] == pytest.approx([float(r["loss"]) for r in alone_rows], rel=1e-6)
    gt_weights = load_file(tmp_path / "gt" / "last.safetensors")
    alone_weights = load_file(tmp_path / "alone" / "last.safetensors")
    assert gt_weights.keys() == alone_weights.keys()
    for name, tensor in alone_weights.items():
        torch.testing.assert_close(gt_weights[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
