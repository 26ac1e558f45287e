"""Issue #7, bad checkpoints: every command that reads a checkpoint refuses a bad one cleanly.

Kinds of bad file, built from real checkpoints in every format fpdctl reads (native
``.safetensors``, pytorch-pose ``.pth.tar`` in zip and legacy serialization, the official FPD
``checkpoint.pth``): corrupt (bytes overwritten in the middle, or plain random bytes), truncated
(half, or only the first 16 bytes), the wrong architecture (another student size where the size
must match, foreign ResNet-like weights, a spec header that contradicts the tensors), empty (0
bytes, or a directory) and a pickle that would run code.

Each case runs the real command in-process and checks: exit 2, exactly one ``error:`` line on
stderr naming the file, no traceback, the pickle's payload never ran (its marker file is absent)
and nothing under the case's folder changed: the outputs pre-created there (sentinel reports, an
ONNX file, a run directory with ``last.safetensors``...) keep their bytes and mtimes, and no file
(temporary files included) appeared. Also: `train`/`distill --resume` with a bad ``state.pt``
or a damaged teacher, bad ``.onnx`` files for bench and predict, the code pickle through the
console script in a fresh interpreter, and two controls showing the marker and snapshot checks
can fail. Known limit, recorded as such: bytes overwritten inside a tensor of a legacy
(pre-1.6, no checksum) file load as other weights.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fpdctl.cli.app import main
from fpdctl.models.checkpoint import SPEC_KEY, save_model
from fpdctl.models.factory import create_model

AREA = "bad checkpoint"
SENTINEL = b"sentinel: fpdctl must not replace this file\n"
# Tiny runs: 1-stack 16-channel hourglass, 64 px input, a handful of synthetic persons.
DATA = "synthetic:length=16"
TINY_TRAIN = [
    "--input-size",
    "64",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--val-limit",
    "4",
    "--precision",
    "fp32",
    "--log-every",
    "1",
    "--eval-every",
    "0",
    "--data",
    DATA,
    "--device",
    "cpu",
    "--max-steps",
    "1",
]


# ------------------------------------------------------------------------------- real files
class CodePayload:
    """Unpickling this calls ``func(*args)``: the code a malicious checkpoint would run."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def _resnet_like_state_dict() -> dict[str, torch.Tensor]:
    """Weights of another family (a narrow ResNet): no hourglass can take them."""
    g = torch.Generator().manual_seed(3)
    return {
        "conv1.weight": torch.randn(8, 3, 7, 7, generator=g),
        "bn1.weight": torch.ones(8),
        "bn1.bias": torch.zeros(8),
        "bn1.running_mean": torch.zeros(8),
        "bn1.running_var": torch.ones(8),
        "layer1.0.conv1.weight": torch.randn(8, 8, 1, 1, generator=g),
        "layer1.0.conv2.weight": torch.randn(8, 8, 3, 3, generator=g),
        "fc.weight": torch.randn(10, 8, generator=g),
        "fc.bias": torch.zeros(10),
    }


FORMATS = ("safetensors", "pth.tar-zip", "pth.tar-legacy", "fpd-checkpoint.pth")
FILE_NAMES = {
    "safetensors": "model.safetensors",
    "pth.tar-zip": "checkpoint.pth.tar",
    "pth.tar-legacy": "model_best.pth.tar",
    "fpd-checkpoint.pth": "checkpoint.pth",
}


def write_checkpoint(fmt: str, state_dict: dict[str, Any], path: Path, spec_json: str | None = None) -> Path:
    """``state_dict`` in one of the four layouts fpdctl reads (the official tools' layouts)."""
    if fmt == "safetensors":
        tensors = {k: v.contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(path), metadata={SPEC_KEY: spec_json} if spec_json else None)
    elif fmt in ("pth.tar-zip", "pth.tar-legacy"):
        payload = {
            "epoch": 12,
            "arch": "hg",
            "best_acc": torch.tensor(0.5),
            "state_dict": {f"module.{k}": v for k, v in state_dict.items()},
            "optimizer": {"state": {}, "param_groups": [{"lr": 2.5e-4, "params": [0]}]},
        }
        torch.save(payload, path, _use_new_zipfile_serialization=fmt == "pth.tar-zip")
    elif fmt == "fpd-checkpoint.pth":
        payload = {
            "epoch": 3,
            "model": "get_pose_net",
            "perf": 0.5,
            "optimizer": {},
            "state_dict": {f"module.{k}": v for k, v in state_dict.items()},
            "best_state_dict": state_dict,
        }
        torch.save(payload, path)
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(fmt)
    return path


