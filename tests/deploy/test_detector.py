"""The YOLO person detector: letterbox, layouts, decoding, exact box mapping, and runtimes.

Two kinds of detector graph:

* real Ultralytics exports (``fixtures/ultralytics/``, made by ``scripts/make_ultralytics_fixtures.py``
  with Ultralytics' own exporter) whose boxes are checked against Ultralytics' own ``predict()``
  boxes recorded beside them, to 0.01 px;
* graphs built here with onnx.helper in each layout Ultralytics writes, whose output is a
  constant (plus 0 x the input, so the graph reads its input) that encodes known boxes.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpdctl.deploy.detector import (
    PAD_VALUE,
    Detector,
    ExportInfo,
    Letterbox,
    anchor_counts,
    decode,
    detector_backend,
    letterbox,
    read_layout,
)
from fpdctl.errors import InputError, UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "ultralytics"
GOLDEN = json.loads((FIXTURES / "golden.json").read_text())
TOLERANCE_PX = 0.01


# ---------------------------------------------------------------- Ultralytics' arithmetic, again


def reference_letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """Ultralytics 8.4's LetterBox(auto=False, center=True) and scale_boxes arithmetic, written out
    again: the padded image, the per-axis gains (new side / old side) and the (left, top) padding."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nw, nh = max(round(w * r), 1), max(round(h * r), 1)
    resized = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (size - nw) / 2, (size - nh) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    out = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return out, (nw / w, nh / h), (left, top)


def to_letterbox(boxes_px, width: int, height: int, size: int) -> np.ndarray:
    """Image-px (x, y, w, h) boxes -> letterbox-px (cx, cy, w, h), the inverse of scale_boxes."""
    _, (gx, gy), (left, top) = reference_letterbox(np.zeros((height, width, 3), np.uint8), size)
    return np.asarray([((x + w / 2) * gx + left, (y + h / 2) * gy + top, w * gx, h * gy) for x, y, w, h in boxes_px])


@pytest.mark.parametrize(
    ("h", "w", "size"),
    [(300, 480, 64), (480, 300, 64), (101, 77, 96), (64, 64, 64), (33, 190, 128), (600, 1, 160), (1, 600, 160)]
    + [(1147, 2048, 640), (2, 3, 32), (1, 1, 64)],
)
def test_letterbox_matches_ultralytics_arithmetic(h, w, size):
    rng = np.random.default_rng(h * w)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    got, geometry = letterbox(image, size)
    want, gains, (left, top) = reference_letterbox(image, size)
    assert got.shape == (size, size, 3) and np.array_equal(got, want)
    assert (geometry.left, geometry.top) == (left, top)
    assert (geometry.new_width / w, geometry.new_height / h) == gains
    assert PAD_VALUE == 114


def test_letterbox_odd_padding_goes_right_and_bottom():
    # 100 x 61 into 64: r = 0.64, new size 64 x 39, 25 px of padding: 12 on top, 13 below.
    padded, geometry = letterbox(np.zeros((61, 100, 3), np.uint8), 64)
    assert (geometry.left, geometry.top) == (0, 12)
    rows = np.flatnonzero((padded == 114).all(axis=(1, 2)))
    assert rows.tolist() == list(range(12)) + list(range(51, 64))


def test_scale_boxes_uses_the_rounded_side_not_the_ratio():
    """2048 x 1147 at 640 px: r = 0.3125 but the resized height is round(358.4375) = 358, so
    Ultralytics divides y by 358 / 1147, not by r. Dividing by r put the bottom edge 1.4 px off."""
    geometry = Letterbox.of(2048, 1147, 640)
    assert (geometry.new_width, geometry.new_height, geometry.left, geometry.top) == (640, 358, 0, 141)
    corners = np.array([[0.0, 141.0, 640.0, 499.0], [320.0, 320.0, 321.0, 321.0]], np.float32)
    got = geometry.to_image(corners)
    gain_y = 358 / 1147
    want = [[0.0, 0.0, 2048.0, 1147.0], [1024.0, (320 - 141) / gain_y, 1027.2, (321 - 141) / gain_y]]
    np.testing.assert_allclose(got, want, atol=TOLERANCE_PX)
    by_ratio = (499 - 141) / 0.3125
    assert abs(by_ratio - 1147) > 1.0  # the old mapping was visibly wrong here


