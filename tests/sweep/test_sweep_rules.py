"""prune-sweep's rules live in the core (issue 27.4): ``prune_sweep`` and ``sweep_summary`` refuse
what the command refuses, with the parameters named, and the command shows the same refusals
in its flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpdctl.cli.app import main
from fpdctl.errors import InputError, UsageError
from fpdctl.sweep.api import prune_sweep, sweep_summary


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (dict(budget_gmacs=1.0, budget_latency_ms=5.0), "give `budget_gmacs` or `budget_latency_ms`, not both"),
        (dict(budget_gmacs=-1.0), "`budget_gmacs` must be positive, got -1"),
        (dict(budget_latency_ms=0.0), "`budget_latency_ms` must be positive, got 0"),
        (dict(max_drop=float("nan")), "`max_drop` must be a non-negative number, got nan"),
        (dict(max_drop=-1.0), "`max_drop` must be a non-negative number, got -1"),
    ],
)
def test_the_recommendation_rule_is_checked_by_both_entry_points(
    rule: dict, message: str, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    with pytest.raises(UsageError) as info:
        prune_sweep(tiny_checkpoint, tmp_path / "sweep", **rule)
    assert str(info.value) == message
    with pytest.raises(UsageError) as info:
        sweep_summary(tmp_path, **rule)
    assert str(info.value) == message
    assert not (tmp_path / "sweep").exists()


def test_grid_and_fine_tune_rules(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "sweep"
    with pytest.raises(UsageError, match=r"^`budget_latency_ms` needs latency measurements; measure `latency`$"):
        prune_sweep(tiny_checkpoint, out, budget_latency_ms=5.0, latency=False)
    with pytest.raises(UsageError, match=r"^`stacks` values must be at least 1, got 0$"):
        prune_sweep(tiny_checkpoint, out, stacks=[0])
    with pytest.raises(UsageError, match=r"^`channels` values must be at least 4, got 2$"):
        prune_sweep(tiny_checkpoint, out, channels=[2])
    with pytest.raises(UsageError, match=r"^`inits` must be scratch or teacher, got 'both'$"):
        prune_sweep(tiny_checkpoint, out, stacks=[1], channels=[8], inits=["both"])
    with pytest.raises(UsageError, match=r"^give `epochs` or `max_steps`, not both$"):
        prune_sweep(tiny_checkpoint, out, stacks=[1], channels=[8], fine_tune={"epochs": 1, "max_steps": 2})
    assert not out.exists()


def test_a_summary_needs_finished_configs(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        sweep_summary(tmp_path / "missing")
    with pytest.raises(UsageError, match=r"holds no finished configs$"):
        sweep_summary(tmp_path)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--budget-macs", "1", "--budget-latency", "5"], "error: give --budget-macs or --budget-latency, not both"),
        (
            ["--budget-latency", "5", "--no-latency"],
            "error: --budget-latency needs latency measurements; measure --latency",
        ),
        (["--stacks", "0"], "error: --stacks values must be at least 1, got 0"),
        (
            ["--stacks", "1", "--channels", "8", "--max-steps", "2", "--epochs", "1"],
            "error: give --epochs or --max-steps, not both",
        ),
    ],
)
def test_the_command_shows_the_core_rules_in_its_flags(
    args: list[str], line: str, tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["prune-sweep", "--teacher", str(tiny_checkpoint), "--out", str(tmp_path / "s"), *args])
    assert (code, capsys.readouterr().err.strip()) == (2, line)
