"""Person boxes from an Ultralytics YOLO ONNX export, in every layout Ultralytics writes.

``yolo export format=onnx`` writes one input, ``images`` [1, 3, S, S] (RGB in 0..1, the image
letterboxed to S x S: :func:`letterbox`; float32, or float16 for a ``half=True`` export), and an
output ``output0`` in one of these layouts (:func:`read_layout` tells them apart by the output's
shape, the anchor count of an S px input and the export's metadata):

* ``anchors``: the YOLOv8 / YOLO11 head, [1, 4 + C (+ K), A]: per anchor the box centre x, y,
  width and height in letterbox px, C class scores (sigmoid, no objectness), and for a pose head
  K = 17 x 3 keypoint values (ignored: a pose head's one class is the person). A is the number of
  grid cells over the strides 8, 16, 32 (and 64 for P6 models, 4 for P2 ones).
* ``anchors-transposed``: the same, [1, A, 4 + C (+ K)].
* ``yolov5``: YOLOv5's head, [1, 3A, 5 + C]: box, objectness, C class scores; a box's class
  score is objectness x class score.
* ``end-to-end``: [1, N, 6 (+ K)], (x1, y1, x2, y2, score, class) in letterbox px, best first:
  exports with ``nms=True``, and YOLOv10 / YOLO26 (``nms=False``); already suppressed, so these
  are only filtered by score and class, as Ultralytics does.

Segmentation heads (a second output of mask prototypes), classification and oriented-box models
and any other shape are refused on one line that names what was seen.

Decoding follows Ultralytics' ``non_max_suppression`` for a ``predict(classes=[0])``: an anchor is
a person when its best class is class 0 and that score is above the threshold; greedy NMS by
IoU (:func:`fpdctl.boxes.iou_nms`); at most :data:`MAX_DETECTIONS` boxes. Boxes map back to image
px exactly as the current Ultralytics release's ``scale_boxes`` does (its own per-axis gain and rounded padding, not the
letterbox ratio) and are clipped to the image (``clip_boxes``); a box with no area left (one in
the letterbox padding, say) is dropped and counted (:attr:`Detector.dropped`).

:class:`Detector` runs the graph on a row of the backend table (:mod:`fpdctl.deploy.backends`):
ONNX Runtime's ``ort`` or OpenVINO's ``ov``, through that runtime's Runner.
"""

from __future__ import annotations

import ast
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fpdctl.boxes import iou_nms
from fpdctl.errors import InputError, UsageError

if TYPE_CHECKING:
    from fpdctl.deploy.backends import Backend

# Ultralytics' defaults for `predict`: confidence threshold, NMS IoU threshold, max boxes kept.
DEFAULT_DET_SCORE: float = 0.25
DEFAULT_DET_IOU: float = 0.7
MAX_DETECTIONS: int = 300
# Ultralytics' non_max_suppression keeps at most this many candidates (best first) before NMS.
MAX_NMS: int = 30000
# The COCO / Ultralytics class index of "person".
PERSON_CLASS: int = 0
# Ultralytics' letterbox padding colour (grey, all three channels).
PAD_VALUE: int = 114
# The grids of Ultralytics' detection heads: P3-P5 (most models), P3-P6 (the -p6 yamls), P2-P5.
HEAD_STRIDES: tuple[tuple[int, ...], ...] = ((8, 16, 32), (8, 16, 32, 64), (4, 8, 16, 32))
# YOLOv5 has three anchor boxes per grid cell.
YOLOV5_ANCHORS_PER_CELL: int = 3
# Tasks whose first output holds person boxes (a pose head's one class is the person).
READ_TASKS: tuple[str, ...] = ("detect", "pose")
LayoutKind = Literal["anchors", "anchors-transposed", "yolov5", "end-to-end"]


