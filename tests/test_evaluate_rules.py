"""eval's cross-option rules live in the core (issue 27.4): a Python caller of the evaluation
functions meets the refusals ``fpdctl eval`` gives, in its own parameter names."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpdctl.cli.app import main
from fpdctl.errors import UsageError


@pytest.mark.parametrize("threshold", [-1.0, 0.0, float("inf"), float("nan")])
def test_a_threshold_must_be_a_positive_number(threshold: float, capsys: pytest.CaptureFixture[str]) -> None:
    from fpdctl.evaluation import evaluate_checkpoint

    with pytest.raises(UsageError, match=rf"^`threshold` must be a positive number, got {threshold}$"):
        evaluate_checkpoint("hg1x16", "synthetic:length=2", input_size=64, device="cpu", threshold=threshold)
    args = ["eval", "hg1x16", "--data", "synthetic:length=2", "--input-size", "64", "--threshold", str(threshold)]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == f"error: --threshold must be a positive number, got {threshold}"


def test_a_deployed_model_meets_the_same_threshold_rule(tiny_checkpoint: Path) -> None:
    """The ONNX Runtime path of ``fpdctl.evaluate`` refuses what the PyTorch path refuses."""
    import fpdctl

    with pytest.raises(UsageError, match=r"^`threshold` must be a positive number, got -1$"):
        fpdctl.evaluate(str(tiny_checkpoint), "synthetic:length=2", backend="ort", threshold=-1)
