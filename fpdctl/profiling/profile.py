"""``profile_specs``: the cost table of a set of hourglass sizes (``fpdctl profile``)."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

from fpdctl.errors import UsageError
from fpdctl.models.spec import DEFAULT_INPUT_SIZE, HourglassSpec
from fpdctl.profiling.analytic import analytic_cost

Counter = Literal["analytic", "meta", "thop"]
MB = 1e6  # weights and activations are reported in decimal megabytes


@dataclass(frozen=True)
class ProfileRow:
    """The cost of one architecture at one input size and batch.

    ``macs``/``flops``/``elementwise_ops`` are per image; ``activations_mb`` is the peak for the
    whole batch in fp32. ``weights_mb*`` are the parameters' sizes at each precision (BN running
    statistics excluded: deployment folds them into the convolutions).
    """

    model: str
    stacks: int
    channels: int
    blocks: int
    joints: int
    input_size: int
    batch: int
    params: int
    macs: int
    flops: int
    elementwise_ops: int
    weights_mb: float
    weights_mb_fp16: float
    weights_mb_int8: float
    activations_mb: float
    params_reduction: float
    macs_reduction: float
    is_reference: bool
    counter: str
    latency_ms_median: float | None = None
    latency_ms_p90: float | None = None
    latency_threads: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _Cost:
    params: int
    macs_per_image: int
    elementwise_per_image: int
    peak_bytes: int


def _cost(spec: HourglassSpec, input_size: int, batch: int, counter: Counter) -> _Cost:
    analytic = analytic_cost(spec, input_size, batch)
    if counter == "analytic":
        return _Cost(
            analytic.params, analytic.macs // batch, analytic.elementwise_ops // batch, analytic.peak_activation_bytes
        )
    import torch

    from fpdctl.models.hourglass import HourglassNet

    with torch.device("meta"):
        model = HourglassNet(spec)
    params = sum(p.numel() for p in model.parameters())
    if counter == "meta":
        from fpdctl.profiling.counter import count_cost

        cost = count_cost(model, (batch, 3, input_size, input_size))
        return _Cost(params, cost.macs // batch, cost.elementwise_ops // batch, cost.peak_activation_bytes)
    # thop: an optional third-party cross-check; it runs real tensors, so build a real model.
    try:
        import thop  # type: ignore[import-not-found]
    except ImportError as exc:
        raise UsageError(
            "`counter` thop needs the optional extra: pip install 'fpdctl[thop]'", params="counter"
        ) from exc
    real = HourglassNet(spec).eval()
    with torch.inference_mode():
        macs, _ = thop.profile(real, inputs=(torch.zeros(1, 3, input_size, input_size),), verbose=False)
    return _Cost(params, int(macs), analytic.elementwise_ops // batch, analytic.peak_activation_bytes)


def measure_latency(
    spec: HourglassSpec, input_size: int, batch: int, iters: int = 10, warmup: int = 2, threads: int | None = None
) -> tuple[float, float, int]:
    """Median and p90 CPU latency (ms) of an eager fp32 NCHW forward with random weights."""
    import torch

    from fpdctl.models.hourglass import HourglassNet

    if threads:
        torch.set_num_threads(threads)
    model = HourglassNet(spec).eval()
    x = torch.randn(batch, 3, input_size, input_size)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return statistics.median(times), p90, torch.get_num_threads()


def profile_specs(
    specs: Sequence[HourglassSpec],
    *,
    input_size: int = DEFAULT_INPUT_SIZE,
    batch: int = 1,
    reference: HourglassSpec | None = None,
    counter: Counter = "analytic",
    measure: bool = False,
    measure_iters: int = 10,
) -> list[ProfileRow]:
    """Profile each spec; ratios are against ``reference`` (default: the first spec).

    Raises:
        UsageError: an input size or batch the networks cannot take.
    """
    if batch < 1:
        raise UsageError(f"batch must be at least 1, got {batch}")
    if not specs:
        raise UsageError("nothing to profile: the model list is empty")
    reference = reference or specs[0]
    for spec in (*specs, reference):
        spec.check_input_size(input_size)
    ref_cost = _cost(reference, input_size, batch, counter)
    rows = []
    for spec in specs:
        cost = ref_cost if spec == reference else _cost(spec, input_size, batch, counter)
        latency: tuple[float | None, float | None, int | None] = (None, None, None)
        if measure:
            latency = measure_latency(spec, input_size, batch, iters=measure_iters)
        rows.append(
            ProfileRow(
                model=spec.name,
                stacks=spec.stacks,
                channels=spec.channels,
                blocks=spec.blocks,
                joints=spec.joints,
                input_size=input_size,
                batch=batch,
                params=cost.params,
                macs=cost.macs_per_image,
                flops=2 * cost.macs_per_image,
                elementwise_ops=cost.elementwise_per_image,
                weights_mb=cost.params * 4 / MB,
                weights_mb_fp16=cost.params * 2 / MB,
                weights_mb_int8=cost.params / MB,
                activations_mb=cost.peak_bytes / MB,
                params_reduction=ref_cost.params / cost.params,
                macs_reduction=ref_cost.macs_per_image / cost.macs_per_image,
                is_reference=spec == reference,
                counter=counter,
                latency_ms_median=latency[0],
                latency_ms_p90=latency[1],
                latency_threads=latency[2],
            )
        )
    return rows


def paper_grid(
    stacks: Sequence[int] = (1, 2, 4, 8), channels: Sequence[int] = (64, 128, 256), blocks: Sequence[int] = (1,)
) -> list[HourglassSpec]:
    """Every (stacks, channels, blocks) combination, in that nesting order."""
    return [HourglassSpec(s, c, b) for s in stacks for c in channels for b in blocks]
