"""COCO keypoint AP from pycocotools: goldens on a small real-format file, the results JSON, errors."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest

from fpdctl.errors import DataError, InputError
from fpdctl.metrics.coco import (
    STAT_NAMES,
    COCOResult,
    coco_results,
    evaluate_coco,
    load_coco_annotations,
    load_coco_results,
    write_coco_results,
)
from tests.data.coco_fixtures import ground_truth_as_results, make_ground_truth


@pytest.fixture()
def gt_file(tmp_path: Path) -> Path:
    path = tmp_path / "person_keypoints_val2017.json"
    path.write_text(json.dumps(make_ground_truth()), encoding="utf-8")
    return path


def pycocotools_stats(gt_file: Path, results: list[dict]) -> list[float]:
    """The ten figures straight from pycocotools, the way its own demo scores keypoints."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def test_ground_truth_scored_as_predictions_gives_ap_1(gt_file: Path, capsys) -> None:
    gt = make_ground_truth()
    result = evaluate_coco(gt_file, ground_truth_as_results(gt))
    assert result.ap == 1.0 and result.ap50 == 1.0 and result.ap75 == 1.0 and result.ar == 1.0
    assert result.as_dict() == pytest.approx(dict.fromkeys(STAT_NAMES, 1.0), abs=1e-12)
    assert (result.num_images, result.num_predictions) == (3, 5)
    assert capsys.readouterr().out == ""  # pycocotools' printing is captured
    assert evaluate_coco(gt, ground_truth_as_results(gt)) == result  # a dict works as well


def test_a_known_perturbation_matches_pycocotools_called_directly(gt_file: Path) -> None:
    results = ground_truth_as_results(make_ground_truth())
    rng = np.random.default_rng(7)
    for k, record in enumerate(results):
        kps = np.asarray(record["keypoints"], np.float64).reshape(17, 3)
        kps[:, :2] += rng.normal(0.0, 1.5 + k, (17, 2))  # persons drift more and more
        record["keypoints"] = kps.reshape(-1).tolist()
        record["score"] = 0.9 - 0.1 * k
    result = evaluate_coco(gt_file, results)
    assert list(result.as_dict().values()) == pycocotools_stats(gt_file, results)
    assert 0.0 < result.ap < 1.0


def test_one_person_missed_gives_76_of_101_recall_points(gt_file: Path) -> None:
    """4 of 5 persons exact and ranked first, the 5th far off: precision 1 up to recall 0.8.

    COCO interpolates precision at 101 recall points 0, 0.01, ..., 1; those up to 0.80 (81 of
    them) have precision 1 and the rest 0, so AP = 81 / 101 at every OKS threshold.
    """
    results = ground_truth_as_results(make_ground_truth(), score=0.9)
    far = np.asarray(results[-1]["keypoints"], np.float64).reshape(17, 3)
    far[:, :2] = 0.0
    results[-1] = {**results[-1], "keypoints": far.reshape(-1).tolist(), "score": 0.1}
    result = evaluate_coco(gt_file, results)
    assert result.ap == pytest.approx(81 / 101, abs=1e-12)
    assert result.ar == pytest.approx(0.8, abs=1e-12)
    assert list(result.as_dict().values()) == pycocotools_stats(gt_file, results)


def test_no_predictions_score_zero(gt_file: Path) -> None:
    result = evaluate_coco(gt_file, [])
    assert result.as_dict() == dict.fromkeys(STAT_NAMES, 0.0) and result.num_predictions == 0


def test_results_json_round_trip(tmp_path: Path, gt_file: Path) -> None:
    keypoints = np.random.default_rng(0).uniform(0, 150, (3, 17, 2))
    scores = np.random.default_rng(1).uniform(0, 1, (3, 17))
    results = coco_results(keypoints, [1, 1, 3], scores)
    path = write_coco_results(tmp_path / "out" / "results.json", results)
    loaded = load_coco_results(path)
    assert loaded == results
    back = np.asarray([r["keypoints"] for r in loaded]).reshape(3, 17, 3)
    np.testing.assert_array_equal(back[:, :, :2], keypoints)
    np.testing.assert_array_equal(back[:, :, 2], scores)
    assert loaded[0]["score"] == pytest.approx(scores[0][scores[0] > 0.2].mean())
    assert evaluate_coco(gt_file, path) == evaluate_coco(gt_file, results)


def test_coco_result_names() -> None:
    result = COCOResult.from_stats(np.arange(10) / 10, num_images=2, num_predictions=3)
    assert list(result.as_dict()) == ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    assert (result.ap_large, result.ar_medium) == (0.4, 0.8)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_coco_annotations(tmp_path / "nope.json")
    assert str(info.value) == f"COCO annotation file not found: {tmp_path / 'nope.json'}"


def test_json_that_is_not_coco(tmp_path: Path) -> None:
    path = tmp_path / "valid.json"
    path.write_text(json.dumps([{"image": "a.jpg", "joints": [[0, 0]] * 16}]))
    with pytest.raises(DataError) as info:
        load_coco_annotations(path)
    assert str(info.value) == (
        f'{path} is not a COCO keypoints file: expected a JSON object with "images", '
        '"annotations" and "categories" lists, found a list'
    )
    path.write_text("{not json")
    with pytest.raises(DataError, match=f"cannot parse COCO annotation file {path} as JSON: "):
        load_coco_annotations(path)


