"""Which tensors of a Stacked Hourglass share a channel dimension, as data.

Slicing a teacher into a smaller member of the family is only correct when every tensor that
reads or writes the same channel dimension keeps the same channels. This module walks the student
architecture once and describes every convolution and batch norm as a :class:`LayerRule`: the
teacher layer it comes from, and the *channel group* of its output and of its input. A group is
one channel dimension of the network; slicing keeps one index set per group.

The groups of an :class:`~fpdctl.models.hourglass.HourglassNet` of width C:

- ``stream``: the C-wide residual stream. The stem writes it (``layer2``'s conv3 and downsample),
  ``layer3`` and every hourglass / ``res`` bottleneck read it (their bn1, conv1, downsample) and add
  to it (conv3, identity skip); max-pool and nearest upsampling act per channel, so every level of
  every hourglass is the same dimension; ``fc.{s}.0`` reads it and the feedback convolutions
  ``fc_.{s}`` and ``score_.{s}`` add to it.
- ``head.{t}``: the output of teacher stack t's ``fc`` (conv, BN, ReLU), read by ``score.{t}`` and
  ``fc_.{t}``. It never meets the stream (``fc_`` is a 1x1 conv in between), so it gets its own
  index set, scored by the BN that normalises it.
- ``stem.c4`` (C/4: conv1, bn1, layer1's input) and ``stem.c2`` (C/2: layer1's output, layer2's
  input).
- ``{teacher bottleneck}.mid1`` and ``.mid2``: inside each bottleneck, conv1's output (read by bn2
  and conv2) and conv2's output (read by bn3 and conv3) are two separate dimensions.
- Mobile blocks (depthwise conv2, weight [mid, 1, 3, 3]): output channel i of the depthwise
  convolution reads only its input channel i, so conv1's output and conv2's output are one
  dimension, ``mid1``: the depthwise filters are kept with their pointwise partners (conv1's rows,
  conv3's columns) and conv2's size-1 input dimension is kept whole. There is no ``mid2``.

Joint channels (``score`` outputs, ``score_`` inputs) and the RGB input are never pruned: their
group is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fpdctl.models.spec import MOBILE, HourglassSpec

STREAM = "stream"
STEM_C4 = "stem.c4"
STEM_C2 = "stem.c2"


@dataclass(frozen=True)
class LayerRule:
    """How one student layer is cut from one teacher layer.

    Attributes:
        kind: "conv" (weight [out, in, k, k] and bias [out]) or "bn" (weight, bias, running_mean,
            running_var [C] and num_batches_tracked).
        student: the student module name, e.g. ``hg.1.hg.3.0.0.conv1``.
        teacher: the teacher module name it is cut from, e.g. ``hg.3.hg.3.0.0.conv1``.
        out_group: channel group of the output (a conv's dim 0, a BN's only dim); None: all kept.
        in_group: channel group of a conv's input (dim 1); None: all kept (or a BN).
    """

    kind: str
    student: str
    teacher: str
    out_group: str | None
    in_group: str | None = None


@dataclass(frozen=True)
class Group:
    """One channel dimension, whose width is ``channels // divisor`` (C/4, C/2 or C)."""

    name: str
    divisor: int

    def width(self, spec: HourglassSpec) -> int:
        """The width of this dimension in a network of ``spec.channels``."""
        return spec.channels // self.divisor


def head_group(teacher_stack: int) -> str:
    """The group of teacher stack ``teacher_stack``'s ``fc`` output."""
    return f"head.{teacher_stack}"


