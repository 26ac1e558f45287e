"""Person boxes from an ONNX person detector in Ultralytics' YOLOv8 / YOLO11 export layout.

``yolo export format=onnx`` writes one input and one output:

* ``images`` float32 ``[1, 3, S, S]``: RGB scaled to 0..1, the image letterboxed to S x S the way
  Ultralytics' ``LetterBox`` does it (:func:`letterbox`);
* ``output0`` float32 ``[1, 4 + C, A]``: for each of the A anchors the box centre x, y, width and
  height in letterbox px, then C class scores (sigmoid, no objectness). Class 0 is the person.

Decoding follows Ultralytics' ``non_max_suppression`` with ``classes=[0]``: an anchor is a
person when its best class is class 0 and that score is above the threshold (an anchor whose best
class is another one is dropped even if its person score is high); greedy NMS by IoU; at most
:data:`MAX_DETECTIONS` boxes. The kept boxes are mapped back to image px exactly as Ultralytics'
``scale_boxes`` does (subtract the padding, divide by the scale, clip to the image) and returned
as COCO ``[x, y, w, h]``.

The functions are plain numpy (and OpenCV for the resize); :class:`PersonDetector` runs the
graph with ONNX Runtime (the same session options as every fpdctl ORT runner).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpdctl.errors import InputError, UsageError

# Ultralytics' defaults for `predict`: confidence threshold, NMS IoU threshold, max boxes kept.
DEFAULT_DET_SCORE: float = 0.25
DEFAULT_DET_IOU: float = 0.7
# Where the detector runs: ONNX Runtime, or OpenVINO when the pose model runs there.
DETECTOR_RUNTIMES: tuple[str, ...] = ("onnxruntime", "openvino")
MAX_DETECTIONS: int = 300
# The COCO / Ultralytics class index of "person".
PERSON_CLASS: int = 0
# Ultralytics' letterbox padding colour (grey, all three channels).
PAD_VALUE: int = 114
INPUT_NAME = "images"
OUTPUT_NAME = "output0"


@dataclass(frozen=True)
class Letterbox:
    """How an image was letterboxed: ``letterbox_px = image_px * ratio + (left, top)``.

    Attributes:
        ratio: the scale r = min(S / h, S / w).
        left, top: padding in px on the left and top.
        size: the square side S.
    """

    ratio: float
    left: int
    top: int
    size: int


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Ultralytics' ``LetterBox(new_shape=(size, size), auto=False, scaleup=True, center=True)``.

    Args:
        image: uint8 [H, W, 3] (any channel order; it is kept).
        size: the square side S.

    Returns:
        the uint8 [S, S, 3] letterboxed image (grey :data:`PAD_VALUE` padding) and its geometry.
    """
    import cv2

    height, width = image.shape[:2]
    ratio = min(size / height, size / width)
    new_w, new_h = int(round(width * ratio)), int(round(height * ratio))
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    if (width, height) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    # Ultralytics' +-0.1 puts an odd pixel of padding on the right / bottom.
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return padded, Letterbox(ratio, left, top, size)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one ``[4]`` box with ``[N, 4]`` boxes, all ``(x1, y1, x2, y2)``."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression (torchvision's ``nms``): indices kept, best score first.

    Args:
        boxes: float [N, 4] ``(x1, y1, x2, y2)``; scores: float [N].
        iou: a box is suppressed when its IoU with a kept, higher-scoring box is above this.
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou]
    return np.asarray(keep, dtype=np.int64)


