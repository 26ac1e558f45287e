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

Variants of the distillation term (``fpdctl distill --kd-loss kl --kd-temperature T``): the KL
divergence between the spatially soft-maxed heatmaps of each joint (Hinton's soft targets, with
the maps over all H*W pixels taken as logits):

    kl(pred, ref, w) = T**2 * mean over (batch, joint) of w * KL(softmax(ref / T) || softmax(pred / T))

Heatmaps peak near 1 over a background near 0, so T = 1 gives flat distributions; T below 1
sharpens them. The weight of the distillation term may decay over the run
(``--alpha-schedule linear``, :func:`scheduled_alpha`). Samples without labels (``--unlabeled``)
have all target weights 0 and add nothing to the ground-truth term, which is averaged over the
labelled samples only (a batch that is half unlabeled gives its labels the same weight as a batch
with none); the teacher supervises every joint of theirs whatever ``mask_teacher`` says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from fpdctl.errors import UsageError
from fpdctl.pipeline import last_stack

if TYPE_CHECKING:
    # Only tensor methods are called here, so importing this module does not load torch:
    # fpdctl.training.config takes DEFAULT_ALPHA and check_alpha from here and stays torch-free.
    from torch import Tensor

# The 1/2 of 0.5 * MSE in the official JointsMSELoss; kept so loss values compare with its logs.
MSE_HALF: float = 0.5
# The weight of the distillation term: the paper's and the official code's 0.5.
DEFAULT_ALPHA: float = 0.5
DEFAULT_KD_LOSS: str = "mse"
# The softmax temperature of the "kl" term (1: the maps are the logits as they are).
DEFAULT_KD_TEMPERATURE: float = 1.0
# How alpha moves over the run: "constant", or "linear" from alpha at step 0 to 0 at the end.
ALPHA_SCHEDULES: tuple[str, ...] = ("constant", "linear")
DEFAULT_ALPHA_SCHEDULE: str = "constant"
# ``fpdctl distill --teacher ground-truth``: the labels' own heatmaps stand in for the teacher's.
# The control that tells what a distillation loss does from what the teacher knows: the same
# loss, the same weights, with nothing in the "teacher" term the ground truth does not hold.
GROUND_TRUTH_TEACHER: str = "ground-truth"


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


def check_kd_options(kd_loss: str, temperature: float, alpha_schedule: str) -> None:
    """Raise UsageError unless the distillation loss, temperature and alpha schedule are valid."""
    kd_loss_entry(kd_loss)
    value = float(temperature)
    if not (value > 0 and math.isfinite(value)):  # also rejects NaN
        raise UsageError(f"kd temperature must be a finite number > 0, got {temperature:g}")
    if alpha_schedule not in ALPHA_SCHEDULES:
        raise UsageError(f"alpha schedule must be one of {', '.join(ALPHA_SCHEDULES)}, got '{alpha_schedule}'")


def scheduled_alpha(alpha: float, schedule: str, step: int, total_steps: int) -> float:
    """The distillation weight of optimizer step ``step`` (0-based) of a ``total_steps`` run.

    "constant": ``alpha`` throughout. "linear": ``alpha * (1 - step / total_steps)``, from
    ``alpha`` at the first step down to ``alpha / total_steps`` at the last (0 once the run is
    over). A function of the step alone, so a resumed run continues the same schedule.
    """
    if schedule == "constant":
        return float(alpha)
    if schedule == "linear":
        progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
        return float(alpha) * (1.0 - progress)
    raise UsageError(f"alpha schedule must be one of {', '.join(ALPHA_SCHEDULES)}, got '{schedule}'")


def _stacked(pred: Tensor, reference: Tensor, weight: Tensor | None) -> Tensor:
    """``pred`` as [N, S, J, H, W], after checking it against the reference and the weights."""
    stacked = pred if pred.dim() == 5 else pred.unsqueeze(1)
    if stacked.dim() != 5:
        raise ValueError(f"expected pred [N, J, H, W] or [N, S, J, H, W], got {tuple(pred.shape)}")
    n, _, j, h, w = stacked.shape
    if tuple(reference.shape) != (n, j, h, w):
        raise ValueError(
            f"reference heatmaps {tuple(reference.shape)} do not match the prediction's [N, J, H, W] = {(n, j, h, w)}"
        )
    if weight is not None and tuple(weight.shape) != (n, j):
        raise ValueError(f"weight must be [N, J] = {(n, j)}, got {tuple(weight.shape)}")
    return stacked