# ---------------------------------------------------------------- real Ultralytics exports


def synthetic_images() -> dict[str, np.ndarray]:
    """The seeded images of scripts/make_ultralytics_fixtures.py, made again (the same code)."""
    rng = np.random.default_rng(20261207)
    sizes = {"tall-600x1": (600, 1), "wide-1x600": (1, 600), "big-1147x2048": (1147, 2048), "odd-37x517": (37, 517)}
    images = {}
    for name, (h, w) in sizes.items():
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        phase = rng.uniform(0, 6.3, 3)
        waves = [127 + 120 * np.sin(xx / (17 + 13 * c) + phase[c]) * np.cos(yy / (29 - 7 * c)) for c in range(3)]
        image = np.stack(waves, axis=-1).astype(np.uint8)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(1, max(2, w // 3))), y0 + int(rng.integers(1, max(2, h // 3)))
            image[y0:y1, x0:x1] = rng.integers(0, 256, 3, dtype=np.uint8)
        images[name] = image
    return images


SYNTHETIC = synthetic_images()
MODELS = sorted(GOLDEN["models"])
IMAGES = sorted(GOLDEN["images"])


@pytest.fixture(scope="module")
def real_detectors() -> dict[str, Detector]:
    return {
        name: Detector(FIXTURES / name, score=GOLDEN["models"][name]["conf"], iou=GOLDEN["models"][name]["iou"])
        for name in MODELS
    }


def _image(name: str, request: pytest.FixtureRequest) -> np.ndarray:
    if name.startswith("lspet/"):
        folder = request.getfixturevalue("lspet400")
        image = cv2.imread(str(folder / "images" / name.split("/", 1)[1]))
    else:
        image = SYNTHETIC[name]
    record = GOLDEN["images"][name]
    assert list(image.shape) == record["shape"]
    assert hashlib.sha256(image.tobytes()).hexdigest() == record["sha256"]  # the pixels Ultralytics saw
    return image


def test_the_real_exports_are_the_published_layouts(real_detectors):
    assert GOLDEN["ultralytics"] == "8.4.190"
    kinds = {name: (d.layout.kind, d.layout.task, d.layout.classes) for name, d in real_detectors.items()}
    assert kinds == {
        "yolo26-det.onnx": ("end-to-end", "detect", 3),
        "yolov8-det.onnx": ("anchors", "detect", 3),
        "yolov8-pose.onnx": ("anchors", "pose", 1),
    }
    assert all(d.size == GOLDEN["imgsz"] for d in real_detectors.values())
    assert sum(len(GOLDEN["models"][m]["boxes"][i]["scores"]) for m in MODELS for i in IMAGES) > 500


@pytest.mark.parametrize("image_name", IMAGES)
@pytest.mark.parametrize("model", MODELS)
def test_boxes_equal_ultralytics_predict(model, image_name, real_detectors, request):
    """Every box Ultralytics' own predict() found, to 0.01 px, with its score, in its order;
    the same count; images down to 1 px wide or tall and up to 2048 px."""
    image = _image(image_name, request)
    want = GOLDEN["models"][model]["boxes"][image_name]
    detector = real_detectors[model]
    corners, scores = detector.detect(image)
    assert len(scores) == len(want["scores"])
    np.testing.assert_allclose(corners.reshape(-1, 4), np.reshape(want["xyxy"], (-1, 4)), atol=TOLERANCE_PX, rtol=0)
    np.testing.assert_allclose(scores, want["scores"], atol=1e-5, rtol=0)
    # __call__ keeps exactly the boxes with area, as COCO (x, y, w, h)
    sized = [(x2 > x1) and (y2 > y1) for x1, y1, x2, y2 in want["xyxy"]]
    before = detector.dropped
    boxes, kept = detector(image)
    assert len(boxes) == sum(sized) and detector.dropped - before == len(sized) - sum(sized)
    expected = np.reshape(want["xyxy"], (-1, 4))[np.asarray(sized, bool)]
    np.testing.assert_allclose(boxes[:, :2], expected[:, :2], atol=TOLERANCE_PX, rtol=0)
    np.testing.assert_allclose(boxes[:, :2] + boxes[:, 2:], expected[:, 2:], atol=TOLERANCE_PX, rtol=0)
    assert (boxes[:, 2:] > 0).all()


# ---------------------------------------------------------------- graphs built in each layout


def _yolo_graph(
    path,
    output: np.ndarray,
    size: int,
    *,
    input_shape=None,
    output_shape=None,
    metadata: dict[str, str] | None = None,
    half: bool = False,
    protos: tuple[int, ...] | None = None,
) -> None:
    """An ONNX graph in Ultralytics' export layout whose output0 is ``output`` (+ 0 x input).

    half: float16 input and output (a ``half=True`` export); protos: a second output of this
    shape (a segmentation head's mask prototypes); metadata: Ultralytics' metadata_props.
    """
    input_shape = input_shape or [1, 3, size, size]
    output_shape = output_shape or list(output.shape)
    float_type = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    nodes = [helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT)]
    nodes += [
        helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=list(range(1, len(input_shape))), keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["const", "nothing"], ["sum"]),
        helper.make_node("Cast", ["sum"], ["output0"], to=float_type),
    ]
    outputs = [helper.make_tensor_value_info("output0", float_type, output_shape)]
    initializers = [
        numpy_helper.from_array(output.astype(np.float32), "const"),
        numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
    ]
    if protos is not None:
        nodes.append(helper.make_node("Identity", ["proto_const"], ["output1"]))
        outputs.append(helper.make_tensor_value_info("output1", TensorProto.FLOAT, list(protos)))
        initializers.append(numpy_helper.from_array(np.zeros(protos, np.float32), "proto_const"))
    graph = helper.make_graph(
        nodes,
        "yolo_like",
        [helper.make_tensor_value_info("images", float_type, input_shape)],
        outputs,
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _anchors(boxes_px, class_scores, width, height, size, *, extra: int = 0):
    """output0 [1, 4 + C (+ extra), A] for image-px boxes (x, y, w, h), mapped into letterbox px
    with Ultralytics' arithmetic; A is the real anchor count of an S px input, the anchors past
    the boxes scoring 0."""
    count = anchor_counts(size)[0]
    classes = len(class_scores[0])
    out = np.zeros((4 + classes + extra, count), np.float32)
    for i, (box, scores) in enumerate(zip(to_letterbox(boxes_px, width, height, size), class_scores)):
        out[:4, i] = box
        out[4 : 4 + classes, i] = scores
        out[4 + classes :, i] = 7.0  # keypoint values: ignored
    return out[None]


W, H, S = 480, 300, 64  # a non-square image, letterboxed with padding on top and bottom
TRUTH = [(40.0, 30.0, 100.0, 200.0), (300.0, 10.0, 120.0, 250.0), (0.0, 0.0, 480.0, 300.0)]
SCORES = [(0.9, 0.1), (0.8, 0.05), (0.6, 0.0)]


def test_anchor_counts_of_ultralytics_heads():
    # 640 px: 80^2 + 40^2 + 20^2 = 8400 (P3-P5), + 10^2 (P6), + 160^2 (P2-P5)
    assert anchor_counts(640) == [8400, 8500, 34000]
    assert anchor_counts(64)[0] == 84 and anchor_counts(160)[0] == 525


def _check_truth(detector: Detector, truth=TRUTH, scores=(0.9, 0.8, 0.6)) -> None:
    boxes, got = detector(np.zeros((H, W, 3), np.uint8))
    np.testing.assert_allclose(got, scores, atol=1e-6)
    np.testing.assert_allclose(boxes, truth, atol=TOLERANCE_PX)


def test_v8_head_boxes_map_back_exactly(tmp_path):
    _yolo_graph(tmp_path / "det.onnx", _anchors(TRUTH, SCORES, W, H, S), S)
    detector = Detector(tmp_path / "det.onnx")
    assert detector.size == S and detector.layout.kind == "anchors" and detector.layout.classes == 2
    assert detector.runtime == "onnxruntime" and detector.backend.name == "ort" and detector.device == "cpu"
    _check_truth(detector)


def test_transposed_head(tmp_path):
    _yolo_graph(tmp_path / "t.onnx", _anchors(TRUTH, SCORES, W, H, S).transpose(0, 2, 1).copy(), S)
    detector = Detector(tmp_path / "t.onnx")
    assert detector.layout.kind == "anchors-transposed"
    _check_truth(detector)


def test_yolov5_head_with_objectness(tmp_path):
    """[1, 3A, 5 + C]: the score is objectness x class score; an anchor under the threshold in
    objectness is no candidate."""
    count = 3 * anchor_counts(S)[0]
    rows = np.zeros((count, 5 + 2), np.float32)
    boxes = to_letterbox(TRUTH + [(200.0, 100.0, 50.0, 50.0)], W, H, S)
    for i, (box, obj, cls) in enumerate(
        zip(boxes, (0.9, 1.0, 0.75, 0.2), ((1.0, 0.0), (0.8, 0.1), (0.8, 0.3), (1.0, 0)))
    ):
        rows[i, :4], rows[i, 4], rows[i, 5:] = box, obj, cls
    _yolo_graph(tmp_path / "v5.onnx", rows[None], S, metadata={"stride": "32", "names": "{0: 'person', 1: 'car'}"})
    detector = Detector(tmp_path / "v5.onnx", score=0.25)
    assert detector.layout.kind == "yolov5" and detector.layout.classes == 2
    _check_truth(detector, scores=(0.9, 0.8, 0.6))


@pytest.mark.parametrize(
    "metadata",
    [
        {},  # a graph without metadata: [1, N, 6] read as end-to-end
        {"task": "detect", "end2end": "True", "names": "{0: 'person', 1: 'car'}"},  # YOLOv10 / YOLO26
        {"task": "detect", "end2end": "False", "args": "{'nms': True, 'batch': 1}"},  # nms=True export
    ],
    ids=["bare", "yolo26", "nms-export"],
)
def test_end_to_end_boxes_are_not_suppressed_again(tmp_path, metadata):
    """[1, N, 6] (x1, y1, x2, y2, score, class), already suppressed: two heavily overlapping
    persons both stay (NMS would drop one), a car is dropped, the zero padding too."""
    rows = np.zeros((300, 6), np.float32)
    duplicate = (42.0, 31.0, 100.0, 200.0)  # IoU > 0.9 with TRUTH[0]
    entries = [(TRUTH[0], 0.9, 0), (duplicate, 0.85, 0), ((200.0, 100.0, 50.0, 50.0), 0.95, 1), (TRUTH[1], 0.8, 0)]
    for i, (box, score, cls) in enumerate(entries):
        cx, cy, w, h = to_letterbox([box], W, H, S)[0]
        rows[i] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score, cls)
    _yolo_graph(tmp_path / "e2e.onnx", rows[None], S, metadata=metadata)
    detector = Detector(tmp_path / "e2e.onnx")
    assert detector.layout.kind == "end-to-end"
    _check_truth(detector, truth=[TRUTH[0], duplicate, TRUTH[1]], scores=(0.9, 0.85, 0.8))


