"""Top-down pose inference, one person per crop: the one pipeline of evaluate, predict, bench and
export verification.

The stages, each a function so that a caller can time or batch them apart (``fpdctl bench
--end-to-end`` does):

1. :func:`person_box` and :func:`crop`: the person's box -> a square crop of the network's input
   side (``crop_affine`` + ``cv2.warpAffine``, bilinear, black outside the image) and its affine
   (image px -> input px).
2. :func:`normalise`: uint8 BGR crops -> float32 ``[N, 3, S, S]`` in the model's OWN
   :class:`~fpdctl.models.convention.InputConvention` (channel order, pixel scale, mean, std),
   never a module default.
3. run: any runner, a torch module or a :class:`~fpdctl.deploy.runtime.Runner` (numpy in, numpy
   out); :func:`last_stack` takes the final stack of whatever it returns.
4. :func:`to_image`: decode the heatmaps with :class:`~fpdctl.codec.HeatmapCodec` (input px) and
   map the points back to image px through the inverse of each crop's affine.

:func:`predict_crops` chains 2 to 4. Evaluation (:mod:`fpdctl.evaluation`) takes its crops,
already cropped and normalised (NATIVE), from the dataset, converts them to the model's
convention (:func:`~fpdctl.models.input_adapter.convert_tensor`), runs 3 with the flip test, then 4.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fpdctl.boxes import Box, box_center_scale, check_box, image_center_scale
from fpdctl.codec import HeatmapCodec
from fpdctl.data.transforms import crop_affine, invert_affine, transform_points
from fpdctl.errors import DataError, UsageError
from fpdctl.models.convention import BGR, InputConvention

# A runner in the numpy sense: float32 [N, 3, S, S] normalised images -> float32 heatmaps
# ([N, J, h, w], or [N, S, J, h, w] with every stack). deploy.runtime.Runner is one.
ArrayRunner = Callable[[np.ndarray], np.ndarray]
# Persons per forward pass of evaluation and prediction (one chunk of crops): memory stays
# bounded by it however many persons an image or a dataset holds.
INFERENCE_BATCH_SIZE: int = 32


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` if it is a whole number of at least 1, else a one-line UsageError."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"`batch_size` must be a whole number of at least 1, got {batch_size!r}")
    return batch_size


def person_box(width: int, height: int, bbox: Box | None) -> tuple[np.ndarray, float, Box]:
    """The crop centre, scale (units of 200 px) and the (x, y, w, h) box it came from.

    With a box ``(x, y, w, h)``, the crop of every person box (:mod:`fpdctl.boxes`): the box is
    checked and clipped to the image (:func:`~fpdctl.boxes.check_box`), then squared and enlarged
    by the datasets' 1.25 margin around its centre (:func:`~fpdctl.boxes.box_center_scale`), as
    evaluation crops a detector's box. Without one, the whole image is one person
    (:func:`~fpdctl.boxes.image_center_scale`).

    Raises:
        DataError: a box that is not finite, smaller than 1 px, or has no area in the image.
    """
    if bbox is None:
        center, scale = image_center_scale(width, height)
        return center, scale, (0.0, 0.0, float(width), float(height))
    check = check_box(bbox, width, height)
    if check.clipped is None:
        raise DataError(f"bbox {list(bbox)} refused: {check.reason} (a {width} x {height} image)")
    center, scale = box_center_scale(check.clipped)
    return center, scale, tuple(float(v) for v in bbox)  # type: ignore[return-value]


def crop(image: np.ndarray, center: np.ndarray, scale: float, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The square crop around one person, as the validation pipeline crops a dataset sample.

    Args:
        image: uint8 [H, W, 3] BGR (OpenCV's layout).
        center: crop centre in image px; scale: crop side / 200 px.
        input_size: the network's input side S.

    Returns:
        patch: uint8 [S, S, 3] BGR; affine: float32 [2, 3], image px -> input px.
    """
    import cv2

    affine = crop_affine(center, scale, 0.0, input_size)
    patch = cv2.warpAffine(
        image,
        affine,
        (input_size, input_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return patch, affine


def normalise(patches: np.ndarray, convention: InputConvention) -> np.ndarray:
    """uint8 BGR crops ``[N, S, S, 3]`` (or one ``[S, S, 3]``) -> the network input
    ``[N, 3, S, S]`` (``[3, S, S]``), float32, in the model's own ``convention``.

    The one place inference turns pixels into network input:
    :meth:`~fpdctl.models.convention.InputConvention.normalize_batch` reading OpenCV's BGR.
    """
    pixels = np.asarray(patches)
    if pixels.ndim == 3:
        return convention.normalize(pixels, source_order=BGR)
    return convention.normalize_batch(pixels, source_order=BGR)


def last_stack(output: Any) -> Any:
    """The final heatmaps ``[N, J, h, w]`` of a model's output (numpy array or torch tensor).

    Args:
        output: ``[N, S, J, h, w]`` (every stack, the hourglass layout), a list or tuple of
            stacks, or ``[N, J, h, w]`` (already the last).

    Raises:
        UsageError: any other shape.
    """
    if isinstance(output, (tuple, list)):
        output = output[-1]
    if output.ndim == 5:
        return output[:, -1]
    if output.ndim == 4:
        return output
    raise UsageError(
        f"the model returned a tensor of shape {tuple(output.shape)}; expected [N, S, J, h, w] or [N, J, h, w] heatmaps"
    )


def to_image(
    heatmaps: Any,
    affines: Sequence[np.ndarray] | np.ndarray,
    input_size: int,
    codec: HeatmapCodec | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode heatmaps and map the keypoints back to the images they were cropped from.

    Args:
        heatmaps: ``[N, J, h, w]`` or ``[N, S, J, h, w]``, numpy or torch (any device).
        affines: N [2, 3] affines, image px -> input px (the crops').
        input_size: the network's input side (the decode's stride is input side / heatmap side).
        codec: the codec to decode with (a dataset's own); None: one for these sizes.

    Returns:
        coords: float32 [N, J, 2] (x, y) in image px; scores: float32 [N, J] heatmap peaks.
    """
    final = last_stack(heatmaps)
    if codec is None:
        codec = HeatmapCodec(input_size, final.shape[-1])
    coords, scores = codec.decode(final)
    inverse = np.stack([invert_affine(a) for a in affines])
    return transform_points(coords, inverse), scores


def predict_crops(
    run: ArrayRunner,
    patches: np.ndarray,
    affines: Sequence[np.ndarray],
    convention: InputConvention,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalise -> run -> last stack -> decode -> image px, for a batch of crops.

    Args:
        run: float32 [N, 3, S, S] -> heatmaps (a :class:`~fpdctl.deploy.runtime.Runner`).
        patches: uint8 [N, S, S, 3] BGR crops from :func:`crop`.
        affines: their N affines.
        convention: the model's own input convention.

    Returns:
        coords: float32 [N, J, 2] in image px; scores: float32 [N, J].
    """
    heatmaps = run(normalise(patches, convention))
    return to_image(heatmaps, affines, int(patches.shape[-2]))


__all__ = [
    "INFERENCE_BATCH_SIZE",
    "ArrayRunner",
    "check_batch_size",
    "crop",
    "last_stack",
    "normalise",
    "person_box",
    "predict_crops",
    "to_image",
]
