"""Pre-processing and decoding inside the exported graph (``fpdctl export --embed-preprocess
--embed-decode``), and the check that the graph then computes what the Python pipeline does.

With both, the deployed file takes the uint8 crop a camera pipeline has (``[N, S, S, 3]``, BGR as
OpenCV reads it unless ``--pixel-order rgb``) and returns keypoints in crop pixels and their
scores: nobody re-implements the model's normalisation or the heatmap decoding. The nodes are
added after the network has been verified and, for int8, quantised (see
:mod:`fpdctl.deploy.onnx_graph`), so only the network is ever in reduced precision.

The check (:func:`check_keypoints`) runs the embedded graph and a reference on the same uint8
crops (random pixels, synthetic validation persons) and compares keypoints: the reference is the
Python pipeline (:func:`fpdctl.pipeline.normalise` -> a heatmap runner -> the codec's decode).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fpdctl.deploy.metadata import HEATMAPS, KEYPOINTS, SCORES, GraphIO
from fpdctl.errors import UsageError
from fpdctl.utils.choices import match_choice

if TYPE_CHECKING:
    import onnx

    from fpdctl.deploy.metadata import OnnxModelInfo
    from fpdctl.deploy.runtime import Runner
    from fpdctl.models.convention import InputConvention
    from fpdctl.models.hourglass import HourglassNet

PIXEL_ORDERS: tuple[str, ...] = ("rgb", "bgr")
# OpenCV's order: what cv2.imread and cv2.VideoCapture give a deployment.
DEFAULT_PIXEL_ORDER = "bgr"
# The parameter names the error messages use, defined once (the CLI shows each as its flag).
FLAG_PREPROCESS = "embed_preprocess"
FLAG_DECODE = "embed_decode"
FLAG_PIXEL_ORDER = "pixel_order"
FLAG_KEEP_HEATMAPS = "keep_heatmaps"
# An embedded graph's keypoint agrees with the reference within this many crop pixels (half a
# pixel: well under the decode's own quarter-heatmap-pixel = one-crop-pixel resolution).
KEYPOINT_TOLERANCE_PX: float = 0.5


@dataclass(frozen=True)
class Embedding:
    """What to put inside the graph besides the network.

    Attributes:
        preprocess: the graph takes uint8 crops ``[N, S, S, 3]`` in ``pixel_order``.
        decode: the graph returns keypoints ``[N, J, 2]`` (crop px) and scores ``[N, J]``.
        pixel_order: "rgb" or "bgr", the channel order of the crops (with ``preprocess``).
        keep_heatmaps: with ``decode``, return the heatmaps too, as a third output.
    """

    preprocess: bool = False
    decode: bool = False
    pixel_order: str = DEFAULT_PIXEL_ORDER
    keep_heatmaps: bool = False

    def __post_init__(self) -> None:
        if self.pixel_order not in PIXEL_ORDERS:
            raise UsageError(
                f"`{FLAG_PIXEL_ORDER}` must be 'rgb' or 'bgr', got '{self.pixel_order}'", params=FLAG_PIXEL_ORDER
            )
        if self.keep_heatmaps and not self.decode:
            raise UsageError(
                f"`{FLAG_KEEP_HEATMAPS}` applies with `{FLAG_DECODE}` (without it the graph returns heatmaps only)",
                params=(FLAG_KEEP_HEATMAPS, FLAG_DECODE),
            )

    def check(self, all_stacks: bool) -> None:
        """Raise UsageError if the embedding does not combine with the export's other options."""
        if self.decode and all_stacks:
            raise UsageError(
                f"`{FLAG_DECODE}` decodes the final stack; it does not combine with `all_stacks`",
                params=(FLAG_DECODE, "all_stacks"),
            )

    @property
    def active(self) -> bool:
        return self.preprocess or self.decode

    @property
    def io(self) -> GraphIO:
        """The graph's inputs and outputs with this embedding (recorded in the metadata)."""
        outputs = (KEYPOINTS, SCORES, HEATMAPS) if self.keep_heatmaps else (KEYPOINTS, SCORES)
        return GraphIO(
            pixel_order=self.pixel_order if self.preprocess else None,
            outputs=outputs if self.decode else (HEATMAPS,),
        )


def parse_embedding(
    preprocess: bool = False,
    decode: bool = False,
    pixel_order: str | None = None,
    keep_heatmaps: bool = False,
    *,
    all_stacks: bool = False,
) -> Embedding:
    """The embedding the export options ask for.

    Raises:
        UsageError: an unknown pixel order, or an option without the flag it refines.
    """
    order = DEFAULT_PIXEL_ORDER
    if pixel_order is not None:
        order = match_choice(pixel_order, PIXEL_ORDERS)
        if order is None:
            raise UsageError(
                f"`{FLAG_PIXEL_ORDER}` must be 'rgb' or 'bgr', got '{pixel_order}'", params=FLAG_PIXEL_ORDER
            )
        if not preprocess:
            raise UsageError(
                f"`{FLAG_PIXEL_ORDER}` applies with `{FLAG_PREPROCESS}` (the order of the uint8 crops the graph takes)",
                params=(FLAG_PIXEL_ORDER, FLAG_PREPROCESS),
            )
    embedding = Embedding(preprocess, decode, order, keep_heatmaps)
    embedding.check(all_stacks)
    return embedding


