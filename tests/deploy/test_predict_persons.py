"""``fpdctl predict`` with many persons per image: --boxes files, --detector, batching, output."""

import json

import cv2
import numpy as np
import pytest

from fpdctl.api import predict
from fpdctl.boxes import box_center_scale, clip_box
from fpdctl.cli.app import main
from fpdctl.data.synthetic import SyntheticPose
from fpdctl.deploy.predict import JSON_NAME
from fpdctl.errors import DataError, UsageError
from tests.conftest import INPUT_SIZE
from tests.deploy.test_detector import _anchors, _yolo_graph

SPOTS = [(10, 20), (120, 30), (200, 110)]  # top-left corners of 64 px persons on a 300 x 200 canvas


def _person(index):
    return SyntheticPose(split="val", input_size=INPUT_SIZE).load_record(index).image


def _crowd(tmp_path, name="crowd.png", spots=SPOTS):
    canvas = np.zeros((200, 300, 3), np.uint8)
    for i, (x, y) in enumerate(spots):
        canvas[y : y + 64, x : x + 64] = _person(i)
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    cv2.imwrite(str(folder / name), canvas)
    return folder


def _write_boxes(path, entries):
    path.write_text(json.dumps(entries))
    return path


def _entries(name, spots=SPOTS):
    return [
        {"file_name": name, "bbox": [x, y, 64, 64], "score": 0.9 - 0.1 * i, "category_id": 1}
        for i, (x, y) in enumerate(spots)
    ]


def _run(ckpt, source, out, **kwargs):
    return predict(str(ckpt), source, out=out, threads=1, input_size=INPUT_SIZE, **kwargs)


def test_every_box_is_a_person_and_batching_changes_nothing(tmp_path, tiny_checkpoint):
    folder = _crowd(tmp_path)
    boxes = _write_boxes(tmp_path / "boxes.json", _entries("crowd.png"))
    result = _run(tiny_checkpoint, folder, tmp_path / "out", boxes=boxes)
    (image,) = result.predictions
    assert len(image.persons) == 3 and result.num_persons == 3 and result.persons_from == "boxes"
    for i, (x, y) in enumerate(SPOTS):
        person = image.persons[i]
        center, scale = box_center_scale(clip_box((x, y, 64, 64), 300, 200))  # the COCO top-down crop
        assert person.box == (x, y, 64, 64) and person.box_score == pytest.approx(0.9 - 0.1 * i)
        np.testing.assert_allclose(person.center, center) and pytest.approx(scale) == person.scale
        alone = _run(
            tiny_checkpoint,
            folder,
            tmp_path / f"alone{i}",
            draw=False,
            boxes=_write_boxes(tmp_path / f"one{i}.json", _entries("crowd.png")[i : i + 1]),
        )
        np.testing.assert_allclose(person.keypoints, alone.predictions[0].keypoints, atol=1e-3)
        np.testing.assert_allclose(person.scores, alone.predictions[0].scores, atol=1e-5)
    # The same synthetic person placed elsewhere: its keypoints move with its box.
    (tmp_path / "m").mkdir()
    moved = _crowd(tmp_path / "m", spots=[(200, 10)] + SPOTS[1:])  # its crop holds no neighbour
    again = _run(
        tiny_checkpoint,
        moved,
        tmp_path / "moved",
        draw=False,
        boxes=_write_boxes(tmp_path / "moved.json", _entries("crowd.png", [(200, 10)])),
    )
    np.testing.assert_allclose(
        again.predictions[0].keypoints - image.persons[0].keypoints, np.broadcast_to([190.0, -10.0], (16, 2)), atol=1e-3
    )
    saved = json.loads((tmp_path / "out" / JSON_NAME).read_text())
    entry = saved["results"][0]
    assert saved["persons_from"] == "boxes" and saved["backend"] == "torch"
    assert [p["box"] for p in entry["persons"]] == [[x, y, 64, 64] for x, y in SPOTS]
    assert [p["box_score"] for p in entry["persons"]] == [0.9, 0.8, 0.7]
    drawn = cv2.imread(str(tmp_path / "out" / "crowd.png"))
    original = cv2.imread(str(folder / "crowd.png"))
    for x, y in SPOTS:  # every person is drawn on
        assert not np.array_equal(drawn[y : y + 64, x : x + 64], original[y : y + 64, x : x + 64])


