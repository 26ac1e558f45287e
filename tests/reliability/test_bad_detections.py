"""Issue #19, bad detector boxes: ``fpdctl eval MODEL --data coco:DIR --boxes FILE`` refuses a bad
detections file in one line naming the file and the entry, exit 2, before the network runs.

Cases: an image id the annotations do not have, a negative-width box, a zero-height box, a
category other than person, a box wholly outside its image, a box of 1e-6 px (the rule predict
skips such boxes by, fpdctl.boxes.check_box), a file that is not a list, and
--boxes with data that is not a COCO folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fpdctl.cli.app import main

AREA = "bad detections"
GOOD = {"image_id": 1, "category_id": 1, "bbox": [4.0, 4.0, 40.0, 50.0], "score": 0.9}


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fpdctl.data.synthetic import export_coco

    out = tmp_path_factory.mktemp("bad_detections") / "coco"
    export_coco(out, 2, image_size=64, seed=0, split="val")
    return out


CASES = [
    (
        "unknown image",
        [GOOD, {**GOOD, "image_id": 99}],
        "error: {f}: detection 1 (image 99): no such image in the annotations",
    ),
    (
        "negative width",
        [{**GOOD, "bbox": [4.0, 4.0, -40.0, 50.0]}],
        "error: {f}: detection 0 (image 1): bbox [4.0, 4.0, -40.0, 50.0] has no area "
        "(width and height must be positive)",
    ),
    (
        "zero height",
        [GOOD, {**GOOD, "image_id": 2, "bbox": [4.0, 4.0, 40.0, 0]}],
        "error: {f}: detection 1 (image 2): bbox [4.0, 4.0, 40.0, 0] has no area (width and height must be positive)",
    ),
    (
        "not a person",
        [{**GOOD, "category_id": 18}],
        "error: {f}: detection 0 (image 1): category_id is 18, only persons (category 1) have keypoints",
    ),
    (
        "outside the image",
        [{**GOOD, "bbox": [100.0, 4.0, 10.0, 10.0]}],
        "error: {f}: detection 0 (image 1): bbox [100.0, 4.0, 10.0, 10.0] refused: no area in the image "
        "(a 64 x 64 image)",
    ),
    (
        "a box of 1e-6 px",
        [GOOD, {**GOOD, "bbox": [4.0, 4.0, 1e-6, 1e-6]}],
        "error: {f}: detection 1 (image 1): bbox [4.0, 4.0, 1e-06, 1e-06] refused: smaller than 1 px (a 64 x 64 image)",
    ),
    (
        "not a list",
        {"annotations": []},
        "error: {f} is not a COCO detection results file: expected a JSON list of {{image_id, category_id, bbox, "
        "score}}, found an object",
    ),
]


@pytest.mark.parametrize(("name", "payload", "line"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_detections_file(
    name: str,
    payload: object,
    line: str,
    coco_dir: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    reliability.describe(
        AREA,
        f"fpdctl eval --data coco:DIR --boxes dets.json ({name})",
        "exit 2, one line naming the file and the entry",
    )
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(payload))
    capfd.readouterr()
    code = main(
        ["eval", "hg1x16", "--input-size", "64", "--device", "cpu", "--data", f"coco:{coco_dir}", "--boxes", str(dets)]
    )
    out, err = capfd.readouterr()
    reliability.observe(f"exit {code}: {err.strip().replace(str(tmp_path) + '/', '')}")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err == line.format(f=dets) + "\n"


def test_boxes_need_a_coco_folder(tmp_path: Path, capfd: pytest.CaptureFixture[str], reliability) -> None:  # type: ignore[no-untyped-def]
    reliability.describe(AREA, "fpdctl eval --data synthetic --boxes dets.json", "exit 2, one line")
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([GOOD]))
    capfd.readouterr()
    code = main(["eval", "hg1x16", "--input-size", "64", "--data", "synthetic:length=4", "--boxes", str(dets)])
    out, err = capfd.readouterr()
    reliability.observe(f"exit {code}: {err.strip()}")
    assert code == 2 and out == ""
    assert err == (
        "error: --boxes crops the images of a COCO folder at detector boxes: it needs --data "
        "coco:DIR, got 'synthetic:length=4'\n"
    )
