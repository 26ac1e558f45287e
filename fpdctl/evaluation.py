"""Score a pose model over a dataset split: the validation loop of ``fpdctl eval``, of training
and of export verification.

The model is any runner: a torch module, or a numpy runner such as an ONNX Runtime session
(:class:`~fpdctl.deploy.runtime.Runner`). The pipeline per batch (:mod:`fpdctl.pipeline`): the
dataset's crop, already normalised (no augmentation) -> the runner's last stack -> optionally the
flip test (the mirrored crop's heatmaps mapped back with :func:`~fpdctl.codec.flip_back` and
averaged) -> the codec's decode (argmax plus the quarter pixel shift, in input px) -> the inverse
of the sample's affine (original image px). The heatmap channels are the dataset's
(``channel_joint_set``: MPII's 16 for MPII, LSP and synthetic data, COCO's 17 for COCO), so a model
must predict that many. The metric is the one the dataset names (PCKh for MPII and synthetic data,
PCK for LSP, OKS AP for COCO, with the heatmap peaks as keypoint scores), computed by
:mod:`fpdctl.metrics`.
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
from fpdctl.data.kinds import DataSpec
from fpdctl.errors import DataError, UsageError
from fpdctl.metrics import (
    COCOReference,
    COCOResult,
    EvalReference,
    MetricResult,
    check_threshold,
    evaluate_reference,
)
from fpdctl.models.convention import NATIVE, ConventionOverride, InputConvention
from fpdctl.models.input_adapter import convert_tensor
from fpdctl.pipeline import INFERENCE_BATCH_SIZE, ArrayRunner, last_stack, to_image
from fpdctl.progress import Progress, report
from fpdctl.skeleton import JOINT_SETS, LSP, LSP_TO_MPII, MPII, JointSet, channel_joint_set
from fpdctl.utils.device import resolve_device

# What evaluation runs: a torch module ([N, 3, S, S] tensor -> [N, S, J, h, w]) or a numpy runner.
Model = Union[nn.Module, ArrayRunner]


@dataclass(frozen=True)
class EvalResult:
    """A model's accuracy on one split, with its predictions.

    Attributes:
        metric: PCKhResult (MPII, synthetic), PCKResult (LSP) or COCOResult (COCO).
        coords: float32 [N, J, 2] predicted joints in original image px (0-based), in the
            dataset's channel order (MPII's 16, or COCO's 17).
        scores: float32 [N, J] heatmap peak values.
        seconds: wall time of the prediction loop (data loading, network, decoding).
        flip_test: whether the flip test was used.
        device: the device the network ran on, e.g. "cpu" or "cuda:0".
        input_size: the network's input side in px (the dataset's), when it says.
        input_convention: how the model's inputs were normalised (its own convention, or the
            user's override); the dataset's NATIVE crops were converted to it.
        reference: the ground truth scored against (COCO's carries the image ids that the
            results JSON names).
        backend: the row of the backend table that ran the network ("torch": eager PyTorch,
            fp32; ``fpdctl eval --backend`` picks another).
    """

    metric: MetricResult
    coords: np.ndarray
    scores: np.ndarray
    seconds: float
    flip_test: bool
    device: str
    input_size: int | None = None
    input_convention: InputConvention | None = None
    reference: EvalReference | None = None
    backend: str = "torch"

    @property
    def num_persons(self) -> int:
        """The persons scored (one crop each; an image may hold several)."""
        return int(self.coords.shape[0])

    @property
    def persons_per_second(self) -> float:
        return self.num_persons / self.seconds if self.seconds > 0 else float("nan")


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
        # float(): under autocast (a training run's validation) the heatmaps come out in bf16 or
        # fp16; the flip average and the decode's sub-pixel comparisons are done in float32.
        return last_stack(model(images)).float()
    return torch.from_numpy(last_stack(model(images.detach().float().cpu().numpy())))


def _heatmaps(model: Model, images: torch.Tensor, flip_test: bool, joint_set: JointSet) -> torch.Tensor:
    """The final heatmaps, averaged with those of the mirrored input for the flip test
    (``joint_set``: the channels', whose left/right pairs the mirror swaps)."""
    if not flip_test:
        return _run(model, images)
    count = images.shape[0]
    # One pass over the batch and its mirror keeps the GPU busier than two.
    heatmaps = _run(model, torch.cat([images, torch.flip(images, dims=[3])]))
    _check_channels(heatmaps, joint_set)
    return (heatmaps[:count] + flip_back(heatmaps[count:], joint_set)) * 0.5


def dataset_channels(dataset: object) -> JointSet:
    """The heatmap channels a dataset's samples are made for (MPII's 16 unless it says)."""
    channels = getattr(dataset, "channel_joint_set", None)
    if channels is None:
        channels = channel_joint_set(getattr(dataset, "joint_set", None) or MPII)
    return channels


def check_model_joints(num_joints: int, joint_set: JointSet) -> None:
    """Refuse a model whose heatmap count is not the data's.

    Raises:
        UsageError: naming both counts.
    """
    if num_joints != joint_set.num_joints:
        raise UsageError(
            f"the model predicts {num_joints} joints but the data has the {joint_set.num_joints} "
            f"{joint_set.name.upper()} joints"
        )


def _check_channels(heatmaps: torch.Tensor, joint_set: JointSet) -> None:
    check_model_joints(int(heatmaps.shape[1]), joint_set)


def _check_loader_options(batch_size: int, num_workers: int) -> None:
    if batch_size < 1:
        raise UsageError(f"`batch_size` must be at least 1, got {batch_size}", params="batch_size")
    if num_workers < 0:
        raise UsageError(f"`num_workers` must be 0 or more, got {num_workers}", params="num_workers")


def _refuse_unreadable(batch: dict) -> None:
    """Refuse a batch holding a sample whose image could not be read: the protocol scores every
    person, and a grey crop would be scored as a wrong prediction without a word.

    Raises:
        DataError: naming the first such image and the person's index.
    """
    errors = batch["meta"].get("image_error") if isinstance(batch.get("meta"), dict) else None
    if not errors:
        return
    bad = [(int(i), str(e)) for i, e in zip(batch["meta"]["index"], errors) if e]
    if bad:
        index, error = bad[0]
        raise DataError(
            f"{error} (person {index}); every person is scored, so evaluation stops: restore the "
            "image or remove the person from the annotations"
        )


def predict_dataset(
    model: Model,
    dataset: torch.utils.data.Dataset,
    *,
    flip_test: bool = True,
    batch_size: int = INFERENCE_BATCH_SIZE,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: Progress | None = None,
    input_convention: InputConvention | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict every person of a :class:`~fpdctl.data.dataset.PoseDataset` in original image px.

    A torch module is run in eval mode under ``torch.inference_mode`` on ``device`` (it is moved
    there); its previous train/eval mode is restored afterwards, so a training loop can call this
    for validation. A numpy runner gets host arrays and runs where it was built.

    Args:
        model: a torch module returning [N, S, J, h, w] heatmaps (the last stack is used), or a
            numpy runner (float32 [N, 3, S, S] -> heatmaps); J is the dataset's channel count.
        dataset: samples with "image" [3, H, W] and meta["affine"] [2, 3] (original -> input px).
        flip_test: average with the heatmaps of the mirrored input (the flip test).
        batch_size: persons per forward pass (the flip test doubles the pass).
        device: "auto", "cpu", "cuda", "cuda:N", "mps" or a torch.device.
        num_workers: DataLoader worker processes.
        progress: gets an "eval.batch" event after each batch (``done`` of ``total`` persons).
        input_convention: the model's input convention: the dataset's NATIVE crops are converted
            to it (:func:`model_convention` when None).

    Returns:
        coords: float32 [N, J, 2] (x, y) in original image px, the dataset's channel order.
        scores: float32 [N, J] heatmap peak values.

    Raises:
        UsageError: bad batch size or worker count, or a model whose channel count is not the
            dataset's.
        DataError: an image that cannot be read (named); evaluation scores every person.
    """
    _check_loader_options(batch_size, num_workers)
    target = resolve_device(device)
    n = len(dataset)  # type: ignore[arg-type]
    channels = dataset_channels(dataset)
    coords = np.zeros((n, channels.num_joints, 2), dtype=np.float32)
    scores = np.zeros((n, channels.num_joints), dtype=np.float32)
    if n == 0:
        return coords, scores
    codec: HeatmapCodec | None = getattr(dataset, "codec", None)
    convention = model_convention(model) if input_convention is None else input_convention
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=target.type == "cuda",
    )
    filled = np.zeros(n, dtype=bool)
    with _inference(model, target):
        memory_format = _input_memory_format(model)
        for batch in loader:
            _refuse_unreadable(batch)
            images = batch["image"].to(target, non_blocking=True).contiguous(memory_format=memory_format)
            images = convert_tensor(images, NATIVE, convention)
            heatmaps = _heatmaps(model, images, flip_test, channels)
            _check_channels(heatmaps, channels)
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
    """Select the reference's joints from channel-order predictions.

    Args:
        coords: [N, C, ...] predictions in the channel order of the reference's joint set
            (:func:`~fpdctl.skeleton.channel_joint_set`: MPII's 16 for MPII and LSP, COCO's 17).

    Returns:
        [N, J, ...] in the reference's joint order (LSP: the 14 mapped MPII channels).
    """
    joint_set = JOINT_SETS.get(reference.joint_set)
    if joint_set is None:
        raise DataError(f"unknown joint set '{reference.joint_set}' (known: {', '.join(sorted(JOINT_SETS))})")
    if joint_set.name == LSP.name:
        return coords[:, list(LSP_TO_MPII)]
    return coords


def model_convention(model: Model) -> InputConvention:
    """The input convention a model records (``input_convention``: an fpdctl network, an
    :class:`~fpdctl.models.input_adapter.InputAdapter`), else NATIVE (a bare numpy runner)."""
    return getattr(model, "input_convention", NATIVE)


def evaluate_model(
    model: Model,
    dataset: torch.utils.data.Dataset,
    *,
    flip_test: bool = True,
    batch_size: int = INFERENCE_BATCH_SIZE,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    threshold: float | None = None,
    progress: Progress | None = None,
    input_convention: InputConvention | None = None,
) -> EvalResult:
    """Predict a dataset split and score it with the dataset's metric.

    Args:
        model, dataset, flip_test, batch_size, device, num_workers, progress, input_convention: as
            :func:`predict_dataset`.
        threshold: metric threshold; None for the standard one (PCKh@0.5, PCK@0.2; COCO AP
            takes none).

    Returns:
        EvalResult with the metric, the predictions and the timing.

    Raises:
        DataError: the split is empty or its ground truth cannot be scored (e.g. no head boxes).
        UsageError: a threshold for COCO AP.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise DataError("the evaluation split is empty")
    check_threshold(getattr(dataset, "metric", "pckh"), threshold)
    # The ground truth first: a split that cannot be scored fails before any network time.
    reference: EvalReference = dataset.eval_reference()  # type: ignore[attr-defined]
    target = resolve_device(device)
    start = time.perf_counter()
    convention = model_convention(model) if input_convention is None else input_convention
    coords, scores = predict_dataset(
        model,
        dataset,
        flip_test=flip_test,
        batch_size=batch_size,
        device=target,
        num_workers=num_workers,
        progress=progress,
        input_convention=convention,
    )
    seconds = time.perf_counter() - start
    metric = evaluate_reference(
        predictions_for_reference(coords, reference),
        reference,
        threshold=threshold,
        scores=predictions_for_reference(scores, reference),
    )
    return EvalResult(
        metric=metric,
        coords=coords,
        scores=scores,
        seconds=seconds,
        flip_test=flip_test,
        device=str(target),
        input_size=getattr(dataset, "input_size", None),
        input_convention=convention,
        reference=reference,
    )


def evaluate_checkpoint(
    model: str,
    data: "str | DataSpec",
    *,
    input_size: int | None = None,
    device: str = "auto",
    save_predictions: str | Path | None = None,
    flip_test: bool = True,
    batch_size: int = INFERENCE_BATCH_SIZE,
    num_workers: int = 0,
    threshold: float | None = None,
    progress: Progress | None = None,
    input_convention: ConventionOverride | None = None,
    boxes: str | Path | None = None,
) -> EvalResult:
    """``fpdctl eval MODEL --data DATA``: load a checkpoint (or a named model, with random
    weights) and score it on the validation split of ``data``, in PyTorch.

    ``fpdctl eval`` and ``fpdctl.evaluate(...)`` (:func:`fpdctl.api.evaluate`) score every kind of
    model, on every backend, with :meth:`fpdctl.deploy.pose.Pose.val`; this is the PyTorch-only
    path it replaced (the tests compare the two).

    Args:
        data: ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` or ``coco:PATH``, or that
            string parsed (:class:`~fpdctl.data.kinds.DataSpec`, passed on as it is).
        data: ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` or ``coco:PATH``.
        input_size: the network's input side (None: the size the checkpoint was trained at, else
            the default).
        device: "auto", "cpu", "cuda", "cuda:N" or "mps"; on CUDA the model runs channels_last
            (faster cuDNN convolutions).
        save_predictions: also write the predictions there (.mat, .npy or .json; for COCO data
            a COCO results .json, heatmap peaks as keypoint scores); the path is checked before
            the network runs.
        flip_test, batch_size, num_workers, threshold, progress: as :func:`evaluate_model`.
        input_convention: override flags applied to the convention the checkpoint records or
            implies (:func:`~fpdctl.models.factory.create_model`).
        boxes: a COCO detection-results JSON: crop the val images at these person boxes instead
            of the ground-truth ones (``coco:PATH`` only), rescore and OKS-NMS as HRNet does
            (:class:`~fpdctl.data.coco.COCODetections`, :mod:`fpdctl.metrics.coco_detections`).

    Raises:
        UsageError / InputError / CheckpointError / DataError: bad options, model, data or output.
    """
    from fpdctl.data.kinds import data_joint_set, parse_data_spec
    from fpdctl.data.registry import build_dataset, spec_for_data
    from fpdctl.metrics.coco import check_results_output
    from fpdctl.metrics.mpii_files import check_prediction_output
    from fpdctl.models.checkpoint_files import resolve_input_size
    from fpdctl.models.factory import create_model
    from fpdctl.models.spec import is_checkpoint_path
    from fpdctl.pretrained import is_pretrained_name

    _check_loader_options(batch_size, num_workers)
    spec = parse_data_spec(data)
    channels = data_joint_set(spec)
    coco = channels.name == "coco"
    check_threshold(COCOResult.metric if coco else "pckh", threshold)
    if boxes is not None and spec.kind != "coco":
        raise UsageError(
            f"`boxes` crops the images of a COCO folder at detector boxes: it needs `data` coco:DIR, got '{spec}'",
            params=("boxes", "data"),
        )
    if boxes is not None:  # a missing file fails before the network is built
        from fpdctl.utils.io import require_file

        require_file(boxes, "detections file")
    target = resolve_device(device)
    if save_predictions is not None:  # fail before the network runs, not after
        (check_results_output if coco else check_prediction_output)(save_predictions)
    input_size = resolve_input_size(model, input_size)
    # A bare model name (random weights) gets the data's joints, as training gives them.
    named = not is_checkpoint_path(model) and not is_pretrained_name(model)
    net = create_model(spec_for_data(model, spec) if named else model, input_convention=input_convention).eval()
    net.spec.check_input_size(input_size)
    check_model_joints(net.spec.joints, channels)
    if target.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    if boxes is not None:
        from fpdctl.data.coco import COCODetections

        dataset = COCODetections(spec.path, boxes, input_size=input_size)  # type: ignore[arg-type]
    else:
        dataset = build_dataset(spec, "val", input_size=input_size)
    result = evaluate_model(
        net,
        dataset,
        flip_test=flip_test,
        batch_size=batch_size,
        device=target,
        num_workers=num_workers,
        threshold=threshold,
        progress=progress,
    )
    if save_predictions is not None:
        write_predictions(save_predictions, result)
    return result


def write_predictions(path: str | Path, result: EvalResult) -> Path:
    """Write an evaluation's predictions: COCO's results JSON for a COCO reference (one record
    per labelled person, keypoint scores the heatmap peaks), else the MPII formats of
    :func:`fpdctl.metrics.mpii_files.save_predictions`."""
    from fpdctl.metrics.coco import reference_results, write_coco_results
    from fpdctl.metrics.mpii_files import save_predictions

    reference = result.reference
    if isinstance(reference, COCOReference):
        records, _ = reference_results(result.coords, reference, result.scores)
        return write_coco_results(path, records)
    return save_predictions(path, result.coords)


__all__ = [
    "EvalResult",
    "check_model_joints",
    "dataset_channels",
    "evaluate_checkpoint",
    "evaluate_model",
    "model_convention",
    "predict_dataset",
    "predictions_for_reference",
    "write_predictions",
]
