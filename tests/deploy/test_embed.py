"""``fpdctl export --embed-preprocess --embed-decode``: uint8 crops in, keypoints out, exactly what
the Python pipeline computes (goldens by hand for the added nodes; the pipeline for the whole)."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from fpdctl.cli.app import main
from fpdctl.codec import HeatmapCodec
from fpdctl.deploy.export import export_onnx
from fpdctl.deploy.metadata import GraphIO, read_info
from fpdctl.deploy.onnx_graph import append_decode, prepend_preprocess
from fpdctl.deploy.preprocess_decode import Embedding, parse_embedding, verification_crops
from fpdctl.deploy.runtime import OrtRunner
from fpdctl.errors import UsageError
from fpdctl.models.convention import FPD_OFFICIAL, NATIVE, PYTORCH_POSE_MPII
from fpdctl.pipeline import crop, normalise, person_box
from tests.conftest import HEATMAP_SIZE, INPUT_SIZE, make_net


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _identity(dims, name_in="input", name_out="heatmaps"):
    """A graph whose 'network' is Identity: the embedded nodes can be checked on their own."""
    graph = helper.make_graph(
        [helper.make_node("Identity", [name_in], [name_out])],
        "identity",
        [helper.make_tensor_value_info(name_in, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(name_out, TensorProto.FLOAT, dims)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _pipeline(net, crops_bgr, convention=NATIVE):
    """The Python pipeline, written out: normalise -> network -> last stack -> codec decode."""
    with torch.inference_mode():
        heatmaps = net(torch.from_numpy(normalise(crops_bgr, convention)))[:, -1].numpy()
    return HeatmapCodec(crops_bgr.shape[1], heatmaps.shape[-1]).decode(heatmaps)


# ------------------------------------------------------------------ the added nodes, by hand
def test_preprocess_nodes_golden_by_hand():
    """One pixel through each convention, by hand: channel c of the network input is
    (pixel[order[c]] / 255 - mean[c]) / std[c]."""
    pixel_rgb = np.array([255, 0, 51], np.uint8)
    crops = np.broadcast_to(pixel_rgb, (1, 2, 2, 3)).copy()
    cases = [
        # (convention, pixel order of the crops, the network's channels as (R, G, B) source indices)
        (NATIVE, "rgb", (0, 1, 2)),
        (FPD_OFFICIAL, "rgb", (2, 1, 0)),  # network channel 0 is blue
        (PYTORCH_POSE_MPII, "rgb", (0, 1, 2)),
    ]
    for convention, order, sources in cases:
        model = _identity([1, 3, 2, 2])
        prepend_preprocess(model, convention, order)
        out = _session(model).run(None, {"pixels": crops})[0]
        for channel, source in enumerate(sources):
            value = pixel_rgb[source] / 255.0
            expected = (value - convention.mean[channel]) / convention.std[channel]
            assert out[0, channel] == pytest.approx(np.full((2, 2), expected), abs=1e-6)
    # BGR crops of the same pixel give the same input.
    model = _identity([1, 3, 2, 2])
    prepend_preprocess(model, NATIVE, "bgr")
    bgr = _session(model).run(None, {"pixels": crops[..., ::-1].copy()})[0]
    model = _identity([1, 3, 2, 2])
    prepend_preprocess(model, NATIVE, "rgb")
    np.testing.assert_array_equal(bgr, _session(model).run(None, {"pixels": crops})[0])


def test_preprocess_is_bit_identical_to_the_python_normalisation():
    crops = np.random.default_rng(3).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    for convention in (NATIVE, FPD_OFFICIAL, PYTORCH_POSE_MPII):
        model = _identity(["batch", 3, 8, 8])
        prepend_preprocess(model, convention, "bgr")
        got = _session(model).run(None, {"pixels": crops})[0]
        np.testing.assert_array_equal(got, normalise(crops, convention))


def test_decode_nodes_golden_by_hand():
    """Hand-made 5x5 maps, input 20 px (stride 4): keypoint = (argmax + quarter pixel toward the
    higher neighbour) * 4, no step on the border or between equal neighbours, first argmax wins."""
    maps = np.zeros((1, 4, 5, 5), np.float32)
    maps[0, 0, 2, 2], maps[0, 0, 2, 3], maps[0, 0, 1, 2] = 1.0, 0.5, 0.2  # right and up higher
    maps[0, 1, 0, 4], maps[0, 1, 0, 3] = 0.9, 0.8  # top-right corner: no step on either axis
    maps[0, 2, 3, 1], maps[0, 2, 3, 0], maps[0, 2, 3, 2] = 0.7, 0.3, 0.3  # equal x neighbours
    maps[0, 2, 4, 1] = 0.1  # down higher
    maps[0, 3, 1, 1] = maps[0, 3, 3, 3] = 0.6  # a tie: the first in row-major order
    model = _identity([1, 4, 5, 5])
    append_decode(model, 20, keep_heatmaps=True)
    keypoints, scores, heatmaps = _session(model).run(None, {"input": maps})
    expected = np.array(
        [[[(2 + 0.25) * 4, (2 - 0.25) * 4], [4 * 4, 0 * 4], [1 * 4, (3 + 0.25) * 4], [1 * 4, 1 * 4]]], np.float32
    )
    np.testing.assert_array_equal(keypoints, expected)
    np.testing.assert_array_equal(scores, np.array([[1.0, 0.9, 0.7, 0.6]], np.float32))
    np.testing.assert_array_equal(heatmaps, maps)
    np.testing.assert_array_equal(keypoints, HeatmapCodec(20, 5).decode(maps)[0])


def test_decode_equals_the_codec_on_random_maps():
    maps = np.random.default_rng(4).standard_normal((6, 16, HEATMAP_SIZE, HEATMAP_SIZE)).astype(np.float32)
    model = _identity(["batch", 16, HEATMAP_SIZE, HEATMAP_SIZE])
    append_decode(model, INPUT_SIZE)
    keypoints, scores = _session(model).run(None, {"input": maps})
    expected, expected_scores = HeatmapCodec(INPUT_SIZE, HEATMAP_SIZE).decode(maps)
    np.testing.assert_array_equal(keypoints, expected)
    np.testing.assert_array_equal(scores, expected_scores)
    assert [o.name for o in model.graph.output] == ["keypoints", "scores"]


# ------------------------------------------------------------------ the export
def test_done_means_keypoints_within_half_a_pixel_on_synthetic_validation_images(embedded_export, tiny_net):
    _, path = embedded_export
    crops = verification_crops(INPUT_SIZE, 0, 16, seed=7)  # 16 synthetic validation persons, uint8 BGR
    assert crops.dtype == np.uint8 and crops.shape == (16, INPUT_SIZE, INPUT_SIZE, 3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    keypoints, scores = session.run(None, {"pixels": crops})
    expected, expected_scores = _pipeline(tiny_net, crops)
    errors = np.linalg.norm(keypoints - expected, axis=-1)
    assert keypoints.shape == (16, 16, 2) and scores.shape == (16, 16)
    assert errors.max() <= 0.5, errors.max()
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_a_real_photo_and_random_pixels(embedded_export, tiny_net, lspet400):
    import cv2

    _, path = embedded_export
    image = cv2.imread(str(lspet400 / "images" / "im00002.jpg"))
    center, scale, _ = person_box(image.shape[1], image.shape[0], None)
    photo = crop(image, center, scale, INPUT_SIZE)[0][None]
    noise = np.random.default_rng(5).integers(0, 256, (4, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    crops = np.concatenate([photo, noise])
    outputs = OrtRunner(path).run_graph(crops)
    expected, _ = _pipeline(tiny_net, crops)
    assert np.linalg.norm(outputs["keypoints"] - expected, axis=-1).max() <= 0.5


def test_metadata_and_graph_say_what_the_graph_takes_and_returns(embedded_export):
    result, path = embedded_export
    info = read_info(path)
    assert info.io == result.info.io == GraphIO("bgr", ("keypoints", "scores"))
    assert info.input_convention == NATIVE and info.precision == "fp32"
    model = onnx.load(str(path))
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "pixels" and inp.type.tensor_type.elem_type == TensorProto.UINT8
    assert dims[1:] == [INPUT_SIZE, INPUT_SIZE, 3] and isinstance(dims[0], str)
    assert [o.name for o in model.graph.output] == ["keypoints", "scores"]
    props = {e.key: e.value for e in model.metadata_props}
    assert json.loads(props["fpdctl.graph_io"]) == {"pixel_order": "bgr", "outputs": ["keypoints", "scores"]}
    (check,) = result.embedding_checks
    assert check.passed and check.within_tolerance == 1.0 and check.max_error_px == 0.0
    assert (check.random_crops, check.image_crops, check.joints_compared) == (4, 8, 12 * 16)
    assert result.to_dict()["graph_io"] == {"pixel_order": "bgr", "outputs": ["keypoints", "scores"]}


def test_a_plain_runner_call_is_refused_on_an_embedded_graph(embedded_export):
    _, path = embedded_export
    with pytest.raises(UsageError, match=r"exported with pre-processing or decoding inside \(uint8 BGR crops"):
        OrtRunner(path)(np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32))


def test_int8_quantises_only_the_network(tmp_path):
    """int8 with both flags and the heatmaps kept, RGB crops: the embedded nodes stay exact (no
    Q/DQ around them), the keypoints equal the int8 network's through the Python pipeline, and the
    heatmaps equal the network-only int8 export's."""
    net = make_net(seed=2)
    embedded, plain = tmp_path / "e.onnx", tmp_path / "p.onnx"
    options = dict(input_size=INPUT_SIZE, precision="int8", calibration_samples=8, validation_samples=0)
    result = export_onnx(net, embedded, embedding=Embedding(True, True, "rgb", keep_heatmaps=True), **options)
    export_onnx(net, plain, **options)
    assert read_info(embedded).io == GraphIO("rgb", ("keypoints", "scores", "heatmaps"))
    torch_check, int8_check = result.embedding_checks
    assert torch_check.min_share is None  # reported: int8 differs from fp32 PyTorch by design
    assert int8_check.passed and int8_check.within_tolerance == 1.0 and int8_check.max_error_px == 0.0
    graph = onnx.load(str(embedded)).graph
    producers = {o: n for n in graph.node for o in n.output}
    ours = [n for n in graph.node if n.name.startswith("fpdctl_")]
    assert len(ours) > 30 and not {n.op_type for n in ours} & {"QuantizeLinear", "DequantizeLinear"}
    for node in ours:  # no embedded node reads a dequantised tensor...
        assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in node.input)
    assert "QuantizeLinear" in {n.op_type for n in graph.node}  # ...while the network is quantised
    crops = np.random.default_rng(6).integers(0, 256, (3, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    outputs = OrtRunner(embedded).run_graph(crops[..., ::-1])  # the graph takes RGB
    heatmaps = OrtRunner(plain)(normalise(crops, NATIVE))
    np.testing.assert_array_equal(outputs["heatmaps"], heatmaps)
    np.testing.assert_array_equal(outputs["keypoints"], HeatmapCodec(INPUT_SIZE, HEATMAP_SIZE).decode(heatmaps)[0])


def test_cli_export_with_both_flags(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "e.onnx"
    code = main(
        [
            "export",
            str(tiny_checkpoint),
            "-o",
            str(out),
            "--input-size",
            "64",
            "--embed-preprocess",
            "--embed-decode",
            "--pixel-order",
            "RGB",
            "--keep-heatmaps",
            "--format",
            "json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["graph_io"] == {"pixel_order": "rgb", "outputs": ["keypoints", "scores", "heatmaps"]}
    assert [c["passed"] for c in report["embedding_checks"]] == [True]
    assert report["embedding_checks"][0]["tolerance_px"] == 0.5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--embed-preprocess", "--pixel-order", "rbg"], "error: --pixel-order must be 'rgb' or 'bgr', got 'rbg'"),
        (["--pixel-order", "rgb"], "error: --pixel-order applies with --embed-preprocess"),
        (["--keep-heatmaps"], "error: --keep-heatmaps applies with --embed-decode"),
        (
            ["--embed-decode", "--all-stacks"],
            "error: --embed-decode decodes the final stack; it does not combine with --all-stacks",
        ),
    ],
)
def test_bad_embed_options(tmp_path, capsys, tiny_checkpoint, args, message):
    code = main(["export", str(tiny_checkpoint), "-o", str(tmp_path / "m.onnx"), "--input-size", "64", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(message), err
    assert not list(tmp_path.iterdir())


def test_parse_embedding():
    assert parse_embedding() == Embedding() and not Embedding().active
    assert parse_embedding(True, pixel_order=" RGB ").pixel_order == "rgb"
    assert parse_embedding(True, True, keep_heatmaps=True).io == GraphIO("bgr", ("keypoints", "scores", "heatmaps"))
    assert parse_embedding(False, True).io == GraphIO(None, ("keypoints", "scores"))
    with pytest.raises(UsageError, match="`pixel_order` must be 'rgb' or 'bgr'"):
        Embedding(True, pixel_order="xyz")


def test_eval_refuses_an_embedded_export_in_one_line(capsys, embedded_export):
    _, path = embedded_export
    code = main(["eval", str(path), "--data", "synthetic:length=4", "--no-flip-test"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (
        f"error: {path} was exported with pre-processing or decoding inside (uint8 BGR crops -> keypoints, "
        "scores); evaluation feeds normalised crops and reads heatmaps: evaluate a plain export"
    )


def test_predict_runs_an_embedded_export_like_a_plain_one(tmp_path, capsys, embedded_export, fp32_export, lspet400):
    image = lspet400 / "images" / "im00003.jpg"
    points = []
    for name, (_, path) in (("embedded", embedded_export), ("plain", fp32_export)):
        assert main(["predict", str(path), str(image), "--out", str(tmp_path / name), "--no-draw"]) == 0
        result = json.loads((tmp_path / name / "keypoints.json").read_text())["results"][0]["persons"][0]["keypoints"]
        points.append(np.array([[k["x"], k["y"], k["score"]] for k in result]))
    capsys.readouterr()
    np.testing.assert_allclose(points[0], points[1], atol=1e-3)
