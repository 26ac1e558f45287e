"""fpdctl's core operations as Python functions: what each command does, without the printing.

Each function takes the command's arguments as keywords, with the command's defaults (defined once,
in the core function it calls, and read from there), and returns the typed result the command
renders. The CLI calls these same functions. They are also the top-level names of the package
(``fpdctl.evaluate(...)``, ``fpdctl.distill(...)``), imported lazily: ``import fpdctl`` loads
neither torch nor any of this.

Example (the README's "Python API" section runs the same steps as a test)::

    import fpdctl

    run = fpdctl.distill(teacher="synthetic-hg2x64", student="hg1x32", max_steps=20, out="runs/s")
    score = fpdctl.evaluate(run.run_dir / "last.safetensors", data="synthetic")
    onnx = fpdctl.export(run.run_dir / "last.safetensors", "student.onnx")
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any, Callable, Sequence

from fpdctl.deploy.bench import benchmark
from fpdctl.deploy.pose import Pose
from fpdctl.deploy.predict import predict as predict_files
from fpdctl.pipeline import INFERENCE_BATCH_SIZE
from fpdctl.profiling.profile import profile_specs
from fpdctl.utils.device import DEFAULT_DEVICE

if TYPE_CHECKING:
    import torch

    from fpdctl.data.kinds import DataSpec
    from fpdctl.deploy.bench import BenchResult
    from fpdctl.deploy.export import ExportResult
    from fpdctl.deploy.persons import PredictResult
    from fpdctl.deploy.pose_result import DetectorLike
    from fpdctl.deploy.preprocess_decode import Embedding
    from fpdctl.evaluation import EvalResult
    from fpdctl.models.convention import ConventionOverride
    from fpdctl.models.spec import HourglassSpec
    from fpdctl.pipeline import Box
    from fpdctl.profiling.profile import ProfileRow
    from fpdctl.progress import Progress
    from fpdctl.training.events import TrainResult

PathLike = str | os.PathLike[str]


def _default(function: Callable[..., Any], name: str) -> Any:
    """The default of ``function``'s parameter ``name``: each default is defined once, in the
    core function, and the API's signatures read it from there (so ``inspect.signature`` and
    ``help()`` show every parameter with its value)."""
    return inspect.signature(function).parameters[name].default


def model_spec(model: str | os.PathLike[str] | HourglassSpec) -> HourglassSpec:
    """The architecture of a model name, a pretrained name or a checkpoint file (read from its
    tensors; the weights are not loaded into a network).

    Raises:
        UsageError: a bad model name; CheckpointError: an unreadable checkpoint.
    """
    from fpdctl.models.spec import HourglassSpec, is_checkpoint_path, resolve_spec
    from fpdctl.pretrained import is_pretrained_name

    if isinstance(model, HourglassSpec):
        return model
    text = os.fspath(model)
    if is_checkpoint_path(text) or is_pretrained_name(text):
        from fpdctl.models.checkpoint import describe_checkpoint

        return describe_checkpoint(text)["spec"]
    return resolve_spec(text)


def profile(
    models: Sequence[str | os.PathLike[str] | HourglassSpec] | None = None,
    *,
    reference: str | HourglassSpec | None = None,
    grid: bool = False,
    input_size: int = _default(profile_specs, "input_size"),
    batch: int = _default(profile_specs, "batch"),
    counter: str = _default(profile_specs, "counter"),
    measure: bool = False,
    measure_iters: int = _default(profile_specs, "measure_iters"),
) -> list[ProfileRow]:
    """``fpdctl profile``: params, MACs and activation memory (optionally measured latency) of
    models.

    Args:
        models: model names, checkpoint files or specs (None: the paper's grid,
            :func:`~fpdctl.profiling.profile.paper_grid`, plus the reference).
        reference: what the x-fewer columns compare against (None: the teacher,
            :data:`~fpdctl.models.spec.TEACHER_MODEL`).
        grid: ``models`` is a grid of sizes (as the paper's): the reference is added to it.
        input_size, batch, counter, measure, measure_iters: as
            :func:`~fpdctl.profiling.profile.profile_specs`.

    Returns:
        One :class:`~fpdctl.profiling.profile.ProfileRow` per model.
    """
    from fpdctl.models.spec import TEACHER_MODEL
    from fpdctl.profiling.profile import paper_grid

    ref = model_spec(TEACHER_MODEL if reference is None else reference)
    specs = [model_spec(m) for m in models] if models else paper_grid()
    if (grid or not models) and ref not in specs:
        specs = [*specs, ref]
    return profile_specs(
        specs,
        reference=ref,
        input_size=input_size,
        batch=batch,
        counter=counter,  # type: ignore[arg-type]
        measure=measure,
        measure_iters=measure_iters,
    )


def evaluate(
    model: PathLike | torch.nn.Module,
    data: str | DataSpec,
    *,
    backend: str = "auto",
    device: str = DEFAULT_DEVICE,
    input_size: int | None = None,
    boxes: PathLike | None = None,
    flip_test: bool = _default(Pose.val, "flip_test"),
    batch_size: int = INFERENCE_BATCH_SIZE,
    num_workers: int = _default(Pose.val, "num_workers"),
    threshold: float | None = None,
    save_predictions: PathLike | None = None,
    threads: int | None = None,
    input_convention: ConventionOverride | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """``fpdctl eval MODEL --data DATA``: a model scored on the validation split of ``data``:
    ``Pose(model, backend, device, input_size).val(data, boxes, flip_test, ...)``.

    Args:
        model: a checkpoint file, a pretrained or model name (a bare model name, random
            weights, takes the data's joints), an exported .onnx file, or a network.
        data: ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` or ``coco:PATH``.
        backend, device, input_size, threads, input_convention: as :class:`~fpdctl.deploy.pose.Pose`
            (``device="auto"``: the one rule of :func:`~fpdctl.deploy.placement.run_device`, for
            a checkpoint and an .onnx file alike).
        boxes, flip_test, batch_size, num_workers, threshold, save_predictions, progress: as
            :meth:`Pose.val <fpdctl.deploy.pose.Pose.val>` (``boxes``: a COCO detections JSON,
            on every backend).

    Returns:
        :class:`~fpdctl.evaluation.EvalResult`: the metric (``result.metric.mean``), predictions
        and timing.
    """
    if isinstance(model, (str, os.PathLike)):
        from fpdctl.data.registry import spec_for_data
        from fpdctl.deploy.runtime import is_onnx_path
        from fpdctl.models.spec import is_checkpoint_path
        from fpdctl.pretrained import is_pretrained_name

        text = os.fspath(model)
        if not (is_onnx_path(text) or is_checkpoint_path(text) or is_pretrained_name(text)):
            model = spec_for_data(text, data).name  # random weights: the data's joints, as training gives
    pose = Pose(model, backend, device, input_size, threads=threads, input_convention=input_convention)
    return pose.val(
        data,
        boxes,
        flip_test,
        batch_size=batch_size,
        num_workers=num_workers,
        threshold=threshold,
        save_predictions=save_predictions,
        progress=progress,
    )


def _train(command: str, config: PathLike | None, resume: bool, overwrite: bool, options: dict) -> TrainResult:
    from fpdctl.training.api import run_training

    given = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in options.items() if v is not None}
    out = given.pop("out", None)
    return run_training(
        command,
        out=None if resume else out,
        resume=out if resume else None,
        overwrite=overwrite,
        config_file=config,
        **given,
    )


def train(
    config: PathLike | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> TrainResult:
    """``fpdctl train``: train a model on ground truth alone.

    Args:
        config: a YAML / TOML file of options (keywords given here override it).
        resume: continue the run in ``out``.
        overwrite: replace an existing run in ``out``.
        **options: the options of ``fpdctl train`` by their field names in
            :class:`~fpdctl.training.config.TrainConfig` (``out``, ``model``, ``data``, ``max_steps``,
            ``batch_size``, ``lr``, ...), each defaulting to the command's default.

    Returns:
        :class:`~fpdctl.training.events.TrainResult`: ``run_dir``, ``status``, ``final_eval`` (the
        final model's metrics), ``best_metric`` and the run's files.
    """
    return _train("train", config, resume, overwrite, options)


def distill(
    config: PathLike | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> TrainResult:
    """``fpdctl distill``: train a student with Fast Pose Distillation from a teacher.

    Args:
        config, resume, overwrite: as :func:`train`.
        **options: the options of ``fpdctl distill`` by field name (``teacher``, ``student``,
            ``alpha``, ``out``, ``max_steps``, ...), each defaulting to the command's default.

    Returns:
        :class:`~fpdctl.training.events.TrainResult`, as :func:`train`.
    """
    return _train("distill", config, resume, overwrite, options)


def export(
    model: PathLike | torch.nn.Module,
    output: PathLike,
    *,
    precision: str = _default(Pose.export, "precision"),
    input_size: int | None = None,
    batch: int | None = None,
    opset: int = _default(Pose.export, "opset"),
    all_stacks: bool = False,
    calibration_data: str = _default(Pose.export, "calibration_data"),
    calibration_samples: int = _default(Pose.export, "calibration_samples"),
    validation_samples: int | None = None,
    flip_test: bool = _default(Pose.export, "flip_test"),
    verify: bool = _default(Pose.export, "verify"),
    verify_random: int = _default(Pose.export, "verify_random"),
    verify_images: int = _default(Pose.export, "verify_images"),
    threads: int | None = None,
    exporter: str = _default(Pose.export, "exporter"),
    input_convention: ConventionOverride | None = None,
    embedding: Embedding | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """``fpdctl export``: a checkpoint, name or network to a verified ONNX file:
    ``Pose(model, "torch", "cpu", input_size).export(output, ...)``.

    Args:
        model: a checkpoint file, a pretrained or model name, or a network (``load_model``'s
            remembers the size it was trained at, so it is exported at that size).
        output: the .onnx file to write.
        input_size: the side to export at (None: the size the model was trained at).
        the others: as :func:`~fpdctl.deploy.export.export_onnx`.

    Returns:
        :class:`~fpdctl.deploy.export.ExportResult` (the file, its metadata and its checks; for
        fp16 / int8, ``accuracy``: both precisions scored as ``fpdctl eval`` scores each file).
    """
    pose = Pose(model, "torch", "cpu", input_size, threads=threads, input_convention=input_convention)
    return pose.export(
        output,
        precision=precision,
        batch=batch,
        opset=opset,
        all_stacks=all_stacks,
        calibration_data=calibration_data,
        calibration_samples=calibration_samples,
        validation_samples=validation_samples,
        flip_test=flip_test,
        verify=verify,
        verify_random=verify_random,
        verify_images=verify_images,
        exporter=exporter,
        embedding=embedding,
        progress=progress,
    )


def bench(
    *models: PathLike,
    backend: str = _default(benchmark, "backend"),
    batches: Sequence[int] = _default(benchmark, "batches"),
    threads: int | None = None,
    warmup: int = _default(benchmark, "warmup"),
    iters: int | None = None,
    duration: float | None = None,
    device: str = DEFAULT_DEVICE,
    precisions: Sequence[str] | None = None,
    end_to_end: bool = False,
    input_size: int | None = None,
    calibration_samples: int = _default(benchmark, "calibration_samples"),
    spin_us: int | None = None,
    input_convention: ConventionOverride | None = None,
    embedding: Embedding | None = None,
    accuracy_samples: int = _default(benchmark, "accuracy_samples"),
    accuracy_data: str = _default(benchmark, "accuracy_data"),
    progress: Progress | None = None,
) -> BenchResult:
    """``fpdctl bench``: latency, throughput and memory of models on backends (one model:
    :meth:`Pose.bench <fpdctl.deploy.pose.Pose.bench>`).

    Args:
        *models: checkpoint files, names or .onnx files.
        the others: as :func:`~fpdctl.deploy.bench.benchmark` (``device="auto"``: each row where
            :func:`~fpdctl.deploy.placement.run_device` puts its runtime).

    Returns:
        :class:`~fpdctl.deploy.bench.BenchResult`: one row per model x backend x batch.
    """
    return benchmark(
        [os.fspath(m) for m in models],
        backend=backend,
        batches=batches,
        threads=threads,
        warmup=warmup,
        iters=iters,
        duration=duration,
        device=device,
        precisions=precisions,
        end_to_end=end_to_end,
        input_size=input_size,
        calibration_samples=calibration_samples,
        spin_us=spin_us,
        input_convention=input_convention,
        embedding=embedding,
        accuracy_samples=accuracy_samples,
        accuracy_data=accuracy_data,
        progress=progress,
    )


def predict(
    model: PathLike | torch.nn.Module | Pose,
    source: PathLike,
    out: PathLike = _default(predict_files, "out"),
    *,
    bbox: Box | None = None,
    boxes: PathLike | None = None,
    annotations: PathLike | None = None,
    detector: PathLike | DetectorLike | None = None,
    det_score: float = _default(predict_files, "det_score"),
    det_iou: float = _default(predict_files, "det_iou"),
    frame_base: int = _default(predict_files, "frame_base"),
    overwrite: bool = False,
    backend: str = "auto",
    device: str = DEFAULT_DEVICE,
    threads: int | None = None,
    input_size: int | None = None,
    draw: bool = _default(predict_files, "draw"),
    min_score: float = _default(predict_files, "min_score"),
    max_frames: int | None = None,
    batch_size: int = INFERENCE_BATCH_SIZE,
    input_convention: ConventionOverride | None = None,
    progress: Progress | None = None,
) -> PredictResult:
    """``fpdctl predict``: keypoints of every person of an image, a folder of images or a video,
    written to ``out`` (keypoints.json and the drawn inputs). In memory, without files:
    ``fpdctl.Pose(model)(images, boxes)``.

    Args:
        model: a checkpoint, pretrained or model name, .onnx file, network, or a :class:`Pose`
            (then ``backend``, ``device``, ``threads``, ``input_size`` and
            ``input_convention`` are its own).
        source: an image, a folder of images or a video.
        out: the output folder.
        backend, device, threads, input_size, input_convention: as :class:`Pose`.
        the others: as :func:`fpdctl.deploy.predict.predict`.

    Returns:
        :class:`~fpdctl.deploy.persons.PredictResult`.
    """
    from functools import partial

    # Opened once the inputs are checked: a bad input fails before the model loads.
    pose = (
        model
        if isinstance(model, Pose)
        else partial(Pose, model, backend, device, input_size, threads=threads, input_convention=input_convention)
    )
    return predict_files(
        pose,
        source,
        out=out,
        bbox=bbox,
        boxes=boxes,
        annotations=annotations,
        detector=detector,
        det_score=det_score,
        det_iou=det_iou,
        frame_base=frame_base,
        overwrite=overwrite,
        draw=draw,
        min_score=min_score,
        max_frames=max_frames,
        batch_size=batch_size,
        progress=progress,
    )


__all__ = ["Pose", "bench", "distill", "evaluate", "export", "model_spec", "predict", "profile", "train"]
