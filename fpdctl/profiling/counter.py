"""A meta-device cost counter: MACs, element-wise work and peak activation memory.

The model runs once on the ``meta`` device under a ``TorchDispatchMode`` that sees every ATen op.
Meta tensors carry shapes and dtypes but no data, so counting costs the same at 64 px or 1024 px
and never runs the real computation.

Conventions:

- **MACs** count convolutions and matrix products only: a convolution producing ``O`` output
  elements with weight ``[C_out, C_in/groups, kh, kw]`` costs ``O * C_in/groups * kh * kw``
  multiply-accumulates. Biases are not counted (they are element-wise adds). FLOPs = 2 x MACs.
- **Element-wise ops** count one operation per output element of every other computing op: batch
  norm, ReLU, add, max-pool, upsample. Pure data movement (views, ``stack``, ``cat``, copies) is
  not counted.
- **Peak activation memory** is the largest total size of the activation tensors alive at the
  same moment during one eager inference forward (``inference_mode``), input included, weights
  excluded. Lifetimes follow Python's reference counting exactly as eager PyTorch frees memory;
  in-place ops and views allocate nothing. Allocator caching and workspace buffers are not
  included, so a real process needs somewhat more.
"""

from __future__ import annotations

import weakref
from collections import Counter as _Counter
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Ops that move or reinterpret data without computing anything.
_DATA_MOVEMENT = {
    aten.stack,
    aten.cat,
    aten.clone,
    aten.copy_,
    aten._to_copy,
    aten.view,
    aten._unsafe_view,
    aten.reshape,
    aten.permute,
    aten.transpose,
    aten.t,
    aten.expand,
    aten.slice,
    aten.select,
    aten.unsqueeze,
    aten.squeeze,
    aten.contiguous,
    aten.empty,
    aten.empty_like,
    aten.zeros,
    aten.detach,
    aten.alias,
    aten.unbind,
    aten.split,
    aten.lift_fresh,
    aten.empty_strided,
    aten.new_empty,
    aten.new_empty_strided,
    aten.as_strided,
    aten.flatten,
}
_MATMUL = {aten.mm, aten.addmm, aten.bmm, aten.matmul, aten.baddbmm}
# inference_mode skips the autograd decompositions, so conv2d arrives undecomposed.
_CONV = {aten.convolution, aten.conv2d, aten.conv1d, aten.conv3d, aten._convolution}


@dataclass(frozen=True)
class CostCount:
    """What one forward pass costs.

    Attributes:
        macs: multiply-accumulates of convolutions and matrix products, for the whole batch.
        elementwise_ops: output elements of all other computing ops, for the whole batch.
        peak_activation_bytes: peak bytes of live activations (see module docstring).
        ops: how many times each ATen op ran.
    """

    macs: int
    elementwise_ops: int
    peak_activation_bytes: int
    ops: dict[str, int] = field(default_factory=dict)


class _CostMode(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.macs = 0
        self.elementwise = 0
        self.live_bytes = 0
        self.peak_bytes = 0
        self.ops: _Counter[str] = _Counter()

    def track(self, tensor: torch.Tensor) -> None:
        nbytes = tensor.numel() * tensor.element_size()
        self.live_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        weakref.finalize(tensor, self._free, nbytes)

    def _free(self, nbytes: int) -> None:
        self.live_bytes -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        self.ops[str(packet.__name__)] += 1
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        first = next((t for t in outputs if isinstance(t, torch.Tensor)), None)
        if packet in _CONV:
            weight = args[1]  # [C_out, C_in / groups, *kernel]
            self.macs += first.numel() * weight[0].numel()
        elif packet in _MATMUL:
            self.macs += first.numel() * args[-2].shape[-1]
        elif packet is aten.linear:
            self.macs += first.numel() * args[1].shape[-1]
        elif packet not in _DATA_MOVEMENT and first is not None:
            self.elementwise += first.numel()
        # Only fresh outputs allocate: in-place ops and views return (part of) an input.
        if not func._schema.is_mutable and not any(r.alias_info for r in func._schema.returns):
            inputs = {id(a) for a in args if isinstance(a, torch.Tensor)}
            for tensor in outputs:
                if isinstance(tensor, torch.Tensor) and id(tensor) not in inputs:
                    self.track(tensor)
        return out


def count_cost(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> CostCount:
    """Count the cost of ``model(torch.empty(input_shape))`` on the meta device.

    Args:
        model: a module whose parameters live on the ``meta`` device (build it under
            ``torch.device("meta")``); weights are never needed.
        input_shape: e.g. ``(1, 3, 256, 256)``.
        dtype: activation dtype (sets the bytes per element of the memory figure).
    """
    model.eval()
    mode = _CostMode()
    with torch.inference_mode():
        x = torch.empty(input_shape, device="meta", dtype=dtype)
        mode.track(x)  # the input counts: it is alive for the whole forward
        with mode:
            out = model(x)
        del out, x
    return CostCount(
        macs=int(mode.macs),
        elementwise_ops=int(mode.elementwise),
        peak_activation_bytes=int(mode.peak_bytes),
        ops=dict(mode.ops),
    )
