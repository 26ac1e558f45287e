"""Issue #24 "No silent wrong answers": paths that gave a wrong answer with exit 0 (or a wrong
exit code, or wrong advice), each tried the way a new user would.

* COCO ground truth that pycocotools mis-scores (a repeated annotation or image id, a NaN or
  zero ``area``, a box without width, no scorable person) is refused with one line naming the
  file and the record, exit 2, through ``eval --predictions R --ground-truth G``, through
  ``eval --predictions R --data coco:DIR`` and through ``eval MODEL --data coco:DIR``.
* A path too long for the file system is an input error (exit 2), not "unexpected OSError".
* ``bench --accuracy N`` on an ``--embed-decode`` export says why nothing was scored instead of
  advising "add --accuracy N".
* ``eval CHECKPOINT --backend ort`` runs (as bench does: the checkpoint is exported for the row)
  and its JSON names the backend that ran.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from fpdctl.cli.app import main
from tests.data.coco_fixtures import ground_truth_as_results, make_ground_truth, write_coco_dataset

AREA = "silent wrong answer"


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- COCO ground truth
def _repeat_annotation_id(gt: dict[str, Any]) -> None:
    gt["annotations"][1]["id"] = gt["annotations"][0]["id"]


def _nan_area(gt: dict[str, Any]) -> None:
    gt["annotations"][0]["area"] = math.nan


def _zero_area(gt: dict[str, Any]) -> None:
    gt["annotations"][2]["area"] = 0


def _flat_box(gt: dict[str, Any]) -> None:
    gt["annotations"][2]["bbox"][3] = 0.0


def _no_annotations(gt: dict[str, Any]) -> None:
    gt["annotations"] = []


def _only_crowds(gt: dict[str, Any]) -> None:
    gt["annotations"] = [a for a in gt["annotations"] if a["iscrowd"]]


def _repeat_image_id(gt: dict[str, Any]) -> None:
    gt["images"].append(dict(gt["images"][0], file_name="other.jpg"))


# name -> (what is wrong, how to break the fixture, the error after "FILE")
COCO_CASES: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "repeated annotation id": (
        "two person annotations share id 101 (pycocotools keeps one: perfect results scored AP 89.36)",
        _repeat_annotation_id,
        ": annotation id 101 appears twice (annotations[0] and annotations[1]); "
        "pycocotools would keep only one of them",
    ),
    "NaN area": (
        "annotation 101 has area NaN (pycocotools took it out of every area range: APl 100)",
        _nan_area,
        ": annotation 101 (image 1): area must be a finite number > 0, got nan",
    ),
    "zero area": (
        "annotation 103 has area 0 (OKS divides by it)",
        _zero_area,
        ": annotation 103 (image 2): area must be a finite number > 0, got 0",
    ),
    "box without height": (
        "annotation 103's bbox has height 0",
        _flat_box,
        ": annotation 103 (image 2): bbox width and height must be finite numbers > 0, got [40.0, 10.0, 110.0, 0.0]",
    ),
    "empty annotations": (
        "\"annotations\": [] (every metric '-' and '5 persons scored', exit 0)",
        _no_annotations,
        " has no person to score: 0 person annotation(s), none of them a non-crowd person with a labelled keypoint",
    ),
    "only crowds": (
        "the only person annotation is a crowd region",
        _only_crowds,
        " has no person to score: 1 person annotation(s), none of them a non-crowd person with a labelled keypoint",
    ),
    "repeated image id": (
        "two images share id 1 (was refused as 'not in the file's images')",
        _repeat_image_id,
        ": image id 1 appears twice (images[0] and images[3]); image ids must be unique",
    ),
}
ENTRY_POINTS = ("--ground-truth", "--data coco:DIR", "MODEL --data coco:DIR")


@pytest.fixture(scope="module")
def perfect_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's persons as COCO results: a perfect prediction of the good ground truth."""
    path = tmp_path_factory.mktemp("results") / "results.json"
    path.write_text(json.dumps(ground_truth_as_results(make_ground_truth())))
    return path


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", list(COCO_CASES))
def test_coco_ground_truth_pycocotools_would_misscore(
    reliability: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    perfect_results: Path,
    case: str,
    entry: str,
) -> None:
    tried, mutate, expected = COCO_CASES[case]
    gt = make_ground_truth()
    mutate(gt)
    root = tmp_path / "coco"
    annotation = write_coco_dataset(root, ground_truth=gt)
    reliability.describe(
        f"{AREA}: COCO ground truth", f"eval {entry}: {tried}", "exit 2, one line naming the file and the record"
    )
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    if entry == "--ground-truth":
        args: tuple[object, ...] = ("--predictions", perfect_results, "--ground-truth", annotation)
    elif entry == "--data coco:DIR":
        args = ("--predictions", perfect_results, "--data", f"coco:{root}")
    else:
        args = ("hg1x16j17", "--data", f"coco:{root}", "--input-size", "64", "--device", "cpu", "--no-flip-test")
    code, out, err = _run(capsys, "eval", *args, "--format", "json")
    line = _one_error_line(err)
    reliability.observe(f"exit {code}: {line}")
    assert (code, out) == (2, "")
    assert line == f"error: {annotation}{expected}"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_control_the_good_ground_truth_scores_100(
    reliability: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    perfect_results: Path,
) -> None:
    """The same files, unbroken: perfect results score AP 100 on both entry points."""
    reliability.describe(
        f"{AREA}: COCO ground truth", "control: the unbroken ground truth, perfect results", "exit 0, AP 100"
    )
    root = tmp_path / "coco"
    annotation = write_coco_dataset(root)
    for source in (("--ground-truth", annotation), ("--data", f"coco:{root}")):
        code, out, err = _run(capsys, "eval", "--predictions", perfect_results, *source, "--format", "json")
        assert code == 0, err
        report = json.loads(out)
        reliability.observe(f"{source[0]}: exit {code}, AP {report['oks']['AP']}")
        assert report["oks"]["AP"] == pytest.approx(100.0) and report["predictions"] == 5


