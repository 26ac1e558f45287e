import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fpdctl import HourglassSpec, create_model
from fpdctl.models.hourglass import count_parameters
from fpdctl.profiling.analytic import analytic_cost
from fpdctl.profiling.counter import count_cost
from fpdctl.profiling.profile import paper_grid, profile_specs


def test_independent_mac_figures():
    # Independent figures: hg8x256 has 28.09 GMACs of convolution at 256x256, hg4x128 3.91.
    assert round(analytic_cost(HourglassSpec(8, 256), 256).macs / 1e9, 2) == 28.09
    assert round(analytic_cost(HourglassSpec(4, 128), 256).macs / 1e9, 2) == 3.91


@pytest.mark.parametrize(
    "spec, size, batch",
    [
        (HourglassSpec(1, 16), 64, 2),
        (HourglassSpec(2, 16, 2), 128, 1),
        (HourglassSpec(2, 16, 2, block="mobile"), 64, 2),
    ],
)
def test_meta_counter_matches_flop_counter_on_real_tensors(spec, size, batch):
    model = create_model(spec).eval()
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        model(torch.randn(batch, 3, size, size))
    with torch.device("meta"):
        meta_model = create_model(spec)
    assert count_cost(meta_model, (batch, 3, size, size)).macs * 2 == flops.get_total_flops()


@pytest.mark.parametrize(
    "spec, size, batch",
    [
        (HourglassSpec(1, 16), 64, 1),
        (HourglassSpec(2, 64, 2), 128, 3),
        (HourglassSpec(8, 256), 256, 1),
        (HourglassSpec(4, 128), 256, 8),
        (HourglassSpec(3, 32, 1, 14, 3), 96, 2),
        (HourglassSpec(1, 16, block="mobile"), 64, 1),
        (HourglassSpec(2, 256, block="mobile"), 256, 1),
        (HourglassSpec(2, 64, 2, block="mobile"), 128, 3),
        (HourglassSpec(3, 32, 1, 14, 3, block="mobile"), 96, 2),
    ],
)
def test_analytic_equals_meta_counter(spec, size, batch):
    with torch.device("meta"):
        model = create_model(spec)
    meta = count_cost(model, (batch, 3, size, size))
    closed = analytic_cost(spec, size, batch)
    assert (closed.macs, closed.elementwise_ops, closed.peak_activation_bytes) == (
        meta.macs,
        meta.elementwise_ops,
        meta.peak_activation_bytes,
    )
    assert closed.params == count_parameters(model)


def test_peak_memory_hand_computed_for_tiny_net():
    # hg1x16 at 64 px, batch 1, fp32. The peak is the residual add at the end of layer1
    # (32x32): alive are the input (3x64x64), the stem output x (4x32x32), the conv3 output
    # (8x32x32), the downsample skip (8x32x32) and the sum being written (8x32x32).
    with torch.device("meta"):
        model = create_model("hg1x16")
    peak = count_cost(model, (1, 3, 64, 64)).peak_activation_bytes
    assert peak == (3 * 64 * 64 + 4 * 32 * 32 + 3 * 8 * 32 * 32) * 4


def test_cost_is_flat_in_input_size():
    import time

    spec = HourglassSpec(8, 256)
    start = time.perf_counter()
    small = analytic_cost(spec, 256)
    big = analytic_cost(spec, 1024)
    assert time.perf_counter() - start < 0.5
    assert big.macs == 16 * small.macs


def test_profile_rows_and_ratios():
    rows = profile_specs(paper_grid(), reference=HourglassSpec(8, 256))
    by_name = {r.model: r for r in rows}
    assert len(rows) == 12
    teacher, student = by_name["hg8x256"], by_name["hg4x128"]
    assert teacher.params == 25_594_624 and student.params == 3_287_936
    assert teacher.is_reference and teacher.params_reduction == 1.0
    assert student.macs_reduction == pytest.approx(28.094496768 / 3.90725632)
    assert student.flops == 2 * student.macs
    assert student.weights_mb == pytest.approx(3_287_936 * 4 / 1e6)
    assert student.weights_mb_int8 == pytest.approx(3_287_936 / 1e6)


def test_mobile_student_exact_costs():
    """hg2x256m, the reimplementation's 2.31M-parameter student, at 256x256: its exact parameters
    and MACs, from the closed form, the meta-device counter and torch's own FlopCounterMode."""
    spec = HourglassSpec.from_name("hg2x256m")
    closed = analytic_cost(spec, 256)
    assert (closed.params, closed.macs) == (2_305_504, 3_604_967_424)
    with torch.device("meta"):
        model = create_model(spec)
    assert count_parameters(model) == closed.params
    assert count_cost(model, (1, 3, 256, 256)).macs == closed.macs
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        model(torch.empty(1, 3, 256, 256, device="meta"))
    assert flops.get_total_flops() == 2 * closed.macs
    # The same network with dense 3x3s (hg2x256): depthwise cuts params 2.9x and MACs 2.5x.
    standard = analytic_cost(HourglassSpec(2, 256), 256)
    assert (standard.params, standard.macs) == (6_730_912, 8_988_917_760)


def test_profile_cli_prints_the_mobile_counts(capsys):
    from fpdctl.cli.app import main

    for counter in ("analytic", "meta"):
        assert main(["profile", "hg2x256m", "hg2x256", "--counter", counter, "--format", "json"]) == 0
        rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
        assert (rows["hg2x256m"]["params"], rows["hg2x256m"]["macs"]) == (2_305_504, 3_604_967_424)
    assert main(["profile", "hg2x256m"]) == 0
    out = capsys.readouterr().out
    assert "hg2x256m" in out and "2.31M" in out and "3.60" in out
