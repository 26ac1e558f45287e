"""A ``--data`` string is parsed once, at the edge, and the core passes the parsed
:class:`~fpdctl.data.kinds.DataSpec` on (issue 27.3): each parse checks PATH again, and before
this a training run parsed its data three times and every helper re-read the string.

The count is taken at the one string parser, ``fpdctl.data.kinds._parse_text``, wrapped so that
it still parses; nothing stands in for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fpdctl.data.kinds as kinds
from fpdctl.cli.app import main
from fpdctl.data.kinds import DataSpec, parse_data_spec


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = kinds._parse_text

    def counting(text: str) -> Any:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(kinds, "_parse_text", counting)
    return seen


def test_parse_returns_a_spec_as_it_is(parses: list[str]) -> None:
    spec = parse_data_spec("synthetic:length=4,seed=3")
    assert spec == DataSpec("synthetic", None, {"length": 4, "seed": 3})
    assert parse_data_spec(spec) is spec and str(spec) == "synthetic:length=4,seed=3"
    assert parses == ["synthetic:length=4,seed=3"]


def test_eval_parses_its_data_once(parses: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", "hg1x16", "--data", "synthetic:length=4", "--input-size", "64", "--device", "cpu"]
    assert main([*args, "--no-flip-test", "--format", "json"]) == 0
    assert parses == ["synthetic:length=4"]


def test_the_core_passes_a_parsed_spec_on(parses: list[str]) -> None:
    from fpdctl.evaluation import evaluate_checkpoint

    spec = DataSpec("synthetic", None, {"length": 4})
    result = evaluate_checkpoint("hg1x16", spec, input_size=64, device="cpu", flip_test=False)
    assert result.num_persons == 4
    assert parses == []


def test_a_training_run_parses_its_data_once(parses: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--data", "synthetic:length=8", "--input-size", "64", "--batch-size", "4", "--max-steps", "2"]
    args += ["--val-limit", "4", "--workers", "0", "--device", "cpu", "--precision", "fp32", "--out", str(out)]
    assert main(["train", "--model", "hg1x16", *args]) == 0
    assert parses == ["synthetic:length=8"]
