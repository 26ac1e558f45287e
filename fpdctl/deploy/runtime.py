"""Running a model on one backend: the runners shared by export verification, evaluation, bench
and predict.

A runner turns a batch of normalised images (float32 numpy ``[N, 3, H, W]``) into heatmaps
(float32 numpy ``[N, J, h, w]`` for the final stack, ``[N, S, J, h, w]`` for all stacks). It
splits the work into :meth:`Runner.prepare` (host array to the runtime's input: device, layout),
:meth:`Runner.forward` (the network alone: what ``fpdctl bench`` times) and
:meth:`Runner.to_numpy`, so timing never includes a copy the deployed model would not make.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fpdctl.deploy.backends import Backend, get_backend
from fpdctl.errors import InputError, UsageError
from fpdctl.pipeline import DEFAULT_INPUT, InputConvention, last_stack

if TYPE_CHECKING:
    import torch

    from fpdctl.deploy.metadata import OnnxModelInfo
    from fpdctl.models.hourglass import HourglassNet
    from fpdctl.models.spec import HourglassSpec
    from fpdctl.skeleton import JointSet

ONNX_SUFFIX = ".onnx"


@dataclass
class ModelSource:
    """A model as the user named it: a checkpoint or model name (PyTorch) or an .onnx file.

    Attributes:
        label: how reports name it (the argument as given).
        kind: "torch" or "onnx".
        spec: the architecture.
        path: the file, or None for a model name (random weights).
        net: the loaded network (torch sources).
        info: the export metadata (onnx sources).
    """

    label: str
    kind: str
    spec: "HourglassSpec"
    path: Path | None = None
    net: "HourglassNet | None" = None
    info: "OnnxModelInfo | None" = None

    @property
    def precision(self) -> str:
        return self.info.precision if self.info is not None else "fp32"

    @property
    def input_convention(self) -> InputConvention:
        """The model's own input convention: the one an export records, else the training one."""
        if self.info is None:
            return DEFAULT_INPUT
        return InputConvention(self.info.color_order, tuple(self.info.mean), tuple(self.info.std))  # type: ignore[arg-type]

    def input_size_for(self, requested: int | None) -> int:
        """The input side to run the model at.

        An export runs at its own size (a different ``requested`` is refused); a checkpoint or a
        name at ``requested``, else the size the checkpoint was trained at (else the default).

        Raises:
            UsageError: a size the export or the architecture cannot take.
        """
        if self.info is not None:
            if requested is not None and requested != self.info.input_size:
                raise UsageError(
                    f"{self.label} was exported for {self.info.input_size} px inputs; --input-size "
                    f"{requested} does not apply to it"
                )
            return self.info.input_size
        from fpdctl.models.checkpoint import resolve_input_size

        size = resolve_input_size(self.path, requested)
        self.spec.check_input_size(size)
        return size

    @property
    def joint_set(self) -> "JointSet":
        """What the heatmap channels are: names, flip pairs, skeleton (an export's own record)."""
        if self.info is None:
            from fpdctl.deploy.metadata import joint_labels

            return joint_labels(self.spec.joints)
        from fpdctl.skeleton import JointSet

        info = self.info
        return JointSet(info.joint_set, tuple(info.joint_names), tuple(info.flip_pairs), tuple(info.skeleton))


def is_onnx_path(model: str | os.PathLike[str]) -> bool:
    return str(model).lower().endswith(ONNX_SUFFIX)


def open_model(model: str) -> ModelSource:
    """Resolve a MODEL argument: an .onnx file, a checkpoint file, or a model name.

    Raises:
        InputError / CheckpointError: a missing or unreadable file; UsageError: an unknown name.
    """
    if is_onnx_path(model):
        from fpdctl.deploy.metadata import read_info

        info = read_info(model)
        return ModelSource(label=model, kind="onnx", spec=info.spec, path=Path(model), info=info)
    from fpdctl.models.checkpoint import create_model

    net = create_model(model).eval()
    path = Path(model) if os.path.exists(model) else None
    return ModelSource(label=model, kind="torch", spec=net.spec, path=path, net=net)


