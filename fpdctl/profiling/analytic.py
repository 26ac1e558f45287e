"""Closed-form costs of an :class:`HourglassSpec`, without torch.

This walks the same computation as ``HourglassNet.forward`` on shapes only, in plain Python, so
``fpdctl profile`` answers in milliseconds without importing torch. Activation lifetimes are
modelled with reference-counted placeholder objects arranged in the same expressions as the real
forward, so the peak memory is the one eager PyTorch reaches. The meta-device counter
(:mod:`fpdctl.profiling.counter`) measures the real module; the test-suite holds the two equal
for many specs and sizes, so any change to the network that this file misses fails the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from fpdctl.models.spec import MOBILE, HourglassSpec


@dataclass(frozen=True)
class AnalyticCost:
    """Costs of one forward pass at a batch size (see :mod:`fpdctl.profiling.counter`)."""

    params: int
    macs: int
    elementwise_ops: int
    peak_activation_bytes: int


class _Ledger:
    def __init__(self, bytes_per_element: int) -> None:
        self.bytes_per_element = bytes_per_element
        self.macs = 0
        self.elementwise = 0
        self.live = 0
        self.peak = 0


class _Act:
    """A placeholder activation of shape [N, C, H, W]; its bytes are live while it is referenced."""

    __slots__ = ("ledger", "shape", "nbytes")

    def __init__(self, ledger: _Ledger, n: int, c: int, h: int, w: int) -> None:
        self.ledger = ledger
        self.shape = (n, c, h, w)
        self.nbytes = n * c * h * w * ledger.bytes_per_element
        ledger.live += self.nbytes
        ledger.peak = max(ledger.peak, ledger.live)

    def __del__(self) -> None:
        self.ledger.live -= self.nbytes

    @property
    def numel(self) -> int:
        n, c, h, w = self.shape
        return n * c * h * w


def _conv(x: _Act, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> _Act:
    n, c, h, w = x.shape
    out = _Act(x.ledger, n, out_channels, h // stride, w // stride)
    x.ledger.macs += out.numel * (c // groups) * kernel * kernel
    return out


def _pointwise(x: _Act) -> _Act:
    """BN (or any op) producing a fresh tensor of the same shape."""
    out = _Act(x.ledger, *x.shape)
    x.ledger.elementwise += out.numel
    return out


def _relu_(x: _Act) -> _Act:
    x.ledger.elementwise += x.numel  # in place: no new memory
    return x


def _add(a: _Act, b: _Act) -> _Act:
    out = _Act(a.ledger, *a.shape)
    a.ledger.elementwise += out.numel
    return out


def _resample(x: _Act, factor: float) -> _Act:
    n, c, h, w = x.shape
    out = _Act(x.ledger, n, c, int(h * factor), int(w * factor))
    x.ledger.elementwise += out.numel
    return out


def _bottleneck(x: _Act, mid: int, depthwise: bool) -> _Act:
    # Mirrors Bottleneck.forward statement by statement (temporaries die at the same points).
    out = _conv(_relu_(_pointwise(x)), mid, 1)
    out = _conv(_relu_(_pointwise(out)), mid, 3, groups=mid if depthwise else 1)
    out = _conv(_relu_(_pointwise(out)), 2 * mid, 1)
    skip = x if x.shape[1] == 2 * mid else _conv(x, 2 * mid, 1)
    return _add(out, skip)


def _residuals(x: _Act, channels: int, blocks: int, depthwise: bool) -> _Act:
    for _ in range(blocks):
        x = _bottleneck(x, channels // 2, depthwise)
    return x


def _hourglass_level(level: int, x: _Act, channels: int, blocks: int, depthwise: bool) -> _Act:
    up1 = _residuals(x, channels, blocks, depthwise)
    low = _residuals(_resample(x, 0.5), channels, blocks, depthwise)
    if level > 0:
        low = _hourglass_level(level - 1, low, channels, blocks, depthwise)
    else:
        low = _residuals(low, channels, blocks, depthwise)
    low = _residuals(low, channels, blocks, depthwise)
    return _add(up1, _resample(low, 2.0))


def _params(spec: HourglassSpec) -> int:
    c, j = spec.channels, spec.joints
    depthwise = spec.block == MOBILE

    def conv(cin: int, cout: int, k: int, groups: int = 1) -> int:
        return cout * (cin // groups) * k * k + cout

    def bn(ch: int) -> int:
        return 2 * ch

    def bottleneck(cin: int, mid: int) -> int:
        conv2 = conv(mid, mid, 3, groups=mid if depthwise else 1)
        total = bn(cin) + conv(cin, mid, 1) + bn(mid) + conv2 + bn(mid) + conv(mid, 2 * mid, 1)
        return total + (conv(cin, 2 * mid, 1) if cin != 2 * mid else 0)

    stem = (
        conv(3, c // 4, 7)
        + bn(c // 4)
        + bottleneck(c // 4, c // 4)
        + bottleneck(c // 2, c // 2)
        + bottleneck(c, c // 2)
    )
    branches = 3 * spec.depth + 1
    per_stack = (branches + 1) * spec.blocks * bottleneck(c, c // 2) + conv(c, c, 1) + bn(c) + conv(c, j, 1)
    feedback = conv(c, c, 1) + conv(j, c, 1)
    return stem + spec.stacks * per_stack + (spec.stacks - 1) * feedback


def analytic_cost(spec: HourglassSpec, input_size: int, batch: int = 1, bytes_per_element: int = 4) -> AnalyticCost:
    """Parameters, MACs, element-wise ops and peak activation bytes of one inference forward.

    Args:
        spec: the architecture.
        input_size: square input side in pixels (a multiple of ``spec.input_multiple``).
        batch: images per forward; MACs and memory are for the whole batch.
        bytes_per_element: 4 for fp32 activations, 2 for fp16/bf16.
    """
    spec.check_input_size(input_size)
    ledger = _Ledger(bytes_per_element)
    c, dw = spec.channels, spec.block == MOBILE
    x = _Act(ledger, batch, 3, input_size, input_size)
    y = _relu_(_pointwise(_conv(x, c // 4, 7, stride=2)))
    y = _resample(_bottleneck(y, c // 4, dw), 0.5)
    y = _bottleneck(_bottleneck(y, c // 2, dw), c // 2, dw)
    outputs = []
    for i in range(spec.stacks):
        h = _hourglass_level(spec.depth - 1, y, c, spec.blocks, dw)
        h = _residuals(h, c, spec.blocks, dw)
        h = _relu_(_pointwise(_conv(h, c, 1)))
        score = _conv(h, spec.joints, 1)
        outputs.append(score)
        if i < spec.stacks - 1:
            y = _add(_add(y, _conv(h, c, 1)), _conv(score, c, 1))
        del h, score
    n, j, hh, ww = outputs[0].shape
    stacked = _Act(ledger, n, spec.stacks * j, hh, ww)  # torch.stack copies: data movement only
    del outputs, y, stacked, x
    return AnalyticCost(
        params=_params(spec),
        macs=ledger.macs,
        elementwise_ops=ledger.elementwise,
        peak_activation_bytes=ledger.peak,
    )
