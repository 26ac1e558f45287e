"""The Fast Pose Distillation loss, as plain functions of tensors (no model inside).

Normalisation follows the official FPD code (``JointsMSELoss`` with ``use_target_weight``, which
the HRNet code base it is built on also uses): for one stack,

    mse(pred, ref, w) = 0.5 * mean over (batch, joint, pixel) of (w * pred - w * ref) ** 2

with ``w`` the per-joint target weight (1 annotated and inside the crop, 0 otherwise). The
reference code loops over joints and averages the per-joint means; with equal-sized maps that is
the plain mean above. Every stack of the student is supervised (intermediate supervision), so the
ground-truth and distillation terms are each summed over stacks, then mixed:

    total = alpha * kd + (1 - alpha) * gt

The distillation term compares every student stack with the teacher's FINAL stack. The official
code masks it with the same target weights (unannotated joints teach nothing, even though the
teacher predicts something for them); ``mask_teacher=False`` lets the teacher supervise every
joint, which is the paper's formulation (eq. 3) and the only sensible choice for unlabelled data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fpdctl.errors import UsageError

if TYPE_CHECKING:
    # Only tensor methods are called here, so importing this module does not load torch:
    # fpdctl.train.config takes DEFAULT_ALPHA and check_alpha from here and stays torch-free.
    from torch import Tensor

# The 1/2 of 0.5 * MSE in the official JointsMSELoss; kept so loss values compare with its logs.
MSE_HALF: float = 0.5
# The weight of the distillation term: the paper's and the official code's 0.5.
DEFAULT_ALPHA: float = 0.5


@dataclass(frozen=True)
class LossTerms:
    """One step's loss and its two parts.

    Attributes:
        total: the scalar to backpropagate, ``alpha * kd + (1 - alpha) * gt`` (or ``gt`` alone
            when there is no teacher).
        gt: ground-truth term summed over stacks (scalar tensor).
        kd: distillation term summed over stacks (scalar tensor), None without a teacher.
    """

    total: Tensor
    gt: Tensor
    kd: Tensor | None


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float if it lies in [0, 1], else raise UsageError."""
    value = float(alpha)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise UsageError(f"alpha must be in [0, 1], got {alpha:g}")
    return value


def joints_mse(pred: Tensor, reference: Tensor, weight: Tensor | None = None) -> Tensor:
    """Target-weighted heatmap MSE of one or more stacks, summed over stacks.

    Args:
        pred: [N, J, H, W] heatmaps of one stack, or [N, S, J, H, W] for S stacks.
        reference: [N, J, H, W] heatmaps every stack is compared with (ground truth or teacher).
        weight: [N, J] per-joint weights, or None for all ones.

    Returns:
        Scalar float32 tensor: ``sum over stacks of 0.5 * mean((w * (pred - reference)) ** 2)``.
    """
    stacked = pred if pred.dim() == 5 else pred.unsqueeze(1)
    if stacked.dim() != 5:
        raise ValueError(f"expected pred [N, J, H, W] or [N, S, J, H, W], got {tuple(pred.shape)}")
    n, _, j, h, w = stacked.shape
    if tuple(reference.shape) != (n, j, h, w):
        raise ValueError(
            f"reference heatmaps {tuple(reference.shape)} do not match the prediction's "
            f"[N, J, H, W] = {(n, j, h, w)}"
        )
    # Loss arithmetic in float32 whatever precision the network ran at (bf16 maps lose the tails).
    diff = stacked.float() - reference.float().unsqueeze(1)
    if weight is not None:
        if tuple(weight.shape) != (n, j):
            raise ValueError(f"weight must be [N, J] = {(n, j)}, got {tuple(weight.shape)}")
        diff = diff * weight.float()[:, None, :, None, None]
    per_stack = diff.pow(2).mean(dim=(0, 2, 3, 4))
    return MSE_HALF * per_stack.sum()


def fpd_loss(
    student: Tensor,
    target: Tensor,
    target_weight: Tensor,
    teacher: Tensor | None = None,
    *,
    alpha: float = DEFAULT_ALPHA,
    mask_teacher: bool = True,
) -> LossTerms:
    """The FPD training loss of a batch.

    Args:
        student: [N, S, J, H, W] heatmaps of every student stack.
        target: [N, J, H, W] ground-truth Gaussian heatmaps.
        target_weight: [N, J] ground-truth joint weights.
        teacher: [N, J, H, W] the teacher's final-stack heatmaps on the same input, or None to
            train on the ground truth alone (then ``alpha`` is ignored).
        alpha: weight of the distillation term, in [0, 1].
        mask_teacher: multiply the distillation term by ``target_weight`` as the official code
            does; False lets the teacher supervise every joint.

    Returns:
        :class:`LossTerms` with the total and both terms (float32 scalars).
    """
    if student.dim() != 5:
        raise ValueError(f"expected student heatmaps [N, S, J, H, W], got {tuple(student.shape)}")
    gt = joints_mse(student, target, target_weight)
    if teacher is None:
        return LossTerms(total=gt, gt=gt, kd=None)
    alpha = check_alpha(alpha)
    kd = joints_mse(student, teacher, target_weight if mask_teacher else None)
    total = alpha * kd + (1.0 - alpha) * gt
    return LossTerms(total=total, gt=gt, kd=kd)


def final_stack(outputs: Tensor) -> Tensor:
    """The last stack's heatmaps: [N, S, J, H, W] -> [N, J, H, W]."""
    return outputs[:, -1]


__all__ = ["DEFAULT_ALPHA", "LossTerms", "MSE_HALF", "check_alpha", "final_stack", "fpd_loss", "joints_mse"]
