"""``fpdctl.Pose``: one object opens a model once and runs it on images in memory, on files, on a
dataset, into an export and through a benchmark; and the three wrong answers it replaces (a
loaded network forgetting its input size, two device rules, no detector boxes on an export)."""

from __future__ import annotations

import inspect
import json

import cv2
import numpy as np
import pytest

import fpdctl
from fpdctl.deploy.placement import place_model, run_device
from fpdctl.deploy.pose import Pose
from fpdctl.errors import UsageError
from tests.conftest import INPUT_SIZE

BOXES = np.array([[10.0, 8.0, 40.0, 90.0], [70.0, 20.0, 50.0, 70.0]])  # two persons, x, y, w, h


def _image(seed: int = 0, shape: tuple[int, int] = (120, 160)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def torch_pose(tiny_checkpoint) -> Pose:
    return Pose(tiny_checkpoint, device="cpu", input_size=INPUT_SIZE)


@pytest.fixture(scope="module")
def onnx_file(tiny_checkpoint, tmp_path_factory):
    path = tmp_path_factory.mktemp("pose") / "tiny.onnx"
    fpdctl.export(tiny_checkpoint, path, input_size=INPUT_SIZE, verify=False)
    return path


# --- (a) the input size lives on the network ---------------------------------------------


def test_a_loaded_network_remembers_the_size_it_was_trained_at(tmp_path) -> None:
    from fpdctl.models.checkpoint_files import resolve_input_size

    net = fpdctl.load_model("synthetic-hg2x64")  # its model card says 128 px
    assert net.input_size == 128 and resolve_input_size(net) == 128
    assert fpdctl.create_model("hg1x16").input_size is None  # a name records nothing: the default
    assert resolve_input_size(fpdctl.create_model("hg1x16")) == 256
    exported = fpdctl.export(net, tmp_path / "teacher.onnx", verify=False)
    assert exported.info.input_size == 128  # 256 before: the network had forgotten
    fpdctl.save_model(net, tmp_path / "again.safetensors")  # and the size travels with a save
    assert fpdctl.load_model(tmp_path / "again.safetensors").input_size == 128
    assert Pose(net, device="cpu").input_size == 128


# --- (b) one device rule ---------------------------------------------------------------------


def test_auto_is_one_rule_for_every_runtime(monkeypatch) -> None:
    import onnxruntime
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert [run_device("auto", r) for r in ("torch", "onnxruntime", "openvino")] == ["cpu", "cpu", "cpu"]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert run_device("auto", "torch") == "cuda:0"
    # ONNX Runtime takes the GPU only where its build has the CUDA provider; OpenVINO runs on the CPU.
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert run_device("auto", "onnxruntime") == "cpu"
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert run_device("auto", "onnxruntime") == "cuda:0" and run_device("auto", "openvino") == "cpu"
    # A checkpoint and its export now land on the same device (the CPU for the export before).
    assert [(row.name, where) for row, where in (place_model("torch"), place_model("onnx"))] == [
        ("torch", "cuda:0"),
        ("ort", "cuda:0"),
    ]
    assert place_model("onnx", "ort", "cpu")[1] == "cpu"  # an explicit device is kept


def test_every_entry_point_defaults_to_the_one_rule() -> None:
    from fpdctl.deploy.bench import benchmark
    from fpdctl.utils.device import DEFAULT_DEVICE

    for function in (Pose, fpdctl.api.evaluate, fpdctl.predict, fpdctl.bench, benchmark):
        assert inspect.signature(function).parameters["device"].default == DEFAULT_DEVICE == "auto", function


def test_a_checkpoint_and_its_export_run_on_the_same_device(tiny_checkpoint, onnx_file) -> None:
    data = "synthetic:size=4"
    from_checkpoint = fpdctl.evaluate(tiny_checkpoint, data, input_size=INPUT_SIZE, flip_test=False)
    from_export = fpdctl.evaluate(onnx_file, data, flip_test=False)
    assert from_checkpoint.device == from_export.device == run_device("auto", "torch")


# --- (c) detector boxes on every backend -----------------------------------------------------


def test_an_export_is_scored_on_detector_boxes_as_its_checkpoint(tmp_path) -> None:
    from fpdctl.evaluation import evaluate_checkpoint
    from fpdctl.models.spec import HourglassSpec
    from tests.conftest import make_net
    from tests.test_evaluate_coco_boxes import _write_folder

    annotations = _write_folder(tmp_path / "coco")
    detections = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in annotations]
    (tmp_path / "dets.json").write_text(json.dumps(detections))
    net = make_net(HourglassSpec(1, 16, joints=17).name)
    fpdctl.save_model(net, tmp_path / "coco.safetensors")
    fpdctl.export(net, tmp_path / "coco.onnx", input_size=INPUT_SIZE, verify=False)
    data = f"coco:{tmp_path / 'coco'}"

    # TypeError before: fpdctl.evaluate took no boxes for an .onnx file.
    deployed = fpdctl.evaluate(tmp_path / "coco.onnx", data, boxes=tmp_path / "dets.json", flip_test=False)
    reference = evaluate_checkpoint(
        str(tmp_path / "coco.safetensors"), data, boxes=tmp_path / "dets.json", input_size=INPUT_SIZE, flip_test=False
    )
    assert deployed.backend == "ort" and deployed.metric.num_predictions == len(annotations)
    assert (
        deployed.reference.boxes()
        == reference.reference.boxes()
        == {
            "source": "detections",
            "file": str(tmp_path / "dets.json"),
            "count": len(annotations),
        }
    )
    np.testing.assert_allclose(deployed.coords, reference.coords, atol=1e-3)
    assert deployed.metric.ap == pytest.approx(reference.metric.ap, abs=1e-6)
    with pytest.raises(UsageError, match="^`boxes` crops the images of a COCO folder"):
        fpdctl.evaluate(tmp_path / "coco.onnx", "synthetic:size=4", boxes=tmp_path / "dets.json")


