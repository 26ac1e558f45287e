"""Issues #23 and #24: train/distill options that were accepted with no effect, or silently wrong.

- ``fpdctl train`` refuses every distillation option from every source: a flag, a config file
  (``alpha`` and ``mask_teacher`` were recorded in config.json for a run with no teacher) and a
  preset; one line, exit 2, nothing created.
- ``--kd-temperature`` with ``--kd-loss mse`` (flag or config file) has no effect: refused.
- ``--tensorboard`` without the tensorboard package: one line naming the extra, exit 2.
- ``distill --teacher synthetic-hg2x64`` with no ``--input-size`` trains at the 128 px the
  teacher learned at (it trained at 256 px, where the teacher scores 18.0 PCKh instead of 90.0);
  an explicit other size gives one warning line, recorded in config.json.
- ``--unlabeled`` with one unreadable file in a small folder: the file is read many times, and
  counted once (it stopped the run as "4 of 16 images could not be read").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpdctl.cli.app import main

# A tiny run: the option under test is the only problem.
RUN = [
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
    "--max-steps",
    "1",
    "--eval-every",
    "0",
]


def _run(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def _one_error_line(code: int, out: str, err: str, expected: str, work: Path) -> None:
    assert "Traceback" not in out + err
    assert code == 2, err
    assert err.splitlines() == [expected]
    assert out == ""
    assert not (work / "r").exists(), "a refused run created its run directory"


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("alpha: 0.9\n", "--alpha"),
        ("mask_teacher: false\n", "--mask-teacher"),
        ("kd-loss: kl\n", "--kd-loss"),
        ("teacher: ground-truth\n", "--teacher"),
    ],
    ids=["alpha", "mask_teacher", "kd_loss", "teacher"],
)
def test_train_refuses_distill_options_in_a_config_file(
    text: str,
    flag: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    reliability.describe(
        "bad option",
        f"fpdctl train --config c.yaml with {text.strip()!r}",
        f"exit 2, one line: {flag} is a distill option (in c.yaml); use `fpdctl distill`",
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(text)
    code, out, err = _run(["train", "--model", "hg1x16", "--config", "c.yaml", *RUN, "--out", "r"], capfd)
    reliability.observe(f"exit {code}: {err.strip()}")
    _one_error_line(code, out, err, f"error: {flag} is a distill option (in c.yaml); use `fpdctl distill`", tmp_path)


def test_train_refuses_distill_options_in_a_preset(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    """No shipped preset holds a distillation option; one that did is refused for train."""
    from fpdctl.training import config

    reliability.describe(
        "bad option",
        "fpdctl train --preset P, P holding alpha",
        "exit 2, one line: --alpha is a distill option (in preset P); use `fpdctl distill`",
    )
    monkeypatch.setitem(config.PRESETS, "kd", {"alpha": 0.9})
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(["train", "--model", "hg1x16", "--preset", "kd", *RUN, "--out", "r"], capfd)
    reliability.observe(f"exit {code}: {err.strip()}")
    _one_error_line(code, out, err, "error: --alpha is a distill option (in preset kd); use `fpdctl distill`", tmp_path)


def test_train_has_no_distill_flags(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    reliability.describe("bad option", "fpdctl train --alpha 0.9", "exit 2, one line: No such option: --alpha")
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(["train", "--model", "hg1x16", *RUN, "--alpha", "0.9", "--out", "r"], capfd)
    reliability.observe(f"exit {code}: {err.strip()}")
    assert code == 2 and len(err.splitlines()) == 1 and "No such option: --alpha" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("source", ["flag", "config file"])
def test_kd_temperature_without_a_term_that_uses_it_is_refused(
    source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    tiny_checkpoint: Path,
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    where = " (in c.yaml)" if source == "config file" else ""
    line = f"error: --kd-temperature{where} has no effect with --kd-loss mse; only --kd-loss kl uses it"
    reliability.describe(
        "bad option",
        f"fpdctl distill --kd-temperature 0.5 ({source}) with --kd-loss mse",
        f"exit 2, one line: {line[7:]}",
    )
    monkeypatch.chdir(tmp_path)
    extra = ["--kd-temperature", "0.5"]
    if source == "config file":
        (tmp_path / "c.yaml").write_text("kd_temperature: 0.5\n")
        extra = ["--config", "c.yaml"]
    argv = ["distill", "--teacher", str(tiny_checkpoint), "--student", "hg1x16", *RUN, *extra, "--out", "r"]
    code, out, err = _run(argv, capfd)
    reliability.observe(f"exit {code}: {err.strip()}")
    _one_error_line(code, out, err, line, tmp_path)
    # With the term that reads it, the same option is taken.
    from fpdctl.training.sources import resolve_config

    config = resolve_config("distill", {"teacher": "t.pth", "kd_loss": "kl", "kd_temperature": 0.5, "out": "r"})
    assert config.kd.temperature == 0.5


def test_tensorboard_flag_without_the_package_names_the_extra(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    line = "error: --tensorboard needs the tensorboard package: pip install 'fpdctl[tensorboard]'"
    reliability.describe(
        "missing extra", "fpdctl train --tensorboard without the tensorboard package", f"exit 2, one line: {line[7:]}"
    )
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: find_spec says None
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(["train", "--model", "hg1x16", *RUN, "--tensorboard", "--out", "r"], capfd)
    reliability.observe(f"exit {code}: {err.strip()}")
    _one_error_line(code, out, err, line, tmp_path)


# Over 20 s in a full run on two busy cores: two distill runs; prune-sweep's twin check and
# tests/training/test_options.py stay in the default run.
@pytest.mark.slow
def test_distill_trains_at_the_teachers_input_size(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    from fpdctl.pretrained import pretrained_card

    trained = int(pretrained_card("synthetic-hg2x64")["input_size"])
    assert trained == 128
    reliability.describe(
        "silent wrong answer",
        "fpdctl distill --teacher synthetic-hg2x64 with no --input-size",
        "trains at the teacher's 128 px (config.json); an explicit --input-size 64: one warning line, recorded",
    )
    monkeypatch.chdir(tmp_path)
    run = [a for a in RUN if a not in ("--input-size", "64")]
    code, out, err = _run(
        ["distill", "--teacher", "synthetic-hg2x64", "--student", "hg1x16", *run, "--out", "default"], capfd
    )
    assert code == 0, err
    saved = json.loads((tmp_path / "default" / "config.json").read_text())
    assert saved["options"]["input_size"] == trained
    assert saved["teacher"]["trained_input_size"] == trained and saved["warnings"] == []
    assert "warning" not in err

    code, out, err = _run(
        ["distill", "--teacher", "synthetic-hg2x64", "--student", "hg1x16", *RUN, "--out", "explicit"], capfd
    )
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    reliability.observe(f"default: input_size {saved['options']['input_size']}; explicit 64: {warnings}")
    expected = (
        "the teacher was trained at 128 px and `input_size` is 64: its heatmaps at 64 px may be far "
        "from what it learned (leave `input_size` out to train at 128)"
    )
    assert warnings == [f"warning: {expected.replace('`input_size`', '--input-size')}"]
    explicit = json.loads((tmp_path / "explicit" / "config.json").read_text())
    assert explicit["options"]["input_size"] == 64 and explicit["warnings"] == [expected]


# Over 20 s in a full run on two busy cores: a 16-step distill;
# test_dataset_counts_distinct_samples_not_reads checks the counting in the default run.
@pytest.mark.slow
def test_unlabeled_bad_file_read_many_times_counts_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    tiny_checkpoint: Path,
    reliability,  # type: ignore[no-untyped-def]
) -> None:
    reliability.describe(
        "bad input",
        "fpdctl distill --unlabeled DIR: 3 images + 1 unreadable file, 16 steps (each read ~8 times)",
        "exit 0; the file is counted and listed once",
    )
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        cv2.imwrite(str(folder / f"p{k}.png"), rng.integers(0, 255, (80, 60, 3), dtype=np.uint8))
    (folder / "bad.png").write_bytes(b"not a png")
    monkeypatch.chdir(tmp_path)
    run = [a if a != "1" else "16" for a in RUN]  # --max-steps 16: 32 unlabeled reads of 4 files
    code, out, err = _run(
        [
            "distill",
            "--teacher",
            str(tiny_checkpoint),
            "--student",
            "hg1x16",
            *run,
            "--unlabeled",
            str(folder),
            "--out",
            "r",
        ],
        capfd,
    )
    reliability.observe(f"exit {code}: {err.strip().splitlines()[-1] if err.strip() else ''}")
    assert code == 0, err
    listed = (tmp_path / "r" / "skipped_images.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].endswith(f"cannot decode image: {folder / 'bad.png'}")
    assert err.splitlines()[-1] == (
        f"warning: 1 image(s) could not be read and were skipped; listed in {tmp_path / 'r' / 'skipped_images.txt'}"
    )


def test_dataset_counts_distinct_samples_not_reads(tmp_path: Path) -> None:
    """The dataset's counters: a sample read again is not counted again (the threshold and its
    message are about distinct images)."""
    from fpdctl.data.unlabeled import image_folder_dataset

    for k in range(3):
        cv2.imwrite(str(tmp_path / f"p{k}.png"), np.full((40, 30, 3), 100 + k, np.uint8))
    (tmp_path / "bad.png").write_bytes(b"junk")
    dataset = image_folder_dataset(tmp_path, input_size=64)
    for _ in range(6):  # 24 reads, 6 of them of the bad file: past the grace of 3 bad reads
        for index in range(len(dataset)):
            dataset[index]
    assert (dataset.bad_images, dataset.images_seen) == (1, 4)


def test_prune_sweep_fine_tunes_at_the_teachers_input_size(reliability) -> None:  # type: ignore[no-untyped-def]
    """prune-sweep resolves its fine-tunes as distill does: the teacher's size by default."""
    from fpdctl.models.factory import create_model
    from fpdctl.sweep.run import fine_tune_config

    reliability.describe(
        "silent wrong answer",
        "fpdctl prune-sweep --teacher synthetic-hg2x64 with no --input-size",
        "fine-tunes at the teacher's 128 px; --input-size 64 still wins",
    )
    spec = create_model("synthetic-hg2x64").spec
    default = fine_tune_config("synthetic-hg2x64", spec, {}).input_size
    explicit = fine_tune_config("synthetic-hg2x64", spec, {"input_size": 64}).input_size
    reliability.observe(f"default {default}, explicit {explicit}")
    assert (default, explicit) == (128, 64)
