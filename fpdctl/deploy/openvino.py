"""OpenVINO as a backend: it reads the ONNX file ``fpdctl export`` writes directly (no conversion
step, no second file), on the CPU.

The precision of an OpenVINO row is a compile hint on that file (``INFERENCE_PRECISION_HINT``):

* fp32 sets ``f32`` explicitly. On a CPU with bf16 (AVX-512 BF16 or AMX) OpenVINO's CPU plugin
  defaults to bf16, so a row that left the hint alone would be fp32 in name only.
* bf16 sets ``bf16`` on the fp32 file. Where the CPU has no bf16 the plugin silently runs f32, so
  the row is refused there instead (:func:`bf16_unavailable`).
* int8 runs the QDQ file of ``fpdctl export --precision int8``: OpenVINO's low-precision
  transformations turn each QuantizeLinear / DequantizeLinear pair around a convolution into an
  int8 convolution; the rest runs at the f32 hint (the heatmap heads are kept fp32 by export).

The package is an optional extra (``pip install 'fpdctl[openvino]'``); rows that need it are
skipped with that line where it is missing (:meth:`fpdctl.deploy.backends.Backend.unavailable`).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from fpdctl.deploy.backends import Backend
from fpdctl.deploy.runtime import ModelSource, Runner, graph_io, heatmaps_of
from fpdctl.errors import InputError, UsageError

# fpdctl precision -> OpenVINO's INFERENCE_PRECISION_HINT for the CPU plugin.
PRECISION_HINTS: dict[str, str] = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    import openvino

    return openvino.Core()


def bf16_unavailable() -> str | None:
    """Why OpenVINO cannot run bf16 on this CPU, or None when it can."""
    capabilities = _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" in capabilities:
        return None
    return "this CPU has no bf16 (OpenVINO's CPU plugin lists no BF16 capability; it would run f32)"


def compile_onnx(model: str | os.PathLike[str], threads: int | None = None, precision_hint: str = "f32") -> Any:
    """An ONNX file compiled by OpenVINO's CPU plugin, one stream (latency), at ``precision_hint``.

    Raises:
        InputError: OpenVINO cannot read or compile the file.
    """
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": precision_hint,
        "PERFORMANCE_HINT": "LATENCY",  # one stream: the whole CPU on each request
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    core = _core()
    try:
        return core.compile_model(core.read_model(str(model)), "CPU", config)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses for any unreadable model
        lines = str(exc).strip().splitlines()
        raise InputError(f"OpenVINO cannot load {model}: {lines[0][:300] if lines else exc}") from exc


class OpenVinoRunner(Runner):
    """An OpenVINO CPU compiled model over an exported ONNX file, at the row's precision hint."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        backend: Backend,
        *,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        from fpdctl.deploy.metadata import read_props

        if backend.runtime != "openvino":
            raise UsageError(f"backend {backend.name} is not an OpenVINO backend")
        if not str(device).startswith("cpu"):
            raise UsageError(f"backend {backend.name} runs on the CPU (OpenVINO's CPU plugin), not on {device}")
        self.backend, self.device = backend, "cpu"
        self.io = graph_io(read_props(model), str(model))
        compiled = compile_onnx(model, threads, PRECISION_HINTS[backend.precision])
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.output_ports = list(compiled.outputs)
        first = compiled.inputs[0].get_partial_shape()[0]
        self.batch = first.get_length() if first.is_static else None
        self.all_stacks = len(self.output_ports[0].get_partial_shape()) == 5

    @classmethod
    def unavailable(cls, backend: Backend) -> str | None:
        return bf16_unavailable() if backend.precision == "bf16" else None

    @classmethod
    def open(
        cls,
        source: ModelSource,
        backend: Backend,
        *,
        device: str,
        threads: int | None,
        spin_us: int | None,
        file: str | os.PathLike[str] | None,
    ) -> "OpenVinoRunner":
        assert file is not None  # make_runner refuses a checkpoint for this runtime
        return cls(file, backend, device=device, threads=threads)

    def prepare(self, images: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(images, dtype=np.uint8 if self.io.takes_pixels else np.float32)

    def forward(self, prepared: np.ndarray) -> list[np.ndarray]:
        # share_inputs: read the array in place, as ONNX Runtime does; outputs are fresh copies.
        results = self.request.infer({0: prepared}, share_inputs=True, share_outputs=False)
        return [results[port] for port in self.output_ports]

    def to_numpy(self, output: list[np.ndarray]) -> np.ndarray:
        return heatmaps_of(self.named_outputs(output))

    def named_outputs(self, output: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {name: np.asarray(value) for name, value in zip(self.io.outputs, output)}


__all__ = ["PRECISION_HINTS", "OpenVinoRunner", "bf16_unavailable"]
