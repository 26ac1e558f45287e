"""Prediction and ground-truth files: formats, coordinate origins, round trips, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from fpdctl.errors import DataError, InputError, UsageError
from fpdctl.metrics.mpii_files import (
    MPII_MAT_JOINT_NAMES,
    evaluate_mpii_prediction_files,
    load_mpii_ground_truth,
    load_mpii_predictions,
    save_predictions,
)
from fpdctl.metrics.reference import EvalReference


def write_gt_mat(path: Path, n: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """A small ground-truth .mat in the official layout (1-based pixels)."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(50.0, 400.0, size=(16, 2, n))
    missing = np.zeros((16, n), dtype=np.uint8)
    missing[6, 0] = 1
    x1y1 = rng.uniform(0.0, 100.0, size=(2, n))
    boxes = np.stack([x1y1, x1y1 + rng.uniform(20.0, 40.0, size=(2, n))])  # 2 x 2 x N
    names = np.empty((1, 16), dtype=object)
    for j, name in enumerate(MPII_MAT_JOINT_NAMES):
        names[0, j] = np.array([name])
    fields = {"jnt_missing": missing, "pos_gt_src": pos, "headboxes_src": boxes, "dataset_joints": names}
    savemat(str(path), fields)
    return fields


def test_ground_truth_is_read_zero_based(tmp_path: Path) -> None:
    fields = write_gt_mat(tmp_path / "gt.mat")
    ref = load_mpii_ground_truth(tmp_path / "gt.mat")
    np.testing.assert_allclose(ref.joints, fields["pos_gt_src"].transpose(2, 0, 1) - 1.0)
    np.testing.assert_allclose(ref.headboxes, fields["headboxes_src"].transpose(2, 0, 1) - 1.0)
    assert ref.visible.shape == (4, 16) and not ref.visible[0, 6] and ref.visible.sum() == 63
    assert ref.metric == "pckh" and ref.joint_set == "mpii"


def test_real_ground_truth_fields(mpii_val_gt: Path) -> None:
    ref = load_mpii_ground_truth(mpii_val_gt)
    raw = loadmat(str(mpii_val_gt))
    assert ref.joints.shape == (2958, 16, 2)
    np.testing.assert_allclose(ref.joints[0, 0], raw["pos_gt_src"][0, :, 0] - 1.0)
    assert int(ref.visible.sum()) == int((raw["jnt_missing"] == 0).sum())


@pytest.mark.parametrize("suffix", [".mat", ".npy", ".json"])
def test_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    coords = np.random.default_rng(1).uniform(-5.0, 500.0, size=(5, 16, 2))
    path = save_predictions(tmp_path / f"preds{suffix}", coords)
    assert path.is_file()
    np.testing.assert_allclose(load_mpii_predictions(path), coords, rtol=0, atol=1e-9)
    assert [p.name for p in tmp_path.iterdir()] == [f"preds{suffix}"]  # no temporary left


def test_mat_is_one_based_pytorch_pose_layout(tmp_path: Path) -> None:
    coords = np.arange(3 * 16 * 2, dtype=np.float64).reshape(3, 16, 2)
    save_predictions(tmp_path / "preds.mat", coords)
    raw = loadmat(str(tmp_path / "preds.mat"))["preds"]
    assert raw.shape == (3, 16, 2)
    np.testing.assert_array_equal(raw, coords + 1.0)


def test_official_layouts_are_accepted(tmp_path: Path) -> None:
    coords = np.random.default_rng(2).uniform(0.0, 300.0, size=(3, 16, 2))
    savemat(str(tmp_path / "a.mat"), {"preds": coords.transpose(1, 2, 0) + 1.0})  # 16 x 2 x N
    savemat(str(tmp_path / "b.mat"), {"pos_pred_src": coords.transpose(1, 2, 0) + 1.0})
    (tmp_path / "c.json").write_text(json.dumps(coords.tolist()))
    for name in ("a.mat", "b.mat", "c.json"):
        np.testing.assert_allclose(load_mpii_predictions(tmp_path / name), coords, atol=1e-9)


def test_same_predictions_in_every_format_score_the_same(tmp_path: Path) -> None:
    fields = write_gt_mat(tmp_path / "gt.mat", n=6, seed=5)
    gt0 = fields["pos_gt_src"].transpose(2, 0, 1) - 1.0
    coords = gt0 + np.random.default_rng(9).normal(0.0, 6.0, size=gt0.shape)
    scores = set()
    for suffix in (".mat", ".npy", ".json"):
        save_predictions(tmp_path / f"p{suffix}", coords)
        scores.add(round(evaluate_mpii_prediction_files(tmp_path / f"p{suffix}", tmp_path / "gt.mat").mean, 9))
    assert len(scores) == 1
    perfect = tmp_path / "perfect.npy"
    np.save(perfect, gt0)
    result = evaluate_mpii_prediction_files(perfect, tmp_path / "gt.mat")
    assert result.mean == 100.0 and result.groups["mean_plain"] == 100.0 and result.auc == 100.0


