"""``HourglassSpec``: the architecture as data, and the name registry.

A spec fully determines the network, so it is stored inside every native checkpoint and ONNX file
and a model can be rebuilt without flags. Names follow ``hg{S}x{C}`` with optional suffixes
``b{B}`` (residual blocks per stage), ``j{J}`` (joints, default 16), ``d{D}`` (hourglass
depth, default 4) and ``m`` (mobile, depthwise-separable residual blocks): ``hg8x256``,
``hg4x128``, ``hg2x64b2``, ``hg2x256m``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from fpdctl.errors import UsageError

# The paper's reference pair: the teacher is what `train` trains by default and what `profile`
# compares against; the student is what `distill` trains by default.
TEACHER_MODEL = "hg8x256"
STUDENT_MODEL = "hg4x128"
# The network input side (px) when neither the user nor a checkpoint says otherwise: the MPII
# recipe of the paper and of pytorch-pose (heatmaps are a quarter of it, see fpdctl.codec).
DEFAULT_INPUT_SIZE = 256

_NAME_RE = re.compile(r"^hg(?P<s>\d+)x(?P<c>\d+)(?:b(?P<b>\d+))?(?:j(?P<j>\d+))?(?:d(?P<d>\d+))?(?P<m>m)?$")

STANDARD = "standard"
MOBILE = "mobile"
# Residual block types: "standard" is the pre-activation bottleneck (1x1, 3x3, 1x1); "mobile"
# makes its 3x3 depthwise, so conv1/conv3 are its pointwise halves (the layout of
# yuanyuanli85/Fast_Human_Pose_Estimation_Pytorch's ``--mobile``). Name suffix "m".
BLOCK_TYPES: tuple[str, ...] = (STANDARD, MOBILE)


@dataclass(frozen=True)
class HourglassSpec:
    """The architecture of one Stacked Hourglass network.

    Attributes:
        stacks: number of hourglass modules S (each with its own heatmap head).
        channels: feature width C. The stem starts at C/4, bottleneck inner width is C/2.
        blocks: residual blocks per hourglass stage and per head.
        joints: heatmap channels J.
        depth: downsampling levels per hourglass; the input side must be a multiple of
            ``4 * 2**depth`` (64 for the usual depth 4).
        block: residual block type, "standard" or "mobile" (depthwise 3x3), see BLOCK_TYPES.
    """

    stacks: int
    channels: int
    blocks: int = 1
    joints: int = 16
    depth: int = 4
    block: str = STANDARD

    def __post_init__(self) -> None:
        for field in ("stacks", "channels", "blocks", "joints", "depth"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"{field} must be an integer, got {value!r}")
        if self.stacks < 1:
            raise UsageError(f"stacks must be at least 1, got {self.stacks}")
        if self.channels < 4 or self.channels % 4:
            raise UsageError(f"channels must be a positive multiple of 4, got {self.channels}")
        if self.blocks < 1:
            raise UsageError(f"blocks must be at least 1, got {self.blocks}")
        if self.joints < 1:
            raise UsageError(f"joints must be at least 1, got {self.joints}")
        if self.depth < 1:
            raise UsageError(f"depth must be at least 1, got {self.depth}")
        if self.block not in BLOCK_TYPES:
            raise UsageError(f"block must be one of {', '.join(BLOCK_TYPES)}, got {self.block!r}")

    @property
    def name(self) -> str:
        """The canonical name, e.g. ``hg4x128``, ``hg2x64b2`` or ``hg2x256m``."""
        name = f"hg{self.stacks}x{self.channels}"
        if self.blocks != 1:
            name += f"b{self.blocks}"
        if self.joints != 16:
            name += f"j{self.joints}"
        if self.depth != 4:
            name += f"d{self.depth}"
        if self.block == MOBILE:
            name += "m"
        return name

    @property
    def input_multiple(self) -> int:
        """The input side must be a multiple of this (the stem's heatmap stride, then ``depth``
        poolings)."""
        from fpdctl.codec import HEATMAP_STRIDE  # here, so that naming a model loads no numpy

        return HEATMAP_STRIDE * 2**self.depth

    def check_input_size(self, input_size: int) -> None:
        """Raise UsageError unless ``input_size`` suits this network."""
        if input_size <= 0 or input_size % self.input_multiple:
            raise UsageError(
                f"input size must be a positive multiple of {self.input_multiple} for a "
                f"depth-{self.depth} hourglass, got {input_size}"
            )

    def replace(self, **changes: Any) -> HourglassSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, int | str]:
        """The fields as a dict; ``block`` only when not standard, so a standard spec serialises
        exactly as before block types existed (and older readers still accept it)."""
        data: dict[str, int | str] = dataclasses.asdict(self)
        if self.block == STANDARD:
            del data["block"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HourglassSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"unknown spec fields: {', '.join(sorted(unknown))}")
        if "block" in data and not isinstance(data["block"], str):
            raise UsageError(f"block must be a string, got {data['block']!r}")
        return cls(**{k: v if k == "block" else int(v) for k, v in data.items()})

    @classmethod
    def from_json(cls, text: str) -> HourglassSpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_name(cls, name: str) -> HourglassSpec:
        """Parse ``hg{S}x{C}[b{B}][j{J}][d{D}][m]``.

        Raises:
            UsageError: the name does not follow that pattern or gives invalid numbers.
        """
        match = _NAME_RE.match(name.strip().lower())
        if match is None:
            raise UsageError(
                f"unknown model name '{name}': expected hg{{stacks}}x{{channels}}[b{{blocks}}], "
                "e.g. hg8x256, hg4x128, hg2x64b2, hg2x256m (the grid of `fpdctl profile`)"
            )
        parts = {k: int(v) for k, v in match.groupdict().items() if v is not None and k != "m"}
        return cls(
            stacks=parts["s"],
            channels=parts["c"],
            blocks=parts.get("b", 1),
            joints=parts.get("j", 16),
            depth=parts.get("d", 4),
            block=MOBILE if match.group("m") else STANDARD,
        )


# The paper's grid (stacks x channels). Any name matching the pattern works; this registry is
# what `list_models()` advertises.
_REGISTRY: dict[str, HourglassSpec] = {
    HourglassSpec(s, c).name: HourglassSpec(s, c) for s in (1, 2, 4, 8) for c in (64, 128, 256)
}


def list_models() -> list[str]:
    """The registered model names (the paper's stacks x channels grid)."""
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].stacks, _REGISTRY[n].channels))


def resolve_spec(name_or_spec: str | HourglassSpec) -> HourglassSpec:
    """A spec from a name (registered or matching the pattern) or a spec."""
    if isinstance(name_or_spec, HourglassSpec):
        return name_or_spec
    if not isinstance(name_or_spec, str):
        raise UsageError(f"expected a model name or HourglassSpec, got {type(name_or_spec).__name__}")
    return _REGISTRY.get(name_or_spec) or HourglassSpec.from_name(name_or_spec)


def is_checkpoint_path(model: str) -> bool:
    """Whether a MODEL argument means a file rather than a model name: it exists (a directory
    too, refused later as "not a file") or it has a checkpoint suffix."""
    return os.path.exists(model) or model.endswith((".safetensors", ".pth", ".tar", ".pt", ".bin"))
