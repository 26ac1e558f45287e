"""kill -9 a distillation at many moments, then ``--resume`` (issue #7).

Each case runs the real ``fpdctl distill`` in a subprocess. A test-side launcher (written to a
temporary folder; product code holds no hooks) wraps one real function so that the process kills
itself at a precise moment: ``os.kill(os.getpid(), SIGKILL)``, or, for "half the bytes of a file
are on disk", a file-size limit that stops the real writer (torch.save's zip writer, safetensors'
Rust writer) exactly halfway. Three more cases kill the run from outside after seeded random
delays. After every kill the run directory must hold no corrupt checkpoint (every checkpoint file
present loads with fpdctl's own readers), and a plain ``fpdctl distill --resume RUN_DIR`` must
exit 0, reach step 12, and end with the very weights (bit for bit), best model, evaluation and
metrics of one uninterrupted run, leaving no temporary file behind.

The run: hg1x16 student and teacher, 64 px, 12 steps of 4 images; a checkpoint at steps 3, 6, 9
and 12 (``--save-every 3``); validation at steps 4 and 8 (``--eval-every 4``) plus the final
evaluation, on 8 persons in batches of 4, so every evaluation has two batches to be killed between.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from fpdctl.models.checkpoint import read_checkpoint
from fpdctl.training.state import load_state

TOTAL_STEPS = 12
TIMEOUT_S = 240

# The files whose content must match the uninterrupted run once the resumed run is done.
WEIGHT_FILES = ("last.safetensors", "best.safetensors")
# metrics.csv columns that must match (img_per_s is a wall-clock figure).
METRIC_COLUMNS = ("step", "epoch", "loss", "gt_loss", "kd_loss", "lr", "val_pckh")

# The test-side launcher: ``python launcher.py MOMENT FPDCTL_ARGS...`` installs the hook named
# MOMENT, then runs the real CLI. Exit code 3 means a hook found the process in an unexpected
# state (so the test fails instead of testing the wrong moment).
LAUNCHER = r"""
import os
import resource
import signal
import sys
from pathlib import Path

moment = sys.argv[1]
sys.argv = ["fpdctl", *sys.argv[2:]]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def wrong(message):
    print(f"hook {moment}: {message}", file=sys.stderr, flush=True)
    os._exit(3)


calls = {}


def count(key):
    calls[key] = calls.get(key, 0) + 1
    return calls[key]


if moment == "loader-started":
    # The training DataLoader's iterator exists: its worker process has been started.
    import torch.utils.data

    real_iter = torch.utils.data.DataLoader.__iter__

    def __iter__(self):
        iterator = real_iter(self)
        if self.num_workers < 1 or not getattr(iterator, "_workers", None):
            wrong("no DataLoader worker was started")
        die()

    torch.utils.data.DataLoader.__iter__ = __iter__

elif moment == "mid-step":
    # Step 5: the gradients are computed (after backward), optimizer.step() has not run.
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    def before_step(optimizer, args, kwargs):
        if count("step") == 5:
            grads = [p.grad for g in optimizer.param_groups for p in g["params"]]
            if not any(g is not None and bool(g.abs().sum() > 0) for g in grads):
                wrong("no gradient before optimizer.step")
            die()

    register_optimizer_step_pre_hook(before_step)

elif moment == "state-half-written":
    # The second state.pt save (step 6): torch.save's real writer stops after half the bytes
    # (a file-size limit makes its next write fail), then the process is killed.
    import fpdctl.training.state as state_module

    real_save = state_module.atomic_save

    def atomic_save(path, writer):
        if count("state") != 2:
            return real_save(path, writer)
        half = Path(path).stat().st_size // 2  # the previous state.pt: the same size

        def cut(tmp):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (half, resource.RLIM_INFINITY))
            try:
                writer(tmp)
            except Exception:
                die()
            wrong("the write did not stop at the size limit")

        return real_save(path, cut)

    state_module.atomic_save = atomic_save

elif moment == "weights-half-written":
    # The second last.safetensors save (step 6): the kernel kills the process (SIGXFSZ, as
    # abrupt as SIGKILL) inside safetensors' own write, after half the bytes.
    import fpdctl.models.checkpoint as checkpoint_module

    real_save = checkpoint_module.atomic_save

    def atomic_save(path, writer):
        if Path(path).name != "last.safetensors" or count("last") != 2:
            return real_save(path, writer)
        half = Path(path).stat().st_size // 2

        def cut(tmp):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_FSIZE, (half, resource.RLIM_INFINITY))
            writer(tmp)
            wrong("the write did not stop at the size limit")

        return real_save(path, cut)

    checkpoint_module.atomic_save = atomic_save

