"""prune-sweep with block types (``--blocks standard,mobile``) and on COCO data (score column AP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fpdctl.cli.app import main
from fpdctl.errors import UsageError
from fpdctl.models.checkpoint import save_model
from fpdctl.models.factory import create_model
from fpdctl.models.spec import HourglassSpec
from fpdctl.sweep.grid import INITS, SweepItem, build_grid, parse_blocks
from fpdctl.sweep.results import CONFIGS_DIR, ConfigResult, TeacherResult, read_results, summarize

INPUT = 32  # depth-2 hourglasses
STANDARD_TEACHER = HourglassSpec(2, 16, depth=2)
COCO_TEACHER = HourglassSpec(2, 16, joints=17, depth=2)


def test_block_types_join_the_grid_and_other_types_start_from_scratch() -> None:
    grid = build_grid(STANDARD_TEACHER, [1], [8], [1], INITS, ["standard", "mobile"])
    assert [item.key for item in grid] == ["hg1x8d2m-scratch", "hg1x8d2-scratch", "hg1x8d2-teacher"]
    mobile = grid[0]
    assert mobile.block == "mobile" and mobile.spec == HourglassSpec(1, 8, depth=2, block="mobile")
    # --init teacher alone: the standard student is sliced, the mobile one still starts from scratch.
    only_sliced = build_grid(STANDARD_TEACHER, [1], [8], [1], ["teacher"], ["standard", "mobile"])
    assert [item.key for item in only_sliced] == ["hg1x8d2m-scratch", "hg1x8d2-teacher"]
    # A mobile teacher slices mobile students; its standard students start from scratch.
    mobile_teacher = STANDARD_TEACHER.replace(block="mobile")
    assert [item.key for item in build_grid(mobile_teacher, [1], [8], [1], INITS, ["standard", "mobile"])] == [
        "hg1x8d2m-scratch",
        "hg1x8d2-scratch",
        "hg1x8d2m-teacher",
    ]
    # No block types given: the teacher's own, as before block types existed.
    assert build_grid(STANDARD_TEACHER, [1], [8], [1], INITS) == [
        SweepItem(1, 8, 1, "scratch", 16, 2),
        SweepItem(1, 8, 1, "teacher", 16, 2),
    ]
    # A scratch student of another type is still no larger than the teacher.
    with pytest.raises(UsageError, match=r"^cannot slice hg2x16d2m into hg1x32d2m: the target has more channels"):
        build_grid(STANDARD_TEACHER, [1], [32], [1], ["scratch"], ["mobile"])


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1", ([1], None)),
        ("1,2", ([1, 2], None)),
        ("standard,mobile", ([1], ["standard", "mobile"])),
        ("2, Mobile", ([2], ["mobile"])),
        ("mobile,mobile,1", ([1], ["mobile"])),
    ],
)
def test_parse_blocks(text: str, parsed: tuple[list[int], list[str] | None]) -> None:
    assert parse_blocks(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiny", "`blocks` takes block counts (integers) and block types (standard, mobile), got 'tiny'"),
        ("0", "`blocks` values must be at least 1, got 0"),
        (",", "`blocks` must be a comma-separated list of block counts or block types (standard, mobile), got ','"),
    ],
)
def test_parse_blocks_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_blocks(text)
    assert str(info.value) == message


def test_sweep_help_says_other_block_types_train_from_scratch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune-sweep", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--blocks standard,mobile" in text
    assert "trained from scratch (init scratch)" in text


def test_result_files_written_before_named_scores_read_as_pckh(tmp_path: Path) -> None:
    legacy = {
        "key": "hg1x8-teacher",
        "model": "hg1x8",
        "stacks": 1,
        "channels": 8,
        "blocks": 1,
        "init": "teacher",
        "params": 10,
        "macs": 20,
        "latency_ms": None,
        "pckh_zero_shot": 12.5,
        "pckh": 40.0,
        "steps": 3,
        "train_seconds": 1.0,
        "checkpoint": "runs/x",
        "settings": {},
    }
    (tmp_path / CONFIGS_DIR).mkdir()
    (tmp_path / CONFIGS_DIR / "hg1x8-teacher.json").write_text(json.dumps(legacy))
    (row,) = read_results(tmp_path)
    assert (row.score_zero_shot, row.score, row.metric, row.block) == (12.5, 40.0, "PCKh", "standard")
    teacher = TeacherResult.from_dict(
        {"model": "hg2x16", "params": 1, "macs": 2, "latency_ms": None, "pckh": 55.0, "settings": {}}
    )
    assert (teacher.score, teacher.metric) == (55.0, "PCKh")
    assert ConfigResult.from_dict(row.to_dict()) == row


@pytest.fixture(scope="module")
def coco_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_model(create_model(COCO_TEACHER), tmp_path_factory.mktemp("coco_teacher") / "teacher.safetensors")


def test_a_coco_sweep_names_its_score_ap_and_fronts_standard_and_mobile_students(
    coco_teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    code = main(
        [
            "prune-sweep",
            "--teacher",
            str(coco_teacher),
            "--stacks",
            "1",
            "--channels",
            "8",
            "--blocks",
            "standard,mobile",
            "--init",
            "teacher",
            "--input-size",
            str(INPUT),
            "--data",
            "synthetic:layout=coco,length=4",
            "--val-limit",
            "4",
            "--batch-size",
            "2",
            "--max-steps",
            "1",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--no-latency",
            "--out",
            str(out),
            "--format",
            "markdown",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    header = next(line for line in captured.out.splitlines() if line.startswith("| config"))
    assert "| AP zero-shot | AP |" in header and "PCKh" not in captured.out
    rows = read_results(out)
    assert [(r.key, r.init, r.block, r.metric) for r in rows] == [
        ("hg1x8j17d2m-scratch", "scratch", "mobile", "AP"),
        ("hg1x8j17d2-teacher", "teacher", "standard", "AP"),
    ]
    assert all(0.0 <= r.score <= 100.0 for r in rows)
    summary = summarize(out)
    assert summary.metric == "AP" and summary.teacher is not None and summary.teacher.metric == "AP"
    # Both block types compete on the one front (the cheaper mobile student is always on it).
    assert rows[0].macs < rows[1].macs and "hg1x8j17d2m-scratch" in summary.pareto["macs"]
    data = json.loads((out / "summary.json").read_text())
    assert data["recommendation"]["metric"] == "AP"
    assert "teacher hg2x16j17d2: AP" in captured.err and "zero-shot AP" in captured.err


def test_a_teacher_of_other_joints_than_the_data_is_refused(
    coco_teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "prune-sweep",
            "--teacher",
            str(coco_teacher),
            "--stacks",
            "1",
            "--channels",
            "8",
            "--input-size",
            str(INPUT),
            "--data",
            "synthetic:length=4",
            "--max-steps",
            "1",
            "--device",
            "cpu",
            "--no-latency",
            "--out",
            str(tmp_path / "sweep"),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: the teacher hg2x16j17d2 predicts 17 joints but synthetic:length=4 has the 16 MPII joints; "
        "sweep a teacher trained on that data"
    )
    assert not (tmp_path / "sweep").exists()