def embed(model: "onnx.ModelProto", embedding: Embedding, convention: "InputConvention", input_size: int) -> None:
    """Add the pre-processing and decoding ``embedding`` asks for to ``model``, in place."""
    import onnx

    from fpdctl.deploy.onnx_graph import append_decode, prepend_preprocess

    if embedding.preprocess:
        prepend_preprocess(model, convention, embedding.pixel_order)
    if embedding.decode:
        append_decode(model, input_size, keep_heatmaps=embedding.keep_heatmaps)
    onnx.checker.check_model(model)


def verification_crops(input_size: int, random_samples: int, image_samples: int, seed: int = 0) -> np.ndarray:
    """uint8 BGR crops [N, S, S, 3]: random pixels, then synthetic validation persons cropped with
    :func:`fpdctl.pipeline.crop` (the crop ``fpdctl predict`` makes) from their rendered images."""
    from fpdctl.data.registry import build_dataset
    from fpdctl.pipeline import crop

    rng = np.random.default_rng(seed)
    crops = [rng.integers(0, 256, (random_samples, input_size, input_size, 3), dtype=np.uint8)]
    if image_samples > 0:
        dataset = build_dataset("synthetic", "val", input_size=input_size)
        for index in range(min(image_samples, len(dataset))):
            record = dataset.load_record(index)
            crops.append(crop(record.image, record.center, record.scale, input_size)[0][None])
    return np.concatenate(crops)


def pipeline_keypoints(run: Any, crops: np.ndarray, convention: "InputConvention") -> tuple[np.ndarray, np.ndarray]:
    """What the Python pipeline makes of uint8 BGR crops: normalise in ``convention``, ``run``
    (normalised float32 [N, 3, S, S] -> heatmaps), final stack, the codec's decode.

    Returns:
        keypoints float32 [N, J, 2] in crop px, scores float32 [N, J].
    """
    from fpdctl.codec import HeatmapCodec
    from fpdctl.pipeline import last_stack, normalise

    heatmaps = np.asarray(last_stack(run(normalise(crops, convention))), dtype=np.float32)
    return HeatmapCodec(crops.shape[1], heatmaps.shape[-1]).decode(heatmaps)


