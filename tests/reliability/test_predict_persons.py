"""Bad person boxes and bad detectors for ``fpdctl predict`` (issue 19): each is one ``error:``
line naming the file and the entry, exit 2, no traceback, and no output folder created."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpdctl.cli.app import main
from tests.deploy.test_detector import _anchors, _yolo_graph


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "crowd.png"), np.zeros((120, 160, 3), np.uint8))
    good = _anchors([(10.0, 10.0, 40.0, 80.0)], [(0.9, 0.1)], 160, 120, 64)
    _yolo_graph(tmp_path / "rect_input.onnx", good, 64, input_shape=[1, 3, 64, 96])
    _yolo_graph(tmp_path / "flat_output.onnx", good[0], 64)
    _yolo_graph(tmp_path / "seg.onnx", np.zeros((1, 116, 84), np.float32), 64, protos=(1, 32, 16, 16))
    broken = good.copy()
    broken[0, 2, 0] = np.nan
    _yolo_graph(tmp_path / "nan.onnx", broken, 64)
    _yolo_graph(tmp_path / "good.onnx", good, 64)
    return {"images": folder, "root": tmp_path}


def _boxes(root: Path, entries: list) -> Path:
    path = root / "boxes.json"
    path.write_text(json.dumps(entries))
    return path


GOOD = {"file_name": "crowd.png", "bbox": [10, 10, 40, 80], "score": 0.9}
CASES = {
    "image not in the input": (
        lambda r: ["--boxes", str(_boxes(r, [GOOD, {**GOOD, "file_name": "gone.png"}]))],
        "error: boxes file {root}/boxes.json entry 1: image 'gone.png' not found in {root}/images",
    ),
    "negative box": (
        lambda r: ["--boxes", str(_boxes(r, [{**GOOD, "bbox": [10, 10, -40, 80]}]))],
        "error: boxes file {root}/boxes.json entry 0: bbox width and height must be positive, got [10, 10, -40, 80]",
    ),
    "zero-size box": (
        lambda r: ["--boxes", str(_boxes(r, [GOOD, GOOD, {**GOOD, "bbox": [10, 10, 40, 0]}]))],
        "error: boxes file {root}/boxes.json entry 2: bbox width and height must be positive, got [10, 10, 40, 0]",
    ),
    "non-person category": (
        lambda r: ["--boxes", str(_boxes(r, [{**GOOD, "category_id": 18}]))],
        "error: boxes file {root}/boxes.json entry 0: category_id 18 is not a person (1)",
    ),
    "detector output not [1, 4 + C, A]": (
        lambda r: ["--detector", str(r / "flat_output.onnx")],
        "error: detector {root}/flat_output.onnx: output0 [6, 84] is no detector output (expected 3 dimensions, "
        "batch 1)",
    ),
    "detector with a segmentation head": (
        lambda r: ["--detector", str(r / "seg.onnx")],
        "error: detector {root}/seg.onnx: a segmentation head (output0 [1, 116, 84], output1 [1, 32, 16, 16]: mask "
        "coefficients and prototypes); fpdctl reads detection and pose exports (yolo export of a -det or -pose model)",
    ),
    "detector output with NaN": (
        lambda r: ["--detector", str(r / "nan.onnx")],
        "error: detector {root}/nan.onnx: its output holds 1 NaN or infinite value(s); the file is broken",
    ),
    "detector input not [1, 3, S, S]": (
        lambda r: ["--detector", str(r / "rect_input.onnx")],
        "error: detector {root}/rect_input.onnx: input 'images' must be [1, 3, S, S] with a fixed S "
        "(Ultralytics YOLO ONNX export), got [1, 3, 64, 96]",
    ),
    "--boxes and --detector together": (
        lambda r: ["--boxes", str(_boxes(r, [GOOD])), "--detector", str(r / "flat_output.onnx")],
        "error: --boxes and --detector exclude each other: give one source of person boxes",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_person_boxes(name: str, scene: dict[str, Path], tiny_checkpoint: Path, capfd, reliability) -> None:  # type: ignore[no-untyped-def]
    make_args, expected = CASES[name]
    root = scene["root"]
    line = expected.format(root=root)
    reliability.describe(
        "bad person boxes",
        f"fpdctl predict MODEL images/ ({name})",
        "exit 2, one 'error:' line naming the file and the entry, no output folder",
    )
    out = root / "out"
    args = make_args(root)
    capfd.readouterr()
    code = main(["predict", str(tiny_checkpoint), str(scene["images"]), "--out", str(out), "--input-size", "64", *args])
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    reliability.observe(f"exit {code}: {' | '.join(lines).replace(str(root) + '/', '')}")
    assert "Traceback" not in captured.out + captured.err
    assert code == 2 and lines == [line], captured.err
    assert captured.out == ""
    assert not out.exists()


def test_detector_on_openvino_without_openvino(
    scene: dict[str, Path], tiny_checkpoint: Path, capfd, reliability
) -> None:  # type: ignore[no-untyped-def]
    """``--detector`` with ``--backend ov`` where OpenVINO is not installed: one line, exit 2
    (it was "unexpected ModuleNotFoundError", exit 1)."""
    import importlib.util

    if importlib.util.find_spec("openvino") is not None:
        pytest.skip("OpenVINO is installed here")
    root = scene["root"]
    reliability.describe(
        "bad person boxes",
        "fpdctl predict MODEL images/ --detector det.onnx --backend ov (no OpenVINO installed)",
        "exit 2, one 'error:' line naming the backend and the missing package, no output folder",
    )
    out = root / "out"
    capfd.readouterr()
    code = main(
        ["predict", str(tiny_checkpoint), str(scene["images"]), "--out", str(out), "--input-size", "64"]
        + ["--detector", str(root / "good.onnx"), "--backend", "ov"]
    )
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    reliability.observe(f"exit {code}: {' | '.join(lines)}")
    assert code == 2 and lines == [
        "error: detector: backend ov needs openvino, which is not installed (pip install 'fpdctl[openvino]')"
    ], captured.err
    assert not out.exists()