def joints_mse(pred: Tensor, reference: Tensor, weight: Tensor | None = None) -> Tensor:
    """Target-weighted heatmap MSE of one or more stacks, summed over stacks.

    Args:
        pred: [N, J, H, W] heatmaps of one stack, or [N, S, J, H, W] for S stacks.
        reference: [N, J, H, W] heatmaps every stack is compared with (ground truth or teacher).
        weight: [N, J] per-joint weights, or None for all ones.

    Returns:
        Scalar float32 tensor: ``sum over stacks of 0.5 * mean((w * (pred - reference)) ** 2)``.
    """
    stacked = _stacked(pred, reference, weight)
    # Loss arithmetic in float32 whatever precision the network ran at (bf16 maps lose the tails).
    diff = stacked.float() - reference.float().unsqueeze(1)
    if weight is not None:
        diff = diff * weight.float()[:, None, :, None, None]
    per_stack = diff.pow(2).mean(dim=(0, 2, 3, 4))
    return MSE_HALF * per_stack.sum()


def joints_kl(
    pred: Tensor,
    reference: Tensor,
    weight: Tensor | None = None,
    *,
    temperature: float = DEFAULT_KD_TEMPERATURE,
) -> Tensor:
    """KL(reference || pred) between spatially soft-maxed heatmaps, summed over stacks.

    Each joint's map is a distribution over its H*W pixels, ``softmax(map / temperature)``; the
    divergence is scaled by ``temperature ** 2`` so its gradients keep their size as T changes
    (Hinton et al., 2015).

    Args:
        pred: [N, J, H, W] heatmaps of one stack, or [N, S, J, H, W] for S stacks.
        reference: [N, J, H, W] the teacher's heatmaps every stack is compared with.
        weight: [N, J] per-joint weights, or None for all ones.
        temperature: the softmax temperature T > 0.

    Returns:
        Scalar float32 tensor: ``sum over stacks of T**2 * mean over (N, J) of w * KL``.
    """
    import torch.nn.functional as F

    stacked = _stacked(pred, reference, weight)
    n, s, j = stacked.shape[:3]
    t = float(temperature)
    log_q = F.log_softmax(stacked.float().reshape(n, s, j, -1) / t, dim=-1)
    log_p = F.log_softmax(reference.float().reshape(n, 1, j, -1) / t, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)  # [N, S, J]
    if weight is not None:
        kl = kl * weight.float()[:, None, :]
    return t * t * kl.mean(dim=(0, 2)).sum()


def _mse_term(pred: Tensor, reference: Tensor, weight: Tensor | None, temperature: float) -> Tensor:
    return joints_mse(pred, reference, weight)


def _kl_term(pred: Tensor, reference: Tensor, weight: Tensor | None, temperature: float) -> Tensor:
    return joints_kl(pred, reference, weight, temperature=temperature)


@dataclass(frozen=True)
class KdLoss:
    """One distillation term ``--kd-loss`` can name.

    Attributes:
        name: the ``--kd-loss`` value.
        term: ``term(pred [N, S, J, H, W], reference [N, J, H, W], weight [N, J] or None,
            temperature)`` -> scalar float32 tensor summed over stacks.
        options: the TrainConfig options the term reads besides the weights (an option it does
            not read has no effect with it, and is refused when given).
        summary: what it is, for the help.
    """

    name: str
    term: Callable[[Tensor, Tensor, Tensor | None, float], Tensor]
    options: frozenset[str]
    summary: str


# The distillation terms, by name. Adding one is an entry here plus its term function.
KD_LOSS_TABLE: dict[str, KdLoss] = {
    entry.name: entry
    for entry in (
        KdLoss("mse", _mse_term, frozenset(), "the paper's"),
        KdLoss("kl", _kl_term, frozenset({"kd_temperature"}), "KL between spatially soft-maxed heatmaps"),
    )
}
KD_LOSSES: tuple[str, ...] = tuple(KD_LOSS_TABLE)
# Options that only some distillation terms read (see KdLoss.options).
KD_TERM_OPTIONS: frozenset[str] = frozenset().union(*(entry.options for entry in KD_LOSS_TABLE.values()))


def kd_loss_entry(name: str) -> KdLoss:
    """The :data:`KD_LOSS_TABLE` entry ``name``, or UsageError naming the choices."""
    entry = KD_LOSS_TABLE.get(name)
    if entry is None:
        raise UsageError(f"kd loss must be one of {', '.join(KD_LOSSES)}, got '{name}'")
    return entry