@pytest.mark.parametrize("metadata", [{}, {"task": "pose", "names": "{0: 'person'}", "kpt_shape": "[17, 3]"}])
def test_pose_head_reads_as_persons(tmp_path, metadata):
    """YOLOv8-pose [1, 56, A]: 4 box + 1 person score + 51 keypoint values (ignored). Read as
    detections of class 0, NMS included: the duplicate goes, the true persons stay."""
    truth = TRUTH[:2] + [(45.0, 35.0, 100.0, 196.0)]  # the third duplicates the first
    _yolo_graph(
        tmp_path / "pose.onnx", _anchors(truth, [(0.9,), (0.8,), (0.7,)], W, H, S, extra=51), S, metadata=metadata
    )
    detector = Detector(tmp_path / "pose.onnx")
    assert detector.layout.task == "pose" and detector.layout.extra == 51
    _check_truth(detector, truth=TRUTH[:2], scores=(0.9, 0.8))


def test_fp16_input_is_cast(tmp_path):
    """A half=True export takes and returns float16: the input is cast, the boxes are the same."""
    _yolo_graph(tmp_path / "half.onnx", _anchors(TRUTH, SCORES, W, H, S), S, half=True)
    detector = Detector(tmp_path / "half.onnx")
    assert detector.input_dtype == np.float16
    boxes, scores = detector(np.zeros((H, W, 3), np.uint8))
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.6], atol=1e-3)
    np.testing.assert_allclose(boxes, TRUTH, atol=0.5)  # float16 letterbox px (~0.03 px at 64) x 7.5


