"""Synthetic crowds (``synthetic:layout=coco,persons=N``), the simulated detector, and the
one-person output kept byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fpdctl.cli.app import main
from fpdctl.data.coco import COCODataset
from fpdctl.data.registry import build_dataset
from fpdctl.data.synthetic import SyntheticPose, export_coco
from fpdctl.data.synthetic.crowd import OCCLUDED, crowd_keypoints, crowd_layouts, crowd_size
from fpdctl.data.synthetic.render import body_mask
from fpdctl.data.synthetic.simulated_detections import MISS_RATE, simulate_detections
from fpdctl.errors import UsageError
from fpdctl.metrics.coco import evaluate_coco_reference
from fpdctl.metrics.coco_detections import check_detections

# Recorded from the generator before crowds were added (commit 2e68eb8): the one-person COCO
# layout's records (pixels, keypoints, crops), its ground truth and an exported annotation file.
RECORDS_DIGEST = "d7f9fd03090031f6a81f10d1e73943d64ad645e62e6c495f99acc7049fc5c1eb"
TRUTH_DIGEST = "f9234dfd22d03ec13a389093289fcddb2a7a84a2a260fee9f42307b72c6fb82e"
EXPORT_DIGEST = "ba7b5818650339763cf2745d266edb37dee68d8a5af96a5d02cdbd82d64dd6c4"


def test_one_person_output_is_unchanged(tmp_path: Path) -> None:
    dataset = SyntheticPose("val", length=6, seed=3, image_size=96, layout="coco")
    h = hashlib.sha256()
    for i in range(6):
        record = dataset.load_record(i)
        for array in (record.image, record.joints, record.center, np.float64(record.scale)):
            h.update(np.ascontiguousarray(array).tobytes())
    assert h.hexdigest() == RECORDS_DIGEST
    truth = json.dumps(dataset.coco_ground_truth(), sort_keys=True).encode()
    assert hashlib.sha256(truth).hexdigest() == TRUTH_DIGEST
    export_coco(tmp_path / "c", 4, image_size=64, seed=1, split="val")
    exported = (tmp_path / "c" / "annotations" / "person_keypoints_val2017.json").read_bytes()
    assert hashlib.sha256(exported).hexdigest() == EXPORT_DIGEST


def test_crowd_sizes_and_determinism() -> None:
    sizes = [crowd_size(0, "val", k, 3) for k in range(300)]
    assert set(sizes) == {1, 2, 3}
    assert 0.25 < sizes.count(1) / 300 < 0.42  # uniform in 1..3
    a = SyntheticPose("val", length=12, seed=2, image_size=96, layout="coco", persons=3)
    b = SyntheticPose("val", length=12, seed=2, image_size=96, layout="coco", persons=3)
    assert len(a) == sum(crowd_size(2, "val", k, 3) for k in range(12)) == len(b)
    assert len(a) > 12 and a.num_images == 12
    for i in (0, len(a) - 1):
        ra, rb = a.load_record(i), b.load_record(i)
        assert np.array_equal(ra.image, rb.image) and np.array_equal(ra.joints, rb.joints)
    assert a.coco_ground_truth() == b.coco_ground_truth()
    other = SyntheticPose("val", length=12, seed=3, image_size=96, layout="coco", persons=3)
    assert other.coco_ground_truth()["annotations"] != a.coco_ground_truth()["annotations"]


def test_occlusion_flags_follow_the_later_persons_pixels() -> None:
    seen_occluded = 0
    for image in range(40):
        layouts = crowd_layouts(0, "val", image, 3, 128, SyntheticPose("val", length=1, image_size=128).config)
        keypoints = crowd_keypoints(layouts)
        assert not (keypoints[-1][:, 2] == OCCLUDED).any()  # nobody stands in front of the last one
        for i, person in enumerate(keypoints):
            later = np.zeros((128, 128), bool)
            for front in layouts[i + 1 :]:
                later |= body_mask(front.body, 128)
            for x, y, v in person:
                if v == 0:
                    assert x == 0 and y == 0
                    continue
                covered = later[int(np.floor(y + 0.5)), int(np.floor(x + 0.5))]
                assert (v == OCCLUDED) == covered
                seen_occluded += int(v == OCCLUDED)
    assert seen_occluded > 10


def test_crowd_spec_samples_and_ground_truth() -> None:
    dataset = build_dataset("synthetic:layout=coco,persons=3,length=10", "val", input_size=64)
    assert isinstance(dataset, SyntheticPose) and dataset.persons == 3
    truth = dataset.coco_ground_truth()
    assert len(truth["images"]) == 10 and len(truth["annotations"]) == len(dataset)
    assert [a["id"] for a in truth["annotations"]] == list(range(1, len(dataset) + 1))
    ref = dataset.eval_reference()
    assert ref.image_ids.tolist() == [a["image_id"] for a in truth["annotations"]]
    # Every person of an image shares the image (and the Record's image id).
    first, second = dataset.load_annotation(0), dataset.load_annotation(1)
    assert (first.image_id == second.image_id) == (ref.image_ids[0] == ref.image_ids[1])
    assert evaluate_coco_reference(ref.joints, ref).ap == pytest.approx(1.0)
    sample = dataset[len(dataset) - 1]
    assert tuple(sample["image"].shape) == (3, 64, 64) and tuple(sample["target"].shape) == (17, 16, 16)
    with pytest.raises(UsageError, match="annotated in COCO's layout only: add layout=coco"):
        build_dataset("synthetic:persons=3", "val")
    with pytest.raises(UsageError, match="synthetic persons must be an integer from 1 to 20, got 0"):
        build_dataset("synthetic:layout=coco,persons=0", "val")


def test_crowd_export_reads_back_and_the_simulated_detector(tmp_path: Path) -> None:
    out, dets = tmp_path / "crowd", tmp_path / "dets.json"
    result = export_coco(out, 15, image_size=96, seed=4, split="val", persons=4, detections=dets)
    dataset = SyntheticPose("val", length=15, seed=4, image_size=96, layout="coco", persons=4)
    assert result.count == len(dataset) and result.num_images == 15
    truth = json.loads((out / "annotations" / "person_keypoints_val2017.json").read_text())
    assert truth == json.loads(json.dumps(dataset.coco_ground_truth()))
    flags = {v for a in truth["annotations"] for v in a["keypoints"][2::3]}
    assert flags == {0, 1, 2}
    # coco:DIR reads back every person with a labelled keypoint, with the generator's crops.
    labelled = [k for k, a in enumerate(truth["annotations"]) if a["num_keypoints"] > 0]
    read = COCODataset(out, "val", input_size=64)
    assert len(read) == len(labelled)
    np.testing.assert_allclose(read.table.centers, [dataset.load_annotation(k).center for k in labelled], atol=1e-4)

    records = json.loads(dets.read_text())
    assert result.num_detections == len(records)
    boxes = check_detections(records, str(dets), {image["id"] for image in truth["images"]})
    assert len(boxes) == len(records)
    assert ((boxes.boxes[:, :2] >= 0) & (boxes.boxes[:, :2] + boxes.boxes[:, 2:] <= 96.001)).all()
    assert 0.7 * (1 - MISS_RATE) * len(dataset) < len(records) < 1.3 * len(dataset) + 15
    assert records == simulate_detections(truth, 4, "val")  # seeded
    assert records != simulate_detections(truth, 5, "val")


def test_cli_crowds_detections_and_eval_on_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, dets = tmp_path / "c", tmp_path / "c" / "dets.json"
    assert (
        main(
            [
                "data",
                "synth",
                "--layout",
                "coco",
                "--persons",
                "3",
                "--count",
                "6",
                "--size",
                "64",
                "--out",
                str(out),
                "--detections",
                str(dets),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    n = len(SyntheticPose("val", length=6, image_size=64, layout="coco", persons=3))
    assert printed[0].startswith(f"wrote {n} val persons in 6 images (64 px, seed 0) to {out}: val2017/")
    count = len(json.loads(dets.read_text()))
    assert printed[1] == f"wrote {dets}: {count} simulated detector boxes"
    assert (
        main(
            [
                "eval",
                "hg1x16",
                "--input-size",
                "64",
                "--device",
                "cpu",
                "--data",
                f"coco:{out}",
                "--boxes",
                str(dets),
                "--format",
                "json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["boxes"] == {"source": "detections", "file": str(dets), "count": count}
    assert report["images"] == 6 and report["predictions"] <= count
    assert (
        main(["eval", "hg1x16", "--input-size", "64", "--device", "cpu", "--data", f"coco:{out}", "--format", "json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["boxes"] == {"source": "ground truth"}
    assert main(["data", "synth", "--persons", "2", "--count", "2", "--out", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err == "error: --persons and --detections need --layout coco\n"