# ----------------------------------------------------------------------------- long paths
LONG = "a" * 5000
LONG_PATH_COMMANDS: dict[str, tuple[str, ...]] = {
    "eval --ground-truth": ("eval", "--predictions", "{pred}", "--ground-truth", f"{LONG}.json"),
    "eval --predictions": ("eval", "--predictions", f"{LONG}.json", "--ground-truth", "{pred}"),
    "profile": ("profile", f"{LONG}.safetensors"),
    "export -o": ("export", "hg1x16", "--input-size", "64", "-o", f"{LONG}.onnx"),
    "bench": ("bench", f"{LONG}.onnx"),
}


@pytest.mark.parametrize("command", list(LONG_PATH_COMMANDS))
def test_a_path_too_long_is_an_input_error(
    reliability: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    reliability.describe(
        f"{AREA}: path",
        f"{command} with a 5,000-character file name",
        "exit 2, one line, the name shortened (was 'unexpected OSError', exit 1)",
    )
    monkeypatch.chdir(tmp_path)
    pred = tmp_path / "given.json"  # valid as either file: the long name is the only problem
    pred.write_text(json.dumps(make_ground_truth()))
    args = [a.replace("{pred}", str(pred)) for a in LONG_PATH_COMMANDS[command]]
    code, out, err = _run(capsys, *args)
    line = _one_error_line(err)
    reliability.observe(f"exit {code}: {line[:80]}...")
    assert (code, out) == (2, "")
    assert line.startswith("error: File name too long: " + "a" * 60 + "...")
    assert line.endswith(" characters)") and len(line) < 300
    assert sorted(tmp_path.iterdir()) == [pred]


# ----------------------------------------------------------------------------- bench --accuracy
# Over 20 s in a full run on two busy cores: an export, then bench with --accuracy.
@pytest.mark.slow
def test_bench_accuracy_on_an_embedded_decode_export_says_why_nothing_was_scored(
    reliability: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reliability.describe(
        f"{AREA}: bench advice",
        "bench --accuracy 30 on an --embed-decode .onnx",
        "the recommendation says the rows cannot be scored (was: 'add --accuracy N')",
    )
    onnx = tmp_path / "decode.onnx"
    code, _, err = _run(capsys, "export", "hg1x16", "--input-size", "64", "--embed-decode", "-o", onnx)
    assert code == 0, err
    code, out, err = _run(
        capsys, "bench", onnx, "--accuracy", "30", "--iters", "2", "--warmup", "0", "--format", "markdown"
    )
    assert code == 0, err
    text = " ".join(out.split())
    reliability.observe(f"exit {code}: " + text[text.index("recommended") :][:160])
    assert "set --accuracy" not in text
    assert (
        "--accuracy cannot score these rows (their graph takes uint8 pixels or returns keypoints), "
        "so reduced precisions are not recommended"
    ) in text


# ----------------------------------------------------------------------------- eval --backend
# Over 20 s in a full run on two busy cores: a checkpoint exported on the fly, then scored.
@pytest.mark.slow
def test_eval_a_checkpoint_on_an_onnx_backend_and_the_json_names_it(
    reliability: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tiny_checkpoint: Path,
) -> None:
    reliability.describe(
        f"{AREA}: eval backend",
        "eval CHECKPOINT --backend ort --format json",
        "runs the exported checkpoint (as bench does); JSON says backend 'ort'",
    )
    checkpoint = tmp_path / "teacher.safetensors"
    shutil.copyfile(tiny_checkpoint, checkpoint)
    common = (
        "--data",
        "synthetic:length=8",
        "--input-size",
        "64",
        "--device",
        "cpu",
        "--no-flip-test",
        "--format",
        "json",
    )
    reports = {}
    for backend in ("torch", "ort"):
        code, out, err = _run(capsys, "eval", checkpoint, *common, "--backend", backend)
        assert code == 0, err
        reports[backend] = json.loads(out)
    reliability.observe(
        f"torch: mean {reports['torch']['pckh']['mean']:.2f}; "
        f"ort: mean {reports['ort']['pckh']['mean']:.2f}, backend {reports['ort']['backend']}"
    )
    assert reports["torch"]["backend"] == "torch" and reports["ort"]["backend"] == "ort"
    assert reports["ort"]["pckh"]["mean"] == pytest.approx(reports["torch"]["pckh"]["mean"], abs=1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher.safetensors"]
