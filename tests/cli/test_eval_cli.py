"""``fpdctl eval``: JSON and table output, end to end on a model, and every bad input's line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from fpdctl.cli.app import main
from fpdctl.skeleton import MPII

# Derived independently in tests/metrics/test_pckh.py (a plain loop over the .mat fields).
GOLDEN = {
    "head": 96.6576,
    "shoulder": 92.7140,
    "elbow": 83.3646,
    "wrist": 76.7357,
    "hip": 81.9283,
    "knee": 73.3628,
    "ankle": 65.4462,
    "mean": 82.3367,
    "mean_plain": 81.4584,
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_gt(path: Path, n: int = 3) -> np.ndarray:
    """A small official-layout ground truth; returns its joints in 0-based pixels [N, 16, 2]."""
    rng = np.random.default_rng(11)
    pos = rng.uniform(100.0, 300.0, size=(16, 2, n))
    corner = rng.uniform(0.0, 50.0, size=(2, n))
    boxes = np.stack([corner, corner + 30.0])
    savemat(str(path), {"jnt_missing": np.zeros((16, n), np.uint8), "pos_gt_src": pos, "headboxes_src": boxes})
    return pos.transpose(2, 0, 1) - 1.0


def test_json_on_the_official_data(capsys: pytest.CaptureFixture[str], mpii_val_gt: Path) -> None:
    code, out, err = run(
        capsys, "eval", "--predictions", mpii_val_gt, "--ground-truth", mpii_val_gt, "--format", "json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert set(report["pckh"]) == set(GOLDEN)
    for key, value in GOLDEN.items():
        assert report["pckh"][key] == pytest.approx(value, abs=5e-3), key
    assert list(report["per_joint"]) == list(MPII.names)
    assert report["per_joint"]["head_top"] == pytest.approx(95.6003, abs=5e-5)
    assert report["pckh@0.1"] == pytest.approx(28.9748, abs=5e-5)
    # HRNet's / FPD's "Mean@0.1" (threshold 0.11), labelled, beside the true 0.1 figure.
    assert report["pckh@0.1_hrnet"] == pytest.approx(33.1382, abs=5e-5)
    assert report["pckh@0.1_hrnet_threshold"] == 0.11
    assert report["auc"] == pytest.approx(55.7812, abs=5e-5)
    assert report["persons"] == 2958 and report["threshold"] == 0.5
    numbers = [*report["pckh"].values(), *report["per_joint"].values(), report["pckh@0.1"], report["auc"]]
    assert all(isinstance(v, (int, float)) for v in numbers)


def test_table_on_the_official_data(capsys: pytest.CaptureFixture[str], mpii_val_gt: Path) -> None:
    code, out, _ = run(capsys, "eval", "-p", mpii_val_gt, "-g", mpii_val_gt)
    assert code == 0
    for header in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean (plain)"):
        assert header in out
    row = next(line for line in out.splitlines() if "96.66" in line)
    assert [cell.strip() for cell in row.strip("│| ").split("│")] == [
        "96.66",
        "92.71",
        "83.36",
        "76.74",
        "81.93",
        "73.36",
        "65.45",
        "82.34",
        "81.46",
    ]
    assert "pooled" in out and "PCKh@0.1 28.97" in out
    assert "PCKh@0.1_hrnet (threshold 0.11, HRNet/FPD 'Mean@0.1') 33.14" in " ".join(out.split())


def test_npy_and_json_predictions(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    joints = write_gt(tmp_path / "gt.mat")
    preds = joints.copy()
    preds[0, 0, 0] += 1000.0  # one miss among 3 x 14 scored joints
    np.save(tmp_path / "p.npy", preds)
    (tmp_path / "p.json").write_text(json.dumps({"preds": preds.tolist()}))
    for name in ("p.npy", "p.json"):
        code, out, err = run(capsys, "eval", "-p", tmp_path / name, "-g", tmp_path / "gt.mat", "--format", "json")
        assert code == 0, err
        report = json.loads(out)
        assert report["pckh"]["mean"] == pytest.approx(100.0 * 41 / 42)
        assert report["per_joint"]["r_ankle"] == pytest.approx(200.0 / 3.0)
        assert report["pckh"]["mean_plain"] == pytest.approx((200.0 / 3.0 + 13 * 100.0) / 14)


def test_threshold_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    joints = write_gt(tmp_path / "gt.mat")
    preds = joints.copy()
    preds[:, :, 0] += 0.3 * 0.6 * np.hypot(30.0, 30.0)  # 0.3 head sizes off
    np.save(tmp_path / "p.npy", preds)
    for threshold, expected in (("0.5", 100.0), ("0.2", 0.0)):
        code, out, _ = run(
            capsys,
            "eval",
            "-p",
            tmp_path / "p.npy",
            "-g",
            tmp_path / "gt.mat",
            "--threshold",
            threshold,
            "--format",
            "json",
        )
        assert code == 0
        assert json.loads(out)["pckh"]["mean"] == expected


# ---------------------------------------------------------------------------------------------
# Model mode, end to end on the synthetic data with a tiny network.
def test_model_on_synthetic_data(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "preds.mat"
    code, out, err = run(
        capsys,
        "eval",
        "hg1x16",
        "--data",
        "synthetic:length=4",
        "--input-size",
        "64",
        "--batch-size",
        "3",
        "--device",
        "cpu",
        "--format",
        "json",
        "--save-predictions",
        out_file,
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["persons"] == 4 and set(report["pckh"]) == set(GOLDEN)
    assert report["seconds"] > 0 and report["persons_per_second"] > 0
    assert all(0.0 <= v <= 100.0 for v in report["pckh"].values())
    assert f"wrote {out_file}" in err
    preds = loadmat(str(out_file))["preds"]
    assert preds.shape == (4, 16, 2)
    # The saved file scores exactly what was printed (1-based on disk, 0-based in fpdctl).
    from fpdctl.data.registry import build_dataset
    from fpdctl.metrics import compute_pckh
    from fpdctl.metrics.mpii_files import load_mpii_predictions

    reference = build_dataset("synthetic:length=4", "val", input_size=64).eval_reference()
    again = compute_pckh(load_mpii_predictions(out_file), reference)
    assert again.groups["mean"] == pytest.approx(report["pckh"]["mean"], abs=1e-9)


def test_model_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "eval",
        "hg1x16",
        "--data",
        "synthetic:length=2",
        "--input-size",
        "64",
        "--no-flip-test",
        "--device",
        "cpu",
        "--per-joint",
    )
    assert code == 0, err
    assert "PCKh@0.5: hg1x16 on synthetic:length=2" in out
    assert "flip test off" in out and "PCKh per joint" in out and "head_top" in out


# ---------------------------------------------------------------------------------------------
# Bad input: one clear line on stderr, exit 2, nothing written.
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: nothing to evaluate: give MODEL_OR_CHECKPOINT with --data, or --predictions with --ground-truth"),
        (("hg1x16",), "error: MODEL_OR_CHECKPOINT needs --data (synthetic, mpii:PATH, lsp:PATH or coco:PATH)"),
        (
            ("-p", "x.npy"),
            "error: --predictions needs --ground-truth (an MPII .mat or a COCO .json) or --data coco:DIR",
        ),
        (("-g", "x.mat"), "error: --ground-truth needs --predictions (the prediction file to score)"),
        (
            ("hg1x16", "-p", "x.npy", "-g", "y.mat"),
            "error: give either MODEL_OR_CHECKPOINT with --data, or --predictions with --ground-truth, not both",
        ),
        (("hg1x16", "--data", "foo"), "error: --data must be synthetic, mpii:PATH, lsp:PATH or coco:PATH, got 'foo'"),
        (
            ("hg1x16", "--data", "synthetic", "--device", "tpu"),
            "error: --device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'",
        ),
        (
            ("hg1x16", "--data", "synthetic", "--format", "xml"),
            "error: --format must be one of table, json, csv, markdown, got 'xml'",
        ),
        (
            ("hg1x16", "--data", "synthetic", "--threshold", "-1"),
            "error: --threshold must be a positive number, got -1.0",
        ),
        (("hg1x16", "--data", "synthetic", "--batch-size", "0"), "error: --batch-size must be at least 1, got 0"),
        (
            ("hg1x16", "--data", "synthetic", "--input-size", "100"),
            "error: input size must be a positive multiple of 64 for a depth-4 hourglass, got 100",
        ),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str) -> None:
    code, out, err = run(capsys, "eval", *args)
    assert code == 2
    assert err.strip() == message
    assert out == ""


def test_bad_prediction_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_gt(tmp_path / "gt.mat")
    gt = tmp_path / "gt.mat"
    cases = []
    cases.append((tmp_path / "missing.npy", f"error: predictions file not found: {tmp_path / 'missing.npy'}"))
    np.save(tmp_path / "short.npy", np.zeros((2, 16, 2)))
    cases.append((tmp_path / "short.npy", "error: predictions have 2 persons but the ground truth has 3"))
    nan = np.zeros((3, 16, 2))
    nan[2, 9, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    cases.append(
        (tmp_path / "nan.npy", "error: predictions contain NaN at person 2, joint 'head_top' (1 joint(s) in all)")
    )
    savemat(str(tmp_path / "layout.mat"), {"preds": np.zeros((3, 2, 16))})
    cases.append(
        (
            tmp_path / "layout.mat",
            f"error: {tmp_path / 'layout.mat'}: 'preds' must be N x 16 x 2 (or 16 x 2 x N), got 3 x 2 x 16",
        )
    )
    (tmp_path / "broken.json").write_text("[[[1, 2]")
    cases.append(
        (
            tmp_path / "broken.json",
            f"error: cannot parse JSON predictions {tmp_path / 'broken.json'}: "
            "Expecting ',' delimiter: line 1 column 9 (char 8)",
        )
    )
    (tmp_path / "layout.json").write_text(json.dumps({"preds": [[[1, 2, 3]] * 16] * 3}))
    cases.append(
        (
            tmp_path / "layout.json",
            f"error: {tmp_path / 'layout.json'}: JSON predictions must be a list of N persons, each 16 "
            "[x, y] pairs (person 0, joint 0 is [1, 2, 3])",
        )
    )
    for predictions, message in cases:
        code, out, err = run(capsys, "eval", "-p", predictions, "-g", gt)
        assert (code, err.strip(), out) == (2, message, ""), predictions


def test_bad_ground_truth(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.zeros((3, 16, 2)))
    savemat(str(tmp_path / "gt.mat"), {"pos_gt_src": np.zeros((16, 2, 3))})
    code, _, err = run(capsys, "eval", "-p", tmp_path / "p.npy", "-g", tmp_path / "gt.mat")
    assert code == 2
    assert err.strip() == (
        f"error: {tmp_path / 'gt.mat'} is not an MPII ground-truth .mat: missing "
        "jnt_missing, headboxes_src (expected jnt_missing, pos_gt_src, headboxes_src)"
    )
    code, _, err = run(capsys, "eval", "-p", tmp_path / "p.npy", "-g", tmp_path / "none.mat")
    assert (code, err.strip()) == (2, f"error: ground-truth file not found: {tmp_path / 'none.mat'}")


def test_nothing_written_on_failure(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(
        capsys,
        "eval",
        "hg1x16",
        "--data",
        "synthetic:length=2",
        "--input-size",
        "64",
        "--save-predictions",
        tmp_path / "p.csv",
    )
    assert code == 2
    assert err.strip() == "error: cannot save predictions as '.csv': use .mat, .npy, .json"
    code, _, err = run(
        capsys,
        "eval",
        "missing_checkpoint.pth",
        "--data",
        "synthetic:length=2",
        "--input-size",
        "64",
        "--save-predictions",
        tmp_path / "p.mat",
    )
    assert code == 2 and "missing_checkpoint.pth" in err
    assert list(tmp_path.iterdir()) == []


def test_model_on_lsp_reports_pck(capsys: pytest.CaptureFixture[str], lspet400: Path) -> None:
    pytest.importorskip("fpdctl.data.lsp")
    code, out, err = run(
        capsys,
        "eval",
        "hg1x16",
        "--data",
        f"lsp:{lspet400}",
        "--input-size",
        "64",
        "--no-flip-test",
        "--batch-size",
        "50",
        "--device",
        "cpu",
        "--format",
        "json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert "pckh" not in report and set(report["pck"]) == set(GOLDEN)
    assert report["threshold"] == 0.2
    assert list(report["per_joint"])[-2:] == ["neck", "head_top"]  # LSP's own 14 joints
    assert report["persons"] + report["persons_excluded"] == 100  # the fixed 100-person val split


def test_help_names_the_pooled_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "eval", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "Mean is pooled" in text and "FPD paper" in text and "mean_plain" in text


def test_a_checkpoint_is_scored_at_the_size_it_was_trained_at(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from fpdctl.models.checkpoint import save_model
    from fpdctl.models.checkpoint_files import TRAIN_INPUT_SIZE_KEY, trained_input_size
    from fpdctl.models.factory import create_model

    trained = save_model(create_model("hg1x16"), tmp_path / "m.safetensors", {TRAIN_INPUT_SIZE_KEY: "64"})
    plain = save_model(create_model("hg1x16"), tmp_path / "plain.safetensors")
    assert trained_input_size(trained) == 64 and trained_input_size(plain) is None
    reports = {}
    for name, args in (("default", []), ("explicit", ["--input-size", "64"]), ("other", ["--input-size", "128"])):
        code, out, err = run(
            capsys, "eval", trained, "--data", "synthetic:length=4", "--format", "json", "--workers", "0", *args
        )
        assert code == 0, err
        reports[name] = json.loads(out)
    assert reports["default"]["input_size"] == 64 and reports["other"]["input_size"] == 128
    assert reports["default"]["pckh"] == reports["explicit"]["pckh"]
    code, out, err = run(capsys, "eval", plain, "--data", "synthetic:length=2", "--format", "json", "--workers", "0")
    assert code == 0, err
    assert json.loads(out)["input_size"] == 256


def test_an_unreadable_image_stops_evaluation(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """One corrupt JPEG in the validation split: an error naming it, exit 2 (bad input the user
    can fix, like any other data error), no table; the protocol scores every person."""
    from tests.data.formats import write_hrnet_mpii

    data = write_hrnet_mpii(tmp_path / "mpii", corrupt="val2.jpg")
    code, out, err = run(
        capsys, "eval", "hg1x16", "--data", f"mpii:{data}", "--input-size", "64", "--device", "cpu", "--batch-size", "2"
    )
    assert code == 2 and out == ""
    assert err == (
        f"error: cannot decode image: {data / 'images' / 'val2.jpg'} (person 2); every person is "
        "scored, so evaluation stops: restore the image or remove the person from the annotations\n"
    )
    # The same folder with the image restored scores normally.
    data = write_hrnet_mpii(tmp_path / "mpii")
    code, out, err = run(
        capsys, "eval", "hg1x16", "--data", f"mpii:{data}", "--input-size", "64", "--device", "cpu", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out)["persons"] == 4


def test_input_convention_flags_apply_to_a_model_only(tmp_path, capsys) -> None:
    from fpdctl.cli.app import main

    preds = tmp_path / "p.npy"
    code = main(
        [
            "eval",
            "--predictions",
            str(preds),
            "--ground-truth",
            str(tmp_path / "gt.mat"),
            "--input-convention",
            "fpd-official",
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --input-convention, --input-order, --input-mean and --input-std apply to a model, not to --predictions"
    )


def test_eval_json_reports_the_convention_used(capsys) -> None:
    import json

    from fpdctl.cli.app import main
    from fpdctl.models.convention import FPD_OFFICIAL

    code = main(
        [
            "eval",
            "hg1x16",
            "--data",
            "synthetic:length=4",
            "--input-size",
            "64",
            "--no-flip-test",
            "--device",
            "cpu",
            "--format",
            "json",
            "--input-order",
            "bgr",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    # NATIVE with the order swapped is the official FPD convention (named custom: it was typed).
    assert report["input_convention"] == {**FPD_OFFICIAL.to_dict(), "name": "custom", "train_sigma": None}
