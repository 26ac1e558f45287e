"""Surgery on exported ONNX graphs: what ``fpdctl export`` does to the exporter's output before
it is verified and written.

* :func:`strip_debug_info`: drop the exporter's per-node stack traces (paths of the exporting
  machine, and most of a small model's file size).
* :func:`take_last_stack_directly`: let the last stack's score convolution write the output
  instead of gathering it from every stack's concatenated heatmaps.
* :func:`check_opset_written`, :func:`copy_model`: small checks and copies around them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fpdctl.errors import RuntimeFailure

if TYPE_CHECKING:
    import onnx


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


__all__ = ["check_opset_written", "copy_model", "strip_debug_info", "take_last_stack_directly"]
