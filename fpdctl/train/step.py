"""One optimizer step, in two halves: the losses (forward), then the gradients and the update.

Plain functions of modules and tensors, so a benchmark can time exactly what the trainer runs
(``benchmarks/train_throughput.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fpdctl.errors import UsageError
from fpdctl.train.config import TrainConfig
from fpdctl.train.loss import DEFAULT_ALPHA, LossTerms, final_stack, fpd_loss
from fpdctl.train.precision import TrainPrecision


def compute_losses(
    model: nn.Module,
    teacher: nn.Module | None,
    images: Tensor,
    target: Tensor,
    weight: Tensor,
    *,
    precision: TrainPrecision,
    alpha: float = DEFAULT_ALPHA,
    mask_teacher: bool = True,
) -> LossTerms:
    """The forward half of a training step: teacher (if any) and student on the same batch.

    The teacher runs under ``torch.inference_mode`` and the run's autocast precision: no graph is
    recorded for it, which is most of what distillation saves over the reference code.

    Args:
        model: the student (possibly DDP- or compile-wrapped), in train mode.
        teacher: the frozen teacher in eval mode, or None.
        images: [N, 3, H, W] on the model's device, in the model's memory format.
        target: [N, J, H/4, W/4] ground-truth heatmaps; weight: [N, J] joint weights.
        precision: autocast settings.
        alpha, mask_teacher: see :func:`~fpdctl.train.loss.fpd_loss`.

    Returns:
        The loss terms (float32 scalars; ``total`` carries the student's graph).
    """
    device = images.device
    teacher_maps: Tensor | None = None
    if teacher is not None:
        with torch.inference_mode(), precision.autocast(device):
            teacher_maps = final_stack(teacher(images)).float()
        # An inference tensor cannot enter autograd; a plain copy can.
        teacher_maps = teacher_maps.clone()
    with precision.autocast(device):
        outputs = model(images)
    if teacher_maps is not None and teacher_maps.shape[-2:] != outputs.shape[-2:]:
        raise UsageError(
            f"teacher heatmaps are {tuple(teacher_maps.shape[-2:])} but the student's are "
            f"{tuple(outputs.shape[-2:])}"
        )
    return fpd_loss(outputs, target, weight, teacher_maps, alpha=alpha, mask_teacher=mask_teacher)


def apply_gradients(loss: Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """The backward half of a training step: backpropagate ``loss`` and update the weights."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``config`` names over the trainable parameters of ``model``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        # pytorch-pose's default optimizer for the hourglass.
        return torch.optim.RMSprop(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


__all__ = ["apply_gradients", "compute_losses", "make_optimizer"]
