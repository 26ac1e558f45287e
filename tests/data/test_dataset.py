"""The shared sample pipeline: crops, targets, flips, reduced decoding and bad images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fpdctl.data.dataset import BAD_IMAGE_GRACE, PoseDataset, Record, choose_reduction, read_image, reduction_affine
from fpdctl.data.file_dataset import AnnotationTable, FilePoseDataset
from fpdctl.data.transforms import (
    AugmentConfig,
    compose_affine,
    crop_affine,
    denormalize_image,
    invert_affine,
    transform_points,
)
from fpdctl.errors import DataError
from fpdctl.skeleton import LSP, LSP_TO_MPII, MPII
from tests.data.formats import write_jpeg

INPUT = 128


class ArrayPoseDataset(PoseDataset):
    """Records held in memory: the smallest real implementation of the contract."""

    def __init__(self, records: list[Record], joint_set=MPII, **kwargs) -> None:
        super().__init__(**kwargs)
        self.records = records
        self.joint_set = joint_set

    def __len__(self) -> int:
        return len(self.records)

    def load_record(self, index: int) -> Record:
        return self.records[index]


def _marked_record(joints_xy: np.ndarray, size=(300, 220), center=(150.0, 110.0), scale=1.0) -> Record:
    """A dark image with a bright 5x5 square at every joint."""
    image = np.full((size[1], size[0], 3), 40, np.uint8)
    for x, y in joints_xy.astype(int):
        image[y - 2 : y + 3, x - 2 : x + 3] = 250
    joints = np.concatenate([joints_xy, np.ones((len(joints_xy), 1))], axis=1).astype(np.float32)
    return Record(
        image=image,
        joints=joints,
        center=np.array(center, np.float32),
        scale=scale,
        headbox=np.array([[0, 0], [10, 10]], np.float32),
        image_id="marked",
    )


JOINTS = np.array([[60 + 12 * k, 40 + 9 * k] for k in range(16)], np.float32)


def test_sample_contract() -> None:
    ds = ArrayPoseDataset([_marked_record(JOINTS)], input_size=INPUT, augment=AugmentConfig())
    sample = ds[0]
    assert set(sample) == {"image", "target", "target_weight", "meta"}
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, INPUT, INPUT)
    assert sample["target"].dtype == torch.float32 and sample["target"].shape == (16, INPUT // 4, INPUT // 4)
    assert sample["target_weight"].dtype == torch.float32 and sample["target_weight"].shape == (16,)
    meta = sample["meta"]
    assert set(meta) == {"index", "center", "scale", "rotation", "affine", "joints", "flipped", "image_error"}
    assert meta["image_error"] == ""  # the image was read
    assert meta["affine"].dtype == np.float32 and meta["affine"].shape == (2, 3)
    assert meta["joints"].shape == (16, 3) and meta["center"].shape == (2,)
    np.testing.assert_allclose(meta["joints"][:, :2], JOINTS)
    assert 0.75 <= meta["scale"] <= 1.25 and abs(meta["rotation"]) <= 60  # the official draws' bounds
    assert ds[-1]["meta"]["index"] == 0
    with pytest.raises(IndexError):
        ds[1]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=1)))
    assert batch["meta"]["affine"].shape == (1, 2, 3)


@pytest.mark.parametrize("seed, flip_prob", [(0, 0.0), (1, 0.0), (2, 0.0), (0, 1.0), (1, 1.0), (2, 1.0)])
def test_image_and_joints_share_one_affine(seed: int, flip_prob: float) -> None:
    """With random scale, rotation and flip, each bright mark lands where its joint's target
    peaks; flipped samples swap left and right channels."""
    torch.manual_seed(seed)
    joints = np.array([[120.0, 150.0], [185.0, 140.0], [150.0, 65.0]], np.float32)  # r/l ankle, head top
    all_joints = np.zeros((16, 2), np.float32)
    all_joints[[0, 5, 9]] = joints
    record = _marked_record(all_joints)
    record.joints[[j for j in range(16) if j not in (0, 5, 9)], 2] = 0
    ds = ArrayPoseDataset(
        [record], input_size=INPUT, augment=AugmentConfig(rotation_prob=1.0, color=0.0, flip_prob=flip_prob)
    )
    sample = ds[0]
    assert sample["meta"]["flipped"] == (flip_prob == 1.0)
    crop = denormalize_image(sample["image"].numpy()).astype(float).sum(axis=2)
    coords, _ = ds.codec.decode(sample["target"][None])
    channels = {0: 0, 1: 5, 2: 9}
    if sample["meta"]["flipped"]:
        channels = {0: 5, 1: 0, 2: 9}
    for k, channel in channels.items():
        expected = transform_points(joints[k], sample["meta"]["affine"])
        x, y = _mark_centroid(crop, expected)
        assert np.hypot(x - expected[0], y - expected[1]) <= 0.3
        assert np.abs(coords[0, channel] - expected).max() <= 1.0 + 1e-4  # a quarter of stride 4
        assert sample["target_weight"][channel] == 1
    assert sample["target_weight"].sum() == 3


def _mark_centroid(crop: np.ndarray, point: np.ndarray, radius: float = 6.0) -> tuple[float, float]:
    """Brightness-weighted centre of the mark near ``point`` (background subtracted)."""
    yy, xx = np.mgrid[: crop.shape[0], : crop.shape[1]]
    weight = np.where(np.hypot(xx - point[0], yy - point[1]) <= radius, crop - 3 * 40, 0).clip(0)
    return float((weight * xx).sum() / weight.sum()), float((weight * yy).sum() / weight.sum())


def test_flipped_sample_is_the_mirror_of_the_plain_one() -> None:
    record = _marked_record(JOINTS)
    plain = ArrayPoseDataset([record], input_size=INPUT)[0]
    ds = ArrayPoseDataset(
        [record], input_size=INPUT, augment=AugmentConfig(scale=0.0, rotation=0.0, flip_prob=1.0, color=0.0)
    )
    flipped = ds[0]
    assert flipped["meta"]["flipped"] and not plain["meta"]["flipped"]
    mirror = torch.flip(plain["image"], dims=[2])
    assert (flipped["image"] - mirror).abs().mean() < 1e-3
    perm = MPII.flip_permutation()
    # Flipping back the targets (mirror + swap) puts every joint 3 input px (0.75 heatmap px)
    # left of the plain target, the offset flip_back's one-pixel shift corrects.
    coords_f, _ = ds.codec.decode(torch.flip(flipped["target"], dims=[2])[perm][None])
    coords_p, _ = ds.codec.decode(plain["target"][None])
    assert np.abs(coords_f[0, :, 1] - coords_p[0, :, 1]).max() <= 1.0
    assert np.abs(coords_f[0, :, 0] - (coords_p[0, :, 0] - 3)).max() <= 1.0
    np.testing.assert_array_equal(flipped["target_weight"].numpy(), plain["target_weight"].numpy()[perm])


def test_outside_and_unannotated_joints_get_weight_zero() -> None:
    joints = JOINTS.copy()
    joints[3] = (-400, 50)  # far left of the crop
    record = _marked_record(JOINTS)
    record.joints[3, :2] = joints[3]
    record.joints[4, 2] = 0
    sample = ArrayPoseDataset([record], input_size=INPUT)[0]
    weight = sample["target_weight"].numpy()
    assert weight[3] == 0 and weight[4] == 0 and weight.sum() == 14
    assert not sample["target"][3].any() and not sample["target"][4].any()


def test_lsp_records_fill_mpii_channels() -> None:
    record = _marked_record(JOINTS[:14])
    ds = ArrayPoseDataset([record], joint_set=LSP, input_size=INPUT)
    sample = ds[0]
    weight = sample["target_weight"].numpy()
    assert weight[MPII.index("pelvis")] == 0 and weight[MPII.index("thorax")] == 0
    assert weight[list(LSP_TO_MPII)].sum() == 14
    np.testing.assert_allclose(sample["meta"]["joints"][list(LSP_TO_MPII), :2], JOINTS[:14])
    ref = ds.eval_reference()
    assert ref.joint_set == "lsp" and ref.joints.shape == (1, 14, 2)


def test_augmentation_follows_torch_seed() -> None:
    ds = ArrayPoseDataset([_marked_record(JOINTS)], input_size=INPUT, augment=AugmentConfig())
    torch.manual_seed(7)
    a = ds[0]
    torch.manual_seed(7)
    b = ds[0]
    c = ds[0]
    assert torch.equal(a["image"], b["image"]) and a["meta"]["rotation"] == b["meta"]["rotation"]
    assert not torch.equal(b["image"], c["image"])


def test_eval_reference_and_missing_headboxes() -> None:
    records = [_marked_record(JOINTS), _marked_record(JOINTS + 1)]
    records[1].joints[2, 2] = 0
    ref = ArrayPoseDataset(records).eval_reference()
    assert ref.metric == "pckh" and ref.headboxes.shape == (2, 2, 2)
    np.testing.assert_allclose(ref.joints[1], JOINTS + 1)
    assert ref.visible.sum() == 31
    records[0].headbox = None
    with pytest.raises(DataError, match="this dataset has no head boxes, which PCKh needs"):
        ArrayPoseDataset(records).eval_reference()


def test_choose_reduction_golden() -> None:
    assert [choose_reduction(z) for z in (1.5, 1.0, 0.6, 0.5, 0.3, 0.25, 0.2, 0.125, 0.01)] == [
        1,
        1,
        1,
        2,
        2,
        4,
        4,
        8,
        8,
    ]


def test_reduction_affine_matches_block_averaging() -> None:
    """A 2x block-averaged image warped through reduction_affine gives the full image's crop."""
    yy, xx = np.mgrid[:240, :320].astype(np.float32)
    full = np.stack([120 + 100 * np.sin(xx / 23.0) * np.cos(yy / 31.0)] * 3, axis=2)
    half = full.reshape(120, 2, 160, 2, 3).mean(axis=(1, 3))
    affine = crop_affine((160.0, 120.0), 0.8, 20.0, 96)  # the rotated box stays inside the image
    a = cv2.warpAffine(full, affine, (96, 96), flags=cv2.INTER_LINEAR)
    b = cv2.warpAffine(half, compose_affine(affine, reduction_affine(2)), (96, 96), flags=cv2.INTER_LINEAR)
    assert np.abs(a - b)[2:-2, 2:-2].max() < 1.5
    shifted = cv2.warpAffine(half, compose_affine(affine, np.array([[2, 0, 0], [0, 2, 0]], np.float32)), (96, 96))
    assert np.abs(a - shifted)[2:-2, 2:-2].max() > 2.0  # without the half-pixel offset it is off


