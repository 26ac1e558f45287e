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
    "negative box": (
        lambda r: ["--boxes", str(_boxes(r, [{**GOOD, "bbox": [10, 10, -40, 80]}]))],
        "error: {root}/boxes.json: detection 0: bbox [10, 10, -40, 80] has no area (width and height must be positive)",
    ),
    "zero-size box": (
        lambda r: ["--boxes", str(_boxes(r, [GOOD, GOOD, {**GOOD, "bbox": [10, 10, 40, 0]}]))],
        "error: {root}/boxes.json: detection 2: bbox [10, 10, 40, 0] has no area (width and height must be positive)",
    ),
    "NaN in a box": (
        lambda r: ["--boxes", str(_boxes(r, [{**GOOD, "bbox": [10, float("nan"), 40, 80]}]))],
        "error: {root}/boxes.json: detection 0: bbox must be [x, y, width, height], four finite numbers",
    ),
    "non-person category": (
        lambda r: ["--boxes", str(_boxes(r, [{**GOOD, "category_id": 18}]))],
        "error: {root}/boxes.json: detection 0: category_id is 18, only persons (category 1) have keypoints",
    ),
    "frame base 2": (
        lambda r: ["--boxes", str(_boxes(r, [GOOD])), "--frame-base", "2"],
        "error: --frame-base must be 0 or 1, got 2",
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


SKIPPED_CASES = {
    "boxes under --det-score": (
        [GOOD, {**GOOD, "score": 0.1}, {**GOOD, "score": 0.2}],
        [],
        ["warning: 2 box(es) scoring under det_score: skipped"],
        1,
    ),
    "a file for more images than INPUT holds": (
        [GOOD, {**GOOD, "file_name": "zidane.jpg"}, {**GOOD, "file_name": "bus.jpg"}, {**GOOD, "file_name": "bus.jpg"}],
        [],
        ["warning: 3 box(es) of 2 image(s) the input does not hold (bus.jpg, zidane.jpg): skipped"],
        1,
    ),
    "a box of 1e-6 px": (
        [GOOD, {**GOOD, "bbox": [10, 10, 1e-6, 1e-6]}],
        [],
        ["warning: 1 box(es) smaller than 1 px (crowd.png (detection 1)): skipped"],
        1,
    ),
    "a box wholly outside the image": (
        [{**GOOD, "bbox": [500, 10, 40, 80]}, GOOD],
        [],
        ["warning: 1 box(es) with no area in their image (crowd.png (detection 0)): skipped"],
        1,
    ),
    "a huge box [0, 0, 1e7, 1e7]": ([{**GOOD, "bbox": [0, 0, 1e7, 1e7]}], [], [], 1),
    "a --bbox outside the image": (
        None,
        ["--bbox", "500,10,20,20"],
        ["warning: bbox 500,10,20,20 has no area in the image (1 image(s) or frame(s): crowd.png): no person there"],
        0,
    ),
}


@pytest.mark.parametrize("name", list(SKIPPED_CASES))
def test_boxes_skipped_and_counted(
    name: str, scene: dict[str, Path], tiny_checkpoint: Path, capfd, reliability
) -> None:  # type: ignore[no-untyped-def]
    """Boxes predict cannot crop, or was told not to, are skipped, counted in one warning line
    and in keypoints.json's skipped_boxes; the run goes on (exit 0) and draws what it found."""
    entries, args, expected, persons = SKIPPED_CASES[name]
    root = scene["root"]
    reliability.describe(
        "bad person boxes",
        f"fpdctl predict MODEL images/ ({name})",
        "exit 0, the box skipped and counted in one 'warning:' line, the others predicted",
    )
    out = root / "out"
    if entries is not None:
        args = ["--boxes", str(_boxes(root, entries))]
    capfd.readouterr()
    code = main(["predict", str(tiny_checkpoint), str(scene["images"]), "--out", str(out), "--input-size", "64", *args])
    captured = capfd.readouterr()
    warnings = [line for line in captured.err.strip().splitlines() if line]
    saved = json.loads((out / "keypoints.json").read_text())
    found = sum(len(entry["persons"]) for entry in saved["results"])
    reliability.observe(f"exit {code}: {' | '.join(warnings)}; {found} person(s); skipped {saved['skipped_boxes']}")
    assert "Traceback" not in captured.out + captured.err
    assert code == 0 and warnings == expected, captured.err
    assert found == persons and sum(saved["skipped_boxes"].values()) == (len(entries or [None]) - persons)
    assert (out / "crowd.png").is_file()


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    for _ in range(3):
        writer.write(np.zeros((120, 160, 3), np.uint8))
    writer.release()
    return video


VIDEO_CASES = {
    "a frame past the end of the video": (
        [{"frame": 1, "bbox": [10, 10, 40, 80]}, {"frame": 3, "bbox": [10, 10, 40, 80]}],
        [],
        "error: {root}/boxes.json: detection 1 names frame 3, past the end of clip.mp4 (3 frames, numbered 0..2 "
        "with frame_base=0); 1 boxes are past the end",
    ),
    "a 1-based (MOT) file read 0-based, past the end": (
        [{"frame": k, "bbox": [10, 10, 40, 80]} for k in (1, 2, 3)],
        [],
        "error: {root}/boxes.json: detection 2 names frame 3, past the end of clip.mp4 (3 frames, numbered 0..2 "
        "with frame_base=0); 1 boxes are past the end",
    ),
    "frame 0 in a 1-based file": (
        [{"frame": 0, "bbox": [10, 10, 40, 80]}],
        ["--frame-base", "1"],
        "error: {root}/boxes.json: detection 0: frame 0 is before the first frame (1, frame_base)",
    ),
}


@pytest.mark.parametrize("name", list(VIDEO_CASES))
def test_bad_video_frames(name: str, clip: Path, tiny_checkpoint: Path, capfd, reliability) -> None:  # type: ignore[no-untyped-def]
    entries, args, expected = VIDEO_CASES[name]
    root = clip.parent
    reliability.describe(
        "bad person boxes",
        f"fpdctl predict MODEL clip.mp4 --boxes ({name})",
        "exit 2, one 'error:' line naming the file, the entry and the frame, no output folder",
    )
    out = root / "out"
    capfd.readouterr()
    code = main(
        ["predict", str(tiny_checkpoint), str(clip), "--out", str(out), "--input-size", "64", "--no-draw"]
        + ["--boxes", str(_boxes(root, entries)), *args]
    )
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    reliability.observe(f"exit {code}: {' | '.join(lines).replace(str(root) + '/', '')}")
    assert "Traceback" not in captured.out + captured.err
    assert code == 2 and lines == [expected.format(root=root)], captured.err
    assert not out.exists()


NO_EFFECT = {
    "--det-iou with --boxes": (
        ["--boxes", "{boxes}", "--det-iou", "0.5"],
        "warning: --det-iou has no effect with --boxes (a boxes file's boxes are not suppressed)",
    ),
    "--frame-base without --boxes": (
        ["--frame-base", "1"],
        "warning: --frame-base has no effect without --boxes (it numbers a boxes file's frames)",
    ),
}


@pytest.mark.parametrize("name", list(NO_EFFECT))
def test_box_options_without_effect_warn(
    name: str, scene: dict[str, Path], tiny_checkpoint: Path, capfd, reliability
) -> None:  # type: ignore[no-untyped-def]
    args, expected = NO_EFFECT[name]
    root = scene["root"]
    reliability.describe(
        "bad person boxes",
        f"fpdctl predict MODEL images/ {' '.join(args).replace('{boxes}', 'boxes.json')}",
        "exit 0, one 'warning:' line saying the option changes nothing",
    )
    boxes = _boxes(root, [GOOD])
    capfd.readouterr()
    code = main(
        ["predict", str(tiny_checkpoint), str(scene["images"]), "--out", str(root / "out"), "--input-size", "64"]
        + [a.replace("{boxes}", str(boxes)) for a in args]
        + ["--no-draw"]
    )
    lines = capfd.readouterr().err.strip().splitlines()
    reliability.observe(f"exit {code}: {' | '.join(lines)}")
    assert code == 0 and lines == [expected]


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
        # The pose model opens first (a checkpoint is exported for the ov row, as eval does).
        "error: backend ov: needs openvino, which is not installed (pip install 'fpdctl[openvino]')"
    ], captured.err
    assert not out.exists()
