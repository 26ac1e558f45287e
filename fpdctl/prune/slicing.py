"""Slice a trained hourglass into a smaller member of the same family.

A slice keeps k of the teacher's S stacks, the first B' residual blocks of every stage, and the
most important C' of its C channels (one index set per channel dimension, see
:mod:`fpdctl.prune.layout`). The result is an ordinary :class:`HourglassNet` of the target spec,
so it is saved, loaded, distilled, exported and benchmarked like any other model.

Stacks: ``first`` keeps stacks 0..k-1, which is exactly the teacher's network truncated after
stack k-1 (its output equals the teacher's stack k-1 output). ``first-last`` keeps stacks
0..k-2 and the teacher's last stack, whose head was trained to give the final prediction; the
last kept early stack feeds it through its own feedback (``fc_``/``score_`` of teacher stack
k-2), i.e. what that stack produced in the teacher, and the last kept stack has no feedback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from fpdctl.errors import UsageError
from fpdctl.models.convention import ConventionOverride
from fpdctl.models.hourglass import HourglassNet, count_parameters
from fpdctl.models.spec import DEFAULT_INPUT_SIZE, HourglassSpec, resolve_spec
from fpdctl.prune.importance import check_importance, group_importance, select_channels
from fpdctl.prune.layout import LayerRule, layer_rules
from fpdctl.utils.choices import parse_choice

STACK_STRATEGIES: tuple[str, ...] = ("first", "first-last")
# Metadata keys of a sliced native checkpoint.
PRUNE_KEY = "fpdctl.prune"


def check_stack_strategy(strategy: str) -> str:
    """The strategy ``strategy`` names, in any case (UsageError listing the strategies otherwise)."""
    return parse_choice(strategy, STACK_STRATEGIES, "stack_strategy")


def check_target(teacher: HourglassSpec, target: HourglassSpec) -> None:
    """Refuse a target that is not a sub-network of the teacher.

    Raises:
        UsageError: more stacks, channels or blocks than the teacher, or other joints / depth /
            block type (a depthwise filter is not a slice of a dense one, nor the reverse).
    """
    for what, want, have in (
        ("stacks", target.stacks, teacher.stacks),
        ("channels", target.channels, teacher.channels),
        ("blocks", target.blocks, teacher.blocks),
    ):
        if want > have:
            raise UsageError(
                f"cannot slice {teacher.name} into {target.name}: the target has more {what} "
                f"({want} > {have}); a slice keeps part of the teacher"
            )
    for what, want, have in (
        ("joints", target.joints, teacher.joints),
        ("depth", target.depth, teacher.depth),
        ("block types", target.block, teacher.block),
    ):
        if want != have:
            raise UsageError(f"cannot slice {teacher.name} into {target.name}: {what} differ ({want} vs {have})")


def kept_stacks(teacher_stacks: int, stacks: int, strategy: str = "first") -> tuple[int, ...]:
    """Teacher stack indices a ``stacks``-stack slice keeps, in order.

    Examples: S=8, k=4: ``first`` -> (0, 1, 2, 3); ``first-last`` -> (0, 1, 2, 7).
    """
    strategy = check_stack_strategy(strategy)
    if not 1 <= stacks <= teacher_stacks:
        raise UsageError(f"cannot keep {stacks} of {teacher_stacks} stacks")
    if strategy == "first":
        return tuple(range(stacks))
    return (*range(stacks - 1), teacher_stacks - 1)


@dataclass(frozen=True)
class SlicePlan:
    """What a slice keeps: the stacks, and the channels of every channel group.

    Attributes:
        teacher: the teacher's spec.
        target: the student's spec.
        stacks: teacher stack index of each student stack.
        importance: "bn" or "l1", the criterion that chose the channels.
        stack_strategy: "first" or "first-last".
        channels: group name -> kept teacher channel indices (increasing).
        rules: every student convolution / BN with its teacher layer and groups.
    """

    teacher: HourglassSpec
    target: HourglassSpec
    stacks: tuple[int, ...]
    importance: str
    stack_strategy: str
    channels: Mapping[str, tuple[int, ...]] = field(repr=False)
    rules: tuple[LayerRule, ...] = field(repr=False)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (stored in the checkpoint metadata)."""
        return {
            "teacher": self.teacher.to_dict(),
            "stacks": list(self.stacks),
            "importance": self.importance,
            "stack_strategy": self.stack_strategy,
        }


