"""Reading and writing checkpoints, safely.

Formats read (all with ``torch.load(weights_only=True)``; nothing in a file ever runs):

- native ``.safetensors`` written by :func:`save_model`, with the spec in its metadata;
- pytorch-pose ``checkpoint.pth.tar`` / ``model_best.pth.tar``: a dict with ``state_dict``
  (keys prefixed ``module.``), ``epoch``, ``arch``, ``best_acc``, ``optimizer``; zip or legacy
  serialization;
- the official FPD code's ``checkpoint.pth`` (``state_dict`` with ``module.``,
  ``best_state_dict``, ``perf``, ``optimizer``) and its bare-state_dict ``model_best.pth`` /
  ``final_state.pth``.

The spec (stacks, channels, blocks, joints, depth) is inferred from the tensors, so
:func:`model_from_checkpoint` needs no flags. So is the input convention (how pixels become the network's
input, :mod:`fpdctl.models.convention`): a native file records it in its header
(``fpdctl.input_convention``; files written before it existed are NATIVE), and a foreign file's
format implies it (pytorch-pose: its MPII mean, no std; the official FPD code: BGR). The loaded
network carries it as ``net.input_convention``, and :func:`save_model` writes it back.
The one way to get a network from a name, a spec or a file is
:func:`fpdctl.models.factory.create_model` (and :func:`~fpdctl.models.factory.load_model`).

Damage is caught before any weight is used: every member of a zip checkpoint is checked against
its CRC-32, and native files against the ``fpdctl.crc32`` of their tensors (written by
:func:`save_model`). The legacy (pre-1.6) serialization has no checksum: bytes damaged inside
one of its tensors cannot be detected.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from fpdctl import __version__
from fpdctl.errors import CheckpointError, UsageError
from fpdctl.models.checkpoint_files import (
    NATIVE_SUFFIX,
    TRAIN_INPUT_SIZE_KEY,
    checkpoint_file,
)
from fpdctl.models.convention import (
    METADATA_KEY,
    NATIVE,
    InputConvention,
    infer_convention,
)
from fpdctl.models.hourglass import HourglassNet
from fpdctl.models.spec import (
    MOBILE,
    STANDARD,
    HourglassSpec,
    resolve_spec,
)
from fpdctl.utils.io import atomic_save

SPEC_KEY = "fpdctl.spec"
VERSION_KEY = "fpdctl.version"
# CRC-32 of the tensors (names, dtypes, shapes and bytes), written by save_model and checked on
# read: safetensors itself has no checksum, so bytes damaged on disk would load silently.
CHECKSUM_KEY = "fpdctl.crc32"

# Where the weights sit inside the dict-shaped checkpoints users have, in order of preference.
_STATE_DICT_FIELDS = ("state_dict", "model_state_dict", "model", "best_state_dict")
_PREFIXES = ("module.", "_orig_mod.", "model.")


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read the weights of any supported checkpoint.

    Returns:
        (state_dict with prefixes stripped, metadata). Metadata is the safetensors header for
        native files and a few descriptive fields (``format``, ``epoch``...) for the others.

    Raises:
        CheckpointError: missing, unreadable, unsafe or not a pose checkpoint.
    """
    file = checkpoint_file(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint {'is not a file' if file.exists() else 'not found'}: {file}")
    if file.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {file}")
    if _is_safetensors(file):
        return _read_safetensors(file)
    payload = torch_load_safely(file)
    state_dict, meta = _extract_state_dict(payload, file)
    return state_dict, meta


def _is_safetensors(file: Path) -> bool:
    if file.suffix == NATIVE_SUFFIX:
        return True
    # A safetensors file starts with an 8-byte little-endian header length, then '{'.
    with open(file, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and not zipfile.is_zipfile(file)


def _read_safetensors(file: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors: dict[str, Tensor] = {}
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"cannot read {file}: not a valid safetensors file: corrupt, truncated or another "
            f"format ({_first_line(exc)})"
        ) from exc
    stored = metadata.get(CHECKSUM_KEY)
    if stored is not None and stored != tensors_crc32(tensors):
        raise CheckpointError(
            f"cannot read {file}: corrupt: its tensors do not match the {CHECKSUM_KEY} checksum "
            "written when it was saved"
        )
    metadata.setdefault("format", "fpdctl-safetensors")
    return _strip_prefixes(tensors), metadata


def tensors_crc32(tensors: Mapping[str, Tensor]) -> str:
    """CRC-32 (8 hex digits) of every tensor's name, dtype, shape and bytes, in name order."""
    crc = 0
    for key in sorted(tensors):
        tensor = tensors[key].detach().to("cpu").contiguous()
        crc = zlib.crc32(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}".encode(), crc)
        crc = zlib.crc32(tensor.reshape(-1).view(torch.uint8).numpy(), crc)
    return f"{crc:08x}"


def _check_zip_crcs(file: Path, label: str) -> None:
    """Read every member of a zip checkpoint, checking its CRC-32: torch.load does not, so bytes
    damaged inside a tensor would load silently. Members stored with CRC 0 are skipped
    (``torch.serialization.set_crc32_options(False)`` writes no checksum)."""
    errors = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)
    try:
        archive = zipfile.ZipFile(file)
    except errors as exc:  # no central directory: cut short, or damaged at its end
        raise CheckpointError(
            f"cannot read {label}: truncated or corrupt: not a complete zip archive ({_first_line(exc)})"
        ) from exc
    with archive:
        try:
            for info in archive.infolist():
                if info.CRC == 0 and info.file_size > 0:
                    continue
                with archive.open(info) as member:  # raises BadZipFile on a CRC mismatch
                    while member.read(1 << 20):
                        pass
        except errors as exc:
            raise CheckpointError(
                f"cannot read {label}: corrupt: the zip archive fails its integrity check ({_first_line(exc)})"
            ) from exc


def torch_load_safely(file: Path, what: str = "") -> Any:
    """``torch.load(weights_only=True)`` with one clear CheckpointError for every bad file.

    Args:
        file: an existing file.
        what: how the errors name the file ("training state"); default just the path.

    Raises:
        CheckpointError: empty, corrupt (a zip member fails its CRC), truncated, not a PyTorch
            file, or a pickle that would run code (which never runs).
    """
    label = f"{what} {file}" if what else str(file)
    if file.stat().st_size == 0:
        raise CheckpointError(f"{what or 'checkpoint'} is empty (0 bytes): {file}")
    with open(file, "rb") as handle:
        is_zip = handle.read(4) == b"PK\x03\x04"  # torch.load's own test for the zip format
    if is_zip:
        _check_zip_crcs(file, label)
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise CheckpointError(
                f"refusing to load {label}: it references {found.group(1)}, which would run code; "
                "checkpoints are loaded as data only (torch.load weights_only=True)"
            ) from exc
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        raise CheckpointError(
            f"cannot read {label}: corrupt, or not a plain-data PyTorch checkpoint "
            f"({detail.group(1).strip() if detail else _first_line(exc)}); fpdctl loads checkpoints "
            "as data only and never runs code in them"
        ) from exc
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        zipfile.BadZipFile,
        UnicodeDecodeError,
        AttributeError,
        IndexError,
        KeyError,
        TypeError,
    ) as exc:
        raise CheckpointError(
            f"cannot read {label}: corrupt, truncated or not a PyTorch checkpoint ({_first_line(exc)})"
        ) from exc


