"""A hourglass network to an fp32 ONNX graph with ``torch.onnx.export``, and the metadata that
goes with it: the first step of ``fpdctl export`` (:mod:`fpdctl.deploy.export` verifies, reduces
the precision and writes the file).

Exporter choice: ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript). Both exporters
give the same graph once ONNX Runtime has optimised it (Conv with BatchNorm folded where a BN
follows a convolution; measured with ``benchmarks/deploy_latency.py``), and both match PyTorch to
fp32 rounding. The dynamo exporter is the one PyTorch maintains (the TorchScript exporter is
deprecated since 2.9 and warns), writes no ``Identity``/``Constant`` clutter, and handles the
dynamic batch dimension through ``torch.export`` shape constraints. The TorchScript path stays
available (``exporter="torchscript"``) because it exports about three times faster, for
comparisons.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Iterator

from fpdctl.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    import torch

    from fpdctl.deploy.metadata import OnnxModelInfo
    from fpdctl.models.hourglass import HourglassNet

DEFAULT_OPSET: int = 18
# torch.onnx's dynamo exporter emits opset 18 and converts upwards; asked for less, it silently
# keeps 18, so lower values are refused rather than ignored.
MIN_OPSET: int = 18
EXPORTERS: tuple[str, ...] = ("dynamo", "torchscript")
INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"
# The dynamic-batch trace uses two images: torch.export may specialise a dimension of size 1.
_DYNAMIC_TRACE_BATCH: int = 2


def parse_batch(text: str | int | None) -> int | None:
    """``--batch``: "dynamic" (or None) -> None, a positive integer -> itself.

    Raises:
        UsageError: anything else.
    """
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        word = str(text).strip().lower()
        if word == "dynamic":
            return None
        try:
            value = int(word)
        except ValueError:
            raise UsageError(f"`batch` must be 'dynamic' or a positive integer, got '{text}'", params="batch") from None
    if value < 1:
        raise UsageError(f"`batch` must be 'dynamic' or a positive integer, got '{text}'", params="batch")
    return value


def check_opset(opset: int) -> int:
    """Raise UsageError unless the exporter and the installed onnx can write ``opset``."""
    import onnx

    highest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= int(opset) <= highest:
        raise UsageError(f"`opset` must be between {MIN_OPSET} and {highest}, got {opset}", params="opset")
    return int(opset)


def last_stack_module(net: "HourglassNet") -> "torch.nn.Module":
    """``net`` wrapped so its graph returns only the last stack's heatmaps [N, J, h, w]
    (:func:`fpdctl.pipeline.last_stack` inside the graph)."""
    import torch

    from fpdctl.pipeline import last_stack

    class FinalStack(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return last_stack(self.net(images))

    return FinalStack().eval()


final_stack_module = last_stack_module  # its name before one name for the last stack


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines, warnings and optional-dependency notices
    (e.g. "torchvision is not installed"): none of them is about the user's model."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def torch_to_onnx(
    net: "HourglassNet",
    path: str | os.PathLike[str],
    *,
    input_size: int,
    batch: int | None = None,
    opset: int = DEFAULT_OPSET,
    all_stacks: bool = False,
    exporter: str = "dynamo",
) -> None:
    """Export ``net`` (fp32, eval mode) to a single ONNX file at ``path``.

    Args:
        net: the network.
        path: output file.
        input_size: the fixed input side (H = W).
        batch: a fixed batch size, or None for a dynamic batch dimension named "batch".
        opset: ONNX opset of the default domain.
        all_stacks: output [N, S, J, h, w] (every stack) instead of [N, J, h, w] (the last).
        exporter: "dynamo" or "torchscript".

    Raises:
        RuntimeFailure: the exporter failed.
    """
    import torch

    if exporter not in EXPORTERS:
        raise UsageError(f"exporter must be one of {', '.join(EXPORTERS)}, got '{exporter}'")
    module = net.eval() if all_stacks else last_stack_module(net.eval())
    trace_batch = batch if batch is not None else _DYNAMIC_TRACE_BATCH
    dummy = torch.zeros(trace_batch, 3, input_size, input_size)
    kwargs: dict[str, Any] = dict(
        opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False
    )
    if exporter == "dynamo":
        kwargs.update(dynamo=True, external_data=False, optimize=True)
        if batch is None:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1)},)
    else:
        kwargs.update(dynamo=False, do_constant_folding=True)
        if batch is None:
            kwargs["dynamic_axes"] = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    try:
        with _quiet_exporter(), torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(module, (dummy,), str(path), **kwargs)
    except Exception as exc:  # the exporter raises many unrelated types; each is one failed export
        from fpdctl.utils.io import DISK_FULL_ERRNOS, write_error

        cause = write_error(exc)
        if cause is not None and cause.errno in DISK_FULL_ERRNOS:
            raise RuntimeFailure(f"ONNX export failed: could not write {path}: {cause.strerror}") from exc
        lines = str(exc).strip().splitlines()
        raise RuntimeFailure(f"ONNX export failed: {lines[0][:300] if lines else type(exc).__name__}") from exc


def model_info(
    net: "HourglassNet",
    *,
    input_size: int,
    batch: int | None,
    opset: int,
    all_stacks: bool,
    precision: str,
    source: str,
    source_sha256: str,
    exporter: str,
) -> "OnnxModelInfo":
    """The metadata of an export of ``net``."""
    from fpdctl import __version__
    from fpdctl.codec import HEATMAP_STRIDE
    from fpdctl.deploy.metadata import OnnxModelInfo, joint_labels
    from fpdctl.models.convention import NATIVE

    spec = net.spec
    joints = joint_labels(spec.joints)
    return OnnxModelInfo(
        spec=spec,
        joint_set=joints.name,
        joint_names=tuple(joints.names),
        flip_pairs=tuple(joints.flip_pairs),
        skeleton=tuple(joints.skeleton),
        input_size=input_size,
        # The convention the network was trained with: what every later user of the file feeds.
        input_convention=getattr(net, "input_convention", NATIVE),
        heatmap_stride=HEATMAP_STRIDE,
        heatmap_size=input_size // HEATMAP_STRIDE,
        outputs="all_stacks" if all_stacks else "final",
        precision=precision,
        batch=batch,
        version=__version__,
        source_sha256=source_sha256,
        source=source,
        opset=opset,
        exporter=exporter,
    )


__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "INPUT_NAME",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "check_opset",
    "final_stack_module",
    "last_stack_module",
    "model_info",
    "parse_batch",
    "torch_to_onnx",
]