@dataclass
class Assets:
    """Real checkpoints and runs, made once per module; cases copy what they change."""

    root: Path
    good: dict[str, Path]  # format -> a good hg1x16 checkpoint
    good_hg1x32: Path  # a good native hg1x32 (another student size)
    train_run: Path  # `fpdctl train` run of hg1x16 (config.json, state.pt, last.safetensors ...)
    distill_run: Path  # `fpdctl distill` run: teacher good["safetensors"] (hg1x16), student hg1x8
    image: Path  # a 96x80 RGB PNG for predict


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    root = tmp_path_factory.mktemp("assets")
    torch.manual_seed(0)
    net = create_model("hg1x16")
    good = {"safetensors": save_model(net, root / "good.safetensors")}
    for fmt in FORMATS[1:]:
        good[fmt] = write_checkpoint(fmt, net.state_dict(), root / f"good-{FILE_NAMES[fmt]}")
    good_hg1x32 = save_model(create_model("hg1x32"), root / "hg1x32.safetensors")

    runs = root / "runs"
    assert main(["train", "--model", "hg1x16", *TINY_TRAIN, "--out", str(runs / "train")]) == 0
    assert (
        main(
            [
                "distill",
                "--teacher",
                str(good["safetensors"]),
                "--student",
                "hg1x8",
                *TINY_TRAIN,
                "--out",
                str(runs / "distill"),
            ]
        )
        == 0
    )
    for run in ("train", "distill"):
        assert {"config.json", "state.pt", "last.safetensors"} <= {p.name for p in (runs / run).iterdir()}

    import cv2

    rng = np.random.default_rng(0)
    image = root / "person.png"
    assert cv2.imwrite(str(image), rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))
    return Assets(root, good, good_hg1x32, runs / "train", runs / "distill", image)


# ------------------------------------------------------------------------------- bad files
def _overwrite_middle(data: bytes, count: int = 256, seed: int = 7) -> bytes:
    """``count`` random bytes written over the middle of ``data``: the header stays valid."""
    rng = random.Random(seed)
    out = bytearray(data)
    start = len(data) // 2 - count // 2
    for i in range(start, start + count):
        out[i] = (out[i] + rng.randrange(1, 256)) % 256  # every byte really changes
    return bytes(out)


def _random_bytes(size: int = 4096, seed: int = 11) -> bytes:
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class Kind:
    """One kind of bad checkpoint: how to make it, and what the error line must say."""

    name: str
    label: str  # for the reliability table
    pattern: str  # regex the error line must match (besides naming the file)


KINDS = {
    "corrupt": Kind("corrupt", "256 bytes overwritten in the middle", r"corrupt"),
    "random": Kind("random", "4 KiB of random bytes", r"corrupt|not a (valid|plain-data|PyTorch)"),
    "truncated-half": Kind("truncated-half", "cut at half its size", r"truncated"),
    "truncated-16B": Kind("truncated-16B", "cut to its first 16 bytes", r"truncated"),
    "foreign": Kind("foreign", "ResNet-like weights (no hourglass)", r"not a Stacked Hourglass checkpoint"),
    "empty": Kind("empty", "0-byte file", r"is empty \(0 bytes\)"),
    "directory": Kind("directory", "a directory in its place", r"is not a file"),
    "code": Kind("code", "pickle whose __reduce__ runs code", r"would run code|never runs code"),
}


def make_bad(kind: str, fmt: str, assets: Assets, folder: Path, marker: Path) -> Path:
    """A bad checkpoint of ``kind`` in format ``fmt`` under ``folder`` (named as users name them)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAMES[fmt]
    good = assets.good[fmt].read_bytes()
    if kind == "corrupt":
        path.write_bytes(_overwrite_middle(good))
    elif kind == "random":
        path.write_bytes(_random_bytes())
    elif kind == "truncated-half":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "truncated-16B":
        path.write_bytes(good[:16])
    elif kind == "foreign":
        write_checkpoint(fmt, _resnet_like_state_dict(), path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "code":
        if fmt == "safetensors":
            raise AssertionError("safetensors holds no pickle")
        # Two different calls, so neither a shell nor a file open is the only thing refused.
        if fmt == "pth.tar-legacy":
            payload = CodePayload(builtins.open, str(marker), "w")
        else:
            payload = CodePayload(os.system, f"touch {marker}")
        layout = {"epoch": 1, "arch": "hg", "state_dict": payload}
        if fmt == "fpd-checkpoint.pth":
            layout = {"epoch": 1, "perf": 0.5, "state_dict": payload, "best_state_dict": payload}
        torch.save(layout, path, _use_new_zipfile_serialization=fmt != "pth.tar-legacy")
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


# ------------------------------------------------------------------------------- checks
def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every file and folder under ``root`` (hidden temporaries included): hash, size, mtime."""
    state: dict[str, tuple[Any, ...]] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_dir():
            state[rel] = ("dir",)
        else:
            st = p.stat()
            state[rel] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns)
    return state