class Runner(abc.ABC):
    """Run a model on one backend. Subclasses implement prepare / forward / to_numpy.

    Attributes:
        backend: the table row this runner implements.
        device: "cpu" or "cuda[:N]".
        batch: the fixed batch size of the model, or None when any batch runs.
        all_stacks: the output holds every stack ([N, S, J, h, w]) rather than the last.
    """

    backend: Backend
    device: str = "cpu"
    batch: int | None = None
    all_stacks: bool = False

    @abc.abstractmethod
    def prepare(self, images: np.ndarray) -> Any:
        """Host float32 [N, 3, H, W] -> the runtime's input (on the device, in its layout)."""

    @abc.abstractmethod
    def forward(self, prepared: Any) -> Any:
        """The network alone, finished (synchronised) when it returns."""

    @abc.abstractmethod
    def to_numpy(self, output: Any) -> np.ndarray:
        """The runtime's output -> host float32 heatmaps."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Heatmaps for any number of images, in chunks of the fixed batch if there is one.

        Args:
            images: float32 [N, 3, H, W], normalised.

        Returns:
            float32 [N, J, h, w] (or [N, S, J, h, w] with all stacks).
        """
        images = np.ascontiguousarray(images, dtype=np.float32)
        if self.batch is None or images.shape[0] == self.batch:
            return self.to_numpy(self.forward(self.prepare(images)))
        chunks = []
        for start in range(0, images.shape[0], self.batch):
            chunk = images[start : start + self.batch]
            count = chunk.shape[0]
            if count < self.batch:  # a fixed-batch graph takes exactly `batch` images: pad with zeros
                pad = np.zeros((self.batch - count, *chunk.shape[1:]), dtype=np.float32)
                chunk = np.concatenate([chunk, pad])
            chunks.append(self.to_numpy(self.forward(self.prepare(chunk)))[:count])
        return np.concatenate(chunks)


class TorchRunner(Runner):
    """Eager PyTorch under ``inference_mode``, with the row's layout and autocast precision."""

    def __init__(
        self, net: "HourglassNet", backend: Backend, device: "str | torch.device" = "cpu",
        all_stacks: bool = False,
    ) -> None:
        import torch

        if backend.runtime != "torch":
            raise UsageError(f"backend {backend.name} is not a PyTorch backend")
        self.backend = backend
        self.torch_device = torch.device(device)
        self.device = str(self.torch_device)
        if self.torch_device.type not in backend.devices:
            raise UsageError(f"backend {backend.name} does not run on {self.device}")
        self.memory_format = torch.channels_last if backend.channels_last else torch.contiguous_format
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(backend.precision)
        self.net = net.to(self.torch_device).eval()
        # Converting the weights once here keeps the layout change out of every timed forward.
        self.net = self.net.to(memory_format=self.memory_format)
        self.all_stacks = all_stacks

    def prepare(self, images: np.ndarray) -> "torch.Tensor":
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        return tensor.to(self.torch_device).contiguous(memory_format=self.memory_format)

    def forward(self, prepared: "torch.Tensor") -> "torch.Tensor":
        import torch

        with torch.inference_mode():
            if self.autocast_dtype is not None:
                with torch.autocast(self.torch_device.type, dtype=self.autocast_dtype):
                    out = self.net(prepared)
            else:
                out = self.net(prepared)
            if not self.all_stacks:
                out = last_stack(out)
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)
        return out

    def to_numpy(self, output: "torch.Tensor") -> np.ndarray:
        return output.float().cpu().numpy()


# How long an idle ONNX Runtime worker thread busy-waits for the next operator before it sleeps.
# Consecutive operators start microseconds apart, so a short spin catches nearly all of them;
# ORT's own default spins far longer, which on shared cores steals the time slices the working
# threads need. hg4x128, batch 1, 2 threads, interleaved (benchmarks/deploy_latency.py): on idle
# cores no spinning 22.1 ms, 100 us 19.3 ms, unbounded 19.5 ms; with two busy processes on the
# same cores 61.6, 64.2 and 85.4 ms.
DEFAULT_SPIN_US: int = 100


