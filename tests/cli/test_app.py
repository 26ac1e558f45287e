"""``fpdctl.cli.app.main``: process-wide settings it makes before any command imports torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fpdctl.cli.app import OPENMP_SPIN_COUNT, main


@pytest.fixture
def clean_openmp_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    return monkeypatch


def test_openmp_spinning_is_bounded_by_default(clean_openmp_env: pytest.MonkeyPatch) -> None:
    assert main(["--version"]) == 0
    assert os.environ["GOMP_SPINCOUNT"] == OPENMP_SPIN_COUNT == "1000"
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize("name, value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "300000")])
def test_the_users_openmp_setting_wins(clean_openmp_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_openmp_env.setenv(name, value)
    assert main(["--version"]) == 0
    assert os.environ[name] == value
    other = "GOMP_SPINCOUNT" if name == "OMP_WAIT_POLICY" else "OMP_WAIT_POLICY"
    assert other not in os.environ


def test_the_spin_count_is_set_before_torch_loads() -> None:
    # libgomp reads GOMP_SPINCOUNT once, when torch loads it: the CLI must not import torch before
    # main() has run.
    code = "import sys, fpdctl.cli.app as app; loaded = 'torch' in sys.modules; app.main(['--version']); print(loaded)"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("debug", ["", "1"])
def test_debug_adds_the_traceback_and_keeps_the_line_and_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, debug: str
) -> None:
    monkeypatch.setenv("FPDCTL_DEBUG", debug)
    code = main(["eval", "missing.safetensors", "--data", "synthetic"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1] == "error: checkpoint not found: missing.safetensors"
    assert ("Traceback (most recent call last)" in err) == bool(debug)
