"""Which file a model argument names, and the input side it was trained at: the questions every
command asks of ``MODEL`` before loading it (:mod:`fpdctl.models.checkpoint` loads it).

Paths and headers only: nothing here builds a network.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fpdctl.errors import CheckpointError
from fpdctl.models.spec import DEFAULT_INPUT_SIZE
from fpdctl.pretrained import is_pretrained_name, name_of_weights, pretrained_card, weights_path

NATIVE_SUFFIX = ".safetensors"


def checkpoint_file(model: str | os.PathLike[str]) -> Path:
    """The file a checkpoint argument names: a pretrained name's weights, verified against its
    model card, or the path itself (not checked: the reader says what is wrong with it).

    Raises:
        CheckpointError: a pretrained name whose card or weights are missing, or whose weights
            do not have the sha256 its card records.
    """
    if not is_pretrained_name(model):
        return Path(model)
    name = os.fspath(model)
    card = pretrained_card(name)
    file = weights_path(name)
    if not file.is_file():
        raise CheckpointError(f"pretrained model {name} is not installed: {file} is missing")
    digest = file_sha256(file)
    if digest != str(card["sha256"]).lower():
        raise CheckpointError(
            f"pretrained model {name}: {file} has sha256 {digest[:16]}..., its model card says "
            f"{str(card['sha256'])[:16]}...; the file is damaged or replaced: reinstall it"
        )
    return file


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, to record which checkpoint an artefact came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# Written by the trainer into every checkpoint it saves: the input side the model learned at.
TRAIN_INPUT_SIZE_KEY = "fpdctl.train.input_size"


def trained_input_size(model: object) -> int | None:
    """The input side a native checkpoint was trained at (its header), None if it does not say.

    A pretrained name (or its weights file) has its model card's (a missing card raises
    CheckpointError). Only fpdctl's own ``.safetensors`` carry it; a model name, another format,
    a file that cannot be read, or anything that is not a path (a loaded module) gives None
    (loading the file reports what is wrong with it).
    """
    if not isinstance(model, (str, os.PathLike)):
        return None
    name = os.fspath(model) if is_pretrained_name(model) else name_of_weights(model)
    if name is not None:  # a pretrained name or its file: the model card says
        return int(pretrained_card(name)["input_size"])
    file = Path(model)
    if file.suffix != NATIVE_SUFFIX or not file.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(file), "pt") as handle:
            value = (handle.metadata() or {}).get(TRAIN_INPUT_SIZE_KEY, "")
        size = int(value)
    except Exception:  # unreadable or no such entry: the caller's load reports a bad file
        return None
    return size if size > 0 else None


def resolve_input_size(model: object, input_size: int | None = None) -> int:
    """The network input side for ``model``, the rule of every command (eval, export, predict,
    bench): ``input_size`` when the user gives one, else the size the checkpoint was trained at,
    else :data:`~fpdctl.models.spec.DEFAULT_INPUT_SIZE`.

    Args:
        model: a checkpoint path, a model name, or a network (its ``input_size`` attribute, which
            :func:`~fpdctl.models.factory.create_model` sets from the file it read).
        input_size: the size asked for, or None.
    """
    if input_size is not None:
        return int(input_size)
    if not isinstance(model, (str, os.PathLike)):
        remembered = getattr(getattr(model, "module", model), "input_size", None)  # DDP wraps as .module
        return int(remembered) if isinstance(remembered, int) and remembered > 0 else DEFAULT_INPUT_SIZE
    return trained_input_size(model) or DEFAULT_INPUT_SIZE


__all__ = [
    "NATIVE_SUFFIX",
    "TRAIN_INPUT_SIZE_KEY",
    "checkpoint_file",
    "file_sha256",
    "resolve_input_size",
    "trained_input_size",
]
