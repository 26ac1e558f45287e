"""``--data`` specs: ``synthetic[:KEY=VAL,...]``, ``mpii:PATH``, ``lsp:PATH`` and ``coco:PATH``.

:func:`parse_data_spec` (:mod:`fpdctl.data.kinds`) checks the syntax (and that PATH exists)
without importing anything heavy; :func:`build_dataset` turns a spec into a
:class:`~fpdctl.data.dataset.PoseDataset`.

Synthetic options are passed to ``SyntheticPose`` as keyword arguments, each value converted to
int, then float, else left a string (``synthetic:size=64,seed=3`` -> ``length=64, seed=3``;
``size`` is an alias of ``length``, the number of samples).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Literal

from fpdctl.data.kinds import (
    KINDS,
    SPLITS,
    SYNTHETIC_ALIASES,
    DataSpec,
    data_joint_set,
    parse_data_spec,
)
from fpdctl.errors import UsageError
from fpdctl.models.spec import DEFAULT_INPUT_SIZE, HourglassSpec, resolve_spec

if TYPE_CHECKING:
    from fpdctl.data.dataset import PoseDataset
    from fpdctl.data.transforms import AugmentConfig


def spec_for_data(model: str | HourglassSpec, data: str | DataSpec) -> HourglassSpec:
    """The architecture to train for ``data``: the model's, with the data's joint count.

    A model name without a ``j`` suffix takes the data's joints (``hg4x128`` on COCO data is
    ``hg4x128j17``); a name with one, or a spec, must already have them.

    Raises:
        UsageError: a bad model name, or joints that are not the data's, in one line.
    """
    spec = resolve_spec(model)
    channels = data_joint_set(data)
    if spec.joints == channels.num_joints:
        return spec
    # In hg{S}x{C}[b{B}][j{J}][d{D}][m] only the joints suffix has a "j".
    if isinstance(model, str) and "j" not in model.strip().lower():
        return spec.replace(joints=channels.num_joints)
    raise UsageError(
        f"model {model if isinstance(model, str) else spec.name} predicts {spec.joints} joints but {data} has the "
        f"{channels.num_joints} {channels.name.upper()} joints; leave the j suffix out of the "
        f"model name (the data's joints) or write j{channels.num_joints}"
    )


def _accepted_options(cls: type) -> set[str]:
    """Keyword names ``cls(...)`` accepts, following ``**kwargs`` up to the base classes."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _check_options(kind: str, cls: type, options: dict[str, Any], exclude: set[str]) -> None:
    """Refuse ``KIND:KEY=VAL`` keys the dataset class does not take, naming the valid ones."""
    valid = sorted(_accepted_options(cls) - exclude)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UsageError(f"unknown {kind} option(s) {', '.join(unknown)}; valid: {', '.join(valid) or 'none'}")


def build_dataset(
    data: str | DataSpec,
    split: Literal["train", "val"],
    *,
    input_size: int = DEFAULT_INPUT_SIZE,
    heatmap_size: int | None = None,
    sigma: float = 2.0,
    augment: "AugmentConfig | None" = None,
    **kw: Any,
) -> "PoseDataset":
    """Build the dataset named by a ``--data`` spec.

    Args:
        data: the spec string (or a parsed :class:`DataSpec`).
        split: "train" or "val".
        input_size: network input side in px.
        heatmap_size: heatmap side (default ``input_size // 4``).
        sigma: target Gaussian sigma in heatmap px.
        augment: augmentation, or None for none.
        **kw: passed on to the dataset class (e.g. ``max_bad_fraction``).

    Returns:
        ``SyntheticPose``, ``MPIIDataset``, ``LSPDataset`` or ``COCODataset``.

    Raises:
        UsageError: a bad spec or split; InputError / DataError: missing or malformed files.
    """
    spec = parse_data_spec(data)
    if split not in SPLITS:
        raise UsageError(f"split must be 'train' or 'val', got {split!r}")
    common: dict[str, Any] = dict(input_size=input_size, heatmap_size=heatmap_size, sigma=sigma, augment=augment, **kw)
    kind = KINDS[spec.kind]
    dataset_class = kind.dataset_class()
    if kind.takes_path:
        return dataset_class(spec.path, split, **common)
    options = {SYNTHETIC_ALIASES.get(k, k): v for k, v in spec.options.items()}
    overlap = set(options) & set(common)
    if overlap:
        raise UsageError(f"{spec.kind} option(s) {', '.join(sorted(overlap))} clash with the command's own options")
    _check_options(spec.kind, dataset_class, options, exclude=set(common) | {"split", "self"})
    return dataset_class(split=split, **common, **options)
