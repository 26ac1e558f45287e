"""One optimizer step, in two halves: the losses (forward), then the gradients and the update.

Plain functions of modules and tensors, so a benchmark can time exactly what the trainer runs
(``benchmarks/train_throughput.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fpdctl.errors import UsageError
from fpdctl.pipeline import last_stack
from fpdctl.training.config import TrainConfig
from fpdctl.training.loss import KdSettings, LossTerms
from fpdctl.training.precision import TrainPrecision

_DEFAULT_KD = KdSettings()


def compute_losses(
    model: nn.Module,
    teacher: nn.Module | None,
    images: Tensor,
    target: Tensor,
    weight: Tensor,
    *,
    precision: TrainPrecision,
    kd: KdSettings | None = None,
    alpha: float | None = None,
    labelled: Tensor | None = None,
    labels_as_teacher: bool = False,
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
        kd: the distillation settings, checked when built (default: the paper's).
        alpha: this step's distillation weight (:meth:`KdSettings.alpha_at`); None: ``kd.alpha``.
        labelled: see :func:`~fpdctl.training.loss.fpd_loss`.
        labels_as_teacher: ``--teacher ground-truth``: ``target`` fills the teacher's place in
            the distillation term (``teacher`` must be None).

    Returns:
        The loss terms (float32 scalars; ``total`` carries the student's graph).
    """
    device = images.device
    teacher_maps: Tensor | None = None
    if teacher is not None:
        with torch.inference_mode(), precision.autocast(device):
            teacher_maps = last_stack(teacher(images)).float()
        # An inference tensor cannot enter autograd; a plain copy can.
        teacher_maps = teacher_maps.clone()
    elif labels_as_teacher:
        teacher_maps = target.float()
    with precision.autocast(device):
        outputs = model(images)
    if teacher_maps is not None and teacher_maps.shape[-2:] != outputs.shape[-2:]:
        raise UsageError(
            f"teacher heatmaps are {tuple(teacher_maps.shape[-2:])} but the student's are {tuple(outputs.shape[-2:])}"
        )
    kd = _DEFAULT_KD if kd is None else kd
    return kd.terms(
        outputs, target, weight, teacher_maps, alpha=kd.alpha if alpha is None else alpha, labelled=labelled
    )


def apply_gradients(loss: Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """The backward half of a training step: backpropagate ``loss`` and update the weights.

    Reads nothing back to the host when the scaler is off (bf16, fp32) or the optimizer is fused
    (see :data:`FUSED_OPTIMIZERS`), so the step's one synchronisation stays
    :func:`~fpdctl.training.distributed.reduce_step`'s.
    """
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


# Optimizers with a fused CUDA kernel. Fused, a GradScaler (fp16) steps them without reading
# its inf check back to the host, so an fp16 step keeps a single host-device synchronisation;
# RMSprop has no fused kernel and pays one more read per fp16 step.
FUSED_OPTIMIZERS: frozenset[str] = frozenset({"adam", "sgd"})


def make_optimizer(config: TrainConfig, model: nn.Module, *, fused: bool = False) -> torch.optim.Optimizer:
    """The optimizer ``config`` names over the trainable parameters of ``model``.

    Args:
        fused: use the fused kernel where the optimizer has one (:data:`FUSED_OPTIMIZERS`); the
            trainer asks for it on CUDA. The update is the same algorithm, rounded differently.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    extra = {"fused": True} if fused and config.optimizer in FUSED_OPTIMIZERS else {}
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **extra)
    if config.optimizer == "rmsprop":
        # pytorch-pose's default optimizer for the hourglass.
        return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, **extra)


__all__ = ["FUSED_OPTIMIZERS", "apply_gradients", "compute_losses", "make_optimizer"]
