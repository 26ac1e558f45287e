"""A model's input convention: how pixels become the tensor it was trained on.

A network only works on inputs prepared the way it was trained, and the projects whose
checkpoints users bring prepare them differently (facts read from each project's own code; see
``../shared/notes/input-conventions.md``):

=====================  =======  ========  ==================================  ====================
source                 order    scale     mean subtracted                     divided by
=====================  =======  ========  ==================================  ====================
fpdctl (native)        RGB      x / 255   ImageNet (0.485, 0.456, 0.406)      ImageNet std
pytorch-pose, MPII     RGB      x / 255   its ``data/mpii/mean.pth.tar``      nothing (std 1)
official FPD code      BGR      x / 255   ImageNet, position by position      ImageNet, likewise
=====================  =======  ========  ==================================  ====================

pytorch-pose's ``color_normalize`` only subtracts its dataset mean, so its inputs span about 4x
less than fpdctl's. The official FPD code (HRNet's code base) trains with ``COLOR_RGB: False``:
``cv2.imread`` gives B, G, R, and ``transforms.Normalize`` then applies the ImageNet statistics,
written in R, G, B order, to B, G, R position by position.

Mean and std are therefore given in the *network's* channel order: channel 0 of the tensor is
``(pixel[order[0]] / max_pixel_value - mean[0]) / std[0]``.

Where it is used: every model carries its convention (``HourglassNet.input_convention``, set by
:func:`fpdctl.models.factory.create_model`; ``OnnxModelInfo.input_convention`` for an export).
Inference normalises crops with :meth:`InputConvention.normalize_batch` (``fpdctl.pipeline``).
Datasets yield :data:`NATIVE` tensors, the convention fpdctl trains in; a model with another
convention gets them converted on the fly: :func:`convert_array` here (numpy) and
:func:`fpdctl.models.input_adapter.convert_tensor` (torch), the same per-channel affine from
:func:`conversion`. Numpy only: nothing here loads torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from fpdctl.errors import InputError, UsageError
from fpdctl.utils.choices import match_choice

RGB = "rgb"
BGR = "bgr"
CHANNEL_ORDERS: tuple[str, ...] = (RGB, BGR)

# Key of the convention (JSON of :meth:`InputConvention.to_dict`) in checkpoint headers and ONNX
# metadata.
METADATA_KEY = "fpdctl.input_convention"

# ImageNet statistics (R, G, B on the 0..1 scale): fpdctl's own, and those HRNet's code uses.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# pytorch-pose's dataset means, the float32 values its data/{mpii,lsp}/mean.pth.tar hold (R, G, B).
# Rounded to 4 places they are the (0.4404, 0.4440, 0.4327) quoted elsewhere; the exact values
# keep fpdctl's input within 1e-6 of pytorch-pose's own.
PYTORCH_POSE_MPII_MEAN: tuple[float, float, float] = (0.440442830324173, 0.4440267086029053, 0.4326828420162201)
PYTORCH_POSE_LSP_MEAN: tuple[float, float, float] = (0.44420814514160156, 0.4302156865596771, 0.4039497971534729)

# The parameters of the user override, under a prefix (``input_`` for a model, ``teacher_input_``
# for a teacher), defined once (see parse_convention_override).
OVERRIDE_PARAMS: tuple[str, str, str, str] = ("convention", "order", "mean", "std")


def _quoted(label: str) -> str:
    """A parameter's name as errors quote it (```input_mean```); a description stays prose."""
    return f"`{label}`" if label.isidentifier() else label


def _check_order(order: object, label: str) -> str:
    text = match_choice(order, CHANNEL_ORDERS) if isinstance(order, str) else None
    if text is None:
        raise UsageError(f"{_quoted(label)} must be 'rgb' or 'bgr', got {order!r}", params=label)
    return text


def _parse_triple(value: str | Sequence[float], label: str) -> tuple[float, ...]:
    """Three numbers from ``"a,b,c"`` (or a sequence); only the count and type are checked."""
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    if isinstance(value, str) and parts == [""]:
        parts = []
    if len(parts) != 3:
        raise UsageError(
            f"{_quoted(label)} takes 3 comma-separated numbers (one per channel), got {len(parts)}: {_shown(value)}",
            params=label,
        )
    numbers = []
    for part in parts:
        try:
            numbers.append(float(part))
        except (TypeError, ValueError):
            raise UsageError(f"{_quoted(label)}: '{part}' is not a number (in {_shown(value)})", params=label) from None
    return tuple(numbers)


