"""``fpdctl predict``: keypoints JSON and drawings for images, folders and videos."""

import json

import cv2
import numpy as np
import pytest
import torch

from fpdctl.api import predict
from fpdctl.cli.app import main
from fpdctl.cli.predict import parse_bbox
from fpdctl.codec import decode_heatmaps
from fpdctl.data.synthetic import SyntheticPose
from fpdctl.deploy.predict import JSON_NAME
from fpdctl.errors import DataError, UsageError
from fpdctl.pipeline import person_box
from fpdctl.skeleton import MPII
from tests.conftest import INPUT_SIZE


def _synthetic_image(index=0, size=INPUT_SIZE):
    return SyntheticPose(split="val", input_size=size).load_record(index).image


def _keypoints(result_dict, i=0):
    entry = result_dict["results"][i]["persons"][0]
    return np.array([[k["x"], k["y"]] for k in entry["keypoints"]]), np.array([k["score"] for k in entry["keypoints"]])


def test_image_keypoints_golden(tmp_path, tiny_checkpoint, tiny_net):
    """A 64 px image through a 64 px network: the crop is the image shifted by half a pixel
    (crop_affine puts the image centre 31.5 on the crop centre 32), derived here by hand."""
    image = _synthetic_image()
    path = tmp_path / "person.png"
    cv2.imwrite(str(path), image)
    result = predict(str(tiny_checkpoint), path, out=tmp_path / "out", threads=1, input_size=INPUT_SIZE)

    shift = np.float32([[1, 0, 0.5], [0, 1, 0.5]])
    crop = cv2.warpAffine(image, shift, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    rgb = crop[:, :, ::-1].astype(np.float32) / 255.0
    x = ((rgb - np.float32([0.485, 0.456, 0.406])) / np.float32([0.229, 0.224, 0.225])).transpose(2, 0, 1)
    with torch.inference_mode():
        heatmaps = tiny_net(torch.from_numpy(np.ascontiguousarray(x))[None])[:, -1].numpy()
    coords, scores = decode_heatmaps(heatmaps)
    expected = coords[0] * 4.0 - 0.5  # heatmap px -> input px -> image px

    saved = json.loads((tmp_path / "out" / JSON_NAME).read_text())
    got, got_scores = _keypoints(saved)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    np.testing.assert_allclose(got_scores, scores[0], atol=1e-4)
    assert saved["joint_names"] == list(MPII.names) and saved["kind"] == "image"
    person = saved["results"][0]["persons"][0]
    assert [k["name"] for k in person["keypoints"]] == list(MPII.names)
    assert person["box"] == [0, 0, 64, 64] and person["center"] == [31.5, 31.5] and person["box_score"] is None
    assert saved["persons_from"] == "image" and saved["backend"] == "torch" and saved["written"] == ["person.png"]
    drawn = cv2.imread(str(tmp_path / "out" / "person.png"))
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)
    assert result.drawn == [tmp_path / "out" / "person.png"]


def test_bbox_follows_the_person(tmp_path, tiny_checkpoint):
    """The same person at two places of a larger frame, with its box: keypoints move with it."""
    person = _synthetic_image(1)
    frames = []
    for x, y in ((100, 50), (10, 20)):
        frame = np.zeros((200, 240, 3), np.uint8)
        frame[y : y + 64, x : x + 64] = person
        file = tmp_path / f"at_{x}_{y}.png"
        cv2.imwrite(str(file), frame)
        frames.append((file, (x, y)))
    points = []
    for file, (x, y) in frames:
        result = predict(
            str(tiny_checkpoint),
            file,
            out=tmp_path / f"out_{x}",
            bbox=(x, y, 64, 64),
            threads=1,
            input_size=INPUT_SIZE,
            draw=False,
        )
        assert result.drawn == [] and result.predictions[0].box == (x, y, 64, 64)
        points.append(result.predictions[0].keypoints)
    np.testing.assert_allclose(points[0] - points[1], np.broadcast_to([90.0, 30.0], points[0].shape), atol=1e-3)


def test_onnx_and_checkpoint_agree_on_a_real_image(tmp_path, lspet400, tiny_checkpoint, fp32_export):
    _, onnx_path = fp32_export
    image = lspet400 / "images" / "im00001.jpg"
    from_torch = predict(str(tiny_checkpoint), image, out=tmp_path / "t", threads=1, input_size=INPUT_SIZE)
    from_onnx = predict(str(onnx_path), image, out=tmp_path / "o", threads=1)
    a, b = from_torch.predictions[0], from_onnx.predictions[0]
    h, w = cv2.imread(str(image)).shape[:2]
    assert (a.width, a.height) == (w, h) and a.scale == pytest.approx(max(w, h) / 200)
    np.testing.assert_allclose(b.keypoints, a.keypoints, atol=1e-3)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
    assert cv2.imread(str(tmp_path / "o" / "im00001.jpg")).shape == (h, w, 3)


