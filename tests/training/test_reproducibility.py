"""Augmentation as a function of (seed, epoch, index): what exact resume relies on."""

from __future__ import annotations

import torch

from fpdctl.data.registry import build_dataset
from fpdctl.data.transforms import AugmentConfig


def _make() -> object:
    return build_dataset("synthetic", "train", input_size=64, augment=AugmentConfig())


def test_same_seed_epoch_index_same_sample_whatever_ran_before() -> None:
    a, b = _make(), _make()
    a.set_epoch(3, seed=9)
    b.set_epoch(3, seed=9)
    for i in (0, 1, 2):  # b draws other samples and torch numbers first
        b[100 + i]
        torch.rand(5)
    for index in (5, 17):
        sa, sb = a[index], b[index]
        assert torch.equal(sa["image"], sb["image"])
        assert torch.equal(sa["target"], sb["target"])
        assert sa["meta"]["rotation"] == sb["meta"]["rotation"]
        assert sa["meta"]["flipped"] == sb["meta"]["flipped"]


def test_another_epoch_or_seed_draws_another_augmentation() -> None:
    ds = _make()
    ds.set_epoch(0, seed=1)
    first = [ds[i]["meta"]["affine"] for i in range(6)]
    ds.set_epoch(1)  # the seed is kept
    assert ds.augment_seed == 1
    second = [ds[i]["meta"]["affine"] for i in range(6)]
    ds.set_epoch(0, seed=2)
    third = [ds[i]["meta"]["affine"] for i in range(6)]
    assert any((f != s).any() for f, s in zip(first, second))
    assert any((f != t).any() for f, t in zip(first, third))