def _check_triple(values: object, label: str) -> tuple[float, float, float]:
    if isinstance(values, str):
        values = _parse_triple(values, label)
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise UsageError(f"{_quoted(label)} takes 3 numbers (one per channel), got {values!r}", params=label) from None
    if len(items) != 3:
        raise UsageError(f"{_quoted(label)} takes 3 numbers (one per channel), got {len(items)}", params=label)
    numbers = tuple(_finite(item, label) for item in items)
    return numbers  # type: ignore[return-value]


def _check_mean(values: object, label: str) -> tuple[float, float, float]:
    numbers = _check_triple(values, label)
    for number in numbers:
        if not 0.0 <= number <= 1.0:
            raise UsageError(
                f"{_quoted(label)} must lie in [0, 1] (pixels are scaled to [0, 1] first), got {number:g}", params=label
            )
    return numbers


def _check_std(values: object, label: str) -> tuple[float, float, float]:
    numbers = _check_triple(values, label)
    for number in numbers:
        if number <= 0.0:
            raise UsageError(f"{_quoted(label)} must be positive (1 divides by nothing), got {number:g}", params=label)
    return numbers


def _finite(value: object, label: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"{_quoted(label)}: {value!r} is not a number", params=label) from None
    if not math.isfinite(number):
        raise UsageError(f"{_quoted(label)} must be finite, got {number}", params=label)
    return number


def _shown(value: str | Sequence[float]) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def _triple(values: Sequence[float]) -> str:
    return ",".join(f"{v:.4g}" for v in values)


