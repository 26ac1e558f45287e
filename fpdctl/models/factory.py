"""The model factory: the one way to get a network, from a name, a spec or a checkpoint file.

``fpdctl.create_model``, ``fpdctl.load_model`` and ``fpdctl.models.create_model`` are these
functions. Reading the files themselves is :mod:`fpdctl.models.checkpoint`'s work.
"""

from __future__ import annotations

import os

from fpdctl.errors import UsageError
from fpdctl.models.checkpoint import model_from_checkpoint
from fpdctl.models.checkpoint_files import trained_input_size
from fpdctl.models.convention import ConventionOverride
from fpdctl.models.hourglass import HourglassNet
from fpdctl.models.spec import HourglassSpec, is_checkpoint_path, resolve_spec
from fpdctl.pretrained import is_pretrained_name


def create_model(
    model: str | os.PathLike[str] | HourglassSpec,
    *,
    spec: HourglassSpec | str | None = None,
    input_convention: ConventionOverride | None = None,
) -> HourglassNet:
    """The one way to get a network: from a spec, a model name, or a checkpoint file.

    Args:
        model: an :class:`HourglassSpec` or a name such as ``"hg4x128"`` gives a new network
            with random weights, in training mode like any new module. A pretrained name such as
            ``"synthetic-hg2x64"`` (:mod:`fpdctl.pretrained`) gives its shipped weights, checked
            against the sha256 of its model card, in eval mode. A checkpoint file gives
            its weights in a new network, in eval mode: a ``Path``, or a string that names an
            existing file or ends in a checkpoint suffix (:func:`~fpdctl.models.spec.
            is_checkpoint_path`). Formats: native ``.safetensors``, pytorch-pose ``.pth.tar``,
            official FPD ``.pth``.
        spec: for a checkpoint only, the architecture it must fit; a checkpoint that does not fit
            is refused with the first mismatching tensor and both shapes. None: the file's own.
        input_convention: the user's override flags, applied to the convention the checkpoint
            records or implies (NATIVE for a name or a spec). The result is the network's
            ``input_convention`` attribute.

    The network also remembers the input side it was trained at, as its ``input_size``
    attribute (like timm's ``pretrained_cfg``): a pretrained name's model card, a native
    checkpoint's header, else None (a name, a spec, a foreign checkpoint). So
    :func:`~fpdctl.models.checkpoint.resolve_input_size` and every command that takes a network
    (``fpdctl.export(fpdctl.load_model(x))``) run it at that size without reading the file again.

    Raises:
        UsageError: an unknown name, or ``spec`` given with a name or a spec.
        CheckpointError: a missing, unreadable or unsafe checkpoint, or one that does not fit.
    """
    if isinstance(model, str) and is_pretrained_name(model):
        net = model_from_checkpoint(model, spec)
        net.input_size = trained_input_size(model)
    elif isinstance(model, HourglassSpec) or (isinstance(model, str) and not is_checkpoint_path(model)):
        if spec is not None:
            raise UsageError("spec= applies to a checkpoint file, not to a model name or spec")
        net = HourglassNet(resolve_spec(model))
    elif not isinstance(model, (str, os.PathLike)):
        raise UsageError(f"expected a model name, HourglassSpec or checkpoint path, got {type(model).__name__}")
    else:
        net = model_from_checkpoint(model, spec)
        net.input_size = trained_input_size(model)
    if input_convention is not None:
        net.input_convention = input_convention.apply(net.input_convention)
    return net


def load_model(
    path_or_name: str | os.PathLike[str],
    *,
    input_convention: ConventionOverride | None = None,
) -> HourglassNet:
    """A network in eval mode from a checkpoint file or a pretrained name: :func:`create_model`
    for files, ready for inference (``fpdctl.load_model``).

    Args:
        path_or_name: any checkpoint :func:`create_model` reads (native .safetensors,
            pytorch-pose .pth.tar, official FPD .pth) or a pretrained name such as
            ``synthetic-hg2x64``; a bare model name gives random weights.
        input_convention: override flags applied to the convention the file records or implies.

    Raises:
        CheckpointError: unreadable, damaged or not a hourglass; UsageError: a bad name.
    """
    return create_model(path_or_name, input_convention=input_convention).eval()


__all__ = ["create_model", "load_model"]