def test_boxes_in_the_padding_are_dropped_and_counted(tmp_path):
    """A box wholly in the letterbox padding has no area once clipped: not a person. A box
    running off the image is clipped to it."""
    _, (gx, gy), (left, top) = reference_letterbox(np.zeros((H, W, 3), np.uint8), S)
    assert top > 2
    in_padding = (20.0, -top / gy, 40.0, 0.5 * top / gy)  # above the image, inside the top padding
    beyond = (400.0, 250.0, 100.0, 100.0)
    output = _anchors([TRUTH[0], in_padding, beyond], [(0.9,), (0.95,), (0.8,)], W, H, S)
    _yolo_graph(tmp_path / "pad.onnx", output, S)
    detector = Detector(tmp_path / "pad.onnx")
    corners, _ = detector.detect(np.zeros((H, W, 3), np.uint8))
    assert len(corners) == 3 and corners[0][3] == corners[0][1] == 0  # the padding box, flat at the top edge
    boxes, scores = detector(np.zeros((H, W, 3), np.uint8))
    assert detector.dropped == 1
    np.testing.assert_allclose(scores, [0.9, 0.8], atol=1e-6)
    np.testing.assert_allclose(boxes, [TRUTH[0], (400.0, 250.0, 80.0, 50.0)], atol=TOLERANCE_PX)


