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

from fpdctl.deploy.backends import RUNTIME_KINDS, Backend, get_backend
from fpdctl.deploy.metadata import HEATMAPS, GraphIO
from fpdctl.errors import InputError, UsageError
from fpdctl.models.convention import NATIVE, ConventionOverride, InputConvention
from fpdctl.pipeline import last_stack

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
        input_convention: how pixels become the model's input: what the checkpoint or the
            export records (or its format implies), with the user's override applied.
    """

    label: str
    kind: str
    spec: "HourglassSpec"
    path: Path | None = None
    net: "HourglassNet | None" = None
    info: "OnnxModelInfo | None" = None
    input_convention: InputConvention = NATIVE

    @property
    def precision(self) -> str:
        return self.info.precision if self.info is not None else "fp32"

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
                    f"{self.label} was exported for {self.info.input_size} px inputs; `input_size` "
                    f"{requested} does not apply to it",
                    params="input_size",
                )
            return self.info.input_size
        from fpdctl.models.checkpoint_files import resolve_input_size

        # The network remembers the size its file records (create_model), also one given as a module.
        size = resolve_input_size(self.net if self.net is not None else self.path, requested)
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


def open_model(model: str, input_convention: ConventionOverride | None = None) -> ModelSource:
    """Resolve a MODEL argument: an .onnx file, a checkpoint file, or a model name.

    Args:
        model: the argument as given.
        input_convention: the user's override flags, applied to the model's own convention.

    Raises:
        InputError / CheckpointError: a missing or unreadable file; UsageError: an unknown name
        or a bad override.
    """
    if is_onnx_path(model):
        from fpdctl.deploy.metadata import read_info

        info = read_info(model)
        convention = info.input_convention
        if input_convention is not None:
            convention = input_convention.apply(convention)
        return ModelSource(
            label=model,
            kind="onnx",
            spec=info.spec,
            path=Path(model),
            info=info,
            input_convention=convention,
        )
    from fpdctl.models.checkpoint_files import checkpoint_file
    from fpdctl.models.factory import create_model

    net = create_model(model, input_convention=input_convention).eval()
    file = checkpoint_file(model)  # a pretrained name's file: its card gives the input size
    path = file if file.exists() else None
    return ModelSource(
        label=model,
        kind="torch",
        spec=net.spec,
        path=path,
        net=net,
        input_convention=net.input_convention,
    )


class Runner(abc.ABC):
    """Run a model on one backend. Subclasses implement prepare / forward / to_numpy.

    Attributes:
        backend: the table row this runner implements.
        device: "cpu" or "cuda[:N]".
        batch: the fixed batch size of the model, or None when any batch runs.
        all_stacks: the output holds every stack ([N, S, J, h, w]) rather than the last.
        io: what the graph takes and returns: the network's input and heatmaps, unless it was
            exported with pre-processing or decoding inside (then :meth:`run_graph` runs it).
    """

    backend: Backend
    device: str = "cpu"
    batch: int | None = None
    all_stacks: bool = False
    io: GraphIO = GraphIO()

    @classmethod
    def unavailable(cls, backend: Backend) -> str | None:
        """Why this runtime cannot run ``backend`` on this machine, beyond the modules the row
        needs (:meth:`Backend.unavailable` asks), or None when it can."""
        return None

    @classmethod
    @abc.abstractmethod
    def open(
        cls,
        source: ModelSource,
        backend: Backend,
        *,
        device: str,
        threads: int | None,
        spin_us: int | None,
        file: str | os.PathLike[str] | None,
    ) -> "Runner":
        """The runner of ``source`` (or of the exported ``file``) on ``backend``
        (:func:`make_runner` checks first that the row can run here and runs this kind of model)."""

    @abc.abstractmethod
    def prepare(self, images: np.ndarray) -> Any:
        """Host float32 [N, 3, H, W] -> the runtime's input (on the device, in its layout)."""

    @abc.abstractmethod
    def forward(self, prepared: Any) -> Any:
        """The network alone, finished (synchronised) when it returns."""

    @abc.abstractmethod
    def to_numpy(self, output: Any) -> np.ndarray:
        """The runtime's output -> host float32 heatmaps."""

    def named_outputs(self, output: Any) -> dict[str, np.ndarray]:
        """The runtime's output -> every graph output by name, as host arrays."""
        return {HEATMAPS: self.to_numpy(output)}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Heatmaps for any number of images, in chunks of the fixed batch if there is one.

        Args:
            images: float32 [N, 3, H, W], normalised.

        Returns:
            float32 [N, J, h, w] (or [N, S, J, h, w] with all stacks).

        Raises:
            UsageError: the graph takes pixels or returns keypoints (use :meth:`run_graph`).
        """
        if self.io != GraphIO():
            raise UsageError(
                f"this ONNX file was exported with pre-processing or decoding inside ({self.io.describe()}); "
                "this command needs a plain export (normalised input -> heatmaps)"
            )
        chunks = self._in_batches(images, np.float32, self.to_numpy)
        return np.concatenate(chunks)

    def run_graph(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of the graph by name, for the input it takes, in chunks of the fixed
        batch if there is one.

        Args:
            inputs: uint8 crops [N, S, S, 3] in ``io.pixel_order`` for a graph with embedded
                pre-processing, else float32 [N, 3, S, S], normalised.

        Returns:
            name -> array: "heatmaps", or "keypoints" [N, J, 2] (crop px) and "scores" [N, J]
            (and "heatmaps" where the graph keeps them).
        """
        parts = self._in_batches(inputs, np.uint8 if self.io.takes_pixels else np.float32, self.named_outputs)
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _in_batches(self, inputs: np.ndarray, dtype: Any, finish: Any) -> list[Any]:
        """``finish(forward(prepare(chunk)))`` per chunk of the fixed batch (padded with zeros,
        the padding's results dropped), or once for the whole input."""
        inputs = np.ascontiguousarray(inputs, dtype=dtype)
        if self.batch is None or inputs.shape[0] == self.batch:
            return [finish(self.forward(self.prepare(inputs)))]
        chunks = []
        for start in range(0, inputs.shape[0], self.batch):
            chunk = inputs[start : start + self.batch]
            count = chunk.shape[0]
            if count < self.batch:  # a fixed-batch graph takes exactly `batch` images: pad with zeros
                pad = np.zeros((self.batch - count, *chunk.shape[1:]), dtype=dtype)
                chunk = np.concatenate([chunk, pad])
            result = finish(self.forward(self.prepare(chunk)))
            chunks.append({k: v[:count] for k, v in result.items()} if isinstance(result, dict) else result[:count])
        return chunks


