"""Surgery on exported ONNX graphs: what ``fpdctl export`` does to the exporter's output before
it is verified and written.

* :func:`strip_debug_info`: drop the exporter's per-node stack traces (paths of the exporting
  machine, and most of a small model's file size).
* :func:`take_last_stack_directly`: let the last stack's score convolution write the output
  instead of gathering it from every stack's concatenated heatmaps.
* :func:`prepend_preprocess`: let the graph take uint8 pixels and normalise them itself
  (``fpdctl export --embed-preprocess``).
* :func:`append_decode`: let the graph also decode its heatmaps into keypoints and scores
  (``fpdctl export --embed-decode``).
* :func:`check_opset_written`, :func:`copy_model`: small checks and copies around them.

The embedded nodes are added to the network graph *after* it has been verified and, for int8,
quantised: the quantiser only ever sees the network, so the pixel arithmetic and the argmax stay
exact fp32 / integer operations whatever the network's precision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fpdctl.errors import RuntimeFailure

if TYPE_CHECKING:
    import onnx

    from fpdctl.models.convention import InputConvention

# The tensors an embedded graph takes and returns (``fpdctl export --embed-preprocess/-decode``).
PIXELS_INPUT_NAME = "pixels"
KEYPOINTS_OUTPUT_NAME = "keypoints"
SCORES_OUTPUT_NAME = "scores"
# Prefixes of the added nodes and constants: they never clash with the exporter's names.
_PRE = "fpdctl_pre_"
_DECODE = "fpdctl_decode_"


def strip_debug_info(model: "onnx.ModelProto") -> None:
    """Drop per-node doc strings and metadata, in place.

    The dynamo exporter stores each node's Python stack trace and module path there: file paths
    of the exporting machine that do not belong in a shipped model, and most of a small model's
    file size (hg1x16: 400 kB of which 60 kB are weights).
    """
    model.doc_string = ""
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]


def take_last_stack_directly(model: "onnx.ModelProto") -> bool:
    """Make the last stack's score convolution write the graph output itself, in place.

    ``net(x)[:, -1]`` exports as Unsqueeze per stack -> Concat -> Gather(last): every stack's
    heatmaps are converted out of ORT's blocked layout and copied only to be dropped. When the
    output is exactly that pattern, the Gather's source tensor is renamed to the output and the
    nodes no longer needed are removed (about 1% of hg4x128's latency). Anything else is left
    unchanged; the verification that follows checks the result either way.

    Returns:
        Whether the graph was changed.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    if len(graph.output) != 1:
        return False
    producer = {out: node for node in graph.node for out in node.output}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)

    def attr(node: "onnx.NodeProto", name: str, default: Any = None) -> Any:
        found = [onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name]
        return found[0] if found else default

    def unsqueezed_axis(node: "onnx.NodeProto | None") -> int | None:
        if node is None or node.op_type != "Unsqueeze":
            return None
        axes = constants.get(node.input[1]) if len(node.input) > 1 else attr(node, "axes")
        axes = None if axes is None else [int(a) for a in np.asarray(axes).ravel()]
        return axes[0] if axes is not None and len(axes) == 1 else None

    out_name = graph.output[0].name
    gather = producer.get(out_name)
    if gather is None or gather.op_type != "Gather" or attr(gather, "axis", 0) != 1:
        return False
    index = constants.get(gather.input[1])
    if index is None or np.asarray(index).ndim != 0:
        return False
    source = producer.get(gather.input[0])
    if source is not None and source.op_type == "Concat" and attr(source, "axis") == 1:
        operands = list(source.input)
        picked = operands[int(index) % len(operands)]
    elif unsqueezed_axis(source) == 1 and int(index) in (0, -1):
        picked = gather.input[0]
    else:
        return False
    unsqueeze = producer.get(picked)
    if unsqueezed_axis(unsqueeze) != 1:
        return False
    heatmaps = unsqueeze.input[0]
    if any(heatmaps in n.input for n in graph.node if n is not unsqueeze) or producer.get(heatmaps) is None:
        return False  # still read elsewhere: renaming it would change other nodes' inputs
    head = producer[heatmaps]
    head.output[list(head.output).index(heatmaps)] = out_name
    del graph.node[list(graph.node).index(gather)]
    # Drop what nothing reads any more (the other stacks' Unsqueeze / Concat, their constants).
    changed = True
    while changed:
        needed = {o.name for o in graph.output} | {i for n in graph.node for i in n.input}
        keep = [n for n in graph.node if any(o in needed for o in n.output)]
        changed = len(keep) != len(graph.node)
        del graph.node[:]
        graph.node.extend(keep)
    needed = {i for n in graph.node for i in n.input}
    kept_inits = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    produced = {o for n in graph.node for o in n.output}
    kept_info = [v for v in graph.value_info if v.name in produced and v.name != out_name]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    onnx.checker.check_model(model)
    return True


