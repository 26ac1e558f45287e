"""The YOLO person detector: letterbox, decode, NMS, and ONNX graphs in Ultralytics' export layout.

The graphs are built here with onnx.helper in exactly the layout ``yolo export format=onnx``
writes (input ``images`` [1, 3, S, S], output ``output0`` [1, 4 + C, A]); their output is a
constant (plus 0 x the input, so the graph reads its input) that encodes known boxes.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpdctl.deploy.detector import (
    PAD_VALUE,
    PersonDetector,
    decode_persons,
    letterbox,
    nms,
)
from fpdctl.errors import InputError, UsageError


def reference_letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Ultralytics' LetterBox arithmetic, written out again (numpy padding, not copyMakeBorder):
    the scaled image, the ratio, and the (left, top) offsets."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    pad_w, pad_h = (size - nw) / 2, (size - nh) / 2
    resized = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, right = int(round(pad_w - 0.1)), int(round(pad_w + 0.1))
    top, bottom = int(round(pad_h - 0.1)), int(round(pad_h + 0.1))
    out = np.pad(resized, ((top, bottom), (left, right), (0, 0)), constant_values=114)
    return out, r, (left, top)


@pytest.mark.parametrize(
    ("h", "w", "size"), [(300, 480, 64), (480, 300, 64), (101, 77, 96), (64, 64, 64), (33, 190, 128)]
)
def test_letterbox_matches_ultralytics_arithmetic(h, w, size):
    rng = np.random.default_rng(h * w)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    got, geometry = letterbox(image, size)
    want, r, (left, top) = reference_letterbox(image, size)
    assert got.shape == (size, size, 3) and np.array_equal(got, want)
    assert (geometry.ratio, geometry.left, geometry.top) == (r, left, top)
    assert PAD_VALUE == 114


def test_letterbox_odd_padding_goes_right_and_bottom():
    # 100 x 61 into 64: r = 0.64, new size 64 x 39, 25 px of padding: 12 on top, 13 below.
    padded, geometry = letterbox(np.zeros((61, 100, 3), np.uint8), 64)
    assert (geometry.left, geometry.top) == (0, 12)
    rows = np.flatnonzero((padded == 114).all(axis=(1, 2)))
    assert rows.tolist() == list(range(12)) + list(range(51, 64))


def _yolo_graph(path, output: np.ndarray, size: int, *, input_shape=None, output_shape=None) -> None:
    """An ONNX graph in Ultralytics' export layout whose output0 is ``output`` (+ 0 x input)."""
    input_shape = input_shape or [1, 3, size, size]
    output_shape = output_shape or list(output.shape)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=list(range(1, len(input_shape))), keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["const", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "yolo_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, output_shape)],
        initializer=[
            numpy_helper.from_array(output.astype(np.float32), "const"),
            numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _anchors(boxes_px, class_scores, width, height, size):
    """output0 [1, 4 + C, A] for image-px boxes (x, y, w, h), mapped into letterbox px with the
    reference letterbox's ratio and offsets."""
    _, r, (left, top) = reference_letterbox(np.zeros((height, width, 3), np.uint8), size)
    cols = []
    for (x, y, w, h), scores in zip(boxes_px, class_scores):
        cols.append([(x + w / 2) * r + left, (y + h / 2) * r + top, w * r, h * r, *scores])
    return np.asarray(cols, np.float32).T[None]


W, H, S = 480, 300, 64  # a non-square image, letterboxed with padding on top and bottom


def test_boxes_map_back_to_image_pixels(tmp_path):
    truth = [(40.0, 30.0, 100.0, 200.0), (300.0, 10.0, 120.0, 250.0), (0.0, 0.0, 480.0, 300.0)]
    scores = [(0.9, 0.1), (0.8, 0.05), (0.6, 0.0)]
    _yolo_graph(tmp_path / "det.onnx", _anchors(truth, scores, W, H, S), S)
    detector = PersonDetector(tmp_path / "det.onnx")
    boxes, got_scores = detector(np.zeros((H, W, 3), np.uint8))
    assert detector.size == S
    np.testing.assert_allclose(got_scores, [0.9, 0.8, 0.6], atol=1e-6)
    np.testing.assert_allclose(boxes, truth, atol=1.0)


def test_portrait_image_and_clipping(tmp_path):
    width, height = 200, 360  # padding left and right
    truth = [(20.0, 40.0, 90.0, 300.0)]
    beyond = [(150.0, 300.0, 100.0, 100.0)]  # runs past the right and bottom edges: clipped
    _yolo_graph(tmp_path / "det.onnx", _anchors(truth + beyond, [(0.9,), (0.8,)], width, height, 96), 96)
    boxes, _ = PersonDetector(tmp_path / "det.onnx")(np.zeros((height, width, 3), np.uint8))
    np.testing.assert_allclose(boxes[0], truth[0], atol=1.0)
    np.testing.assert_allclose(boxes[1], [150.0, 300.0, 50.0, 60.0], atol=1.0)


def test_nms_class_filter_and_score_threshold(tmp_path):
    person = (50.0, 50.0, 100.0, 200.0)
    duplicate = (55.0, 52.0, 100.0, 198.0)  # IoU ~0.9 with `person`, lower score: suppressed
    horse = (250.0, 50.0, 150.0, 150.0)  # best class is 1: not a person, even at person 0.6
    faint = (400.0, 100.0, 60.0, 150.0)  # person score 0.2
    output = _anchors(
        [person, duplicate, horse, faint],
        [(0.9, 0.0), (0.85, 0.0), (0.6, 0.95), (0.2, 0.0)],
        W,
        H,
        S,
    )
    _yolo_graph(tmp_path / "det.onnx", output, S)
    image = np.zeros((H, W, 3), np.uint8)
    boxes, scores = PersonDetector(tmp_path / "det.onnx")(image)
    assert len(boxes) == 1
    np.testing.assert_allclose(boxes[0], person, atol=1.0)
    boxes, scores = PersonDetector(tmp_path / "det.onnx", score=0.1)(image)
    np.testing.assert_allclose(scores, [0.9, 0.2], atol=1e-6)
    np.testing.assert_allclose(boxes[1], faint, atol=1.0)
    boxes, _ = PersonDetector(tmp_path / "det.onnx", iou=0.95)(image)  # IoU 0.9 < 0.95: both stay
    assert len(boxes) == 2


def test_nms_and_decode_by_hand():
    corners = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], np.float32)
    # IoU(0, 1) = 90 / 110 = 0.818
    assert nms(corners, np.array([0.5, 0.9, 0.7]), 0.8).tolist() == [1, 2]
    assert nms(corners, np.array([0.5, 0.9, 0.7]), 0.85).tolist() == [1, 2, 0]
    from fpdctl.deploy.detector import Letterbox

    output = np.array([[[20.0], [30.0], [8.0], [10.0], [0.5]]], np.float32)  # one anchor, C = 1
    boxes, scores = decode_persons(output, Letterbox(0.5, 4, 2, 64), 100, 100)
    # corners (16, 25, 24, 35) -> minus pad (12, 23, 20, 33) -> / 0.5
    np.testing.assert_allclose(boxes, [[24.0, 46.0, 16.0, 20.0]])
    assert scores.tolist() == [0.5]


