"""The sweep's grid: every (stacks, channels, blocks, init) to try, and how shards split it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from fpdctl.errors import UsageError
from fpdctl.models.spec import HourglassSpec
from fpdctl.prune.slicing import check_target

INITS: tuple[str, ...] = ("scratch", "teacher")


@dataclass(frozen=True, order=True)
class SweepItem:
    """One row of the grid: a student architecture and how its weights start.

    Ordering (the "sorted grid" shards split) is by stacks, channels, blocks, then init.
    """

    stacks: int
    channels: int
    blocks: int
    init: str
    joints: int = 16
    depth: int = 4

    @property
    def spec(self) -> HourglassSpec:
        return HourglassSpec(self.stacks, self.channels, self.blocks, self.joints, self.depth)

    @property
    def key(self) -> str:
        """File-name key, e.g. ``hg2x64-teacher``."""
        return f"{self.spec.name}-{self.init}"


def parse_inits(text: str) -> tuple[str, ...]:
    """``scratch``, ``teacher`` or ``both`` (also a comma list) -> the inits to run."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UsageError(f"--init must be scratch, teacher or both, got '{text}'")
    out: list[str] = []
    for part in parts:
        names = INITS if part == "both" else (part,)
        for name in names:
            if name not in INITS:
                raise UsageError(f"--init must be scratch, teacher or both, got '{text}'")
            if name not in out:
                out.append(name)
    return tuple(out)


def build_grid(
    teacher: HourglassSpec,
    stacks: Iterable[int],
    channels: Iterable[int],
    blocks: Iterable[int],
    inits: Iterable[str],
) -> list[SweepItem]:
    """Every (stacks, channels, blocks, init), sorted and without duplicates.

    Students have the teacher's joints and depth, and are never larger than the teacher in any
    dimension (a sliced one cannot be; a scratch one would not be a student).

    Raises:
        UsageError: an empty grid, an invalid spec, or a member larger than the teacher.
    """
    stacks, channels, blocks, inits = list(stacks), list(channels), list(blocks), list(inits)
    for option, values in (("--stacks", stacks), ("--channels", channels), ("--blocks", blocks), ("--init", inits)):
        if not values:
            raise UsageError(f"the sweep grid is empty: {option} gives no values")
    items = set()
    for s in stacks:
        for c in channels:
            for b in blocks:
                spec = HourglassSpec(s, c, b, teacher.joints, teacher.depth)
                check_target(teacher, spec)
                for init in inits:
                    if init not in INITS:
                        raise UsageError(f"--init must be scratch, teacher or both, got '{init}'")
                    items.add(SweepItem(s, c, b, init, teacher.joints, teacher.depth))
    return sorted(items)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` -> (K, N), 1 <= K <= N; None -> (1, 1).

    Raises:
        UsageError: anything else, in one line.
    """
    if text is None:
        return 1, 1
    left, sep, right = str(text).strip().partition("/")
    try:
        index, count = int(left), int(right)
    except ValueError:
        index = count = 0
        sep = ""
    if not sep or count < 1:
        raise UsageError(f"--shard must be K/N with 1 <= K <= N (e.g. 2/4), got '{text}'")
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text}: K must be between 1 and {count}")
    return index, count


def shard_items(items: Sequence[SweepItem], index: int, count: int) -> list[SweepItem]:
    """The K-th of N round-robin slices of the sorted grid (items K-1, K-1+N, K-1+2N...)."""
    if not 1 <= index <= count:
        raise UsageError(f"--shard {index}/{count}: K must be between 1 and {count}")
    ordered = sorted(items)
    return [item for i, item in enumerate(ordered) if i % count == index - 1]


__all__ = ["INITS", "SweepItem", "build_grid", "parse_inits", "parse_shard", "shard_items"]
