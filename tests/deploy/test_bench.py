"""``fpdctl bench``: rows, statistics, ratios and errors, on the tiny model (few iterations)."""

import json

import pytest

from fpdctl.cli.app import main
from fpdctl.deploy.bench import benchmark
from fpdctl.deploy.bench_report import INSTRUCTION_SETS, instruction_set

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
    rows = _bench_json(
        capsys,
        str(tiny_checkpoint),
        "--input-size",
        "64",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--batch",
        "1,2",
        "--threads",
        "1",
    )
    assert [(r["backend"], r["batch"], r["iters"]) for r in rows] == [("torch", 1, 3), ("torch", 2, 3)]
    for row in rows:
        _check_row(row)
        assert (row["arch"], row["precision"], row["memory_format"], row["timed"]) == (
            "hg1x16",
            "fp32",
            "nchw",
            "model",
        )
        assert row["speedup"] is None and row["vs_reference"] == 1.0
    # hg1x16 at 64 px: a fixed count, by hand from the architecture, is 0.0214 GMACs per image.
    from fpdctl.models.spec import HourglassSpec
    from fpdctl.profiling.analytic import analytic_cost

    assert rows[0]["gmacs"] == pytest.approx(analytic_cost(HourglassSpec(1, 16), 64).macs / 1e9)


def test_two_models_end_to_end(capsys, tiny_checkpoint, fp32_export):
    _, onnx_path = fp32_export
    rows = _bench_json(
        capsys,
        str(tiny_checkpoint),
        str(onnx_path),
        "--iters",
        "3",
        "--warmup",
        "1",
        "--end-to-end",
        "--input-size",
        "64",
        "--threads",
        "1",
    )
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
    # Every row names the instruction set it was measured on, as the environment does.
    assert [r.isa for r in result.rows] == [result.environment["isa"]] * 2 == [instruction_set()] * 2


def test_instruction_set_follows_cpuid():
    """The CPUID probes decide, best first (an emulator's ``-cpu Haswell`` gives AVX2 although the
    host's /proc/cpuinfo lists AVX-512); the description says whether int8 sums pairs in int16."""
    import platform

    import torch

    isa = instruction_set()
    if platform.machine().lower() not in ("x86_64", "amd64"):
        assert isa == platform.machine().lower()
        return
    if torch.cpu._is_amx_tile_supported():
        expected = {"AMX"}
    elif torch.cpu._is_vnni_supported():
        expected = {"AVX512-VNNI"}
    elif torch.cpu._is_avx512_supported():
        expected = {"AVX512"}
    elif torch.cpu._is_avx2_supported():
        expected = {"AVX2", "AVX-VNNI"}
    else:
        expected = {"pre-AVX2"}
    assert isa in expected
    assert INSTRUCTION_SETS[isa].startswith("no VNNI") == (isa in ("AVX512", "AVX2", "pre-AVX2"))


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
    from fpdctl.models.checkpoint import save_model
    from fpdctl.models.checkpoint_files import TRAIN_INPUT_SIZE_KEY
    from fpdctl.models.spec import DEFAULT_INPUT_SIZE

    trained = save_model(tiny_net, tmp_path / "trained64.safetensors", {TRAIN_INPUT_SIZE_KEY: "64"})
    result = benchmark([str(trained)], iters=1, warmup=0, threads=1)
    assert [r.input_size for r in result.rows] == [64]
    result = benchmark([str(trained)], iters=1, warmup=0, threads=1, input_size=128)
    assert [r.input_size for r in result.rows] == [128]
    plain = save_model(tiny_net, tmp_path / "plain.safetensors")
    result = benchmark([str(plain)], iters=1, warmup=0, threads=1)
    assert [r.input_size for r in result.rows] == [DEFAULT_INPUT_SIZE]


def test_missing_openvino_skips_its_rows_with_one_line(monkeypatch, fp32_export):
    import importlib.util

    _, path = fp32_export
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real_find_spec(name, *a)
    )
    result = benchmark([str(path)], backend="ort,ov", iters=1, warmup=0, threads=1)
    assert [r.backend for r in result.rows] == ["ort"]
    assert result.skipped == [f"{path} ov: needs openvino, which is not installed (pip install 'fpdctl[openvino]')"]


def test_every_row_says_what_it_timed(capsys, fp32_export, embedded_export):
    (_, plain), (_, embedded) = fp32_export, embedded_export
    rows = _bench_json(capsys, str(plain), str(embedded), "--iters", "2", "--warmup", "1", "--threads", "1")
    assert [(r["backend"], r["timed"], r["graph"]) for r in rows] == [
        ("ort", "model", "normalised float input -> heatmaps"),
        ("ort", "model+in-graph pre/decode", "uint8 BGR crops -> keypoints, scores"),
    ]
    rows = _bench_json(
        capsys, str(plain), str(embedded), "--iters", "2", "--warmup", "1", "--threads", "1", "--end-to-end"
    )
    assert [r["timed"] for r in rows] == ["end-to-end", "end-to-end"]
    for row in rows:
        _check_row(row)
        assert row["pre_ms"] > 0 and row["post_ms"] > 0


