"""Channel importance: which channels of each group a slice keeps.

Two criteria, both computed from the teacher's weights alone (no data):

- ``bn``: the magnitude of the BN scale, |gamma| (Liu et al. 2017, "Network Slimming"). A BN
  output channel is ``gamma * x_hat + beta``; a small |gamma| means the channel carries little
  signal into the ReLU and convolution after it.
- ``l1``: the L1 norm of the convolution filters that write the channel (Li et al. 2017,
  "Pruning Filters for Efficient ConvNets").

A group that several layers share (the residual stream is normalised by every bottleneck that
reads it, and written by every bottleneck that adds to it) sums the per-layer scores, so one index
set serves all of them. Ties are broken by the lower channel index, so selection is deterministic.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from torch import Tensor

from fpdctl.errors import CheckpointError, UsageError
from fpdctl.prune.layout import Group, LayerRule
from fpdctl.utils.choices import parse_choice

IMPORTANCE_KINDS: tuple[str, ...] = ("bn", "l1")


def check_importance(kind: str) -> str:
    """The importance kind ``kind`` names, in any case (UsageError listing the kinds otherwise)."""
    return parse_choice(kind, IMPORTANCE_KINDS, "importance")


def _tensor(state_dict: Mapping[str, Tensor], key: str) -> np.ndarray:
    tensor = state_dict.get(key)
    if tensor is None:
        raise CheckpointError(f"the teacher has no tensor '{key}'")
    return tensor.detach().to("cpu").double().numpy()


def group_importance(
    state_dict: Mapping[str, Tensor],
    rules: list[LayerRule],
    groups: Mapping[str, Group],
    teacher_channels: int,
    kind: str = "bn",
) -> dict[str, np.ndarray]:
    """Score every channel of every group.

    Args:
        state_dict: the teacher's tensors.
        rules: the layers of the slice (:func:`fpdctl.prune.layout.layer_rules`); only the teacher
            layers that survive into the student are scored.
        groups: the channel groups those rules use.
        teacher_channels: the teacher's C, which sets each group's width.
        kind: "bn" (summed |gamma| of the BNs normalising the group) or "l1" (summed L1 norm of the
            filters writing the group).

    Returns:
        group name -> float64 [teacher width] scores, larger is more important.
    """
    kind = check_importance(kind)
    scores = {name: np.zeros(teacher_channels // g.divisor) for name, g in groups.items()}
    for rule in rules:
        if rule.out_group is None:
            continue
        if kind == "bn" and rule.kind == "bn":
            contribution = np.abs(_tensor(state_dict, f"{rule.teacher}.weight"))
        elif kind == "l1" and rule.kind == "conv":
            weight = _tensor(state_dict, f"{rule.teacher}.weight")
            contribution = np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1)
        else:
            continue
        target = scores[rule.out_group]
        if contribution.shape != target.shape:
            raise CheckpointError(
                f"teacher tensor '{rule.teacher}.weight' has {contribution.shape[0]} output channels, "
                f"expected {target.shape[0]}"
            )
        target += contribution
    return scores


def select_channels(scores: np.ndarray, keep: int) -> np.ndarray:
    """The indices of the ``keep`` highest scores, in increasing index order.

    Ties go to the lower index (a stable sort), so the same weights always give the same
    selection; the kept channels stay in the teacher's order, so keeping every channel is the
    identity.

    Args:
        scores: [C] importance of each channel.
        keep: how many to keep, 1..C.

    Returns:
        int64 [keep] sorted channel indices.
    """
    if not 0 < keep <= scores.shape[0]:
        raise UsageError(f"cannot keep {keep} of {scores.shape[0]} channels")
    order = np.argsort(-scores, kind="stable")[:keep]
    return np.sort(order).astype(np.int64)
