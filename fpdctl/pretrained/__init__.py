"""Pretrained weights shipped with fpdctl, reached by name (``--teacher synthetic-hg2x64``).

Each registered name has two files in this package folder: ``NAME.safetensors`` (a native
checkpoint) and ``NAME.json``, its model card: how it was made (``command``, ``steps``, ``seed``,
``data``), what it scores (``metric``, ``val_persons``, ``pckh``, and ``pckh_subset`` with
``persons`` and ``value``: the figure ``tests/test_pretrained.py`` checks), the ``input_size``
it was trained at and the ``sha256`` of the weights file. Loading a name
(:func:`fpdctl.models.factory.create_model`) refuses a file whose hash differs from its card.

This module is data and lookup only (no torch, nothing from the models): the checkpoint code
imports it, not the other way round. ``FPDCTL_PRETRAINED_DIR`` points the lookup at another
folder (tests; a site mirror).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fpdctl.errors import CheckpointError, UsageError

# The registry: name -> one line saying what it is (``fpdctl models`` lists them).
PRETRAINED: dict[str, str] = {
    "synthetic-hg2x64": "hg2x64 teacher trained on the built-in synthetic data (128 px input)",
    "synthetic-coco-hg2x64": "hg2x64 teacher, COCO's 17 keypoints, trained on synthetic:layout=coco (128 px input)",
}
# The environment variable that moves the folder the files are read from.
PRETRAINED_DIR_ENV = "FPDCTL_PRETRAINED_DIR"
WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
# Fields every model card has (the lead's reference-teacher recipe writes them all).
CARD_FIELDS: tuple[str, ...] = (
    "name",
    "model",
    "input_size",
    "command",
    "steps",
    "seed",
    "data",
    "metric",
    "val_persons",
    "pckh",
    "pckh_subset",
    "sha256",
    "date",
    "machine",
)
# A COCO model's card scores COCO keypoint AP instead of PCKh: ``ap`` (percent, ground-truth
# boxes, the whole validation split), ``ap_subset`` (``persons``, ``value``: what the test checks)
# and ``ap_detector`` (``value``, ``boxes``: the AP on the simulated detector's boxes).
COCO_CARD_FIELDS: tuple[str, ...] = tuple(f for f in CARD_FIELDS if f not in ("pckh", "pckh_subset")) + (
    "ap",
    "ap_subset",
    "ap_detector",
)


def pretrained_dir() -> Path:
    """The folder the pretrained files are read from: ``$FPDCTL_PRETRAINED_DIR`` or this package."""
    override = os.environ.get(PRETRAINED_DIR_ENV)
    return Path(override).expanduser() if override else Path(__file__).resolve().parent


def list_pretrained() -> list[str]:
    """The registered pretrained names, sorted."""
    return sorted(PRETRAINED)


def is_pretrained_name(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is a registered pretrained name (an existing path of that name wins)."""
    value = os.fspath(text)
    return value in PRETRAINED and not os.path.exists(value)


def weights_path(name: str) -> Path:
    """Where the weights of pretrained ``name`` live (whether or not the file is there)."""
    _check_name(name)
    return pretrained_dir() / f"{name}{WEIGHTS_SUFFIX}"


def name_of_weights(path: str | os.PathLike[str]) -> str | None:
    """The registered name whose weights file ``path`` is, or None."""
    try:
        resolved = Path(path).resolve()
    except OSError:
        return None
    for name in PRETRAINED:
        if weights_path(name).resolve() == resolved:
            return name
    return None


def pretrained_card(name: str) -> dict[str, Any]:
    """The model card of pretrained ``name``.

    Raises:
        UsageError: an unregistered name.
        CheckpointError: the card is missing, unreadable, not for this name, or lacks a field.
    """
    _check_name(name)
    path = pretrained_dir() / f"{name}{CARD_SUFFIX}"
    if not path.is_file():
        raise CheckpointError(f"pretrained model {name} is not installed: its model card {path} is missing")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read the model card {path}: {exc}") from exc
    if not isinstance(card, dict):
        raise CheckpointError(f"the model card {path} is not a JSON object")
    missing = [f for f in (COCO_CARD_FIELDS if "ap" in card else CARD_FIELDS) if f not in card]
    if missing:
        raise CheckpointError(f"the model card {path} lacks {', '.join(missing)}")
    if card["name"] != name:
        raise CheckpointError(f"the model card {path} is for {card['name']!r}, not {name!r}")
    return card


# The card's fields a listing (``fpdctl models``) shows: what the model is, how well it scores,
# and how it was made (the command that reproduces it, the weights' hash, the date).
LISTED_CARD_FIELDS: tuple[str, ...] = (
    "model",
    "input_size",
    "metric",
    "pckh",
    "ap",
    "steps",
    "seed",
    "command",
    "sha256",
    "date",
)


def describe_pretrained() -> list[dict[str, Any]]:
    """One row per registered name, for listings: ``name``, ``description``, ``installed``
    (card and weights present), and from the card the :data:`LISTED_CARD_FIELDS` (``pckh``, or
    ``ap`` for a COCO model; None when the card is missing). The weights are not hashed here;
    loading them is what checks them."""
    rows: list[dict[str, Any]] = []
    for name in list_pretrained():
        row: dict[str, Any] = {
            "name": name,
            "description": PRETRAINED[name],
            "installed": False,
            **dict.fromkeys(LISTED_CARD_FIELDS),
        }
        try:
            card = pretrained_card(name)
        except CheckpointError:
            card = None
        if card is not None:
            row.update({k: card.get(k) for k in LISTED_CARD_FIELDS})
            row["installed"] = weights_path(name).is_file()
        rows.append(row)
    return rows


def _check_name(name: str) -> None:
    if name not in PRETRAINED:
        raise UsageError(f"unknown pretrained model '{name}'; available: {', '.join(list_pretrained()) or 'none'}")


__all__ = [
    "CARD_FIELDS",
    "LISTED_CARD_FIELDS",
    "COCO_CARD_FIELDS",
    "PRETRAINED",
    "PRETRAINED_DIR_ENV",
    "describe_pretrained",
    "is_pretrained_name",
    "list_pretrained",
    "name_of_weights",
    "pretrained_card",
    "pretrained_dir",
    "weights_path",
]