def test_embed_flags_in_bench(capsys, tiny_checkpoint):
    rows = _bench_json(
        capsys,
        str(tiny_checkpoint),
        "--input-size",
        "64",
        "--backend",
        "ort",
        "--embed-preprocess",
        "--embed-decode",
        "--pixel-order",
        "rgb",
        "--iters",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--end-to-end",
    )
    assert [(r["backend"], r["graph"]) for r in rows] == [("ort", "uint8 RGB crops -> keypoints, scores")]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["hg1x16", "--embed-decode"],
            "error: --embed-preprocess/--embed-decode need an ONNX backend (onnxruntime or "
            "openvino); backend torch runs the PyTorch model",
        ),
        (
            ["{onnx}", "--embed-preprocess"],
            "error: --embed-preprocess/--embed-decode apply to checkpoints bench exports",
        ),
        (
            ["hg1x16", "--backend", "ort", "--embed-preprocess", "--pixel-order", "xyz"],
            "error: --pixel-order must be 'rgb' or 'bgr', got 'xyz'",
        ),
        (["hg1x16", "--accuracy", "-1"], "error: --accuracy must be 0 or more, got -1"),
    ],
)
def test_bad_embed_and_accuracy_options(capsys, fp32_export, args, message):
    args = [a.replace("{onnx}", str(fp32_export[1])) for a in args]
    code = main(
        ["bench", *args, "--input-size", "64", "--iters", "1"] if "{onnx}" not in " ".join(args) else ["bench", *args]
    )
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.endswith("...")]
    assert code == 2
    assert len(err) == 1 and err[0].startswith(message), err


def test_accuracy_and_the_recommendation(tiny_checkpoint):
    result = benchmark(
        [str(tiny_checkpoint)],
        backend="torch,ort,ort-int8",
        batches=(1, 2),
        iters=2,
        warmup=1,
        threads=1,
        input_size=64,
        accuracy_samples=8,
        accuracy_data="synthetic:length=8",
    )
    rows = {(r.backend, r.batch): r for r in result.rows}
    assert rows[("torch", 1)].accuracy_drop == 0.0 and rows[("torch", 1)].metric == "pckh"
    assert abs(rows[("ort", 1)].accuracy_drop) < 1e-9  # fp32 ONNX Runtime scores as PyTorch does
    assert rows[("ort-int8", 1)].accuracy == rows[("ort-int8", 2)].accuracy  # scored once per backend
    assert (result.accuracy_samples, result.accuracy_data) == (8, "synthetic:length=8")
    for batch in (1, 2):
        group = [r for r in result.rows if r.batch == batch]
        (chosen,) = [r for r in group if r.recommended]
        fits = [r for r in group if r.accuracy_drop <= 0.5]
        assert chosen.p50_ms == min(r.p50_ms for r in fits)
    assert [(r.batch, r.basis) for r in result.recommendations] == [(1, "scored"), (2, "scored")]


def test_recommend_rules():
    from dataclasses import replace

    from fpdctl.deploy.recommend import MAX_ACCURACY_DROP, recommend

    assert MAX_ACCURACY_DROP == 0.5
    result = benchmark(["hg1x16"], iters=1, warmup=0, input_size=64, threads=1)
    base = result.rows[0]
    fp32 = replace(base, backend="ort", precision="fp32", p50_ms=10.0)
    int8 = replace(base, backend="ort-int8", precision="int8", p50_ms=5.0)
    bf16 = replace(base, backend="ov-bf16", precision="bf16", p50_ms=7.0)
    # Unscored: only fp32 qualifies, and the line says why.
    (only,) = recommend([fp32, int8, bf16])
    assert (only.backend, only.basis) == ("ort", "fp32 only") and "set `accuracy_samples`" in only.line()
    # Scored: the fastest within 0.5 points (drops above it never qualify, gains always do).
    scored = [replace(fp32, accuracy_drop=0.0), replace(int8, accuracy_drop=0.6), replace(bf16, accuracy_drop=0.5)]
    (best,) = recommend(scored)
    assert (best.backend, best.drop, best.basis) == ("ov-bf16", 0.5, "scored")
    assert best.line() == (
        "recommended for hg1x16 at batch 1: ov-bf16 (7.00 ms, -0.50 points vs fp32; the fastest within 0.5 "
        "points of fp32)"
    )
    (best,) = recommend([*scored[:2], replace(int8, backend="x", accuracy_drop=-1.0, p50_ms=6.0)])
    assert best.backend == "x"