def _first_line(exc: BaseException) -> str:
    # PyTorch's zip reader appends advice to every error ("This is an internal miniz error. If
    # you are seeing this error, ..."): keep the diagnosis, not the boilerplate.
    text = str(exc).split(" This is an internal miniz error")[0].strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _extract_state_dict(payload: Any, file: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    meta: dict[str, str] = {}
    if isinstance(payload, Mapping) and payload and all(isinstance(v, Tensor) for v in payload.values()):
        meta["format"] = "state_dict"
        return _strip_prefixes(dict(payload)), meta
    if isinstance(payload, Mapping):
        for field in _STATE_DICT_FIELDS:
            candidate = payload.get(field)
            if isinstance(candidate, Mapping) and candidate and all(isinstance(v, Tensor) for v in candidate.values()):
                meta["format"] = "pytorch-pose" if "arch" in payload else "fpd-checkpoint"
                meta["state_dict_field"] = field
                for info in ("epoch", "arch", "perf", "best_acc", "model"):
                    value = payload.get(info)
                    if isinstance(value, (int, float, str)) or (isinstance(value, Tensor) and value.numel() == 1):
                        meta[info] = str(value.item() if isinstance(value, Tensor) else value)
                return _strip_prefixes(dict(candidate)), meta
    raise CheckpointError(
        f"{file} holds no model weights: expected a state_dict, or a dict with one of {', '.join(_STATE_DICT_FIELDS)}"
    )


def _strip_prefixes(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop wrapper prefixes (DataParallel's ``module.``, torch.compile's ``_orig_mod.``)."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if state_dict and all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def infer_spec(state_dict: Mapping[str, Tensor], source: str | None = None) -> HourglassSpec:
    """Infer the architecture from a hourglass state_dict.

    Stacks from the largest ``score.{s}`` index, channels and joints from ``score.0.weight``,
    blocks from the ``res.0.{b}`` indices, depth from the ``hg.0.hg.{level}`` indices, the block
    type from ``res.0.0.conv2.weight`` (depthwise [C/2, 1, 3, 3]: mobile).

    Args:
        state_dict: the tensors.
        source: the file they came from, named in the error.

    Raises:
        CheckpointError: the tensors are not those of a Stacked Hourglass.
    """
    what = f"not a Stacked Hourglass checkpoint{f' ({source})' if source else ''}"
    score0 = state_dict.get("score.0.weight")
    if score0 is None or score0.ndim != 4:
        some = ", ".join(list(state_dict)[:3])
        raise CheckpointError(f"{what}: no 'score.0.weight' tensor (first keys: {some})")

    def indices(pattern: str) -> set[int]:
        regex = re.compile(pattern)
        return {int(m.group(1)) for k in state_dict if (m := regex.match(k))}

    stacks = max(indices(r"^score\.(\d+)\.weight$")) + 1
    blocks = len(indices(r"^res\.0\.(\d+)\."))
    depth = len(indices(r"^hg\.0\.hg\.(\d+)\."))
    if blocks == 0 or depth == 0:
        raise CheckpointError(f"{what}: no 'res.0.*' or 'hg.0.hg.*' tensors")
    conv2 = state_dict.get("res.0.0.conv2.weight")
    depthwise = conv2 is not None and conv2.ndim == 4 and conv2.shape[1] == 1 and conv2.shape[0] > 1
    try:
        return HourglassSpec(
            stacks=stacks,
            channels=int(score0.shape[1]),
            blocks=blocks,
            joints=int(score0.shape[0]),
            depth=depth,
            block=MOBILE if depthwise else STANDARD,
        )
    except UsageError as exc:
        raise CheckpointError(f"{source or 'checkpoint'} has an invalid hourglass shape: {exc}") from exc


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Tensor], source: str = "checkpoint") -> None:
    """Copy ``state_dict`` into ``model``, naming the first mismatch precisely.

    ``num_batches_tracked`` buffers may be absent (PyTorch 0.4.0 checkpoints predate them).

    Raises:
        CheckpointError: a missing, unexpected or differently shaped tensor.
    """
    expected = model.state_dict()
    spec = getattr(model, "spec", None)
    target = f"{spec.name}" if spec is not None else type(model).__name__
    for key, tensor in expected.items():
        if key not in state_dict:
            if key.endswith("num_batches_tracked"):
                continue
            raise CheckpointError(f"{source} does not fit {target}: tensor '{key}' is missing")
        got = state_dict[key]
        if tuple(got.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source} does not fit {target}: tensor '{key}' has shape {tuple(got.shape)}, "
                f"expected {tuple(tensor.shape)}"
            )
    extra = [k for k in state_dict if k not in expected]
    if extra:
        raise CheckpointError(f"{source} does not fit {target}: unexpected tensor '{extra[0]}'")
    full = dict(state_dict)
    for key, tensor in expected.items():
        full.setdefault(key, torch.zeros_like(tensor))
    model.load_state_dict(full, strict=True)