@pytest.mark.parametrize(("h", "w"), [(600, 1), (1, 600), (1, 1)])
def test_one_pixel_wide_images_run(tmp_path, h, w):
    """A 1 x 600 image letterboxes to a 1 px column (Ultralytics keeps each side at least 1 px)."""
    _yolo_graph(tmp_path / "det.onnx", _anchors([(0.0, 0.0, float(w), float(h))], [(0.9,)], w, h, S), S)
    boxes, scores = Detector(tmp_path / "det.onnx")(np.full((h, w, 3), 200, np.uint8))
    np.testing.assert_allclose(boxes, [(0.0, 0.0, w, h)], atol=TOLERANCE_PX)


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
    boxes, scores = Detector(tmp_path / "det.onnx")(image)
    assert len(boxes) == 1
    np.testing.assert_allclose(boxes[0], person, atol=TOLERANCE_PX)
    boxes, scores = Detector(tmp_path / "det.onnx", score=0.1)(image)
    np.testing.assert_allclose(scores, [0.9, 0.2], atol=1e-6)
    np.testing.assert_allclose(boxes[1], faint, atol=TOLERANCE_PX)
    boxes, _ = Detector(tmp_path / "det.onnx", iou=0.95)(image)  # IoU 0.9 < 0.95: both stay
    assert len(boxes) == 2


def test_decode_by_hand():
    output = np.zeros((1, 5, 84), np.float32)
    output[0, :, 0] = (20.0, 30.0, 8.0, 10.0, 0.5)  # one anchor, C = 1
    layout = read_layout([output.shape], 64)
    got, scores = decode(output, layout)
    np.testing.assert_allclose(got, [[16.0, 25.0, 24.0, 35.0]])
    # 100 x 100 into 64: gain 0.64, no padding
    np.testing.assert_allclose(Letterbox.of(100, 100, 64).to_image(got), [[25.0, 39.0625, 37.5, 54.6875]], atol=1e-4)
    assert scores.tolist() == [0.5]