# --- images in memory ------------------------------------------------------------------------


def test_a_call_gives_one_result_per_image_with_arrays(torch_pose) -> None:
    image = _image()
    (result,) = torch_pose(image, BOXES)
    joints = torch_pose.spec.joints
    assert result.keypoints.shape == (2, joints, 2) and result.scores.shape == (2, joints)
    assert result.keypoints.dtype == np.float32 and len(result) == 2
    np.testing.assert_array_equal(result.boxes, BOXES)
    assert np.isnan(result.box_scores).all()  # an array of four columns carries no scores
    assert result.joint_names == torch_pose.joint_names and len(result.joint_names) == joints
    # Each person is its own crop: running the boxes one by one, or one crop per batch, changes nothing.
    alone = [torch_pose(image, BOXES[i : i + 1])[0].keypoints[0] for i in range(2)]
    np.testing.assert_allclose(result.keypoints, np.stack(alone), atol=1e-4)
    np.testing.assert_allclose(torch_pose(image, BOXES, batch_size=1)[0].keypoints, result.keypoints, atol=1e-4)


def test_boxes_come_as_arrays_detections_or_a_detector(torch_pose) -> None:
    image = _image(1)
    scored = np.concatenate([BOXES, [[0.9], [0.4]]], axis=1)
    from_array = torch_pose(image, scored)[0]
    detections = [{"bbox": list(b), "score": s} for b, s in zip(BOXES, (0.9, 0.4))]
    from_list = torch_pose(image, detections)[0]
    calls = []

    def detector(frame):
        calls.append(frame.shape)
        return BOXES, np.array([0.9, 0.4])

    from_detector = torch_pose([image, image], detector)
    assert calls == [image.shape, image.shape]
    for result in (from_list, *from_detector):
        np.testing.assert_array_equal(result.keypoints, from_array.keypoints)
        np.testing.assert_allclose(result.box_scores, [0.9, 0.4])
    whole = torch_pose(image)[0]  # no boxes: the whole image is one person
    np.testing.assert_array_equal(whole.boxes, [[0, 0, 160, 120]])
    assert len(torch_pose(image, np.zeros((0, 4)))[0]) == 0


