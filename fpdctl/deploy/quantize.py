"""Reduced-precision ONNX models: fp16 conversion and static int8 quantisation.

Both start from the verified fp32 export and keep fp32 inputs and outputs, so every runner,
``fpdctl predict`` and user code feed and read the same arrays whatever the precision.

int8 recipe (ONNX Runtime, QDQ format):

1. Each remaining ``BatchNormalization`` becomes a depthwise 1x1 ``Conv`` (same arithmetic). The
   pre-activation bottleneck applies BN then ReLU to a residual sum, so these BNs cannot be folded
   into a convolution; left as BN, ORT runs them in fp32 between DequantizeLinear / QuantizeLinear
   pairs and wraps each in NCHW/NHWC transposes (measured on hg4x128: 59 BNs, 123 transposes).
   As convolutions they quantise like the others and the following ReLU fuses into them, so the
   whole network runs as NHWC QLinearConv / QLinearAdd kernels.
2. ``quant_pre_process``: ORT's shape inference and graph clean-up, as its docs prescribe.
3. Calibration: each activation's range is the mean over calibration images of its per-image
   min and max (ORT's MinMax calibrator with moving average, fed one image at a time). The plain
   MinMax range over all images is set by the rarest extreme pixel and spends most of the 256
   levels on values that almost never occur. Measured on a trained hg4x128 (128 px, 500
   synthetic validation persons of seed 1, a split kept apart from the reported one): PCKh drop
   1.29 with MinMax, 0.12 with 99.999th-percentile histograms (which hold every activation of
   every calibration image in memory: 5 GB for 64 images), -0.71 with per-image averages.
4. ``quantize_static`` in QDQ form, weights int8 per output channel (depthwise BN scales vary by
   orders of magnitude between channels, a single per-tensor scale would crush most of them),
   activations uint8 (asymmetric: post-ReLU tensors are non-negative, and u8 x s8 is the fast
   VNNI path). The head convolutions that produce the heatmap outputs stay fp32: an 8-bit
   heatmap has so few levels near its peak that neighbouring pixels tie and the argmax, which is
   the prediction, snaps to the first of them.
5. Weights in 7 bits (``reduce_range``: -64..64), so that one file gives the same figures on
   every x86 CPU. With VNNI (or AMX) ONNX Runtime sums each u8 x s8 product in int32; without it
   (AVX2, AVX-512 before VNNI) it adds pairs of products in int16 first (``vpmaddubsw``), which
   saturates once two weights of an output channel reach 129 in magnitude: 255 x 129 > 32,767.
   ONNX Runtime's quantisation docs name this and recommend ``reduce_range`` there. Full 8-bit
   weights scored the shipped teacher 89.58 on AVX-512 VNNI but 89.15 on AVX2 (fp32 89.56); 7-bit
   weights score 89.53 on both, with bit-identical heatmaps (AVX2 emulated by ``qemu-x86_64 -cpu
   Haswell``, which reproduces the 89.15). :func:`pair_sum_bound` checks the condition on a file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from fpdctl.errors import RuntimeFailure

if TYPE_CHECKING:
    import onnx

    from fpdctl.models.convention import InputConvention

# The int16 sum of two u8 x s8 products (vpmaddubsw) that ONNX Runtime's int8 kernels use on
# x86 CPUs without VNNI: a pair sum beyond INT16_MAX saturates there.
INT16_MAX: int = 2**15 - 1
UINT8_MAX: int = 255
# ONNX's default when a BatchNormalization node has no epsilon attribute.
ONNX_BN_DEFAULT_EPSILON: float = 1e-5


def bn_to_depthwise_conv(model: "onnx.ModelProto") -> int:
    """Replace every inference-mode BatchNormalization with an equal depthwise 1x1 Conv, in place.

    ``y = (x - mean) / sqrt(var + eps) * gamma + beta`` per channel is a group-C 1x1 convolution
    with weight ``k = gamma / sqrt(var + eps)`` and bias ``beta - mean * k`` (computed in float64).
    BNs whose parameters are not initialisers are left alone.

    Returns:
        The number of nodes replaced.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    new_nodes = []
    new_inits = []
    replaced = 0
    for node in graph.node:
        params = node.input[1:5]
        if (
            node.op_type != "BatchNormalization"
            or node.domain not in ("", "ai.onnx")
            or len(node.output) != 1
            or len(params) != 4
            or not all(p in initializers for p in params)
        ):
            new_nodes.append(node)
            continue
        eps = ONNX_BN_DEFAULT_EPSILON
        for attr in node.attribute:
            if attr.name == "epsilon":
                eps = float(attr.f)
        gamma, beta, mean, var = (numpy_helper.to_array(initializers[p]).astype(np.float64) for p in params)
        k = gamma / np.sqrt(var + eps)
        bias = beta - mean * k
        channels = int(k.shape[0])
        base = node.name or f"bn_{replaced}"
        weight_name, bias_name = f"{base}_dw_weight", f"{base}_dw_bias"
        new_inits.append(numpy_helper.from_array(k.astype(np.float32).reshape(channels, 1, 1, 1), weight_name))
        new_inits.append(numpy_helper.from_array(bias.astype(np.float32), bias_name))
        new_nodes.append(
            helper.make_node(
                "Conv",
                [node.input[0], weight_name, bias_name],
                [node.output[0]],
                name=f"{base}_dw",
                group=channels,
                kernel_shape=[1, 1],
            )
        )
        replaced += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    # Drop BN parameters no node reads any more (they would only bloat the file).
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return replaced