elif moment in ("state-before-rename", "between-files", "after-save"):
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        name = Path(dst).name
        if moment == "state-before-rename" and name == "state.pt" and count(name) == 2:
            if not Path(src).is_file() or Path(src).stat().st_size == 0:
                wrong("the temporary state file is not complete")
            die()  # step 6: the temporary state.pt is complete and fsynced, not yet renamed
        result = real_replace(src, dst, *args, **kwargs)
        if moment == "between-files" and name == "state.pt" and count(name) == 2:
            die()  # step 6: state.pt renamed, last.safetensors not yet written
        if moment == "after-save" and name == "last.safetensors" and count(name) == 3:
            die()  # step 9: the whole checkpoint is saved
        return result

    os.replace = replace

elif moment in ("mid-eval", "mid-final-eval"):
    # Between the two batches of the step-8 validation, or of the final evaluation.
    import fpdctl.evaluation as evaluate_module

    real_predict = evaluate_module.predict_dataset
    wanted = 2 if moment == "mid-eval" else 3

    def predict_dataset(*args, **kwargs):
        if count("eval") == wanted:
            def progress(event):
                if event.done < event.total:
                    die()
                wrong("the evaluation had a single batch")

            kwargs["progress"] = progress
        return real_predict(*args, **kwargs)

    evaluate_module.predict_dataset = predict_dataset

else:
    wrong("unknown moment")

from fpdctl.cli.app import run

