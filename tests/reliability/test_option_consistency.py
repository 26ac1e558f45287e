"""Issue #24, the option half: one spelling per concept, one case rule, and a word when an option
changes nothing.

* One spelling per concept across commands: ``--flip-test`` (train, distill and now eval),
  ``--image-size`` for the side of the images ``data synth`` draws (``synthetic:image_size=N``;
  ``--input-size`` is the network input everywhere), ``-o`` = ``--output``, the one file a command
  writes (``data preview``'s PNG; ``data synth`` writes a folder: ``--out DIR``, as predict and
  train). The old spellings work, hidden from --help; both spellings at once are refused.
* Choice options match any case (``--layout COCO`` as ``--pixel-order RGB``), through one helper.
* An option that changes nothing says so on stderr, one ``warning:`` line each.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer.main

from fpdctl.cli.app import app, main
from tests.data.coco_fixtures import ground_truth_as_results, make_ground_truth

AREA = "option consistency"
_EVAL = ("--data", "synthetic:length=4", "--input-size", "64", "--device", "cpu", "--format", "json")


@pytest.fixture
def model(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A checkpoint (a model name would get new random weights at each run)."""
    path = tmp_path / "model.safetensors"
    shutil.copyfile(tiny_checkpoint, path)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _params(command: str) -> dict[str, Any]:
    """Option name -> Click parameter of ``fpdctl COMMAND`` (``data synth``: two words)."""
    node: Any = typer.main.get_command(app)
    for word in command.split():
        node = node.commands[word]
    return {opt: p for p in node.params for opt in [*p.opts, *getattr(p, "secondary_opts", [])]}


# ----------------------------------------------------------------------------- spellings
# (command, new spelling, old spelling kept as a hidden alias)
RENAMED = [
    ("eval", "--flip-test", "--flip"),
    ("eval", "--no-flip-test", "--no-flip"),
    ("export", "--flip-test", "--flip"),
    ("export", "--no-flip-test", "--no-flip"),
    ("data synth", "--image-size", "--size"),
    ("data preview", "--output", "--out"),
]


