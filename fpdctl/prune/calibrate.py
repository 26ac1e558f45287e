"""Re-estimate batch-norm statistics after slicing.

Removing channels changes what every later BN sees: a convolution now sums over fewer inputs, so
its outputs have another mean and variance than the teacher's running statistics describe.
Forward passes over a few hundred training images (no gradients, no weight change) replace those
statistics with the sliced network's own. Slicing stacks only (all channels kept) leaves every
BN input unchanged, so there it changes nothing beyond sampling noise.

The images are fed in the network's own input convention (a student sliced from a pytorch-pose
or official-FPD teacher keeps the teacher's): the dataset's NATIVE tensors are converted first.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fpdctl.errors import UsageError
from fpdctl.models.convention import NATIVE
from fpdctl.models.input_adapter import convert_tensor


def recalibrate_bn(
    model: nn.Module,
    dataset: Any,
    *,
    batches: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    seed: int = 0,
    num_workers: int = 0,
) -> int:
    """Replace every BatchNorm's running mean and variance with averages over ``batches`` batches.

    The statistics are the plain average over the batches seen (``momentum=None``), so the order
    of the batches does not matter; the batches are a seeded shuffle of ``dataset``. The model is
    left in eval mode with its BN momenta restored.

    Args:
        model: the network; its weights are not changed. Its ``input_convention`` (NATIVE when
            it has none) is what the images are converted to.
        dataset: samples with "image" [3, H, W], NATIVE (a training split, with its augmentation).
        batches: batches to average over (at least 1).
        batch_size: images per batch.
        device: where the forward passes run.
        seed: seeds the shuffle.
        num_workers: DataLoader worker processes.

    Returns:
        The number of images seen.
    """
    if batches < 1:
        raise UsageError(f"`recalibrate_bn` must be at least 1 batch, got {batches}", params="recalibrate_bn")
    if batch_size < 1:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        drop_last=len(dataset) >= batch_size,
    )
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average instead of an exponential one
    model.to(device)
    model.train()
    convention = getattr(model, "input_convention", NATIVE)
    seen = 0
    try:
        with torch.no_grad():
            for index, batch in enumerate(loader):
                if index == batches:
                    break
                images = batch["image"] if isinstance(batch, dict) else batch[0]
                model(convert_tensor(images.to(device), NATIVE, convention))
                seen += int(images.shape[0])
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return seen