def test_persons_run_in_chunks_of_batch_size_with_the_same_keypoints(tmp_path, tiny_checkpoint, monkeypatch):
    import fpdctl.pipeline

    folder = _crowd(tmp_path)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), cv2.imread(str(folder / "crowd.png"))[::-1])
    entries = [{"file_name": "a.png", "bbox": [10 + 3 * k, 10, 40, 80], "score": 0.5} for k in range(3)]
    entries += [{"file_name": "crowd.png", "bbox": [10 + 9 * k, 5 + 4 * k, 60, 70], "score": 0.5} for k in range(10)]
    boxes = _write_boxes(tmp_path / "boxes.json", entries)
    sizes = []
    real = fpdctl.pipeline.predict_crops

    def spy(run, patches, affines, convention):
        sizes.append(len(patches))
        return real(run, patches, affines, convention)

    monkeypatch.setattr(fpdctl.pipeline, "predict_crops", spy)
    runs = {}
    # a's 3 persons wait for more (FOLDER_BATCH 8), b has none, crowd's 10 join them: 13 crops,
    # run in chunks of batch_size.
    for batch_size, chunks in ((32, [13]), (7, [7, 6]), (1, [1] * 13)):
        sizes.clear()
        runs[batch_size] = _run(
            tiny_checkpoint, folder, tmp_path / f"out{batch_size}", draw=False, boxes=boxes, batch_size=batch_size
        )
        assert sizes == chunks, batch_size
    assert [len(p.persons) for p in runs[32].predictions] == [3, 0, 10]
    # Each crop runs through the network on its own: the chunks change no keypoint. The heatmap
    # peaks (scores) may differ in the last float bit, as the CPU's convolution kernels sum in
    # an order that depends on the batch.
    for batch_size in (7, 1):
        for ours, theirs in zip(runs[batch_size].predictions, runs[32].predictions):
            for a, b in zip(ours.persons, theirs.persons, strict=True):
                np.testing.assert_array_equal(a.keypoints, b.keypoints)
                np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)
    saved = json.loads((tmp_path / "out32" / JSON_NAME).read_text())
    assert saved["results"][1] == {"file": "b.png", "frame": None, "width": 300, "height": 200, "persons": []}


def test_batch_size_must_be_a_positive_whole_number(tmp_path, tiny_checkpoint, capsys):
    folder = _crowd(tmp_path)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(UsageError, match=rf"^`batch_size` must be a whole number of at least 1, got {bad!r}$"):
            _run(tiny_checkpoint, folder, tmp_path / "out", batch_size=bad)
    assert not (tmp_path / "out").exists()
    code = main(["predict", str(tiny_checkpoint), str(folder), "--out", str(tmp_path / "o"), "--batch-size", "0"])
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [
        "error: --batch-size must be a whole number of at least 1, got 0"
    ]


