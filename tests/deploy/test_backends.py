"""The backend table and how bench selects rows from it."""

import pytest

from fpdctl.deploy.backends import (
    BACKENDS,
    EXPORT_PRECISIONS,
    FP32_MIN_AGREEMENT,
    export_backend,
    get_backend,
    parse_precisions,
    pick_backend,
    select_backends,
)
from fpdctl.errors import UsageError


def names(rows):
    return [b.name for b in rows]


def test_table_drives_export_precisions():
    assert EXPORT_PRECISIONS == ("fp32", "fp16", "int8")
    assert all(b.runtime == "onnxruntime" for b in BACKENDS if b.exportable)
    assert export_backend("fp32").min_agreement == FP32_MIN_AGREEMENT == 0.999
    assert export_backend("int8").calibration is True
    assert len({b.name for b in BACKENDS}) == len(BACKENDS)
    assert [b.name for b in BACKENDS if b.reference] == ["torch"]


def test_export_backend_refuses_other_precisions():
    with pytest.raises(UsageError, match=r"`precision` must be one of fp32, fp16, int8, got 'bf16'"):
        export_backend("bf16")


def test_auto_picks_the_models_own_runtime():
    assert names(select_backends("torch", "auto")) == ["torch"]
    assert names(select_backends("onnx", "auto")) == ["ort"]
    assert names(select_backends("onnx", "auto", onnx_precision="int8")) == ["ort-int8"]


def test_torch_group_keeps_the_eager_reference_beside_other_rows():
    assert names(select_backends("torch", "torch", precisions=("bf16",))) == ["torch", "torch-bf16"]
    assert names(select_backends("torch", "torch-cl")) == ["torch", "torch-cl"]


def test_all_on_cpu_skips_cuda_only_rows():
    assert names(select_backends("torch", "all")) == [
        "torch",
        "torch-cl",
        "torch-bf16",
        "torch-bf16-compile",
        "ort",
        "ort-fp16",
        "ort-int8",
        "ov",
        "ov-bf16",
        "ov-int8",
    ]
    assert "torch-fp16" in names(select_backends("torch", "all", device_type="cuda"))
    # An ONNX file runs in ONNX Runtime, in the precision it was exported in.
    assert names(select_backends("onnx", "all", onnx_precision="fp16")) == ["ort-fp16"]


def test_precision_filter_and_explicit_names():
    assert names(select_backends("torch", "onnxruntime", precisions=("fp32", "int8"))) == ["ort", "ort-int8"]
    assert names(select_backends("torch", "ort,ort-int8")) == ["ort", "ort-int8"]


def test_bad_backend_names():
    with pytest.raises(
        UsageError, match=r"unknown backend 'tensorrt'; expected auto, torch, onnxruntime, openvino, all"
    ):
        select_backends("torch", "tensorrt")
    with pytest.raises(
        UsageError, match="backend torch-cl runs a checkpoint; an .onnx file runs in onnxruntime or openvino"
    ):
        select_backends("onnx", "torch-cl")
    with pytest.raises(UsageError, match="backend torch runs a checkpoint"):
        select_backends("onnx", "torch")
    assert get_backend("ort-int8").precision == "int8"


def test_parse_precisions():
    assert parse_precisions(None) is None
    assert parse_precisions("fp32, INT8") == ("fp32", "int8")
    with pytest.raises(UsageError, match="`precision` must be a comma-separated list"):
        parse_precisions("fp8")