def test_bad_layouts_are_one_line_input_errors(tmp_path):
    good = _anchors([(10.0, 10.0, 50.0, 50.0)], [(0.9,)], W, H, S)
    _yolo_graph(tmp_path / "rect.onnx", good, S, input_shape=[1, 3, 64, 96])
    with pytest.raises(InputError, match=r"input 'images' must be \[1, 3, S, S\] .* got \[1, 3, 64, 96\]"):
        PersonDetector(tmp_path / "rect.onnx")
    _yolo_graph(tmp_path / "gray.onnx", good, S, input_shape=[1, 1, 64, 64])
    with pytest.raises(InputError, match=r"got \[1, 1, 64, 64\]"):
        PersonDetector(tmp_path / "gray.onnx")
    _yolo_graph(tmp_path / "flat.onnx", good[0], S)
    with pytest.raises(InputError, match=r"output 'output0' must be \[1, 4 \+ C, A\] .* got \[5, 1\]"):
        PersonDetector(tmp_path / "flat.onnx")
    _yolo_graph(tmp_path / "nocls.onnx", good[:, :4], S)
    with pytest.raises(InputError, match=r"got \[1, 4, 1\]"):
        PersonDetector(tmp_path / "nocls.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(InputError, match="ONNX Runtime cannot load detector"):
        PersonDetector(tmp_path / "junk.onnx")
    with pytest.raises(InputError, match="detector not found"):
        PersonDetector(tmp_path / "missing.onnx")
    with pytest.raises(UsageError, match=r"`det_iou` must lie in \[0, 1\], got 1.5"):
        PersonDetector(tmp_path / "rect.onnx", iou=1.5)


def test_openvino_finds_the_same_boxes_as_onnx_runtime(tmp_path):
    """Where the pose model runs on OpenVINO the detector runs there too, with the same boxes."""
    pytest.importorskip("openvino")
    from fpdctl.deploy.detector import detector_runtime

    truth = [(40.0, 30.0, 100.0, 200.0), (300.0, 10.0, 120.0, 250.0)]
    _yolo_graph(tmp_path / "det.onnx", _anchors(truth, [(0.9, 0.1), (0.8, 0.05)], W, H, S), S)
    image = np.zeros((H, W, 3), np.uint8)
    ort_boxes, ort_scores = PersonDetector(tmp_path / "det.onnx")(image)
    ov = PersonDetector(tmp_path / "det.onnx", runtime=detector_runtime("ov"))
    assert ov.runtime == "openvino"
    ov_boxes, ov_scores = ov(image)
    np.testing.assert_allclose(ov_boxes, ort_boxes, atol=1e-4)
    np.testing.assert_allclose(ov_scores, ort_scores, atol=1e-6)
    np.testing.assert_allclose(ov_boxes, truth, atol=1.0)


def test_the_detector_follows_the_pose_models_runtime():
    from fpdctl.deploy.detector import detector_runtime

    assert [detector_runtime(b) for b in ("auto", "ort", "torch", "ov", "ov-int8", "openvino", "ov,ort")] == [
        "onnxruntime",
        "onnxruntime",
        "onnxruntime",
        "openvino",
        "openvino",
        "openvino",
        "onnxruntime",
    ]
