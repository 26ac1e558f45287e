"""Score a pose model over a dataset split: the validation loop of ``fpdctl eval``, of training
and of export verification.

The model is any runner: a torch module, or a numpy runner such as an ONNX Runtime session
(:class:`~fpdctl.deploy.runtime.Runner`). The pipeline per batch (:mod:`fpdctl.pipeline`): the
dataset's crop, already normalised (no augmentation) -> the runner's last stack -> optionally the
flip test (the mirrored crop's heatmaps mapped back with :func:`~fpdctl.codec.flip_back` and
averaged) -> the codec's decode (argmax plus the quarter pixel shift, in input px) -> the inverse
of the sample's affine (original image px). The metric is the one the dataset names (PCKh for
MPII and synthetic data, PCK for LSP), computed by :mod:`fpdctl.metrics`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import numpy as np
import torch
from torch import nn

from fpdctl.codec import HeatmapCodec, flip_back
from fpdctl.errors import DataError, UsageError
from fpdctl.metrics import AccuracyResult, EvalReference, evaluate_reference
from fpdctl.pipeline import ArrayRunner, last_stack, to_image
from fpdctl.progress import Progress, report
from fpdctl.skeleton import JOINT_SETS, LSP_TO_MPII, MPII
from fpdctl.utils.device import resolve_device

# What evaluation runs: a torch module ([N, 3, S, S] tensor -> [N, S, J, h, w]) or a numpy runner.
Model = Union[nn.Module, ArrayRunner]


@dataclass(frozen=True)
class EvalResult:
    """A model's accuracy on one split, with its predictions.

    Attributes:
        metric: PCKhResult (MPII, synthetic) or PCKResult (LSP).
        coords: float32 [N, 16, 2] predicted joints in original image px (0-based), MPII order.
        scores: float32 [N, 16] heatmap peak values.
        seconds: wall time of the prediction loop (data loading, network, decoding).
        flip: whether the flip test was used.
        device: the device the network ran on, e.g. "cpu" or "cuda:0".
        input_size: the network's input side in px (the dataset's), when it says.
    """

    metric: AccuracyResult
    coords: np.ndarray
    scores: np.ndarray
    seconds: float
    flip: bool
    device: str
    input_size: int | None = None

    @property
    def num_images(self) -> int:
        return int(self.coords.shape[0])

    @property
    def images_per_second(self) -> float:
        return self.num_images / self.seconds if self.seconds > 0 else float("nan")


def _input_memory_format(model: Model) -> torch.memory_format:
    """Feed inputs in the layout of the first convolution's weights, so the first layer does not
    pay for a layout conversion (:func:`evaluate_checkpoint` turns models channels_last on CUDA,
    where that is faster). A numpy runner takes a contiguous array.
    """
    if not isinstance(model, nn.Module):
        return torch.contiguous_format
    for param in model.parameters():
        if param.dim() == 4:
            if param.is_contiguous(memory_format=torch.channels_last) and not param.is_contiguous():
                return torch.channels_last
            break
    return torch.contiguous_format


@contextlib.contextmanager
def _inference(model: Model, target: torch.device) -> Iterator[None]:
    """``torch.inference_mode``, with a torch module on ``target`` in eval mode and its previous
    train/eval mode restored afterwards (a training loop validates with this)."""
    module = model if isinstance(model, nn.Module) else None
    was_training = module is not None and module.training
    if module is not None:
        module.to(target)
        module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if module is not None:
            module.train(was_training)


def _run(model: Model, images: torch.Tensor) -> torch.Tensor:
    """The final stack's heatmaps [N, J, h, w] of ``images``, from a module or a numpy runner."""
    if isinstance(model, nn.Module):
        return last_stack(model(images))
    return torch.from_numpy(last_stack(model(images.detach().float().cpu().numpy())))


def _heatmaps(model: Model, images: torch.Tensor, flip: bool) -> torch.Tensor:
    """The final heatmaps, averaged with those of the mirrored input for the flip test."""
    if not flip:
        return _run(model, images)
    count = images.shape[0]
    # One pass over the batch and its mirror keeps the GPU busier than two.
    heatmaps = _run(model, torch.cat([images, torch.flip(images, dims=[3])]))
    return (heatmaps[:count] + flip_back(heatmaps[count:], MPII)) * 0.5


def _check_loader_options(batch_size: int, num_workers: int) -> None:
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {num_workers}")