def assert_unchanged(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> None:
    appeared = sorted(set(after) - set(before))
    vanished = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not appeared and not vanished and not changed, (
        f"files appeared {appeared}, vanished {vanished}, changed {changed}"
    )


def check_refusal(code: int, out: str, err: str, names: Path, pattern: str) -> str:
    """Exit 2, exactly one ``error:`` line (the last line of stderr) naming ``names``, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert "Traceback" not in out + err
    assert len(errors) == 1, err
    line = errors[0]
    assert lines[-1] == line, err
    # Any other stderr line is a progress note ("loading ... ..."), never a warning.
    assert all(other.endswith(" ...") for other in lines[:-1]), err
    assert str(names) in line, line
    assert re.search(pattern, line), line
    assert code == 2, (code, line)
    return line


def observe(reliability: Any, code: int, err: str) -> None:
    """Record the exit code and the last stderr line (the error) in the reliability table."""
    last = err.strip().splitlines()[-1] if err.strip() else "(no stderr)"
    reliability.observe(f"exit {code}: {last}")


def sentinel(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SENTINEL)
    return path


# ------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class Command:
    """A command that reads a checkpoint, with the outputs it would write pre-created."""

    name: str
    tried: str  # the command line, CKPT standing for the bad file
    argv: Callable[[Path, Path, Assets], list[str]]  # (checkpoint, case folder, assets) -> argv
    prepare: Callable[[Path, Assets], None]  # pre-create the outputs in the case folder


def _one_file(name: str) -> Callable[[Path, Assets], None]:
    """Pre-create the single output file ``name`` with sentinel bytes."""

    def prepare(case: Path, assets: Assets) -> None:
        sentinel(case / name)

    return prepare


def _run_dir(case: Path, assets: Assets) -> None:
    """An existing run directory (a real one, plus a sentinel) that --overwrite would replace."""
    shutil.copytree(assets.train_run, case / "run")
    sentinel(case / "run" / "notes.txt")


def _predict_out(case: Path, assets: Assets) -> None:
    """An earlier predict's output (its manifest lists the drawing), which --overwrite would replace."""
    sentinel(case / "pred" / "person.png")
    (case / "pred" / "keypoints.json").write_text('{"written": ["person.png"], "sentinel": true}\n')


def _sweep_out(case: Path, assets: Assets) -> None:
    sentinel(case / "sweep" / "summary.json")
    sentinel(case / "sweep" / "notes.txt")


def _eval_out(case: Path, assets: Assets) -> None:
    sentinel(case / "report.json")
    sentinel(case / "preds.npy")


COMMANDS = {
    "eval": Command(
        "eval",
        "eval CKPT --data synthetic --save-predictions P -o R",
        lambda c, d, a: [
            "eval",
            str(c),
            "--data",
            DATA,
            "--input-size",
            "64",
            "--format",
            "json",
            "-o",
            str(d / "report.json"),
            "--save-predictions",
            str(d / "preds.npy"),
        ],
        _eval_out,
    ),
    "export": Command(
        "export",
        "export CKPT -o model.onnx",
        lambda c, d, a: ["export", str(c), "-o", str(d / "model.onnx"), "--input-size", "64"],
        _one_file("model.onnx"),
    ),
    "export-int8": Command(
        "export-int8",
        "export CKPT --precision int8 -o model.onnx",
        lambda c, d, a: [
            "export",
            str(c),
            "-o",
            str(d / "model.onnx"),
            "--input-size",
            "64",
            "--precision",
            "int8",
            "--calibration-data",
            DATA,
            "--calibration-samples",
            "4",
            "--validation-samples",
            "0",
        ],
        _one_file("model.onnx"),
    ),
    "bench": Command(
        "bench",
        "bench CKPT -o bench.txt",
        lambda c, d, a: [
            "bench",
            str(c),
            "--input-size",
            "64",
            "--iters",
            "1",
            "--warmup",
            "0",
            "-o",
            str(d / "bench.txt"),
        ],
        _one_file("bench.txt"),
    ),
    "predict": Command(
        "predict",
        "predict CKPT image.png --out DIR",
        lambda c, d, a: [
            "predict",
            str(c),
            str(a.image),
            "--out",
            str(d / "pred"),
            "--input-size",
            "64",
            "--overwrite",
        ],
        _predict_out,
    ),
    "profile": Command(
        "profile",
        "profile CKPT -o profile.txt",
        lambda c, d, a: ["profile", str(c), "--input-size", "64", "-o", str(d / "profile.txt")],
        _one_file("profile.txt"),
    ),
    "distill-teacher": Command(
        "distill-teacher",
        "distill --teacher CKPT --out RUN --overwrite",
        lambda c, d, a: [
            "distill",
            "--teacher",
            str(c),
            "--student",
            "hg1x16",
            *TINY_TRAIN,
            "--out",
            str(d / "run"),
            "--overwrite",
        ],
        _run_dir,
    ),
    "distill-student-init": Command(
        "distill-student-init",
        "distill --student-init CKPT --out RUN --overwrite",
        lambda c, d, a: [
            "distill",
            "--teacher",
            str(a.good["safetensors"]),
            "--student",
            "hg1x16",
            "--student-init",
            str(c),
            *TINY_TRAIN,
            "--out",
            str(d / "run"),
            "--overwrite",
        ],
        _run_dir,
    ),
    "train-init": Command(
        "train-init",
        "train --init CKPT --out RUN --overwrite",
        lambda c, d, a: [
            "train",
            "--model",
            "hg1x16",
            "--init",
            str(c),
            *TINY_TRAIN,
            "--out",
            str(d / "run"),
            "--overwrite",
        ],
        _run_dir,
    ),
    "prune": Command(
        "prune",
        "prune --teacher CKPT --to hg1x8 -o student.safetensors",
        lambda c, d, a: [
            "prune",
            "--teacher",
            str(c),
            "--to",
            "hg1x8",
            "--input-size",
            "64",
            "-o",
            str(d / "student.safetensors"),
        ],
        _one_file("student.safetensors"),
    ),
    "prune-sweep": Command(
        "prune-sweep",
        "prune-sweep --teacher CKPT --out SWEEP",
        lambda c, d, a: [
            "prune-sweep",
            "--teacher",
            str(c),
            "--stacks",
            "1",
            "--channels",
            "8",
            "--max-steps",
            "1",
            "--data",
            DATA,
            "--input-size",
            "64",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--no-latency",
            "--out",
            str(d / "sweep"),
        ],
        _sweep_out,
    ),
}

# Which bad file each command meets: every kind, each in a format where it means something
# (corrupt zip and corrupt native, the legacy and the zip code pickle ...). The full
# kind x format grid runs through `eval` in test_every_format below.
COMMAND_KINDS = [
    ("corrupt", "pth.tar-zip"),
    ("corrupt", "safetensors"),
    ("random", "pth.tar-zip"),
    ("truncated-half", "fpd-checkpoint.pth"),
    ("truncated-16B", "safetensors"),
    ("foreign", "pth.tar-legacy"),
    ("empty", "safetensors"),
    ("directory", "pth.tar-zip"),
    ("code", "pth.tar-zip"),
    ("code", "pth.tar-legacy"),
]
COMMAND_CASES = [
    pytest.param(cmd, kind, fmt, id=f"{cmd}-{kind}-{fmt}")
    for cmd in COMMANDS
    if cmd != "export-int8"
    for kind, fmt in COMMAND_KINDS
] + [
    pytest.param("export-int8", kind, fmt, id=f"export-int8-{kind}-{fmt}")
    for kind, fmt in (("corrupt", "pth.tar-zip"), ("code", "pth.tar-zip"))
]


def _run_case(
    reliability: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    assets: Assets,
    command: Command,
    kind: Kind,
    fmt: str,
) -> None:
    reliability.describe(
        AREA,
        f"fpdctl {command.tried.replace('CKPT', f'<{fmt} {kind.label}>')}",
        "exit 2, one 'error:' line naming the file, no traceback, no code run, outputs untouched",
    )
    marker = tmp_path.parent / f"{tmp_path.name}-PWNED"
    monkeypatch.chdir(tmp_path)  # a stray relative write would land in the snapshot
    bad = make_bad(kind.name, fmt, assets, tmp_path / "ckpt", marker)
    case = tmp_path / "case"
    case.mkdir()
    command.prepare(case, assets)
    before = snapshot(tmp_path)
    capfd.readouterr()
    code = main(command.argv(bad, case, assets))
    out, err = capfd.readouterr()
    observe(reliability, code, err)
    check_refusal(code, out, err, bad, kind.pattern)
    assert not marker.exists(), "the pickle's payload ran"
    assert_unchanged(before, snapshot(tmp_path))


@pytest.mark.parametrize(("command", "kind", "fmt"), COMMAND_CASES)
def test_command_refuses_bad_checkpoint(
    reliability: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    assets: Assets,
    command: str,
    kind: str,
    fmt: str,
) -> None:
    _run_case(reliability, capfd, monkeypatch, tmp_path, assets, COMMANDS[command], KINDS[kind], fmt)


# ------------------------------------------------------------------------------- --resume
RUNS = {"train": "train_run", "distill": "distill_run"}
STUDENTS = {"train": "hg1x16", "distill": "hg1x8"}
STATE_KINDS = {
    "corrupt": ("256 bytes overwritten in the middle", r"corrupt"),
    "random": ("4 KiB of random bytes", r"corrupt|not a (plain-data|PyTorch)"),
    "truncated-half": ("cut at half its size", r"truncated"),
    "truncated-16B": ("cut to its first 16 bytes", r"truncated"),
    "empty": ("0-byte file", r"is empty \(0 bytes\)"),
    "directory": ("a directory in its place", r"is not a file"),
    "code": ("pickle whose __reduce__ runs code", r"would run code"),
    "model-checkpoint": ("a model checkpoint (pytorch-pose .pth.tar) copied over it", r"not an fpdctl training state"),
    "other-size": ("the state.pt of a run of another student size", r"does not fit"),
}


def make_bad_state(kind: str, run: str, state: Path, assets: Assets, marker: Path) -> None:
    """Replace the run's ``state.pt`` (the resume point) with a bad one of ``kind``."""
    good = state.read_bytes()
    state.unlink()
    if kind == "corrupt":
        state.write_bytes(_overwrite_middle(good))
    elif kind == "random":
        state.write_bytes(_random_bytes())
    elif kind == "truncated-half":
        state.write_bytes(good[: len(good) // 2])
    elif kind == "truncated-16B":
        state.write_bytes(good[:16])
    elif kind == "empty":
        state.write_bytes(b"")
    elif kind == "directory":
        state.mkdir()
    elif kind == "code":
        torch.save(
            {
                "format": "fpdctl-train-state",
                "version": 1,
                "step": 1,
                "model": CodePayload(os.system, f"touch {marker}"),
            },
            state,
        )
    elif kind == "model-checkpoint":
        shutil.copyfile(assets.good["pth.tar-zip"], state)
    elif kind == "other-size":
        other = getattr(assets, RUNS["distill" if run == "train" else "train"])
        shutil.copyfile(other / "state.pt", state)
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.mark.parametrize("run", list(RUNS))
@pytest.mark.parametrize("kind", list(STATE_KINDS))
def test_resume_refuses_bad_state(
    reliability: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    assets: Assets,
    run: str,
    kind: str,
) -> None:
    label, pattern = STATE_KINDS[kind]
    reliability.describe(
        AREA,
        f"fpdctl {run} --resume RUN, RUN/state.pt = {label}",
        "exit 2, one 'error:' line naming state.pt, no traceback, no code run, run directory untouched",
    )
    marker = tmp_path.parent / f"{tmp_path.name}-PWNED"
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    shutil.copytree(getattr(assets, RUNS[run]), run_dir)
    make_bad_state(kind, run, run_dir / "state.pt", assets, marker)
    before = snapshot(tmp_path)
    capfd.readouterr()
    code = main([run, "--resume", str(run_dir)])
    out, err = capfd.readouterr()
    observe(reliability, code, err)
    check_refusal(code, out, err, run_dir / "state.pt", pattern)
    assert not marker.exists(), "the pickle's payload ran"
    assert_unchanged(before, snapshot(tmp_path))


# ------------------------------------------------------------------------------- every format
FORMAT_CASES = [
    pytest.param(kind, fmt, id=f"{kind}-{fmt}")
    for kind in ("corrupt", "random", "truncated-half", "truncated-16B", "foreign", "empty", "code")
    for fmt in FORMATS
    # safetensors holds no pickle; the legacy format has no checksum (test_legacy_corruption_...);
    # the pairs of COMMAND_KINDS already ran through eval.
    if not (kind == "code" and fmt == "safetensors")
    and not (kind == "corrupt" and fmt == "pth.tar-legacy")
    and (kind, fmt) not in COMMAND_KINDS
]


@pytest.mark.parametrize(("kind", "fmt"), FORMAT_CASES)
def test_every_format(
    reliability: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    assets: Assets,
    kind: str,
    fmt: str,
) -> None:
    """Every kind of damage in every format fpdctl reads, through `fpdctl eval` (model mode)."""
    _run_case(reliability, capfd, monkeypatch, tmp_path, assets, COMMANDS["eval"], KINDS[kind], fmt)


def test_legacy_corruption_inside_a_tensor_is_undetectable(reliability: Any, tmp_path: Path, assets: Assets) -> None:
    """Known limit: the legacy (pre-1.6) serialization stores raw tensor bytes with no checksum,
    so bytes overwritten inside a tensor load as other weights. The zip format (CRC-32 per
    member) and fpdctl's own .safetensors (fpdctl.crc32) are checked; see test_every_format."""
    from fpdctl.models.factory import create_model

    reliability.describe(
        AREA,
        "create_model(<pth.tar-legacy 256 bytes overwritten inside a tensor>)",
        "known limit: loads (the legacy format has no checksum); the weights differ",
    )
    bad = tmp_path / "model_best.pth.tar"
    good_sd = create_model(assets.good["pth.tar-legacy"]).state_dict()
    # Damage the middle of the largest tensor's raw bytes (the middle of the file can fall on a
    # storage's length field, which the loader does notice).
    data = assets.good["pth.tar-legacy"].read_bytes()
    largest = max(good_sd.values(), key=lambda t: t.numel()).contiguous().numpy().tobytes()
    at = data.find(largest)
    assert at > 0, "the largest tensor's bytes are not stored verbatim"
    middle = at + len(largest) // 2 - 128
    bad.write_bytes(data[:middle] + _overwrite_middle(data[middle : middle + 256]) + data[middle + 256 :])
    bad_sd = create_model(bad).state_dict()
    differ = [k for k in good_sd if not torch.equal(good_sd[k], bad_sd[k])]
    reliability.observe(f"loads; {len(differ)} tensor(s) differ from the undamaged file")
    assert differ


# ------------------------------------------------------------------------------- wrong architecture
def _mislabelled(assets: Assets, path: Path) -> Path:
    """hg1x32 tensors under an `fpdctl.spec` header that says hg1x16."""
    from fpdctl.models.checkpoint import read_checkpoint

    tensors, _ = read_checkpoint(assets.good_hg1x32)
    spec = create_model("hg1x16").spec.to_json()
    return write_checkpoint("safetensors", tensors, path, spec_json=spec)


def _bad_spec_header(assets: Assets, path: Path) -> Path:
    """hg1x16 tensors with an `fpdctl.spec` header that is not a spec."""
    from fpdctl.models.checkpoint import read_checkpoint

    tensors, _ = read_checkpoint(assets.good["safetensors"])
    return write_checkpoint("safetensors", tensors, path, spec_json='{"stacks": "many"}')


WRONG_ARCH = [
    # (id, command, what the file is, how to make it, argv from (file, case, assets), the pattern)
    (
        "distill-student-init-hg1x32",
        "distill-student-init",
        "hg1x32 (the student is hg1x16)",
        lambda a, p: Path(shutil.copyfile(a.good_hg1x32, p)),
        r"does not fit hg1x16: tensor 'conv1.weight' has shape \(8, 3, 7, 7\), expected \(4, 3, 7, 7\)",
    ),
    (
        "train-init-hg1x32-pth.tar",
        "train-init",
        "pytorch-pose hg1x32 (the model is hg1x16)",
        lambda a, p: write_checkpoint("pth.tar-zip", create_model("hg1x32").state_dict(), p),
        r"does not fit hg1x16: tensor 'conv1.weight' has shape \(8, 3, 7, 7\), expected \(4, 3, 7, 7\)",
    ),
    ("eval-mislabelled", "eval", "spec header hg1x16 over hg1x32 tensors", _mislabelled, r"does not fit hg1x16"),
    ("export-mislabelled", "export", "spec header hg1x16 over hg1x32 tensors", _mislabelled, r"does not fit hg1x16"),
    ("profile-mislabelled", "profile", "spec header hg1x16 over hg1x32 tensors", _mislabelled, r"does not fit hg1x16"),
    (
        "prune-sweep-mislabelled",
        "prune-sweep",
        "spec header hg1x16 over hg1x32 tensors",
        _mislabelled,
        r"does not fit hg1x16",
    ),
    (
        "eval-bad-spec-header",
        "eval",
        "an fpdctl.spec header that is not a spec",
        _bad_spec_header,
        r"invalid 'fpdctl.spec' metadata",
    ),
    (
        "profile-bad-spec-header",
        "profile",
        "an fpdctl.spec header that is not a spec",
        _bad_spec_header,
        r"invalid 'fpdctl.spec' metadata",
    ),
    (
        "prune-bad-spec-header",
        "prune",
        "an fpdctl.spec header that is not a spec",
        _bad_spec_header,
        r"invalid 'fpdctl.spec' metadata",
    ),
]


@pytest.mark.parametrize(
    ("command", "label", "make", "pattern"),
    [pytest.param(*case[1:], id=case[0]) for case in WRONG_ARCH],
)
def test_wrong_architecture(
    reliability: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    assets: Assets,
    command: str,
    label: str,
    make: Callable[[Assets, Path], Path],
    pattern: str,
) -> None:
    cmd = COMMANDS[command]
    reliability.describe(
        AREA,
        f"fpdctl {cmd.tried.replace('CKPT', f'<{label}>')}",
        "exit 2, one 'error:' line naming the file and the mismatch, outputs untouched",
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    name = "checkpoint.pth.tar" if "pytorch-pose" in label else "model.safetensors"
    bad = make(assets, tmp_path / "ckpt" / name)
    case = tmp_path / "case"
    case.mkdir()
    cmd.prepare(case, assets)
    before = snapshot(tmp_path)
    capfd.readouterr()
    code = main(cmd.argv(bad, case, assets))
    out, err = capfd.readouterr()
    observe(reliability, code, err)
    check_refusal(code, out, err, bad, pattern)
    assert_unchanged(before, snapshot(tmp_path))


# ------------------------------------------------------------------------------- damaged teacher
@pytest.mark.parametrize("kind", ["corrupt", "truncated-half", "code"])
def test_distill_resume_with_a_damaged_teacher(
    reliability: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    assets: Assets,
    kind: str,
) -> None:
    """The run's teacher file was damaged after the run started: --resume must refuse it."""
    reliability.describe(
        AREA,
        f"fpdctl distill --resume RUN, the run's teacher = <safetensors/pth.tar {KINDS[kind].label}>",
        "exit 2, one 'error:' line naming the teacher, no code run, run directory untouched",
    )
    marker = tmp_path.parent / f"{tmp_path.name}-PWNED"
    monkeypatch.chdir(tmp_path)
    fmt = "pth.tar-zip" if kind == "code" else "safetensors"
    teacher = make_bad(kind, fmt, assets, tmp_path / "ckpt", marker)
    run_dir = tmp_path / "run"
    shutil.copytree(assets.distill_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["options"]["teacher"] = str(teacher)
    config["options"]["out"] = str(run_dir)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    before = snapshot(tmp_path)
    capfd.readouterr()
    code = main(["distill", "--resume", str(run_dir)])
    out, err = capfd.readouterr()
    observe(reliability, code, err)
    check_refusal(code, out, err, teacher, KINDS[kind].pattern)
    assert not marker.exists(), "the pickle's payload ran"
    assert_unchanged(before, snapshot(tmp_path))


# ------------------------------------------------------------------------------- .onnx models
@pytest.fixture(scope="module")
def onnx_model(assets: Assets) -> Path:
    path = assets.root / "model.onnx"
    assert (
        main(
            [
                "export",
                str(assets.good["safetensors"]),
                "-o",
                str(path),
                "--input-size",
                "64",
                "--no-verify",
                "--exporter",
                "torchscript",
                "--format",
                "json",
            ]
        )
        == 0
    )
    return path


ONNX_KINDS = {
    "truncated-half": ("cut at half its size", lambda d: d[: len(d) // 2]),
    "truncated-16B": ("cut to its first 16 bytes", lambda d: d[:16]),
    "random": ("4 KiB of random bytes", lambda d: _random_bytes()),
    "empty": ("0-byte file", lambda d: b""),
}


@pytest.mark.parametrize("command", ["bench", "predict"])
@pytest.mark.parametrize("kind", list(ONNX_KINDS))
def test_bad_onnx_model(
    reliability: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    assets: Assets,
    onnx_model: Path,
    command: str,
    kind: str,
) -> None:
    """bench and predict also take the .onnx files `fpdctl export` writes."""
    label, damage = ONNX_KINDS[kind]
    cmd = COMMANDS[command]
    reliability.describe(
        AREA,
        f"fpdctl {cmd.tried.replace('CKPT', f'<.onnx {label}>')}",
        "exit 2, one 'error:' line naming the file, no traceback, outputs untouched",
    )
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "ckpt" / "model.onnx"
    bad.parent.mkdir()
    bad.write_bytes(damage(onnx_model.read_bytes()))
    case = tmp_path / "case"
    case.mkdir()
    cmd.prepare(case, assets)
    argv = [a for a in cmd.argv(bad, case, assets)]
    if "--input-size" in argv:  # an .onnx file has its own input size
        i = argv.index("--input-size")
        del argv[i : i + 2]
    before = snapshot(tmp_path)
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    observe(reliability, code, err)
    check_refusal(code, out, err, bad, r"not a valid ONNX model")
    assert_unchanged(before, snapshot(tmp_path))


# ------------------------------------------------------------------------------- fresh interpreter
@pytest.mark.parametrize("fmt", ["pth.tar-zip", "pth.tar-legacy"])
def test_code_pickle_in_a_fresh_process(reliability: Any, tmp_path: Path, assets: Assets, fmt: str) -> None:
    """The console script in a new interpreter: no test-process state can hide a payload that runs."""
    reliability.describe(
        AREA,
        f"fpdctl (console script) distill --teacher <{fmt} pickle whose __reduce__ runs code>",
        "exit 2, one 'error:' line, no traceback, the payload's marker file never appears",
    )
    marker = tmp_path / "PWNED"
    bad = make_bad("code", fmt, assets, tmp_path / "ckpt", marker)
    case = tmp_path / "case"
    case.mkdir()
    _run_dir(case, assets)
    before = snapshot(tmp_path)
    script = Path(sys.executable).parent / "fpdctl"
    assert script.is_file(), f"console script missing: {script}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FPDCTL_DEBUG": ""}
    proc = subprocess.run(
        [str(script), *COMMANDS["distill-teacher"].argv(bad, case, assets)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    observe(reliability, proc.returncode, proc.stderr)
    check_refusal(proc.returncode, proc.stdout, proc.stderr, bad, KINDS["code"].pattern)
    assert proc.stderr.strip().count("\n") == 0, proc.stderr  # the error line alone: no warnings
    assert not marker.exists(), "the pickle's payload ran"
    assert_unchanged(before, snapshot(tmp_path))


# ------------------------------------------------------------------------------- controls
def test_control_code_payload_is_live(reliability: Any, tmp_path: Path, assets: Assets) -> None:
    """Control: the code pickles really run their payload when loaded unsafely, so the
    marker-file checks above can fail."""
    reliability.describe(
        AREA,
        "control: torch.load(weights_only=False) of the zip and legacy code pickles",
        "the payload runs (creates its marker file): the 'no code run' checks can fail",
    )
    for fmt in ("pth.tar-zip", "pth.tar-legacy"):
        marker = tmp_path / f"PWNED-{fmt}"
        bad = make_bad("code", fmt, assets, tmp_path / fmt, marker)
        torch.load(bad, weights_only=False)
        reliability.observe(f"{fmt}: marker {'created' if marker.exists() else 'absent'}")
        assert marker.exists()


def test_control_good_checkpoint_overwrites_the_outputs(
    reliability: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    assets: Assets,
) -> None:
    """Control: with a good checkpoint the same eval command replaces the sentinel outputs, so
    the 'outputs untouched' checks above can fail."""
    reliability.describe(
        AREA,
        "control: fpdctl eval <good checkpoint> --save-predictions P -o R",
        "exit 0 and both pre-created outputs replaced: the snapshot check sees it",
    )
    monkeypatch.chdir(tmp_path)
    case = tmp_path / "case"
    case.mkdir()
    _eval_out(case, assets)
    before = snapshot(tmp_path)
    code = main(COMMANDS["eval"].argv(assets.good["pth.tar-zip"], case, assets))
    capfd.readouterr()
    after = snapshot(tmp_path)
    changed = sorted(k for k in before if before[k] != after.get(k))
    reliability.observe(f"exit {code}; changed: {', '.join(changed)}")
    assert code == 0
    assert changed == ["case/preds.npy", "case/report.json"]
    with pytest.raises(AssertionError, match="changed"):
        assert_unchanged(before, after)
