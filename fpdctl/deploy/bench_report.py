"""What ``fpdctl bench`` measures per case (:class:`BenchRow`) and the machine it measured on
(:func:`environment`): the records that :mod:`fpdctl.deploy.bench` fills and
:mod:`fpdctl.deploy.recommend` reads.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# What a row's latency covers (BenchRow.timed): the network alone; the graph of an --embed-*
# export, which also normalises pixels and / or decodes keypoints; or the whole pipeline (crop a
# frame, pre-process, model, decode, map to frame px), wherever each step runs.
TIMED_MODEL = "model"
TIMED_MODEL_EMBEDDED = "model+in-graph pre/decode"
TIMED_END_TO_END = "end-to-end"


@dataclass(frozen=True)
class BenchRow:
    """Measurements of one model on one backend at one batch size (times in milliseconds).

    Attributes:
        model: the MODEL argument.
        arch: the architecture name (e.g. hg4x128).
        backend, runtime, precision, memory_format: the backend row.
        device: where it ran.
        batch: images per forward.
        threads: intra-op threads.
        input_size: square input side in px.
        iters: timed iterations.
        mean_ms, std_ms, min_ms, p50_ms, p90_ms, p99_ms: latency statistics of the timed part
            (the model alone, or pre + model + post with end-to-end).
        img_per_s: ``batch / p50`` in images per second.
        model_ms: median of the model alone (equal to p50_ms unless end-to-end).
        pre_ms, post_ms: medians of pre- and post-processing (end-to-end only).
        peak_mem_mb: peak memory in MB (see ``mem_kind``), None where it cannot be measured.
        mem_delta_mb: how far the peak rose above the memory in use when the case's warm-up
            started: the case's own working memory (activations, workspaces, first-run
            allocations), without the libraries and other models the process holds.
        mem_kind: "rss" (process peak resident set), "rss-lifetime" (the peak could not be reset,
            so it covers the whole process), "cuda" (max allocated) or "" (none).
        gmacs: multiply-accumulates per image, in billions.
        gflops_per_s: ``2 * gmacs * batch / model_ms`` achieved by the network.
        speedup: the first model's p50 divided by this row's, at the same batch, on the same
            backend (or on the first model's first backend when it did not run this one); None
            with one model.
        vs_reference: this model's eager fp32 NCHW PyTorch p50 divided by this row's (None when
            that row was not measured).
        timed: what the latency covers: "model" (the network alone, from its input in the
            runtime's memory to heatmaps), "model+in-graph pre/decode" (an --embed-* graph: uint8
            crops and / or keypoints) or "end-to-end" (frame crop, pre-processing, model, decode,
            keypoints in frame px).
        graph: what the timed graph takes and returns.
        metric, accuracy, accuracy_drop: with ``accuracy_samples``, the row's PCKh (PCK for LSP)
            and its loss against the model's fp32 reference (positive: worse); else "" / None.
        recommended: the fastest row of this model and batch that loses at most
            :data:`~fpdctl.deploy.recommend.MAX_ACCURACY_DROP` (see :mod:`fpdctl.deploy.recommend`).
        isa: the instruction set the row was measured on (:func:`instruction_set`).
    """

    model: str
    arch: str
    backend: str
    runtime: str
    precision: str
    memory_format: str
    device: str
    batch: int
    threads: int
    input_size: int
    iters: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    img_per_s: float
    model_ms: float
    pre_ms: float | None
    post_ms: float | None
    peak_mem_mb: float | None
    mem_delta_mb: float | None
    mem_kind: str
    gmacs: float
    gflops_per_s: float
    speedup: float | None = None
    vs_reference: float | None = None
    timed: str = TIMED_MODEL
    graph: str = ""
    metric: str = ""
    accuracy: float | None = None
    accuracy_drop: float | None = None
    recommended: bool = False
    isa: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# CPU features that decide which reduced precision is fast (lscpu / /proc/cpuinfo flag names).
CPU_FEATURES: tuple[str, ...] = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def cpu_features() -> str:
    """The :data:`CPU_FEATURES` this CPU has, space-separated ("" where /proc/cpuinfo is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return " ".join(f for f in CPU_FEATURES if f in flags)


# What ``instruction_set`` may return, best first, with what it means for an int8 (u8 x s8) file:
# with VNNI or AMX every product is summed in int32; below them ONNX Runtime's kernels add pairs
# of u8 x s8 products in int16 (vpmaddubsw), which saturates unless the weights are 7-bit.
INSTRUCTION_SETS: dict[str, str] = {
    "AMX": "int8 sums in int32",
    "AVX512-VNNI": "int8 sums in int32",
    "AVX-VNNI": "int8 sums in int32",
    "AVX512": "no VNNI: int8 pair sums in int16",
    "AVX2": "no VNNI: int8 pair sums in int16",
    "pre-AVX2": "no VNNI: int8 pair sums in int16",
}


def instruction_set() -> str:
    """The best x86 instruction set ONNX Runtime and PyTorch can use on this CPU (a key of
    :data:`INSTRUCTION_SETS`), or the machine's name on other architectures ("arm64"...).

    Read from the CPUID instruction (PyTorch's probes), not /proc/cpuinfo, so that it is right
    under an emulator that hides features (``qemu-x86_64 -cpu Haswell``), where /proc/cpuinfo still
    shows the host. AVX-VNNI without AVX-512 has no PyTorch probe; it comes from /proc/cpuinfo.
    """
    import torch

    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return machine or "unknown"
    cpu = torch.cpu
    probes = (
        ("AMX", "_is_amx_tile_supported"),
        ("AVX512-VNNI", "_is_vnni_supported"),
        ("AVX512", "_is_avx512_supported"),
        ("AVX2", "_is_avx2_supported"),
    )
    found = {name for name, probe in probes if getattr(cpu, probe, lambda: False)()}
    if "AVX2" in found and "AVX512" not in found and "avx_vnni" in cpu_features().split():
        found.add("AVX-VNNI")
    return next((name for name in INSTRUCTION_SETS if name in found), "pre-AVX2")


def environment(threads: int) -> dict[str, str]:
    """Versions, CPU (name and the :data:`CPU_FEATURES` it has) and OS, for reproducing figures."""
    import onnxruntime
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from fpdctl import __version__

    try:
        from importlib.metadata import PackageNotFoundError, version

        openvino = version("openvino")
    except PackageNotFoundError:
        openvino = ""
    return {
        "fpdctl": __version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "openvino": openvino,
        "cpu_flags": cpu_features(),
        "isa": instruction_set(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": str(os.cpu_count()),
        "threads": str(threads),
        "torch_cpu_capability": str(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()),
        "platform": platform.platform(),
    }


__all__ = [
    "CPU_FEATURES",
    "INSTRUCTION_SETS",
    "TIMED_END_TO_END",
    "TIMED_MODEL",
    "TIMED_MODEL_EMBEDDED",
    "BenchRow",
    "cpu_features",
    "environment",
    "instruction_set",
]