@dataclass(frozen=True)
class Letterbox:
    """How an image was letterboxed, as Ultralytics' ``LetterBox`` and ``scale_boxes`` compute it.

    Attributes:
        width, height: the original image's size in px.
        size: the square side S.
        new_width, new_height: the resized image inside the square (each at least 1 px).
        left, top: padding in px on the left and top (an odd pixel of padding goes right / below).
    """

    width: int
    height: int
    size: int
    new_width: int
    new_height: int
    left: int
    top: int

    @classmethod
    def of(cls, width: int, height: int, size: int) -> "Letterbox":
        """Ultralytics' ``LetterBox(new_shape=S, auto=False, scaleup=True, center=True)`` geometry."""
        ratio = min(size / height, size / width)
        # Python's round (half to even) as Ultralytics; thin images keep at least 1 px.
        new_width, new_height = max(round(width * ratio), 1), max(round(height * ratio), 1)
        # The half-pixel split: round(pad / 2 - 0.1) before, the rest after.
        left, top = round((size - new_width) / 2 - 0.1), round((size - new_height) / 2 - 0.1)
        return cls(width, height, size, new_width, new_height, left, top)

    def to_image(self, corners: np.ndarray) -> np.ndarray:
        """Ultralytics' ``scale_boxes`` then ``clip_boxes``: float32 [N, 4] (x1, y1, x2, y2) in
        letterbox px -> image px, clipped to the image. The gain is per axis (the resized side
        over the original side), in float32 as Ultralytics computes it."""
        out = np.array(corners, dtype=np.float32, copy=True).reshape(-1, 4)
        gain_x = np.float32(self.new_width / self.width)
        gain_y = np.float32(self.new_height / self.height)
        out[:, [0, 2]] = (out[:, [0, 2]] - np.float32(self.left)) / gain_x
        out[:, [1, 3]] = (out[:, [1, 3]] - np.float32(self.top)) / gain_y
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.height)
        return out


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Ultralytics' ``LetterBox`` for predict: resize (bilinear) to fit S x S, pad grey.

    Args:
        image: uint8 [H, W, 3] (any channel order; it is kept), any size down to 1 x 1.
        size: the square side S.

    Returns:
        the uint8 [S, S, 3] letterboxed image (:data:`PAD_VALUE` padding) and its geometry.
    """
    import cv2

    height, width = image.shape[:2]
    geometry = Letterbox.of(width, height, size)
    if (width, height) != (geometry.new_width, geometry.new_height):
        image = cv2.resize(image, (geometry.new_width, geometry.new_height), interpolation=cv2.INTER_LINEAR)
    padded = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    top, left = geometry.top, geometry.left
    padded[top : top + geometry.new_height, left : left + geometry.new_width] = image.reshape(
        geometry.new_height, geometry.new_width, 3
    )
    return padded, geometry


@dataclass(frozen=True)
class Layout:
    """How a detector's first output is laid out (:func:`read_layout`).

    Attributes:
        kind: "anchors" [1, 4 + C + K, A], "anchors-transposed" [1, A, 4 + C + K], "yolov5"
            [1, 3A, 5 + C] or "end-to-end" [1, N, 6 + K].
        classes: C, the number of class scores (end-to-end: the class is one column).
        extra: K, channels after the classes (a pose head's keypoints), ignored.
        task: "detect" or "pose".
    """

    kind: LayoutKind
    classes: int
    extra: int = 0
    task: str = "detect"


@dataclass(frozen=True)
class ExportInfo:
    """What an Ultralytics export's metadata says (each field None where it says nothing)."""

    names: dict[int, str] | None = None
    task: str | None = None
    end_to_end: bool | None = None
    keypoints: int | None = None

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ExportInfo":
        """From ONNX metadata_props as Ultralytics writes them (Python literals as text)."""

        def literal(key: str) -> Any:
            try:
                return ast.literal_eval(props[key]) if key in props else None
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None

        names = literal("names")
        args = literal("args")
        kpt_shape = literal("kpt_shape")
        end2end = literal("end2end")
        nms_export = isinstance(args, dict) and args.get("nms") is True
        keypoints = None
        if isinstance(kpt_shape, (list, tuple)) and all(isinstance(v, int) for v in kpt_shape):
            keypoints = math.prod(kpt_shape)
        return cls(
            names=names if isinstance(names, dict) and names else None,
            task=props.get("task"),
            end_to_end=(end2end is True or nms_export) if (end2end is not None or args is not None) else None,
            keypoints=keypoints,
        )


def anchor_counts(size: int) -> list[int]:
    """The anchor counts A an S px input gives in Ultralytics' heads (:data:`HEAD_STRIDES`):
    one anchor per grid cell, each grid ``ceil`` halving the input per stride 2."""
    counts = []
    for strides in HEAD_STRIDES:
        total = 0
        for stride in strides:
            side = size
            for _ in range(int(math.log2(stride))):
                side = -(-side // 2)
            total += side * side
        counts.append(total)
    return counts


def _dims(shape: Any) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else "?" for d in shape) + "]"


# Over 80 lines only through the refusals, each one line naming what was seen.
def read_layout(
    shapes: list[tuple[Any, ...]], size: int, info: ExportInfo = ExportInfo(), *, where: str = "detector"
) -> Layout:
    """The layout of a detector's outputs, from their shapes, the input side S and the metadata.

    Args:
        shapes: every output's shape (ints; anything else is a dynamic dimension).
        size: the input side S.
        info: the export's metadata (:meth:`ExportInfo.from_props`); none for a graph without it.
        where: how errors name the detector.

    Raises:
        InputError: a segmentation, classification or oriented-box model, or a shape that is no
            layout of a detector for an S px input (the message names the shape seen).
    """
    first = tuple(shapes[0]) if shapes else ()
    seen = f"output0 {_dims(first)}" + "".join(f", output{i} {_dims(s)}" for i, s in enumerate(shapes[1:], 1))
    task = info.task
    if task == "segment" or any(len(s) == 4 for s in shapes[1:]):
        raise InputError(
            f"{where}: a segmentation head ({seen}: mask coefficients and prototypes); fpdctl reads "
            "detection and pose exports (yolo export of a -det or -pose model)"
        )
    if task is not None and task not in READ_TASKS:
        raise InputError(f"{where}: an Ultralytics '{task}' model ({seen}); fpdctl reads detection and pose exports")
    if len(first) != 3 or (isinstance(first[0], int) and first[0] != 1):
        raise InputError(f"{where}: {seen} is no detector output (expected 3 dimensions, batch 1)")
    rows, cols = first[1], first[2]
    anchors = anchor_counts(size)
    names = len(info.names) if info.names else None
    # Without metadata a 56-channel head is read as YOLOv8-pose's (4 box + 1 score + 17 x 3).
    pose = task == "pose" or (task is None and names is None and 56 in (rows, cols))
    extra = (info.keypoints or 51) if pose else 0

    def head(channels: Any, kind: LayoutKind, base: int) -> Layout:
        classes = names if names is not None else (1 if pose else (channels - base if isinstance(channels, int) else 0))
        if not isinstance(channels, int) or classes < 1 or channels != base + classes + extra:
            want = f"{base} + C{' + ' + str(extra) if extra else ''}" + (f" with C = {names}" if names else "")
            raise InputError(f"{where}: {seen} read as {kind} has {channels} channels, not {want}")
        return Layout(kind, classes, extra, "pose" if pose else "detect")

    if info.end_to_end:
        if cols != 6 + extra:
            raise InputError(f"{where}: an end-to-end export whose {seen} is not [1, N, {6 + extra}]")
        return Layout("end-to-end", names or 1, extra, "pose" if pose else "detect")
    if cols in anchors:
        return head(rows, "anchors", 4)
    if rows in anchors:
        return head(cols, "anchors-transposed", 4)
    if rows in [YOLOV5_ANCHORS_PER_CELL * a for a in anchors]:
        if pose:
            raise InputError(f"{where}: {seen} looks like a YOLOv5 head with keypoints; fpdctl reads YOLOv5 detection")
        return head(cols, "yolov5", 5)
    if cols == 6 + extra and isinstance(rows, int) and info.end_to_end is None:
        return Layout("end-to-end", names or 1, extra, "pose" if pose else "detect")
    raise InputError(
        f"{where}: {seen} is no Ultralytics detector layout for a {size} px input (expected [1, 4 + C, A] or "
        f"[1, A, 4 + C] with A = {anchors[0]}, YOLOv5 [1, {YOLOV5_ANCHORS_PER_CELL * anchors[0]}, 5 + C], "
        "or end-to-end [1, N, 6])"
    )


def decode(
    output: np.ndarray,
    layout: Layout,
    *,
    score: float = DEFAULT_DET_SCORE,
    iou: float = DEFAULT_DET_IOU,
) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes in letterbox px from a detector's first output, as Ultralytics'
    ``non_max_suppression(classes=[0])`` keeps them.

    Args:
        output: float [1, ...] in ``layout``.
        layout: from :func:`read_layout`.
        score: keep persons whose score is above this; iou: the NMS IoU threshold.

    Returns:
        corners: float32 [K, 4] ``(x1, y1, x2, y2)`` in letterbox px; scores: float32 [K]; best
        score first (end-to-end: in the graph's order).
    """
    pred = np.asarray(output, dtype=np.float32)[0]
    if layout.kind == "end-to-end":
        keep = (pred[:, 4] > score) & (pred[:, 5] == PERSON_CLASS)
        rows = pred[keep][:MAX_DETECTIONS]
        return np.ascontiguousarray(rows[:, :4]), rows[:, 4].copy()
    if layout.kind == "anchors":
        pred = pred.T
    classes = pred[:, 4 : 4 + layout.classes]
    if layout.kind == "yolov5":
        classes = pred[:, 5 : 5 + layout.classes] * pred[:, 4:5]
    best = classes.argmax(axis=1)
    person = classes[:, PERSON_CLASS]
    keep = np.flatnonzero((best == PERSON_CLASS) & (person > score))
    if layout.kind == "yolov5":
        keep = keep[pred[keep, 4] > score]  # YOLOv5's candidates: objectness above the threshold
    if keep.size > MAX_NMS:
        keep = keep[np.argsort(-person[keep], kind="stable")[:MAX_NMS]]
    xy, half = pred[keep, :2], pred[keep, 2:4] / np.float32(2)
    corners = np.concatenate([xy - half, xy + half], axis=1)
    chosen = iou_nms(corners, person[keep], iou)[:MAX_DETECTIONS]
    return corners[chosen], person[keep][chosen]


class Detector:
    """An Ultralytics YOLO ONNX export that finds persons in images (:func:`read_layout` lists the
    layouts read), run on a row of the backend table.

    Args:
        path: the .onnx file.
        backend: "auto" or "onnxruntime" (ONNX Runtime), "openvino", or a row name: an OpenVINO
            row (``ov``, ``ov-bf16``, ``ov-int8``) runs the detector on OpenVINO at fp32, any
            other on ONNX Runtime (so a pose model's backend can be passed on as it is).
        device: "auto" (CUDA where ONNX Runtime has it, else the CPU), "cpu" or "cuda[:N]".
        score: the person score threshold; iou: the NMS IoU threshold.
        threads: intra-op threads.

    Attributes:
        runtime: the runtime it runs on ("onnxruntime" or "openvino"); backend: its table row;
        device: where it runs; size: the input side S; layout: the output's layout;
        dropped: boxes dropped so far for having no area once clipped to the image.

    Raises:
        InputError: a missing or unreadable file, an input that is not [1, 3, S, S] float32 or
            float16, or an output in no layout fpdctl reads.
        UsageError: a threshold outside [0, 1], an unknown backend, or a runtime that is not
            installed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        backend: str = "auto",
        device: str = "auto",
        score: float = DEFAULT_DET_SCORE,
        iou: float = DEFAULT_DET_IOU,
        threads: int | None = None,
    ) -> None:
        from fpdctl.utils.io import require_file

        check_thresholds(score, iou, names=("score", "iou"))
        self.path = require_file(path, "detector")
        self.score, self.iou = score, iou
        where = f"detector {self.path}"
        signature = _read_signature(self.path, where)
        name, dtype, shape = signature.input
        square = (
            len(shape) == 4
            and (shape[0] == 1 or not isinstance(shape[0], int))
            and shape[1] == 3
            and isinstance(shape[2], int)
            and shape[2] > 0
            and shape[2] == shape[3]
        )
        if len(shape) == 4 and not all(isinstance(d, int) for d in shape[2:]):
            raise InputError(
                f"{where}: input '{name}' {_dims(shape)} has no fixed size (a dynamic=True export, which "
                "Ultralytics letterboxes to a stride-multiple rectangle); export it with dynamic=False and an imgsz"
            )
        if signature.inputs != 1 or not square:
            raise InputError(
                f"{where}: input '{name}' must be [1, 3, S, S] with a fixed S (Ultralytics YOLO ONNX export), "
                f"got {_dims(shape)}" + (f" and {signature.inputs - 1} more input(s)" if signature.inputs > 1 else "")
            )
        if dtype not in (np.float32, np.float16):
            raise InputError(
                f"{where}: input '{name}' is {np.dtype(dtype).name}; a YOLO export takes float32 or float16"
            )
        self.size: int = int(shape[2])
        self.input_dtype = np.dtype(dtype)
        self.info = ExportInfo.from_props(signature.props)
        self.layout = read_layout(signature.outputs, self.size, self.info, where=where)
        self.backend = detector_backend(backend)
        self.runtime: str = self.backend.runtime
        from fpdctl.deploy.placement import run_device

        self.device = run_device(device, self.runtime)  # the library's one device rule
        self.runner = _open_runner(self.path, self.backend, self.device, threads, where)
        self.dropped = 0

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """uint8 BGR [H, W, 3] -> [1, 3, S, S] RGB in 0..1 (the input's float type), and the geometry.

        Raises:
            UsageError: ``image`` is not a uint8 [H, W, 3] array with H, W >= 1.
        """
        shape = getattr(image, "shape", None)
        if getattr(image, "dtype", None) != np.uint8 or shape is None or len(shape) != 3 or shape[2] != 3 or 0 in shape:
            raise UsageError(
                f"`image` must be a uint8 [H, W, 3] BGR array, got {getattr(image, 'dtype', type(image).__name__)} "
                f"{list(shape) if shape is not None else ''}".rstrip()
            )
        boxed, geometry = letterbox(image, self.size)
        tensor = boxed[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(tensor, dtype=self.input_dtype), geometry

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ultralytics' person boxes for a BGR image: float32 [K, 4] ``(x1, y1, x2, y2)`` in image
        px, clipped to the image (boxes of no area included), and float32 scores [K].

        Raises:
            InputError: the output is not in the layout read at load time, or holds NaN / inf.
        """
        where = f"detector {self.path}"
        tensor, geometry = self.prepare(image)
        outputs = [np.asarray(o) for o in self.runner.forward(tensor)]
        layout = read_layout([o.shape for o in outputs], self.size, self.info, where=where)
        if layout != self.layout:
            raise InputError(f"{where}: output0 {_dims(outputs[0].shape)} at run time is not its declared layout")
        output = outputs[0].astype(np.float32)
        bad = int(np.size(output) - np.count_nonzero(np.isfinite(output)))
        if bad:
            raise InputError(f"{where}: its output holds {bad} NaN or infinite value(s); the file is broken")
        corners, scores = decode(output, layout, score=self.score, iou=self.iou)
        return geometry.to_image(corners), scores.astype(np.float32)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes (float32 [K, 4] ``x, y, w, h`` image px, each of positive area) and scores
        [K] in a BGR image, best first; boxes of no area once clipped are dropped (:attr:`dropped`)."""
        corners, scores = self.detect(image)
        sized = (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
        self.dropped += int(np.count_nonzero(~sized))
        corners, scores = corners[sized], scores[sized]
        boxes = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
        return boxes.astype(np.float32), scores


@dataclass(frozen=True)
class _Signature:
    inputs: int
    input: tuple[str, Any, tuple[Any, ...]]
    outputs: list[tuple[Any, ...]]
    props: dict[str, str]


def _read_signature(path: os.PathLike[str], where: str) -> _Signature:
    """The graph's declared input, output shapes and metadata, read with onnx (no runtime)."""
    import onnx
    from onnx import helper

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, onnx its own: all mean "not ONNX"
        lines = str(exc).strip().splitlines()
        raise InputError(f"{where} is not a readable ONNX file: {lines[0][:200] if lines else type(exc).__name__}")
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs or not graph.output:
        raise InputError(f"{where}: the graph has no input or no output")

    def shape(value: Any) -> tuple[Any, ...]:
        dims = value.type.tensor_type.shape.dim
        return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)

    first = inputs[0]
    elem = first.type.tensor_type.elem_type
    try:
        dtype = helper.tensor_dtype_to_np_dtype(elem)
    except (KeyError, ValueError, TypeError):
        dtype = np.dtype(object)
    props = {p.key: p.value for p in model.metadata_props}
    return _Signature(len(inputs), (first.name, dtype, shape(first)), [shape(o) for o in graph.output], props)


def detector_backend(backend: str = "auto") -> "Backend":
    """The table row the detector runs on for a ``backend`` value: OpenVINO's fp32 row ``ov``
    when the value names OpenVINO ("openvino", or only OpenVINO rows), else ONNX Runtime's ``ort``.

    Raises:
        UsageError: an unknown backend name.
    """
    from fpdctl.deploy.backends import BACKEND_GROUPS, get_backend

    names = [n.strip() for n in str(backend).split(",") if n.strip()]
    rows = [get_backend(n) for n in names if n not in BACKEND_GROUPS]
    openvino = names == ["openvino"] or (
        bool(rows) and len(rows) == len(names) and all(r.runtime == "openvino" for r in rows)
    )
    return get_backend("ov" if openvino else "ort")


def _open_runner(path: os.PathLike[str], backend: "Backend", device: str, threads: int | None, where: str) -> Any:
    """The row's Runner over the detector file (the one way fpdctl opens an ONNX graph)."""
    from fpdctl.deploy.backends import RUNTIME_KINDS

    reason = backend.unavailable()
    if reason is not None:
        raise UsageError(f"detector: backend {backend.name} {reason}")
    try:
        return RUNTIME_KINDS[backend.runtime].runner_class()(path, backend, device=device, threads=threads)
    except InputError as exc:
        message = str(exc)
        raise InputError(f"detector: {message}" if str(path) in message else f"{where}: {message}") from exc


def check_thresholds(score: float, iou: float, *, names: tuple[str, str] = ("det_score", "det_iou")) -> None:
    """Raises UsageError unless both thresholds lie in [0, 1] (``names``: the caller's parameters)."""
    for name, value in zip(names, (score, iou)):
        if not (0.0 <= value <= 1.0):  # also refuses NaN
            raise UsageError(f"`{name}` must lie in [0, 1], got {value}", params=name)


__all__ = [
    "DEFAULT_DET_IOU",
    "DEFAULT_DET_SCORE",
    "MAX_DETECTIONS",
    "PAD_VALUE",
    "PERSON_CLASS",
    "Detector",
    "ExportInfo",
    "Layout",
    "Letterbox",
    "anchor_counts",
    "check_thresholds",
    "decode",
    "detector_backend",
    "letterbox",
    "read_layout",
]