class TorchRunner(Runner):
    """Eager PyTorch under ``inference_mode``, with the row's layout and autocast precision."""

    def __init__(
        self,
        net: "HourglassNet",
        backend: Backend,
        device: "str | torch.device" = "cpu",
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
        if backend.compiled:
            # Static shapes: one graph per batch size, each specialised (the fastest kernels).
            self.net = torch.compile(self.net, dynamic=False)
        self.all_stacks = all_stacks

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
    ) -> "TorchRunner":
        import copy

        assert source.net is not None  # make_runner refuses an .onnx source for this runtime
        # channels_last and compiling change the module: each such runner gets its own copy.
        net = copy.deepcopy(source.net) if backend.channels_last or backend.compiled else source.net
        return cls(net, backend, device)

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
    inter-op thread and ``threads`` intra-op threads, and no memory-pattern planning: with it,
    the second run of a shape allocates one more block the size of all its activations beside
    the arena the first run filled, which ORT never returns (hg4x128 at 256 px, 200 boxes in chunks of
    32: 1.08 GB peak for predict instead of 0.76; batch 1 and 8 ran no slower without it).

    Args:
        threads: intra-op threads (None: ORT's default, one per physical core).
        spin_us: microseconds an idle worker spins before sleeping (:data:`DEFAULT_SPIN_US`);
            0 never spins, None keeps ORT's unbounded default.
    """
    import onnxruntime as ort

    if spin_us is not None and spin_us < 0:
        raise UsageError(f"`spin_us` must be 0 or more, got {spin_us}", params="spin_us")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    options.enable_mem_pattern = False  # memory stays at one run's activations (see above)
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
                "`device` cuda: this onnxruntime build has no CUDAExecutionProvider "
                "(install onnxruntime-gpu, or use `device` cpu)",
                params="device",
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
        self.io = graph_io(props, "model" if isinstance(model, bytes) else str(model))
        if backend is None:
            precision = props.get("fpdctl.precision", "fp32")
            backend = next((b for b in _ort_rows() if b.precision == precision), get_backend("ort"))
        self.backend = backend

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
    ) -> "OrtRunner":
        assert file is not None
        return cls(file, backend, device=device, threads=threads, spin_us=spin_us)

    def prepare(self, images: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(images, dtype=np.uint8 if self.io.takes_pixels else np.float32)

    def forward(self, prepared: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: prepared})

    def to_numpy(self, output: list[np.ndarray]) -> np.ndarray:
        return heatmaps_of(self.named_outputs(output))

    def named_outputs(self, output: list[np.ndarray]) -> dict[str, np.ndarray]:
        # In the order the metadata declares (a file without it: its first output is the heatmaps).
        return {name: np.asarray(value) for name, value in zip(self.io.outputs, output)}


def graph_io(props: dict[str, str], where: str) -> GraphIO:
    """What a graph takes and returns, from its metadata (a file without the entry: the network's
    input and heatmaps).

    Raises:
        InputError: a malformed entry.
    """
    text = props.get("fpdctl.graph_io")
    if text is None:
        return GraphIO()
    try:
        return GraphIO.from_json(text)
    except ValueError as exc:
        raise InputError(f"{where} has malformed fpdctl metadata: {exc}") from exc


def heatmaps_of(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The float32 heatmaps among a graph's named outputs.

    Raises:
        UsageError: the graph returns keypoints only (exported with --embed-decode).
    """
    if HEATMAPS not in outputs:
        raise UsageError(
            "this ONNX file returns keypoints, not heatmaps (exported with `embed_decode`); "
            "export it with `keep_heatmaps` for this",
            params=("embed_decode", "keep_heatmaps"),
        )
    return np.asarray(outputs[HEATMAPS], dtype=np.float32)


def make_runner(
    source: ModelSource,
    backend: Backend,
    *,
    device: str = "cpu",
    threads: int | None = None,
    spin_us: int | None = DEFAULT_SPIN_US,
    path: str | os.PathLike[str] | None = None,
) -> Runner:
    """The runner of ``source`` on the table row ``backend``: the one place a row becomes a
    runner (bench, eval and predict call it).

    Args:
        source: the model (:func:`open_model`).
        backend: the row; PyTorch rows run a checkpoint or name, ONNX rows an exported file.
        device: where to run.
        threads: intra-op threads of ONNX Runtime / OpenVINO (PyTorch's are process-wide).
        spin_us: ONNX Runtime's idle-thread spin (:func:`session_options`).
        path: the exported file an ONNX row runs (default: the source's own .onnx file).

    Raises:
        UsageError: the row cannot run here (a missing package, no compiler, no bf16), or
            cannot run this kind of model.
    """
    reason = backend.unavailable()
    if reason is not None:
        raise UsageError(f"backend {backend.name}: {reason}")
    kind = RUNTIME_KINDS[backend.runtime]
    file = path if path is not None else source.path
    if kind.runs == "checkpoint" and source.net is None:
        raise UsageError(f"backend {backend.name} runs a checkpoint; {source.label} is an .onnx file")
    if kind.runs == "onnx" and (file is None or not is_onnx_path(file)):
        raise UsageError(f"backend {backend.name} runs an exported .onnx file; {source.label} is a checkpoint")
    return kind.runner_class().open(source, backend, device=device, threads=threads, spin_us=spin_us, file=file)


def _ort_rows() -> list[Backend]:
    from fpdctl.deploy.backends import BACKENDS

    return [b for b in BACKENDS if b.runtime == "onnxruntime"]


__all__ = [
    "DEFAULT_SPIN_US",
    "ModelSource",
    "OrtRunner",
    "Runner",
    "TorchRunner",
    "graph_io",
    "heatmaps_of",
    "is_onnx_path",
    "make_runner",
    "open_model",
    "ort_providers",
    "session_options",
]