run()
"""


@dataclass(frozen=True)
class Moment:
    """A kill point: its launcher hook name, the text for the record, and what it leaves."""

    hook: str
    tried: str
    state_step: int | None  # the step of state.pt after the kill (None: no state.pt)
    signal: int = signal.SIGKILL
    extra: tuple[str, ...] = ()  # options added to the killed run only


MOMENTS: tuple[Moment, ...] = (
    Moment(
        "loader-started",
        "killed before the first step, DataLoader worker just started (--workers 1)",
        None,
        extra=("--workers", "1"),
    ),
    Moment("mid-step", "killed mid-step 5: after backward, before optimizer.step", 3),
    Moment("state-half-written", "killed writing state.pt at step 6, half its bytes on disk", 3),
    Moment(
        "weights-half-written",
        "killed inside safetensors' write of last.safetensors at step 6, half its bytes on disk (SIGXFSZ)",
        6,
        signal=signal.SIGXFSZ,
    ),
    Moment("state-before-rename", "killed at step 6 with the temporary state.pt complete, before os.replace", 3),
    Moment("between-files", "killed at step 6 after state.pt was renamed, before last.safetensors", 6),
    Moment("mid-eval", "killed between the 2 batches of the step-8 validation", 6),
    Moment("mid-final-eval", "killed between the 2 batches of the final evaluation", 12),
    Moment("after-save", "killed right after the step-9 checkpoint was saved", 9),
)

# Kills from outside, at seeded random delays after the run directory appeared.
RANDOM_SEEDS: tuple[int, ...] = (11, 22, 33)


@dataclass
class Reference:
    """The uninterrupted run and what every killed-and-resumed run must end with."""

    root: Path
    launcher: Path
    common: list[str]
    weights: dict[str, dict[str, torch.Tensor]]
    eval_json: dict[str, Any]
    metrics: list[list[str]]
    run_seconds: float  # from config.json appearing to the process exit


def _env() -> dict[str, str]:
    # One thread in every process: the same arithmetic in the reference and the resumed runs.
    return {**os.environ, "OMP_NUM_THREADS": "1", "FPDCTL_DEBUG": ""}


def _metrics(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    index = [header.index(c) for c in METRIC_COLUMNS]
    return [[row.split(",")[i] for i in index] for row in lines[1:]]


def _eval_summary(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {"final": data["final"], "best": data["best"], "persons": data["persons"]}


def _temporaries(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.startswith(".") and "tmp" in p.name)


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a run in its own process group, its stderr to ``log``.

    Not a pipe: a DataLoader worker that outlived its killed parent would hold the pipe open.
    """
    with open(log, "wb") as handle:
        return subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=handle, start_new_session=True)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def _wait_for_run(victim: subprocess.Popen[bytes], log: Path) -> tuple[int, str]:
    """Wait for the run to end; assert that no process it started (a DataLoader worker)
    outlives it. Returns its exit status and stderr."""
    returncode = victim.wait(timeout=TIMEOUT_S)
    deadline = time.monotonic() + 3.0
    while _group_members(victim.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = _group_members(victim.pid)
    if survivors:
        os.killpg(victim.pid, signal.SIGKILL)  # our own run's process group, by its id
    assert not survivors, f"processes of the killed run still alive 3 s later: {survivors}"
    return returncode, log.read_text(errors="replace")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Reference:
    root = tmp_path_factory.mktemp("kill")
    teacher = tiny_checkpoint
    config = root / "tiny.toml"
    config.write_text("eval_batch_size = 4\n", encoding="utf-8")  # 8 persons: 2 eval batches
    launcher = root / "launcher.py"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    common = [
        "distill",
        "--teacher",
        str(teacher),
        "--student",
        "hg1x16",
        "--config",
        str(config),
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
        "--max-steps",
        str(TOTAL_STEPS),
        "--eval-every",
        "4",
        "--save-every",
        "3",
    ]
    run = root / "reference"
    proc = _start([sys.executable, "-m", "fpdctl", *common, "--out", str(run)], root / "reference.log")
    deadline = time.monotonic() + TIMEOUT_S
    while not (run / "config.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    returncode, err = _wait_for_run(proc, root / "reference.log")
    assert returncode == 0, err
    return Reference(
        root=root,
        launcher=launcher,
        common=common,
        weights={name: read_checkpoint(run / name)[0] for name in WEIGHT_FILES},
        eval_json=_eval_summary(run / "eval.json"),
        metrics=_metrics(run / "metrics.csv"),
        run_seconds=time.monotonic() - started,
    )


def _check_killed_run(run: Path) -> dict[str, Any]:
    """Every checkpoint file present loads with fpdctl's readers; return what the run holds."""
    facts: dict[str, Any] = {"temporaries": _temporaries(run)}
    assert (run / "config.json").is_file(), "the run directory has no config.json"
    json.loads((run / "config.json").read_text(encoding="utf-8"))
    state = load_state(run / "state.pt") if (run / "state.pt").exists() else None
    facts["state_step"] = None if state is None else state.step
    for name in WEIGHT_FILES:
        if (run / name).exists():
            tensors, meta = read_checkpoint(run / name)
            facts[name] = int(meta["fpdctl.train.step"])
            if name == "last.safetensors":
                # state.pt is written first: the weights never run ahead of the resume point,
                # and at the same step they are the state's own weights.
                assert state is not None and facts[name] <= state.step
                if facts[name] == state.step:
                    assert all(torch.equal(tensors[k], state.model[k]) for k in tensors)
    if (run / "eval.json").exists():
        json.loads((run / "eval.json").read_text(encoding="utf-8"))
    return facts


def _resume_and_compare(run: Path, ref: Reference, killed_at: int | None) -> str:
    """Resume with a plain ``fpdctl distill --resume``; assert it ends as the uninterrupted run."""
    done = subprocess.run(
        [sys.executable, "-m", "fpdctl", "distill", "--resume", str(run)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    if killed_at:
        assert f"resuming at step {killed_at} " in done.stdout
    else:
        assert "resuming at step" not in done.stdout
    assert load_state(run / "state.pt").step == TOTAL_STEPS
    for name in WEIGHT_FILES:
        got = read_checkpoint(run / name)[0]
        want = ref.weights[name]
        assert got.keys() == want.keys(), name
        different = [k for k in want if not torch.equal(got[k], want[k])]
        assert not different, f"{name}: {len(different)} tensors differ, e.g. {different[0]}"
    assert _eval_summary(run / "eval.json") == ref.eval_json
    assert _metrics(run / "metrics.csv") == ref.metrics
    leftovers = _temporaries(run)
    assert not leftovers, f"temporary files left after resume: {leftovers}"
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in run.iterdir()}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes  # as a plain open() makes them
    start = f"step {killed_at}" if killed_at else "step 0 (no checkpoint yet)"
    return (
        f"resume exit 0 from {start} to step {TOTAL_STEPS}; last/best weights, eval.json and "
        "metrics.csv identical to the uninterrupted run; no temporary files"
    )


def _describe_files(facts: dict[str, Any]) -> str:
    parts = [f"state.pt step {facts['state_step']}" if facts["state_step"] is not None else "no state.pt"]
    for name in WEIGHT_FILES:
        if name in facts:
            parts.append(f"{name} step {facts[name]}")
    parts.append(f"leftover temporaries: {len(facts['temporaries'])}")
    return "after the kill every checkpoint loads: " + ", ".join(parts)


# 35 to 38 s a case in a full run on two busy cores, over the 20 s of a slow test: the default
# suite kills once, mid-step (the commonest kill), and ``-m slow`` adds the other moments (one per
# kind of fix: no checkpoint yet, a half-written torch and safetensors file, mid-evaluation...)
# and the random ones. tests/reliability/test_full_disk.py covers half-written files by default.
DEFAULT_MOMENTS = {"mid-step"}


def _params(values: tuple[Any, ...], ids: list[str], default_ids: set[str]) -> list[Any]:
    """One pytest.param per value; those not in ``default_ids`` are marked slow."""
    return [
        pytest.param(value, id=name, marks=() if name in default_ids else pytest.mark.slow)
        for value, name in zip(values, ids)
    ]


@pytest.mark.parametrize("moment", _params(MOMENTS, [m.hook for m in MOMENTS], DEFAULT_MOMENTS))
def test_kill_at_a_precise_moment_then_resume(
    reference: Reference, tmp_path: Path, reliability: Any, moment: Moment
) -> None:
    reliability.describe(
        "kill -9",
        f"fpdctl distill (12 steps) {moment.tried}; then fpdctl distill --resume RUN",
        "no corrupt or missing checkpoint; resume exits 0 at step 12 with the uninterrupted run's weights bit for bit",
    )
    run = tmp_path / "run"
    args = [sys.executable, str(reference.launcher), moment.hook, *reference.common, *moment.extra, "--out", str(run)]
    victim = _start(args, tmp_path / "victim.log")
    returncode, err = _wait_for_run(victim, tmp_path / "victim.log")
    assert returncode == -moment.signal, f"exit {returncode}: {err}"
    reliability.observe(
        f"killed by {signal.Signals(moment.signal).name}; no process of the run "
        f"{'(its DataLoader worker) ' if moment.extra else ''}outlived it"
    )

    facts = _check_killed_run(run)
    assert facts["state_step"] == moment.state_step
    if moment.hook == "state-half-written":
        # A real half-written temporary beside the intact previous state.pt.
        (partial,) = [run / n for n in facts["temporaries"] if n.startswith(".state.pt.")]
        assert partial.stat().st_size == (run / "state.pt").stat().st_size // 2
    if moment.hook == "weights-half-written":
        assert facts["last.safetensors"] == 3
        assert any(n.startswith(".tmp") for n in facts["temporaries"]), facts["temporaries"]
    if moment.hook == "state-before-rename":
        assert any(n.startswith(".state.pt.") for n in facts["temporaries"]), facts["temporaries"]
    if moment.hook == "between-files":
        assert facts["last.safetensors"] == 3
    reliability.observe(_describe_files(facts))

    reliability.observe(_resume_and_compare(run, reference, facts["state_step"]))


@pytest.mark.parametrize("seed", _params(RANDOM_SEEDS, [str(s) for s in RANDOM_SEEDS], set()))
def test_kill_at_a_random_moment_then_resume(reference: Reference, tmp_path: Path, reliability: Any, seed: int) -> None:
    delay = random.Random(seed).uniform(0.05, 0.85) * reference.run_seconds
    reliability.describe(
        "kill -9",
        f"fpdctl distill (12 steps) killed from outside (SIGKILL) at a seeded random time "
        f"(seed {seed}: {delay / reference.run_seconds:.0%} of the run); then --resume RUN",
        "no corrupt or missing checkpoint; resume exits 0 at step 12 with the uninterrupted run's weights bit for bit",
    )
    run = tmp_path / "run"
    victim = _start([sys.executable, "-m", "fpdctl", *reference.common, "--out", str(run)], tmp_path / "victim.log")
    deadline = time.monotonic() + TIMEOUT_S
    while not (run / "config.json").exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    returncode, err = _wait_for_run(victim, tmp_path / "victim.log")
    if returncode == 0:
        reliability.observe("the run finished before the kill landed")
    else:
        assert returncode == -signal.SIGKILL, f"exit {returncode}: {err}"
        reliability.observe(f"killed by SIGKILL {delay:.2f}s after the run directory appeared")

    facts = _check_killed_run(run)
    reliability.observe(_describe_files(facts))
    reliability.observe(_resume_and_compare(run, reference, facts["state_step"]))
