"""The first persons of a pose dataset, as a dataset scored with its own ground truth.

Used to validate on part of a split (``fpdctl train --val-limit N``) and to compare exported
models on a few persons. Duck-typed over the dataset contract (``__len__``, ``__getitem__``,
``eval_reference``), so it imports neither torch nor the metrics at module level.
"""

from __future__ import annotations

from typing import Any


class FirstPersons:
    """The first ``count`` persons of a pose dataset.

    Sample ``i`` is the parent's sample ``i`` (its meta index too), so predictions and the
    sliced :class:`~fpdctl.metrics.reference.EvalReference` stay aligned.

    Args:
        dataset: the parent dataset (a :class:`~fpdctl.data.dataset.PoseDataset` or alike).
        count: how many persons to keep (all of them if the parent has fewer).

    Attributes:
        codec, joint_set, channel_joint_set, metric, input_size: the parent's (``metric``
            defaults to "pckh").
    """

    def __init__(self, dataset: Any, count: int) -> None:
        self.dataset = dataset
        self.count = min(int(count), len(dataset))
        self.codec = getattr(dataset, "codec", None)
        self.joint_set = getattr(dataset, "joint_set", None)
        self.channel_joint_set = getattr(dataset, "channel_joint_set", None)
        self.metric = getattr(dataset, "metric", "pckh")
        self.input_size = getattr(dataset, "input_size", None)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self.dataset[index]

    def eval_reference(self) -> Any:
        """The parent's ground truth, cut to the first ``count`` persons (a reference that knows
        how to cut itself, COCO's with its image and annotation ids, does it)."""
        from fpdctl.metrics.reference import EvalReference

        full = self.dataset.eval_reference()
        n = self.count
        if hasattr(full, "first"):
            return full.first(n)
        return EvalReference(
            joints=full.joints[:n],
            visible=full.visible[:n],
            headboxes=None if full.headboxes is None else full.headboxes[:n],
            metric=full.metric,
            joint_set=full.joint_set,
        )


__all__ = ["FirstPersons"]