def test_a_list_of_images_takes_a_list_of_boxes_and_paths(torch_pose, tmp_path) -> None:
    first, second = _image(2), _image(3, (90, 100))
    cv2.imwrite(str(tmp_path / "second.png"), second)
    both = torch_pose([first, tmp_path / "second.png"], [BOXES, BOXES[:1]])
    assert [len(r) for r in both] == [2, 1] and both[1].source == "second.png"
    np.testing.assert_array_equal(both[0].keypoints, torch_pose(first, BOXES)[0].keypoints)
    np.testing.assert_array_equal(both[1].keypoints, torch_pose(second, BOXES[:1])[0].keypoints)


def test_to_dict_and_plot(torch_pose) -> None:
    image = _image(4)
    result = torch_pose(image, BOXES)[0]
    entry = result.to_dict()
    assert (entry["file"], entry["frame"], entry["width"], entry["height"]) == ("", None, 160, 120)
    assert [p["box"] for p in entry["persons"]] == BOXES.tolist()
    first = entry["persons"][0]["keypoints"][0]
    assert first["name"] == result.joint_names[0]
    assert (first["x"], first["y"]) == (
        round(float(result.keypoints[0, 0, 0]), 3),
        round(float(result.keypoints[0, 0, 1]), 3),
    )
    drawn = result.plot()
    assert drawn.shape == image.shape and drawn.dtype == np.uint8 and (drawn != image).any()
    assert (result.image == image).all()  # the original is not drawn on