def plan_slice(
    teacher_state: Mapping[str, Tensor],
    teacher: HourglassSpec,
    target: HourglassSpec | str,
    *,
    importance: str = "bn",
    stack_strategy: str = "first",
) -> SlicePlan:
    """Choose the stacks and channels of a slice from the teacher's weights.

    Args:
        teacher_state: the teacher's state_dict.
        teacher: the teacher's spec.
        target: the student spec or name, no larger than the teacher in any dimension.
        importance: "bn" (|gamma|) or "l1" (filter L1 norm).
        stack_strategy: "first" or "first-last".

    Raises:
        UsageError: a target larger than the teacher, or an unknown criterion / strategy.
    """
    spec = resolve_spec(target)
    importance = check_importance(importance)
    check_target(teacher, spec)
    stacks = kept_stacks(teacher.stacks, spec.stacks, stack_strategy)
    rules, groups = layer_rules(spec, stacks)
    scores = group_importance(teacher_state, rules, groups, teacher.channels, importance)
    channels = {
        name: tuple(int(i) for i in select_channels(scores[name], group.width(spec))) for name, group in groups.items()
    }
    return SlicePlan(
        teacher=teacher,
        target=spec,
        stacks=stacks,
        importance=importance,
        stack_strategy=stack_strategy,
        channels=channels,
        rules=tuple(rules),
    )


def _take(tensor: Tensor, dim: int, indices: tuple[int, ...] | None) -> Tensor:
    if indices is None:
        return tensor
    return tensor.index_select(dim, torch.as_tensor(indices, dtype=torch.long, device=tensor.device))


def slice_state_dict(teacher_state: Mapping[str, Tensor], plan: SlicePlan) -> dict[str, Tensor]:
    """The student's tensors, cut from the teacher's by ``plan``.

    Convolutions keep ``[out_group, in_group]`` rows and columns; batch norms keep their group's
    scale, shift and running statistics (their ``num_batches_tracked`` is copied).

    Returns:
        A state_dict for ``HourglassNet(plan.target)`` (fresh contiguous tensors).
    """
    out: dict[str, Tensor] = {}
    for rule in plan.rules:
        keep_out = plan.channels[rule.out_group] if rule.out_group is not None else None
        if rule.kind == "conv":
            keep_in = plan.channels[rule.in_group] if rule.in_group is not None else None
            weight = _take(_take(teacher_state[f"{rule.teacher}.weight"], 0, keep_out), 1, keep_in)
            out[f"{rule.student}.weight"] = weight.clone().contiguous()
            out[f"{rule.student}.bias"] = _take(teacher_state[f"{rule.teacher}.bias"], 0, keep_out).clone()
        else:
            for name in ("weight", "bias", "running_mean", "running_var"):
                out[f"{rule.student}.{name}"] = _take(teacher_state[f"{rule.teacher}.{name}"], 0, keep_out).clone()
            tracked = teacher_state.get(f"{rule.teacher}.num_batches_tracked")
            if tracked is not None:
                out[f"{rule.student}.num_batches_tracked"] = tracked.clone()
    return out


def slice_model(
    teacher: HourglassNet,
    target: HourglassSpec | str,
    *,
    importance: str = "bn",
    stack_strategy: str = "first",
) -> tuple[HourglassNet, SlicePlan]:
    """Slice a teacher network into a new network of the ``target`` spec (eval mode, on CPU).

    Args:
        teacher: a trained :class:`HourglassNet`.
        target: the student spec or name (``"hg2x64"``).
        importance: "bn" or "l1".
        stack_strategy: "first" or "first-last".

    Returns:
        (the student, the plan that made it).
    """
    from fpdctl.models.checkpoint import load_state_dict_strict

    state = {k: v.detach().to("cpu") for k, v in teacher.state_dict().items()}
    plan = plan_slice(state, teacher.spec, target, importance=importance, stack_strategy=stack_strategy)
    student = HourglassNet(plan.target)
    load_state_dict_strict(student, slice_state_dict(state, plan), source=f"slice of {teacher.spec.name}")
    # The kept stem filters read pixels as the teacher's did: the student inherits its convention.
    student.input_convention = teacher.input_convention
    student.eval()
    return student, plan


@dataclass(frozen=True)
class PruneResult:
    """What ``fpdctl prune`` wrote.

    Attributes:
        output: the student checkpoint (native safetensors).
        teacher: teacher spec name; student: student spec name.
        stacks: kept teacher stacks.
        importance, stack_strategy: how the slice was chosen.
        teacher_params, student_params: parameter counts.
        teacher_macs, student_macs: MACs per image at ``input_size``.
        input_size: input side the MACs are counted at.
    """

    output: Path
    teacher: str
    student: str
    stacks: tuple[int, ...]
    importance: str
    stack_strategy: str
    teacher_params: int
    student_params: int
    teacher_macs: int
    student_macs: int
    input_size: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "teacher": self.teacher,
            "student": self.student,
            "stacks": list(self.stacks),
            "importance": self.importance,
            "stack_strategy": self.stack_strategy,
            "teacher_params": self.teacher_params,
            "student_params": self.student_params,
            "teacher_macs": self.teacher_macs,
            "student_macs": self.student_macs,
            "input_size": self.input_size,
        }