def _file_dataset(folder: Path, names: list[str], scale: float, **kwargs) -> FilePoseDataset:
    n = len(names)
    joints = np.zeros((n, 16, 3), np.float32)
    joints[:, :, :2] = JOINTS * 3 + [200, 60]
    joints[:, :, 2] = 1
    table = AnnotationTable(
        image_files=names, joints=joints, centers=np.tile([640.0, 360.0], (n, 1)), scales=np.full(n, scale)
    )
    return FilePoseDataset(table, folder, **kwargs)


def test_reduced_decode_matches_full_decode(tmp_path: Path) -> None:
    marks = [tuple(int(v) for v in p) for p in JOINTS * 3 + [200, 60]]
    write_jpeg(tmp_path / "big.jpg", 1280, 720, seed=1, marks=marks)
    ds = _file_dataset(tmp_path, ["big.jpg"], scale=3.5, input_size=256)
    assert choose_reduction(256 / (3.5 * 200)) == 2
    sample = ds[0]
    full = cv2.warpAffine(
        read_image(tmp_path / "big.jpg"), sample["meta"]["affine"], (256, 256), flags=cv2.INTER_LINEAR
    )
    reduced = denormalize_image(sample["image"].numpy())
    diff = np.abs(full.astype(float) - reduced.astype(float))
    assert diff.mean() < 2.0
    back = transform_points(
        transform_points(np.array([[640.0, 360.0]]), sample["meta"]["affine"]), invert_affine(sample["meta"]["affine"])
    )
    np.testing.assert_allclose(back, [[640, 360]], atol=1e-3)