# ---------------------------------------------------------------- refusals


def _good(size: int = S) -> np.ndarray:
    return _anchors([(10.0, 10.0, 50.0, 50.0)], [(0.9,)], W, H, size)


REFUSALS = {
    "segmentation head": (
        dict(output=np.zeros((1, 116, 84), np.float32), protos=(1, 32, 16, 16)),
        r"detector .*seg\.onnx: a segmentation head \(output0 \[1, 116, 84\], output1 \[1, 32, 16, 16\]: mask "
        r"coefficients and prototypes\); fpdctl reads detection and pose exports",
    ),
    "classification model": (
        dict(output=np.zeros((1, 1000), np.float32), metadata={"task": "classify"}),
        r"an Ultralytics 'classify' model \(output0 \[1, 1000\]\)",
    ),
    "no layout": (
        dict(output=np.zeros((1, 7, 50), np.float32)),
        r"output0 \[1, 7, 50\] is no Ultralytics detector layout for a 64 px input \(expected \[1, 4 \+ C, A\] or "
        r"\[1, A, 4 \+ C\] with A = 84, YOLOv5 \[1, 252, 5 \+ C\], or end-to-end \[1, N, 6\]\)",
    ),
    "channels against names": (
        dict(output=np.zeros((1, 84, 84), np.float32), metadata={"task": "detect", "names": "{0: 'person', 1: 'car'}"}),
        r"output0 \[1, 84, 84\] read as anchors has 84 channels, not 4 \+ C with C = 2",
    ),
    "no classes": (dict(output=np.zeros((1, 4, 84), np.float32)), r"read as anchors has 4 channels, not 4 \+ C"),
    "two dimensions": (
        dict(output=np.zeros((6, 84), np.float32)),
        r"output0 \[6, 84\] is no detector output \(expected 3 dimensions, batch 1\)",
    ),
    "rectangular input": (
        dict(output=_good(), input_shape=[1, 3, 64, 96]),
        r"input 'images' must be \[1, 3, S, S\] with a fixed S \(Ultralytics YOLO ONNX export\), got \[1, 3, 64, 96\]",
    ),
    "grey input": (dict(output=_good(), input_shape=[1, 1, 64, 64]), r"got \[1, 1, 64, 64\]"),
    "dynamic input": (
        dict(output=_good(), input_shape=["batch", 3, "height", "width"]),
        r"input 'images' \[\?, 3, \?, \?\] has no fixed size \(a dynamic=True export, which Ultralytics letterboxes "
        r"to a stride-multiple rectangle\); export it with dynamic=False and an imgsz",
    ),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_layouts_fpdctl_does_not_read_are_refused_by_name(tmp_path, name):
    options, message = REFUSALS[name]
    options = dict(options)
    output = options.pop("output")
    path = tmp_path / "seg.onnx"
    _yolo_graph(path, output, S, **options)
    with pytest.raises(InputError, match=message) as caught:
        Detector(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_bad_files_and_thresholds(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(InputError, match=r"detector .*junk\.onnx is not a readable ONNX file"):
        Detector(tmp_path / "junk.onnx")
    with pytest.raises(InputError, match="detector not found"):
        Detector(tmp_path / "missing.onnx")
    _yolo_graph(tmp_path / "det.onnx", _good(), S)
    with pytest.raises(UsageError, match=r"^`iou` must lie in \[0, 1\], got 1.5$"):
        Detector(tmp_path / "det.onnx", iou=1.5)
    with pytest.raises(UsageError, match=r"^`score` must lie in \[0, 1\], got nan$"):
        Detector(tmp_path / "det.onnx", score=float("nan"))
    with pytest.raises(UsageError, match="unknown backend 'onnx'"):
        Detector(tmp_path / "det.onnx", backend="onnx")


def test_images_that_are_not_uint8_bgr_are_refused(tmp_path):
    _yolo_graph(tmp_path / "det.onnx", _good(), S)
    detector = Detector(tmp_path / "det.onnx")
    for image, seen in ((np.zeros((8, 8), np.uint8), "uint8 [8, 8]"), (np.zeros((8, 8, 3)), "float64 [8, 8, 3]")):
        with pytest.raises(
            UsageError, match=rf"^`image` must be a uint8 \[H, W, 3\] BGR array, got {re.escape(seen)}$"
        ):
            detector(image)


def test_nan_output_is_an_error_naming_the_detector(tmp_path):
    output = _good()
    output[0, 0, 3] = np.nan
    _yolo_graph(tmp_path / "nan.onnx", output, S)
    detector = Detector(tmp_path / "nan.onnx")
    with pytest.raises(InputError, match=r"^detector .*nan\.onnx: its output holds 1 NaN or infinite value\(s\)"):
        detector(np.zeros((H, W, 3), np.uint8))


def test_metadata_is_read_as_ultralytics_writes_it():
    props = {
        "task": "pose",
        "names": "{0: 'person'}",
        "kpt_shape": "[17, 3]",
        "end2end": "False",
        "args": "{'nms': None, 'batch': 1}",
    }
    assert ExportInfo.from_props(props) == ExportInfo({0: "person"}, "pose", False, 51)
    assert ExportInfo.from_props({"names": "__import__('os')"}) == ExportInfo()


# ---------------------------------------------------------------- runtimes


def test_the_detector_follows_the_pose_models_runtime():
    names = ("auto", "onnxruntime", "ort", "ort-int8", "torch", "ov", "ov-int8", "ov-bf16", "openvino", "ov,ort")
    assert [detector_backend(b).name for b in names] == ["ort"] * 5 + ["ov"] * 4 + ["ort"]


def test_openvino_missing_is_one_clean_line(tmp_path):
    import importlib.util

    if importlib.util.find_spec("openvino") is not None:
        pytest.skip("OpenVINO is installed here")
    _yolo_graph(tmp_path / "det.onnx", _good(), S)
    with pytest.raises(UsageError) as caught:
        Detector(tmp_path / "det.onnx", backend="ov")
    assert str(caught.value) == (
        "detector: backend ov needs openvino, which is not installed (pip install 'fpdctl[openvino]')"
    )


def test_openvino_finds_the_same_boxes_as_onnx_runtime(tmp_path):
    """Where the pose model runs on OpenVINO the detector runs there too, with the same boxes."""
    pytest.importorskip("openvino")
    _yolo_graph(tmp_path / "det.onnx", _anchors(TRUTH, SCORES, W, H, S), S)
    ov = Detector(tmp_path / "det.onnx", backend="ov-int8")
    assert ov.runtime == "openvino" and ov.backend.name == "ov" and ov.device == "cpu"
    _check_truth(ov)
    _yolo_graph(tmp_path / "half.onnx", _anchors(TRUTH, SCORES, W, H, S), S, half=True)
    boxes, scores = Detector(tmp_path / "half.onnx", backend="openvino")(np.zeros((H, W, 3), np.uint8))
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.6], atol=1e-3)
    np.testing.assert_allclose(boxes, TRUTH, atol=0.5)


def test_keypoints_json_records_the_runtime_the_detector_ran_on(tmp_path, tiny_checkpoint):
    from fpdctl.api import predict

    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((H, W, 3), np.uint8))
    _, (gx, gy), (left, top) = reference_letterbox(np.zeros((H, W, 3), np.uint8), S)
    in_padding = (20.0, -top / gy, 40.0, 0.5 * top / gy)
    _yolo_graph(tmp_path / "det.onnx", _anchors([TRUTH[0], in_padding], [(0.9,), (0.95,)], W, H, S), S)
    result = predict(
        str(tiny_checkpoint),
        folder,
        out=tmp_path / "out",
        detector=tmp_path / "det.onnx",
        input_size=64,
        draw=False,
    )
    record = json.loads((tmp_path / "out" / "keypoints.json").read_text())["detector"]
    assert record["runtime"] == "onnxruntime" and record["boxes_without_area"] == 1
    assert len(result.predictions[0].persons) == 1
    assert math.isclose(result.predictions[0].persons[0].box_score, 0.9, abs_tol=1e-6)