def session_options(threads: int | None = None, *, spin_us: int | None = DEFAULT_SPIN_US) -> Any:
    """ONNX Runtime session options for low-latency inference.

    All graph optimisations (on x86 this includes the NCHWc layout transformer, which fuses
    convolution, batch norm, ReLU and the residual adds into blocked-layout kernels), sequential
    execution (a chain of convolutions has no parallel branches worth a second scheduler), one
    inter-op thread and ``threads`` intra-op threads, and the default memory-pattern planning
    (buffers are reused across runs of the same shape).

    Args:
        threads: intra-op threads (None: ORT's default, one per physical core).
        spin_us: microseconds an idle worker spins before sleeping (:data:`DEFAULT_SPIN_US`);
            0 never spins, None keeps ORT's unbounded default.
    """
    import onnxruntime as ort

    if spin_us is not None and spin_us < 0:
        raise UsageError(f"--spin-us must be 0 or more, got {spin_us}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    options.enable_mem_pattern = True
    if spin_us is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_us > 0 else "0")
        if spin_us > 0:
            options.add_session_config_entry("session.intra_op.spin_duration_us", str(int(spin_us)))
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
    return options


def ort_providers(device: str) -> list[str]:
    """The execution providers for ``device``; CUDA first when asked for and available.

    Raises:
        UsageError: CUDA asked for but this onnxruntime build has no CUDA provider.
    """
    import onnxruntime as ort

    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UsageError(
                "--device cuda: this onnxruntime build has no CUDAExecutionProvider "
                "(install onnxruntime-gpu, or use --device cpu)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OrtRunner(Runner):
    """An ONNX Runtime session over an exported model (fp32 inputs and outputs at any precision)."""

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        backend: Backend | None = None,
        *,
        device: str = "cpu",
        threads: int | None = None,
        spin_us: int | None = DEFAULT_SPIN_US,
    ) -> None:
        import onnxruntime as ort

        self.device = device
        data = model if isinstance(model, bytes) else str(model)
        options = session_options(threads, spin_us=spin_us)
        try:
            self.session = ort.InferenceSession(data, options, providers=ort_providers(device))
        except UsageError:
            raise
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile classes
            where = "model" if isinstance(model, bytes) else str(model)
            lines = str(exc).strip().splitlines()
            raise InputError(f"ONNX Runtime cannot load {where}: {lines[0][:300] if lines else exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise InputError("expected an ONNX model with one image input [N, 3, H, W]")
        self.input_name = inputs[0].name
        first = inputs[0].shape[0]
        self.batch = first if isinstance(first, int) and first > 0 else None
        side = inputs[0].shape[2]
        self.input_size = side if isinstance(side, int) else None
        self.all_stacks = len(self.session.get_outputs()[0].shape) == 5
        props = self.session.get_modelmeta().custom_metadata_map
        if backend is None:
            precision = props.get("fpdctl.precision", "fp32")
            backend = next(
                (b for b in _ort_rows() if b.precision == precision), get_backend("ort")
            )
        self.backend = backend

    def prepare(self, images: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(images, dtype=np.float32)

    def forward(self, prepared: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: prepared})[0]

    def to_numpy(self, output: np.ndarray) -> np.ndarray:
        return np.asarray(output, dtype=np.float32)


def _ort_rows() -> list[Backend]:
    from fpdctl.deploy.backends import BACKENDS

    return [b for b in BACKENDS if b.runtime == "onnxruntime"]


__all__ = [
    "DEFAULT_SPIN_US",
    "ModelSource",
    "OrtRunner",
    "Runner",
    "TorchRunner",
    "is_onnx_path",
    "open_model",
    "ort_providers",
    "session_options",
]
