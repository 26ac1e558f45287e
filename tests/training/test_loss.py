"""The FPD loss against hand-computed values and the official per-joint formulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fpdctl.errors import UsageError
from fpdctl.training.loss import check_kd_options, fpd_loss, joints_kl, joints_mse, scheduled_alpha


def _tiny() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """N=1, S=2 stacks, J=2 joints, 2x2 maps; values chosen so every term is a small fraction."""
    student = torch.zeros(1, 2, 2, 2, 2)
    student[0, 1] = 1.0  # stack 0 all zeros, stack 1 all ones
    target = torch.zeros(1, 2, 2, 2)
    target[0, 0, 0, 0] = 1.0  # joint 0 has one hot pixel, joint 1 is empty
    weight = torch.tensor([[1.0, 0.0]])  # joint 1 unannotated
    teacher = torch.empty(1, 2, 2, 2)
    teacher[0, 0] = 0.5
    teacher[0, 1] = 0.25
    return student, target, weight, teacher


def test_hand_computed_values() -> None:
    student, target, weight, teacher = _tiny()
    # Each stack's term is 0.5 * sum(w * diff)^2 / (N*J*H*W = 8).
    # gt: stack 0, joint 0 misses the hot pixel: 1 -> 1/16; stack 1, joint 0 is off on the 3
    # cold pixels: 3 -> 3/16; joint 1 is masked. Sum 4/16.
    # kd (masked): joint 0 is 0.5 away from the teacher on 4 pixels in both stacks: 1 -> 1/16
    # each. Sum 2/16.
    terms = fpd_loss(student, target, weight, teacher, alpha=0.5, mask_teacher=True)
    assert terms.gt.item() == pytest.approx(0.25, abs=1e-7)
    assert terms.kd is not None and terms.kd.item() == pytest.approx(0.125, abs=1e-7)
    assert terms.total.item() == pytest.approx(0.5 * 0.125 + 0.5 * 0.25, abs=1e-7)
    # Unmasked, joint 1 adds 4 * 0.25^2 = 0.25 (stack 0) and 4 * 0.75^2 = 2.25 (stack 1):
    # 0.5 * (1 + 0.25) / 8 + 0.5 * (1 + 2.25) / 8 = 0.28125.
    unmasked = fpd_loss(student, target, weight, teacher, alpha=0.25, mask_teacher=False)
    assert unmasked.kd is not None and unmasked.kd.item() == pytest.approx(0.28125, abs=1e-7)
    assert unmasked.total.item() == pytest.approx(0.25 * 0.28125 + 0.75 * 0.25, abs=1e-7)


def _official_joints_mse(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The reference JointsMSELoss(use_target_weight=True), written out per joint as it does."""
    criterion = nn.MSELoss(reduction="mean")
    n, j = output.shape[:2]
    pred = output.reshape(n, j, -1)
    gt = target.reshape(n, j, -1)
    loss = torch.zeros(())
    for idx in range(j):
        w = weight[:, idx : idx + 1]
        loss = loss + 0.5 * criterion(pred[:, idx] * w, gt[:, idx] * w)
    return loss / j