def name_nodes(model: "onnx.ModelProto") -> None:
    """Give every unnamed node a unique name (the quantiser addresses nodes by name)."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def output_head_nodes(model: "onnx.ModelProto") -> list[str]:
    """Nodes between the last convolutions and the graph outputs, those convolutions included.

    Walks back from each graph output through shape and copy ops (Gather, Concat, Unsqueeze...)
    and stops at the first Conv on each path: the heatmap heads.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    pending = [o.name for o in model.graph.output]
    seen: set[str] = set()
    names: list[str] = []
    while pending:
        tensor = pending.pop()
        node = producer.get(tensor)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        names.append(node.name)
        if node.op_type != "Conv":
            pending.extend(node.input)
    return names


def pair_sum_bound(model: "onnx.ModelProto") -> int:
    """The largest |a1 w1 + a2 w2| the int8 convolutions of a QDQ model can form: two uint8
    activations (0..255) times two int8 weights of one output channel.

    ONNX Runtime's u8 x s8 kernels without VNNI add such pairs in int16, so a model whose bound is
    at most :data:`INT16_MAX` gives the same results on every x86 CPU. Which two weights are paired
    depends on the kernel's packing; the bound takes each channel's two largest, the worst case.
    Convolutions whose input is not uint8 or whose weight is not an int8 initialiser are skipped
    (0 for a model without any).
    """
    from onnx import TensorProto, numpy_helper

    inits = {init.name: init for init in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}

    def dequantized(tensor: str) -> "onnx.NodeProto | None":
        node = producer.get(tensor)
        return node if node is not None and node.op_type == "DequantizeLinear" else None

    def uint8_input(node: "onnx.NodeProto") -> bool:
        zero_point = inits.get(node.input[2]) if len(node.input) > 2 else None
        return zero_point is not None and zero_point.data_type == TensorProto.UINT8

    bound = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        x, w = dequantized(node.input[0]), dequantized(node.input[1])
        weight = inits.get(w.input[0]) if w is not None else None
        if x is None or not uint8_input(x) or weight is None or weight.data_type != TensorProto.INT8:
            continue
        magnitudes = np.abs(numpy_helper.to_array(weight).astype(np.int64)).reshape(weight.dims[0], -1)
        top_two = np.sort(magnitudes, axis=1)[:, -2:].sum(axis=1)
        bound = max(bound, int(top_two.max()) * UINT8_MAX)
    return bound


def convert_fp16(model: "onnx.ModelProto") -> "onnx.ModelProto":
    """Weights and activations in fp16, inputs and outputs kept fp32 (Cast nodes at the edges).

    Uses ``onnxruntime.transformers.float16`` (shipped with onnxruntime), which also keeps in
    fp32 the ops that have no fp16 kernels.

    Raises:
        RuntimeFailure: the converter is not available in this onnxruntime.
    """
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:  # pragma: no cover - every onnxruntime since 1.8 ships it
        raise RuntimeFailure(
            "fp16 export needs onnxruntime.transformers.float16, which this onnxruntime lacks"
        ) from exc
    # disable_shape_infer: the graph's value_info is already complete from the exporter, and the
    # converter's own pass would re-run ONNX shape inference on the whole model for nothing.
    return convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)


@dataclass(frozen=True)
class QuantizationReport:
    """How an int8 model was made.

    Attributes:
        calibration_data: the ``--calibration-data`` spec.
        calibration_samples: images the activation ranges were measured on.
        per_channel: per-output-channel weight scales.
        method: the calibration method ("minmax-average": the per-image min / max, averaged).
        bn_converted: BatchNormalization nodes turned into depthwise convolutions first.
        fp32_nodes: nodes left in fp32 (the heatmap heads).
        reduce_range: 7-bit weights (see the module notes).
        pair_sum_bound: :func:`pair_sum_bound` of the written model; at most :data:`INT16_MAX`,
            the file scores the same on CPUs with and without VNNI.
    """

    calibration_data: str
    calibration_samples: int
    per_channel: bool
    method: str
    bn_converted: int
    fp32_nodes: tuple[str, ...]
    reduce_range: bool = True
    pair_sum_bound: int = 0

    @property
    def int16_safe(self) -> bool:
        """Whether no pair of products can saturate on a CPU without VNNI."""
        return self.pair_sum_bound <= INT16_MAX


