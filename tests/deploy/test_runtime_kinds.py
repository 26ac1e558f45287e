"""The table of runtimes (:data:`fpdctl.deploy.backends.RUNTIME_KINDS`) makes every runner."""

from __future__ import annotations

import numpy as np
import pytest

from fpdctl.deploy.backends import BACKEND_GROUPS, BACKENDS, ONNX_RUNTIMES, RUNTIME_KINDS, get_backend
from fpdctl.deploy.runtime import OrtRunner, Runner, TorchRunner, make_runner, open_model
from fpdctl.errors import UsageError


def test_every_backend_row_has_a_runtime_and_every_runtime_a_runner_class() -> None:
    assert {b.runtime for b in BACKENDS} == set(RUNTIME_KINDS)
    assert ONNX_RUNTIMES == ("onnxruntime", "openvino")
    assert BACKEND_GROUPS == ("auto", "torch", "onnxruntime", "openvino", "all")
    assert RUNTIME_KINDS["torch"].runner_class() is TorchRunner
    assert RUNTIME_KINDS["onnxruntime"].runner_class() is OrtRunner
    # The OpenVINO runner's module imports without the openvino package (it loads it on use).
    assert issubclass(RUNTIME_KINDS["openvino"].runner_class(), Runner)


def test_make_runner_builds_the_row_runtime(tmp_path) -> None:
    from fpdctl.deploy.export import export_onnx

    onnx_file = tmp_path / "m.onnx"
    export_onnx("hg1x16", onnx_file, input_size=64, verify=False, exporter="torchscript")
    torch_runner = make_runner(open_model("hg1x16"), get_backend("torch"))
    ort_runner = make_runner(open_model(str(onnx_file)), get_backend("ort"))
    assert type(torch_runner) is TorchRunner and type(ort_runner) is OrtRunner
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    assert ort_runner(images).shape == torch_runner(images).shape == (2, 16, 16, 16)


def test_make_runner_refuses_the_wrong_kind_of_model(tmp_path) -> None:
    with pytest.raises(UsageError, match=r"^backend ort runs an exported \.onnx file; hg1x16 is a checkpoint$"):
        make_runner(open_model("hg1x16"), get_backend("ort"))
