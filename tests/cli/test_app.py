"""``fpdctl.cli.app.main``: process-wide settings it makes before any command imports torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fpdctl.cli.app import OPENMP_WAIT_POLICY, main


def test_openmp_threads_sleep_unless_the_user_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(["--version"]) == 0
    assert os.environ["OMP_WAIT_POLICY"] == OPENMP_WAIT_POLICY == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert main(["--version"]) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_policy_is_set_before_torch_loads() -> None:
    # libgomp reads OMP_WAIT_POLICY once, when torch loads it: the CLI must not import torch
    # before main() has run.
    code = ("import sys, fpdctl.cli.app as app; loaded = 'torch' in sys.modules; "
            "app.main(['--version']); print(loaded)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
