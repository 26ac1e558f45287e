"""LSP / LSPET loaders on tiny files in the real layouts and on the real 400-image LSPET sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpdctl.codec import HeatmapCodec
from fpdctl.data.lsp import BOX_MARGIN, LSPDataset, boxes_from_joints, read_lsp_joints
from fpdctl.data.transforms import invert_affine, transform_points
from fpdctl.errors import DataError, InputError
from fpdctl.skeleton import LSP_TO_MPII, MPII
from tests.data.formats import write_jpeg, write_lsp_mat

W, H = 120, 160


def _joints(n: int, seed: int, third: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    joints = np.zeros((n, 14, 3))
    joints[:, :, 0] = rng.uniform(10, W - 10, (n, 14))
    joints[:, :, 1] = rng.uniform(10, H - 10, (n, 14))
    joints[:, :, 2] = third
    return joints


def _write(folder: Path, joints: np.ndarray, layout: str) -> None:
    write_lsp_mat(folder / "joints.mat", joints, layout)
    pattern = "im{:04d}.jpg" if layout == "lsp" else "im{:05d}.jpg"
    for k in range(joints.shape[0]):
        write_jpeg(folder / "images" / pattern.format(k + 1), W, H, seed=k)


def test_lsp_layout_all_joints_annotated(tmp_path: Path) -> None:
    joints = _joints(6, 0, third=0.0)
    joints[2, 5, 2] = 1.0  # occluded, still annotated
    _write(tmp_path, joints, "lsp")
    kind, read = read_lsp_joints(tmp_path / "joints.mat")
    assert kind == "lsp" and read.shape == (6, 14, 3)
    np.testing.assert_allclose(read[:, :, :2], joints[:, :, :2], atol=1e-5)
    assert (read[:, :, 2] == 1).all()
    train, val = LSPDataset(tmp_path, "train"), LSPDataset(tmp_path, "val")
    assert [Path(f).name for f in train.table.image_files] == ["im0001.jpg", "im0002.jpg", "im0003.jpg"]
    assert [Path(f).name for f in val.table.image_files] == ["im0004.jpg", "im0005.jpg", "im0006.jpg"]
    ref = val.eval_reference()
    assert ref.metric == "pck" and ref.joint_set == "lsp" and ref.headboxes is None
    np.testing.assert_allclose(ref.joints, joints[3:, :, :2], atol=1e-5)


def test_lspet_layout_visibility_and_split(tmp_path: Path) -> None:
    joints = _joints(8, 1, third=1.0)
    joints[0, 0] = (0.0, -26.1, 0.0)  # the placeholder of an unannotated joint
    joints[7, 3, 2] = 0.0
    _write(tmp_path, joints, "lspet")
    kind, read = read_lsp_joints(tmp_path / "joints.mat")
    assert kind == "lspet"
    assert read[0, 0, 2] == 0 and read[7, 3, 2] == 0 and read[:, :, 2].sum() == 8 * 14 - 2
    train, val = LSPDataset(tmp_path / "joints.mat", "train"), LSPDataset(tmp_path, "val")
    assert len(train) == 6 and len(val) == 2  # LSPET alone: the last quarter is validation
    assert Path(val.table.image_files[1]).name == "im00008.jpg"
    assert not val.eval_reference().visible[1, 3]


def test_lsp_and_lspet_together_give_the_standard_split(tmp_path: Path) -> None:
    _write(tmp_path / "lsp_dataset", _joints(4, 2, third=0.0), "lsp")
    _write(tmp_path / "lspet_dataset", _joints(5, 3, third=1.0), "lspet")
    train, val = LSPDataset(tmp_path, "train"), LSPDataset(tmp_path, "val")
    names = [str(Path(f).relative_to(tmp_path)) for f in train.table.image_files]
    assert names == [f"lspet_dataset/images/im{k:05d}.jpg" for k in range(1, 6)] + [
        "lsp_dataset/images/im0001.jpg",
        "lsp_dataset/images/im0002.jpg",
    ]
    assert [Path(f).name for f in val.table.image_files] == ["im0003.jpg", "im0004.jpg"]


def test_box_from_joints() -> None:
    joints = np.zeros((1, 14, 3), np.float32)
    joints[0, :3] = [[10, 20, 1], [50, 120, 1], [30, 70, 1]]
    joints[0, 3] = [900, 900, 0]  # unannotated: ignored
    centers, scales = boxes_from_joints(joints)
    np.testing.assert_allclose(centers[0], [30, 70])
    np.testing.assert_allclose(scales[0], 100 * BOX_MARGIN / 200, rtol=1e-6)


def test_wrong_layouts(tmp_path: Path) -> None:
    from scipy.io import savemat

    (tmp_path / "images").mkdir()
    savemat(str(tmp_path / "joints.mat"), {"joints": np.zeros((14, 2, 5))})
    with pytest.raises(DataError) as info:
        LSPDataset(tmp_path, "train")
    assert str(info.value) == (
        f"{tmp_path / 'joints.mat'} has the wrong layout: expected joints 3 x 14 x N (LSP) or "
        "14 x 3 x N (LSP-extended), got joints (14, 2, 5)"
    )
    savemat(str(tmp_path / "joints.mat"), {"points": np.zeros((14, 3, 5))})
    with pytest.raises(DataError, match="is not an LSP joints file: expected joints 3 x 14 x N .*found points"):
        LSPDataset(tmp_path, "train")
    (tmp_path / "joints.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DataError, match=r"^cannot read LSP joints file .*joints\.mat: not a MATLAB \.mat file"):
        LSPDataset(tmp_path, "train")


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="LSP data not found"):
        LSPDataset(tmp_path / "absent", "train")
    with pytest.raises(InputError, match="no LSP data in"):
        LSPDataset(tmp_path, "train")
    write_lsp_mat(tmp_path / "joints.mat", _joints(4, 0, 1.0), "lspet")
    with pytest.raises(InputError, match="no images/ folder beside"):
        LSPDataset(tmp_path, "train")
    (tmp_path / "images").mkdir()
    write_jpeg(tmp_path / "images" / "im0001.jpg", W, H)  # LSP naming for LSPET data
    with pytest.raises(
        InputError, match=r"is LSPET data, whose images are named im00001.jpg, ...; .*im00001.jpg is missing"
    ):
        LSPDataset(tmp_path, "train")


def test_real_lspet400(lspet400: Path) -> None:
    from scipy.io import loadmat

    raw = loadmat(str(lspet400 / "joints.mat"))["joints"]  # 14 x 3 x 400
    train, val = LSPDataset(lspet400, "train"), LSPDataset(lspet400, "val")
    assert (len(train), len(val)) == (300, 100)
    assert Path(val.table.image_files[0]).name == "im00301.jpg"
    ref = val.eval_reference()
    np.testing.assert_array_equal(ref.visible, raw[:, 2, 300:].T == 1)
    np.testing.assert_allclose(ref.joints[ref.visible], raw[:, :2, 300:].transpose(2, 0, 1)[ref.visible], atol=1e-4)
    # Targets decoded and mapped back through the inverse affine land on the annotations
    # within a quarter heatmap pixel (in original px: a quarter pixel times stride / zoom).
    codec = HeatmapCodec(256, 64)
    for index in (0, 37, 99):
        sample = val[index]
        coords, _ = codec.decode(sample["target"][None])
        original = transform_points(coords[0], invert_affine(sample["meta"]["affine"]))
        weight = sample["target_weight"].numpy() > 0
        zoom = 256 / (sample["meta"]["scale"] * 200)
        err = np.abs(original - sample["meta"]["joints"][:, :2])[weight]
        assert err.max() <= 0.25 * 4 / zoom + 1e-3
        lsp_vis = ref.visible[index]
        assert weight[list(LSP_TO_MPII)].sum() == lsp_vis.sum()  # every annotated joint is in the crop
        assert not weight[MPII.index("pelvis")] and not weight[MPII.index("thorax")]
