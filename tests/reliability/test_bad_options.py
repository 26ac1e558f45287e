"""Issue #7 "Bad options": every numeric and path option of every subcommand, given a bad value.

For every int/float option: a negative value, zero where zero is invalid (``ZERO_IS_VALID``
says where it is not and why), an out-of-range value where a range exists, and the wrong type
(``abc``). For every input path: a missing file. For every output path: a path under a regular
file (which no one can create, root included, unlike a chmod 0o500 folder).

Each case runs ``fpdctl.cli.app.main`` (the console script's function) in-process, in an empty
working directory, and must: exit 2; print exactly one line on stderr, the expected ``error: ...``
line, and nothing on stdout; show no traceback; create nothing (the working directory stays
empty, the fixture files keep their hashes); and fail in under 5 s, before any heavy work.

``test_every_numeric_and_path_option_has_cases`` walks the Typer/Click command tree, so an
option added later without a case here fails the suite.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer.main

from fpdctl.cli.app import app, main
from fpdctl.deploy.backends import BACKEND_GROUPS, BACKENDS

# ----------------------------------------------------------------------------- fixtures' files
# Placeholders in the table, filled in from the ``files`` fixture. {file} is a regular file: a
# path under it ("{file}/out.json") cannot be created by anyone, root included. {dir} is an
# empty folder given where a file belongs. {missing} (with any suffix) never exists.
PLACEHOLDERS = ("ckpt", "img", "pred", "file", "dir", "missing")
# How the placeholders read in the reliability table (short, and the same on every machine).
SHOWN = {
    "ckpt": "teacher.safetensors",
    "img": "person.png",
    "pred": "preds.npy",
    "file": "a_file",
    "dir": "a_dir",
    "missing": "missing",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad_options")
    ckpt = folder / "teacher.safetensors"
    shutil.copyfile(tiny_checkpoint, ckpt)
    img = folder / "person.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 127, np.uint8))
    pred = folder / "preds.npy"
    np.save(pred, np.zeros((2, 16, 2), np.float32))
    blocker = folder / "a_file"
    blocker.write_text("not a folder\n")
    a_dir = folder / "a_dir"  # an existing folder where a file should be written
    a_dir.mkdir()
    return {"ckpt": ckpt, "img": img, "pred": pred, "file": blocker, "dir": a_dir, "missing": folder / "missing"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- the table
# Valid context per command, so that the option under test is the only problem. The option's
# bad value comes after the base: Click keeps the last value of a repeated option.
_RUN = (
    "--data",
    "synthetic:length=16",
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
    "--device",
    "cpu",
    "--out",
    "run",
)
BASE: dict[str, tuple[str, ...]] = {
    "profile": ("hg1x16", "--input-size", "64"),
    "models": (),
    "eval": ("hg1x16", "--data", "synthetic:length=4", "--input-size", "64", "--no-flip-test", "--device", "cpu"),
    "train": ("--model", "hg1x16", *_RUN, "--max-steps", "1"),
    "distill": ("--teacher", "{ckpt}", "--student", "hg1x16", *_RUN, "--max-steps", "1"),
    "prune": ("--teacher", "{ckpt}", "--to", "hg1x8", "-o", "student.safetensors", "--input-size", "64"),
    "prune-sweep": (
        "--teacher",
        "{ckpt}",
        "--stacks",
        "1",
        "--channels",
        "8",
        "--input-size",
        "64",
        "--data",
        "synthetic:length=8",
        "--val-limit",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-latency",
        "--out",
        "sweep",
        "--max-steps",
        "1",
    ),
    "export": ("hg1x16", "-o", "model.onnx", "--input-size", "64"),
    "bench": ("hg1x16", "--input-size", "64", "--warmup", "0", "--iters", "1"),
    "predict": ("hg1x16", "{img}", "--input-size", "64", "--out", "predictions"),
    "data synth": ("--out", "synth", "--count", "2", "--image-size", "64"),
    "data preview": ("--output", "preview.png", "--count", "2", "--input-size", "64"),
}


def _without(base: tuple[str, ...], option: str) -> tuple[str, ...]:
    """``base`` less ``option`` and its value (for options that exclude each other)."""
    i = base.index(option)
    return base[:i] + base[i + 2 :]


NEGATIVE, ZERO, RANGE, TYPE = "negative", "zero", "out of range", "wrong type"
MISSING, UNDER_FILE, IS_FILE, IS_DIR = "missing input", "output under a file", "output is a file", "output is a folder"


@dataclass(frozen=True)
class Case:
    """One bad value. ``error`` is the exact stderr line (with placeholders), or None for Click's
    own wrong-type line, checked by :func:`_wrong_type_line`."""

    command: str
    option: str  # as in the command tree: "--batch-size", or an argument's name ("model")
    kind: str
    args: tuple[str, ...]
    error: str | None
    base: tuple[str, ...] | None = None  # None: BASE[command]

    @property
    def id(self) -> str:
        return f"{self.command} {self.option} {self.kind} {' '.join(self.args)}"


def C(command: str, option: str, kind: str, args: str, error: str, base: tuple[str, ...] | None = None) -> Case:
    return Case(command, option, kind, tuple(args.split()), error, base)


def T(command: str, option: str, base: tuple[str, ...] | None = None) -> Case:
    """The wrong type: a word where a number belongs."""
    return Case(command, option, TYPE, (option, "abc"), None, base)


def _input_size(command: str, option: str = "--input-size") -> list[Case]:
    """--input-size: negative, zero and not a multiple of 64 (a depth-4 hourglass pools 4 times
    after a stride-4 stem)."""
    msg = "error: input size must be a positive multiple of 64 for a depth-4 hourglass, got {}"
    return [
        C(command, option, NEGATIVE, f"{option} -64", msg.format(-64)),
        C(command, option, ZERO, f"{option} 0", msg.format(0)),
        C(command, option, RANGE, f"{option} 100", msg.format(100)),
        T(command, option),
    ]


def _convention(command: str, prefix: str = "--input") -> list[Case]:
    """The input-convention override group (cli/options.py): an unknown preset or channel order,
    a mean outside [0, 1] (above and below), a std of 0, a wrong count, and a word for a number."""
    preset, order, mean, std = (f"{prefix}-{name}" for name in ("convention", "order", "mean", "std"))
    presets = "native, pytorch-pose-mpii, pytorch-pose-lsp, fpd-official"
    return [
        C(command, preset, RANGE, f"{preset} caffe", f"error: {preset} must be one of {presets}; got 'caffe'"),
        C(command, order, RANGE, f"{order} rbg", f"error: {order} must be 'rgb' or 'bgr', got 'rbg'"),
        C(
            command,
            mean,
            RANGE,
            f"{mean} 0.5,1.5,0.5",
            f"error: {mean} must lie in [0, 1] (pixels are scaled to [0, 1] first), got 1.5",
        ),
        C(
            command,
            mean,
            NEGATIVE,
            f"{mean} -0.1,0.5,0.5",
            f"error: {mean} must lie in [0, 1] (pixels are scaled to [0, 1] first), got -0.1",
        ),
        C(command, mean, TYPE, f"{mean} a,b,c", f"error: {mean}: 'a' is not a number (in 'a,b,c')"),
        C(command, std, ZERO, f"{std} 0,1,1", f"error: {std} must be positive (1 divides by nothing), got 0"),
        C(
            command,
            std,
            RANGE,
            f"{std} 1,1",
            f"error: {std} takes 3 comma-separated numbers (one per channel), got 2: '1,1'",
        ),
    ]


def _backend(command: str) -> list[Case]:
    """--backend of eval and predict: an unknown name, and two ONNX rows for a checkpoint (both
    run a checkpoint on one ONNX row as bench does, exporting it for the row: fpdctl.Pose)."""
    onnx_row = C(
        command,
        "--backend",
        RANGE,
        "--backend ort,ort-int8",
        "error: --backend must pick one backend here; 'ort,ort-int8' selects ort, ort-int8",
    )
    return [
        C(
            command,
            "--backend",
            RANGE,
            "--backend tensorrt",
            "error: unknown backend 'tensorrt'; expected "
            + ", ".join(BACKEND_GROUPS)
            + " or one of "
            + ", ".join(b.name for b in BACKENDS),
        ),
        onnx_row,
    ]


_TRAIN_NO_LENGTH = _without(BASE["train"], "--max-steps")
_DISTILL_NO_LENGTH = _without(BASE["distill"], "--max-steps")
_SWEEP_NO_LENGTH = _without(BASE["prune-sweep"], "--max-steps")
_BENCH_NO_ITERS = _without(BASE["bench"], "--iters")
_SYNTH_NO_SIZE = _without(BASE["data synth"], "--image-size")
_PREVIEW_NO_OUTPUT = _without(BASE["data preview"], "--output")
_UNDER = "error: cannot create output folder {file}: a file has that name"
_IS_DIR = "error: output path is a directory: {dir}"


def _train_cases(cmd: str) -> list[Case]:
    no_length = _TRAIN_NO_LENGTH if cmd == "train" else _DISTILL_NO_LENGTH
    return [
        *_input_size(cmd),
        C(cmd, "--epochs", NEGATIVE, "--epochs -1", "error: epochs must be positive, got -1", no_length),
        C(cmd, "--epochs", ZERO, "--epochs 0", "error: epochs must be positive, got 0", no_length),
        T(cmd, "--epochs", no_length),
        C(cmd, "--max-steps", NEGATIVE, "--max-steps -1", "error: max steps must be positive, got -1"),
        C(cmd, "--max-steps", ZERO, "--max-steps 0", "error: max steps must be positive, got 0"),
        T(cmd, "--max-steps"),
        C(cmd, "--batch-size", NEGATIVE, "--batch-size -4", "error: batch size must be positive, got -4"),
        C(cmd, "--batch-size", ZERO, "--batch-size 0", "error: batch size must be positive, got 0"),
        T(cmd, "--batch-size"),
        C(cmd, "--lr", NEGATIVE, "--lr -0.001", "error: lr must be positive, got -0.001"),
        C(cmd, "--lr", ZERO, "--lr 0", "error: lr must be positive, got 0"),
        C(cmd, "--lr", RANGE, "--lr inf", "error: lr must be a finite number, got inf"),
        C(cmd, "--lr", RANGE, "--lr nan", "error: lr must be a finite number, got nan"),
        T(cmd, "--lr"),
        C(
            cmd,
            "--weight-decay",
            NEGATIVE,
            "--weight-decay -1",
            "error: weight decay must be a finite number >= 0, got -1",
        ),
        C(
            cmd,
            "--weight-decay",
            RANGE,
            "--weight-decay nan",
            "error: weight decay must be a finite number >= 0, got nan",
        ),
        C(
            cmd,
            "--weight-decay",
            RANGE,
            "--weight-decay inf",
            "error: weight decay must be a finite number >= 0, got inf",
        ),
        T(cmd, "--weight-decay"),
        C(cmd, "--sigma", NEGATIVE, "--sigma -2", "error: sigma must be positive, got -2"),
        C(cmd, "--sigma", ZERO, "--sigma 0", "error: sigma must be positive, got 0"),
        C(cmd, "--sigma", RANGE, "--sigma inf", "error: sigma must be a finite number, got inf"),
        T(cmd, "--sigma"),
        C(cmd, "--workers", NEGATIVE, "--workers -1", "error: workers must be >= 0, got -1"),
        T(cmd, "--workers"),
        C(cmd, "--seed", NEGATIVE, "--seed -1", "error: seed must be >= 0, got -1"),
        C(
            cmd,
            "--seed",
            RANGE,
            "--seed 4294967296",
            "error: seed must be at most 4294967295 (2**32 - 1), got 4294967296",
        ),
        T(cmd, "--seed"),
        C(cmd, "--eval-every", NEGATIVE, "--eval-every -1", "error: eval every must be >= 0, got -1"),
        T(cmd, "--eval-every"),
        C(cmd, "--log-every", NEGATIVE, "--log-every -1", "error: log every must be positive, got -1"),
        C(cmd, "--log-every", ZERO, "--log-every 0", "error: log every must be positive, got 0"),
        T(cmd, "--log-every"),
        C(cmd, "--save-every", NEGATIVE, "--save-every -1", "error: save every must be >= 0, got -1"),
        T(cmd, "--save-every"),
        C(cmd, "--val-limit", NEGATIVE, "--val-limit -1", "error: val limit must be positive, got -1"),
        C(cmd, "--val-limit", ZERO, "--val-limit 0", "error: val limit must be positive, got 0"),
        T(cmd, "--val-limit"),
        C(
            cmd,
            "--augment-style",
            RANGE,
            "--augment-style gaussian",
            "error: augment style must be one of official, uniform, got 'gaussian'",
        ),
        C(
            cmd,
            "--augment-style",
            TYPE,
            "--augment-style 3",
            "error: augment style must be one of official, uniform, got '3'",
        ),
        C(cmd, "--data", MISSING, "--data mpii:{missing}", "error: mpii data not found: {missing}"),
        C(
            cmd,
            "--data",
            RANGE,
            "--data synthetic:length=0",
            "error: synthetic length must be a positive integer, got 0",
        ),
        C(
            cmd,
            "--data",
            RANGE,
            "--data synthetic:layout=lsp",
            "error: synthetic layout must be one of mpii, coco, got 'lsp'",
        ),
        C(
            cmd,
            "--data",
            RANGE,
            "--data synthetic:label_noise=heavy",
            "error: synthetic label_noise must be one of none, coco, coco2, got 'heavy'",
        ),
        C(cmd, "--config", MISSING, "--config {missing}.yaml", "error: config file not found: {missing}.yaml"),
        C(cmd, "--resume", MISSING, "--resume {missing}", "error: run directory not found: {missing}", base=()),
        C(
            cmd,
            "--out",
            UNDER_FILE,
            "--out {file}/run",
            "error: cannot create output folder {file}/run: {file} is a file",
        ),
        C(cmd, "--out", IS_FILE, "--out {file}", "error: --out {file} exists and is not a directory"),
    ]


CASES: list[Case] = [
    # ------------------------------------------------------------------ profile
    *_input_size("profile"),
    C("profile", "--batch", NEGATIVE, "--batch -1", "error: batch must be at least 1, got -1"),
    C("profile", "--batch", ZERO, "--batch 0", "error: batch must be at least 1, got 0"),
    T("profile", "--batch"),
    C("profile", "--stacks", ZERO, "--stacks 0", "error: --stacks values must be at least 1, got 0", base=()),
    C(
        "profile",
        "--stacks",
        TYPE,
        "--stacks abc",
        "error: --stacks must be a comma-separated list of integers, got 'abc'",
        base=(),
    ),
    C(
        "profile",
        "--channels",
        NEGATIVE,
        "--channels -8",
        "error: --channels values must be at least 4, got -8",
        base=(),
    ),
    C("profile", "--blocks", ZERO, "--blocks 0", "error: --blocks values must be at least 1, got 0", base=()),
    C(
        "profile",
        "models",
        MISSING,
        "{missing}.safetensors",
        "error: checkpoint not found: {missing}.safetensors",
        base=(),
    ),
    C("profile", "--output", UNDER_FILE, "--output {file}/profile.json", _UNDER),
    C("profile", "--output", IS_DIR, "--output {dir}", _IS_DIR),
    C("profile", "--plot", UNDER_FILE, "--plot {file}/cost.png", _UNDER),
    C("profile", "--plot", IS_DIR, "--plot {dir}", _IS_DIR),
    # ------------------------------------------------------------------ models
    C("models", "--output", UNDER_FILE, "--output {file}/models.json", _UNDER),
    C("models", "--output", IS_DIR, "--output {dir}", _IS_DIR),
    # ------------------------------------------------------------------ eval
    *_input_size("eval"),
    C("eval", "--batch-size", NEGATIVE, "--batch-size -1", "error: --batch-size must be at least 1, got -1"),
    C("eval", "--batch-size", ZERO, "--batch-size 0", "error: --batch-size must be at least 1, got 0"),
    T("eval", "--batch-size"),
    C("eval", "--workers", NEGATIVE, "--workers -1", "error: --workers must be 0 or more, got -1"),
    T("eval", "--workers"),
    C("eval", "--threshold", NEGATIVE, "--threshold -0.5", "error: --threshold must be a positive number, got -0.5"),
    C("eval", "--threshold", ZERO, "--threshold 0", "error: --threshold must be a positive number, got 0.0"),
    C("eval", "--threshold", RANGE, "--threshold inf", "error: --threshold must be a positive number, got inf"),
    C("eval", "--threshold", RANGE, "--threshold nan", "error: --threshold must be a positive number, got nan"),
    T("eval", "--threshold"),
    C(
        "eval",
        "model",
        MISSING,
        "{missing}.safetensors --data synthetic:length=4",
        "error: checkpoint not found: {missing}.safetensors",
        base=(),
    ),
    C(
        "eval",
        "--predictions",
        MISSING,
        "--predictions {missing}.npy --ground-truth {pred}",
        "error: predictions file not found: {missing}.npy",
        base=(),
    ),
    C(
        "eval",
        "--ground-truth",
        MISSING,
        "--predictions {pred} --ground-truth {missing}.mat",
        "error: ground-truth file not found: {missing}.mat",
        base=(),
    ),
    C("eval", "--data", MISSING, "--data lsp:{missing}", "error: lsp data not found: {missing}"),
    C("eval", "--data", MISSING, "--data coco:{missing}", "error: coco data not found: {missing}"),
    C(
        "eval",
        "--boxes",
        MISSING,
        "--boxes {missing}.json",
        "error: detections file not found: {missing}.json",
        base=("hg1x16", "--data", "coco:{dir}", "--input-size", "64", "--device", "cpu"),
    ),
    C(
        "eval",
        "--data",
        RANGE,
        "--data synthetic:layout=lsp",
        "error: synthetic layout must be one of mpii, coco, got 'lsp'",
    ),
    C(
        "eval",
        "--data",
        RANGE,
        "--data synthetic:length=-3",
        "error: synthetic length must be a positive integer, got -3",
    ),
    C("eval", "--save-predictions", UNDER_FILE, "--save-predictions {file}/preds.npy", _UNDER),
    C(
        "eval",
        "--save-predictions",
        IS_DIR,
        "--save-predictions {dir}",
        "error: Invalid value for '--save-predictions': file '{dir}' is a directory.",
    ),
    C("eval", "--output", UNDER_FILE, "--output {file}/report.json", _UNDER),
    C("eval", "--output", IS_DIR, "--output {dir}", _IS_DIR),
    *_backend("eval"),
    # ------------------------------------------------------------------ train / distill
    *_train_cases("train"),
    C(
        "train",
        "--init",
        MISSING,
        "--init {missing}.safetensors",
        "error: initial checkpoint not found: {missing}.safetensors",
    ),
    *_train_cases("distill"),
    C("distill", "--alpha", NEGATIVE, "--alpha -0.5", "error: alpha must be in [0, 1], got -0.5"),
    C("distill", "--alpha", RANGE, "--alpha 1.5", "error: alpha must be in [0, 1], got 1.5"),
    C("distill", "--alpha", RANGE, "--alpha nan", "error: alpha must be in [0, 1], got nan"),
    T("distill", "--alpha"),
    C(
        "distill",
        "--teacher",
        MISSING,
        "--teacher {missing}.safetensors",
        "error: teacher checkpoint not found: {missing}.safetensors",
    ),
    C(
        "distill",
        "--teacher",
        RANGE,
        "--teacher ground-truth --unlabeled synthetic",
        "error: --unlabeled needs a teacher network; --teacher ground-truth has no maps for unlabeled images",
    ),
    C(
        "distill",
        "--teacher",
        RANGE,
        "--teacher ground-truth --teacher-input-convention fpd-official",
        "error: --teacher-input-convention needs a teacher network, not --teacher ground-truth",
    ),
    C(
        "distill",
        "--student-init",
        MISSING,
        "--student-init {missing}.safetensors",
        "error: initial checkpoint not found: {missing}.safetensors",
    ),
    C("distill", "--kd-loss", RANGE, "--kd-loss l1", "error: kd loss must be one of mse, kl, got 'l1'"),
    C(
        "distill",
        "--kd-temperature",
        NEGATIVE,
        "--kd-temperature -1",
        "error: kd temperature must be a finite number > 0, got -1",
    ),
    C(
        "distill",
        "--kd-temperature",
        ZERO,
        "--kd-temperature 0",
        "error: kd temperature must be a finite number > 0, got 0",
    ),
    C(
        "distill",
        "--kd-temperature",
        RANGE,
        "--kd-temperature nan",
        "error: kd temperature must be a finite number > 0, got nan",
    ),
    C(
        "distill",
        "--kd-temperature",
        RANGE,
        "--kd-temperature inf",
        "error: kd temperature must be a finite number > 0, got inf",
    ),
    T("distill", "--kd-temperature"),
    C(
        "distill",
        "--alpha-schedule",
        RANGE,
        "--alpha-schedule cosine",
        "error: alpha schedule must be one of constant, linear, got 'cosine'",
    ),
    C("distill", "--unlabeled", MISSING, "--unlabeled {missing}", "error: unlabeled image folder not found: {missing}"),
    C(
        "distill",
        "--unlabeled",
        RANGE,
        "--unlabeled synthetic:length=0",
        "error: --unlabeled must be a folder of images, synthetic or synthetic:length=N, got 'synthetic:length=0'",
    ),
    C(
        "distill",
        "--unlabeled-ratio",
        NEGATIVE,
        "--unlabeled synthetic --unlabeled-ratio -0.5",
        "error: unlabeled ratio must be in (0, 1), got -0.5",
    ),
    C(
        "distill",
        "--unlabeled-ratio",
        ZERO,
        "--unlabeled synthetic --unlabeled-ratio 0",
        "error: unlabeled ratio must be in (0, 1), got 0",
    ),
    C(
        "distill",
        "--unlabeled-ratio",
        RANGE,
        "--unlabeled synthetic --unlabeled-ratio 1.5",
        "error: unlabeled ratio must be in (0, 1), got 1.5",
    ),
    C(
        "distill",
        "--unlabeled-ratio",
        RANGE,
        "--unlabeled synthetic --unlabeled-ratio 0.1",
        "error: --unlabeled-ratio 0.1 of a batch of 4 leaves no unlabeled image; change the ratio or the batch size",
    ),
    C(
        "distill",
        "--unlabeled-ratio",
        RANGE,
        "--unlabeled-ratio 0.5",
        "error: --unlabeled-ratio needs --unlabeled DIR or --unlabeled synthetic",
    ),
    T("distill", "--unlabeled-ratio"),
    # ------------------------------------------------------------------ prune
    *_input_size("prune"),
    C(
        "prune",
        "--recalibrate-bn",
        NEGATIVE,
        "--recalibrate-bn -1",
        "error: --recalibrate-bn must be 0 or more batches, got -1",
    ),
    T("prune", "--recalibrate-bn"),
    C("prune", "--batch-size", NEGATIVE, "--batch-size -1", "error: batch size must be positive, got -1"),
    C("prune", "--batch-size", ZERO, "--batch-size 0", "error: batch size must be positive, got 0"),
    C("prune", "--batch-size", ZERO, "--recalibrate-bn 1 --batch-size 0", "error: batch size must be positive, got 0"),
    T("prune", "--batch-size"),
    C(
        "prune",
        "--teacher",
        MISSING,
        "--teacher {missing}.safetensors",
        "error: teacher checkpoint not found: {missing}.safetensors",
    ),
    C("prune", "--data", MISSING, "--data mpii:{missing}", "error: mpii data not found: {missing}"),
    C("prune", "--data", MISSING, "--recalibrate-bn 1 --data mpii:{missing}", "error: mpii data not found: {missing}"),
    C("prune", "--output", UNDER_FILE, "--output {file}/student.safetensors", _UNDER),
    C("prune", "--output", IS_DIR, "--output {dir}", _IS_DIR),
    # ------------------------------------------------------------------ prune-sweep
    *_input_size("prune-sweep"),
    C("prune-sweep", "--max-steps", NEGATIVE, "--max-steps -1", "error: max steps must be positive, got -1"),
    C("prune-sweep", "--max-steps", ZERO, "--max-steps 0", "error: max steps must be positive, got 0"),
    T("prune-sweep", "--max-steps"),
    C(
        "prune-sweep",
        "--precision",
        RANGE,
        "--precision fp8",
        "error: precision must be one of auto, bf16, fp16, fp32, got 'fp8'",
    ),
    C("prune-sweep", "--epochs", NEGATIVE, "--epochs -1", "error: epochs must be positive, got -1", _SWEEP_NO_LENGTH),
    C("prune-sweep", "--epochs", ZERO, "--epochs 0", "error: epochs must be positive, got 0", _SWEEP_NO_LENGTH),
    T("prune-sweep", "--epochs", _SWEEP_NO_LENGTH),
    C("prune-sweep", "--alpha", NEGATIVE, "--alpha -0.5", "error: alpha must be in [0, 1], got -0.5"),
    C("prune-sweep", "--alpha", RANGE, "--alpha 1.5", "error: alpha must be in [0, 1], got 1.5"),
    T("prune-sweep", "--alpha"),
    C("prune-sweep", "--batch-size", NEGATIVE, "--batch-size -1", "error: batch size must be positive, got -1"),
    C("prune-sweep", "--batch-size", ZERO, "--batch-size 0", "error: batch size must be positive, got 0"),
    T("prune-sweep", "--batch-size"),
    C("prune-sweep", "--lr", NEGATIVE, "--lr -1", "error: lr must be positive, got -1"),
    C("prune-sweep", "--lr", ZERO, "--lr 0", "error: lr must be positive, got 0"),
    C("prune-sweep", "--lr", RANGE, "--lr nan", "error: lr must be a finite number, got nan"),
    T("prune-sweep", "--lr"),
    C("prune-sweep", "--seed", NEGATIVE, "--seed -1", "error: seed must be >= 0, got -1"),
    C(
        "prune-sweep",
        "--seed",
        RANGE,
        "--seed 99999999999999999999",
        "error: seed must be at most 4294967295 (2**32 - 1), got 99999999999999999999",
    ),
    T("prune-sweep", "--seed"),
    C("prune-sweep", "--val-limit", NEGATIVE, "--val-limit -1", "error: val limit must be positive, got -1"),
    C("prune-sweep", "--val-limit", ZERO, "--val-limit 0", "error: val limit must be positive, got 0"),
    T("prune-sweep", "--val-limit"),
    C(
        "prune-sweep",
        "--recalibrate-bn",
        NEGATIVE,
        "--recalibrate-bn -1",
        "error: --recalibrate-bn must be 0 or more batches, got -1",
    ),
    T("prune-sweep", "--recalibrate-bn"),
    C(
        "prune-sweep",
        "--max-drop",
        NEGATIVE,
        "--max-drop -1",
        "error: --max-drop must be a non-negative number, got -1",
    ),
    C("prune-sweep", "--max-drop", RANGE, "--max-drop nan", "error: --max-drop must be a non-negative number, got nan"),
    T("prune-sweep", "--max-drop"),
    C("prune-sweep", "--budget-macs", NEGATIVE, "--budget-macs -1", "error: --budget-macs must be positive, got -1"),
    C("prune-sweep", "--budget-macs", ZERO, "--budget-macs 0", "error: --budget-macs must be positive, got 0"),
    T("prune-sweep", "--budget-macs"),
    C(
        "prune-sweep",
        "--budget-latency",
        NEGATIVE,
        "--budget-latency -1",
        "error: --budget-latency must be positive, got -1",
    ),
    C("prune-sweep", "--budget-latency", ZERO, "--budget-latency 0", "error: --budget-latency must be positive, got 0"),
    T("prune-sweep", "--budget-latency"),
    C("prune-sweep", "--workers", NEGATIVE, "--workers -1", "error: workers must be >= 0, got -1"),
    T("prune-sweep", "--workers"),
    C("prune-sweep", "--shard", RANGE, "--shard 3/2", "error: --shard 3/2: K must be between 1 and 2"),
    C("prune-sweep", "--shard", NEGATIVE, "--shard -1/2", "error: --shard -1/2: K must be between 1 and 2"),
    C(
        "prune-sweep",
        "--shard",
        ZERO,
        "--shard 0/0",
        "error: --shard must be K/N with 1 <= K <= N (e.g. 2/4), got '0/0'",
    ),
    C(
        "prune-sweep",
        "--shard",
        TYPE,
        "--shard abc",
        "error: --shard must be K/N with 1 <= K <= N (e.g. 2/4), got 'abc'",
    ),
    C("prune-sweep", "--stacks", ZERO, "--stacks 0", "error: --stacks values must be at least 1, got 0"),
    C(
        "prune-sweep",
        "--channels",
        TYPE,
        "--channels abc",
        "error: --channels must be a comma-separated list of integers, got 'abc'",
    ),
    C("prune-sweep", "--blocks", NEGATIVE, "--blocks -1", "error: --blocks values must be at least 1, got -1"),
    C(
        "prune-sweep",
        "--blocks",
        TYPE,
        "--blocks tiny",
        "error: --blocks takes block counts (integers) and block types (standard, mobile), got 'tiny'",
    ),
    C(
        "prune-sweep",
        "--teacher",
        MISSING,
        "--teacher {missing}.safetensors",
        "error: teacher checkpoint not found: {missing}.safetensors",
    ),
    C("prune-sweep", "--data", MISSING, "--data mpii:{missing}", "error: mpii data not found: {missing}"),
    C(
        "prune-sweep",
        "--out",
        MISSING,
        "--summary-only --out {missing}",
        "error: sweep directory not found: {missing}",
        base=(),
    ),
    C(
        "prune-sweep",
        "--out",
        UNDER_FILE,
        "--out {file}/sweep",
        "error: cannot create output folder {file}/sweep: {file} is a file",
    ),
    C("prune-sweep", "--out", IS_FILE, "--out {file}", "error: --out {file} exists and is not a directory"),
    # ------------------------------------------------------------------ export
    *_input_size("export"),
    C("export", "--opset", NEGATIVE, "--opset -1", "error: --opset must be between 18 and 28, got -1"),
    C("export", "--opset", ZERO, "--opset 0", "error: --opset must be between 18 and 28, got 0"),
    C("export", "--opset", RANGE, "--opset 17", "error: --opset must be between 18 and 28, got 17"),
    C("export", "--opset", RANGE, "--opset 99", "error: --opset must be between 18 and 28, got 99"),
    T("export", "--opset"),
    C("export", "--batch", NEGATIVE, "--batch -1", "error: --batch must be 'dynamic' or a positive integer, got '-1'"),
    C("export", "--batch", ZERO, "--batch 0", "error: --batch must be 'dynamic' or a positive integer, got '0'"),
    C("export", "--batch", TYPE, "--batch abc", "error: --batch must be 'dynamic' or a positive integer, got 'abc'"),
    C(
        "export",
        "--calibration-samples",
        NEGATIVE,
        "--precision int8 --calibration-samples -1",
        "error: --calibration-samples must be at least 1, got -1",
    ),
    C(
        "export",
        "--calibration-samples",
        ZERO,
        "--precision int8 --calibration-samples 0",
        "error: --calibration-samples must be at least 1, got 0",
    ),
    T("export", "--calibration-samples"),
    C(
        "export",
        "--validation-samples",
        NEGATIVE,
        "--precision fp16 --validation-samples -1",
        "error: --validation-samples must be 0 or more, got -1",
    ),
    T("export", "--validation-samples"),
    C("export", "--threads", NEGATIVE, "--threads -1", "error: --threads must be at least 1, got -1"),
    C("export", "--threads", ZERO, "--threads 0", "error: --threads must be at least 1, got 0"),
    T("export", "--threads"),
    C(
        "export",
        "checkpoint",
        MISSING,
        "{missing}.safetensors -o model.onnx",
        "error: checkpoint not found: {missing}.safetensors",
        base=(),
    ),
    C(
        "export",
        "--calibration-data",
        MISSING,
        "--precision int8 --calibration-data mpii:{missing}",
        "error: mpii data not found: {missing}",
    ),
    C("export", "--output", UNDER_FILE, "--output {file}/model.onnx", _UNDER),
    C("export", "--output", IS_DIR, "--output {dir}", _IS_DIR),
    C(
        "export",
        "--pixel-order",
        RANGE,
        "--embed-preprocess --pixel-order xyz",
        "error: --pixel-order must be 'rgb' or 'bgr', got 'xyz'",
    ),
    C(
        "export",
        "--pixel-order",
        RANGE,
        "--pixel-order rgb",
        "error: --pixel-order applies with --embed-preprocess (the order of the uint8 crops the graph takes)",
    ),
    C(
        "export",
        "--keep-heatmaps",
        RANGE,
        "--keep-heatmaps",
        "error: --keep-heatmaps applies with --embed-decode (without it the graph returns heatmaps only)",
    ),
    C(
        "export",
        "--embed-decode",
        RANGE,
        "--embed-decode --all-stacks",
        "error: --embed-decode decodes the final stack; it does not combine with --all-stacks",
    ),
    # ------------------------------------------------------------------ bench
    C("bench", "--input-size", NEGATIVE, "--input-size -64", "error: --input-size must be positive, got -64"),
    C("bench", "--input-size", ZERO, "--input-size 0", "error: --input-size must be positive, got 0"),
    C(
        "bench",
        "--input-size",
        RANGE,
        "--input-size 100",
        "error: input size must be a positive multiple of 64 for a depth-4 hourglass, got 100",
    ),
    T("bench", "--input-size"),
    C("bench", "--batch", NEGATIVE, "--batch -1", "error: --batch values must be at least 1, got -1"),
    C("bench", "--batch", ZERO, "--batch 0", "error: --batch values must be at least 1, got 0"),
    C("bench", "--batch", TYPE, "--batch abc", "error: --batch must be a comma-separated list of integers, got 'abc'"),
    C("bench", "--threads", NEGATIVE, "--threads -1", "error: --threads must be at least 1, got -1"),
    C("bench", "--threads", ZERO, "--threads 0", "error: --threads must be at least 1, got 0"),
    T("bench", "--threads"),
    C("bench", "--warmup", NEGATIVE, "--warmup -1", "error: --warmup must be 0 or more, got -1"),
    T("bench", "--warmup"),
    C("bench", "--iters", NEGATIVE, "--iters -1", "error: --iters must be at least 1, got -1"),
    C("bench", "--iters", ZERO, "--iters 0", "error: --iters must be at least 1, got 0"),
    T("bench", "--iters"),
    C(
        "bench",
        "--duration",
        NEGATIVE,
        "--duration -1",
        "error: --duration must be a positive number of seconds, got -1.0",
        _BENCH_NO_ITERS,
    ),
    C(
        "bench",
        "--duration",
        ZERO,
        "--duration 0",
        "error: --duration must be a positive number of seconds, got 0.0",
        _BENCH_NO_ITERS,
    ),
    C(
        "bench",
        "--duration",
        RANGE,
        "--duration inf",
        "error: --duration must be a positive number of seconds, got inf",
        _BENCH_NO_ITERS,
    ),
    C(
        "bench",
        "--duration",
        RANGE,
        "--duration nan",
        "error: --duration must be a positive number of seconds, got nan",
        _BENCH_NO_ITERS,
    ),
    T("bench", "--duration", _BENCH_NO_ITERS),
    C("bench", "--spin-us", NEGATIVE, "--spin-us -1", "error: --spin-us must be 0 or more, got -1"),
    T("bench", "--spin-us"),
    C(
        "bench",
        "models",
        MISSING,
        "{missing}.safetensors --iters 1",
        "error: checkpoint not found: {missing}.safetensors",
        base=(),
    ),
    C("bench", "models", MISSING, "{missing}.onnx --iters 1", "error: ONNX model not found: {missing}.onnx", base=()),
    C("bench", "--output", UNDER_FILE, "--output {file}/bench.json", _UNDER),
    C("bench", "--output", IS_DIR, "--output {dir}", _IS_DIR),
    C("bench", "--accuracy", NEGATIVE, "--accuracy -1", "error: --accuracy must be 0 or more, got -1"),
    T("bench", "--accuracy"),
    C(
        "bench",
        "--accuracy-data",
        MISSING,
        "--accuracy 4 --accuracy-data mpii:{missing}",
        "error: mpii data not found: {missing}",
    ),
    C(
        "bench",
        "--pixel-order",
        RANGE,
        "--backend ort --embed-preprocess --pixel-order xyz",
        "error: --pixel-order must be 'rgb' or 'bgr', got 'xyz'",
    ),
    C(
        "bench",
        "--embed-decode",
        RANGE,
        "--embed-decode",
        "error: --embed-preprocess/--embed-decode need an ONNX backend (onnxruntime or openvino); backend torch "
        "runs the PyTorch model, which has no graph to embed them in",
    ),
    # ------------------------------------------------------------------ predict
    *_input_size("predict"),
    C("predict", "--threads", NEGATIVE, "--threads -1", "error: --threads must be at least 1, got -1"),
    C("predict", "--threads", ZERO, "--threads 0", "error: --threads must be at least 1, got 0"),
    T("predict", "--threads"),
    C("predict", "--min-score", RANGE, "--min-score nan", "error: --min-score must be a finite number, got nan"),
    C("predict", "--min-score", RANGE, "--min-score inf", "error: --min-score must be a finite number, got inf"),
    T("predict", "--min-score"),
    C("predict", "--max-frames", NEGATIVE, "--max-frames -1", "error: --max-frames must be at least 1, got -1"),
    C("predict", "--max-frames", ZERO, "--max-frames 0", "error: --max-frames must be at least 1, got 0"),
    T("predict", "--max-frames"),
    C(
        "predict",
        "--batch-size",
        NEGATIVE,
        "--batch-size -1",
        "error: --batch-size must be a whole number of at least 1, got -1",
    ),
    C(
        "predict",
        "--batch-size",
        ZERO,
        "--batch-size 0",
        "error: --batch-size must be a whole number of at least 1, got 0",
    ),
    T("predict", "--batch-size"),
    C("predict", "--frame-base", NEGATIVE, "--frame-base -1", "error: --frame-base must be 0 or 1, got -1"),
    C("predict", "--frame-base", RANGE, "--frame-base 2", "error: --frame-base must be 0 or 1, got 2"),
    T("predict", "--frame-base"),
    C(
        "predict",
        "--bbox",
        NEGATIVE,
        "--bbox 1,2,-3,5",
        "error: --bbox width and height must be positive, got '1,2,-3,5'",
    ),
    C("predict", "--bbox", ZERO, "--bbox 1,2,0,5", "error: --bbox width and height must be positive, got '1,2,0,5'"),
    C("predict", "--bbox", TYPE, "--bbox abc", "error: --bbox must be x,y,w,h (four numbers, image pixels), got 'abc'"),
    C(
        "predict",
        "model",
        MISSING,
        "{missing}.safetensors {img}",
        "error: checkpoint not found: {missing}.safetensors",
        base=(),
    ),
    C("predict", "input_path", MISSING, "hg1x16 {missing}.png", "error: input not found: {missing}.png", base=()),
    C(
        "predict",
        "--out",
        UNDER_FILE,
        "--out {file}/predictions",
        "error: cannot create output folder {file}/predictions: {file} is a file",
    ),
    C("predict", "--out", IS_FILE, "--out {file}", _UNDER),
    *_backend("predict"),
    C("predict", "--boxes", MISSING, "--boxes {missing}.json", "error: boxes file not found: {missing}.json"),
    C(
        "predict",
        "--annotations",
        MISSING,
        "--annotations {missing}.json",
        "error: annotation file not found: {missing}.json",
    ),
    C("predict", "--detector", MISSING, "--detector {missing}.onnx", "error: detector not found: {missing}.onnx"),
    C("predict", "--det-score", NEGATIVE, "--det-score -0.1", "error: --det-score must lie in [0, 1], got -0.1"),
    C("predict", "--det-score", RANGE, "--det-score 1.5", "error: --det-score must lie in [0, 1], got 1.5"),
    T("predict", "--det-score"),
    C("predict", "--det-iou", NEGATIVE, "--det-iou -1", "error: --det-iou must lie in [0, 1], got -1.0"),
    C("predict", "--det-iou", RANGE, "--det-iou nan", "error: --det-iou must lie in [0, 1], got nan"),
    T("predict", "--det-iou"),
    # ------------------------------------------------------------------ data synth
    C("data synth", "--count", NEGATIVE, "--count -1", "error: --count must be a positive integer, got -1"),
    C("data synth", "--count", ZERO, "--count 0", "error: --count must be a positive integer, got 0"),
    T("data synth", "--count"),
    C(
        "data synth",
        "--image-size",
        NEGATIVE,
        "--image-size -64",
        "error: synthetic image size must be an integer of at least 32, got -64",
    ),
    C(
        "data synth",
        "--image-size",
        ZERO,
        "--image-size 0",
        "error: synthetic image size must be an integer of at least 32, got 0",
    ),
    C(
        "data synth",
        "--image-size",
        RANGE,
        "--image-size 16",
        "error: synthetic image size must be an integer of at least 32, got 16",
    ),
    T("data synth", "--image-size"),
    # --size: the old spelling of --image-size (hidden), checked the same way.
    C(
        "data synth",
        "--size",
        NEGATIVE,
        "--size -64",
        "error: synthetic image size must be an integer of at least 32, got -64",
        base=_SYNTH_NO_SIZE,
    ),
    C(
        "data synth",
        "--size",
        ZERO,
        "--size 0",
        "error: synthetic image size must be an integer of at least 32, got 0",
        base=_SYNTH_NO_SIZE,
    ),
    C(
        "data synth",
        "--size",
        RANGE,
        "--size 16",
        "error: synthetic image size must be an integer of at least 32, got 16",
        base=_SYNTH_NO_SIZE,
    ),
    C(
        "data synth",
        "--size",
        RANGE,
        "--size 64",
        "error: --size is the old spelling of --image-size: give only --image-size",
    ),
    T("data synth", "--size", base=_SYNTH_NO_SIZE),
    C("data synth", "--seed", NEGATIVE, "--seed -3", "error: synthetic seed must be a non-negative integer, got -3"),
    T("data synth", "--seed"),
    C(
        "data synth",
        "--out",
        UNDER_FILE,
        "--out {file}/synth",
        "error: cannot create output folder {file}/synth: {file} is a file",
    ),
    C("data synth", "--out", IS_FILE, "--out {file}", "error: Invalid value for '--out': dir '{file}' is a file."),
    C("data synth", "--layout", RANGE, "--layout lsp", "error: --layout must be one of mpii, coco, got 'lsp'"),
    C(
        "data synth",
        "--persons",
        NEGATIVE,
        "--layout coco --persons -1",
        "error: synthetic persons must be an integer from 1 to 20, got -1",
    ),
    C(
        "data synth",
        "--persons",
        ZERO,
        "--layout coco --persons 0",
        "error: synthetic persons must be an integer from 1 to 20, got 0",
    ),
    C(
        "data synth",
        "--persons",
        RANGE,
        "--layout coco --persons 21",
        "error: synthetic persons must be an integer from 1 to 20, got 21",
    ),
    T("data synth", "--persons"),
    C(
        "data synth",
        "--detections",
        UNDER_FILE,
        "--layout coco --detections {file}/dets.json",
        "error: cannot create output folder {file}: a file has that name",
    ),
    # ------------------------------------------------------------------ data preview
    C("data preview", "--count", NEGATIVE, "--count -1", "error: --count must be between 1 and 256, got -1"),
    C("data preview", "--count", ZERO, "--count 0", "error: --count must be between 1 and 256, got 0"),
    C("data preview", "--count", RANGE, "--count 257", "error: --count must be between 1 and 256, got 257"),
    T("data preview", "--count"),
    C("data preview", "--input-size", NEGATIVE, "--input-size -64", "error: --input-size must be positive, got -64"),
    C("data preview", "--input-size", ZERO, "--input-size 0", "error: --input-size must be positive, got 0"),
    # Any side of at least 32 px is valid here: the preview crops samples and runs no network,
    # so the multiple-of-64 rule of the other commands does not apply (100 is accepted).
    C(
        "data preview",
        "--input-size",
        RANGE,
        "--input-size 16",
        "error: synthetic image size must be an integer of at least 32, got 16",
    ),
    T("data preview", "--input-size"),
    C("data preview", "--start", NEGATIVE, "--start -1", "error: the dataset has 500 samples, cannot show -1..0"),
    C("data preview", "--start", RANGE, "--start 500", "error: the dataset has 500 samples, cannot show 500..501"),
    T("data preview", "--start"),
    C("data preview", "--data", MISSING, "--data mpii:{missing}", "error: mpii data not found: {missing}"),
    C("data preview", "--output", UNDER_FILE, "--output {file}/preview.png", _UNDER),
    C(
        "data preview",
        "--output",
        IS_DIR,
        "--output {dir}",
        "error: Invalid value for '--output' / '-o': file '{dir}' is a directory.",
    ),
    # --out: the old spelling of --output (hidden), checked the same way.
    C("data preview", "--out", UNDER_FILE, "--out {file}/preview.png", _UNDER, base=_PREVIEW_NO_OUTPUT),
    C(
        "data preview",
        "--out",
        RANGE,
        "--out preview.png",
        "error: --out is the old spelling of --output: give only --output",
    ),
    # ------------------------------------------------------------------ input conventions
    *[case for command in ("eval", "predict", "export", "bench") for case in _convention(command)],
    *[case for command in ("distill", "prune", "prune-sweep") for case in _convention(command, "--teacher-input")],
]

# Where zero is a meaningful value, not a mistake (so the table has no "zero" case for it).
ZERO_IS_VALID: dict[tuple[str, str], str] = {
    ("predict", "--frame-base"): "0 is the default numbering (0-based frames)",
    **{(cmd, "--eval-every"): "0 validates only at the end" for cmd in ("train", "distill")},
    **{(cmd, "--save-every"): "0 checkpoints only at the end" for cmd in ("train", "distill")},
    **{(cmd, "--workers"): "0 loads data in the main process" for cmd in ("train", "distill", "eval", "prune-sweep")},
    **{(cmd, "--seed"): "0 is a seed like any other" for cmd in ("train", "distill", "prune-sweep", "data synth")},
    **{(cmd, "--weight-decay"): "0 is no weight decay (the default)" for cmd in ("train", "distill")},
    **{(cmd, "--recalibrate-bn"): "0 turns BN re-estimation off (the default)" for cmd in ("prune", "prune-sweep")},
    ("distill", "--alpha"): "0 is ground truth only, no distillation term",
    ("prune-sweep", "--alpha"): "0 is ground truth only, no distillation term",
    ("prune-sweep", "--max-drop"): "0 asks for no PCKh loss at all",
    ("export", "--validation-samples"): "0 skips the fp32 vs fp16/int8 accuracy check",
    ("bench", "--warmup"): "0 times from the first iteration",
    ("bench", "--spin-us"): "0 makes ONNX Runtime's idle threads sleep at once",
    ("bench", "--accuracy"): "0 scores nothing (the default)",
    ("predict", "--min-score"): "0 draws every joint with a non-negative peak (the default)",
    ("predict", "--det-score"): "0 keeps every anchor whose best class is the person",
    ("predict", "--det-iou"): "0 suppresses every box that overlaps a better one at all",
    ("data preview", "--start"): "0 is the first sample (the default)",
}
# Where a negative value is meaningful.
NEGATIVE_IS_VALID: dict[tuple[str, str], str] = {
    ("predict", "--min-score"): "heatmap peaks of a weak model can be negative; a negative floor draws them",
}
# Options that are numbers written as text (lists, K/N, boxes): each needs at least one case.
NUMERIC_TEXT_OPTIONS = {"--stacks", "--channels", "--blocks", "--batch", "--shard", "--bbox"}
# The input-convention override group: text options with bad values of their own.
CONVENTION_OPTIONS = {
    f"{prefix}-{name}" for prefix in ("--input", "--teacher-input") for name in ("convention", "order", "mean", "std")
}
# Options (or arguments) that name a file or folder, by name.
PATH_OPTIONS = {
    "--out",
    "--output",
    "--config",
    "--teacher",
    "--resume",
    "--init",
    "--student-init",
    "--data",
    "--calibration-data",
    "--predictions",
    "--ground-truth",
    "--save-predictions",
    "--plot",
    "--unlabeled",
    "--accuracy-data",
    "--boxes",
    "--annotations",
    "--detector",
}
PATH_ARGUMENTS = {"model", "models", "checkpoint", "input_path"}
# Numeric or path options for which no bad value exists, with the reason: (command, option).
# An entry here needs a reason a reviewer would accept, not "not validated yet".
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    # Named like train's --init CKPT, but a choice (scratch, teacher or both), not a path.
    ("prune-sweep", "--init"): "a choice of scratch/teacher/both, not a file",
}


# ----------------------------------------------------------------------------- running a case
def _fill(text: str, values: dict[str, str]) -> str:
    for key in PLACEHOLDERS:
        text = text.replace("{" + key + "}", values[key])
    return text


def _wrong_type_line(option: str, err: str) -> bool:
    """Click's line for a value of the wrong type, e.g. ``error: Invalid value for '--lr': Input
    should be a valid number, unable to parse string as a number``."""
    pattern = (
        rf"error: Invalid value for '{re.escape(option)}'(?: / '-\w')?: "
        r"Input should be a valid (?:integer|number), unable to parse string as an? (?:integer|number)"
    )
    return re.fullmatch(pattern, err) is not None


def _tree_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_option(
    case: Case,
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    shown_args = " ".join(_fill(a, SHOWN) for a in case.args)
    expected = "exit 2, one line: " + (_fill(case.error, SHOWN) if case.error else "Invalid value for ... (Click)")
    reliability.describe("bad option", f"fpdctl {case.command} {shown_args} ({case.kind})", expected)

    real = {k: str(v) for k, v in files.items()}
    base = BASE[case.command] if case.base is None else case.base
    argv = [*case.command.split(), *(_fill(a, real) for a in base), *(_fill(a, real) for a in case.args)]
    hashes = {k: _sha256(files[k]) for k in ("ckpt", "img", "pred", "file")}
    assert not any(files["dir"].iterdir())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    capfd.readouterr()

    start = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - start
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    shown = " | ".join(lines).replace(f"{files['file'].parent}{os.sep}", "") if lines else "(nothing on stderr)"
    reliability.observe(f"exit {code}: {shown}")
    reliability.observe(f"{seconds:.2f} s")

    assert "Traceback" not in out + err
    assert code == 2, err
    assert len(lines) == 1 and err.strip() == lines[0], err
    if case.error is None:
        assert _wrong_type_line(case.option, lines[0]), lines[0]
    else:
        assert lines[0] == _fill(case.error, real)
    assert out == ""
    assert _tree_files(work) == [], "a failed command left files behind"
    assert not os.path.lexists(files["missing"]) and not list(files["missing"].parent.glob("missing*"))
    assert {k: _sha256(files[k]) for k in hashes} == hashes
    assert not any(files["dir"].iterdir()), "a failed command wrote into the folder given as a file"
    assert seconds < 5.0, f"took {seconds:.1f} s: validation must come before the heavy work"


# ----------------------------------------------------------------------------- coverage
def _commands() -> list[tuple[str, object]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, object]] = []

    def walk(command: object, prefix: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*prefix, name])
        else:
            found.append((" ".join(prefix), command))

    walk(root, [])
    return found


def _annotation(param: object) -> object:
    annotation = param.type_descriptor.annotation  # type: ignore[attr-defined]
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    return args[0] if getattr(annotation, "__origin__", None) is not None and len(args) == 1 else annotation


def test_every_numeric_and_path_option_has_cases(reliability) -> None:  # type: ignore[no-untyped-def]
    """A new numeric or path option without a case (or a reason it needs none) fails here."""
    reliability.describe(
        "bad option",
        "every int/float/path option of every subcommand (command-tree walk)",
        "each has negative, zero (or a reason zero is valid), wrong-type or missing/unwritable cases",
    )
    commands = _commands()
    names = {name for name, _ in commands}
    assert {
        "profile",
        "eval",
        "train",
        "distill",
        "prune",
        "prune-sweep",
        "export",
        "bench",
        "predict",
        "data synth",
        "data preview",
    } <= names

    kinds: dict[tuple[str, str], set[str]] = {}
    for case in CASES:
        kinds.setdefault((case.command, case.option), set()).add(case.kind)

    missing: list[str] = []
    checked = 0
    for name, command in commands:
        for param in command.params:  # type: ignore[attr-defined]
            if getattr(param, "is_flag", False):  # --flag/--no-flag: no value to get wrong
                continue
            key = param.opts[0] if param.opts[0].startswith("-") else param.name
            where = (name, key)
            if where in NOT_APPLICABLE:
                continue
            have = kinds.get(where, set())
            annotation = _annotation(param)
            if annotation in (int, float):
                checked += 1
                if TYPE not in have:
                    missing.append(f"{name} {key}: no wrong-type case")
                if NEGATIVE not in have and where not in NEGATIVE_IS_VALID:
                    missing.append(f"{name} {key}: no negative case")
                if ZERO not in have and where not in ZERO_IS_VALID and where not in NEGATIVE_IS_VALID:
                    missing.append(f"{name} {key}: no zero case and no reason zero is valid")
            elif key in NUMERIC_TEXT_OPTIONS:
                checked += 1
                if not have:
                    missing.append(f"{name} {key}: no case")
            elif key in CONVENTION_OPTIONS:
                checked += 1
                if not have:
                    missing.append(f"{name} {key}: no bad-value case")
            elif key in PATH_OPTIONS or key in PATH_ARGUMENTS or annotation is Path:
                checked += 1
                if not have & {MISSING, UNDER_FILE, IS_FILE, IS_DIR}:
                    missing.append(f"{name} {key}: no missing-input or unwritable-output case")
    reliability.observe(f"{checked} options checked, {len(CASES)} cases, {len(missing)} without cases")
    assert not missing, "\n".join(missing)
    # The table names no option the CLI does not have (a renamed option would leave a dead case).
    real = {
        (name, p.opts[0] if p.opts[0].startswith("-") else p.name)
        for name, command in commands
        for p in command.params  # type: ignore[attr-defined]
    }
    assert not set(kinds) - real, sorted(set(kinds) - real)
    # Every allow-list entry is a real option too.
    for allow in (ZERO_IS_VALID, NEGATIVE_IS_VALID, NOT_APPLICABLE):
        assert not set(allow) - real, sorted(set(allow) - real)


# ----------------------------------------------------------------------------- the console script
FPDCTL = Path(sys.executable).with_name("fpdctl")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["train", "--model", "hg1x16", "--batch-size", "abc", "--out", "run"],
            "error: Invalid value for '--batch-size': Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        (["bench", "hg1x16", "--duration", "inf"], "error: --duration must be a positive number of seconds, got inf"),
    ],
    ids=["click-wrong-type", "fpdctl-usage-error"],
)
def test_console_script_prints_one_line(
    args: list[str],
    line: str,
    tmp_path: Path,
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    """The installed ``fpdctl`` (a real process, real stderr file descriptor) prints the same one line."""
    reliability.describe("bad option", f"console script: fpdctl {' '.join(args)}", f"exit 2, one line: {line}")
    if not FPDCTL.is_file():
        pytest.skip(f"no console script beside {sys.executable}")
    env = {k: v for k, v in os.environ.items() if k != "FPDCTL_DEBUG"}
    proc = subprocess.run([str(FPDCTL), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    reliability.observe(f"exit {proc.returncode}: {proc.stderr.strip()}")
    assert proc.returncode == 2
    assert proc.stderr == line + "\n"
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []
