"""Deployment: ONNX export (fp32 / fp16 / int8, verified), benchmarking and prediction.

Modules:
    backends: the one table of runtimes and precisions that drives export and bench.
    metadata: the fpdctl facts stored in every exported ONNX file.
    runtime: runners (eager / compiled PyTorch, ONNX Runtime) and the one factory from a table row
        to a runner, shared by everything below.
    openvino: the OpenVINO runner (optional extra), on the same ONNX files.
    export: checkpoint -> ONNX, with verification.
    onnx_graph: the surgery export does on the exported graph.
    preprocess_decode: pre-processing and decoding inside the graph (uint8 crops in, keypoints out), checked
        against the Python pipeline.
    verify: export vs PyTorch, and fp32 vs reduced-precision accuracy.
    quantize: fp16 conversion and static int8 quantisation.
    bench, bench_cases: latency, throughput and memory per model x backend x batch.
    recommend: accuracy per bench row and the fastest row within the accuracy budget.
    predict: keypoints (and drawings, by fpdctl.viz) for images, folders and videos.

The public names are imported lazily so that ``import fpdctl.deploy`` (and the CLI's help) does
not load torch or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BACKENDS": "fpdctl.deploy.backends",
    "Backend": "fpdctl.deploy.backends",
    "select_backends": "fpdctl.deploy.backends",
    "OnnxModelInfo": "fpdctl.deploy.metadata",
    "read_info": "fpdctl.deploy.metadata",
    "ExportResult": "fpdctl.deploy.export",
    "export_onnx": "fpdctl.deploy.export",
    "VerificationReport": "fpdctl.deploy.verify",
    "AccuracyComparison": "fpdctl.deploy.verify",
    "BenchRow": "fpdctl.deploy.bench_report",
    "BenchResult": "fpdctl.deploy.bench",
    "benchmark": "fpdctl.deploy.bench",
    "PredictResult": "fpdctl.deploy.persons",
    "predict": "fpdctl.deploy.predict",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fpdctl.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
