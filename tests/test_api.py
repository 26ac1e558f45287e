"""The Python API (:mod:`fpdctl.api`, the top level of ``fpdctl``): the README's example runs as
it is written, and each function gives what its command gives."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import fpdctl

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_examples() -> list[str]:
    """The python code blocks of README.md's "Python API" section: ``Pose`` on PyTorch, the
    same on ONNX Runtime, then the commands as functions."""
    text = README.read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 3, "the Python API section holds three python blocks"
    return blocks


def test_the_readme_pose_example_runs_on_pytorch_and_onnx_runtime(tmp_path, monkeypatch) -> None:
    import numpy as np

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    torch_block, ort_block, _ = readme_examples()
    exec(compile(torch_block, str(README), "exec"), namespace)  # noqa: S102  (our own README)
    pose, result, score, onnx = namespace["pose"], namespace["result"], namespace["score"], namespace["onnx"]
    assert (pose.backend.name, pose.input_size, pose.spec.name) == ("torch", 128, "hg2x64")
    assert result.keypoints.shape == (2, 16, 2) and result.scores.shape == (2, 16)
    np.testing.assert_array_equal(result.boxes, namespace["boxes"])
    assert namespace["drawn"].shape == (240, 320, 3) and (namespace["drawn"] != 0).any()
    assert score.num_persons == 64 and score.flip_test and score.input_size == 128 and score.backend == "torch"
    assert onnx.info.input_size == 128 and (tmp_path / "teacher.onnx").is_file()

    exec(compile(ort_block, str(README), "exec"), namespace)  # noqa: S102
    deployed, on_ort = namespace["deployed"], namespace["on_ort"]
    assert (deployed.backend.name, deployed.input_size) == ("ort", 128)
    np.testing.assert_allclose(on_ort.keypoints, result.keypoints, atol=1e-3)
    assert deployed.val("synthetic:size=64").metric.mean == pytest.approx(score.metric.mean, abs=1e-6)


# Over 20 s in a full run on two busy cores: the README's API example as written. The default run
# makes the same calls on a tiny model (test_distill_evaluate_export_through_the_api).
@pytest.mark.slow
def test_the_readme_example_runs(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_examples()[2], str(README), "exec"), namespace)  # noqa: S102  (our own README)
    run, score, onnx = namespace["run"], namespace["score"], namespace["onnx"]
    assert run.status == "completed" and run.steps == 20
    assert run.run_dir == tmp_path / "runs" / "api-student" and (run.run_dir / "last.safetensors").is_file()
    assert run.metric == "pckh" and 0.0 <= run.final_eval["pckh"]["mean"] <= 100.0
    assert score.num_persons == 64 and score.flip_test and score.input_size == 128
    assert onnx.path == Path("api-student.onnx") and (tmp_path / "api-student.onnx").is_file()
    # The API scores exactly what the command prints.
    from fpdctl.cli.app import main

    capsys.readouterr()
    code = main(["eval", str(run.run_dir / "last.safetensors"), "--data", "synthetic:size=64", "--format", "json"])
    import json

    assert code == 0
    assert json.loads(capsys.readouterr().out)["pckh"]["mean"] == pytest.approx(score.metric.mean, abs=1e-9)
    assert namespace["teacher"].training is False


def test_distill_evaluate_export_through_the_api(tmp_path, tiny_checkpoint) -> None:
    """The README example's calls, tiny: distill, evaluate and export from the top level."""
    run = fpdctl.distill(
        teacher=str(tiny_checkpoint),
        student="hg1x16",
        data="synthetic:length=8",
        input_size=64,
        max_steps=2,
        batch_size=4,
        eval_every=0,
        val_limit=4,
        workers=0,
        out=str(tmp_path / "run"),
    )
    assert run.status == "completed" and run.steps == 2 and (run.run_dir / "last.safetensors").is_file()
    score = fpdctl.evaluate(run.run_dir / "last.safetensors", data="synthetic:size=4")
    assert score.num_persons == 4 and score.flip_test and score.input_size == 64
    onnx = fpdctl.export(run.run_dir / "last.safetensors", tmp_path / "student.onnx")
    assert onnx.path == tmp_path / "student.onnx" and onnx.info.spec.name == "hg1x16" and onnx.path.is_file()


def test_import_fpdctl_stays_cheap() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, fpdctl; fpdctl.__all__; "
            "print(sorted(m for m in sys.modules if m.startswith(('torch', 'fpdctl.'))))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_public_name_resolves_and_has_a_docstring() -> None:
    for name in fpdctl.__all__:
        value = getattr(fpdctl, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), name
    assert callable(fpdctl.evaluate) and callable(fpdctl.train)


def test_evaluate_and_train_are_plain_functions_in_any_import_order() -> None:
    import inspect

    import fpdctl.evaluation  # noqa: F401  (importing the code behind them rebinds nothing)
    import fpdctl.training  # noqa: F401
    from fpdctl import api

    assert fpdctl.evaluate is api.evaluate and fpdctl.train is api.train
    assert inspect.isfunction(fpdctl.evaluate) and inspect.isfunction(fpdctl.train)
    assert "flip_test" in inspect.signature(fpdctl.evaluate).parameters
    result = fpdctl.evaluate("hg1x16", data="synthetic:size=3", input_size=64, flip_test=False)
    assert result.num_persons == 3 and result.flip_test is False


def test_load_model_gives_the_shipped_teacher_in_eval_mode() -> None:
    net = fpdctl.load_model("synthetic-hg2x64")
    assert net.spec.name == "hg2x64" and net.training is False
    assert not any(m.training for m in net.modules())


def test_profile_reads_the_commands_defaults() -> None:
    from fpdctl.models.spec import DEFAULT_INPUT_SIZE, TEACHER_MODEL
    from fpdctl.profiling.profile import paper_grid

    rows = fpdctl.profile(["hg1x16"])
    assert [r.model for r in rows] == ["hg1x16"] and rows[0].input_size == DEFAULT_INPUT_SIZE
    grid = fpdctl.profile()
    assert len(grid) == len(paper_grid()) + (TEACHER_MODEL not in {s.name for s in paper_grid()})