@dataclass(frozen=True)
class KdSettings:
    """The distillation half of the loss, checked once when built (not at every step).

    Attributes:
        alpha: the weight of the distillation term at the first step, in [0, 1].
        alpha_schedule: "constant" or "linear" (:func:`scheduled_alpha`).
        kd_loss: the :data:`KD_LOSS_TABLE` entry's name.
        temperature: the "kl" term's softmax temperature.
        mask_teacher: multiply the distillation term by the target weights (official code).
    """

    alpha: float = DEFAULT_ALPHA
    alpha_schedule: str = DEFAULT_ALPHA_SCHEDULE
    kd_loss: str = DEFAULT_KD_LOSS
    temperature: float = DEFAULT_KD_TEMPERATURE
    mask_teacher: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        check_kd_options(self.kd_loss, self.temperature, self.alpha_schedule)

    def alpha_at(self, step: int, total_steps: int) -> float:
        """The distillation weight of optimizer step ``step`` (0-based), see :func:`scheduled_alpha`."""
        return scheduled_alpha(self.alpha, self.alpha_schedule, step, total_steps)

    def terms(
        self,
        student: Tensor,
        target: Tensor,
        target_weight: Tensor,
        teacher: Tensor | None,
        *,
        alpha: float,
        labelled: Tensor | None = None,
    ) -> LossTerms:
        """The batch's loss with this step's ``alpha`` (already checked: see :func:`fpd_loss`)."""
        return _fpd_terms(
            student,
            target,
            target_weight,
            teacher,
            alpha=alpha,
            mask_teacher=self.mask_teacher,
            kd=KD_LOSS_TABLE[self.kd_loss],
            temperature=self.temperature,
            labelled=labelled,
        )


def fpd_loss(
    student: Tensor,
    target: Tensor,
    target_weight: Tensor,
    teacher: Tensor | None = None,
    *,
    alpha: float = DEFAULT_ALPHA,
    mask_teacher: bool = True,
    kd_loss: str = DEFAULT_KD_LOSS,
    temperature: float = DEFAULT_KD_TEMPERATURE,
    labelled: Tensor | None = None,
) -> LossTerms:
    """The FPD training loss of a batch (checks its options; the trainer checks them once, in
    :class:`KdSettings`).

    Args:
        student: [N, S, J, H, W] heatmaps of every student stack.
        target: [N, J, H, W] ground-truth Gaussian heatmaps.
        target_weight: [N, J] ground-truth joint weights.
        teacher: [N, J, H, W] the teacher's final-stack heatmaps on the same input, or None to
            train on the ground truth alone (then ``alpha`` is ignored).
        alpha: weight of the distillation term, in [0, 1].
        mask_teacher: multiply the distillation term by ``target_weight`` as the official code
            does; False lets the teacher supervise every joint.
        kd_loss: the distillation term, a :data:`KD_LOSS_TABLE` name ("mse", "kl").
        temperature: the "kl" term's softmax temperature.
        labelled: [N] bool, False for samples without labels (their target weights are 0):
            the teacher supervises every joint of those even when ``mask_teacher``. None: all
            labelled.

    Returns:
        :class:`LossTerms` with the total and both terms (float32 scalars).
    """
    kd = kd_loss_entry(kd_loss)
    if teacher is not None:
        alpha = check_alpha(alpha)
    return _fpd_terms(
        student,
        target,
        target_weight,
        teacher,
        alpha=alpha,
        mask_teacher=mask_teacher,
        kd=kd,
        temperature=temperature,
        labelled=labelled,
    )


def _fpd_terms(
    student: Tensor,
    target: Tensor,
    target_weight: Tensor,
    teacher: Tensor | None,
    *,
    alpha: float,
    mask_teacher: bool,
    kd: KdLoss,
    temperature: float,
    labelled: Tensor | None,
) -> LossTerms:
    """:func:`fpd_loss` on options already checked."""
    if student.dim() != 5:
        raise ValueError(f"expected student heatmaps [N, S, J, H, W], got {tuple(student.shape)}")
    gt = joints_mse(student, target, target_weight)
    if labelled is not None:
        # The mean over the labelled samples, not the whole batch (a tensor op: no host sync).
        share = labelled.float().mean().clamp_min(1.0 / max(labelled.numel(), 1))
        gt = gt / share
    if teacher is None:
        return LossTerms(total=gt, gt=gt, kd=None)
    kd_weight: Tensor | None = None
    if mask_teacher:
        kd_weight = target_weight
        if labelled is not None:
            kd_weight = target_weight.float().masked_fill(~labelled.bool()[:, None], 1.0)
    kd_term = kd.term(student, teacher, kd_weight, temperature)
    total = alpha * kd_term + (1.0 - alpha) * gt
    return LossTerms(total=total, gt=gt, kd=kd_term)


# The last stack's heatmaps is fpdctl.pipeline.last_stack; this name stays for its importers.
final_stack = last_stack

__all__ = [
    "ALPHA_SCHEDULES",
    "DEFAULT_ALPHA",
    "DEFAULT_ALPHA_SCHEDULE",
    "DEFAULT_KD_LOSS",
    "DEFAULT_KD_TEMPERATURE",
    "GROUND_TRUTH_TEACHER",
    "KD_LOSSES",
    "KD_LOSS_TABLE",
    "KD_TERM_OPTIONS",
    "KdLoss",
    "KdSettings",
    "LossTerms",
    "MSE_HALF",
    "check_alpha",
    "check_kd_options",
    "final_stack",
    "fpd_loss",
    "joints_kl",
    "joints_mse",
    "kd_loss_entry",
    "scheduled_alpha",
]
