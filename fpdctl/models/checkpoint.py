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
``load_model(path)`` needs no flags.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from fpdctl import __version__
from fpdctl.errors import CheckpointError, UsageError
from fpdctl.models.hourglass import HourglassNet
from fpdctl.models.spec import HourglassSpec, resolve_spec
from fpdctl.utils.io import atomic_save

SPEC_KEY = "fpdctl.spec"
VERSION_KEY = "fpdctl.version"
NATIVE_SUFFIX = ".safetensors"

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
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint {'is not a file' if file.exists() else 'not found'}: {file}")
    if file.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {file}")
    if _is_safetensors(file):
        return _read_safetensors(file)
    payload = _torch_load_safely(file)
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
        raise CheckpointError(f"cannot read {file}: not a valid safetensors file ({_first_line(exc)})") from exc
    metadata.setdefault("format", "fpdctl-safetensors")
    return _strip_prefixes(tensors), metadata


def _torch_load_safely(file: Path) -> Any:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise CheckpointError(
                f"refusing to load {file}: it references {found.group(1)}, which would run code; "
                "checkpoints are loaded as data only (torch.load weights_only=True)"
            ) from exc
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        raise CheckpointError(
            f"cannot read {file}: corrupt, or not a plain-data PyTorch checkpoint "
            f"({detail.group(1).strip() if detail else _first_line(exc)}); fpdctl loads checkpoints "
            "as data only and never runs code in them"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError,
            AttributeError, IndexError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"cannot read {file}: corrupt, truncated or not a PyTorch checkpoint ({_first_line(exc)})"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _extract_state_dict(payload: Any, file: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    meta: dict[str, str] = {}
    if isinstance(payload, Mapping) and payload and all(isinstance(v, Tensor) for v in payload.values()):
        meta["format"] = "state_dict"
        return _strip_prefixes(dict(payload)), meta
    if isinstance(payload, Mapping):
        for field in _STATE_DICT_FIELDS:
            candidate = payload.get(field)
            if isinstance(candidate, Mapping) and candidate and all(
                isinstance(v, Tensor) for v in candidate.values()
            ):
                meta["format"] = "pytorch-pose" if "arch" in payload else "fpd-checkpoint"
                meta["state_dict_field"] = field
                for info in ("epoch", "arch", "perf", "best_acc", "model"):
                    value = payload.get(info)
                    if isinstance(value, (int, float, str)) or (
                        isinstance(value, Tensor) and value.numel() == 1
                    ):
                        meta[info] = str(value.item() if isinstance(value, Tensor) else value)
                return _strip_prefixes(dict(candidate)), meta
    raise CheckpointError(
        f"{file} holds no model weights: expected a state_dict, or a dict with one of "
        f"{', '.join(_STATE_DICT_FIELDS)}"
    )


def _strip_prefixes(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop wrapper prefixes (DataParallel's ``module.``, torch.compile's ``_orig_mod.``)."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if state_dict and all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def infer_spec(state_dict: Mapping[str, Tensor]) -> HourglassSpec:
    """Infer the architecture from a hourglass state_dict.

    Stacks from the largest ``score.{s}`` index, channels and joints from ``score.0.weight``,
    blocks from the ``res.0.{b}`` indices, depth from the ``hg.0.hg.{level}`` indices.

    Raises:
        CheckpointError: the tensors are not those of a Stacked Hourglass.
    """
    score0 = state_dict.get("score.0.weight")
    if score0 is None or score0.ndim != 4:
        some = ", ".join(list(state_dict)[:3])
        raise CheckpointError(
            f"not a Stacked Hourglass checkpoint: no 'score.0.weight' tensor (first keys: {some})"
        )

    def indices(pattern: str) -> set[int]:
        regex = re.compile(pattern)
        return {int(m.group(1)) for k in state_dict if (m := regex.match(k))}

    stacks = max(indices(r"^score\.(\d+)\.weight$")) + 1
    blocks = len(indices(r"^res\.0\.(\d+)\."))
    depth = len(indices(r"^hg\.0\.hg\.(\d+)\."))
    if blocks == 0 or depth == 0:
        raise CheckpointError("not a Stacked Hourglass checkpoint: no 'res.0.*' or 'hg.0.hg.*' tensors")
    try:
        return HourglassSpec(
            stacks=stacks,
            channels=int(score0.shape[1]),
            blocks=blocks,
            joints=int(score0.shape[0]),
            depth=depth,
        )
    except UsageError as exc:
        raise CheckpointError(f"checkpoint has an invalid hourglass shape: {exc}") from exc


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


def load_model(
    path: str | os.PathLike[str], spec: HourglassSpec | str | None = None
) -> HourglassNet:
    """Load any supported checkpoint into a new :class:`HourglassNet` in eval mode.

    Args:
        path: a native ``.safetensors``, pytorch-pose ``.pth.tar`` or official FPD ``.pth`` file.
        spec: optional expected architecture; a checkpoint that does not fit it is refused with
            the first mismatching tensor and both shapes.
    """
    state_dict, metadata = read_checkpoint(path)
    if spec is not None:
        wanted = resolve_spec(spec)
    elif SPEC_KEY in metadata:
        try:
            wanted = HourglassSpec.from_json(metadata[SPEC_KEY])
        except (ValueError, TypeError, UsageError) as exc:
            raise CheckpointError(f"{path}: invalid '{SPEC_KEY}' metadata ({exc})") from exc
    else:
        wanted = infer_spec(state_dict)
    model = HourglassNet(wanted)
    load_state_dict_strict(model, state_dict, source=str(path))
    model.eval()
    return model


def save_model(
    model: nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> Path:
    """Save ``model`` as a native ``.safetensors`` file, atomically, with its spec in the metadata.

    Args:
        model: an :class:`HourglassNet` (or anything wrapping one as ``.module``).
        path: target file; ``.safetensors`` is the expected suffix.
        metadata: extra string fields to store (e.g. training step, source hash).
    """
    from safetensors.torch import save_file

    net = unwrap_model(model)
    spec = getattr(net, "spec", None)
    if not isinstance(spec, HourglassSpec):
        raise UsageError("save_model expects an fpdctl HourglassNet (a module with a .spec)")
    header = {SPEC_KEY: spec.to_json(), VERSION_KEY: __version__}
    if metadata:
        header.update({str(k): str(v) for k, v in metadata.items()})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
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


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, to record which checkpoint an artefact came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Spec and metadata of a checkpoint without building the model (for reports)."""
    state_dict, metadata = read_checkpoint(path)
    spec = (
        HourglassSpec.from_json(metadata[SPEC_KEY]) if SPEC_KEY in metadata else infer_spec(state_dict)
    )
    return {"spec": spec, "metadata": metadata, "tensors": len(state_dict)}


def model_from_name_or_path(model: str) -> HourglassNet:
    """A checkpoint path if it exists (or looks like one), else a registered name (random weights)."""
    if os.path.exists(model) or model.endswith((".safetensors", ".pth", ".tar", ".pt", ".bin")):
        return load_model(model)
    from fpdctl.models.hourglass import create_model

    net = create_model(model)
    net.eval()
    return net


__all__ = [
    "describe_checkpoint",
    "file_sha256",
    "infer_spec",
    "load_model",
    "load_state_dict_strict",
    "model_from_name_or_path",
    "read_checkpoint",
    "save_model",
    "unwrap_model",
]
