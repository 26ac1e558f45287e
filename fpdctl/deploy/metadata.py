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

from fpdctl.errors import InputError, UsageError
from fpdctl.models.convention import METADATA_KEY, PRESETS, InputConvention

if TYPE_CHECKING:
    import onnx

    from fpdctl.models.spec import HourglassSpec
    from fpdctl.skeleton import JointSet

PREFIX = "fpdctl."
# The names the metadata keys have in the file (all under PREFIX). "input_convention" (the JSON of
# InputConvention.to_dict(), the same entry as in native checkpoints) is the model's convention;
# "color_order", "mean" and "std" repeat it for readers that know only those, and are what files
# written before it existed have.
KEYS: tuple[str, ...] = (
    "spec",
    "joint_set",
    "joint_names",
    "flip_pairs",
    "skeleton",
    "input_size",
    "input_convention",
    "color_order",
    "mean",
    "std",
    "heatmap_stride",
    "heatmap_size",
    "outputs",
    "precision",
    "batch",
    "version",
    "source_sha256",
    "source",
    "opset",
    "exporter",
    "graph_io",
)
# Keys a file may lack, and how it is read then.
_OPTIONAL_KEYS: frozenset[str] = frozenset({"input_convention", "graph_io"})

# What a graph returns: heatmaps (the network's output), or keypoints and scores decoded inside it.
HEATMAPS, KEYPOINTS, SCORES = "heatmaps", "keypoints", "scores"


@dataclass(frozen=True)
class GraphIO:
    """What an exported graph takes and returns (``fpdctl export --embed-preprocess/-decode``).

    Attributes:
        pixel_order: None: the graph takes the network input, float32 [N, 3, S, S], already
            normalised in the model's input convention. "rgb" or "bgr": it takes uint8 crops
            [N, S, S, 3] in that channel order and normalises them itself.
        outputs: the graph's outputs, in order: ("heatmaps",), ("keypoints", "scores") or
            ("keypoints", "scores", "heatmaps"); keypoints float32 [N, J, 2] (x, y) in crop px,
            scores float32 [N, J].
    """

    pixel_order: str | None = None
    outputs: tuple[str, ...] = (HEATMAPS,)

    @property
    def takes_pixels(self) -> bool:
        return self.pixel_order is not None

    @property
    def decodes(self) -> bool:
        return KEYPOINTS in self.outputs

    def describe(self) -> str:
        """E.g. ``uint8 BGR crops -> keypoints, scores``."""
        source = f"uint8 {self.pixel_order.upper()} crops" if self.pixel_order else "normalised float input"
        return f"{source} -> {', '.join(self.outputs)}"

    def to_json(self) -> str:
        return json.dumps({"pixel_order": self.pixel_order, "outputs": list(self.outputs)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GraphIO":
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: not what :meth:`to_json` writes.
        """
        data = json.loads(text)
        order, outputs = data.get("pixel_order"), tuple(str(o) for o in data.get("outputs", ()))
        if order not in (None, "rgb", "bgr") or outputs not in (
            (HEATMAPS,),
            (KEYPOINTS, SCORES),
            (KEYPOINTS, SCORES, HEATMAPS),
        ):
            raise ValueError(f"unknown graph inputs/outputs {text}")
        return cls(order, outputs)


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
        input_convention: how pixels become the network's input (channel order, scale, mean,
            std): the convention of the checkpoint it was exported from.
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
        io: what the graph takes and returns (the network's input and heatmaps unless exported
            with ``--embed-preprocess`` / ``--embed-decode``).
    """

    spec: "HourglassSpec"
    joint_set: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    input_size: int
    input_convention: InputConvention
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
    io: GraphIO = GraphIO()

    @property
    def color_order(self) -> str:
        """ "RGB" or "BGR": the network's channel order (of :attr:`input_convention`)."""
        return self.input_convention.order.upper()

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.input_convention.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.input_convention.std

    def to_props(self) -> dict[str, str]:
        """The metadata_props entries (key -> string value)."""
        values: dict[str, Any] = {
            "spec": self.spec.to_json(),
            "joint_set": self.joint_set,
            "joint_names": json.dumps(list(self.joint_names)),
            "flip_pairs": json.dumps([list(p) for p in self.flip_pairs]),
            "skeleton": json.dumps([list(p) for p in self.skeleton]),
            "input_size": str(self.input_size),
            "input_convention": self.input_convention.to_json(),
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
            "graph_io": self.io.to_json(),
        }
        return {PREFIX + k: str(values[k]) for k in KEYS}

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "model") -> "OnnxModelInfo":
        """Parse metadata_props written by :meth:`to_props`.

        Raises:
            InputError: a key is missing or malformed (not an fpdctl export).
        """
        from fpdctl.models.spec import HourglassSpec

        missing = [k for k in KEYS if PREFIX + k not in props and k not in _OPTIONAL_KEYS]
        if missing:
            raise InputError(
                f"{where} is not an fpdctl export: its ONNX metadata lacks '{PREFIX}{missing[0]}' "
                "(export it with `fpdctl export`)"
            )
        p = {k: props[PREFIX + k] for k in KEYS if PREFIX + k in props}
        try:
            batch_text = p["batch"]
            convention = _read_convention(p, where)
            return cls(
                spec=HourglassSpec.from_json(p["spec"]),
                joint_set=p["joint_set"],
                joint_names=tuple(str(n) for n in json.loads(p["joint_names"])),
                flip_pairs=tuple((int(a), int(b)) for a, b in json.loads(p["flip_pairs"])),
                skeleton=tuple((int(a), int(b)) for a, b in json.loads(p["skeleton"])),
                input_size=int(p["input_size"]),
                input_convention=convention,
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
                io=GraphIO.from_json(p["graph_io"]) if "graph_io" in p else GraphIO(),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{where} has malformed fpdctl metadata: {exc}") from exc


def _read_convention(props: dict[str, str], where: str) -> InputConvention:
    """The convention a file records; from color_order/mean/std in files written before
    ``input_convention`` existed (named after the preset they equal, else "custom").

    Raises:
        InputError: a convention that is not valid; ValueError: malformed legacy entries.
    """
    if "input_convention" in props:
        return InputConvention.from_json(props["input_convention"], source=f"{where}: '{METADATA_KEY}'")
    mean = tuple(float(v) for v in json.loads(props["mean"]))
    std = tuple(float(v) for v in json.loads(props["std"]))
    if len(mean) != 3 or len(std) != 3:
        raise ValueError("mean and std need 3 values")
    try:
        legacy = InputConvention(props["color_order"].lower(), mean, std)  # type: ignore[arg-type]
    except UsageError as exc:
        raise InputError(f"{where} has malformed fpdctl metadata: {exc}") from exc
    same = next((preset for preset in PRESETS.values() if preset == legacy), None)
    return legacy if same is None else same


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
    "GraphIO",
    "PREFIX",
    "OnnxModelInfo",
    "joint_labels",
    "read_info",
    "read_props",
    "set_metadata",
]
