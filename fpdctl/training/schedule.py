"""The learning-rate schedule of a run: ``step:E1,E2,...``, ``cosine`` or ``constant``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fpdctl.errors import UsageError


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule as a multiplier of the base rate.

    Attributes:
        kind: "step", "cosine" or "constant".
        milestones: epochs at which "step" multiplies the rate by ``factor`` (sorted).
        factor: the step multiplier.
    """

    kind: str
    milestones: tuple[float, ...] = field(default_factory=tuple)
    factor: float = 0.1

    def multiplier(self, step: int, steps_per_epoch: int, total_steps: int) -> float:
        """The learning-rate multiplier for optimizer step ``step`` (0-based).

        "step" counts epochs as ``step / steps_per_epoch`` so a milestone at epoch 90 applies from
        the first step of epoch 90; "cosine" decays from 1 to 0 over ``total_steps``.
        """
        if self.kind == "constant":
            return 1.0
        if self.kind == "cosine":
            progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        epoch = step / max(steps_per_epoch, 1)
        passed = sum(1 for m in self.milestones if epoch >= m)
        return self.factor**passed


def parse_schedule(text: str, factor: float = 0.1) -> Schedule:
    """Parse ``step:90,120``, ``cosine`` or ``constant``.

    Raises:
        UsageError: any other form.
    """
    value = str(text).strip().lower()
    if value in ("cosine", "constant"):
        return Schedule(kind=value, factor=factor)
    kind, sep, rest = value.partition(":")
    if kind == "step" and sep:
        try:
            milestones = tuple(float(x) for x in rest.split(",") if x.strip())
        except ValueError:
            milestones = ()
        if milestones and all(m > 0 for m in milestones):
            return Schedule(kind="step", milestones=tuple(sorted(milestones)), factor=factor)
    raise UsageError(f"`schedule` must be step:E1,E2,... (epochs), cosine or constant, got {text!r}", params="schedule")


__all__ = ["Schedule", "parse_schedule"]
