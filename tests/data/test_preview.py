"""The dataset preview grid and ``fpdctl data preview``."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from fpdctl.cli.app import main
from fpdctl.data.preview import preview_grid
from fpdctl.data.synthetic import SyntheticPose
from fpdctl.errors import UsageError
from fpdctl.viz import CENTER_COLOR, LEFT_COLOR, RIGHT_COLOR

SIZE = 64


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_preview_grid_and_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    dataset = SyntheticPose("val", length=5, input_size=SIZE)
    grid, visible = preview_grid(dataset, 5, columns=3)
    assert grid.shape == (2 * SIZE, 3 * SIZE, 3)
    assert visible == sum(int(dataset.load_annotation(i).joints[:, 2].sum()) for i in range(5))
    assert not grid[SIZE:, 2 * SIZE :].any()  # the sixth tile is empty
    with pytest.raises(UsageError, match="the dataset has 5 samples, cannot show 0..5"):
        preview_grid(dataset, 6)

    png = tmp_path / "grid.png"
    code, stdout, err = run(capsys, "data", "preview", "--out", png, "--count", 4, "--input-size", SIZE)
    assert code == 0, err
    assert stdout.startswith(f"wrote {png}: 4 samples (2 per row, {SIZE} px); ")
    assert cv2.imread(str(png)).shape == (2 * SIZE, 2 * SIZE, 3)
    code, _, err = run(capsys, "data", "preview", "--out", tmp_path / "g.jpg")
    assert code == 2 and err.strip() == f"error: --out must be a .png file, got {tmp_path / 'g.jpg'}"


def test_preview_draws_with_the_one_drawer() -> None:
    """The skeleton's side colours are fpdctl.viz's, the ones ``fpdctl predict`` draws with."""
    grid, _ = preview_grid(SyntheticPose("val", length=4, input_size=SIZE), 4)
    colors = {tuple(int(v) for v in p) for p in grid.reshape(-1, 3)}
    assert {LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR} <= colors