@dataclass(frozen=True)
class InputConvention:
    """Channel order, value scale, mean and std: how an RGB image becomes a network input.

    Equality compares what changes the tensor (order, scale, mean, std); ``name`` and
    ``train_sigma`` are descriptive.

    Attributes:
        order: channel order of the network input, ``"rgb"`` or ``"bgr"``.
        mean: 3 floats in [0, 1], subtracted after scaling, in the network's channel order.
        std: 3 positive floats, divided by after subtracting, in the network's channel order;
            ``(1, 1, 1)`` where the project divides by nothing (pytorch-pose).
        max_pixel_value: pixels are divided by it first (255: uint8 -> [0, 1]).
        name: a preset's name, or ``"custom"`` for a user's override.
        train_sigma: heatmap sigma (output px) the model was trained with, when known; distill
            warns when it differs from ``--sigma``.

    Raises:
        UsageError: an unknown order, a wrong count, a non-finite value, a mean outside [0, 1],
            or a std (or max_pixel_value) that is not positive.
    """

    order: str = RGB
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    max_pixel_value: float = 255.0
    name: str = field(default="custom", compare=False)
    train_sigma: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", _check_order(self.order, "input order"))
        object.__setattr__(self, "mean", _check_mean(self.mean, "input mean"))
        object.__setattr__(self, "std", _check_std(self.std, "input std"))
        scale = _finite(self.max_pixel_value, "max_pixel_value")
        if scale <= 0:
            raise UsageError(f"max_pixel_value must be positive, got {scale:g}")
        object.__setattr__(self, "max_pixel_value", scale)
        if self.train_sigma is not None:
            sigma = _finite(self.train_sigma, "train_sigma")
            if sigma <= 0:
                raise UsageError(f"train_sigma must be positive, got {sigma:g}")
            object.__setattr__(self, "train_sigma", sigma)

    def normalize(self, image: np.ndarray, *, source_order: str = RGB) -> np.ndarray:
        """One image as this model's input tensor.

        Args:
            image: [H, W, 3], uint8 (or float on the 0..max_pixel_value scale), channels in
                ``source_order``: RGB by default; ``"bgr"`` takes OpenCV's images without a copy.
            source_order: the channel order of ``image``.

        Returns:
            float32 [3, H, W] in this convention's channel order.
        """
        pixels = np.asarray(image)
        if pixels.ndim != 3 or pixels.shape[-1] != 3:
            raise ValueError(f"expected an image [H, W, 3], got shape {pixels.shape}")
        return self._normalize(pixels, source_order)

    def normalize_batch(self, images: np.ndarray, *, source_order: str = RGB) -> np.ndarray:
        """A batch of images as input tensors: [N, H, W, 3] -> float32 [N, 3, H, W].

        Same arguments and values as :meth:`normalize`, image by image.
        """
        pixels = np.asarray(images)
        if pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(f"expected images [N, H, W, 3], got shape {pixels.shape}")
        return self._normalize(pixels, source_order)

    def _normalize(self, pixels: np.ndarray, source_order: str) -> np.ndarray:
        source_order = _check_order(source_order, "source order")
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        scale = np.float32(self.max_pixel_value)
        out = np.empty(pixels.shape[:-3] + (3,) + pixels.shape[-3:-1], dtype=np.float32)
        # Network channel c reads source channel c, or 2 - c when the two orders differ.
        sources = (0, 1, 2) if source_order == self.order else (2, 1, 0)
        if pixels.dtype == np.uint8:
            # One 256-entry table per channel: a lookup instead of float arithmetic on every
            # pixel, with the same float32 operations in the same order (x / 255 - mean) / std.
            levels = np.arange(256, dtype=np.float32)[:, None]
            table = (levels / scale - mean) / std  # [256, 3], network channel order
            for channel, source in enumerate(sources):
                np.take(table[:, channel], pixels[..., source], out=out[..., channel, :, :], mode="clip")
            return out
        values = pixels.astype(np.float32, copy=False)
        for channel, source in enumerate(sources):
            out[..., channel, :, :] = (values[..., source] / scale - mean[channel]) / std[channel]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The convention as plain JSON data, with stable keys, for checkpoint headers and
        ONNX metadata (:data:`METADATA_KEY` holds ``json.dumps`` of it)."""
        return {
            "name": self.name,
            "order": self.order,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "max_pixel_value": float(self.max_pixel_value),
            "train_sigma": self.train_sigma,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "input convention") -> InputConvention:
        """Inverse of :meth:`to_dict`. Missing ``name``/``max_pixel_value``/``train_sigma`` take
        their defaults; ``order``, ``mean`` and ``std`` are required. A preset comes back as the
        preset object itself.

        Raises:
            InputError: not a mapping, a missing key, or a bad value (named with ``source``).
        """
        if not isinstance(data, Mapping):
            raise InputError(f"{source}: expected a JSON object, got {type(data).__name__}")
        missing = [key for key in ("order", "mean", "std") if key not in data]
        if missing:
            raise InputError(f"{source}: missing key '{missing[0]}'")
        try:
            convention = cls(
                order=data["order"],
                mean=data["mean"],
                std=data["std"],
                max_pixel_value=data.get("max_pixel_value", 255.0),
                name=str(data.get("name", "custom")),
                train_sigma=data.get("train_sigma"),
            )
        except UsageError as exc:
            raise InputError(f"{source}: {exc}") from exc
        # A preset read back is the preset itself (every field, name and sigma included, agrees).
        preset = PRESETS.get(convention.name)
        return preset if preset is not None and preset.to_dict() == convention.to_dict() else convention

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON with sorted keys (a metadata string)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, source: str = "input convention") -> InputConvention:
        """Inverse of :meth:`to_json`.

        Raises:
            InputError: not JSON, or not a valid convention.
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, source)

    def describe(self) -> str:
        """One line for reports, e.g. ``native (RGB, x/255, mean 0.485,0.456,0.406, std
        0.229,0.224,0.225)``."""
        std = "none" if all(v == 1.0 for v in self.std) else _triple(self.std)
        sigma = "" if self.train_sigma is None else f", trained at sigma {self.train_sigma:g}"
        return (
            f"{self.name} ({self.order.upper()}, x/{self.max_pixel_value:g}, "
            f"mean {_triple(self.mean)}, std {std}{sigma})"
        )


# fpdctl's own: what its datasets yield (fpdctl.data.transforms.normalize_image) and so what every
# model it trains sees; the trainer records it (with the run's sigma) in every checkpoint it writes.
NATIVE = InputConvention(RGB, IMAGENET_MEAN, IMAGENET_STD, name="native")
# pytorch-pose trains with heatmap sigma 1 (example/main.py --sigma default) and divides by no std.
PYTORCH_POSE_MPII = InputConvention(
    RGB, PYTORCH_POSE_MPII_MEAN, (1.0, 1.0, 1.0), name="pytorch-pose-mpii", train_sigma=1.0
)
PYTORCH_POSE_LSP = InputConvention(
    RGB, PYTORCH_POSE_LSP_MEAN, (1.0, 1.0, 1.0), name="pytorch-pose-lsp", train_sigma=1.0
)
# Network channel 0 is blue, normalised with ImageNet's *red* statistics: HRNet's Normalize is
# written for RGB and applied unchanged to OpenCV's BGR. Its MPII recipe uses MODEL.SIGMA 2.
FPD_OFFICIAL = InputConvention(BGR, IMAGENET_MEAN, IMAGENET_STD, name="fpd-official", train_sigma=2.0)

