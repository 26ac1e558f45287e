"""Options: the official recipe as defaults, presets, config files, precedence, schedules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fpdctl.errors import InputError, UsageError
from fpdctl.training.config import PRESETS, TrainConfig
from fpdctl.training.schedule import parse_schedule
from fpdctl.training.sources import check_resume_changes, load_config_file, resolve_config


def test_defaults_are_the_official_fpd_mpii_recipe() -> None:
    cfg = resolve_config("distill", {"teacher": "t.safetensors", "out": "run"})
    assert (cfg.input_size, cfg.sigma, cfg.lr, cfg.optimizer, cfg.epochs) == (256, 2.0, 2.5e-4, "adam", 140)
    assert cfg.schedule == "step:90,120" and cfg.lr_factor == 0.1
    assert cfg.alpha == 0.5 and cfg.mask_teacher and cfg.flip_test and cfg.augment
    assert cfg.model == "hg4x128"
    assert resolve_config("train", {"out": "run"}).model == "hg8x256"


def test_precedence_preset_then_file_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "opts.yaml"
    file.write_text("preset: quick\nbatch-size: 8\nlr: 0.002\nmodel: hg2x64\n")
    cfg = resolve_config("train", {"lr": 0.003, "out": "run"}, config_file=file)
    assert cfg.input_size == PRESETS["quick"]["input_size"]  # from the preset
    assert cfg.batch_size == 8  # the file beats the preset
    assert cfg.lr == 0.003  # the flag beats the file
    assert cfg.model == "hg2x64"
    assert cfg.max_steps == PRESETS["quick"]["max_steps"]


def test_epochs_and_max_steps_are_one_setting(tmp_path: Path) -> None:
    file = tmp_path / "opts.toml"
    file.write_text("max_steps = 50\n")
    # --epochs on the command line replaces the file's --max-steps.
    cfg = resolve_config("train", {"epochs": 3, "out": "run"}, config_file=file)
    assert (cfg.epochs, cfg.max_steps) == (3, None)
    with pytest.raises(UsageError, match="give `epochs` or `max_steps`, not both"):
        resolve_config("train", {"epochs": 3, "max_steps": 5, "out": "run"})


def test_toml_tables_and_yaml_are_read(tmp_path: Path) -> None:
    toml = tmp_path / "a.toml"
    toml.write_text('[distill]\nteacher = "t.pth"\nalpha = 0.25\nmask-teacher = false\nstudent = "hg2x64"\n')
    values = load_config_file(toml)
    assert values == {"teacher": "t.pth", "alpha": 0.25, "mask_teacher": False, "model": "hg2x64"}


def test_unknown_key_is_named(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("lr: 0.001\nlearning_rate: 0.1\n")
    with pytest.raises(UsageError, match=r"^unknown option 'learning_rate' in .*bad\.yaml; valid options: "):
        resolve_config("train", {"out": "run"}, config_file=file)


def test_wrong_value_type_and_unparsable_file(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("batch_size: eight\n")
    with pytest.raises(UsageError, match=r"`batch_size` must be an integer, got 'eight'"):
        load_config_file(file)
    broken = tmp_path / "broken.toml"
    broken.write_text("lr = = 1\n")
    with pytest.raises(InputError, match="cannot parse config file"):
        load_config_file(broken)
    with pytest.raises(InputError, match="config file not found"):
        load_config_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": 1.5}, "alpha must be in [0, 1], got 1.5"),
        ({"lr": 0.0}, "lr must be positive, got 0"),
        ({"lr": -1e-3}, "lr must be positive, got -0.001"),
        ({"batch_size": 0}, "batch size must be positive, got 0"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of adam, rmsprop, sgd, got 'lbfgs'"),
        ({"precision": "fp8"}, "precision must be one of auto, bf16, fp16, fp32, got 'fp8'"),
        ({"input_size": 100}, "input size must be a positive multiple of 64 for a depth-4 hourglass, got 100"),
        ({"preset": "slow"}, "unknown preset 'slow'; available: quick"),
    ],
)
def test_bad_values(options: dict, message: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_config("distill", {"teacher": "t.pth", "out": "run", **options})
    assert str(info.value) == message


def test_teacher_is_refused_for_plain_training() -> None:
    with pytest.raises(UsageError, match="`teacher` is a distill option"):
        resolve_config("train", {"teacher": "t.pth", "out": "run"})


def test_step_schedule_counts_epochs() -> None:
    schedule = parse_schedule("step:90,120")
    spe, total = 10, 1400
    assert schedule.multiplier(899, spe, total) == 1.0
    assert schedule.multiplier(900, spe, total) == pytest.approx(0.1)
    assert schedule.multiplier(1199, spe, total) == pytest.approx(0.1)
    assert schedule.multiplier(1200, spe, total) == pytest.approx(0.01)


def test_cosine_and_constant_schedules() -> None:
    cosine = parse_schedule("cosine")
    assert cosine.multiplier(0, 10, 100) == 1.0
    assert cosine.multiplier(50, 10, 100) == pytest.approx(0.5)
    assert cosine.multiplier(100, 10, 100) == pytest.approx(0.0, abs=1e-12)
    assert parse_schedule("constant").multiplier(12345, 10, 100) == 1.0
    for bad in ("step:", "step:a,b", "linear", "step:-3"):
        with pytest.raises(UsageError, match="`schedule` must be"):
            parse_schedule(bad)


def test_resume_may_change_length_but_not_arithmetic() -> None:
    saved = resolve_config("train", {"model": "hg1x16", "input_size": 64, "max_steps": 10, "out": "run"})
    longer = check_resume_changes(saved, {"max_steps": 20, "workers": 0})
    assert (longer.max_steps, longer.workers, longer.lr) == (20, 0, saved.lr)
    same = check_resume_changes(saved, {"lr": saved.lr})
    assert same == saved
    with pytest.raises(UsageError, match=r"`lr` cannot change when resuming \(the run used 0.00025\)"):
        check_resume_changes(saved, {"lr": 0.1})


def test_round_trip_through_a_dict() -> None:
    cfg = resolve_config("distill", {"teacher": "t.pth", "alpha": 0.7, "out": "run", "max_steps": 9})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["fpd_mpii.yaml", "quick_synthetic.yaml"])
def test_example_configs_are_valid(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "configs" / name
    cfg = resolve_config("distill", {"teacher": "t.pth", "out": "run"}, config_file=path)
    if name == "fpd_mpii.yaml":
        assert (cfg.model, cfg.input_size, cfg.epochs, cfg.lr, cfg.schedule) == (
            "hg4x128",
            256,
            140,
            2.5e-4,
            "step:90,120",
        )
    else:
        assert (cfg.preset, cfg.input_size, cfg.max_steps) == ("quick", 128, 300)


def test_options_loss_rules_and_events_import_without_torch() -> None:
    # The CLI reads options and renders events before (or without) loading torch.
    code = (
        "import sys, fpdctl.training.config, fpdctl.training.loss, fpdctl.training.events; "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