# ---------------------------------------------------------------------------------------------
# Bad files: one clear line each.
def test_missing_files(tmp_path: Path) -> None:
    write_gt_mat(tmp_path / "gt.mat")
    with pytest.raises(InputError, match=r"^predictions file not found: .*nope\.mat$"):
        evaluate_mpii_prediction_files(tmp_path / "nope.mat", tmp_path / "gt.mat")
    np.save(tmp_path / "p.npy", np.zeros((4, 16, 2)))
    with pytest.raises(InputError, match=r"^ground-truth file not found: .*gone\.mat$"):
        evaluate_mpii_prediction_files(tmp_path / "p.npy", tmp_path / "gone.mat")


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("1 2 3")
    with pytest.raises(InputError, match=r"^unsupported predictions format '\.txt': use \.mat, \.npy, \.json$"):
        load_mpii_predictions(tmp_path / "p.txt")
    with pytest.raises(UsageError, match=r"^cannot save predictions as '\.csv'"):
        save_predictions(tmp_path / "p.csv", np.zeros((1, 16, 2)))
    assert not (tmp_path / "p.csv").exists()


def test_wrong_layouts(tmp_path: Path) -> None:
    savemat(str(tmp_path / "w.mat"), {"preds": np.zeros((4, 14, 2))})
    with pytest.raises(DataError, match=r"'preds' must be N x 16 x 2 \(or 16 x 2 x N\), got 4 x 14 x 2$"):
        load_mpii_predictions(tmp_path / "w.mat")
    savemat(str(tmp_path / "none.mat"), {"joints": np.zeros((4, 16, 2))})
    with pytest.raises(DataError, match="holds no predictions: expected a variable 'preds'"):
        load_mpii_predictions(tmp_path / "none.mat")
    np.save(tmp_path / "w.npy", np.zeros((4, 16, 3)))
    with pytest.raises(DataError, match=r"predictions must be N x 16 x 2, got 4 x 16 x 3$"):
        load_mpii_predictions(tmp_path / "w.npy")
    (tmp_path / "bad.json").write_text('{"preds": [[1, 2]]')
    with pytest.raises(DataError, match=r"^cannot parse JSON predictions .*bad\.json"):
        load_mpii_predictions(tmp_path / "bad.json")
    (tmp_path / "w.json").write_text(json.dumps([[[1, 2]] * 16, [[1, 2]] * 15]))
    with pytest.raises(DataError, match=r"\(person 1 is not a list of 16\)$"):
        load_mpii_predictions(tmp_path / "w.json")
    (tmp_path / "s.json").write_text(json.dumps([[[1, "x"]] * 16]))
    with pytest.raises(DataError, match=r'\(person 0, joint 0 is \[1, "x"\]\)$'):
        load_mpii_predictions(tmp_path / "s.json")
    (tmp_path / "fake.mat").write_text("not a mat file")
    with pytest.raises(DataError, match=r"^cannot read predictions file .*fake\.mat: not a MATLAB \.mat file"):
        load_mpii_predictions(tmp_path / "fake.mat")


def test_wrong_ground_truth(tmp_path: Path) -> None:
    savemat(str(tmp_path / "gt.mat"), {"pos_gt_src": np.zeros((16, 2, 3))})
    with pytest.raises(DataError, match=r"is not an MPII ground-truth \.mat: missing jnt_missing, headboxes_src"):
        load_mpii_ground_truth(tmp_path / "gt.mat")
    fields = write_gt_mat(tmp_path / "gt2.mat")
    fields["headboxes_src"] = fields["headboxes_src"][:, :, :3]
    savemat(str(tmp_path / "gt2.mat"), fields)
    with pytest.raises(DataError, match=r"headboxes_src must be 2 x 2 x 4, got 2 x 2 x 3$"):
        load_mpii_ground_truth(tmp_path / "gt2.mat")
    fields = write_gt_mat(tmp_path / "gt3.mat")
    fields["dataset_joints"] = fields["dataset_joints"][:, ::-1]
    savemat(str(tmp_path / "gt3.mat"), fields)
    with pytest.raises(DataError, match="dataset_joints must list the MPII order"):
        load_mpii_ground_truth(tmp_path / "gt3.mat")


def test_refuses_to_save_nan(tmp_path: Path) -> None:
    coords = np.zeros((2, 16, 2))
    coords[1, 3, 0] = np.nan
    with pytest.raises(DataError, match="NaN or infinite"):
        save_predictions(tmp_path / "p.mat", coords)
    assert list(tmp_path.iterdir()) == []


def test_ground_truth_writer_round_trips(tmp_path: Path) -> None:
    from fpdctl.metrics.mpii_files import write_mpii_ground_truth

    fields = write_gt_mat(tmp_path / "gt.mat")
    ref = load_mpii_ground_truth(tmp_path / "gt.mat")
    write_mpii_ground_truth(tmp_path / "again.mat", ref)
    raw = loadmat(str(tmp_path / "again.mat"))
    for key in ("pos_gt_src", "headboxes_src", "jnt_missing"):
        np.testing.assert_allclose(raw[key], fields[key])  # 1-based again, official layout
    again = load_mpii_ground_truth(tmp_path / "again.mat")  # dataset_joints checked on read
    np.testing.assert_array_equal(again.visible, ref.visible)
    np.testing.assert_allclose(again.joints, ref.joints)
    no_boxes = EvalReference(joints=ref.joints, visible=ref.visible, headboxes=None, metric="pckh")
    with pytest.raises(
        DataError, match="needs N x 16 x 2 joints and head boxes, got joints 4 x 16 x 2 and no head boxes"
    ):
        write_mpii_ground_truth(tmp_path / "x.mat", no_boxes)


def test_no_old_module_or_old_name_is_left() -> None:
    import importlib

    from fpdctl.metrics import mpii_files

    for module in ("fpdctl.metrics.files", "fpdctl.deploy.embed"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(module)
    assert not hasattr(mpii_files, "load_predictions") and not hasattr(mpii_files, "evaluate_prediction_files")
