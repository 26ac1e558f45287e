"""The sweep's grid: every (stacks, channels, blocks, init, block type) to try, and how shards
split it.

Block types (``--blocks standard,mobile``): a student may use the teacher's residual block or
another one (the mobile hourglass's depthwise-separable block). Slicing keeps part of the
teacher's own filters, so only a student of the teacher's block type can be sliced; a student of
another type is trained from scratch (init ``scratch``) whatever ``--init`` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from fpdctl.errors import UsageError
from fpdctl.models.spec import BLOCK_TYPES, STANDARD, HourglassSpec
from fpdctl.prune.slicing import check_target
from fpdctl.utils.choices import match_choice

INITS: tuple[str, ...] = ("scratch", "teacher")


@dataclass(frozen=True, order=True)
class SweepItem:
    """One row of the grid: a student architecture and how its weights start.

    Ordering (the "sorted grid" shards split) is by stacks, channels, blocks, init, joints,
    depth, then block type.
    """

    stacks: int
    channels: int
    blocks: int
    init: str
    joints: int = 16
    depth: int = 4
    block: str = STANDARD

    @property
    def spec(self) -> HourglassSpec:
        return HourglassSpec(self.stacks, self.channels, self.blocks, self.joints, self.depth, self.block)

    @property
    def key(self) -> str:
        """File-name key, e.g. ``hg2x64-teacher`` or ``hg2x64m-scratch``."""
        return f"{self.spec.name}-{self.init}"


def check_student(teacher: HourglassSpec, student: HourglassSpec, init: str) -> None:
    """Refuse a grid member that is not a student of the teacher.

    A sliced one (init ``teacher``) must be a slice (:func:`~fpdctl.prune.slicing.check_target`);
    a scratch one may have another block type, but no more stacks, channels or blocks than the
    teacher (else it would not be a student) and the teacher's joints and depth.

    Raises:
        UsageError: in one line.
    """
    check_target(teacher if init == "teacher" else teacher.replace(block=student.block), student)


def parse_blocks(text: str) -> tuple[list[int], list[str] | None]:
    """``--blocks``: residual block counts and/or block types, e.g. ``1,2``, ``standard,mobile``
    or ``1,mobile``.

    Returns:
        (counts, types): counts default to [1]; types None when none is given (the teacher's).

    Raises:
        UsageError: an empty list, a count below 1 or an unknown word, in one line.
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UsageError(
            f"`blocks` must be a comma-separated list of block counts or block types "
            f"({', '.join(BLOCK_TYPES)}), got '{text}'",
            params="blocks",
        )
    values: list[int | str] = []
    for part in parts:
        try:
            values.append(int(part))
        except ValueError:
            values.append(part.lower())
    counts, types = split_blocks(values)
    return counts or [1], types or None


def split_blocks(values: Iterable[int | str]) -> tuple[list[int], list[str]]:
    """``--blocks`` items as (residual block counts, block types), each in the order given.

    Raises:
        UsageError: a count below 1 or a word that is no block type.
    """
    counts: list[int] = []
    types: list[str] = []
    for value in values:
        if isinstance(value, str):
            if value not in BLOCK_TYPES:
                raise UsageError(
                    f"`blocks` takes block counts (integers) and block types ({', '.join(BLOCK_TYPES)}), got '{value}'",
                    params="blocks",
                )
            if value not in types:
                types.append(value)
        else:
            if value < 1:
                raise UsageError(f"`blocks` values must be at least 1, got {value}", params="blocks")
            counts.append(value)
    return counts, types


def parse_inits(text: str) -> tuple[str, ...]:
    """``scratch``, ``teacher`` or ``both`` (also a comma list) -> the inits to run."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UsageError(f"`init` must be scratch, teacher or both, got '{text}'", params="init")
    out: list[str] = []
    for part in parts:
        part = match_choice(part, (*INITS, "both")) or part
        names = INITS if part == "both" else (part,)
        for name in names:
            if name not in INITS:
                raise UsageError(f"`init` must be scratch, teacher or both, got '{text}'", params="init")
            if name not in out:
                out.append(name)
    return tuple(out)


def build_grid(
    teacher: HourglassSpec,
    stacks: Iterable[int],
    channels: Iterable[int],
    blocks: Iterable[int],
    inits: Iterable[str],
    block_types: Iterable[str] | None = None,
) -> list[SweepItem]:
    """Every (stacks, channels, blocks, init, block type), sorted and without duplicates.

    Students have the teacher's joints and depth, and are never larger than the teacher in any
    dimension (a sliced one cannot be; a scratch one would not be a student). A block type other
    than the teacher's cannot be sliced from it: its students are trained from scratch only.

    Args:
        block_types: "standard" and/or "mobile" (None: the teacher's own).

    Raises:
        UsageError: an empty grid, an invalid spec, or a member larger than the teacher.
    """
    stacks, channels, blocks, inits = list(stacks), list(channels), list(blocks), list(inits)
    types = [teacher.block] if block_types is None else list(block_types)
    for option, values in (
        ("stacks", stacks),
        ("channels", channels),
        ("blocks", blocks),
        ("inits", inits),
        ("block_types", types),
    ):
        if not values:
            raise UsageError(f"the sweep grid is empty: `{option}` gives no values", params=option)
    for init in inits:
        if init not in INITS:
            raise UsageError(f"`inits` must be scratch or teacher, got '{init}'", params="inits")
    items = set()
    for s in stacks:
        for c in channels:
            for b in blocks:
                for block in types:
                    spec = HourglassSpec(s, c, b, teacher.joints, teacher.depth, block)
                    # Slicing keeps the teacher's own filters: another block type starts from scratch.
                    for init in inits if block == teacher.block else ("scratch",):
                        check_student(teacher, spec, init)
                        items.add(SweepItem(s, c, b, init, teacher.joints, teacher.depth, block))
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
        raise UsageError(f"`shard` must be K/N with 1 <= K <= N (e.g. 2/4), got '{text}'", params="shard")
    if not 1 <= index <= count:
        raise UsageError(f"`shard` {text}: K must be between 1 and {count}", params="shard")
    return index, count


def shard_items(items: Sequence[SweepItem], index: int, count: int) -> list[SweepItem]:
    """The K-th of N round-robin slices of the sorted grid (items K-1, K-1+N, K-1+2N...)."""
    if not 1 <= index <= count:
        raise UsageError(f"`shard` {index}/{count}: K must be between 1 and {count}", params="shard")
    ordered = sorted(items)
    return [item for i, item in enumerate(ordered) if i % count == index - 1]


__all__ = [
    "INITS",
    "SweepItem",
    "build_grid",
    "check_student",
    "parse_blocks",
    "parse_inits",
    "parse_shard",
    "shard_items",
    "split_blocks",
]
