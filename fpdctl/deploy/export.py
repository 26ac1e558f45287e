"""``fpdctl export``: a checkpoint to one self-contained, verified ONNX file (fp32, fp16 or int8).

Steps: load the checkpoint (any format :func:`~fpdctl.models.factory.create_model` reads) -> export
fp32 with ``torch.onnx.export`` -> write the fpdctl metadata -> verify fp32 against PyTorch (a
failure stops here) -> convert to fp16 or quantise to int8 if asked -> verify that too and, for a
reduced precision, score it against fp32 on a validation split -> move the file into place.
Everything before the last step happens in a temporary folder, so a failure leaves no file.
The first step (the exporter and its choice) is :mod:`fpdctl.deploy.torch_onnx`.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpdctl.deploy.backends import EXPORT_PRECISIONS, export_backend
from fpdctl.deploy.torch_onnx import (
    DEFAULT_OPSET,
    EXPORTERS,
    check_opset,
    model_info,
    parse_batch,
    torch_to_onnx,
)
from fpdctl.errors import RuntimeFailure, UsageError, VerificationError
from fpdctl.progress import Progress, report

if TYPE_CHECKING:
    import onnx

    from fpdctl.data.kinds import DataSpec
    from fpdctl.deploy.metadata import OnnxModelInfo
    from fpdctl.deploy.preprocess_decode import Embedding, KeypointCheck
    from fpdctl.deploy.quantize import QuantizationReport
    from fpdctl.deploy.runtime import OrtRunner
    from fpdctl.deploy.verify import AccuracyComparison, VerificationReport
    from fpdctl.models.convention import ConventionOverride
    from fpdctl.models.hourglass import HourglassNet

# int8 calibration images by default: range estimates settle within a few hundred images.
DEFAULT_CALIBRATION_SAMPLES: int = 256
# Protobuf cannot serialise a message of 2 GiB or more; ONNX then needs external data files.
SINGLE_FILE_LIMIT: int = 2**31 - 1


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
        embedding_checks: the embedded pre/post-processing against the Python pipeline (see
            :func:`~fpdctl.deploy.preprocess_decode.embed_verified`); empty without an embedding.
        isa: the instruction set the checks ran on
            (:func:`~fpdctl.deploy.bench_report.instruction_set`): an int8 file's figures are this
            CPU's.
    """

    path: Path
    info: "OnnxModelInfo"
    size_bytes: int
    seconds: float
    verification: "VerificationReport | None" = None
    base_verification: "VerificationReport | None" = None
    accuracy: "AccuracyComparison | None" = None
    quantization: "QuantizationReport | None" = None
    embedding_checks: "tuple[KeypointCheck, ...]" = ()
    isa: str = ""

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
            "input_convention": info.input_convention.to_dict(),
            "outputs": info.outputs,
            "exporter": info.exporter,
            "source": info.source,
            "source_sha256": info.source_sha256,
            "verification": None if self.verification is None else self.verification.to_dict(),
            "base_verification": None if self.base_verification is None else self.base_verification.to_dict(),
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "quantization": None if self.quantization is None else asdict(self.quantization),
            "graph_io": {"pixel_order": info.io.pixel_order, "outputs": list(info.io.outputs)},
            "embedding_checks": [check.to_dict() for check in self.embedding_checks],
            "isa": self.isa,
        }


def _load_source(
    model: "str | os.PathLike[str] | HourglassNet",
    input_convention: "ConventionOverride | None" = None,
) -> tuple["HourglassNet", str, str]:
    """(network, source label, sha256 of the checkpoint or "") for a path, a name or a module;
    ``input_convention`` overrides the network's own (a module's attribute is set)."""
    from fpdctl.models.checkpoint_files import checkpoint_file, file_sha256
    from fpdctl.models.factory import create_model
    from fpdctl.models.hourglass import HourglassNet

    if isinstance(model, HourglassNet):
        if input_convention is not None:
            model.input_convention = input_convention.apply(model.input_convention)
        return model.eval(), model.spec.name, ""
    text = str(model)
    if text.lower().endswith(".onnx"):
        raise UsageError(f"{text} is already an ONNX model; export takes a checkpoint or a model name")
    net = create_model(text, input_convention=input_convention).eval()
    file = checkpoint_file(text)  # a pretrained name's file too
    if file.is_file():
        return net, Path(text).name, file_sha256(file)
    return net, text, ""


