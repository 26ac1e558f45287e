"""The reliability suite's record: every case says what it tried and what fpdctl did.

A test takes the ``reliability`` fixture and calls ``reliability.tried(area, what, expected)``
at its start and ``reliability.observed(text)`` once it has seen fpdctl's reaction (for example
the error line and the exit code). With ``--reliability-report PATH`` the session writes every
case with its outcome (passed / failed / skipped) to PATH as JSON;
``scripts/reliability_report.py`` turns that into the table in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class ReliabilityCase:
    """One row of the reliability table."""

    area: str = ""
    tried: str = ""
    expected: str = ""
    observed: list[str] = field(default_factory=list)

    def describe(self, area: str, tried: str, expected: str) -> None:
        """Say what the case tries (``area``: e.g. "kill -9", "bad checkpoint", "bad option")."""
        self.area, self.tried, self.expected = area, tried, expected

    def observe(self, text: str) -> None:
        """Record what fpdctl did (one short line; call more than once for several facts)."""
        self.observed.append(" ".join(str(text).split()))


_CASES: dict[str, ReliabilityCase] = {}
_OUTCOMES: dict[str, str] = {}


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> ReliabilityCase:
    case = ReliabilityCase()
    _CASES[request.node.nodeid] = case
    return case


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _CASES and report.when != "setup":
        return
    # The worst phase wins: a failure in setup, call or teardown fails the case.
    if report.failed:
        _OUTCOMES[report.nodeid] = "failed"
    elif report.skipped:
        _OUTCOMES.setdefault(report.nodeid, "skipped")
    elif report.when == "call":
        _OUTCOMES.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--reliability-report")
    if not path:
        return
    rows: list[dict[str, Any]] = []
    for nodeid, case in _CASES.items():
        row = asdict(case)
        row["test"] = nodeid
        row["outcome"] = _OUTCOMES.get(nodeid, "not run")
        rows.append(row)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(rows, handle, indent=1)
        handle.write("\n")
    os.replace(tmp, target)
