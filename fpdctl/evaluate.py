"""Run a pose model over a dataset split and score it: the validation loop of ``fpdctl eval``
and of training.

The pipeline per batch: the dataset's crop (no augmentation) -> the network's last stack ->
optionally the flip test (the mirrored crop's heatmaps mapped back with
:func:`~fpdctl.codec.flip_back` and averaged) -> the codec's decode (argmax plus the quarter
pixel shift, in input px) -> the inverse of the sample's affine (original image px). The metric is
the one the dataset names (PCKh for MPII and synthetic data, PCK for LSP), computed by
:mod:`fpdctl.metrics`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from fpdctl.codec import HeatmapCodec, flip_back
from fpdctl.skeleton import JOINT_SETS, LSP_TO_MPII, MPII
from fpdctl.data.transforms import invert_affine, transform_points
from fpdctl.errors import DataError, UsageError
from fpdctl.metrics import AccuracyResult, EvalReference, evaluate_reference
from fpdctl.utils.device import resolve_device


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
    """

    metric: AccuracyResult
    coords: np.ndarray
    scores: np.ndarray
    seconds: float
    flip: bool
    device: str

    @property
    def num_images(self) -> int:
        return int(self.coords.shape[0])

    @property
    def images_per_second(self) -> float:
        return self.num_images / self.seconds if self.seconds > 0 else float("nan")


def _input_memory_format(model: nn.Module) -> torch.memory_format:
    """Feed inputs in the layout of the first convolution's weights, so the first layer does not
    pay for a layout conversion (the CLI turns models channels_last on CUDA, where that is faster).
    """
    for param in model.parameters():
        if param.dim() == 4:
            if param.is_contiguous(memory_format=torch.channels_last) and not param.is_contiguous():
                return torch.channels_last
            break
    return torch.contiguous_format


def _last_stack(output: torch.Tensor | tuple | list) -> torch.Tensor:
    """The final heatmaps [N, J, h, w] of a [N, S, J, h, w] output (or of a list of stacks)."""
    if isinstance(output, (tuple, list)):
        output = output[-1]
    if output.dim() == 5:
        return output[:, -1]
    if output.dim() == 4:
        return output
    raise UsageError(
        f"the model returned a tensor of shape {tuple(output.shape)}; expected [N, S, J, h, w] "
        "or [N, J, h, w] heatmaps"
    )


def predict_dataset(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    flip: bool = True,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict every person of a :class:`~fpdctl.data.dataset.PoseDataset` in original image px.

    The model is run in eval mode under ``torch.inference_mode`` on ``device`` (it is moved
    there); its previous train/eval mode is restored afterwards, so a training loop can call this
    for validation.

    Args:
        model: returns [N, S, 16, h, w] heatmaps (the last stack is used).
        dataset: samples with "image" [3, H, W] and meta["affine"] [2, 3] (original -> input px).
        flip: average with the heatmaps of the mirrored input (the flip test).
        batch_size: persons per forward pass (the flip test doubles the pass).
        device: "auto", "cpu", "cuda", "cuda:N", "mps" or a torch.device.
        num_workers: DataLoader worker processes.
        progress: called as ``progress(done, total)`` after each batch (persons so far).

    Returns:
        coords: float32 [N, 16, 2] (x, y) in original image px, MPII order.
        scores: float32 [N, 16] heatmap peak values.

    Raises:
        UsageError: bad batch size or worker count, or a model without 16 MPII channels.
    """
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {num_workers}")
    target = resolve_device(device)
    n = len(dataset)  # type: ignore[arg-type]
    coords = np.zeros((n, MPII.num_joints, 2), dtype=np.float32)
    scores = np.zeros((n, MPII.num_joints), dtype=np.float32)
    if n == 0:
        return coords, scores
    codec: HeatmapCodec | None = getattr(dataset, "codec", None)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=target.type == "cuda",
    )
    was_training = model.training
    model.to(target)
    model.eval()
    memory_format = _input_memory_format(model)
    filled = np.zeros(n, dtype=bool)
    try:
        with torch.inference_mode():
            for batch in loader:
                images = batch["image"].to(target, non_blocking=True)
                images = images.contiguous(memory_format=memory_format)
                count = images.shape[0]
                if flip:
                    # One pass over the batch and its mirror keeps the GPU busier than two.
                    both = torch.cat([images, torch.flip(images, dims=[3])])
                    heatmaps = _last_stack(model(both))
                    heatmaps = (heatmaps[:count] + flip_back(heatmaps[count:], MPII)) * 0.5
                else:
                    heatmaps = _last_stack(model(images))
                if heatmaps.shape[1] != MPII.num_joints:
                    raise UsageError(
                        f"the model predicts {heatmaps.shape[1]} joints; evaluation needs the "
                        f"{MPII.num_joints} MPII channels"
                    )
                if codec is None:
                    codec = HeatmapCodec(images.shape[-1], heatmaps.shape[-1])
                input_coords, peak = codec.decode(heatmaps)
                affines = batch["meta"]["affine"].numpy().astype(np.float64)
                inverse = np.stack([invert_affine(a) for a in affines])
                index = batch["meta"]["index"].numpy().astype(np.int64)
                coords[index] = transform_points(input_coords, inverse)
                scores[index] = peak
                filled[index] = True
                if progress is not None:
                    progress(int(filled.sum()), n)
    finally:
        model.train(was_training)
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
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    flip: bool = True,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
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
        metric=metric, coords=coords, scores=scores, seconds=seconds, flip=flip, device=str(target)
    )
