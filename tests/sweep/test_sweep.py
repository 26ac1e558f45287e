"""prune-sweep: the grid, shards, resume, merged summaries, the recommendation and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fpdctl.cli.app import main
from fpdctl.errors import UsageError
from fpdctl.models.checkpoint import save_model
from fpdctl.models.factory import create_model
from fpdctl.models.hourglass import count_parameters
from fpdctl.models.spec import HourglassSpec
from fpdctl.profiling.analytic import analytic_cost
from fpdctl.progress import Event
from fpdctl.sweep.grid import INITS, build_grid, parse_inits, parse_shard, shard_items
from fpdctl.sweep.pareto import pareto_front, recommend
from fpdctl.sweep.results import CONFIGS_DIR, PLOT_FILE, RUNS_DIR, SUMMARY_FILE, summarize
from fpdctl.sweep.run import SweepSettings, fine_tune_config, run_sweep
from fpdctl.training.config import TrainConfig

INPUT = 32  # depth-2 hourglasses: the smallest input the family allows
TEACHER = HourglassSpec(2, 16, depth=2)


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_model(create_model(TEACHER), tmp_path_factory.mktemp("teacher") / "teacher.safetensors")


# SweepSettings' own fields; every other change is a fine-tune (TrainConfig) option.
SWEEP_FIELDS = {"importance", "stack_strategy", "recalibrate_bn", "latency"}


def _settings(teacher: Path, **changes: object) -> SweepSettings:
    train: dict[str, object] = dict(
        data="synthetic:size=8",
        input_size=INPUT,
        max_steps=1,
        batch_size=2,
        val_limit=4,
        flip_test=False,
        device="cpu",
        workers=0,
    )
    own: dict[str, object] = dict(latency=False)
    for name, value in changes.items():
        (own if name in SWEEP_FIELDS else train)[name] = value
    return SweepSettings(train=fine_tune_config(str(teacher), TEACHER, train), **own)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shard_events() -> tuple[list[Event], list[Event]]:
    """The progress events of the two shards of ``sharded_sweep``."""
    return [], []


@pytest.fixture(scope="module")
def sharded_sweep(
    teacher_file: Path, tmp_path_factory: pytest.TempPathFactory, shard_events: tuple[list[Event], list[Event]]
):
    """A two-config sweep (scratch and sliced hg2x16d2) run as two shards into one directory."""
    out = tmp_path_factory.mktemp("sweep") / "out"
    grid = build_grid(TEACHER, [2], [16], [1], INITS)
    first = run_sweep(_settings(teacher_file), grid, out, shard=(1, 2), progress=shard_events[0].append)
    second = run_sweep(_settings(teacher_file), grid, out, shard=(2, 2), progress=shard_events[1].append)
    return out, grid, first, second


def test_progress_events_of_a_sweep(sharded_sweep, shard_events: tuple[list[Event], list[Event]]) -> None:
    _, grid, first, second = sharded_sweep
    first_events, second_events = shard_events
    kinds = [e.kind for e in first_events]
    steps = [e for e in first_events if e.kind == "sweep.train_step"]
    assert kinds == ["sweep.teacher", "sweep.config_start", "sweep.zero_shot"] + ["sweep.train_step"] * len(steps) + [
        "sweep.config_end"
    ]
    teacher, start, zero_shot, *_, end = first_events
    assert teacher.data == first.teacher and not teacher.message.endswith("(cached)")
    assert teacher.message == f"teacher hg2x16d2: PCKh {first.teacher.score:.2f}"
    assert (start.message, start.done, start.total, start.data) == ("hg2x16d2-scratch", 1, 1, grid[0])
    assert zero_shot.data == first.results[0].score_zero_shot
    # The fine-tune's own step logs, forwarded: the last one is the run's final step.
    assert steps and (steps[-1].data.step, steps[-1].done, steps[-1].total) == (1, 1, 1)
    assert end.data == first.results[0]
    assert second_events[0].kind == "sweep.teacher" and second_events[0].message.endswith("(cached)")
    assert second_events[0].data == second.teacher


def test_the_fine_tune_recipe_is_train_config_under_the_sweep_recipe(teacher_file: Path) -> None:
    recipe = fine_tune_config(str(teacher_file), TEACHER, {"input_size": INPUT, "seed": None})
    assert (recipe.max_steps, recipe.lr, recipe.schedule) == (200, 1e-3, "cosine")
    assert (recipe.command, recipe.model, recipe.teacher) == ("distill", "hg2x16d2", str(teacher_file))
    defaults = TrainConfig()
    for name in (
        "alpha",
        "batch_size",
        "data",
        "seed",
        "sigma",
        "device",
        "workers",
        "val_limit",
        "flip_test",
        "epochs",
        "optimizer",
    ):
        assert getattr(recipe, name) == getattr(defaults, name), name
    by_epochs = fine_tune_config(str(teacher_file), TEACHER, {"input_size": INPUT, "epochs": 2, "max_steps": None})
    assert (by_epochs.max_steps, by_epochs.epochs, by_epochs.lr) == (None, 2, 1e-3)
    with pytest.raises(UsageError, match=r"^input size must be a positive multiple of 16 for a depth-2 hourglass"):
        fine_tune_config(str(teacher_file), TEACHER, {"input_size": 40})


def test_shards_run_their_part_and_the_summary_merges(sharded_sweep) -> None:
    out, grid, first, second = sharded_sweep
    assert [i.key for i in grid] == ["hg2x16d2-scratch", "hg2x16d2-teacher"]
    assert first.ran == ["hg2x16d2-scratch"] and first.skipped == []
    assert [r.key for r in first.results] == ["hg2x16d2-scratch"]
    assert second.ran == ["hg2x16d2-teacher"]
    assert [r.key for r in second.results] == ["hg2x16d2-scratch", "hg2x16d2-teacher"]
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert [r["key"] for r in summary["results"]] == ["hg2x16d2-scratch", "hg2x16d2-teacher"]
    pick = summary["recommendation"]
    assert pick["key"] in {"hg2x16d2-scratch", "hg2x16d2-teacher"}
    assert pick["reason"].endswith(".")
    assert pick["model"] == "hg2x16d2"
    assert Path(pick["checkpoint"]) == (out / RUNS_DIR / pick["key"] / "last.safetensors").resolve()
    assert Path(pick["checkpoint"]).is_file()
    assert (out / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in second.results:
        assert row.params == count_parameters(create_model(TEACHER))
        assert row.macs == analytic_cost(TEACHER, INPUT).macs
        assert row.steps == 1
        assert (out / row.checkpoint).is_file()
        assert row.settings["max_steps"] == 1


def test_an_unpruned_slice_scores_exactly_the_teacher_before_training(sharded_sweep) -> None:
    _, _, _, second = sharded_sweep
    sliced = next(r for r in second.results if r.init == "teacher")
    assert second.teacher is not None
    assert sliced.score_zero_shot == second.teacher.score


def test_resume_skips_finished_configs(sharded_sweep, teacher_file: Path, tmp_path: Path) -> None:
    out, grid, _, _ = sharded_sweep
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = {p.name: p.read_bytes() for p in (copy / CONFIGS_DIR).glob("*.json")}
    again = run_sweep(_settings(teacher_file), grid, copy)
    assert again.ran == [] and again.skipped == [i.key for i in grid]
    assert {p.name: p.read_bytes() for p in (copy / CONFIGS_DIR).glob("*.json")} == before
    # An interrupted config (run folder left behind, no result file) runs again, alone.
    (copy / CONFIGS_DIR / "hg2x16d2-teacher.json").unlink()
    (copy / RUNS_DIR / "hg2x16d2-teacher" / "partial.tmp").write_text("left by a killed run")
    resumed = run_sweep(_settings(teacher_file), grid, copy)
    assert resumed.ran == ["hg2x16d2-teacher"] and resumed.skipped == ["hg2x16d2-scratch"]
    assert not (copy / RUNS_DIR / "hg2x16d2-teacher" / "partial.tmp").exists()
    assert len(resumed.results) == 2


def test_a_directory_of_another_sweep_is_refused(sharded_sweep, teacher_file: Path) -> None:
    out, grid, _, _ = sharded_sweep
    with pytest.raises(UsageError) as info:
        run_sweep(_settings(teacher_file, max_steps=2), grid, out)
    path = out / CONFIGS_DIR / "hg2x16d2-scratch.json"
    assert str(info.value) == (
        f"{path} was made with max_steps=1, this sweep has 2; a sweep directory holds one sweep: use another `out`"
    )


def test_summary_only_applies_a_budget(sharded_sweep, capsys: pytest.CaptureFixture[str]) -> None:
    out, _, _, second = sharded_sweep
    macs = second.results[0].macs
    code = main(
        ["prune-sweep", "--summary-only", "--out", str(out), "--budget-macs", str(macs / 1e9 / 2), "--format", "json"]
    )
    assert code == 0
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["recommendation"]["key"] is None
    assert summary["recommendation"]["reason"].startswith("no config fits the budget of")
    assert json.loads(capsys.readouterr().out)[0]["key"] == "hg2x16d2-scratch"
    result = summarize(out, budget_macs=macs * 2)
    best = max(result.results, key=lambda r: (r.score, r.key == "hg2x16d2-scratch"))
    assert result.recommendation.key == best.key


def test_shards_cover_the_grid_exactly_once() -> None:
    grid = build_grid(HourglassSpec(4, 64), [1, 2, 3, 4], [16, 32, 64], [1], INITS)
    assert len(grid) == 24 and grid == sorted(grid)
    for count in range(1, 6):
        parts = [shard_items(grid, k, count) for k in range(1, count + 1)]
        keys = [item.key for part in parts for item in part]
        assert sorted(keys) == sorted(i.key for i in grid)
        assert len(keys) == len(set(keys))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        # Round-robin over the sorted grid, whatever order the grid was given in.
        assert [shard_items(list(reversed(grid)), k, count) for k in range(1, count + 1)] == parts
    assert [i.key for i in shard_items(grid, 2, 5)] == [
        grid[1].key,
        grid[6].key,
        grid[11].key,
        grid[16].key,
        grid[21].key,
    ]


def test_parse_shard_and_inits() -> None:
    assert parse_shard(None) == (1, 1)
    assert parse_shard("2/4") == (2, 4)
    assert parse_inits("both") == ("scratch", "teacher")
    assert parse_inits("teacher") == ("teacher",)
    with pytest.raises(UsageError, match=r"^the sweep grid is empty: `channels` gives no values$"):
        build_grid(TEACHER, [1], [], [1], INITS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "3/2"], "error: --shard 3/2: K must be between 1 and 2"),
        (["--shard", "0/2"], "error: --shard 0/2: K must be between 1 and 2"),
        (["--shard", "x"], "error: --shard must be K/N with 1 <= K <= N (e.g. 2/4), got 'x'"),
        (
            ["--stacks", "3"],
            "error: cannot slice hg2x16d2 into hg3x8d2: the target has more stacks "
            "(3 > 2); a slice keeps part of the teacher",
        ),
        (
            ["--channels", "8,32"],
            "error: cannot slice hg2x16d2 into hg1x32d2: the target has more "
            "channels (32 > 16); a slice keeps part of the teacher",
        ),
        (["--stacks", ""], "error: --stacks must be a comma-separated list of integers, got ''"),
        (["--init", ","], "error: --init must be scratch, teacher or both, got ','"),
        (["--init", "random"], "error: --init must be scratch, teacher or both, got 'random'"),
        (["--max-steps", "5", "--epochs", "1"], "error: give --epochs or --max-steps, not both"),
        (["--budget-macs", "1", "--budget-latency", "3"], "error: give --budget-macs or --budget-latency, not both"),
    ],
)
def test_bad_sweep_input_is_one_line_and_exit_2(
    teacher_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = [
        "prune-sweep",
        "--teacher",
        str(teacher_file),
        "--stacks",
        "1",
        "--channels",
        "8",
        "--input-size",
        str(INPUT),
        "--out",
        str(tmp_path / "out"),
    ]
    code = main(base + args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [message]
    assert not (tmp_path / "out").exists()


def test_prune_cli_writes_a_student_and_refuses_a_larger_target(
    teacher_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "student.safetensors"
    code = main(
        [
            "prune",
            "--teacher",
            str(teacher_file),
            "--to",
            "hg1x8d2",
            "-o",
            str(out),
            "--input-size",
            str(INPUT),
            "--format",
            "json",
        ]
    )
    assert code == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["student"] == "hg1x8d2" and row["stacks"] == "0"
    assert row["student_params"] == count_parameters(create_model("hg1x8d2"))
    assert out.is_file()
    code = main(["prune", "--teacher", str(teacher_file), "--to", "hg2x32d2", "-o", str(tmp_path / "x.safetensors")])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: cannot slice hg2x16d2 into hg2x32d2: the target has more channels (32 > 16); "
        "a slice keeps part of the teacher"
    )
    assert not (tmp_path / "x.safetensors").exists()
    code = main(["prune", "--teacher", str(tmp_path / "missing.pth"), "--to", "hg1x8d2", "-o", str(out)])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: teacher checkpoint not found: {tmp_path / 'missing.pth'}"


def test_pareto_front_golden() -> None:
    costs = [1.0, 2.0, 3.0, 4.0, 2.0, None, 0.5]
    values = [50.0, 60.0, 55.0, 70.0, 60.0, 99.0, float("nan")]
    # (3, 55) is dominated by (2, 60); the missing cost and the NaN value are never on the front;
    # the two identical (2, 60) points are both on it.
    assert pareto_front(costs, values) == [0, 1, 4, 3]
    assert pareto_front([], []) == []


def _row(key: str, macs: float, score: float, latency: float | None = None, params: int = 1) -> dict:
    return {"key": key, "macs": macs, "score": score, "latency_ms": latency, "params": params}


def test_recommendation_rules() -> None:
    rows = [
        _row("a", 1e9, 60.0, 5.0),
        _row("b", 2e9, 69.5, 9.0),
        _row("c", 4e9, 71.0, 20.0),
        _row("d", 3e9, 69.8, 12.0),
    ]
    pick = recommend(rows, 70.0, max_drop=1.0)
    assert pick.key == "b" and pick.criterion == "max-drop"
    assert pick.reason == "b is the cheapest config (2 GMACs) within 1 PCKh of the teacher: 69.50 against 70.00."
    assert recommend(rows, 70.0, max_drop=0.0).key == "c"
    far = recommend(rows, 80.0, max_drop=1.0)
    assert far.key == "c"
    assert far.reason == ("no config is within 1 PCKh of the teacher (80.00); c comes closest with 71.00 at 4 GMACs.")
    assert recommend(rows, 70.0, budget_macs=3.5e9).key == "d"
    assert recommend(rows, 70.0, budget_latency_ms=10.0).key == "b"
    none = recommend(rows, 70.0, budget_latency_ms=1.0)
    assert none.key is None
    assert none.reason == "no config fits the budget of 1 ms; the cheapest, a, needs 5 ms."


@pytest.mark.slow
def test_latency_is_measured_with_onnx_runtime(teacher_file: Path, tmp_path: Path) -> None:
    grid = build_grid(TEACHER, [1], [8], [1], ["teacher"])
    result = run_sweep(_settings(teacher_file, latency=True), grid, tmp_path / "out")
    row = result.results[0]
    assert result.teacher is not None and result.teacher.latency_ms is not None
    assert row.latency_ms is not None and 0 < row.latency_ms < 1000
    assert result.pareto["latency_ms"] == [row.key]


def test_fine_tune_options_reach_the_trainer(teacher_file: Path, tmp_path: Path) -> None:
    from fpdctl.sweep.grid import SweepItem
    from fpdctl.sweep.run import _train_config

    item = SweepItem(1, 8, 1, "teacher", depth=2)
    by_epochs = _train_config(
        _settings(teacher_file, max_steps=None, epochs=3, alpha=0.3),
        item,
        tmp_path / "init.safetensors",
        tmp_path / "run",
    )
    assert (by_epochs.max_steps, by_epochs.epochs) == (None, 3)
    assert by_epochs.command == "distill" and by_epochs.model == "hg1x8d2"
    assert by_epochs.teacher == str(teacher_file) and by_epochs.alpha == 0.3
    assert by_epochs.init == str(tmp_path / "init.safetensors") and by_epochs.eval_every == 0
    by_steps = _train_config(_settings(teacher_file), item, None, tmp_path / "run")
    assert (by_steps.max_steps, by_steps.init, by_steps.val_limit) == (1, None, 4)


def test_the_cli_prints_sweep_events_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from fpdctl.cli.prune import _show_sweep_event

    log = SimpleNamespace(step=2, total_steps=5, loss=0.123456, img_per_s=7.25)
    for event in [
        Event("sweep.skip", "skip hg1x8d2-scratch: already finished"),
        Event("sweep.teacher", "teacher hg2x16d2: PCKh 1.00 (cached)"),
        Event("sweep.config_start", "hg1x8d2-teacher", done=1, total=3),
        Event("sweep.zero_shot", "zero-shot PCKh 3.92; fine-tuning...", data=3.92),
        Event("sweep.train_step", done=2, total=5, data=log),
        Event("sweep.config_end", "PCKh 5.88 after 2 steps (1 s)"),
        Event("train.eval", "not the sweep's"),
    ]:
        _show_sweep_event(event)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "skip hg1x8d2-scratch: already finished",
        "teacher hg2x16d2: PCKh 1.00 (cached)",
        "[1/3] hg1x8d2-teacher",
        "  zero-shot PCKh 3.92; fine-tuning...",
        "  step 2/5 loss 0.12346 (7.2 img/s)",
        "  PCKh 5.88 after 2 steps (1 s)",
    ]