def test_bad_images_are_counted_and_replaced(tmp_path: Path) -> None:
    for k in range(4):
        write_jpeg(tmp_path / f"ok{k}.jpg", 320, 240, seed=k)
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 4)
    names = ["ok0.jpg", "corrupt.jpg", "ok1.jpg", "ok2.jpg", "ok3.jpg"]
    ds = _file_dataset(tmp_path, names, scale=1.0, input_size=64)
    samples = [ds[k] for k in range(5)]
    assert (ds.bad_images, ds.images_seen) == (1, 5)
    assert [x["meta"]["image_error"] for x in samples] == [
        "",
        f"cannot decode image: {tmp_path / 'corrupt.jpg'}",
        "",
        "",
        "",
    ]
    assert not samples[1]["image"].any() and not samples[1]["target_weight"].any()
    assert not samples[1]["target"].any()
    assert samples[0]["target_weight"].sum() > 0
    # DataLoader workers report into the same counters.
    ds.reset_counters()
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    assert sum(len(b["image"]) for b in loader) == 5
    assert (ds.bad_images, ds.images_seen) == (1, 5)


def test_too_many_bad_images_fail_clearly(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "ok.jpg", 320, 240)
    (tmp_path / "empty.jpg").write_bytes(b"")
    names = ["ok.jpg"] + ["empty.jpg"] * BAD_IMAGE_GRACE + ["missing.jpg"]
    ds = _file_dataset(tmp_path, names, scale=1.0, input_size=64, max_bad_fraction=0.01)
    for k in range(len(names) - 1):
        ds[k]  # the first BAD_IMAGE_GRACE bad images are tolerated
    with pytest.raises(DataError) as info:
        ds[len(names) - 1]
    assert str(info.value) == (
        f"{BAD_IMAGE_GRACE + 1} of {BAD_IMAGE_GRACE + 2} images could not be read (more than "
        f"max_bad_fraction=0.01); last: image not found: {tmp_path / 'missing.jpg'}"
    )
    tolerant = _file_dataset(tmp_path, names, scale=1.0, input_size=64, max_bad_fraction=0.9)
    for k in range(len(names)):
        tolerant[k]
    assert tolerant.bad_images == BAD_IMAGE_GRACE + 1


