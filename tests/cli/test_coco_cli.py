"""COCO end to end through the CLI, on a COCO folder the synthetic generator writes: data synth,
train, distill, eval (the AP table, results JSON saved and scored again), predict; and bad COCO
input as one line, exit 2."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from fpdctl.cli.app import main
from fpdctl.skeleton import COCO

TINY = (
    "--input-size",
    "64",
    "--batch-size",
    "2",
    "--max-steps",
    "2",
    "--workers",
    "0",
    "--device",
    "cpu",
    "--precision",
    "fp32",
)
EVAL = ("--input-size", "64", "--device", "cpu", "--workers", "0")


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``fpdctl data synth --layout coco --split both``: 4 train and 4 val persons, 64 px."""
    out = tmp_path_factory.mktemp("coco") / "coco"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            ["data", "synth", "--layout", "coco", "--split", "both", "--count", "4", "--size", "64", "--out", str(out)]
        )
    assert code == 0
    assert stdout.getvalue().startswith(
        f"wrote 4 train + 4 val persons (64 px, seed 0) to {out}: "
        "train2017/, val2017/, annotations/person_keypoints_train2017.json"
    )
    return out


@pytest.fixture(scope="module")
def coco_run(coco_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``fpdctl train --model hg1x16 --data coco:DIR`` for 2 steps: the run directory."""
    out = tmp_path_factory.mktemp("runs") / "teacher"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["train", "--model", "hg1x16", "--data", f"coco:{coco_dir}", *TINY, "--out", str(out)])
    assert code == 0
    printed = stdout.getvalue()
    assert "train hg1x16j17" in printed and "final evaluation (AP, validation, 2 steps)" in printed
    for name in ("AP", "AP50", "AP75", "APm", "APl", "AR"):
        assert f" {name} " in printed
    return out


def test_train_gives_a_coco_model_17_joints(coco_run: Path) -> None:
    config = json.loads((coco_run / "config.json").read_text())
    assert config["spec"]["joints"] == 17 and config["model_name"] == "hg1x16j17"
    evaluation = json.loads((coco_run / "eval.json").read_text())
    assert evaluation["metric"] == "oks"
    assert set(evaluation["final"]["oks"]) == {"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}


def test_distill_on_coco_and_the_joint_checks(
    coco_dir: Path, coco_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = coco_run / "last.safetensors"
    code, out, err = run(
        capsys,
        "distill",
        "--teacher",
        teacher,
        "--student",
        "hg1x8",
        "--data",
        f"coco:{coco_dir}",
        *TINY,
        "--out",
        tmp_path / "student",
    )
    assert code == 0, err
    assert "distill hg1x16j17 -> hg1x8j17" in out and "best AP" in out
    # A 17-joint teacher cannot teach on 16-joint data, nor can a model named with 16 joints train on COCO.
    code, out, err = run(
        capsys,
        "distill",
        "--teacher",
        teacher,
        "--student",
        "hg1x8",
        "--data",
        "synthetic:length=4",
        *TINY,
        "--out",
        tmp_path / "mismatch",
    )
    assert (code, out) == (2, "")
    assert (
        err.strip()
        == "error: the teacher predicts 17 joints but the student hg1x8 predicts 16; FPD needs the same joints"
    )
    code, out, err = run(
        capsys, "train", "--model", "hg1x8j16", "--data", f"coco:{coco_dir}", *TINY, "--out", tmp_path / "named"
    )
    assert code == 2
    assert err.strip() == (
        f"error: model hg1x8j16 predicts 16 joints but coco:{coco_dir} has the 17 COCO joints; leave the j "
        "suffix out of the model name (the data's joints) or write j17"
    )
    assert not (tmp_path / "mismatch").exists() and not (tmp_path / "named").exists()


def test_eval_prints_the_ap_table_and_scores_its_saved_results(
    coco_dir: Path, coco_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pycocotools.coco import COCO as CocoApi
    from pycocotools.cocoeval import COCOeval

    model = coco_run / "last.safetensors"
    results = tmp_path / "results.json"
    code, out, err = run(capsys, "eval", model, "--data", f"coco:{coco_dir}", *EVAL, "--save-predictions", results)
    assert code == 0, err
    header = next(line for line in out.splitlines() if "AP50" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "AP",
        "AP50",
        "AP75",
        "APm",
        "APl",
        "AR",
        "AR50",
        "AR75",
        "ARm",
        "ARl",
    ]
    assert "4 images, 4 persons scored; 4 persons at 64 px" in " ".join(out.split())
    assert f"wrote {results}" in err
    code, out, err = run(capsys, "eval", model, "--data", f"coco:{coco_dir}", *EVAL, "--format", "markdown")
    assert code == 0, err
    assert out.startswith(f"**COCO AP: {model} on coco:{coco_dir}**")
    code, out, err = run(capsys, "eval", model, "--data", f"coco:{coco_dir}", *EVAL, "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["predictions"] == 4 and report["images"] == 4

    # The results JSON: one record per person, keypoint scores the heatmap peaks, COCO's format.
    records = json.loads(results.read_text())
    assert len(records) == 4 and {r["category_id"] for r in records} == {1}
    assert all(len(r["keypoints"]) == 51 for r in records)
    # Scored again from the file (against the folder, and against the annotation file) ...
    annotation = coco_dir / "annotations" / "person_keypoints_val2017.json"
    for source in (("--data", f"coco:{coco_dir}"), ("--ground-truth", annotation)):
        code, out, err = run(capsys, "eval", "--predictions", results, *source, "--format", "json")
        assert code == 0, err
        assert json.loads(out)["oks"] == report["oks"]
    # ... and by pycocotools called directly: the same ten figures, in percent.
    with contextlib.redirect_stdout(io.StringIO()):
        gt = CocoApi(str(annotation))
        evaluator = COCOeval(gt, gt.loadRes(str(results)), iouType="keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    expected = [None if v == -1 else 100.0 * v for v in evaluator.stats]
    assert list(report["oks"].values()) == pytest.approx(expected)


def test_scoring_coco_results_runs_without_torch(coco_dir: Path, tmp_path: Path) -> None:
    """``fpdctl eval --predictions R --data coco:DIR`` is pure scoring, like MPII's file mode."""
    from tests.test_layering import _run_without_torch

    payload = json.loads((coco_dir / "annotations" / "person_keypoints_val2017.json").read_text())
    results = tmp_path / "truth.json"
    results.write_text(
        json.dumps(
            [
                {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
                for a in payload["annotations"]
            ]
        )
    )
    done = _run_without_torch(
        "from fpdctl.cli.app import main\n"
        f"code = main(['eval', '--predictions', {str(results)!r}, '--data', {f'coco:{coco_dir}'!r}, "
        "'--format', 'json'])\n"
        "assert 'torch' not in sys.modules\n"
        "sys.exit(code)"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["oks"]["AP"] == 100.0 and report["predictions"] == 4


def test_eval_synthetic_coco_layout_directly(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "eval", "hg1x16", "--data", "synthetic:layout=coco,length=3", *EVAL, "--no-flip-test", "--format", "csv"
    )
    assert code == 0, err
    header, row = out.strip().splitlines()
    assert header.split(",")[:6] == ["AP", "AP50", "AP75", "APm", "APl", "AR"]
    assert "predictions" in header.split(",") and len(row.split(",")) == len(header.split(","))


def test_predict_draws_coco_keypoints(
    coco_dir: Path, coco_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = sorted((coco_dir / "val2017").iterdir())[0]
    code, _, err = run(capsys, "predict", coco_run / "last.safetensors", image, "--out", tmp_path / "pred")
    assert code == 0, err
    payload = json.loads((tmp_path / "pred" / "keypoints.json").read_text())
    assert payload["joint_names"] == list(COCO.names)
    assert payload["skeleton"] == [list(p) for p in COCO.skeleton]
    assert (tmp_path / "pred" / image.name).is_file()


# ---------------------------------------------------------------------------------------------
# Bad COCO input: one line naming the file and the record, exit 2, through the CLI.
def _broken_copy(coco_dir: Path, tmp_path: Path) -> tuple[Path, Path, dict]:
    broken = tmp_path / "broken"
    shutil.copytree(coco_dir, broken)
    annotation = broken / "annotations" / "person_keypoints_val2017.json"
    return broken, annotation, json.loads(annotation.read_text())


def test_a_missing_image(coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken, annotation, payload = _broken_copy(coco_dir, tmp_path)
    image = payload["images"][2]
    (broken / "val2017" / image["file_name"]).unlink()
    for args in (
        ("eval", "hg1x16", "--data", f"coco:{broken}", *EVAL),
        ("train", "--model", "hg1x16", "--data", f"coco:{broken}", *TINY, "--out", tmp_path / "run"),
    ):
        code, out, err = run(capsys, *args)
        assert (code, out) == (2, ""), err
        assert err.strip() == (
            f"error: {annotation}: image {image['id']} ({image['file_name']}) not found in {broken / 'val2017'}"
        )
    assert not (tmp_path / "run").exists()


def test_an_annotation_with_the_wrong_keypoint_count(
    coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken, annotation, payload = _broken_copy(coco_dir, tmp_path)
    payload["annotations"][1]["keypoints"] = payload["annotations"][1]["keypoints"][:48]
    annotation.write_text(json.dumps(payload))
    code, out, err = run(capsys, "eval", "hg1x16", "--data", f"coco:{broken}", *EVAL)
    assert (code, out) == (2, "")
    assert err.strip() == (
        f"error: {annotation}: annotation 2 (image 2) has 48 keypoint values, expected 51 (17 keypoints x [x, y, v])"
    )


def test_a_json_that_is_not_coco(coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken, annotation, _ = _broken_copy(coco_dir, tmp_path)
    annotation.write_text(json.dumps([{"image": "a.jpg", "joints": [[0, 0]] * 16}]))
    code, out, err = run(capsys, "eval", "hg1x16", "--data", f"coco:{broken}", *EVAL)
    assert (code, out) == (2, "")
    assert err.strip() == (
        f'error: {annotation} is not a COCO keypoints file: expected a JSON object with "images", '
        '"annotations" and "categories" lists, found a list'
    )


def test_bad_results_and_options(coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            [
                {"image_id": 1, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0},
                {"image_id": 99, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0},
            ]
        )
    )
    cases = [
        (
            ("eval", "-p", results, "--data", f"coco:{coco_dir}"),
            f"error: {results}: result 1 (image 99): no such image in the ground truth",
        ),
        (
            ("eval", "-p", results, "--data", "synthetic"),
            "error: --predictions with --data scores COCO results against coco:DIR, got 'synthetic'; "
            "score MPII predictions with --ground-truth",
        ),
        (
            ("eval", "-p", results, "--data", f"coco:{coco_dir}", "--threshold", "0.5"),
            "error: --threshold applies to PCKh and PCK; COCO AP averages over OKS 0.50:0.95",
        ),
        (
            ("eval", "hg1x16", "--data", f"coco:{coco_dir}", *EVAL, "--threshold", "0.5"),
            "error: --threshold applies to PCKh and PCK; COCO AP averages over OKS 0.50:0.95",
        ),
        (
            ("eval", "hg1x16", "--data", f"coco:{coco_dir}", *EVAL, "--save-predictions", tmp_path / "p.mat"),
            "error: COCO predictions are saved as a COCO results .json file, got '.mat'",
        ),
        (
            ("eval", "hg1x16", "--data", f"coco:{coco_dir}", *EVAL, "--per-joint"),
            "error: --per-joint applies to PCKh and PCK; COCO AP has no per-joint figure",
        ),
        (
            ("eval", "hg1x16j16", "--data", f"coco:{coco_dir}", *EVAL),
            f"error: model hg1x16j16 predicts 16 joints but coco:{coco_dir} has the 17 COCO joints; leave the j "
            "suffix out of the model name (the data's joints) or write j17",
        ),
        (
            ("eval", "-p", results),
            "error: --predictions needs --ground-truth (an MPII .mat or a COCO .json) or --data coco:DIR",
        ),
    ]
    for args, message in cases:
        code, out, err = run(capsys, *args)
        assert (code, out, err.strip()) == (2, "", message), args
    assert not (tmp_path / "p.mat").exists()