def _dims(value: "onnx.ValueInfoProto") -> list[Any]:
    """A graph input's or output's dimensions: an int, or the symbolic name of a dynamic one."""
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def prepend_preprocess(model: "onnx.ModelProto", convention: "InputConvention", pixel_order: str) -> None:
    """Make ``model`` take uint8 pixels ``[N, S, S, 3]`` in ``pixel_order`` ("rgb" or "bgr")
    instead of its normalised float input ``[N, 3, S, S]``, in place.

    The added nodes do what :meth:`~fpdctl.models.convention.InputConvention.normalize_batch`
    does, with the same float32 operations in the same order: NHWC -> NCHW, cast, the channels
    reordered to the network's order, ``/ max_pixel_value``, ``- mean``, ``/ std``. An fp32 graph
    given a crop therefore computes the same network input as the Python pipeline, bit for bit.

    Raises:
        RuntimeFailure: the graph does not have one ``[N, 3, S, S]`` float input.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    dims = _dims(graph.input[0]) if len(graph.input) == 1 else []
    if len(dims) != 4 or dims[1] != 3:
        raise RuntimeFailure(f"cannot embed pre-processing: expected one input [N, 3, S, S], got {dims}")
    network_input = graph.input[0].name
    pixels = helper.make_tensor_value_info(PIXELS_INPUT_NAME, TensorProto.UINT8, [dims[0], dims[2], dims[3], 3])
    per_channel = (1, 3, 1, 1)
    constants = [
        numpy_helper.from_array(np.array(convention.max_pixel_value, np.float32), _PRE + "max_pixel_value"),
        numpy_helper.from_array(np.array(convention.mean, np.float32).reshape(per_channel), _PRE + "mean"),
        numpy_helper.from_array(np.array(convention.std, np.float32).reshape(per_channel), _PRE + "std"),
    ]
    nodes = [
        helper.make_node("Transpose", [PIXELS_INPUT_NAME], [_PRE + "nchw"], name=_PRE + "nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Cast", [_PRE + "nchw"], [_PRE + "float"], name=_PRE + "cast", to=TensorProto.FLOAT),
    ]
    current = _PRE + "float"
    if pixel_order != convention.order:  # network channel c reads pixel channel 2 - c
        constants.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), _PRE + "reversed"))
        nodes.append(
            helper.make_node(
                "Gather",
                [current, _PRE + "reversed"],
                [_PRE + "reordered"],
                name=_PRE + "reorder",
                axis=1,
            )
        )
        current = _PRE + "reordered"
    nodes += [
        helper.make_node("Div", [current, _PRE + "max_pixel_value"], [_PRE + "scaled"], name=_PRE + "scale"),
        helper.make_node("Sub", [_PRE + "scaled", _PRE + "mean"], [_PRE + "centred"], name=_PRE + "centre"),
        helper.make_node("Div", [_PRE + "centred", _PRE + "std"], [network_input], name=_PRE + "standardise"),
    ]
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + existing)
    graph.initializer.extend(constants)
    del graph.input[:]
    graph.input.extend([pixels])


def append_decode(model: "onnx.ModelProto", input_size: int, *, keep_heatmaps: bool = False) -> None:
    """Make ``model`` decode its heatmaps into keypoints and scores, in place.

    Exactly :func:`fpdctl.codec.decode_heatmaps` then the stride: the first argmax of each map,
    a step of :data:`~fpdctl.codec.QUARTER_PIXEL_SHIFT` toward the higher neighbour on each axis
    (none on the border, where one neighbour is missing), times ``input_size / heatmap side``.
    The flip test is not embedded: it would run the network twice.

    Outputs: ``keypoints`` float32 [N, J, 2] (x, y) in input (crop) px, ``scores`` float32 [N, J]
    (the peak values), then ``heatmaps`` [N, J, h, w] when ``keep_heatmaps``.

    Raises:
        RuntimeFailure: the graph does not have one ``[N, J, h, w]`` heatmap output.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from fpdctl.codec import QUARTER_PIXEL_SHIFT

    graph = model.graph
    dims = _dims(graph.output[0]) if len(graph.output) == 1 else []
    if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
        raise RuntimeFailure(f"cannot embed decoding: expected one heatmap output [N, J, h, w], got {dims}")
    heatmaps = graph.output[0]
    batch, joints, height, width = dims
    d = _DECODE

    def const(name: str, value: Any, dtype: Any) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(value, dtype), d + name))
        return d + name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        graph.node.append(
            helper.make_node(op, inputs, [output if output in outputs else d + output], name=d + output, **attrs)
        )
        return output if output in outputs else d + output

    outputs = (KEYPOINTS_OUTPUT_NAME, SCORES_OUTPUT_NAME)
    flat = node("Reshape", [heatmaps.name, const("flat_shape", [0, joints, height * width], np.int64)], "flat")
    index = node("ArgMax", [flat], "index", axis=2, keepdims=1, select_last_index=0)  # [N, J, 1]
    peak = node("GatherElements", [flat, index], "peak", axis=2)
    node("Squeeze", [peak, const("last_axis", [2], np.int64)], SCORES_OUTPUT_NAME)
    zero, one = const("zero", 0, np.int64), const("one", 1, np.int64)
    w, last = const("width", width, np.int64), const("last_index", height * width - 1, np.int64)

    def neighbour(name: str, op: str, step: str, bound: str, clamp: str) -> str:
        # Clamped to the map: where the index leaves it the step is masked off below anyway.
        moved = node(op, [index, step], f"{name}_index")
        return node("GatherElements", [flat, node(clamp, [moved, bound], f"{name}_clamped")], name, axis=2)

    quarter = const("quarter", QUARTER_PIXEL_SHIFT, np.float32)
    coords = []
    px = node("Mod", [index, w], "px")
    # (index - px) / w: exact whether Div truncates (ONNX on integers) or not (OpenCV's DNN).
    py = node("Div", [node("Sub", [index, px], "row_start"), w], "py")
    for axis, (position, size, low, high, stride) in enumerate(
        (
            (px, width, ("left", "Sub", one), ("right", "Add", one), input_size / width),
            (py, height, ("up", "Sub", w), ("down", "Add", w), input_size / height),
        )
    ):
        name = "xy"[axis]
        below = neighbour(low[0], low[1], low[2], zero, "Max")
        above = neighbour(high[0], high[1], high[2], last, "Min")
        # 1 strictly inside the map, else 0, in integer arithmetic rather than And / Greater /
        # Less (OpenCV's DNN reads no boolean ops): min(p, 1) * min(last - p, 1) for 0 <= p <= last.
        inside = node(
            "Mul",
            [
                node("Min", [position, one], f"{name}_after_first"),
                node(
                    "Min",
                    [node("Sub", [const(f"{name}_last", size - 1, np.int64), position], f"{name}_to_last"), one],
                    f"{name}_before_last",
                ),
            ],
            f"{name}_inside",
        )
        step = node(
            "Mul",
            [
                node(
                    "Mul",
                    [node("Sign", [node("Sub", [above, below], f"{name}_slope")], f"{name}_sign"), quarter],
                    f"{name}_quarter",
                ),
                node("Cast", [inside], f"{name}_inside_float", to=TensorProto.FLOAT),
            ],
            f"{name}_step",
        )
        shifted = node(
            "Add", [node("Cast", [position], f"{name}_float", to=TensorProto.FLOAT), step], f"{name}_shifted"
        )
        coords.append(node("Mul", [shifted, const(f"{name}_stride", stride, np.float32)], name))
    node("Concat", coords, KEYPOINTS_OUTPUT_NAME, axis=2)

    kept = [graph.output[0]] if keep_heatmaps else []
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info(KEYPOINTS_OUTPUT_NAME, TensorProto.FLOAT, [batch, joints, 2]),
            helper.make_tensor_value_info(SCORES_OUTPUT_NAME, TensorProto.FLOAT, [batch, joints]),
            *kept,
        ]
    )


def copy_model(model: "onnx.ModelProto") -> "onnx.ModelProto":
    """A deep copy of ``model`` (the converters modify their input in place)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def check_opset_written(model: "onnx.ModelProto", opset: int) -> None:
    """Raise RuntimeFailure unless ``model`` declares the default-domain ``opset`` asked for."""
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise RuntimeFailure(f"the exporter wrote opset {written} instead of the requested {opset}")


__all__ = [
    "KEYPOINTS_OUTPUT_NAME",
    "PIXELS_INPUT_NAME",
    "SCORES_OUTPUT_NAME",
    "append_decode",
    "check_opset_written",
    "copy_model",
    "prepend_preprocess",
    "strip_debug_info",
    "take_last_stack_directly",
]
