"""Fixtures of the deployment tests: one verified fp32 export of the shared tiny checkpoint
(``tests/conftest.py``), for the tests that only read it (an export takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import INPUT_SIZE


@pytest.fixture(scope="session")
def fp32_export(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path):
    """(ExportResult, path) of the default export: fp32, dynamic batch, final stack."""
    from fpdctl.deploy.export import export_onnx

    path = tmp_path_factory.mktemp("export") / "hg1x16.onnx"
    result = export_onnx(tiny_checkpoint, path, input_size=INPUT_SIZE)
    return result, path


@pytest.fixture(scope="session")
def embedded_export(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path):
    """(ExportResult, path) of an fp32 export with both --embed-preprocess and --embed-decode
    (uint8 BGR crops in, keypoints and scores out), verified."""
    from fpdctl.deploy.export import export_onnx
    from fpdctl.deploy.preprocess_decode import Embedding

    path = tmp_path_factory.mktemp("embedded") / "hg1x16_embedded.onnx"
    result = export_onnx(
        tiny_checkpoint,
        path,
        input_size=INPUT_SIZE,
        embedding=Embedding(preprocess=True, decode=True),
    )
    return result, path