def test_image_ids_through_an_annotation_file(tmp_path, tiny_checkpoint):
    folder = _crowd(tmp_path)
    annotations = tmp_path / "ann.json"
    annotations.write_text(json.dumps({"images": [{"id": 7, "file_name": "crowd.png"}]}))
    entries = [{"image_id": 7, "bbox": [x, y, 64, 64], "score": 1.0} for x, y in SPOTS[:2]]
    by_id = _run(
        tiny_checkpoint,
        folder,
        tmp_path / "a",
        draw=False,
        annotations=annotations,
        boxes=_write_boxes(tmp_path / "ids.json", entries),
    )
    by_name = _run(
        tiny_checkpoint,
        folder,
        tmp_path / "b",
        draw=False,
        boxes=_write_boxes(tmp_path / "names.json", _entries("crowd.png", SPOTS[:2])),
    )
    for a, b in zip(by_id.predictions[0].persons, by_name.predictions[0].persons):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_detector_and_the_same_boxes_from_a_file_agree(tmp_path, tiny_checkpoint):
    folder = _crowd(tmp_path)
    truth = [(float(x), float(y), 64.0, 64.0) for x, y in SPOTS]
    _yolo_graph(tmp_path / "det.onnx", _anchors(truth, [(0.9,), (0.8,), (0.7,)], 300, 200, 96), 96)
    detected = _run(tiny_checkpoint, folder, tmp_path / "d", detector=tmp_path / "det.onnx")
    filed = _run(
        tiny_checkpoint,
        folder,
        tmp_path / "f",
        draw=False,
        boxes=_write_boxes(tmp_path / "boxes.json", _entries("crowd.png")),
    )
    assert detected.persons_from == "detector" and detected.detector["input_size"] == 96
    for a, b in zip(detected.predictions[0].persons, filed.predictions[0].persons):
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-2)
    saved = json.loads((tmp_path / "d" / JSON_NAME).read_text())
    assert saved["detector"]["score"] == 0.25 and saved["detector"]["iou"] == 0.7
    assert len(saved["results"][0]["persons"]) == 3


def test_video_frames_from_a_boxes_file(tmp_path, tiny_checkpoint):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (300, 200))
    for _ in range(3):
        writer.write(cv2.imread(str(_crowd(tmp_path) / "crowd.png")))
    writer.release()
    entries = [{"frame": 0, "bbox": [10, 20, 64, 64], "score": 1.0}]
    entries += [{"frame": 2, "file_name": "clip.mp4", "bbox": [x, y, 64, 64]} for x, y in SPOTS]
    result = _run(tiny_checkpoint, video, tmp_path / "out", boxes=_write_boxes(tmp_path / "v.json", entries))
    assert [len(p.persons) for p in result.predictions] == [1, 0, 3]
    assert result.predictions[2].persons[0].box_score is None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_pose.mp4", JSON_NAME]