def test_annotation_with_the_wrong_number_of_keypoints(tmp_path: Path, gt_file: Path) -> None:
    gt = make_ground_truth()
    gt["annotations"][3]["keypoints"] = gt["annotations"][3]["keypoints"][:48]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(DataError) as info:
        evaluate_coco(path, [])
    assert str(info.value) == (
        f"{path}: annotation 104 (image 3) has 48 keypoint values, expected 51 (17 keypoints x [x, y, v])"
    )


def test_bad_results(tmp_path: Path, gt_file: Path) -> None:
    results = ground_truth_as_results(make_ground_truth())
    results[2]["keypoints"] = results[2]["keypoints"][:-3]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(DataError) as info:
        evaluate_coco(gt_file, path)
    assert str(info.value) == (
        f"{path}: result 2 (image 2) has 48 keypoint values, expected 51 (17 keypoints x [x, y, v])"
    )
    results = ground_truth_as_results(make_ground_truth())
    results[1]["image_id"] = 99
    with pytest.raises(DataError) as info:
        evaluate_coco(gt_file, results)
    assert str(info.value) == "predictions: result 1 (image 99): no such image in the ground truth"
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(DataError) as info:
        load_coco_results(path)
    assert str(info.value) == (
        f"{path} is not a COCO results file: expected a JSON list of "
        "{image_id, category_id, keypoints, score}, found an object with keys annotations"
    )


def test_result_in_percent_and_the_headline() -> None:
    from fpdctl.metrics import SCORE_NAMES, headline_score, score_name

    result = COCOResult.from_stats([0.5, 0.75, 0.25, -1.0, 0.5, 0.6, 0.8, 0.4, -1.0, 0.6], 3, 4)
    assert result.metric == "oks" and result.mean == 50.0 and result.num_persons == 4
    report = result.to_dict()
    assert report == {
        "oks": {
            "AP": 50.0,
            "AP50": 75.0,
            "AP75": 25.0,
            "APm": None,
            "APl": 50.0,
            "AR": 60.0,
            "AR50": 80.0,
            "AR75": 40.0,
            "ARm": None,
            "ARl": 60.0,
        },
        "images": 3,
        "predictions": 4,
    }
    assert headline_score(report, "oks") == 50.0
    assert headline_score({"pckh": {"mean": 81.5}}, "pckh") == 81.5
    assert SCORE_NAMES == {"pckh": "PCKh", "pck": "PCK", "oks": "AP"} and score_name("oks") == "AP"
    empty = COCOResult.from_stats([-1.0] * 10, 0, 0)
    assert np.isnan(empty.mean) and empty.to_dict()["oks"]["AP"] is None


def test_evaluate_reference_dispatches_to_pycocotools(tmp_path: Path) -> None:
    from fpdctl.metrics import COCOReference, evaluate_reference
    from fpdctl.metrics.coco import evaluate_coco_reference, reference_results

    gt = make_ground_truth()
    file = tmp_path / "gt.json"
    file.write_text(json.dumps(gt))
    persons = [a for a in gt["annotations"] if a["num_keypoints"] and not a["iscrowd"]]
    keypoints = np.array([a["keypoints"] for a in persons], np.float64).reshape(-1, 17, 3)
    reference = COCOReference(
        joints=keypoints[:, :, :2],
        visible=keypoints[:, :, 2] > 0,
        headboxes=None,
        annotation_file=file,
        image_ids=np.array([a["image_id"] for a in persons]),
        areas=np.array([a["area"] for a in persons]),
        annotation_ids=np.array([a["id"] for a in persons]),
    )
    shifted = reference.joints + 3.0
    scores = np.linspace(0.1, 0.9, 17 * len(persons)).reshape(len(persons), 17)
    result = evaluate_reference(shifted, reference, scores=scores)
    assert result == evaluate_coco_reference(shifted, reference, scores)
    records, images = reference_results(shifted, reference, scores)
    assert list(result.as_dict().values()) == pycocotools_stats(file, records) and images == [1, 2, 3]
    with pytest.raises(DataError, match=r"^COCO AP averages over its own OKS thresholds"):
        evaluate_reference(shifted, reference, threshold=0.5)
    # A person with no labelled keypoint is not scored (nor is its image).
    blind = COCOReference(**{**reference.__dict__, "visible": np.zeros_like(reference.visible)})
    blind_visible = blind.visible.copy()
    blind_visible[0, 0] = True
    one = COCOReference(**{**reference.__dict__, "visible": blind_visible})
    records, images = reference_results(shifted, one, scores)
    assert len(records) == 1 and images == [1]
    with pytest.raises(DataError, match=r"^none of the 5 ground-truth persons has a labelled keypoint"):
        reference_results(shifted, blind, scores)


def test_results_output_must_be_json(tmp_path: Path) -> None:
    from fpdctl.errors import UsageError
    from fpdctl.metrics.coco import check_results_output

    assert check_results_output(tmp_path / "r.json") == tmp_path / "r.json"
    with pytest.raises(UsageError) as info:
        check_results_output(tmp_path / "r.npy")
    assert str(info.value) == "COCO predictions are saved as a COCO results .json file, got '.npy'"
