import json
import subprocess
import sys

import pytest

from fpdctl.cli.app import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_json_default_grid(capsys):
    code, out, _ = run(capsys, "profile", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["model"] for r in rows][:3] == ["hg1x64", "hg1x128", "hg1x256"]
    student = next(r for r in rows if r["model"] == "hg4x128")
    for key in (
        "model",
        "stacks",
        "channels",
        "blocks",
        "input_size",
        "batch",
        "params",
        "macs",
        "flops",
        "weights_mb",
        "activations_mb",
    ):
        assert key in student
    assert student["params"] == 3_287_936 and isinstance(student["macs"], int)
    assert student["flops"] == 2 * student["macs"] and student["input_size"] == 256


def test_profile_models_csv_markdown_and_output(capsys, tmp_path):
    code, out, _ = run(capsys, "profile", "hg4x128", "hg2x64b2", "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("model,stacks,channels")
    assert len(out.strip().splitlines()) == 3
    target = tmp_path / "cost.md"
    code, out, err = run(capsys, "profile", "hg4x128", "--format", "markdown", "-o", str(target))
    assert code == 0 and "| hg4x128 |" in target.read_text() and f"wrote {target}" in err


def test_profile_plot(capsys, tmp_path):
    png = tmp_path / "cost.png"
    code, _, _ = run(capsys, "profile", "--stacks", "1,2", "--channels", "64", "--plot", str(png))
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_measure_adds_latency(capsys):
    code, out, _ = run(capsys, "profile", "hg1x16", "--input-size", "64", "--measure", "--format", "json")
    row = json.loads(out)[0]
    assert code == 0 and row["latency_ms_median"] > 0 and row["latency_ms_p90"] >= row["latency_ms_median"]


def test_profile_checkpoint_argument(capsys, tmp_path):
    from fpdctl import create_model, save_model

    save_model(create_model("hg2x32"), tmp_path / "m.safetensors")
    code, out, _ = run(capsys, "profile", str(tmp_path / "m.safetensors"), "--format", "json")
    assert code == 0 and json.loads(out)[0]["model"] == "hg2x32"


@pytest.mark.parametrize(
    "args, message",
    [
        (["hg4x"], "unknown model name 'hg4x'"),
        (["hg4x130"], "channels must be a positive multiple of 4, got 130"),
        (["hg0x128"], "stacks must be at least 1, got 0"),
        (["--stacks", "0,2"], "--stacks values must be at least 1, got 0"),
        (["--channels", "64,a"], "--channels must be a comma-separated list of integers, got '64,a'"),
        (["--input-size", "200"], "input size must be a positive multiple of 64 for a depth-4 hourglass, got 200"),
        (["--batch", "0"], "batch must be at least 1, got 0"),
        (["--format", "xml"], "--format must be one of table, json, csv, markdown, got 'xml'"),
        (["--counter", "fvcore"], "--counter must be analytic, meta or thop, got 'fvcore'"),
    ],
)
def test_profile_bad_input(capsys, args, message):
    code, out, err = run(capsys, "profile", *args)
    assert code == 2
    assert err.startswith(f"error: {message}")
    assert err.count("\n") == 1 and out == ""


def test_no_traceback_and_exit_codes_in_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "fpdctl", "profile", "hg4x130"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: channels must be a positive multiple of 4, got 130"
    assert "Traceback" not in proc.stderr


def test_version_and_help(capsys):
    from fpdctl import __version__

    assert run(capsys, "--version")[:2] == (0, f"fpdctl {__version__}\n")
    code, out, _ = run(capsys, "profile", "--help")
    assert code == 0 and "MACs count convolutions" in out


def test_help_does_not_import_torch():
    code = "import sys; from fpdctl.cli.app import main; main(['--help']); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().endswith("False")


def test_worker_errors_become_one_line():
    from fpdctl.cli.app import _one_line
    from fpdctl.errors import DataError

    wrapped = DataError(
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nfpdctl.errors.DataError: 5 of 9 images are unreadable'
    )
    assert _one_line(wrapped) == "5 of 9 images are unreadable"
    assert _one_line(DataError("plain message")) == "plain message"