@pytest.mark.slow
def test_bad_image_counts_cross_spawned_workers(tmp_path: Path) -> None:
    """With the spawn start method the dataset is pickled into each worker; the counters must
    still be the parent's shared memory."""
    write_jpeg(tmp_path / "ok.jpg", 320, 240)
    (tmp_path / "bad.jpg").write_bytes(b"junk")
    ds = _file_dataset(tmp_path, ["ok.jpg", "bad.jpg", "ok.jpg", "ok.jpg"], scale=1.0, input_size=64)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, multiprocessing_context="spawn")
    assert sum(len(b["image"]) for b in loader) == 4
    assert (ds.bad_images, ds.images_seen) == (1, 4)


def test_set_epoch_makes_augmentation_a_function_of_seed_epoch_index() -> None:
    ds = ArrayPoseDataset([_marked_record(JOINTS)] * 2, input_size=INPUT, augment=AugmentConfig())
    ds.set_epoch(3, seed=11)
    torch.manual_seed(0)
    a = ds[1]
    torch.manual_seed(1)
    b = ds[1]
    assert torch.equal(a["image"], b["image"]) and a["meta"]["scale"] == b["meta"]["scale"]
    ds.set_epoch(4)
    c = ds[1]
    assert c["meta"]["scale"] != a["meta"]["scale"]