def embedded_keypoints(
    runner: "Runner", crops: np.ndarray, convention: "InputConvention"
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in crop px [N, J, 2] and scores [N, J] of any export for uint8 BGR crops.

    A graph with embedded pre-processing gets the crops as they are (in its pixel order), one
    without gets them normalised by the Python pipeline in ``convention``; a graph with embedded
    decoding returns the keypoints, one without has its heatmaps decoded by the codec.
    """
    from fpdctl.codec import HeatmapCodec
    from fpdctl.pipeline import normalise

    if runner.io.takes_pixels:
        outputs = runner.run_graph(crops[..., ::-1] if runner.io.pixel_order == "rgb" else crops)
    else:
        outputs = runner.run_graph(normalise(crops, convention))
    if runner.io.decodes:
        return outputs[KEYPOINTS], outputs[SCORES]
    heatmaps = outputs[HEATMAPS]
    return HeatmapCodec(crops.shape[1], heatmaps.shape[-1]).decode(heatmaps)


@dataclass(frozen=True)
class KeypointCheck:
    """An embedded graph's keypoints against a reference on the same uint8 crops.

    Attributes:
        reference: what it was compared with, e.g. "PyTorch fp32 + Python pre/post-processing".
        random_crops, image_crops: crops of random pixels and of synthetic validation persons.
        joints_compared: (crop, joint) pairs.
        within_tolerance: share of pairs whose keypoints are within :data:`KEYPOINT_TOLERANCE_PX`.
        max_error_px, mean_error_px: keypoint distance (Euclidean, crop px).
        max_score_error: largest |score difference|.
        min_share: the share required, or None (reported only).
    """

    reference: str
    random_crops: int
    image_crops: int
    joints_compared: int
    within_tolerance: float
    max_error_px: float
    mean_error_px: float
    max_score_error: float
    min_share: float | None

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_error_px)) and (
            self.min_share is None or self.within_tolerance >= self.min_share
        )

    def failure_message(self) -> str:
        """One line saying why the check failed (empty when it passed)."""
        if self.passed:
            return ""
        return (
            f"the embedded graph's keypoints disagree with {self.reference}: "
            f"{100 * self.within_tolerance:.2f}% of {self.joints_compared} joints within "
            f"{KEYPOINT_TOLERANCE_PX} px (< {100 * (self.min_share or 0):.2f}%), max error {self.max_error_px:.3g} px"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tolerance_px"] = KEYPOINT_TOLERANCE_PX
        out["passed"] = self.passed
        return out


def check_keypoints(
    embedded: "Runner",
    reference: Any,
    convention: "InputConvention",
    crops: np.ndarray,
    *,
    random_crops: int,
    reference_label: str,
    min_share: float | None,
) -> KeypointCheck:
    """Compare an embedded graph (pixels in, keypoints out) with the Python pipeline around
    ``reference`` (a heatmap runner: normalised float32 [N, 3, S, S] -> heatmaps) on ``crops``.

    Args:
        embedded: a runner over the embedded graph.
        reference: the heatmap runner the pipeline runs.
        convention: the model's input convention (the pipeline's normalisation).
        crops: uint8 BGR [N, S, S, 3]; the first ``random_crops`` are random pixels.
        reference_label: how the report names the reference.
        min_share: the share of joints within tolerance required, or None.
    """
    expected, expected_scores = pipeline_keypoints(reference, crops, convention)
    keypoints, scores = embedded_keypoints(embedded, crops, convention)
    errors = np.linalg.norm(keypoints.astype(np.float64) - expected, axis=-1)
    finite = bool(np.isfinite(errors).all())
    return KeypointCheck(
        reference=reference_label,
        random_crops=int(random_crops),
        image_crops=int(crops.shape[0] - random_crops),
        joints_compared=int(errors.size),
        within_tolerance=float((errors <= KEYPOINT_TOLERANCE_PX).mean()),
        max_error_px=float(errors.max()) if finite else float("inf"),
        mean_error_px=float(errors.mean()) if finite else float("inf"),
        max_score_error=float(np.abs(scores.astype(np.float64) - expected_scores).max()),
        min_share=min_share,
    )


def embed_verified(
    model_bytes: bytes,
    info: "OnnxModelInfo",
    embedding: Embedding,
    net: "HourglassNet",
    *,
    verify: bool,
    random_samples: int,
    image_samples: int,
    threads: int | None = None,
    say: Any = None,
) -> tuple[bytes, tuple[KeypointCheck, ...]]:
    """The exported network with ``embedding`` added, its metadata ``info``, checked.

    Checks, on the same uint8 crops: the embedded graph against the Python pipeline around eager
    fp32 PyTorch (the gate for an fp32 export; reported for fp16 / int8, whose network differs
    from fp32 by design), and, for fp16 / int8, against the Python pipeline around the same
    network without the embedded nodes (the gate: it isolates what embedding added).

    Args:
        model_bytes: the verified network-only export (any precision).
        info: the final file's metadata (``io`` saying what the graph now takes and returns).
        embedding: what to add.
        net: the PyTorch model it was exported from.
        verify: run the checks.
        random_samples, image_samples: crops of random pixels and of synthetic persons.
        threads: ONNX Runtime threads for the checks.
        say: called with a line before the checks.

    Raises:
        VerificationError: a gate failed.
    """
    import onnx

    from fpdctl.deploy.backends import FP32_MIN_AGREEMENT, export_backend, get_backend
    from fpdctl.deploy.metadata import set_metadata
    from fpdctl.deploy.runtime import OrtRunner, TorchRunner
    from fpdctl.errors import VerificationError

    model = onnx.load_from_string(model_bytes)
    embed(model, embedding, info.input_convention, info.input_size)
    set_metadata(model, info)
    data = model.SerializeToString()
    if not verify or random_samples + image_samples == 0:
        return data, ()
    if say is not None:
        say("checking the embedded pre/post-processing against the Python pipeline")
    precision = info.precision
    crops = verification_crops(info.input_size, random_samples, image_samples)
    embedded = OrtRunner(data, export_backend(precision), threads=threads)
    references = [
        (
            TorchRunner(net, get_backend("torch"), "cpu"),
            "PyTorch fp32 + Python pre/post-processing",
            FP32_MIN_AGREEMENT if precision == "fp32" else None,
        )
    ]
    if precision != "fp32":
        references.append(
            (
                OrtRunner(model_bytes, export_backend(precision), threads=threads),
                f"the {precision} network + Python pre/post-processing",
                FP32_MIN_AGREEMENT,
            )
        )
    checks = tuple(
        check_keypoints(
            embedded,
            run,
            info.input_convention,
            crops,
            random_crops=random_samples,
            reference_label=label,
            min_share=gate,
        )
        for run, label, gate in references
    )
    failed = next((c for c in checks if not c.passed), None)
    if failed is not None:
        raise VerificationError(f"{failed.failure_message()}; nothing was written")
    return data, checks


__all__ = [
    "DEFAULT_PIXEL_ORDER",
    "FLAG_DECODE",
    "FLAG_KEEP_HEATMAPS",
    "FLAG_PIXEL_ORDER",
    "FLAG_PREPROCESS",
    "KEYPOINT_TOLERANCE_PX",
    "PIXEL_ORDERS",
    "Embedding",
    "KeypointCheck",
    "check_keypoints",
    "embed",
    "embed_verified",
    "embedded_keypoints",
    "parse_embedding",
    "pipeline_keypoints",
    "verification_crops",
]