def _check_options(
    precision: str,
    batch: int | None,
    opset: int,
    exporter: str,
    calibration_data: "str | DataSpec",
    calibration_samples: int,
    validation_samples: int | None,
    verify: bool,
) -> "tuple[int | None, int, str | DataSpec]":
    """Fail on a bad option before any work; returns the parsed (batch, opset, calibration data).

    Raises:
        UsageError: the first bad option, in the order of the signature of :func:`export_onnx`.
    """
    export_backend(precision)
    batch = parse_batch(batch)
    opset = check_opset(opset)
    if exporter not in EXPORTERS:
        raise UsageError(f"exporter must be one of {', '.join(EXPORTERS)}, got '{exporter}'")
    if calibration_samples < 1:
        raise UsageError(
            f"`calibration_samples` must be at least 1, got {calibration_samples}", params="calibration_samples"
        )
    if validation_samples is not None and validation_samples < 0:
        raise UsageError(
            f"`validation_samples` must be 0 or more, got {validation_samples}", params="validation_samples"
        )
    if precision != "fp32" or (verify and validation_samples != 0):
        from fpdctl.data.kinds import parse_data_spec

        calibration_data = parse_data_spec(calibration_data)  # once; a bad spec fails before minutes of work
    return batch, opset, calibration_data


@dataclass(frozen=True)
class _Export:
    """One export's settings, shared by its steps."""

    net: "HourglassNet"
    input_size: int
    batch: int | None
    opset: int
    all_stacks: bool
    exporter: str
    source: str
    source_sha256: str
    threads: int | None
    verify_random: int
    verify_images: int
    progress: Progress | None
    embedding: "Embedding | None" = None

    def say(self, message: str) -> None:
        report(self.progress, "export.stage", message)

    def final_info(self, precision: str) -> "OnnxModelInfo":
        """The written file's metadata: :meth:`info` with the graph's inputs and outputs."""
        from dataclasses import replace

        return replace(self.info(precision), io=self.embedding.io) if self.embedding else self.info(precision)

    def info(self, precision: str) -> "OnnxModelInfo":
        return model_info(
            self.net,
            input_size=self.input_size,
            batch=self.batch,
            opset=self.opset,
            all_stacks=self.all_stacks,
            precision=precision,
            source=self.source,
            source_sha256=self.source_sha256,
            exporter=self.exporter,
        )

    def runner(self, model_bytes: bytes, precision: str) -> "OrtRunner":
        from fpdctl.deploy.runtime import OrtRunner

        return OrtRunner(model_bytes, export_backend(precision), threads=self.threads)

    def verify(self, runner: "OrtRunner", precision: str) -> "VerificationReport":
        """Compare the export with PyTorch; a failure stops the export (nothing is written).

        Raises:
            VerificationError: below the precision's agreement gate, or non-finite heatmaps.
        """
        from fpdctl.deploy.verify import verify_runner

        self.say(f"verifying the {precision} model against PyTorch")
        result = verify_runner(
            runner,
            self.net,
            input_size=self.input_size,
            precision=precision,
            min_agreement=export_backend(precision).min_agreement,
            random_samples=self.verify_random,
            image_samples=self.verify_images,
        )
        if not result.passed:
            raise VerificationError(f"{result.failure_message()}; nothing was written")
        return result