def quantize_int8(
    fp32_model: "onnx.ModelProto",
    output_path: str | os.PathLike[str],
    calibration: Iterable[np.ndarray],
    *,
    work_dir: str | os.PathLike[str],
    calibration_data: str = "synthetic",
    per_channel: bool = True,
    reduce_range: bool = True,
) -> QuantizationReport:
    """Statically quantise an fp32 hourglass export to int8 (QDQ) and save it.

    Args:
        fp32_model: the fp32 export (not modified).
        output_path: where the int8 model is written (a temporary path: the caller renames it).
        calibration: batches float32 [B, 3, H, W] of normalised images; ranges are averaged over
            batches, so B = 1 (possible with a dynamic batch) averages per-image ranges.
        work_dir: a scratch folder for the intermediate models.
        calibration_data: the spec the batches came from (for the report).
        per_channel: per-output-channel weight scales.
        reduce_range: 7-bit weights, safe from int16 saturation on every x86 CPU (see the
            module notes); False: the full 8 bits, for CPUs with VNNI only.

    Raises:
        RuntimeFailure: no calibration images, or ONNX Runtime's quantiser failed.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    work = Path(work_dir)
    model = onnx.ModelProto()
    model.CopyFrom(fp32_model)
    converted = bn_to_depthwise_conv(model)
    name_nodes(model)
    head = output_head_nodes(model)
    dw_path, pre_path = work / "int8_dw.onnx", work / "int8_pre.onnx"
    onnx.save(model, str(dw_path))
    reader = _calibration_reader(calibration, model.graph.input[0].name)

    # The quantiser logs a warning per tensor it handles; they are not actionable for users.
    quant_logger = logging.getLogger()
    level = quant_logger.level
    quant_logger.setLevel(logging.ERROR)
    try:
        # Symbolic shape inference targets transformer graphs; ONNX shape inference is enough here.
        quant_pre_process(str(dw_path), str(pre_path), skip_symbolic_shape=True)
        quantize_static(
            str(pre_path),
            str(output_path),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=head,
            extra_options={
                "WeightSymmetric": True,
                "ActivationSymmetric": False,
                "CalibMovingAverage": True,  # mean of the per-batch ranges, not their union
            },
        )
    except ValueError as exc:
        if reader.images == 0:
            raise RuntimeFailure("int8 calibration got no images") from exc
        raise RuntimeFailure(f"int8 quantisation failed: {exc}") from exc
    finally:
        quant_logger.setLevel(level)
    if reader.images == 0:
        raise RuntimeFailure("int8 calibration got no images")
    bound = pair_sum_bound(onnx.load(str(output_path)))
    return QuantizationReport(
        calibration_data=calibration_data,
        calibration_samples=reader.images,
        per_channel=per_channel,
        method="minmax-average",
        bn_converted=converted,
        fp32_nodes=tuple(head),
        reduce_range=reduce_range,
        pair_sum_bound=bound,
    )


def _calibration_reader(calibration: Iterable[np.ndarray], input_name: str) -> Any:
    """ONNX Runtime's calibration reader over ``calibration``; its ``images`` counts what it gave."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        images = 0

        def __init__(self) -> None:
            self._batches = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            self.images += int(batch.shape[0])
            return {input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    return _Reader()


def calibration_indices(length: int, samples: int) -> np.ndarray:
    """``samples`` indices spread evenly over a dataset of ``length`` items (all if fewer)."""
    if samples >= length:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, samples).round().astype(np.int64))


def image_batches(
    dataset,
    indices: np.ndarray,
    batch: int,
    pad: bool = False,
    convention: "InputConvention | None" = None,
) -> Iterator[np.ndarray]:
    """Float32 [B, 3, H, W] batches of the dataset's normalised images at ``indices``.

    With ``pad`` the last batch is filled up to ``batch`` by repeating its own images, for a graph
    with a fixed batch size (repeated images leave a min/max unchanged). ``convention``: the
    model's input convention, to which the dataset's NATIVE images are converted (None: NATIVE).
    """
    from fpdctl.models.convention import NATIVE, convert_array

    for start in range(0, len(indices), batch):
        chunk = [dataset[int(i)]["image"].numpy() for i in indices[start : start + batch]]
        while pad and len(chunk) < batch:
            chunk += chunk[: batch - len(chunk)]
        yield convert_array(np.stack(chunk).astype(np.float32), NATIVE, convention or NATIVE)


__all__ = [
    "INT16_MAX",
    "QuantizationReport",
    "bn_to_depthwise_conv",
    "calibration_indices",
    "convert_fp16",
    "image_batches",
    "name_nodes",
    "output_head_nodes",
    "pair_sum_bound",
    "quantize_int8",
]