def test_openvino_rows_run_exported_files():
    ov, bf16, int8 = (get_backend(n) for n in ("ov", "ov-bf16", "ov-int8"))
    assert (ov.runtime, ov.precision, ov.file_precision) == ("openvino", "fp32", "fp32")
    assert (bf16.precision, bf16.file_precision) == ("bf16", "fp32")  # a hint on the fp32 file
    assert (int8.file_precision, int8.calibration) == ("int8", True)
    assert all(b.devices == ("cpu",) and b.needs == ("openvino",) and b.extra == "openvino" for b in (ov, bf16, int8))
    assert get_backend("torch").file_precision is None and get_backend("ort-fp16").file_precision == "fp16"
    # An .onnx file: the OpenVINO rows that read its precision.
    assert names(select_backends("onnx", "openvino")) == ["ov"]
    assert names(select_backends("onnx", "openvino", precisions=("fp32", "bf16"))) == ["ov", "ov-bf16"]
    assert names(select_backends("onnx", "all", onnx_precision="int8")) == ["ort-int8", "ov-int8"]
    assert names(select_backends("onnx", "ov-bf16,ort")) == ["ort", "ov-bf16"]
    # A checkpoint: exported on the fly, one file per precision.
    assert names(select_backends("torch", "openvino", precisions=("fp32", "bf16", "int8"))) == [
        "ov",
        "ov-bf16",
        "ov-int8",
    ]
    assert names(select_backends("torch", "openvino", device_type="cuda")) == []


def test_compiled_rows_only_by_name_or_all():
    assert names(select_backends("torch", "torch", precisions=("bf16",))) == ["torch", "torch-bf16"]
    assert names(select_backends("torch", "torch-bf16-compile")) == ["torch", "torch-bf16-compile"]
    assert get_backend("torch-bf16-compile").compiled and get_backend("torch-bf16-compile").channels_last


def test_unavailable_rows_say_why_in_one_line(monkeypatch):
    import importlib.util
    import shutil

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real_find_spec(name, *a)
    )
    assert get_backend("ov").unavailable() == "needs openvino, which is not installed (pip install 'fpdctl[openvino]')"
    assert get_backend("ort").unavailable() is None
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert get_backend("torch-bf16-compile").unavailable() == (
        "torch.compile on CPU needs a C++ compiler (g++, clang++, c++); none is on PATH"
    )
    assert get_backend("torch-bf16").unavailable() is None


def test_pick_backend_for_eval_and_predict():
    assert pick_backend("torch").name == "torch"
    assert pick_backend("torch", "torch-bf16").name == "torch-bf16"
    assert pick_backend("onnx").name == "ort"
    assert pick_backend("onnx", "openvino", onnx_precision="int8").name == "ov-int8"
    assert pick_backend("onnx", "ov-bf16").name == "ov-bf16"
    with pytest.raises(UsageError, match="^backend ort runs an exported .onnx file; export the checkpoint first"):
        pick_backend("torch", "onnxruntime")
    with pytest.raises(UsageError, match="^`backend` must pick one backend here; 'all' selects ort, ov, ov-bf16$"):
        pick_backend("onnx", "all")
    with pytest.raises(UsageError, match="^`backend` openvino has no row that runs this model on cuda$"):
        pick_backend("onnx", "openvino", device_type="cuda")


def test_make_runner_refuses_what_a_row_cannot_run(fp32_export):
    from fpdctl.deploy.runtime import make_runner, open_model

    _, path = fp32_export
    with pytest.raises(UsageError, match=r"^backend torch runs a checkpoint; .*hg1x16.onnx is an .onnx file$"):
        make_runner(open_model(str(path)), get_backend("torch"))
    with pytest.raises(UsageError, match="^backend ort runs an exported .onnx file; hg1x16 is a checkpoint$"):
        make_runner(open_model("hg1x16"), get_backend("ort"))


@pytest.mark.slow
def test_compiled_bf16_row_matches_eager_bf16(tiny_net):
    """torch.compile on CPU builds C++ kernels: minutes on a small machine (hence slow)."""
    import numpy as np

    from fpdctl.deploy.runtime import TorchRunner

    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    eager = TorchRunner(tiny_net, get_backend("torch-bf16"))(x)
    compiled = TorchRunner(tiny_net, get_backend("torch-bf16-compile"))(x)
    assert np.abs(compiled - eager).max() < 0.05 * np.abs(eager).max()