def export_onnx(
    model: "str | os.PathLike[str] | HourglassNet",
    output: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    input_size: int | None = None,
    all_stacks: bool = False,
    precision: str = "fp32",
    calibration_data: "str | DataSpec" = "synthetic",
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    validation_samples: int | None = None,
    flip_test: bool = True,
    verify: bool = True,
    verify_random: int = 4,
    verify_images: int = 8,
    threads: int | None = None,
    exporter: str = "dynamo",
    input_convention: "ConventionOverride | None" = None,
    embedding: "Embedding | None" = None,
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
        validation_samples: score fp32 and fp16/int8 on the first this many validation persons
            (None: the whole split, as ``fpdctl eval``; 0: skip the accuracy check).
        flip_test: score with the flip test, as ``fpdctl eval`` does (False: a deployed single forward,
            ``fpdctl eval --no-flip-test``). Either way the figures are eval's for the two files.
        verify: run the PyTorch comparison (and the accuracy comparison).
        verify_random, verify_images: inputs of each kind for the comparison.
        threads: ONNX Runtime intra-op threads for the checks (None: ORT's default).
        exporter: "dynamo" (default) or "torchscript".
        embedding: pre-processing (uint8 crops in) and / or decoding (keypoints out) to put in
            the graph around the verified network (:mod:`fpdctl.deploy.preprocess_decode`); None: neither.
        input_convention: override flags applied to the model's own input convention; the result
            is recorded in the file's metadata and feeds the verification and calibration images.
        progress: gets an "export.stage" event, with a short description, before each long step.

    Raises:
        UsageError: bad options; InputError / CheckpointError: unreadable checkpoint or output
        path; VerificationError: the export disagrees with PyTorch (nothing is written);
        RuntimeFailure: the exporter or the quantiser failed.
    """
    from fpdctl.deploy.bench_report import instruction_set
    from fpdctl.utils.io import atomic_write_bytes, ensure_parent_writable

    start = time.perf_counter()
    batch, opset, calibration_data = _check_options(
        precision,
        batch,
        opset,
        exporter,
        calibration_data,
        calibration_samples,
        validation_samples,
        verify,
    )
    scoring = _Scoring(calibration_data, validation_samples, flip_test)
    embedding = embedding if embedding is not None and embedding.active else None
    if embedding is not None:
        embedding.check(all_stacks)
    ensure_parent_writable(output)
    net, source, sha256 = _load_source(model, input_convention)
    from fpdctl.models.checkpoint_files import resolve_input_size

    input_size = resolve_input_size(model, input_size)
    net.spec.check_input_size(input_size)
    job = _Export(
        net,
        input_size,
        batch,
        opset,
        all_stacks,
        exporter,
        source,
        sha256,
        threads,
        verify_random,
        verify_images,
        progress,
        embedding,
    )
    with tempfile.TemporaryDirectory(prefix="fpdctl-export-") as work_dir:
        final_bytes, checks = _export_checked(job, Path(work_dir), precision, verify, calibration_samples, scoring)
        atomic_write_bytes(output, final_bytes)
    return ExportResult(
        path=Path(output),
        info=job.final_info(precision),
        size_bytes=len(final_bytes),
        seconds=time.perf_counter() - start,
        isa=instruction_set(),
        **checks,
    )


@dataclass(frozen=True)
class _Scoring:
    """The accuracy check's protocol: ``fpdctl eval``'s on ``data`` (None persons: all of them)."""

    data: "str | DataSpec"
    samples: int | None
    flip_test: bool

    @property
    def active(self) -> bool:
        return self.samples != 0


def _export_checked(
    job: _Export,
    work: Path,
    precision: str,
    verify: bool,
    calibration_samples: int,
    scoring: _Scoring,
) -> tuple[bytes, dict[str, Any]]:
    """Export, verify fp32 (the gate), reduce the precision, verify and score that.

    Returns:
        The bytes of the model to write, and the :class:`ExportResult` fields of the checks.
    """
    fp32_model = _export_fp32(job, work)
    fp32_bytes = fp32_model.SerializeToString()
    base_report = job.verify(job.runner(fp32_bytes, "fp32"), "fp32") if verify else None
    final_bytes, quant_report = _reduce_precision(job, fp32_model, precision, work, scoring.data, calibration_samples)
    verification, accuracy = base_report, None
    if verify and precision != "fp32":
        runner = job.runner(final_bytes, precision)
        verification = job.verify(runner, precision)
        if scoring.active:
            accuracy = _compare_with_fp32(job, fp32_bytes, runner, precision, scoring)
    embedding_checks: tuple = ()
    if job.embedding is not None:  # around the verified (and quantised) network: see embed
        from fpdctl.deploy.preprocess_decode import embed_verified

        final_bytes, embedding_checks = embed_verified(
            final_bytes,
            job.final_info(precision),
            job.embedding,
            job.net,
            verify=verify,
            random_samples=job.verify_random,
            image_samples=job.verify_images,
            threads=job.threads,
            say=job.say,
        )
    return final_bytes, {
        "verification": verification,
        "base_verification": base_report if precision != "fp32" else None,
        "accuracy": accuracy,
        "quantization": quant_report,
        "embedding_checks": embedding_checks,
    }


def _export_fp32(job: _Export, work: Path) -> "onnx.ModelProto":
    """The fp32 graph with the fpdctl metadata, exporter clutter removed."""
    import onnx

    from fpdctl.deploy.metadata import set_metadata
    from fpdctl.deploy.onnx_graph import check_opset_written, strip_debug_info, take_last_stack_directly

    path = work / "fp32.onnx"
    job.say(f"exporting {job.net.spec.name} to ONNX (opset {job.opset}, {job.exporter})")
    torch_to_onnx(
        job.net,
        path,
        input_size=job.input_size,
        batch=job.batch,
        opset=job.opset,
        all_stacks=job.all_stacks,
        exporter=job.exporter,
    )
    model = onnx.load(str(path))
    check_opset_written(model, job.opset)
    strip_debug_info(model)
    if not job.all_stacks:
        take_last_stack_directly(model)
    set_metadata(model, job.info("fp32"))
    return model


def _reduce_precision(
    job: _Export,
    fp32_model: "onnx.ModelProto",
    precision: str,
    work: Path,
    calibration_data: str,
    calibration_samples: int,
) -> tuple[bytes, "QuantizationReport | None"]:
    """The serialised model in ``precision`` (fp32 as it is, fp16 converted, int8 calibrated).

    Raises:
        RuntimeFailure: the model is too large for one file, or the quantiser failed.
    """
    from fpdctl.deploy.metadata import set_metadata

    quant_report = None
    if precision == "fp32":
        final_model = fp32_model
    elif precision == "fp16":
        from fpdctl.deploy.onnx_graph import copy_model
        from fpdctl.deploy.quantize import convert_fp16

        job.say("converting to fp16")
        final_model = convert_fp16(copy_model(fp32_model))
    else:
        final_model, quant_report = _quantize(job, fp32_model, work, calibration_data, calibration_samples)
    set_metadata(final_model, job.info(precision))
    final_bytes = final_model.SerializeToString()
    if len(final_bytes) > SINGLE_FILE_LIMIT:
        raise RuntimeFailure(
            f"the {precision} model is {len(final_bytes) / 2**30:.1f} GiB; a single-file ONNX model must be under 2 GiB"
        )
    return final_bytes, quant_report


def _quantize(
    job: _Export,
    fp32_model: "onnx.ModelProto",
    work: Path,
    calibration_data: str,
    calibration_samples: int,
) -> tuple["onnx.ModelProto", "QuantizationReport"]:
    import onnx

    from fpdctl.data.registry import build_dataset
    from fpdctl.deploy.quantize import calibration_indices, image_batches, quantize_int8

    dataset = build_dataset(calibration_data, "train", input_size=job.input_size)
    if len(dataset) == 0:
        raise UsageError(f"`calibration_data` {calibration_data} has no training images", params="calibration_data")
    indices = calibration_indices(len(dataset), calibration_samples)
    # Ranges are averaged over calibration batches: one image per batch averages per-image
    # ranges (a fixed-batch graph can only take its own batch size).
    batch = job.batch or 1
    job.say(f"calibrating int8 on {len(indices)} {calibration_data} images")
    out_path = work / "int8.onnx"
    quant_report = quantize_int8(
        fp32_model,
        out_path,
        image_batches(dataset, indices, batch, pad=job.batch is not None, convention=job.net.input_convention),
        work_dir=work,
        calibration_data=str(calibration_data),
    )
    return onnx.load(str(out_path)), quant_report


def _compare_with_fp32(
    job: _Export,
    fp32_bytes: bytes,
    runner: "OrtRunner",
    precision: str,
    scoring: _Scoring,
) -> "AccuracyComparison":
    """fp32 and the reduced precision scored as ``fpdctl eval`` scores each file."""
    from fpdctl.deploy.verify import compare_accuracy

    persons = "all" if scoring.samples is None else f"the first {scoring.samples}"
    job.say(
        f"scoring fp32 and {precision} as fpdctl eval does (flip test {'on' if scoring.flip_test else 'off'}) on "
        f"{persons} {scoring.data} validation persons"
    )
    return compare_accuracy(
        job.runner(fp32_bytes, "fp32"),
        runner,
        data=scoring.data,
        input_size=job.input_size,
        samples=scoring.samples,
        flip_test=scoring.flip_test,
        reference_precision="fp32",
        candidate_precision=precision,
        input_convention=job.net.input_convention,
    )


__all__ = [
    "DEFAULT_CALIBRATION_SAMPLES",
    "EXPORT_PRECISIONS",
    "ExportResult",
    "export_onnx",
]