def test_bad_images_and_boxes_are_named(torch_pose) -> None:
    with pytest.raises(UsageError, match=r"^`images` must be uint8 BGR \[H, W, 3\] arrays .* got float32 \[4, 4, 3\]$"):
        torch_pose(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(UsageError, match=r"got shape \[2, 3\]$"):
        torch_pose(_image(), BOXES[:, :3])
    with pytest.raises(
        UsageError, match=r"^`boxes`\[0\] \(0, 0, -5, 10\) is refused in the 160 x 120 image: smaller than 1 px$"
    ):
        torch_pose(_image(), [[0, 0, -5, 10]])
    with pytest.raises(UsageError, match="is refused in the 160 x 120 image: no area in the image$"):
        torch_pose(_image(), [[10, 10, 20, 20], [500, 10, 20, 20]])
    with pytest.raises(UsageError, match="^`boxes` for 2 images must be a list of 2"):
        torch_pose([_image(), _image()], BOXES)


# --- files, datasets, exports, timing, on each backend ---------------------------------------


def test_predict_writes_what_a_call_returns(torch_pose, tmp_path) -> None:
    image = _image(5)
    cv2.imwrite(str(tmp_path / "in.png"), image)
    boxes_file = tmp_path / "boxes.json"
    boxes_file.write_text(json.dumps([{"file_name": "in.png", "bbox": list(b), "score": 1.0} for b in BOXES]))
    written = torch_pose.predict(tmp_path / "in.png", out=tmp_path / "out", boxes=boxes_file)
    entry = json.loads((tmp_path / "out" / "keypoints.json").read_text())["results"][0]
    in_memory = torch_pose(image, np.concatenate([BOXES, [[1.0], [1.0]]], axis=1))[0].to_dict()
    assert entry == {**in_memory, "file": "in.png"} and written.num_persons == 2
    assert [r.to_dict() for r in torch_pose.predict(tmp_path / "in.png", boxes=BOXES)] == [
        {**torch_pose(image, BOXES)[0].to_dict(), "file": "in.png"}
    ]


def test_stream_yields_each_frame_of_a_video(torch_pose, tmp_path) -> None:
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for k in range(5):
        writer.write(_image(k, (64, 96)))
    writer.release()
    stream = torch_pose.predict(video, stream=True, max_frames=3)
    assert inspect.isgenerator(stream)
    frames = [(r.source, r.frame, len(r)) for r in stream]
    assert frames == [("clip.mp4", 0, 1), ("clip.mp4", 1, 1), ("clip.mp4", 2, 1)]
    with pytest.raises(UsageError, match="^`stream` yields results without writing files"):
        torch_pose.predict(video, out=tmp_path / "o", stream=True)


def test_onnx_runtime_and_pytorch_agree(torch_pose, onnx_file, tiny_checkpoint) -> None:
    image = _image(6)
    on_ort = Pose(onnx_file)
    exported_for_ort = Pose(tiny_checkpoint, backend="ort", input_size=INPUT_SIZE)  # exported once, for the row
    assert (on_ort.backend.name, exported_for_ort.backend.name, on_ort.device) == ("ort", "ort", "cpu")
    assert on_ort.input_size == INPUT_SIZE and on_ort.joint_names == torch_pose.joint_names
    reference = torch_pose(image, BOXES)[0]
    for pose in (on_ort, exported_for_ort):
        result = pose(image, BOXES)[0]
        np.testing.assert_allclose(result.keypoints, reference.keypoints, atol=1e-3)
        np.testing.assert_allclose(result.scores, reference.scores, atol=1e-4)
    data = "synthetic:size=8"
    scores = [p.val(data).metric.mean for p in (torch_pose, on_ort, exported_for_ort)]
    assert scores[1] == pytest.approx(scores[0], abs=1e-6) and scores[2] == pytest.approx(scores[0], abs=1e-6)


def test_export_and_bench_from_the_object(torch_pose, onnx_file, tmp_path) -> None:
    exported = torch_pose.export(tmp_path / "again.onnx", verify=False)
    assert exported.info.input_size == INPUT_SIZE and exported.info.source == "hg1x16.safetensors"
    with pytest.raises(UsageError, match="is already an exported .onnx file"):
        Pose(onnx_file).export(tmp_path / "no.onnx")
    timed = Pose(onnx_file, threads=1).bench(iters=2, warmup=0)
    assert [(row.backend, row.device, row.iters) for row in timed.rows] == [("ort", "cpu", 2)]
    timed = torch_pose.bench(iters=2, warmup=0)
    assert [(row.backend, row.input_size) for row in timed.rows] == [("torch", INPUT_SIZE)]


def test_openvino_rows_run_the_same_object(onnx_file, torch_pose) -> None:
    pytest.importorskip("openvino")
    pose = Pose(onnx_file, backend="openvino")
    image = _image(7)
    np.testing.assert_allclose(pose(image, BOXES)[0].keypoints, torch_pose(image, BOXES)[0].keypoints, atol=1e-2)
    assert pose.val("synthetic:size=4").backend == "ov"


# --- the API's signatures ----------------------------------------------------------------------


def test_the_api_has_real_signatures_with_the_core_defaults() -> None:
    from fpdctl.deploy.export import export_onnx

    for function in (fpdctl.api.evaluate, fpdctl.export, fpdctl.bench, fpdctl.predict, fpdctl.profile):
        kinds = {p.kind for p in inspect.signature(function).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, function
    export = inspect.signature(fpdctl.export).parameters
    core = inspect.signature(export_onnx).parameters
    assert (
        export["flip_test"].default == core.get("flip_test", core.get("flip")).default
        and export["opset"].default == core["opset"].default
    )
    assert "flip_test" in inspect.signature(fpdctl.api.evaluate).parameters
    assert fpdctl.Pose is Pose and fpdctl.PoseResult.__name__ == "PoseResult"


def test_array_boxes_are_cropped_as_eval_and_predict_crop_them(torch_pose, tmp_path) -> None:
    """The one box rule (fpdctl.boxes): boxes off the image, huge and fractional ones give
    Pose.__call__ the centres and scales eval --boxes gives them."""
    from fpdctl.data.coco import COCODetections
    from tests.deploy.test_boxes_crops import BOXES as EDGE_BOXES
    from tests.test_evaluate_coco_boxes import _write_folder

    _write_folder(tmp_path)
    records = [{"image_id": 1, "category_id": 1, "bbox": box, "score": 0.9} for box in EDGE_BOXES]
    (tmp_path / "dets.json").write_text(json.dumps(records))
    evaluated = COCODetections(tmp_path, tmp_path / "dets.json", input_size=INPUT_SIZE)
    image = cv2.imread(str(tmp_path / "val2017" / "000000000001.png"))
    result = torch_pose(image, np.array(EDGE_BOXES))[0]
    np.testing.assert_array_equal(result.centers, evaluated.table.centers)
    np.testing.assert_array_equal(result.scales, np.asarray(evaluated.table.scales, np.float32))
    np.testing.assert_array_equal(result.boxes, EDGE_BOXES)  # the boxes as given, not clipped