@pytest.mark.parametrize("command, new, old", RENAMED, ids=[f"{c} {o}" for c, _, o in RENAMED])
def test_old_spelling_is_a_hidden_alias(
    command: str, new: str, old: str, reliability: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    reliability.describe(
        AREA,
        f"fpdctl {command} --help; {old} next to {new}",
        f"{new} shown, {old} hidden but accepted; both at once: exit 2, one line",
    )
    params = _params(command)
    assert not params[new].hidden and params[old].hidden
    code, out, _ = _run(capsys, *command.split(), "--help")
    assert code == 0
    shown = set(re.findall(r"--[a-z][a-z-]*", out))
    assert new in shown and old not in shown
    reliability.observe(f"--help shows {new}, not {old}")


def test_export_flip_spellings_are_one_option(
    reliability: Any, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reliability.describe(
        AREA,
        "export --no-flip --flip-test (the old and the new spelling of the flip test at once)",
        "exit 2, one line; nothing written",
    )
    out = tmp_path / "m.onnx"
    code, stdout, err = _run(capsys, "export", model, "-o", out, "--no-flip", "--flip-test")
    line = err.strip()
    reliability.observe(f"exit {code}: {line}")
    assert (code, stdout) == (2, "") and not out.exists()
    assert line == "error: --flip is the old spelling of --flip-test: give only --flip-test"


def test_one_flip_test_parameter_in_the_library() -> None:
    """Every library function that can run the flip test calls it ``flip_test``, as the CLI's
    --flip-test and TrainConfig do."""
    import inspect

    import fpdctl.api
    from fpdctl.deploy.export import export_onnx
    from fpdctl.deploy.pose import Pose
    from fpdctl.evaluation import EvalResult, evaluate_checkpoint, evaluate_model, predict_dataset
    from fpdctl.training.config import TrainConfig

    for function in (
        evaluate_checkpoint,
        evaluate_model,
        predict_dataset,
        export_onnx,
        Pose.val,
        Pose.export,
        fpdctl.api.evaluate,
        fpdctl.api.export,
    ):
        names = inspect.signature(function).parameters
        assert "flip_test" in names and "flip" not in names, function.__name__
    assert "flip_test" in EvalResult.__dataclass_fields__ and "flip" not in EvalResult.__dataclass_fields__
    assert "flip_test" in TrainConfig.__dataclass_fields__


def test_eval_flip_spellings_give_the_same_result(
    reliability: Any, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reliability.describe(
        AREA,
        "eval --no-flip-test, eval --no-flip (old), eval --no-flip --flip-test",
        "the first two: the same JSON, flip off; the third: exit 2, one line",
    )
    reports = {}
    for flag in ("--no-flip-test", "--no-flip", "--flip-test"):
        code, out, err = _run(capsys, "eval", model, *_EVAL, flag, "--format", "markdown")
        assert code == 0, err
        reports[flag] = re.sub(r"in [0-9.]+ s \([0-9.]+/s\)", "", out)  # the time differs between runs
    assert reports["--no-flip-test"] == reports["--no-flip"] and "flip test off" in reports["--no-flip"]
    assert "flip test on" in reports["--flip-test"]
    code, out, err = _run(capsys, "eval", model, *_EVAL, "--no-flip", "--flip-test")
    line = err.strip()
    reliability.observe(f"same JSON; both: exit {code}: {line}")
    assert (code, out) == (2, "")
    assert line == "error: --flip is the old spelling of --flip-test: give only --flip-test"


def test_data_synth_image_size_and_its_old_spelling(
    reliability: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reliability.describe(
        AREA,
        "data synth --image-size 64; --size 64 (old); -o DIR",
        "the same files from both spellings; -o is no folder option: exit 2",
    )
    written = {}
    for flag in ("--image-size", "--size"):
        out_dir = tmp_path / flag.strip("-")
        code, out, err = _run(capsys, "data", "synth", "--out", out_dir, "--count", "2", flag, "64")
        assert code == 0, err
        assert "(64 px, seed 0)" in out
        written[flag] = {p.relative_to(out_dir).as_posix(): p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    assert written["--image-size"] == written["--size"] and written["--size"]
    code, out, err = _run(capsys, "data", "synth", "-o", tmp_path / "short", "--count", "2")
    reliability.observe(f"identical {len(written['--size'])} files; -o: exit {code}: {err.strip()}")
    assert (code, out, err.strip()) == (2, "", "error: No such option: -o")
    assert not (tmp_path / "short").exists()


def test_minus_o_is_the_one_file_a_command_writes(reliability: Any) -> None:
    """-o is --output in every command that has it, and no command takes a folder through it."""
    reliability.describe(AREA, "every command's -o", "-o is --output (a file) everywhere")
    root = typer.main.get_command(app)
    commands: list[tuple[str, Any]] = []

    def walk(node: Any, prefix: str) -> None:
        for name, sub in getattr(node, "commands", {}).items():
            if getattr(sub, "commands", None):
                walk(sub, f"{prefix} {name}".strip())
            else:
                commands.append((f"{prefix} {name}".strip(), sub))

    walk(root, "")
    owners = {name: p for name, command in commands for p in command.params if "-o" in p.opts}
    reliability.observe(", ".join(sorted(owners)))
    assert {"eval", "bench", "export", "prune", "models", "profile", "data preview"} <= set(owners)
    assert {p.opts[0] for p in owners.values()} == {"--output"}
    assert "data synth" not in owners  # its --out is a folder


def test_data_preview_output_and_its_old_spelling(
    reliability: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reliability.describe(
        AREA, "data preview -o P.png; --out P.png (old); neither", "the same PNG; neither: exit 2, one line"
    )
    pngs = []
    for flag in ("-o", "--out"):
        png = tmp_path / f"{flag.strip('-')}.png"
        code, _, err = _run(capsys, "data", "preview", flag, png, "--count", "2", "--input-size", "64")
        assert code == 0, err
        pngs.append(png.read_bytes())
    assert pngs[0] == pngs[1]
    code, out, err = _run(capsys, "data", "preview", "--count", "2")
    reliability.observe(f"same PNG; neither: exit {code}: {err.strip()}")
    assert (code, out, err.strip()) == (2, "", "error: data preview needs --output (-o), the PNG file to write")


# ----------------------------------------------------------------------------- case
def test_choice_options_match_any_case(reliability: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reliability.describe(
        AREA,
        "data synth --layout COCO --split VAL; models --format JSON; "
        "export --embed-preprocess --pixel-order RGB --precision FP32",
        "accepted as coco, val, json, rgb, fp32 (was: --layout COCO refused)",
    )
    code, out, err = _run(
        capsys,
        "data",
        "synth",
        "--out",
        tmp_path / "coco",
        "--count",
        "2",
        "--image-size",
        "64",
        "--layout",
        "COCO",
        "--split",
        "VAL",
    )
    assert code == 0, err
    assert (tmp_path / "coco" / "annotations" / "person_keypoints_val2017.json").is_file()
    code, out, err = _run(capsys, "models", "--format", "JSON")
    assert code == 0, err
    assert "pretrained" in json.loads(out)
    onnx_path = tmp_path / "rgb.onnx"
    code, out, err = _run(
        capsys,
        "export",
        "hg1x16",
        "-o",
        onnx_path,
        "--input-size",
        "64",
        "--no-verify",
        "--embed-preprocess",
        "--pixel-order",
        "RGB",
        "--precision",
        "FP32",
        "--format",
        "Json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["precision"] == "fp32" and report["graph_io"]["pixel_order"] == "rgb"
    code, out, err = _run(capsys, "data", "synth", "--out", tmp_path / "bad", "--count", "2", "--layout", "LSP")
    reliability.observe(f"all accepted; --layout LSP: exit {code}: {err.strip()}")
    assert (code, err.strip()) == (2, "error: --layout must be one of mpii, coco, got 'LSP'")


def test_one_helper_matches_every_choice(reliability: Any) -> None:
    """The case rule at each place a choice is read (the CLI and the core functions behind it)."""
    from fpdctl.deploy.preprocess_decode import parse_embedding
    from fpdctl.models.convention import ConventionOverride
    from fpdctl.prune.importance import check_importance
    from fpdctl.prune.slicing import check_stack_strategy
    from fpdctl.sweep.grid import parse_inits
    from fpdctl.training.config import coerce_options
    from fpdctl.utils.choices import match_choice, parse_choice

    reliability.describe(
        AREA, "BN, First-Last, Teacher, RGB, Native, ADAM, BF16, Uniform, MSE", "each matched to its lower-case choice"
    )
    assert parse_choice(" Markdown ", ("table", "markdown"), "--format") == "markdown"
    assert match_choice("COCO", ("mpii", "coco")) == "coco" and match_choice("lsp", ("mpii", "coco")) is None
    assert check_importance("BN") == "bn" and check_stack_strategy("First-Last") == "first-last"
    assert parse_inits("Teacher,SCRATCH") == ("teacher", "scratch") and parse_inits("Both") == ("scratch", "teacher")
    assert parse_embedding(True, False, "RGB").pixel_order == "rgb"
    from fpdctl.models.convention import NATIVE

    convention = ConventionOverride("Native", "BGR", None, None).check().apply(NATIVE)
    assert convention.order == "bgr"
    options = coerce_options(
        {"optimizer": "ADAM", "precision": "BF16", "augment-style": "Uniform", "kd_loss": "MSE"}, source="test"
    )
    assert options == {"optimizer": "adam", "precision": "bf16", "augment_style": "uniform", "kd_loss": "mse"}
    reliability.observe("all matched")


# ----------------------------------------------------------------------------- no effect
def test_eval_options_without_effect_on_a_prediction_file(
    reliability: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reliability.describe(
        AREA,
        "eval --predictions R --ground-truth G --device cpu --no-flip-test --batch-size 8",
        "scores as without them; one warning line per option that runs nothing",
    )
    gt, results = tmp_path / "gt.json", tmp_path / "results.json"
    gt.write_text(json.dumps(make_ground_truth()))
    results.write_text(json.dumps(ground_truth_as_results(make_ground_truth())))
    base = ("eval", "--predictions", results, "--ground-truth", gt, "--format", "json")
    code, plain, err = _run(capsys, *base)
    assert code == 0 and err == "", err
    code, out, err = _run(capsys, *base, "--device", "cpu", "--no-flip-test", "--batch-size", "8")
    reliability.observe(f"exit {code}: {' | '.join(err.strip().splitlines())}")
    assert code == 0 and out == plain
    why = "with --predictions (it scores a file; no model runs)"
    assert err.strip().splitlines() == [
        f"warning: --flip-test/--no-flip-test has no effect {why}",
        f"warning: --batch-size has no effect {why}",
        f"warning: --device has no effect {why}",
    ]


def test_eval_per_joint_with_json(reliability: Any, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reliability.describe(
        AREA,
        "eval MODEL --per-joint --format json",
        "the same JSON as without --per-joint (it always holds per_joint); one warning line",
    )
    code, plain, err = _run(capsys, "eval", model, *_EVAL, "--no-flip-test")
    assert code == 0, err
    code, out, err = _run(capsys, "eval", model, *_EVAL, "--no-flip-test", "--per-joint")
    reliability.observe(f"exit {code}: {err.strip()}")
    assert code == 0

    def strip(text: str) -> dict[str, Any]:  # less the timings, which differ between runs
        return {k: v for k, v in json.loads(text).items() if k not in ("seconds", "persons_per_second")}

    assert strip(out) == strip(plain) and len(json.loads(out)["per_joint"]) == 16
    assert err.strip() == "warning: --per-joint has no effect with --format json (its per_joint field is always there)"


# Over 20 s in a full run on two busy cores: several full exports.
@pytest.mark.slow
def test_export_calibration_options_without_int8(
    reliability: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reliability.describe(
        AREA,
        "export --precision fp32 --calibration-samples 8 --calibration-data synthetic --validation-samples 4",
        "written as without them; one warning line per option",
    )
    code, _, err = _run(
        capsys,
        "export",
        "hg1x16",
        "-o",
        tmp_path / "m.onnx",
        "--input-size",
        "64",
        "--no-verify",
        "--calibration-samples",
        "8",
        "--calibration-data",
        "synthetic",
        "--validation-samples",
        "4",
    )
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    reliability.observe(f"exit {code}: {' | '.join(warnings)}")
    assert code == 0, err
    assert warnings == [
        "warning: --calibration-samples has no effect without --precision int8 (nothing is calibrated)",
        "warning: --calibration-data has no effect with --precision fp32 "
        "(no reduced precision to calibrate or score against fp32)",
        "warning: --validation-samples has no effect with --precision fp32 "
        "(no reduced precision to calibrate or score against fp32)",
    ]
    assert (tmp_path / "m.onnx").is_file()


def test_bench_accuracy_data_without_accuracy(reliability: Any, capsys: pytest.CaptureFixture[str]) -> None:
    reliability.describe(
        AREA, "bench MODEL --accuracy-data synthetic (no --accuracy)", "benchmarks as usual; one warning line"
    )
    code, _, err = _run(
        capsys,
        "bench",
        "hg1x16",
        "--input-size",
        "64",
        "--backend",
        "torch",
        "--device",
        "cpu",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--accuracy-data",
        "synthetic",
        "--format",
        "json",
    )
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    reliability.observe(f"exit {code}: {' | '.join(warnings)}")
    assert code == 0, err
    assert warnings == ["warning: --accuracy-data has no effect without --accuracy N (no row is scored)"]


def test_bench_onnx_options_on_torch_rows(reliability: Any, capsys: pytest.CaptureFixture[str]) -> None:
    reliability.describe(
        AREA, "bench MODEL --backend torch --spin-us 0", "benchmarks the PyTorch row; one warning line"
    )
    code, out, err = _run(
        capsys,
        "bench",
        "hg1x16",
        "--input-size",
        "64",
        "--backend",
        "torch",
        "--device",
        "cpu",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--spin-us",
        "0",
        "--format",
        "json",
    )
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    reliability.observe(f"exit {code}: {' | '.join(warnings)}")
    assert code == 0, err
    assert [row["runtime"] for row in json.loads(out)] == ["torch"]
    assert warnings == ["warning: --spin-us has no effect with --backend torch (it sets ONNX Runtime's idle threads)"]


def test_no_warning_where_the_option_matters(reliability: Any, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reliability.describe(AREA, "eval MODEL --device cpu --batch-size 2 (a model run)", "no warning")
    code, _, err = _run(capsys, "eval", model, *_EVAL, "--no-flip-test", "--batch-size", "2")
    reliability.observe(f"exit {code}; stderr {err.strip()!r}")
    assert code == 0 and "warning" not in err
