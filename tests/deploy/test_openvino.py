"""OpenVINO as a backend: it runs fpdctl's ONNX files directly, at the precision hint its row
names, in bench, eval and predict (skipped where the optional extra is not installed)."""

import json

import numpy as np
import pytest

from fpdctl.cli.app import main
from fpdctl.deploy.backends import get_backend
from fpdctl.deploy.bench import benchmark
from fpdctl.deploy.verify import argmax_pixels
from tests.conftest import INPUT_SIZE

pytest.importorskip("openvino")

from fpdctl.deploy.openvino import OpenVinoRunner, bf16_unavailable  # noqa: E402
from fpdctl.deploy.runtime import OrtRunner  # noqa: E402


def _inputs(n, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)


def test_fp32_matches_onnxruntime_and_sets_the_f32_hint(fp32_export):
    _, path = fp32_export
    runner = OpenVinoRunner(path, get_backend("ov"), threads=1)
    # On a bf16 CPU OpenVINO's default would be bf16: the fp32 row says f32 explicitly.
    assert str(runner.compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")
    x = _inputs(3)
    got = runner(x)
    assert runner.batch is None and got.shape == (3, 16, INPUT_SIZE // 4, INPUT_SIZE // 4)
    np.testing.assert_allclose(got, OrtRunner(path)(x), rtol=1e-4, atol=1e-5)


def test_bf16_hint_where_the_cpu_has_it(fp32_export):
    if bf16_unavailable() is not None:
        pytest.skip(bf16_unavailable())
    _, path = fp32_export
    runner = OpenVinoRunner(path, get_backend("ov-bf16"), threads=1)
    assert "bf" in str(runner.compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
    x = _inputs(4, seed=2)
    reference = OrtRunner(path)(x)
    got = runner(x)
    error = np.abs(got - reference).max() / np.abs(reference).max()
    assert 1e-4 < error < 0.1  # bf16 rounding: clearly not fp32, clearly the same network
    assert (argmax_pixels(got) == argmax_pixels(reference)).mean() > 0.5


def test_embedded_graph_runs_in_openvino(embedded_export):
    _, path = embedded_export
    crops = np.random.default_rng(3).integers(0, 256, (3, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    got = OpenVinoRunner(path, get_backend("ov")).run_graph(crops)
    want = OrtRunner(path).run_graph(crops)
    assert sorted(got) == ["keypoints", "scores"]
    assert np.linalg.norm(got["keypoints"] - want["keypoints"], axis=-1).max() <= 0.5
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-4)


def test_bench_eval_and_predict_run_it(capsys, tmp_path, fp32_export, lspet400):
    _, path = fp32_export
    result = benchmark([str(path)], backend="openvino", precisions=("fp32", "bf16"), iters=2, warmup=1, threads=1)
    rows = {r.backend: r for r in result.rows}
    expected = ["ov"] + (["ov-bf16"] if bf16_unavailable() is None else [])
    assert list(rows) == expected and all(r.runtime == "openvino" and r.timed == "model" for r in rows.values())
    assert result.environment["openvino"]

    def eval_json(*args):
        code = main(["eval", str(path), "--data", "synthetic:length=8", "--no-flip-test", "--format", "json", *args])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return json.loads(captured.out)

    ort_report, ov_report = eval_json(), eval_json("--backend", "openvino")
    assert ov_report["pckh"] == ort_report["pckh"] and ov_report["per_joint"] == ort_report["per_joint"]

    image = lspet400 / "images" / "im00001.jpg"
    points = []
    for backend in ("auto", "ov"):
        out = tmp_path / backend
        assert main(["predict", str(path), str(image), "--out", str(out), "--no-draw", "--backend", backend]) == 0
        keypoints = json.loads((out / "keypoints.json").read_text())["results"][0]["persons"][0]["keypoints"]
        points.append(np.array([[k["x"], k["y"]] for k in keypoints]))
    capsys.readouterr()
    assert np.abs(points[0] - points[1]).max() < 0.5
