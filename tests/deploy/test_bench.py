"""``fpdctl bench``: rows, statistics, ratios and errors, on the tiny model (few iterations)."""

import json

import pytest

from fpdctl.cli.app import main
from fpdctl.deploy.bench import benchmark

REQUIRED = ("model", "backend", "batch", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "img_per_s", "peak_mem_mb")


def _bench_json(capsys, *args):
    code = main(["bench", *args, "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _check_row(row):
    assert all(k in row for k in REQUIRED)
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "img_per_s", "peak_mem_mb", "gmacs"):
        assert row[key] > 0, key
    assert row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
    assert row["img_per_s"] == pytest.approx(row["batch"] * 1000.0 / row["p50_ms"])
    assert row["mem_kind"] == "rss" and 0 <= row["mem_delta_mb"] <= row["peak_mem_mb"]


def test_bench_json_rows(capsys, tiny_checkpoint):
    rows = _bench_json(capsys, str(tiny_checkpoint), "--input-size", "64", "--iters", "3", "--warmup", "1", "--batch", "1,2", "--threads", "1")
    assert [(r["backend"], r["batch"], r["iters"]) for r in rows] == [("torch", 1, 3), ("torch", 2, 3)]
    for row in rows:
        _check_row(row)
        assert (row["arch"], row["precision"], row["memory_format"], row["timed"]) == ("hg1x16", "fp32", "nchw", "model")
        assert row["speedup"] is None and row["vs_reference"] == 1.0
    # hg1x16 at 64 px: a fixed count, by hand from the architecture, is 0.0214 GMACs per image.
    from fpdctl.profiling.analytic import analytic_cost
    from fpdctl.models.spec import HourglassSpec

    assert rows[0]["gmacs"] == pytest.approx(analytic_cost(HourglassSpec(1, 16), 64).macs / 1e9)


def test_two_models_end_to_end(capsys, tiny_checkpoint, fp32_export):
    _, onnx_path = fp32_export
    rows = _bench_json(capsys, str(tiny_checkpoint), str(onnx_path), "--iters", "3", "--warmup", "1", "--end-to-end", "--input-size", "64", "--threads", "1")
    assert [(r["model"], r["backend"]) for r in rows] == [(str(tiny_checkpoint), "torch"), (str(onnx_path), "ort")]
    for row in rows:
        _check_row(row)
        assert row["timed"] == "end-to-end" and row["pre_ms"] > 0 and row["post_ms"] > 0
        assert 0 < row["model_ms"] < row["p50_ms"] * 1.5
    # Speed-up is against the first model (its only backend, torch, at the same batch).
    assert rows[0]["speedup"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(rows[0]["p50_ms"] / rows[1]["p50_ms"])


def test_checkpoint_on_both_runtimes(tiny_net):
    result = benchmark(["hg1x16"], backend="torch,ort", iters=2, warmup=1, input_size=64, threads=1)
    assert [r.backend for r in result.rows] == ["torch", "ort"]
    torch_row, ort_row = result.rows
    assert ort_row.runtime == "onnxruntime" and ort_row.vs_reference == pytest.approx(torch_row.p50_ms / ort_row.p50_ms)
    assert result.environment["onnxruntime"] and result.threads >= 1 and result.skipped == []
    assert result.environment["onnxruntime_spin_us"] == "100"


def test_duration_mode():
    result = benchmark(["hg1x16"], duration=0.02, warmup=0, input_size=64, threads=1)
    assert result.rows[0].iters >= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["hg1x16", "--batch", "x"], "error: --batch must be a comma-separated list of integers, got 'x'"),
        (["hg1x16", "--batch", "0"], "error: --batch values must be at least 1, got 0"),
        (["hg1x16", "--iters", "0"], "error: --iters must be at least 1, got 0"),
        (["hg1x16", "--iters", "2", "--duration", "1"], "error: give --iters or --duration, not both"),
        (["hg1x16", "--backend", "tensorrt"], "error: unknown backend 'tensorrt'"),
        (["missing.onnx"], "error: ONNX model not found: missing.onnx"),
        (["missing.pth"], "error: checkpoint not found: missing.pth"),
        (["hg1x16", "--spin-us", "-1"], "error: --spin-us must be 0 or more, got -1"),
        (["hg1x16", "--format", "xml"], "error: --format must be one of table, json, csv, markdown, got 'xml'"),
    ],
)
def test_bad_options(capsys, args, message):
    code = main(["bench", *args])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.endswith("...")]
    assert code == 2
    assert len(err) == 1 and err[0].startswith(message), err


def test_checkpoint_runs_at_its_trained_input_size(tmp_path, tiny_net):
    """Like eval, export and predict, bench runs a checkpoint at the size it was trained at (its
    header) unless --input-size says otherwise; a name or a plain checkpoint at the default."""
    from fpdctl.models.checkpoint import TRAIN_INPUT_SIZE_KEY, save_model
    from fpdctl.models.spec import DEFAULT_INPUT_SIZE

    trained = save_model(tiny_net, tmp_path / "trained64.safetensors", {TRAIN_INPUT_SIZE_KEY: "64"})
    result = benchmark([str(trained)], iters=1, warmup=0, threads=1)
    assert [r.input_size for r in result.rows] == [64]
    result = benchmark([str(trained)], iters=1, warmup=0, threads=1, input_size=128)
    assert [r.input_size for r in result.rows] == [128]
    plain = save_model(tiny_net, tmp_path / "plain.safetensors")
    result = benchmark([str(plain)], iters=1, warmup=0, threads=1)
    assert [r.input_size for r in result.rows] == [DEFAULT_INPUT_SIZE]