def test_out_must_be_empty_unless_overwrite(tmp_path, tiny_checkpoint, capsys):
    folder = _crowd(tmp_path)
    cv2.imwrite(str(folder / "second.png"), np.zeros((80, 80, 3), np.uint8))
    out = tmp_path / "out"
    _run(tiny_checkpoint, folder, out)
    assert sorted(p.name for p in out.iterdir()) == ["crowd.png", JSON_NAME, "second.png"]
    with pytest.raises(UsageError, match=f"`out` {out} is not empty; set `overwrite`"):
        _run(tiny_checkpoint, folder, out)
    (folder / "second.png").unlink()
    _run(tiny_checkpoint, folder, out, overwrite=True)  # the stale drawing of second.png goes
    assert sorted(p.name for p in out.iterdir()) == ["crowd.png", JSON_NAME]
    (out / "mine.txt").write_text("a user's file")
    code = main(["predict", str(tiny_checkpoint), str(folder), "--out", str(out), "--overwrite", "--input-size", "64"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        f"error: --out {out} holds files predict did not write (mine.txt); --overwrite replaces only "
        "predict's own output: give an empty or new folder"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["crowd.png", JSON_NAME, "mine.txt"]


def test_unreadable_input_creates_nothing(tmp_path, tiny_checkpoint, capsys):
    bad_image = tmp_path / "bad.png"
    bad_image.write_bytes(b"not a png")
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"not a video")
    for source in (bad_image, bad_video):
        out = tmp_path / f"out_{source.suffix[1:]}"
        code = main(["predict", str(tiny_checkpoint), str(source), "--out", str(out), "--input-size", "64"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and str(source) in err[0], err
        assert not out.exists()


def test_bbox_outside_the_image_is_no_person_and_warns_once(tmp_path, tiny_checkpoint, capsys):
    folder = _crowd(tmp_path)
    cv2.imwrite(str(folder / "b.png"), np.zeros((100, 100, 3), np.uint8))
    code = main(
        [
            "predict",
            str(tiny_checkpoint),
            str(folder),
            "--out",
            str(tmp_path / "out"),
            "--input-size",
            "64",
            "--bbox",
            "500,10,20,20",
            "--no-draw",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0
    assert err == [
        "warning: bbox 500,10,20,20 has no area in the image (2 image(s) or frame(s): b.png, crowd.png): "
        "no person there"
    ]
    saved = json.loads((tmp_path / "out" / JSON_NAME).read_text())
    assert [len(r["persons"]) for r in saved["results"]] == [0, 0]
    assert saved["skipped_boxes"] == {"no area in the image": 2}


def test_a_one_based_video_file_with_frame_base_1(tmp_path, tiny_checkpoint):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (300, 200))
    for _ in range(3):
        writer.write(cv2.imread(str(_crowd(tmp_path) / "crowd.png")))
    writer.release()
    zero = [{"frame": 0, "bbox": [10, 20, 64, 64]}] + [{"frame": 2, "bbox": [x, y, 64, 64]} for x, y in SPOTS]
    one = [{**entry, "frame": entry["frame"] + 1} for entry in zero]  # MOT's numbering
    a = _run(tiny_checkpoint, video, tmp_path / "a", draw=False, boxes=_write_boxes(tmp_path / "0.json", zero))
    b = _run(
        tiny_checkpoint, video, tmp_path / "b", draw=False, boxes=_write_boxes(tmp_path / "1.json", one), frame_base=1
    )
    assert [len(p.persons) for p in b.predictions] == [len(p.persons) for p in a.predictions] == [1, 0, 3]
    for x, y in zip(a.predictions, b.predictions):
        for p, q in zip(x.persons, y.persons):
            np.testing.assert_array_equal(p.keypoints, q.keypoints)
    # Read 0-based, the same 1-based file names a frame past the end: refused, not dropped.
    with pytest.raises(
        DataError,
        match=r"detection 1 names frame 3, past the end of clip.mp4 \(3 frames, numbered 0..2 "
        r"with frame_base=0\); 3 boxes",
    ):
        _run(tiny_checkpoint, video, tmp_path / "c", draw=False, boxes=tmp_path / "1.json")
    assert not (tmp_path / "c").exists()
    with pytest.raises(UsageError, match="`frame_base` must be 0 or 1, got 2"):
        _run(tiny_checkpoint, video, tmp_path / "d", draw=False, boxes=tmp_path / "1.json", frame_base=2)


def test_det_score_skips_boxes_of_a_file_and_counts_them(tmp_path, tiny_checkpoint):
    folder = _crowd(tmp_path)
    entries = _entries("crowd.png")  # scores 0.9, 0.8, 0.7
    entries[1]["score"] = 0.1
    entries += [{"file_name": "crowd.png", "bbox": [5, 5, 30, 30]}]  # no score: kept
    entries += [{"file_name": "zidane.jpg", "bbox": [5, 5, 30, 30], "score": 0.05}]  # not in INPUT
    boxes = _write_boxes(tmp_path / "boxes.json", entries)
    kept = _run(tiny_checkpoint, folder, tmp_path / "a", draw=False, boxes=boxes)
    assert [p.box_score for p in kept.predictions[0].persons] == [0.9, 0.7, None]
    assert kept.skipped_boxes == {"below det_score": 1, "image not in the input": 1}
    assert kept.warnings == [
        "1 box(es) scoring under det_score: skipped",
        "1 box(es) of 1 image(s) the input does not hold (zidane.jpg): skipped",
    ]
    every = _run(tiny_checkpoint, folder, tmp_path / "b", draw=False, boxes=boxes, det_score=0.0)
    assert len(every.predictions[0].persons) == 4 and every.skipped_boxes == {"image not in the input": 1}
    saved = json.loads((tmp_path / "a" / JSON_NAME).read_text())
    assert saved["skipped_boxes"] == {"below det_score": 1, "image not in the input": 1}