def prune_checkpoint(
    teacher_path: str | os.PathLike[str],
    target: HourglassSpec | str,
    output: str | os.PathLike[str],
    *,
    importance: str = "bn",
    stack_strategy: str = "first",
    input_size: int = DEFAULT_INPUT_SIZE,
    recalibrate_bn: int = 0,
    data: str = "synthetic",
    batch_size: int = 16,
    device: str = "cpu",
    seed: int = 0,
    input_convention: ConventionOverride | None = None,
) -> PruneResult:
    """Slice a teacher checkpoint (any format ``create_model`` reads) into a native student file.

    The student file records the teacher's spec, its SHA-256, the kept stacks and the criterion
    in its metadata (``fpdctl.prune``, ``fpdctl.pruned_from``).

    Args:
        teacher_path, target, output: the teacher, the student spec or name, the file to write.
        importance, stack_strategy: how the slice is chosen (see :func:`plan_slice`).
        input_size: input side for the MACs (and the BN re-estimation images).
        recalibrate_bn: if positive, re-estimate the student's BN statistics over this many
            batches of ``data``'s training split (:mod:`fpdctl.prune.calibrate`).
        data, batch_size, device, seed: the re-estimation's images and where it runs.
        input_convention: override flags applied to the teacher's own input convention; the
            student inherits the result (and records it), and the re-estimation feeds it.

    Raises:
        CheckpointError: unreadable teacher; UsageError: a target that does not fit in it.
    """
    from fpdctl.models.checkpoint import save_model
    from fpdctl.models.checkpoint_files import file_sha256
    from fpdctl.models.factory import create_model
    from fpdctl.profiling.analytic import analytic_cost

    spec = resolve_spec(target)
    importance = check_importance(importance)
    stack_strategy = check_stack_strategy(stack_strategy)
    spec.check_input_size(input_size)
    if recalibrate_bn < 0:
        raise UsageError(f"`recalibrate_bn` must be 0 or more batches, got {recalibrate_bn}", params="recalibrate_bn")
    if batch_size < 1:  # checked even when --recalibrate-bn is off: a bad value is never ignored
        raise UsageError(f"batch size must be positive, got {batch_size}")
    from fpdctl.data.kinds import parse_data_spec
    from fpdctl.utils.io import check_output_file

    data_spec = parse_data_spec(data)  # once; a missing folder fails now, with or without recalibrate_bn
    check_output_file(output)  # before loading and slicing the teacher
    teacher = create_model(Path(teacher_path), input_convention=input_convention)
    student, plan = slice_model(teacher, spec, importance=importance, stack_strategy=stack_strategy)
    if recalibrate_bn:
        from fpdctl.data.registry import build_dataset
        from fpdctl.data.transforms import AugmentConfig
        from fpdctl.prune.calibrate import recalibrate_bn as recalibrate

        train_set = build_dataset(data_spec, "train", input_size=input_size, augment=AugmentConfig())
        recalibrate(student, train_set, batches=recalibrate_bn, batch_size=batch_size, device=device, seed=seed)
        student.to("cpu")
    described = plan.describe()
    described["recalibrate_bn"] = {"batches": recalibrate_bn, "data": str(data_spec)} if recalibrate_bn else None
    metadata = {PRUNE_KEY: json.dumps(described, sort_keys=True), "fpdctl.pruned_from": file_sha256(teacher_path)}
    save_model(student, output, metadata=metadata)
    return PruneResult(
        output=Path(output),
        teacher=teacher.spec.name,
        student=spec.name,
        stacks=plan.stacks,
        importance=importance,
        stack_strategy=stack_strategy,
        teacher_params=count_parameters(teacher),
        student_params=count_parameters(student),
        teacher_macs=analytic_cost(teacher.spec, input_size).macs,
        student_macs=analytic_cost(spec, input_size).macs,
        input_size=input_size,
    )


__all__ = [
    "PRUNE_KEY",
    "STACK_STRATEGIES",
    "PruneResult",
    "SlicePlan",
    "check_stack_strategy",
    "check_target",
    "kept_stacks",
    "plan_slice",
    "prune_checkpoint",
    "slice_model",
    "slice_state_dict",
]
