"""Every ``fpdctl export`` kind that OpenCV's DNN module can run, run there: ``cv2.dnn.readNetFromONNX``
loads the file and its outputs match ONNX Runtime's on the same input (fp32, int8,
--embed-preprocess, --embed-decode with and without --keep-heatmaps, both embeddings). fp16 is the
one kind it cannot read (a float16 Conv), as export's help says."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from fpdctl.deploy.export import export_onnx
from fpdctl.deploy.onnx_graph import KEYPOINTS_OUTPUT_NAME, SCORES_OUTPUT_NAME
from fpdctl.deploy.preprocess_decode import Embedding
from tests.conftest import INPUT_SIZE

# The version export's help names as checked.
OPENCV_CHECKED = "4.14.0"
# How far OpenCV's heatmaps may be from ONNX Runtime's, per kind. fp32: float rounding. int8: the
# two runtimes requantise activations with their own rounding, and one 8-bit step early in the
# network moves a heatmap (peak about 1.0) by a few hundredths: 0.016 with export's 7-bit weights,
# the same to every digit on AVX-512 VNNI and on AVX2 (qemu -cpu Haswell). Full 8-bit weights on
# AVX2 saturate ONNX Runtime's int16 pair sums and gave 0.28, which this bound still catches.
TOLERANCE = {"fp32": 1e-4, "preprocess": 1e-4, "int8": 0.05}


def _export(tmp_path: Path, checkpoint: Path, name: str, **options) -> Path:
    path = tmp_path / f"{name}.onnx"
    export_onnx(checkpoint, path, input_size=INPUT_SIZE, batch=1, validation_samples=0, **options)
    return path


def _input(takes_pixels: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if takes_pixels:
        return rng.integers(0, 256, (1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    return rng.standard_normal((1, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)


def _compare(path: Path, takes_pixels: bool) -> dict[str, float]:
    """Max abs difference, per output, between OpenCV's DNN and ONNX Runtime on three inputs."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    net = cv2.dnn.readNetFromONNX(str(path))
    worst = dict.fromkeys(names, 0.0)
    for seed in range(3):
        x = _input(takes_pixels, seed)
        expected = session.run(None, {session.get_inputs()[0].name: x})
        # OpenCV's blobs are float32 (uint8 pixels are fed as their float values, as camera code does).
        net.setInput(x.astype(np.float32))
        got = net.forward(names)
        for name, want, have in zip(names, expected, got):
            assert have.size == want.size, name
            worst[name] = max(worst[name], float(np.abs(have.reshape(want.shape) - want).max()))
    return worst


def test_opencv_version_is_the_one_checked():
    """Export's help names the OpenCV version these tests ran on; a new one is worth a re-check."""
    assert cv2.__version__ == OPENCV_CHECKED


# Each export takes 20-45 s on two busy cores: the default run keeps int8 (the one kind whose
# agreement depends on the CPU) and the fp32 decode export below; -m slow runs the rest.
@pytest.mark.parametrize(
    "kind", [pytest.param("fp32", marks=pytest.mark.slow), "int8", pytest.param("preprocess", marks=pytest.mark.slow)]
)
def test_heatmap_exports_match_onnx_runtime(kind: str, tiny_checkpoint: Path, tmp_path: Path):
    options = {
        "fp32": {},
        "int8": {"precision": "int8", "calibration_samples": 8},
        "preprocess": {"embedding": Embedding(preprocess=True)},
    }[kind]
    path = _export(tmp_path, tiny_checkpoint, kind, **options)
    worst = _compare(path, takes_pixels=kind == "preprocess")
    assert list(worst) == ["heatmaps"]
    assert worst["heatmaps"] < TOLERANCE[kind], worst


@pytest.mark.parametrize(
    "preprocess, keep_heatmaps",
    [
        (False, False),
        pytest.param(False, True, marks=pytest.mark.slow),
        pytest.param(True, False, marks=pytest.mark.slow),
    ],
)
def test_decode_exports_match_onnx_runtime(
    preprocess: bool, keep_heatmaps: bool, tiny_checkpoint: Path, tmp_path: Path
):
    """The embedded decode reads in OpenCV (no boolean ops; the row index exact under float Div)
    and gives ONNX Runtime's keypoints to the bit and its scores to float rounding."""
    embedding = Embedding(preprocess=preprocess, decode=True, keep_heatmaps=keep_heatmaps)
    path = _export(tmp_path, tiny_checkpoint, "decode", embedding=embedding)
    worst = _compare(path, takes_pixels=preprocess)
    assert list(worst)[:2] == [KEYPOINTS_OUTPUT_NAME, SCORES_OUTPUT_NAME]
    assert len(worst) == 2 + keep_heatmaps
    assert worst[KEYPOINTS_OUTPUT_NAME] == 0.0, worst
    assert worst[SCORES_OUTPUT_NAME] < 1e-5, worst


@pytest.mark.slow  # an fp16 export, 45 s on two busy cores
def test_fp16_export_is_not_read_by_opencv(tiny_checkpoint: Path, tmp_path: Path):
    """The limitation export's help states: OpenCV's DNN cannot build the float16 Conv."""
    path = _export(tmp_path, tiny_checkpoint, "fp16", precision="fp16")
    with pytest.raises(cv2.error, match="Conv"):
        cv2.dnn.readNetFromONNX(str(path))


def test_decode_nodes_give_the_codec_in_every_runtime(tmp_path: Path):
    """The decode subgraph alone (an Identity 'network'), on random maps with peaks forced onto
    every border and corner: ONNX Runtime, OpenVINO and OpenCV all return the codec's keypoints
    and scores exactly."""
    from onnx import TensorProto, helper, save

    from fpdctl.codec import HeatmapCodec
    from fpdctl.deploy.onnx_graph import append_decode

    side, joints = INPUT_SIZE // 4, 16
    maps = np.random.default_rng(5).standard_normal((2, joints, side, side)).astype(np.float32)
    for j, (y, x) in enumerate(
        [(0, 0), (0, side - 1), (side - 1, 0), (side - 1, side - 1), (0, 7), (9, 0), (side - 1, 3), (5, side - 1)]
    ):
        maps[:, j, y, x] = 10.0
    dims = [2, joints, side, side]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["heatmaps"])],
        "identity",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    append_decode(model, INPUT_SIZE)
    assert not {n.op_type for n in model.graph.node} & {"And", "Or", "Not", "Greater", "Less", "Equal", "Where"}
    path = tmp_path / "decode.onnx"
    save(model, str(path))
    expected = HeatmapCodec(INPUT_SIZE, side).decode(maps)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = {"onnxruntime": session.run(None, {"input": maps})}
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(maps)
    outputs["opencv"] = net.forward([KEYPOINTS_OUTPUT_NAME, SCORES_OUTPUT_NAME])
    try:  # the [openvino] extra; the two other runtimes are checked without it
        import openvino as ov
    except ImportError:
        ov = None
    if ov is not None:
        compiled = ov.Core().compile_model(str(path), "CPU")
        result = compiled([maps])
        outputs["openvino"] = [
            result[compiled.output(KEYPOINTS_OUTPUT_NAME)],
            result[compiled.output(SCORES_OUTPUT_NAME)],
        ]
    for runtime, (keypoints, scores) in outputs.items():
        np.testing.assert_array_equal(np.asarray(keypoints).reshape(expected[0].shape), expected[0], err_msg=runtime)
        np.testing.assert_array_equal(np.asarray(scores).reshape(expected[1].shape), expected[1], err_msg=runtime)
