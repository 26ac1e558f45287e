"""What an exported ONNX file says about itself: the ``metadata_props`` fpdctl writes and reads.

Every file ``fpdctl export`` writes carries enough to be used with no flags and no checkpoint: the
architecture, the joints (names, flip pairs, skeleton), the input size and normalisation, the
heatmap stride, which stacks it outputs, its precision, and the fpdctl version and SHA-256 of the
checkpoint it came from. All values are strings (ONNX's rule); lists and the spec are JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpdctl.errors import InputError

if TYPE_CHECKING:
    import onnx

    from fpdctl.models.spec import HourglassSpec
    from fpdctl.skeleton import JointSet

PREFIX = "fpdctl."
# The names the metadata keys have in the file (all under PREFIX).
KEYS: tuple[str, ...] = (
    "spec", "joint_set", "joint_names", "flip_pairs", "skeleton", "input_size", "color_order",
    "mean", "std", "heatmap_stride", "heatmap_size", "outputs", "precision", "batch", "version",
    "source_sha256", "source", "opset", "exporter",
)


@dataclass(frozen=True)
class OnnxModelInfo:
    """The fpdctl facts of one exported ONNX model.

    Attributes:
        spec: the hourglass architecture.
        joint_set: "mpii", "lsp" or "" when the joint count matches no known set.
        joint_names: one name per heatmap channel.
        flip_pairs: (left, right) channel pairs swapped by a horizontal flip.
        skeleton: (a, b) channel pairs joined when drawing.
        input_size: square input side in px (the graph's fixed H and W).
        color_order: "RGB": the channel order the network expects.
        mean, std: per-channel normalisation on the 0..1 scale, in ``color_order``.
        heatmap_stride: input px per heatmap px (4).
        heatmap_size: heatmap side in px.
        outputs: "final" ([N, J, h, w], the last stack) or "all_stacks" ([N, S, J, h, w]).
        precision: "fp32", "fp16" or "int8" (inputs and outputs are fp32 in every case).
        batch: the fixed batch size, or None for a dynamic batch dimension.
        version: fpdctl version that wrote the file.
        source_sha256: SHA-256 of the source checkpoint ("" for a model built from a name).
        source: the source checkpoint's file name, or the model name.
        opset: the ONNX opset of the default domain.
        exporter: "dynamo" or "torchscript".
    """

    spec: "HourglassSpec"
    joint_set: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    input_size: int
    color_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    heatmap_stride: int
    heatmap_size: int
    outputs: str
    precision: str
    batch: int | None
    version: str
    source_sha256: str
    source: str
    opset: int
    exporter: str

    def to_props(self) -> dict[str, str]:
        """The metadata_props entries (key -> string value)."""
        values: dict[str, Any] = {
            "spec": self.spec.to_json(),
            "joint_set": self.joint_set,
            "joint_names": json.dumps(list(self.joint_names)),
            "flip_pairs": json.dumps([list(p) for p in self.flip_pairs]),
            "skeleton": json.dumps([list(p) for p in self.skeleton]),
            "input_size": str(self.input_size),
            "color_order": self.color_order,
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "heatmap_stride": str(self.heatmap_stride),
            "heatmap_size": str(self.heatmap_size),
            "outputs": self.outputs,
            "precision": self.precision,
            "batch": "dynamic" if self.batch is None else str(self.batch),
            "version": self.version,
            "source_sha256": self.source_sha256,
            "source": self.source,
            "opset": str(self.opset),
            "exporter": self.exporter,
        }
        return {PREFIX + k: str(values[k]) for k in KEYS}

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "model") -> "OnnxModelInfo":
        """Parse metadata_props written by :meth:`to_props`.

        Raises:
            InputError: a key is missing or malformed (not an fpdctl export).
        """
        from fpdctl.models.spec import HourglassSpec

        missing = [k for k in KEYS if PREFIX + k not in props]
        if missing:
            raise InputError(
                f"{where} is not an fpdctl export: its ONNX metadata lacks '{PREFIX}{missing[0]}' "
                "(export it with `fpdctl export`)"
            )
        p = {k: props[PREFIX + k] for k in KEYS}
        try:
            batch_text = p["batch"]
            mean = tuple(float(v) for v in json.loads(p["mean"]))
            std = tuple(float(v) for v in json.loads(p["std"]))
            if len(mean) != 3 or len(std) != 3:
                raise ValueError("mean and std need 3 values")
            return cls(
                spec=HourglassSpec.from_json(p["spec"]),
                joint_set=p["joint_set"],
                joint_names=tuple(str(n) for n in json.loads(p["joint_names"])),
                flip_pairs=tuple((int(a), int(b)) for a, b in json.loads(p["flip_pairs"])),
                skeleton=tuple((int(a), int(b)) for a, b in json.loads(p["skeleton"])),
                input_size=int(p["input_size"]),
                color_order=p["color_order"],
                mean=mean,  # type: ignore[arg-type]
                std=std,  # type: ignore[arg-type]
                heatmap_stride=int(p["heatmap_stride"]),
                heatmap_size=int(p["heatmap_size"]),
                outputs=p["outputs"],
                precision=p["precision"],
                batch=None if batch_text == "dynamic" else int(batch_text),
                version=p["version"],
                source_sha256=p["source_sha256"],
                source=p["source"],
                opset=int(p["opset"]),
                exporter=p["exporter"],
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{where} has malformed fpdctl metadata: {exc}") from exc


def joint_labels(num_joints: int) -> "JointSet":
    """What the heatmap channels of a model with ``num_joints`` joints are: the known joint set
    of that size, else unnamed channels ("joint_0", ...) with no flip pairs and no skeleton."""
    from fpdctl.skeleton import JointSet, joint_set_for

    try:
        return joint_set_for(num_joints)
    except KeyError:  # a joint count no known set has: channels are still usable, just unnamed
        return JointSet("", tuple(f"joint_{i}" for i in range(num_joints)), (), ())


def set_metadata(model: "onnx.ModelProto", info: OnnxModelInfo) -> None:
    """Replace the fpdctl entries of ``model.metadata_props`` with ``info`` (other keys kept)."""
    kept = [(e.key, e.value) for e in model.metadata_props if not e.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *info.to_props().items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata_props of an ONNX file, read without loading its weights.

    Raises:
        InputError: missing file or not an ONNX model.
    """
    import onnx

    from fpdctl.utils.io import require_file

    file = require_file(path, "ONNX model")
    try:
        model = onnx.load(str(file), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, onnx raises its own; all mean "not ONNX"
        raise InputError(f"cannot read {file}: not a valid ONNX model ({_first_line(exc)})") from exc
    if not model.graph.node:
        raise InputError(f"cannot read {file}: not a valid ONNX model (empty graph)")
    return {e.key: e.value for e in model.metadata_props}


def read_info(path: str | os.PathLike[str]) -> OnnxModelInfo:
    """The :class:`OnnxModelInfo` of an fpdctl-exported ONNX file.

    Raises:
        InputError: missing, unreadable, or not written by ``fpdctl export``.
    """
    return OnnxModelInfo.from_props(read_props(path), where=str(Path(path)))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


__all__ = [
    "KEYS",
    "PREFIX",
    "OnnxModelInfo",
    "joint_labels",
    "read_info",
    "read_props",
    "set_metadata",
]