def decode_persons(
    output: np.ndarray,
    geometry: Letterbox,
    width: int,
    height: int,
    *,
    score: float = DEFAULT_DET_SCORE,
    iou: float = DEFAULT_DET_IOU,
) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes in image px from a YOLOv8 / YOLO11 output.

    Args:
        output: float [1, 4 + C, A] (or [4 + C, A]): cx, cy, w, h in letterbox px, C class scores.
        geometry: the letterbox the input was made with.
        width, height: the original image's size in px.
        score: keep persons whose score is above this; iou: the NMS IoU threshold.

    Returns:
        boxes: float32 [K, 4] COCO ``(x, y, w, h)`` in image px, clipped to the image;
        scores: float32 [K]; best score first.
    """
    pred = np.asarray(output, dtype=np.float32)
    pred = pred[0] if pred.ndim == 3 else pred
    classes = pred[4:]
    best = classes.argmax(axis=0)
    person = classes[PERSON_CLASS]
    keep = (best == PERSON_CLASS) & (person > score)
    cx, cy, w, h = pred[:4, keep]
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    chosen = nms(corners, person[keep], iou)[:MAX_DETECTIONS]
    corners, scores = corners[chosen], person[keep][chosen]
    # Ultralytics' scale_boxes: remove the padding, undo the scale, clip to the image.
    corners[:, [0, 2]] = np.clip((corners[:, [0, 2]] - geometry.left) / geometry.ratio, 0, width)
    corners[:, [1, 3]] = np.clip((corners[:, [1, 3]] - geometry.top) / geometry.ratio, 0, height)
    boxes = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
    return boxes.astype(np.float32), scores.astype(np.float32)


def _dims(shape: Any) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else str(d or "?") for d in shape) + "]"


class PersonDetector:
    """An Ultralytics YOLO ONNX export that finds persons in images, run with ONNX Runtime or,
    where the pose model runs on OpenVINO, with OpenVINO (fp32). The graph's layout is read once
    through ONNX Runtime either way.

    Args:
        path: the .onnx file.
        score: the person score threshold; iou: the NMS IoU threshold.
        device: "cpu" or "cuda[:N]" (the ONNX Runtime provider).
        threads: intra-op threads.
        runtime: "onnxruntime" or "openvino" (:data:`DETECTOR_RUNTIMES`).

    Raises:
        InputError: a missing file, one ONNX Runtime cannot load, or a graph whose input is not
            ``[1, 3, S, S]`` or whose output is not ``[1, 4 + C, A]``.
        UsageError: a threshold outside [0, 1].
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        score: float = DEFAULT_DET_SCORE,
        iou: float = DEFAULT_DET_IOU,
        device: str = "cpu",
        threads: int | None = None,
        runtime: str = "onnxruntime",
    ) -> None:
        check_thresholds(score, iou)
        if runtime not in DETECTOR_RUNTIMES:
            raise UsageError(f"detector runtime must be one of {', '.join(DETECTOR_RUNTIMES)}, got {runtime!r}")
        import onnxruntime as ort

        from fpdctl.deploy.runtime import ort_providers, session_options
        from fpdctl.utils.io import require_file

        self.path = require_file(path, "detector")
        self.score, self.iou = score, iou
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                session_options(threads),
                providers=ort_providers(device),
            )
        except UsageError:
            raise
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf classes
            lines = str(exc).strip().splitlines()
            raise InputError(
                f"ONNX Runtime cannot load detector {self.path}: {lines[0][:300] if lines else exc}"
            ) from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(inputs[0].shape)
        batch_ok = len(shape) == 4 and (shape[0] == 1 or not isinstance(shape[0], int))
        square = (
            len(inputs) == 1
            and batch_ok
            and shape[1] == 3
            and isinstance(shape[2], int)
            and shape[2] > 0
            and shape[2] == shape[3]
        )
        if not square:
            raise InputError(
                f"detector {self.path}: input '{inputs[0].name}' must be [1, 3, S, S] with a fixed S "
                f"(Ultralytics YOLO ONNX export), got {_dims(shape)}"
            )
        self.input_name = inputs[0].name
        self.size: int = int(shape[2])
        out_shape = list(outputs[0].shape)
        channels = out_shape[1] if len(out_shape) == 3 else None
        if (
            len(outputs) < 1
            or len(out_shape) != 3
            or (isinstance(channels, int) and channels < 5)
            or (isinstance(out_shape[0], int) and out_shape[0] != 1)
        ):
            raise InputError(
                f"detector {self.path}: output '{outputs[0].name}' must be [1, 4 + C, A] "
                f"(box cx, cy, w, h and C class scores per anchor), got {_dims(out_shape)}"
            )
        self.output_name = outputs[0].name
        self.runtime = runtime
        self._compiled: Any = None
        if runtime == "openvino":
            from fpdctl.deploy.openvino import compile_onnx

            self._compiled = compile_onnx(self.path, threads)

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """uint8 BGR [H, W, 3] -> float32 [1, 3, S, S] RGB in 0..1, and the letterbox geometry."""
        boxed, geometry = letterbox(image, self.size)
        tensor = boxed[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(tensor), geometry

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes (float32 [K, 4] ``x, y, w, h`` image px) and scores [K] in a BGR image.

        Raises:
            InputError: the graph's output at run time is not [1, 4 + C, A].
        """
        tensor, geometry = self.prepare(image)
        if self._compiled is not None:
            output = np.asarray(self._compiled([tensor])[self._compiled.output(self.output_name)])
        else:
            (output,) = self.session.run([self.output_name], {self.input_name: tensor})
        if output.ndim != 3 or output.shape[0] != 1 or output.shape[1] < 5:
            raise InputError(
                f"detector {self.path}: output '{self.output_name}' must be [1, 4 + C, A], got {_dims(output.shape)}"
            )
        height, width = image.shape[:2]
        return decode_persons(output, geometry, width, height, score=self.score, iou=self.iou)


def detector_runtime(backend: str) -> str:
    """Where the detector runs for predict's ``--backend``: OpenVINO when the pose model's rows
    are OpenVINO's (``ov``, ``ov-bf16``, ``ov-int8``, ``openvino``), else ONNX Runtime."""
    from fpdctl.deploy.backends import BACKENDS

    names = [n.strip() for n in str(backend).split(",") if n.strip()]
    by_name = {row.name: row for row in BACKENDS}
    rows = [by_name[n] for n in names if n in by_name]
    if names == ["openvino"] or (rows and len(rows) == len(names) and all(r.runtime == "openvino" for r in rows)):
        return "openvino"
    return "onnxruntime"


def check_thresholds(score: float, iou: float) -> None:
    """Raises UsageError unless both thresholds lie in [0, 1]."""
    for name, value in (("det_score", score), ("det_iou", iou)):
        if not (0.0 <= value <= 1.0):  # also refuses NaN
            raise UsageError(f"`{name}` must lie in [0, 1], got {value}", params=name)


__all__ = [
    "DEFAULT_DET_IOU",
    "DEFAULT_DET_SCORE",
    "Letterbox",
    "MAX_DETECTIONS",
    "PAD_VALUE",
    "PERSON_CLASS",
    "PersonDetector",
    "box_iou",
    "check_thresholds",
    "decode_persons",
    "letterbox",
    "nms",
]
