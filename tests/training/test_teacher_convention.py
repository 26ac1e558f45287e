"""Distillation from a teacher with its own input convention: inside a training step the teacher
sees its convention of the augmented crop the student sees in NATIVE, so its heatmaps are those
the inference pipeline gives for that crop; the run records both conventions; a teacher trained
at another heatmap sigma gets one warning line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fpdctl.cli.app import main
from fpdctl.models.checkpoint import read_checkpoint
from fpdctl.models.convention import METADATA_KEY, NATIVE, PYTORCH_POSE_MPII
from fpdctl.models.factory import create_model
from fpdctl.models.input_adapter import InputAdapter
from tests.conftest import INPUT_SIZE, make_net
from tests.models.test_checkpoint_convention import write_foreign

TOLERANCE = 1e-5
RUN = {
    "model": "hg1x16",
    "data": "synthetic:length=16",
    "input_size": INPUT_SIZE,
    "batch_size": 4,
    "workers": 0,
    "precision": "fp32",
    "device": "cpu",
    "max_steps": 1,
    "val_limit": 4,
    "eval_every": 0,
}
TINY = [
    "--student",
    "hg1x16",
    "--data",
    "synthetic:length=16",
    "--input-size",
    str(INPUT_SIZE),
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--precision",
    "fp32",
    "--device",
    "cpu",
    "--max-steps",
    "1",
    "--val-limit",
    "4",
    "--eval-every",
    "0",
]


@pytest.fixture(scope="module")
def pytorch_pose_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_foreign(make_net(seed=3), tmp_path_factory.mktemp("pp"), "pytorch-pose")


def test_teacher_heatmaps_in_a_distill_step_equal_its_heatmaps_in_the_pipeline(
    tmp_path: Path, pytorch_pose_teacher: Path
) -> None:
    from fpdctl.data.transforms import denormalize_image
    from fpdctl.pipeline import last_stack, normalise
    from fpdctl.training.sources import resolve_config
    from fpdctl.training.trainer import Trainer

    out = tmp_path / "run"
    trainer = Trainer(resolve_config("distill", {**RUN, "teacher": str(pytorch_pose_teacher), "out": str(out)}))
    assert isinstance(trainer.teacher, InputAdapter) and trainer.teacher.target is PYTORCH_POSE_MPII
    seen: dict[str, Any] = {}

    def student_input(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.setdefault("student", args[0].detach().float().cpu().clone())

    def teacher_output(module: torch.nn.Module, args: Any, output: torch.Tensor) -> None:
        seen.setdefault("teacher", output.detach().float().cpu().clone())

    # Hooks on the modules the step calls: the first call of each is the first training step.
    trainer.teacher.register_forward_hook(teacher_output)
    original_setup = trainer._setup

    def setup() -> Any:
        loop, restarted = original_setup()
        loop.student.register_forward_pre_hook(student_input)
        return loop, restarted

    trainer._setup = setup  # type: ignore[method-assign]
    assert trainer.run().status == "completed"

    images = seen["student"]  # NATIVE, augmented, as the student saw them
    assert images.shape == (4, 3, INPUT_SIZE, INPUT_SIZE)
    crops = np.stack([denormalize_image(image.numpy()) for image in images])  # uint8 BGR crops
    np.testing.assert_allclose(NATIVE.normalize_batch(crops, source_order="bgr"), images.numpy(), atol=TOLERANCE)
    teacher = create_model(pytorch_pose_teacher)  # the same checkpoint, as `fpdctl eval` loads it
    assert teacher.input_convention is PYTORCH_POSE_MPII
    with torch.no_grad():
        expected = last_stack(teacher(torch.from_numpy(normalise(crops, teacher.input_convention))))
        native = last_stack(teacher(images))
    got = last_stack(seen["teacher"])
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=TOLERANCE)
    assert (native - expected).abs().max() > 100 * TOLERANCE  # fed NATIVE it would differ

    config = json.loads((out / "config.json").read_text())
    assert config["teacher"]["input_convention"] == PYTORCH_POSE_MPII.to_dict()
    student = {**NATIVE.to_dict(), "train_sigma": 2.0}
    assert config["resolved"]["input_convention"] == student
    _, header = read_checkpoint(out / "last.safetensors")
    assert json.loads(header[METADATA_KEY]) == student


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_a_teacher_trained_at_another_sigma_gets_one_warning_line(
    tmp_path: Path, pytorch_pose_teacher: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["distill", "--teacher", str(pytorch_pose_teacher), *TINY, "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert _warnings(err) == [
        "warning: the teacher was trained with heatmap sigma 1 (pytorch-pose-mpii) and --sigma is 2: "
        "its heatmaps are narrower than the targets the student also learns"
    ]
    # At the teacher's own sigma: nothing to say.
    code = main(
        ["distill", "--teacher", str(pytorch_pose_teacher), *TINY, "--sigma", "1", "--out", str(tmp_path / "b")]
    )
    err = capsys.readouterr().err
    assert code == 0 and _warnings(err) == []


def test_teacher_override_flags_reach_the_run(
    tmp_path: Path, pytorch_pose_teacher: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "distill",
            "--teacher",
            str(pytorch_pose_teacher),
            *TINY,
            "--sigma",
            "1",
            "--teacher-input-mean",
            "0.4442,0.4302,0.4039",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["teacher_input_mean"] == "0.4442,0.4302,0.4039"
    recorded = config["teacher"]["input_convention"]
    assert recorded["name"] == "custom" and recorded["mean"] == [0.4442, 0.4302, 0.4039]
    assert recorded["std"] == [1.0, 1.0, 1.0] and recorded["train_sigma"] == 1.0
    # A resumed run keeps the teacher's convention: changing it is refused.
    code = main(["distill", "--resume", str(out), "--teacher-input-convention", "native"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --teacher-input-convention cannot change when resuming (the run used None); "
        "start a new run with --out instead"
    )


def test_init_from_a_foreign_checkpoint_trains_native_and_says_so(tmp_path: Path, pytorch_pose_teacher: Path) -> None:
    """``--init`` takes the weights; training feeds NATIVE, which the student then records."""
    from fpdctl.training.sources import resolve_config
    from fpdctl.training.trainer import Trainer

    out = tmp_path / "run"
    trainer = Trainer(resolve_config("train", {**RUN, "init": str(pytorch_pose_teacher), "out": str(out)}))
    assert trainer.warnings == [
        f"`init` was trained in the {PYTORCH_POSE_MPII.describe()} input convention; training feeds "
        f"{NATIVE.describe()}, so its weights start on inputs they have not seen"
    ]
    assert trainer.run().status == "completed"
    assert create_model(out / "last.safetensors").input_convention == NATIVE
    config = json.loads((out / "config.json").read_text())
    assert config["init"]["input_convention"] == PYTORCH_POSE_MPII.to_dict()
