"""The backend table and how bench selects rows from it."""

import pytest

from fpdctl.deploy.backends import (
    BACKENDS,
    EXPORT_PRECISIONS,
    FP32_MIN_AGREEMENT,
    export_backend,
    get_backend,
    parse_precisions,
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
    with pytest.raises(UsageError, match=r"--precision must be one of fp32, fp16, int8, got 'bf16'"):
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
        "torch", "torch-cl", "torch-bf16", "ort", "ort-fp16", "ort-int8",
    ]
    assert "torch-fp16" in names(select_backends("torch", "all", device_type="cuda"))
    # An ONNX file runs in ONNX Runtime, in the precision it was exported in.
    assert names(select_backends("onnx", "all", onnx_precision="fp16")) == ["ort-fp16"]


def test_precision_filter_and_explicit_names():
    assert names(select_backends("torch", "onnxruntime", precisions=("fp32", "int8"))) == ["ort", "ort-int8"]
    assert names(select_backends("torch", "ort,ort-int8")) == ["ort", "ort-int8"]


def test_bad_backend_names():
    with pytest.raises(UsageError, match=r"unknown backend 'tensorrt'; expected auto, torch, onnxruntime, all"):
        select_backends("torch", "tensorrt")
    with pytest.raises(UsageError, match="backend torch-cl runs a checkpoint; an .onnx file runs in onnxruntime"):
        select_backends("onnx", "torch-cl")
    with pytest.raises(UsageError, match="backend torch runs a checkpoint"):
        select_backends("onnx", "torch")
    assert get_backend("ort-int8").precision == "int8"


def test_parse_precisions():
    assert parse_precisions(None) is None
    assert parse_precisions("fp32, INT8") == ("fp32", "int8")
    with pytest.raises(UsageError, match="--precision must be a comma-separated list"):
        parse_precisions("fp8")