PRESETS: dict[str, InputConvention] = {
    preset.name: preset for preset in (NATIVE, PYTORCH_POSE_MPII, PYTORCH_POSE_LSP, FPD_OFFICIAL)
}

# Checkpoint kinds, as fpdctl.models.checkpoint.read_checkpoint names them in metadata["format"].
_KIND_TO_PRESET: dict[str, InputConvention] = {
    "fpdctl-safetensors": NATIVE,
    "pytorch-pose": PYTORCH_POSE_MPII,  # a dict with 'arch' and a 'module.' state_dict
    "fpd-checkpoint": FPD_OFFICIAL,  # checkpoint.pth: state_dict / best_state_dict, perf
    "state_dict": FPD_OFFICIAL,  # a bare state_dict: model_best.pth, final_state.pth
}


def infer_convention(kind: str, metadata: Mapping[str, str] | None = None) -> InputConvention:
    """The convention a checkpoint was trained with, from its kind (and header).

    Args:
        kind: ``metadata["format"]`` of :func:`fpdctl.models.checkpoint.read_checkpoint`:
            ``fpdctl-safetensors`` (native), ``pytorch-pose``, ``fpd-checkpoint`` or
            ``state_dict`` (both the official FPD code's).
        metadata: the checkpoint's metadata; a :data:`METADATA_KEY` entry there wins over the
            kind (a native checkpoint distilled from a foreign teacher records its own).

    Raises:
        UsageError: an unknown kind.
        InputError: a stored convention that is not valid.
    """
    if metadata is not None and METADATA_KEY in metadata:
        return InputConvention.from_json(metadata[METADATA_KEY], source=f"'{METADATA_KEY}' metadata")
    preset = _KIND_TO_PRESET.get(kind)
    if preset is None:
        raise UsageError(f"unknown checkpoint kind '{kind}': expected one of {', '.join(_KIND_TO_PRESET)}")
    return preset


def parse_convention_override(
    base: InputConvention,
    *,
    preset: str | None = None,
    order: str | None = None,
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    param_prefix: str = "input",
) -> InputConvention:
    """Apply a user's override to the convention a model would get.

    The flags (every command that loads a model): ``--input-convention NAME`` (a preset: native,
    pytorch-pose-mpii, pytorch-pose-lsp, fpd-official), then ``--input-order rgb|bgr``,
    ``--input-mean A,B,C`` (in [0, 1]) and ``--input-std A,B,C`` (positive), each replacing one
    field of the preset or of ``base``. Mean and std are in the network's channel order, so
    ``--input-order bgr`` alone on ImageNet statistics gives the official FPD convention.

    Args:
        base: the convention inferred from the checkpoint.
        preset: a name from :data:`PRESETS`, or None.
        order, mean, std: the flag values (strings as typed, or 3 numbers), or None.
        param_prefix: how the errors name the values: ``input`` (``input_mean``...), or
            ``teacher_input`` for the teacher of distill, prune and prune-sweep.

    Returns:
        ``base`` when nothing is given; the preset when only it is given; else a convention named
        ``custom`` that keeps the known training sigma of what it overrides.

    Raises:
        UsageError: one line naming the flag: an unknown preset or order, a wrong count of
            values, a value that is not a finite number, a mean outside [0, 1], a std <= 0.
    """
    flags = _param_names(param_prefix)
    result = base
    if preset is not None:
        found = PRESETS.get(match_choice(preset, PRESETS) or "")
        if found is None:
            raise UsageError(f"`{flags[0]}` must be one of {', '.join(PRESETS)}; got '{preset}'", params=flags[0])
        result = found
    changes: dict[str, Any] = {}
    if order is not None:
        changes["order"] = _check_order(order, flags[1])
    if mean is not None:
        changes["mean"] = _check_mean(_parse_triple(mean, flags[2]), flags[2])
    if std is not None:
        changes["std"] = _check_std(_parse_triple(std, flags[3]), flags[3])
    if changes:
        result = replace(result, name="custom", **changes)
    return result


