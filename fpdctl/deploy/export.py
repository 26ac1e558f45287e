"""``fpdctl export``: a checkpoint to one self-contained, verified ONNX file (fp32, fp16 or int8).

Steps: load the checkpoint (any format :func:`~fpdctl.models.checkpoint.load_model` reads) -> export
fp32 with ``torch.onnx.export`` -> write the fpdctl metadata -> verify fp32 against PyTorch (a
failure stops here) -> convert to fp16 or quantise to int8 if asked -> verify that too and, for a
reduced precision, score it against fp32 on a validation split -> move the file into place.
Everything before the last step happens in a temporary folder, so a failure leaves no file.

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
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from fpdctl.deploy.backends import EXPORT_PRECISIONS, export_backend
from fpdctl.errors import RuntimeFailure, UsageError, VerificationError

if TYPE_CHECKING:
    import onnx
    import torch

    from fpdctl.deploy.metadata import OnnxModelInfo
    from fpdctl.deploy.quantize import QuantizationReport
    from fpdctl.deploy.verify import AccuracyComparison, VerificationReport
    from fpdctl.models.hourglass import HourglassNet

DEFAULT_OPSET: int = 18
# torch.onnx's dynamo exporter emits opset 18 and converts upwards; asked for less, it silently
# keeps 18, so lower values are refused rather than ignored.
MIN_OPSET: int = 18
EXPORTERS: tuple[str, ...] = ("dynamo", "torchscript")
INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"
# Protobuf cannot serialise a message of 2 GiB or more; ONNX then needs external data files.
SINGLE_FILE_LIMIT: int = 2**31 - 1
# The dynamic-batch trace uses two images: torch.export may specialise a dimension of size 1.
_DYNAMIC_TRACE_BATCH: int = 2

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    """What ``fpdctl export`` produced.

    Attributes:
        path: the ONNX file written.
        info: the metadata stored in it.
        size_bytes: file size.
        seconds: wall time of the whole export.
        verification: the written model against PyTorch (None with ``verify=False``).
        base_verification: the fp32 graph against PyTorch, when a reduced precision was written
            (it is the gate: a wrong fp32 graph is never quantised).
        accuracy: fp32 against the reduced precision on a validation split (fp16 / int8).
        quantization: how the int8 model was calibrated.
    """

    path: Path
    info: "OnnxModelInfo"
    size_bytes: int
    seconds: float
    verification: "VerificationReport | None" = None
    base_verification: "VerificationReport | None" = None
    accuracy: "AccuracyComparison | None" = None
    quantization: "QuantizationReport | None" = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        info = self.info
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "seconds": self.seconds,
            "model": info.spec.name,
            "spec": info.spec.to_dict(),
            "precision": info.precision,
            "opset": info.opset,
            "batch": "dynamic" if info.batch is None else info.batch,
            "input_size": info.input_size,
            "outputs": info.outputs,
            "exporter": info.exporter,
            "source": info.source,
            "source_sha256": info.source_sha256,
            "verification": None if self.verification is None else self.verification.to_dict(),
            "base_verification": None if self.base_verification is None else self.base_verification.to_dict(),
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "quantization": None if self.quantization is None else asdict(self.quantization),
        }


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
            raise UsageError(f"--batch must be 'dynamic' or a positive integer, got '{text}'") from None
    if value < 1:
        raise UsageError(f"--batch must be 'dynamic' or a positive integer, got '{text}'")
    return value


def check_opset(opset: int) -> int:
    """Raise UsageError unless the exporter and the installed onnx can write ``opset``."""
    import onnx

    highest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= int(opset) <= highest:
        raise UsageError(f"--opset must be between {MIN_OPSET} and {highest}, got {opset}")
    return int(opset)


def final_stack_module(net: "HourglassNet") -> "torch.nn.Module":
    """``net`` wrapped so its graph returns only the last stack's heatmaps [N, J, h, w]."""
    import torch

    class FinalStack(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.net(images)[:, -1]

    return FinalStack().eval()


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
    module = net.eval() if all_stacks else final_stack_module(net.eval())
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
    from fpdctl.skeleton import joint_set_for
    from fpdctl.data.transforms import MEAN, STD
    from fpdctl.deploy.metadata import OnnxModelInfo

    spec = net.spec
    try:
        joints = joint_set_for(spec.joints)
        joint_set, names = joints.name, joints.names
        flip_pairs, skeleton = joints.flip_pairs, joints.skeleton
    except KeyError:  # a joint count no known set has: channels are still usable, just unnamed
        joint_set, names = "", tuple(f"joint_{i}" for i in range(spec.joints))
        flip_pairs, skeleton = (), ()
    stride = 4  # the stem: a stride-2 convolution then a 2x max-pool
    return OnnxModelInfo(
        spec=spec,
        joint_set=joint_set,
        joint_names=tuple(names),
        flip_pairs=tuple(flip_pairs),
        skeleton=tuple(skeleton),
        input_size=input_size,
        color_order="RGB",
        mean=tuple(float(v) for v in MEAN),  # type: ignore[arg-type]
        std=tuple(float(v) for v in STD),  # type: ignore[arg-type]
        heatmap_stride=stride,
        heatmap_size=input_size // stride,
        outputs="all_stacks" if all_stacks else "final",
        precision=precision,
        batch=batch,
        version=__version__,
        source_sha256=source_sha256,
        source=source,
        opset=opset,
        exporter=exporter,
    )


def _load_source(model: "str | os.PathLike[str] | HourglassNet") -> tuple["HourglassNet", str, str]:
    """(network, source label, sha256 of the checkpoint or "") for a path, a name or a module."""
    from fpdctl.models.checkpoint import file_sha256, model_from_name_or_path
    from fpdctl.models.hourglass import HourglassNet

    if isinstance(model, HourglassNet):
        return model.eval(), model.spec.name, ""
    text = str(model)
    if text.lower().endswith(".onnx"):
        raise UsageError(f"{text} is already an ONNX model; export takes a checkpoint or a model name")
    net = model_from_name_or_path(text)
    if os.path.isfile(text):
        return net, Path(text).name, file_sha256(text)
    return net, text, ""


def export_onnx(
    model: "str | os.PathLike[str] | HourglassNet",
    output: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    input_size: int | None = None,
    all_stacks: bool = False,
    precision: str = "fp32",
    calibration_data: str = "synthetic",
    calibration_samples: int = 256,
    validation_samples: int = 200,
    verify: bool = True,
    verify_random: int = 4,
    verify_images: int = 8,
    threads: int | None = None,
    exporter: str = "dynamo",
    progress: Progress | None = None,
) -> ExportResult:
    """Export a hourglass model to a verified, self-contained ONNX file.

    Args:
        model: a checkpoint path (safetensors, pytorch-pose .pth.tar, FPD .pth), a model name
            (random weights) or an :class:`HourglassNet`.
        output: the .onnx file to write (replaced atomically).
        opset: ONNX opset (``MIN_OPSET`` and up).
        batch: fixed batch size, or None for a dynamic batch dimension.
        input_size: square input side in px, a multiple of ``spec.input_multiple`` (None: the
            size an fpdctl checkpoint was trained at, else 256).
        all_stacks: output every stack [N, S, J, h, w]; default only the last [N, J, h, w].
        precision: "fp32", "fp16" or "int8".
        calibration_data: ``--data`` spec whose train split calibrates int8 and whose val split
            scores fp16 / int8 against fp32.
        calibration_samples: int8 calibration images.
        validation_samples: persons scored for the fp32 vs fp16/int8 accuracy (0: skip).
        verify: run the PyTorch comparison (and the accuracy comparison).
        verify_random, verify_images: inputs of each kind for the comparison.
        threads: ONNX Runtime intra-op threads for the checks (None: ORT's default).
        exporter: "dynamo" (default) or "torchscript".
        progress: called with a short description before each long step.

    Returns:
        ExportResult.

    Raises:
        UsageError: bad options; InputError / CheckpointError: unreadable checkpoint or output
        path; VerificationError: the export disagrees with PyTorch (nothing is written);
        RuntimeFailure: the exporter or the quantiser failed.
    """
    import onnx

    from fpdctl.deploy.metadata import set_metadata
    from fpdctl.deploy.runtime import OrtRunner
    from fpdctl.utils.io import atomic_write_bytes, ensure_parent_writable

    start = time.perf_counter()
    say = progress or (lambda _message: None)
    target_backend = export_backend(precision)
    batch = parse_batch(batch)
    opset = check_opset(opset)
    if exporter not in EXPORTERS:
        raise UsageError(f"exporter must be one of {', '.join(EXPORTERS)}, got '{exporter}'")
    if calibration_samples < 1:
        raise UsageError(f"--calibration-samples must be at least 1, got {calibration_samples}")
    if validation_samples < 0:
        raise UsageError(f"--validation-samples must be 0 or more, got {validation_samples}")
    if precision != "fp32" or (verify and validation_samples):
        from fpdctl.data.registry import parse_data_spec

        parse_data_spec(calibration_data)  # a bad spec fails before minutes of work
    ensure_parent_writable(output)
    net, source, sha256 = _load_source(model)
    if input_size is None:
        from fpdctl.models.checkpoint import default_input_size

        input_size = default_input_size(model if isinstance(model, (str, os.PathLike)) else None)
    net.spec.check_input_size(input_size)

    def info_for(prec: str) -> "OnnxModelInfo":
        return model_info(
            net, input_size=input_size, batch=batch, opset=opset, all_stacks=all_stacks,
            precision=prec, source=source, source_sha256=sha256, exporter=exporter,
        )

    def check(runner: OrtRunner, prec: str, gate: float | None) -> "VerificationReport":
        from fpdctl.deploy.verify import verify_runner

        say(f"verifying the {prec} model against PyTorch")
        report = verify_runner(
            runner, net, input_size=input_size, precision=prec, min_agreement=gate,
            random_samples=verify_random, image_samples=verify_images,
        )
        if not report.passed:
            raise VerificationError(f"{report.failure_message()}; nothing was written")
        return report

    with tempfile.TemporaryDirectory(prefix="fpdctl-export-") as work_dir:
        work = Path(work_dir)
        fp32_path = work / "fp32.onnx"
        say(f"exporting {net.spec.name} to ONNX (opset {opset}, {exporter})")
        torch_to_onnx(
            net, fp32_path, input_size=input_size, batch=batch, opset=opset,
            all_stacks=all_stacks, exporter=exporter,
        )
        fp32_model = onnx.load(str(fp32_path))
        _check_opset_written(fp32_model, opset)
        strip_debug_info(fp32_model)
        if not all_stacks:
            take_last_stack_directly(fp32_model)
        set_metadata(fp32_model, info_for("fp32"))
        fp32_bytes = fp32_model.SerializeToString()
        fp32_backend = export_backend("fp32")

        base_report = None
        if verify:
            base_report = check(
                OrtRunner(fp32_bytes, fp32_backend, threads=threads), "fp32", fp32_backend.min_agreement
            )

        quant_report = None
        if precision == "fp32":
            final_model = fp32_model
        elif precision == "fp16":
            from fpdctl.deploy.quantize import convert_fp16

            say("converting to fp16")
            final_model = convert_fp16(_copy(fp32_model))
        else:
            final_model, quant_report = _quantize(
                fp32_model, work, net_batch=batch, input_size=input_size,
                calibration_data=calibration_data, calibration_samples=calibration_samples, say=say,
            )
        set_metadata(final_model, info_for(precision))
        final_bytes = final_model.SerializeToString()
        if len(final_bytes) > SINGLE_FILE_LIMIT:
            raise RuntimeFailure(
                f"the {precision} model is {len(final_bytes) / 2**30:.1f} GiB; a single-file ONNX "
                "model must be under 2 GiB"
            )

        report, accuracy = base_report, None
        if verify and precision != "fp32":
            runner = OrtRunner(final_bytes, target_backend, threads=threads)
            report = check(runner, precision, target_backend.min_agreement)
            if validation_samples:
                from fpdctl.deploy.verify import compare_accuracy

                say(f"scoring fp32 and {precision} on {validation_samples} {calibration_data} validation persons")
                accuracy = compare_accuracy(
                    OrtRunner(fp32_bytes, fp32_backend, threads=threads), runner,
                    data=calibration_data, input_size=input_size, samples=validation_samples,
                    reference_precision="fp32", candidate_precision=precision,
                )
        atomic_write_bytes(output, final_bytes)
    return ExportResult(
        path=Path(output),
        info=info_for(precision),
        size_bytes=len(final_bytes),
        seconds=time.perf_counter() - start,
        verification=report,
        base_verification=base_report if precision != "fp32" else None,
        accuracy=accuracy,
        quantization=quant_report,
    )


def strip_debug_info(model: "onnx.ModelProto") -> None:
    """Drop per-node doc strings and metadata, in place.

    The dynamo exporter stores each node's Python stack trace and module path there: file paths
    of the exporting machine that do not belong in a shipped model, and most of a small model's
    file size (hg1x16: 400 kB of which 60 kB are weights).
    """
    model.doc_string = ""
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]