def model_from_checkpoint(path: str | os.PathLike[str], spec: HourglassSpec | str | None = None) -> HourglassNet:
    """The weights of a checkpoint file (or a pretrained name) in a new :class:`HourglassNet`,
    in eval mode, carrying the input convention the file records or implies.

    Most callers want :func:`fpdctl.models.factory.create_model`, which also takes names and specs.

    Args:
        path: any supported checkpoint file.
        spec: the architecture it must fit; None: the one its header records or its tensors imply.

    Raises:
        CheckpointError: missing, unreadable, unsafe, or not fitting ``spec``.
    """
    state_dict, metadata = read_checkpoint(path)
    if spec is not None:
        wanted = resolve_spec(spec)
        infer_spec(state_dict, source=str(path))  # foreign weights: say so, not "shape mismatch"
    elif SPEC_KEY in metadata:
        wanted = _metadata_spec(metadata, path)
    else:
        wanted = infer_spec(state_dict, source=str(path))
    model = HourglassNet(wanted)
    load_state_dict_strict(model, state_dict, source=str(path))
    model.input_convention = _stored_convention(metadata, path)
    model.eval()
    return model


def _stored_convention(metadata: Mapping[str, str], path: str | os.PathLike[str]) -> InputConvention:
    """The convention a checkpoint records (native header) or its format implies."""
    try:
        return infer_convention(metadata.get("format", ""), metadata)
    except UsageError as exc:  # InputError included: a stored convention that is not valid
        raise CheckpointError(f"{path}: {exc}") from exc


