"""Unlabeled images (fpdctl.data.unlabeled): folder crops, synthetic offsets, batch mixing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fpdctl.boxes import PIXEL_STD
from fpdctl.data.registry import build_dataset
from fpdctl.data.transforms import AugmentConfig
from fpdctl.data.unlabeled import (
    MixedDataset,
    MixedSampler,
    UnlabeledView,
    absolute_unlabeled,
    build_unlabeled,
    check_unlabeled,
    image_files,
    split_batch,
)
from fpdctl.errors import InputError, UsageError
from fpdctl.training.distributed import ResumableSampler


def test_split_batch() -> None:
    assert split_batch(16, 0.5) == (8, 8)
    assert split_batch(4, 0.5) == (2, 2)
    assert split_batch(16, 0.25) == (12, 4)
    assert split_batch(10, 0.75) == (2, 8)  # 7.5 rounds half up
    with pytest.raises(UsageError, match=r"unlabeled ratio must be in \(0, 1\), got 1"):
        split_batch(16, 1.0)
    with pytest.raises(UsageError, match=r"unlabeled ratio must be in \(0, 1\), got nan"):
        split_batch(16, float("nan"))
    with pytest.raises(UsageError, match="`unlabeled_ratio` 0.1 of a batch of 4 leaves no unlabeled image"):
        split_batch(4, 0.1)
    with pytest.raises(UsageError, match="`unlabeled_ratio` 0.9 of a batch of 4 leaves no labelled image"):
        split_batch(4, 0.9)


def test_spec_checks(tmp_path: Path) -> None:
    check_unlabeled("synthetic", 0.5, 16)
    check_unlabeled("synthetic:length=100", 0.5, 16)
    check_unlabeled(str(tmp_path), 0.5, 16)
    for bad in ("synthetic:length=0", "synthetic:seed=3", "synthetic:length=x"):
        with pytest.raises(UsageError, match="`unlabeled` must be a folder of images, synthetic or synthetic:length=N"):
            check_unlabeled(bad, 0.5, 16)
    with pytest.raises(InputError, match="unlabeled image folder not found: "):
        check_unlabeled(str(tmp_path / "missing"), 0.5, 16)
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(InputError, match="is not a folder"):
        check_unlabeled(str(tmp_path / "a.png"), 0.5, 16)
    assert absolute_unlabeled("synthetic:length=5") == "synthetic:length=5"
    assert absolute_unlabeled("some/dir") == str(Path.cwd() / "some" / "dir")


def test_a_folder_of_crops(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    # A 60 x 40 image, left half white: the crop is the whole image, so after a 64 px crop the
    # white part spans x in [0, 32) and the rows outside the 40 px high image are padding.
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :30] = 255
    cv2.imwrite(str(tmp_path / "sub" / "b.png"), image)
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((20, 20, 3), 100, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in image_files(tmp_path)] == ["a.jpg", "b.png"]
    view = build_unlabeled(str(tmp_path), "synthetic", input_size=64)
    assert isinstance(view, UnlabeledView) and len(view) == 2
    table = view.dataset.table
    np.testing.assert_allclose(table.centers[1], [29.5, 19.5])
    assert table.scales[1] == pytest.approx(60 / PIXEL_STD)
    sample = view[1]
    assert float(sample["target_weight"].sum()) == 0.0 and float(sample["target"].abs().sum()) == 0.0
    img = sample["image"]
    assert img.shape == (3, 64, 64)
    # Same crop as predict without --bbox: columns 2..29 white, 34..61 black; rows near the top and
    # bottom are padding (zero pixels normalise to the same value as black).
    white, black = img[0, 32, 5].item(), img[0, 32, 50].item()
    assert white > 2.0 and black < -1.5
    assert img[0, 2, 5].item() == pytest.approx(black)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        build_unlabeled(str(tmp_path / "empty"), "synthetic")


def test_synthetic_unlabeled_images_follow_the_labelled_ones() -> None:
    labelled = build_dataset("synthetic:length=6", "train", input_size=64)
    view = build_unlabeled("synthetic:length=5", "synthetic:length=6", input_size=64)
    assert len(view) == 5 and view.offset == 6
    same_stream = build_dataset("synthetic:length=11", "train", input_size=64)
    # Unlabeled image k is labelled-stream sample 6 + k: never one of the 6 labelled images.
    for k in range(5):
        assert torch.equal(view[k]["image"], same_stream[6 + k]["image"])
        assert float(view[k]["target_weight"].sum()) == 0.0
    labelled_images = [labelled[i]["image"] for i in range(6)]
    assert not any(torch.equal(view[k]["image"], im) for k in range(5) for im in labelled_images)
    # The labelled seed carries over; the default length is the synthetic training split's.
    seeded = build_unlabeled("synthetic", "synthetic:length=6,seed=3", input_size=64)
    assert len(seeded) == 20000 and seeded.dataset.seed == 3
    assert build_unlabeled("synthetic:length=3", "synthetic", input_size=64).offset == 20000


def _mixed(
    ratio: float = 0.5,
    *,
    batch: int = 4,
    labelled: int = 10,
    unlabeled: int = 7,
    world: int = 1,
    rank: int = 0,
    seed: int = 3,
) -> MixedSampler:
    n_l, n_u = split_batch(batch, ratio)
    base = ResumableSampler(range(labelled), num_replicas=world, rank=rank, seed=seed)
    return MixedSampler(
        base,
        num_labelled=labelled,
        num_unlabeled=unlabeled,
        labelled_per_batch=n_l,
        unlabeled_per_batch=n_u,
        seed=seed,
        num_replicas=world,
        rank=rank,
    )


def test_mixed_sampler_batches() -> None:
    sampler = _mixed()
    assert sampler.batches == 5 and sampler.num_samples == 20 and len(sampler) == 20
    sampler.set_epoch(0)
    order = list(sampler)
    batches = [order[i : i + 4] for i in range(0, 20, 4)]
    assert all(b[0] < 10 and b[1] < 10 and b[2] >= 10 and b[3] >= 10 for b in batches)
    assert sorted(i for b in batches for i in b[:2]) == list(range(10))  # the labelled epoch
    # The unlabeled stream: each permutation of the 7 images used in full before the next.
    second = _epoch(sampler, 1)
    stream = [i - 10 for b in batches for i in b[2:]] + [i - 10 for i in second if i >= 10]
    assert len(stream) == 20
    assert sorted(stream[:7]) == list(range(7)) and sorted(stream[7:14]) == list(range(7))
    # Resuming at batch 3 gives the rest of the same epoch; a new sampler gives the same order.
    sampler.set_epoch(0, skip=12)
    assert list(sampler) == order[12:] and len(sampler) == 8
    again = _mixed()
    again.set_epoch(0)
    assert list(again) == order
    other_seed = _mixed(seed=4)
    other_seed.set_epoch(0)
    assert list(other_seed) != order


def _epoch(sampler: MixedSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_mixed_sampler_gives_processes_different_unlabeled_images() -> None:
    ranks = [_mixed(world=2, rank=r, labelled=12, unlabeled=100) for r in (0, 1)]
    firsts = [_epoch(s, 0) for s in ranks]
    assert ranks[0].batches == 3  # 6 labelled per rank, 2 per batch
    for b in range(3):
        u0 = set(firsts[0][b * 4 + 2 : b * 4 + 4])
        u1 = set(firsts[1][b * 4 + 2 : b * 4 + 4])
        assert not u0 & u1


def test_mixed_dataset_flags_and_collates() -> None:
    labelled = build_dataset("synthetic:length=4", "train", input_size=64, augment=AugmentConfig())
    view = build_unlabeled("synthetic:length=4", "synthetic:length=4", input_size=64, augment=AugmentConfig())
    mixed = MixedDataset(labelled, view)
    mixed.set_epoch(2, seed=5)
    assert labelled.epoch == 2 and view.dataset.epoch == 2 and view.dataset.augment_seed == 5
    assert len(mixed) == 8
    batch = torch.utils.data.default_collate([mixed[1], mixed[6]])
    assert batch["labelled"].tolist() == [True, False] and batch["labelled"].dtype == torch.bool
    assert batch["target_weight"][1].sum() == 0 and batch["target_weight"][0].sum() > 0


def test_a_labelled_subset_keeps_the_validation_persons() -> None:
    """``synthetic:length=N`` (N labelled persons) also sets the validation split's length, but
    validation person i is the same whatever N: with ``--val-limit`` every run scores the same
    persons."""
    from fpdctl.data.subset import FirstPersons

    small = build_dataset("synthetic:length=1000", "train", input_size=64)
    assert len(small) == 1000
    default_val = FirstPersons(build_dataset("synthetic", "val", input_size=64), 300).eval_reference()
    subset_val = FirstPersons(build_dataset("synthetic:length=1000", "val", input_size=64), 300).eval_reference()
    np.testing.assert_array_equal(default_val.joints, subset_val.joints)
    np.testing.assert_array_equal(default_val.headboxes, subset_val.headboxes)