def predict_dataset(
    model: Model,
    dataset: torch.utils.data.Dataset,
    *,
    flip: bool = True,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict every person of a :class:`~fpdctl.data.dataset.PoseDataset` in original image px.

    A torch module is run in eval mode under ``torch.inference_mode`` on ``device`` (it is moved
    there); its previous train/eval mode is restored afterwards, so a training loop can call this
    for validation. A numpy runner gets host arrays and runs where it was built.

    Args:
        model: a torch module returning [N, S, 16, h, w] heatmaps (the last stack is used), or a
            numpy runner (float32 [N, 3, S, S] -> heatmaps).
        dataset: samples with "image" [3, H, W] and meta["affine"] [2, 3] (original -> input px).
        flip: average with the heatmaps of the mirrored input (the flip test).
        batch_size: persons per forward pass (the flip test doubles the pass).
        device: "auto", "cpu", "cuda", "cuda:N", "mps" or a torch.device.
        num_workers: DataLoader worker processes.
        progress: gets an "eval.batch" event after each batch (``done`` of ``total`` persons).

    Returns:
        coords: float32 [N, 16, 2] (x, y) in original image px, MPII order.
        scores: float32 [N, 16] heatmap peak values.

    Raises:
        UsageError: bad batch size or worker count, or a model without 16 MPII channels.
    """
    _check_loader_options(batch_size, num_workers)
    target = resolve_device(device)
    n = len(dataset)  # type: ignore[arg-type]
    coords = np.zeros((n, MPII.num_joints, 2), dtype=np.float32)
    scores = np.zeros((n, MPII.num_joints), dtype=np.float32)
    if n == 0:
        return coords, scores
    codec: HeatmapCodec | None = getattr(dataset, "codec", None)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        pin_memory=target.type == "cuda",
    )
    filled = np.zeros(n, dtype=bool)
    with _inference(model, target):
        memory_format = _input_memory_format(model)
        for batch in loader:
            images = batch["image"].to(target, non_blocking=True).contiguous(memory_format=memory_format)
            heatmaps = _heatmaps(model, images, flip)
            if heatmaps.shape[1] != MPII.num_joints:
                raise UsageError(
                    f"the model predicts {heatmaps.shape[1]} joints; evaluation needs the "
                    f"{MPII.num_joints} MPII channels"
                )
            index = batch["meta"]["index"].numpy().astype(np.int64)
            affines = batch["meta"]["affine"].numpy().astype(np.float64)
            coords[index], scores[index] = to_image(heatmaps, affines, images.shape[-1], codec)
            filled[index] = True
            report(progress, "eval.batch", done=int(filled.sum()), total=n)
    if not filled.all():
        missing = int(np.argmin(filled))
        raise DataError(f"the dataset returned no sample with index {missing} ({int((~filled).sum())} missing)")
    return coords, scores


def predictions_for_reference(coords: np.ndarray, reference: EvalReference) -> np.ndarray:
    """Select the reference's joints from 16-channel MPII-order predictions.

    Args:
        coords: [N, 16, 2] predictions in MPII order.

    Returns:
        [N, J, 2] in the reference's joint order (LSP: the 14 mapped channels).
    """
    if reference.joint_set == "mpii":
        return coords
    if reference.joint_set == "lsp":
        return coords[:, list(LSP_TO_MPII)]
    raise DataError(
        f"unknown joint set '{reference.joint_set}' (known: {', '.join(sorted(JOINT_SETS))})"
    )


def evaluate_model(
    model: Model,
    dataset: torch.utils.data.Dataset,
    *,
    flip: bool = True,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    threshold: float | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Predict a dataset split and score it with the dataset's metric.

    Args:
        model, dataset, flip, batch_size, device, num_workers, progress: as
            :func:`predict_dataset`.
        threshold: metric threshold; None for the standard one (PCKh@0.5, PCK@0.2).

    Returns:
        EvalResult with the metric, the predictions and the timing.

    Raises:
        DataError: the split is empty or its ground truth cannot be scored (e.g. no head boxes).
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise DataError("the evaluation split is empty")
    # The ground truth first: a split that cannot be scored fails before any network time.
    reference: EvalReference = dataset.eval_reference()  # type: ignore[attr-defined]
    target = resolve_device(device)
    start = time.perf_counter()
    coords, scores = predict_dataset(
        model, dataset, flip=flip, batch_size=batch_size, device=target, num_workers=num_workers,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    metric = evaluate_reference(predictions_for_reference(coords, reference), reference, threshold=threshold)
    return EvalResult(
        metric=metric, coords=coords, scores=scores, seconds=seconds, flip=flip, device=str(target),
        input_size=getattr(dataset, "input_size", None),
    )


def evaluate_checkpoint(
    model: str,
    data: str,
    *,
    input_size: int | None = None,
    device: str = "auto",
    save_predictions: str | Path | None = None,
    flip: bool = True,
    batch_size: int = 32,
    num_workers: int = 0,
    threshold: float | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """``fpdctl eval MODEL --data DATA``: load a checkpoint (or a named model, with random
    weights) and score it on the validation split of ``data``.

    Args:
        model: a checkpoint file or a model name.
        data: ``synthetic[:KEY=VAL,...]``, ``mpii:PATH`` or ``lsp:PATH``.
        input_size: the network's input side (None: the size the checkpoint was trained at, else
            the default).
        device: "auto", "cpu", "cuda", "cuda:N" or "mps"; on CUDA the model runs channels_last
            (faster cuDNN convolutions).
        save_predictions: also write the predictions there (.mat, .npy or .json); the path is
            checked before the network runs.
        flip, batch_size, num_workers, threshold, progress: as :func:`evaluate_model`.

    Raises:
        UsageError / InputError / CheckpointError / DataError: bad options, model, data or output.
    """
    from fpdctl.data.registry import build_dataset, parse_data_spec
    from fpdctl.metrics.files import check_prediction_output, save_predictions as save
    from fpdctl.models.checkpoint import create_model, resolve_input_size

    _check_loader_options(batch_size, num_workers)
    spec = parse_data_spec(data)
    target = resolve_device(device)
    if save_predictions is not None:
        check_prediction_output(save_predictions)  # fail before the network runs, not after
    input_size = resolve_input_size(model, input_size)
    net = create_model(model).eval()
    net.spec.check_input_size(input_size)
    if target.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    dataset = build_dataset(spec, "val", input_size=input_size)
    result = evaluate_model(
        net, dataset, flip=flip, batch_size=batch_size, device=target, num_workers=num_workers,
        threshold=threshold, progress=progress,
    )
    if save_predictions is not None:
        save(save_predictions, result.coords)
    return result


__all__ = [
    "EvalResult",
    "evaluate_checkpoint",
    "evaluate_model",
    "predict_dataset",
    "predictions_for_reference",
]