def take_last_stack_directly(model: "onnx.ModelProto") -> bool:
    """Make the last stack's score convolution write the graph output itself, in place.

    ``net(x)[:, -1]`` exports as Unsqueeze per stack -> Concat -> Gather(last): every stack's
    heatmaps are converted out of ORT's blocked layout and copied only to be dropped. When the
    output is exactly that pattern, the Gather's source tensor is renamed to the output and the
    nodes no longer needed are removed (about 1% of hg4x128's latency). Anything else is left
    unchanged; the verification that follows checks the result either way.

    Returns:
        Whether the graph was changed.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    if len(graph.output) != 1:
        return False
    producer = {out: node for node in graph.node for out in node.output}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)

    def attr(node: "onnx.NodeProto", name: str, default: Any = None) -> Any:
        found = [onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name]
        return found[0] if found else default

    def unsqueezed_axis(node: "onnx.NodeProto | None") -> int | None:
        if node is None or node.op_type != "Unsqueeze":
            return None
        axes = constants.get(node.input[1]) if len(node.input) > 1 else attr(node, "axes")
        axes = None if axes is None else [int(a) for a in np.asarray(axes).ravel()]
        return axes[0] if axes is not None and len(axes) == 1 else None

    out_name = graph.output[0].name
    gather = producer.get(out_name)
    if gather is None or gather.op_type != "Gather" or attr(gather, "axis", 0) != 1:
        return False
    index = constants.get(gather.input[1])
    if index is None or np.asarray(index).ndim != 0:
        return False
    source = producer.get(gather.input[0])
    if source is not None and source.op_type == "Concat" and attr(source, "axis") == 1:
        operands = list(source.input)
        picked = operands[int(index) % len(operands)]
    elif unsqueezed_axis(source) == 1 and int(index) in (0, -1):
        picked = gather.input[0]
    else:
        return False
    unsqueeze = producer.get(picked)
    if unsqueezed_axis(unsqueeze) != 1:
        return False
    heatmaps = unsqueeze.input[0]
    if any(heatmaps in n.input for n in graph.node if n is not unsqueeze) or producer.get(heatmaps) is None:
        return False  # still read elsewhere: renaming it would change other nodes' inputs
    head = producer[heatmaps]
    head.output[list(head.output).index(heatmaps)] = out_name
    del graph.node[list(graph.node).index(gather)]
    # Drop what nothing reads any more (the other stacks' Unsqueeze / Concat, their constants).
    changed = True
    while changed:
        needed = {o.name for o in graph.output} | {i for n in graph.node for i in n.input}
        keep = [n for n in graph.node if any(o in needed for o in n.output)]
        changed = len(keep) != len(graph.node)
        del graph.node[:]
        graph.node.extend(keep)
    needed = {i for n in graph.node for i in n.input}
    kept_inits = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    produced = {o for n in graph.node for o in n.output}
    kept_info = [v for v in graph.value_info if v.name in produced and v.name != out_name]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    onnx.checker.check_model(model)
    return True


def _copy(model: "onnx.ModelProto") -> "onnx.ModelProto":
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _check_opset_written(model: "onnx.ModelProto", opset: int) -> None:
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise RuntimeFailure(f"the exporter wrote opset {written} instead of the requested {opset}")


def _quantize(
    fp32_model: "onnx.ModelProto",
    work: Path,
    *,
    net_batch: int | None,
    input_size: int,
    calibration_data: str,
    calibration_samples: int,
    say: Progress,
) -> tuple["onnx.ModelProto", "QuantizationReport"]:
    import onnx

    from fpdctl.data.registry import build_dataset
    from fpdctl.deploy.quantize import calibration_indices, image_batches, quantize_int8

    dataset = build_dataset(calibration_data, "train", input_size=input_size)
    if len(dataset) == 0:
        raise UsageError(f"--calibration-data {calibration_data} has no training images")
    indices = calibration_indices(len(dataset), calibration_samples)
    # Ranges are averaged over calibration batches: one image per batch averages per-image
    # ranges (a fixed-batch graph can only take its own batch size).
    batch = net_batch or 1
    say(f"calibrating int8 on {len(indices)} {calibration_data} images")
    out_path = work / "int8.onnx"
    report = quantize_int8(
        fp32_model, out_path, image_batches(dataset, indices, batch, pad=net_batch is not None),
        work_dir=work, calibration_data=str(calibration_data),
    )
    return onnx.load(str(out_path)), report


__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "EXPORT_PRECISIONS",
    "INPUT_NAME",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "ExportResult",
    "check_opset",
    "export_onnx",
    "final_stack_module",
    "model_info",
    "parse_batch",
    "strip_debug_info",
    "take_last_stack_directly",
    "torch_to_onnx",
]
