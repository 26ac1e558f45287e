"""Converting input tensors between conventions on the torch side, and a module that does it.

The torch twin of :func:`fpdctl.models.convention.convert_array`: the same per-channel affine
(:func:`~fpdctl.models.convention.conversion`), applied to a batch already on the device. Used
where a model with its own convention sees tensors a dataset built in :data:`NATIVE`: evaluation,
BN re-estimation, and the teacher of a distillation run (:class:`InputAdapter`), which thereby
sees its own convention of exactly the augmented crop the student sees in its own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fpdctl.models.convention import NATIVE, InputConvention, conversion


def convert_tensor(images: Tensor, source: InputConvention, target: InputConvention) -> Tensor:
    """Input tensors made for ``source`` as ``target`` wants them (torch side).

    Args:
        images: float [N, 3, H, W] (or [..., 3, H, W]) in ``source``'s convention, any device.
        source, target: the two conventions.

    Returns:
        ``images`` itself when the conventions are equal; else a tensor of the same dtype, device
        and memory format. The arithmetic runs in float32 (or the input's wider dtype).
    """
    if source == target:
        return images
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"expected input tensors [..., 3, H, W], got shape {tuple(images.shape)}")
    channels, scale, shift = conversion(source, target)
    dtype = torch.promote_types(images.dtype, torch.float32)
    scale_t = torch.as_tensor(scale, dtype=dtype, device=images.device).view(3, 1, 1)
    shift_t = torch.as_tensor(shift, dtype=dtype, device=images.device).view(3, 1, 1)
    values = images.to(dtype)
    if channels != (0, 1, 2):
        values = torch.flip(values, dims=[-3])
    out = values * scale_t + shift_t
    if images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out.to(images.dtype)


class InputAdapter(nn.Module):
    """A network fed ``source`` tensors that converts them to its own convention first.

    Args:
        net: the network (its ``input_convention`` is the target).
        source: the convention of the tensors it will be given.

    Attributes:
        net: the wrapped network; spec: its spec; input_convention: ``source`` (what this module
            as a whole takes, so evaluating it converts nothing twice).
    """

    def __init__(self, net: nn.Module, source: InputConvention) -> None:
        super().__init__()
        self.net = net
        self.input_convention = source
        self.target: InputConvention = net.input_convention  # type: ignore[assignment]

    @property
    def spec(self):  # type: ignore[no-untyped-def]
        return self.net.spec

    def forward(self, images: Tensor) -> Tensor:
        return self.net(convert_tensor(images, self.input_convention, self.target))


def adapt_input(net: nn.Module, source: InputConvention = NATIVE) -> nn.Module:
    """``net`` itself when it takes ``source`` tensors, else an :class:`InputAdapter` around it."""
    target = getattr(net, "input_convention", NATIVE)
    return net if target == source else InputAdapter(net, source)


__all__ = ["InputAdapter", "adapt_input", "convert_tensor"]
