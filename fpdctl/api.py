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

import os
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from fpdctl.deploy.bench import BenchResult
    from fpdctl.deploy.export import ExportResult
    from fpdctl.evaluate import EvalResult
    from fpdctl.models.spec import HourglassSpec
    from fpdctl.profiling.profile import ProfileRow
    from fpdctl.train.events import TrainResult

PathLike = str | os.PathLike[str]


def model_spec(model: "str | os.PathLike[str] | HourglassSpec") -> "HourglassSpec":
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
    models: "Sequence[str | os.PathLike[str] | HourglassSpec] | None" = None,
    *,
    reference: "str | HourglassSpec | None" = None,
    grid: bool = False,
    **options: Any,
) -> "list[ProfileRow]":
    """``fpdctl profile``: params, MACs and activation memory (optionally measured latency) of
    models.

    Args:
        models: model names, checkpoint files or specs (None: the paper's grid,
            :func:`~fpdctl.profiling.profile.paper_grid`, plus the reference).
        reference: what the x-fewer columns compare against (None: the teacher,
            :data:`~fpdctl.models.spec.TEACHER_MODEL`).
        grid: ``models`` is a grid of sizes (as the paper's): the reference is added to it.
        **options: :func:`~fpdctl.profiling.profile.profile_specs`'s ``input_size``, ``batch``,
            ``counter``, ``measure``, ``measure_iters``.

    Returns:
        One :class:`~fpdctl.profiling.profile.ProfileRow` per model.
    """
    from fpdctl.models.spec import TEACHER_MODEL
    from fpdctl.profiling.profile import paper_grid, profile_specs

    ref = model_spec(TEACHER_MODEL if reference is None else reference)
    specs = [model_spec(m) for m in models] if models else paper_grid()
    if (grid or not models) and ref not in specs:
        specs = [*specs, ref]
    return profile_specs(specs, reference=ref, **options)


def evaluate(model: PathLike, data: str, *, backend: str = "auto", **options: Any) -> "EvalResult":
    """``fpdctl eval MODEL --data DATA``: a checkpoint, pretrained name or .onnx file scored on
    the validation split of ``data`` (flip test on unless ``flip=False``).

    Args:
        model: a checkpoint file, a pretrained or model name, or an exported .onnx file.
        data: ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` or ``coco:PATH``.
        backend: "auto" (PyTorch for a checkpoint, ONNX Runtime for an .onnx file) or a row of
            the backend table (:mod:`fpdctl.deploy.backends`).
        **options: :func:`~fpdctl.evaluate.evaluate_checkpoint`'s ``input_size``, ``device``,
            ``save_predictions``, ``flip``, ``batch_size``, ``num_workers``, ``threshold``,
            ``progress``, ``input_convention``.

    Returns:
        :class:`~fpdctl.evaluate.EvalResult`: the metric (``result.metric.mean``), predictions
        and timing.
    """
    from fpdctl.deploy.runtime import is_onnx_path

    if backend != "auto" or is_onnx_path(model):  # a row of the backend table runs it
        from fpdctl.deploy.evaluate import evaluate_deployed

        return evaluate_deployed(os.fspath(model), data, backend=backend, **options)
    from fpdctl.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(os.fspath(model), data, **options)


def _train(command: str, config: PathLike | None, resume: bool, overwrite: bool, options: dict) -> "TrainResult":
    from fpdctl.train.api import run_training

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
) -> "TrainResult":
    """``fpdctl train``: train a model on ground truth alone.

    Args:
        config: a YAML / TOML file of options (keywords given here override it).
        resume: continue the run in ``out``.
        overwrite: replace an existing run in ``out``.
        **options: the options of ``fpdctl train`` by their field names in
            :class:`~fpdctl.train.config.TrainConfig` (``out``, ``model``, ``data``, ``max_steps``,
            ``batch_size``, ``lr``, ...), each defaulting to the command's default.

    Returns:
        :class:`~fpdctl.train.events.TrainResult`: ``run_dir``, ``status``, ``final_eval`` (the
        final model's metrics), ``best_metric`` and the run's files.
    """
    return _train("train", config, resume, overwrite, options)


def distill(
    config: PathLike | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> "TrainResult":
    """``fpdctl distill``: train a student with Fast Pose Distillation from a teacher.

    Args:
        config, resume, overwrite: as :func:`train`.
        **options: the options of ``fpdctl distill`` by field name (``teacher``, ``student``,
            ``alpha``, ``out``, ``max_steps``, ...), each defaulting to the command's default.

    Returns:
        :class:`~fpdctl.train.events.TrainResult`, as :func:`train`.
    """
    return _train("distill", config, resume, overwrite, options)


def export(model: Any, output: PathLike, **options: Any) -> "ExportResult":
    """``fpdctl export``: a checkpoint (or name, or network) to a verified ONNX file.

    Args:
        model: a checkpoint file, a pretrained or model name, or an ``HourglassNet``.
        output: the .onnx file to write.
        **options: :func:`~fpdctl.deploy.export.export_onnx`'s (``precision``, ``batch``,
            ``input_size``, ``calibration_data``, ``validation_samples``, ``flip``, ...).

    Returns:
        :class:`~fpdctl.deploy.export.ExportResult` (the file, its metadata and its checks; for
        fp16 / int8, ``accuracy``: both precisions scored as ``fpdctl eval`` scores each file).
    """
    from fpdctl.deploy.export import export_onnx

    return export_onnx(model if not isinstance(model, os.PathLike) else os.fspath(model), output, **options)


def bench(*models: PathLike, **options: Any) -> "BenchResult":
    """``fpdctl bench``: latency, throughput and memory of models on backends.

    Args:
        *models: checkpoint files, names or .onnx files.
        **options: :func:`~fpdctl.deploy.bench.benchmark`'s (``backend``, ``batches``,
            ``iters``, ``threads``, ``accuracy_samples``, ...).

    Returns:
        :class:`~fpdctl.deploy.bench.BenchResult`: one row per model x backend x batch.
    """
    from fpdctl.deploy.bench import benchmark

    return benchmark([os.fspath(m) for m in models], **options)


__all__ = ["bench", "distill", "evaluate", "export", "model_spec", "profile", "train"]