def test_folder_skips_unreadable_images(tmp_path, capsys, fp32_export):
    _, onnx_path = fp32_export
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"p{i}.jpg"), _synthetic_image(i, 96))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image")
    out = tmp_path / "out"
    code = main(["predict", str(onnx_path), str(folder), "--out", str(out), "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "skipped broken.jpg: cannot decode image" in captured.err
    saved = json.loads((out / JSON_NAME).read_text())
    assert [r["file"] for r in saved["results"]] == ["p0.jpg", "p1.jpg"]
    assert (
        saved["skipped"] == [s for s in saved["skipped"] if s.startswith("broken.jpg: ")] and len(saved["skipped"]) == 1
    )
    assert all(
        len(r["persons"]) == 1 and len(r["persons"][0]["keypoints"]) == 16 and (r["width"], r["height"]) == (96, 96)
        for r in saved["results"]
    )
    assert sorted(p.name for p in out.iterdir()) == [JSON_NAME, "p0.jpg", "p1.jpg"]


def test_video(tmp_path, tiny_checkpoint):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 80))
    assert writer.isOpened()
    for i in range(3):
        frame = np.zeros((80, 96, 3), np.uint8)
        frame[8:72, 16:80] = _synthetic_image(i)
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    result = predict(str(tiny_checkpoint), video, out=out, threads=1, input_size=INPUT_SIZE)
    assert result.kind == "video" and [p.frame for p in result.predictions] == [0, 1, 2]
    assert sorted(p.name for p in out.iterdir()) == ["clip_pose.mp4", JSON_NAME]  # no temp left
    capture = cv2.VideoCapture(str(out / "clip_pose.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 3 and frames[0].shape == (80, 96, 3)
    saved = json.loads((out / JSON_NAME).read_text())
    assert [r["frame"] for r in saved["results"]] == [0, 1, 2] and saved["results"][0]["file"] == "clip.mp4"
    short = predict(
        str(tiny_checkpoint),
        video,
        out=tmp_path / "short",
        threads=1,
        input_size=INPUT_SIZE,
        max_frames=2,
        draw=False,
    )
    assert len(short.predictions) == 2 and sorted(p.name for p in (tmp_path / "short").iterdir()) == [JSON_NAME]


def test_person_box():
    center, scale, box = person_box(300, 200, None)
    assert center.tolist() == [149.5, 99.5] and scale == 1.5 and box == (0.0, 0.0, 300.0, 200.0)
    # The box's pixels x 10..49, y 20..99: centre (29.5, 59.5), side 79 x 1.25 (fpdctl.boxes).
    center, scale, box = person_box(300, 200, (10, 20, 40, 80))
    assert center.tolist() == [29.5, 59.5] and scale == pytest.approx(79 * 1.25 / 200) and box == (10, 20, 40, 80)
    # Running off the right: clipped to x 280..299 first, then centred.
    center, scale, _ = person_box(300, 200, (280, 20, 40, 80))
    assert center.tolist() == [289.5, 59.5] and scale == pytest.approx(79 * 1.25 / 200)
    with pytest.raises(
        DataError, match=r"bbox \[400, 20, 40, 80\] refused: no area in the image \(a 300 x 200 image\)"
    ):
        person_box(300, 200, (400, 20, 40, 80))


def test_parse_bbox():
    assert parse_bbox("1, 2.5,30,40") == (1.0, 2.5, 30.0, 40.0)
    with pytest.raises(UsageError, match=r"--bbox must be x,y,w,h \(four numbers, image pixels\), got '1,2,3'"):
        parse_bbox("1,2,3")
    with pytest.raises(UsageError, match="--bbox width and height must be positive"):
        parse_bbox("1,2,0,4")


def test_bad_inputs_are_one_line_exit_2(tmp_path, capsys, tiny_checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), _synthetic_image())
    text = tmp_path / "notes.txt"
    text.write_text("x")
    out = tmp_path / "out"
    cases = [
        ([str(tmp_path / "nope.jpg")], f"error: input not found: {tmp_path / 'nope.jpg'}"),
        ([str(text)], f"error: cannot tell what {text} is: expected an image"),
        ([str(folder / "a.png"), "--bbox", "1,2,3"], "error: --bbox must be x,y,w,h"),
        ([str(folder), "--out", str(folder)], "error: --out must not be the input folder"),
        ([str(tmp_path)], f"error: no images (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) in {tmp_path}"),
    ]
    for args, message in cases:
        extra = [] if "--out" in args else ["--out", str(out)]
        code = main(["predict", str(tiny_checkpoint), *args, *extra, "--input-size", "64"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, message
        assert len(err) == 1 and err[0].startswith(message), err
    assert not out.exists() and sorted(p.name for p in folder.iterdir()) == ["a.png"]