def _param_names(prefix: str) -> tuple[str, str, str, str]:
    """The four override parameters under ``prefix``: ``input`` gives ``input_convention``,
    ``input_order``, ``input_mean`` and ``input_std``."""
    return tuple(f"{prefix}_{name}" for name in OVERRIDE_PARAMS)  # type: ignore[return-value]


@dataclass(frozen=True)
class ConventionOverride:
    """A user's override flags, as typed, until the model they apply to is loaded.

    Every command that loads a model takes one (``--input-convention/-order/-mean/-std``, or
    ``--teacher-input-*`` for a teacher); loading applies it to the convention the checkpoint
    records or implies (:meth:`apply`). :meth:`check` validates the values before any loading.

    Attributes:
        preset, order, mean, std: the flag values, None where not given.
        param_prefix: how errors name the values (``input`` or ``teacher_input``).
    """

    preset: str | None = None
    order: str | None = None
    mean: str | None = None
    std: str | None = None
    param_prefix: str = field(default="input", compare=False)

    @property
    def given(self) -> bool:
        """Whether any flag was given."""
        return any(v is not None for v in (self.preset, self.order, self.mean, self.std))

    def apply(self, base: InputConvention) -> InputConvention:
        """``base`` with the flags applied (:func:`parse_convention_override`)."""
        return parse_convention_override(
            base,
            preset=self.preset,
            order=self.order,
            mean=self.mean,
            std=self.std,
            param_prefix=self.param_prefix,
        )

    def check(self) -> ConventionOverride:
        """Validate the values (whatever the base will be) and return self.

        Raises:
            UsageError: one line naming the first bad flag.
        """
        self.apply(NATIVE)
        return self


def conversion(source: InputConvention, target: InputConvention) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """The per-channel affine that turns a ``source`` input tensor into a ``target`` one.

    Target channel ``c`` is ``source[channels[c]] * scale[c] + shift[c]``: undo the source's
    normalisation (``v = x * std_s + mean_s``, the pixel on the 0..1 scale), then apply the
    target's (``(v - mean_t) / std_t``), reordering channels when the orders differ. Exact up to float
    rounding; a pixel clipped by neither convention stays the same pixel.

    Returns:
        channels: the source channel of each target channel; scale, shift: float32 [3].
    """
    channels = (0, 1, 2) if source.order == target.order else (2, 1, 0)
    mean_s = np.asarray(source.mean, np.float64)[list(channels)]
    std_s = np.asarray(source.std, np.float64)[list(channels)]
    mean_t = np.asarray(target.mean, np.float64)
    std_t = np.asarray(target.std, np.float64)
    # Both normalise the pixel's fraction of full scale (pixel / max_pixel_value), which is the
    # same for one image at any bit depth: max_pixel_value plays no part here.
    scale = std_s / std_t
    shift = (mean_s - mean_t) / std_t
    return channels, scale.astype(np.float32), shift.astype(np.float32)


def convert_array(images: np.ndarray, source: InputConvention, target: InputConvention) -> np.ndarray:
    """Input tensors made for ``source`` as ``target`` wants them (numpy side).

    Args:
        images: float [..., 3, H, W] in ``source``'s convention (a dataset's samples: NATIVE).
        source, target: the two conventions.

    Returns:
        ``images`` itself when the conventions are equal, else float32 [..., 3, H, W].
    """
    if source == target:
        return images
    values = np.asarray(images, dtype=np.float32)
    if values.ndim < 3 or values.shape[-3] != 3:
        raise ValueError(f"expected input tensors [..., 3, H, W], got shape {values.shape}")
    channels, scale, shift = conversion(source, target)
    out = values[..., list(channels), :, :] * scale[:, None, None] + shift[:, None, None]
    return out.astype(np.float32, copy=False)


__all__ = [
    "BGR",
    "CHANNEL_ORDERS",
    "FPD_OFFICIAL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "METADATA_KEY",
    "NATIVE",
    "PRESETS",
    "PYTORCH_POSE_LSP",
    "PYTORCH_POSE_MPII",
    "RGB",
    "ConventionOverride",
    "InputConvention",
    "conversion",
    "convert_array",
    "infer_convention",
    "parse_convention_override",
]
