"""``fpdctl train`` / ``fpdctl distill`` from the command line: errors, config files, kill + resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fpdctl.cli.app import main
from fpdctl.models.checkpoint import read_checkpoint, save_model
from fpdctl.models.factory import create_model

TINY = [
    "--input-size",
    "64",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--val-limit",
    "8",
    "--precision",
    "fp32",
    "--log-every",
    "1",
]


@pytest.fixture(scope="module")
def teacher_14_joints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("teacher14") / "teacher14.safetensors"
    save_model(create_model("hg1x16j14"), path)
    return path


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--alpha", "1.5"], "error: alpha must be in [0, 1], got 1.5"),
        (["--alpha", "-0.5"], "error: alpha must be in [0, 1], got -0.5"),
        (["--lr", "0"], "error: lr must be positive, got 0"),
        (["--lr", "-0.01"], "error: lr must be positive, got -0.01"),
        (["--batch-size", "0"], "error: batch size must be positive, got 0"),
        (["--batch-size", "-4"], "error: batch size must be positive, got -4"),
    ],
)
def test_bad_option_exits_2_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "run"
    code = main(["distill", "--teacher", str(tiny_checkpoint), "--student", "hg1x16", *TINY, *extra, "--out", str(out)])
    assert code == 2
    assert _error(capsys) == message
    assert not out.exists()


def test_missing_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    missing = tmp_path / "nope.safetensors"
    assert main(["distill", "--teacher", str(missing), "--student", "hg1x16", *TINY, "--out", str(out)]) == 2
    assert _error(capsys) == f"error: teacher checkpoint not found: {missing}"
    assert not out.exists()
    assert main(["distill", "--student", "hg1x16", *TINY, "--out", str(out)]) == 2
    assert _error(capsys) == "error: distill needs --teacher CKPT"
    assert not out.exists()


def test_teacher_student_joint_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], teacher_14_joints: Path
) -> None:
    out = tmp_path / "run"
    code = main(["distill", "--teacher", str(teacher_14_joints), "--student", "hg1x16", *TINY, "--out", str(out)])
    assert code == 2
    assert _error(capsys) == (
        "error: the teacher predicts 14 joints but the student hg1x16 predicts 16; FPD needs the same joints"
    )
    assert not out.exists()


def test_existing_run_directory_needs_resume_or_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["train", "--model", "hg1x16", *TINY, "--max-steps", "1", "--out", str(out)]) == 2
    assert _error(capsys) == (
        f"error: run directory {out} already exists; pass --resume {out} to continue it or --overwrite to start again"
    )
    # --overwrite never deletes a folder that is not a run directory.
    assert main(["train", "--model", "hg1x16", *TINY, "--max-steps", "1", "--overwrite", "--out", str(out)]) == 2
    assert "is not an fpdctl run directory" in _error(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_config_file_is_overridden_by_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        "model: hg1x16\ninput-size: 64\nbatch_size: 2\nmax_steps: 3\nworkers: 0\nval_limit: 4\n"
        "precision: fp32\nlr: 0.01\nschedule: cosine\neval_every: 0\nlog_every: 1\n"
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--lr", "0.002", "--max-steps", "2", "--out", str(out)]) == 0
    options = json.loads((out / "config.json").read_text())["options"]
    assert options["lr"] == 0.002 and options["max_steps"] == 2  # flags win
    assert options["batch_size"] == 2 and options["schedule"] == "cosine"  # the file fills the rest
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert float(rows[1].split(",")[5]) == pytest.approx(0.002)  # cosine starts at the base rate
    printed = capsys.readouterr().out
    assert "final evaluation (PCKh" in printed and "Mean" in printed

    bad = tmp_path / "bad.toml"
    bad.write_text('model = "hg1x16"\nlearning-rate = 0.1\n')
    out2 = tmp_path / "run2"
    assert main(["train", "--config", str(bad), "--out", str(out2)]) == 2
    assert _error(capsys).startswith(f"error: unknown option 'learning-rate' in {bad}; valid options: ")
    assert not out2.exists()


def test_nan_loss_exits_1_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    poisoned = create_model("hg1x16")
    with torch.no_grad():
        poisoned.conv1.weight[0, 0, 0, 0] = math.nan
    init = tmp_path / "nan.safetensors"
    save_model(poisoned, init)
    out = tmp_path / "run"
    assert main(["train", "--model", "hg1x16", "--init", str(init), *TINY, "--max-steps", "3", "--out", str(out)]) == 1
    assert _error(capsys) == (
        "error: training diverged: the loss is nan at step 1; no checkpoint had been written yet; try a lower --lr"
    )
    assert not (out / "state.pt").exists() and not (out / "last.safetensors").exists()


def _fpdctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "fpdctl", *args]


def _env() -> dict[str, str]:
    # One thread in every process: the same arithmetic as the in-process tests, fast when loaded.
    return {**os.environ, "OMP_NUM_THREADS": "1", "FPDCTL_DEBUG": ""}


def _last_step(metrics: Path) -> int:
    if not metrics.is_file():
        return 0
    lines = [line for line in metrics.read_text().splitlines()[1:] if line.count(",") >= 7]
    return int(lines[-1].split(",")[0]) if lines else 0


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path: Path, tiny_checkpoint: Path) -> None:
    common = [
        "distill",
        "--teacher",
        str(tiny_checkpoint),
        "--student",
        "hg1x16",
        *TINY,
        "--max-steps",
        "12",
        "--eval-every",
        "0",
        "--save-every",
        "1",
    ]
    full = subprocess.Popen(
        _fpdctl(*common, "--out", str(tmp_path / "full")), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    cut = tmp_path / "cut"
    victim = subprocess.Popen(
        _fpdctl(*common, "--out", str(cut)), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while _last_step(cut / "metrics.csv") < 5 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(cut / "state.pt", weights_only=True)["step"]
    assert 1 <= killed_at < 12

    resumed = subprocess.run(
        _fpdctl("distill", "--resume", str(cut)), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {killed_at}" in resumed.stdout
    assert full.wait(timeout=300) == 0, full.stderr.read() if full.stderr else ""

    a = read_checkpoint(tmp_path / "full" / "last.safetensors")[0]
    b = read_checkpoint(cut / "last.safetensors")[0]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    full_rows = (tmp_path / "full" / "metrics.csv").read_text().splitlines()
    cut_rows = (cut / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[:6] for r in full_rows] == [r.split(",")[:6] for r in cut_rows]
    assert not list(cut.glob(".*.tmp"))


def test_overwrite_and_resume_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train", "--model", "hg1x16", *TINY, "--max-steps", "2", "--eval-every", "0"]
    assert main([*args, "--out", str(out)]) == 0
    first = read_checkpoint(out / "last.safetensors")[0]
    (out / "eval.json").write_text("stale")
    # --overwrite replaces the run files and trains again from scratch (same seed, same result).
    assert main([*args, "--overwrite", "--out", str(out)]) == 0
    again = read_checkpoint(out / "last.safetensors")[0]
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert json.loads((out / "eval.json").read_text())["final"]["step"] == 2
    capsys.readouterr()
    # Resuming may not change the arithmetic of the run...
    assert main(["train", "--resume", str(out), "--lr", "0.1"]) == 2
    assert _error(capsys) == (
        "error: --lr cannot change when resuming (the run used 0.00025); start a new run with --out instead"
    )
    assert main(["distill", "--resume", str(out)]) == 2
    assert _error(capsys) == f"error: {out} is a `fpdctl train` run; resume it with that command"
    # ...but may extend it.
    assert main(["train", "--resume", str(out), "--max-steps", "3"]) == 0
    assert json.loads((out / "eval.json").read_text())["final"]["step"] == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--resume", str(empty)]) == 2
    assert _error(capsys) == f"error: {empty} is not an fpdctl run directory (no config.json)"


def test_resume_rewrites_a_last_checkpoint_behind_the_resume_point(tmp_path: Path) -> None:
    """A kill between state.pt (written first) and last.safetensors leaves the user copy a step
    behind; the resumed run, with no step left to train, writes it again (a seeded kill in the
    reliability suite found this)."""
    from safetensors.torch import save_file

    from fpdctl.training.run_dir import STEP_KEY, weights_step
    from fpdctl.training.state import load_state

    out = tmp_path / "run"
    assert main(["train", "--model", "hg1x16", *TINY, "--max-steps", "2", "--eval-every", "0", "--out", str(out)]) == 0
    done, meta = read_checkpoint(out / "last.safetensors")
    behind = {k: torch.zeros_like(v) for k, v in done.items()}  # what the killed run left: older weights
    save_file(behind, str(out / "last.safetensors"), metadata={**meta, STEP_KEY: "1"})
    assert weights_step(out / "last.safetensors") == 1
    assert main(["train", "--resume", str(out)]) == 0
    again, meta = read_checkpoint(out / "last.safetensors")
    state = load_state(out / "state.pt")
    assert meta[STEP_KEY] == "2" and state.step == 2
    assert all(torch.equal(again[k], done[k]) for k in done)