def save_model(model: nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None) -> Path:
    """Save ``model`` as a native ``.safetensors`` file, atomically, with its spec in the metadata.

    Args:
        model: an :class:`HourglassNet` (or anything wrapping one as ``.module``).
        path: target file; ``.safetensors`` is the expected suffix.
        metadata: extra string fields to store (e.g. training step, source hash). The model's
            ``input_convention`` is stored too (``fpdctl.input_convention``), and its
            ``input_size`` when it has one (the trained size; ``metadata`` may set it).
    """
    from safetensors.torch import save_file

    net = unwrap_model(model)
    spec = getattr(net, "spec", None)
    if not isinstance(spec, HourglassSpec):
        raise UsageError("save_model expects an fpdctl HourglassNet (a module with a .spec)")
    convention: InputConvention = getattr(net, "input_convention", NATIVE)
    header = {SPEC_KEY: spec.to_json(), VERSION_KEY: __version__, METADATA_KEY: convention.to_json()}
    if getattr(net, "input_size", None):  # the size it was trained at travels with it
        header[TRAIN_INPUT_SIZE_KEY] = str(int(net.input_size))
    if metadata:
        header.update({str(k): str(v) for k, v in metadata.items()})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    header[CHECKSUM_KEY] = tensors_crc32(tensors)
    atomic_save(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))
    return Path(path)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain network inside DDP/DataParallel (``.module``) or torch.compile (``._orig_mod``)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        elif isinstance(getattr(model, "module", None), nn.Module):
            model = model.module  # type: ignore[assignment]
        else:
            return model


def _metadata_spec(metadata: Mapping[str, str], path: str | os.PathLike[str]) -> HourglassSpec:
    try:
        return HourglassSpec.from_json(metadata[SPEC_KEY])
    except (ValueError, TypeError, KeyError, UsageError) as exc:
        raise CheckpointError(f"{path}: invalid '{SPEC_KEY}' metadata ({exc})") from exc


def describe_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Spec, metadata and input convention of a checkpoint without building the model (for
    reports).

    Raises:
        CheckpointError: unreadable, not a hourglass, or a spec header its tensors contradict.
    """
    state_dict, metadata = read_checkpoint(path)
    spec = infer_spec(state_dict, source=str(path))
    if SPEC_KEY in metadata:
        stored = _metadata_spec(metadata, path)
        if stored != spec:
            raise CheckpointError(
                f"{path} does not fit {stored.name}, the spec in its '{SPEC_KEY}' header: its "
                f"tensors are those of {spec.name}"
            )
    return {
        "spec": spec,
        "metadata": metadata,
        "tensors": len(state_dict),
        "input_convention": _stored_convention(metadata, path),
    }


__all__ = [
    "describe_checkpoint",
    "infer_spec",
    "load_state_dict_strict",
    "model_from_checkpoint",
    "read_checkpoint",
    "save_model",
    "tensors_crc32",
    "torch_load_safely",
    "unwrap_model",
]