def test_matches_the_official_per_joint_formulation() -> None:
    gen = torch.Generator().manual_seed(3)
    student = torch.randn(3, 4, 16, 8, 8, generator=gen)
    target = torch.rand(3, 16, 8, 8, generator=gen)
    teacher = torch.rand(3, 16, 8, 8, generator=gen)
    weight = (torch.rand(3, 16, generator=gen) > 0.3).float()
    alpha = 0.3
    gt = sum(_official_joints_mse(student[:, s], target, weight) for s in range(4))
    kd = sum(_official_joints_mse(student[:, s], teacher, weight) for s in range(4))
    terms = fpd_loss(student, target, weight, teacher, alpha=alpha)
    torch.testing.assert_close(terms.gt, gt, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(terms.kd, kd, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(terms.total, alpha * kd + (1 - alpha) * gt, rtol=1e-6, atol=1e-7)
    # Unmasked distillation is the same formula with all weights 1.
    ones = torch.ones_like(weight)
    kd_all = sum(_official_joints_mse(student[:, s], teacher, ones) for s in range(4))
    torch.testing.assert_close(fpd_loss(student, target, weight, teacher, mask_teacher=False).kd, kd_all)


def test_alpha_zero_and_one_reduce_to_each_term() -> None:
    student, target, weight, teacher = _tiny()
    zero = fpd_loss(student, target, weight, teacher, alpha=0.0)
    one = fpd_loss(student, target, weight, teacher, alpha=1.0)
    assert zero.total.item() == zero.gt.item() == pytest.approx(0.25)
    assert one.total.item() == one.kd.item() == pytest.approx(0.125)
    # Without a teacher the loss is the ground-truth term and there is no kd term.
    plain = fpd_loss(student, target, weight, None, alpha=0.7)
    assert plain.kd is None and plain.total.item() == pytest.approx(0.25)


def test_gradient_reaches_only_the_student() -> None:
    student, target, weight, teacher = _tiny()
    student.requires_grad_(True)
    terms = fpd_loss(student, target, weight, teacher, alpha=1.0)
    terms.total.backward()
    # d/ds of 0.5 * mean((s - t)^2) over 8 elements is (s - t) / 8, joint 0 only (masked).
    expected = torch.zeros_like(student)
    expected[0, 0, 0] = (0.0 - 0.5) / 8
    expected[0, 1, 0] = (1.0 - 0.5) / 8
    torch.testing.assert_close(student.grad, expected)


def test_joints_mse_accepts_one_stack_and_bf16() -> None:
    student, target, weight, _ = _tiny()
    one_stack = joints_mse(student[:, 0], target, weight)
    assert one_stack.item() == pytest.approx(1 / 16)
    low = joints_mse(student.bfloat16(), target, weight)
    assert low.dtype == torch.float32 and low.item() == pytest.approx(0.25)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_is_refused(alpha: float) -> None:
    student, target, weight, teacher = _tiny()
    with pytest.raises(UsageError, match=r"alpha must be in \[0, 1\]"):
        fpd_loss(student, target, weight, teacher, alpha=alpha)


def test_shape_mismatch_is_a_clear_error() -> None:
    student, target, weight, teacher = _tiny()
    with pytest.raises(ValueError, match="do not match"):
        fpd_loss(student, target, weight, teacher[:, :, :1])
    with pytest.raises(ValueError, match="weight must be"):
        joints_mse(student, target, weight[:, :1])


# ----------------------------------------------------------------------------- KL variant
def _numpy_kl(student: np.ndarray, teacher: np.ndarray, weight: np.ndarray | None, t: float) -> float:
    """The KL term written out independently: per stack, sample and joint, both maps soft-maxed
    over their pixels (float64, max-subtracted), KL(teacher || student) * T^2, weighted, then the
    mean over (sample, joint), summed over stacks."""
    n, s, j = student.shape[:3]
    total = 0.0
    for stack in range(s):
        values = []
        for i in range(n):
            for k in range(j):
                zs = student[i, stack, k].astype(np.float64).ravel() / t
                zt = teacher[i, k].astype(np.float64).ravel() / t
                q = np.exp(zs - zs.max()) / np.exp(zs - zs.max()).sum()
                p = np.exp(zt - zt.max()) / np.exp(zt - zt.max()).sum()
                kl = float(np.sum(p * (np.log(p) - np.log(q))))
                values.append(kl * t * t * (1.0 if weight is None else float(weight[i, k])))
        total += float(np.mean(values))
    return total


@pytest.mark.parametrize("temperature", [1.0, 0.1, 3.0])
def test_kl_matches_an_independent_numpy_computation(temperature: float) -> None:
    gen = torch.Generator().manual_seed(7)
    student = torch.rand(3, 2, 4, 6, 6, generator=gen)
    teacher = torch.rand(3, 4, 6, 6, generator=gen)
    weight = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    target = torch.rand(3, 4, 6, 6, generator=gen)
    s, t, w = student.numpy(), teacher.numpy(), weight.numpy()
    masked = joints_kl(student, teacher, weight, temperature=temperature)
    assert masked.item() == pytest.approx(_numpy_kl(s, t, w, temperature), rel=1e-5)
    unmasked = joints_kl(student, teacher, None, temperature=temperature)
    assert unmasked.item() == pytest.approx(_numpy_kl(s, t, None, temperature), rel=1e-5)
    # Through fpd_loss: the same term, mixed with the (unchanged) mse ground-truth term.
    terms = fpd_loss(student, target, weight, teacher, alpha=0.25, kd_loss="kl", temperature=temperature)
    assert terms.kd is not None and terms.kd.item() == pytest.approx(masked.item(), rel=1e-6)
    assert terms.gt.item() == pytest.approx(joints_mse(student, target, weight).item(), rel=1e-6)
    assert terms.total.item() == pytest.approx(0.25 * masked.item() + 0.75 * terms.gt.item(), rel=1e-6)
    off = fpd_loss(student, target, weight, teacher, kd_loss="kl", temperature=temperature, mask_teacher=False)
    assert off.kd is not None and off.kd.item() == pytest.approx(unmasked.item(), rel=1e-6)


def test_kl_is_zero_for_the_same_maps_and_counts_every_stack() -> None:
    teacher = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    same = teacher.unsqueeze(1).repeat(1, 3, 1, 1, 1)
    assert joints_kl(same, teacher).item() == pytest.approx(0.0, abs=1e-6)
    # A constant added to a map is no change after a softmax.
    assert joints_kl(same + 5.0, teacher, temperature=0.5).item() == pytest.approx(0.0, abs=1e-5)
    one = torch.rand(2, 1, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    three = one.repeat(1, 3, 1, 1, 1)
    assert joints_kl(three, teacher).item() == pytest.approx(3 * joints_kl(one, teacher).item(), rel=1e-6)


def test_unlabeled_samples_get_the_teacher_term_on_every_joint() -> None:
    gen = torch.Generator().manual_seed(5)
    student = torch.rand(2, 1, 3, 4, 4, generator=gen)
    teacher = torch.rand(2, 3, 4, 4, generator=gen)
    target = torch.rand(2, 3, 4, 4, generator=gen)
    weight = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # sample 1: unlabeled, all zero
    labelled = torch.tensor([True, False])
    expected_weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    for kd_loss, fn in (("mse", joints_mse), ("kl", joints_kl)):
        terms = fpd_loss(student, target, weight, teacher, kd_loss=kd_loss, labelled=labelled)
        assert terms.kd is not None
        assert terms.kd.item() == pytest.approx(fn(student, teacher, expected_weight).item(), rel=1e-6)
        # The ground-truth term is the labelled sample's alone: the mean over 1 sample, not 2.
        assert terms.gt.item() == pytest.approx(joints_mse(student[:1], target[:1], weight[:1]).item(), rel=1e-6)
        assert terms.gt.item() == pytest.approx(2 * joints_mse(student, target, weight).item(), rel=1e-6)
        # --no-mask-teacher: every joint of every sample anyway.
        free = fpd_loss(student, target, weight, teacher, kd_loss=kd_loss, labelled=labelled, mask_teacher=False)
        assert free.kd is not None and free.kd.item() == pytest.approx(fn(student, teacher).item(), rel=1e-6)


def test_unknown_kd_loss_and_bad_options_are_refused() -> None:
    student, target, weight, teacher = _tiny()
    with pytest.raises(UsageError, match="kd loss must be one of mse, kl, got 'l1'"):
        fpd_loss(student, target, weight, teacher, kd_loss="l1")
    with pytest.raises(UsageError, match=r"kd temperature must be a finite number > 0, got 0"):
        check_kd_options("kl", 0.0, "constant")
    with pytest.raises(UsageError, match=r"kd temperature must be a finite number > 0, got nan"):
        check_kd_options("kl", float("nan"), "constant")
    with pytest.raises(UsageError, match="alpha schedule must be one of constant, linear, got 'cosine'"):
        check_kd_options("mse", 1.0, "cosine")


# ----------------------------------------------------------------------------- alpha schedule
def test_alpha_schedule_values() -> None:
    assert [scheduled_alpha(0.5, "constant", s, 10) for s in (0, 5, 9, 10)] == [0.5] * 4
    # Linear: alpha * (1 - step / total), step 0-based: 0.8 at the first step, 0.08 at the last.
    linear = [scheduled_alpha(0.8, "linear", s, 10) for s in (0, 1, 5, 9, 10, 12)]
    assert linear == pytest.approx([0.8, 0.72, 0.4, 0.08, 0.0, 0.0], abs=1e-12)
    assert scheduled_alpha(1.0, "linear", 250, 1000) == pytest.approx(0.75)
    with pytest.raises(UsageError, match="alpha schedule must be one of constant, linear"):
        scheduled_alpha(0.5, "step", 0, 10)


def test_an_all_labelled_or_all_unlabeled_batch_keeps_the_plain_mean() -> None:
    gen = torch.Generator().manual_seed(6)
    student = torch.rand(4, 2, 3, 4, 4, generator=gen)
    target = torch.rand(4, 3, 4, 4, generator=gen)
    weight = torch.ones(4, 3)
    plain = joints_mse(student, target, weight).item()
    every = fpd_loss(student, target, weight, labelled=torch.ones(4, dtype=torch.bool))
    assert every.gt.item() == pytest.approx(plain, rel=1e-6)
    # No labelled sample: the term is 0 (every weight is 0), not a division by zero.
    none = fpd_loss(student, target, torch.zeros(4, 3), target, labelled=torch.zeros(4, dtype=torch.bool))
    assert none.gt.item() == 0.0 and torch.isfinite(none.total)