def _bottleneck_rules(
    student: str, teacher: str, in_group: str, out_group: str, has_downsample: bool, depthwise: bool
) -> list[LayerRule]:
    mid1 = f"{teacher}.mid1"
    mid2 = mid1 if depthwise else f"{teacher}.mid2"
    rules = [
        LayerRule("bn", f"{student}.bn1", f"{teacher}.bn1", in_group),
        LayerRule("conv", f"{student}.conv1", f"{teacher}.conv1", mid1, in_group),
        LayerRule("bn", f"{student}.bn2", f"{teacher}.bn2", mid1),
        LayerRule("conv", f"{student}.conv2", f"{teacher}.conv2", mid2, None if depthwise else mid1),
        LayerRule("bn", f"{student}.bn3", f"{teacher}.bn3", mid2),
        LayerRule("conv", f"{student}.conv3", f"{teacher}.conv3", out_group, mid2),
    ]
    if has_downsample:
        rules.append(LayerRule("conv", f"{student}.downsample.0", f"{teacher}.downsample.0", out_group, in_group))
    return rules


def layer_rules(student: HourglassSpec, kept_stacks: tuple[int, ...]) -> tuple[list[LayerRule], dict[str, Group]]:
    """Every convolution and batch norm of ``student`` with its teacher layer and channel groups.

    Residual blocks are taken in order: student block b of a stage is teacher block b (the first
    ``student.blocks`` are kept). Student stack i is teacher stack ``kept_stacks[i]``; the
    feedback (``fc_``/``score_``) of student stack i is the teacher's feedback of the same stack,
    which is what that stack fed into the next one in the teacher.

    Args:
        student: the target architecture (joints, depth and block type equal to the teacher's).
        kept_stacks: teacher stack index of each student stack, increasing, length
            ``student.stacks``.

    Returns:
        (one rule per student convolution and batch norm, the channel groups they use by name).
    """
    rules: list[LayerRule] = [
        LayerRule("conv", "conv1", "conv1", STEM_C4, None),
        LayerRule("bn", "bn1", "bn1", STEM_C4),
    ]
    divisors: dict[str, int] = {STEM_C4: 4, STEM_C2: 2, STREAM: 1}
    dw = student.block == MOBILE

    def bottleneck(name: str, src: str, in_group: str, out_group: str, downsample: bool, mid: int) -> None:
        rules.extend(_bottleneck_rules(name, src, in_group, out_group, downsample, dw))
        divisors[f"{src}.mid1"] = mid
        if not dw:
            divisors[f"{src}.mid2"] = mid

    # Stem: layer1 C/4 -> (C/4) -> C/2, layer2 C/2 -> (C/2) -> C, layer3 C -> (C/2) -> C.
    stem = (
        ("layer1.0", STEM_C4, STEM_C2, 4, True),
        ("layer2.0", STEM_C2, STREAM, 2, True),
        ("layer3.0", STREAM, STREAM, 2, False),
    )
    for name, in_group, out_group, mid, downsample in stem:
        bottleneck(name, name, in_group, out_group, downsample, mid)
    branches = [(level, branch) for level in range(student.depth) for branch in range(4 if level == 0 else 3)]
    for s, t in enumerate(kept_stacks):
        for level, branch in branches:
            for b in range(student.blocks):
                bottleneck(
                    f"hg.{s}.hg.{level}.{branch}.{b}", f"hg.{t}.hg.{level}.{branch}.{b}", STREAM, STREAM, False, 2
                )
        for b in range(student.blocks):
            bottleneck(f"res.{s}.{b}", f"res.{t}.{b}", STREAM, STREAM, False, 2)
        head = head_group(t)
        divisors[head] = 1
        rules += [
            LayerRule("conv", f"fc.{s}.0", f"fc.{t}.0", head, STREAM),
            LayerRule("bn", f"fc.{s}.1", f"fc.{t}.1", head),
            LayerRule("conv", f"score.{s}", f"score.{t}", None, head),
        ]
    for s, t in enumerate(kept_stacks[:-1]):
        rules += [
            LayerRule("conv", f"fc_.{s}", f"fc_.{t}", STREAM, head_group(t)),
            LayerRule("conv", f"score_.{s}", f"score_.{t}", STREAM, None),
        ]
    return rules, {name: Group(name, d) for name, d in divisors.items()}
