"""Graph rewrites used before int8 quantisation, checked on hand-built ONNX graphs."""

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from fpdctl.deploy.quantize import (
    INT16_MAX,
    bn_to_depthwise_conv,
    calibration_indices,
    name_nodes,
    output_head_nodes,
    pair_sum_bound,
)


def _bn_graph(rng, channels=5, eps=1e-3):
    """x -> BatchNormalization -> Relu -> Conv(1x1) -> y."""
    gamma = rng.uniform(0.2, 3.0, channels).astype(np.float32)
    beta = rng.normal(0, 0.5, channels).astype(np.float32)
    mean = rng.normal(0, 1.0, channels).astype(np.float32)
    var = rng.uniform(0.05, 4.0, channels).astype(np.float32)
    weight = rng.normal(0, 1, (3, channels, 1, 1)).astype(np.float32)
    inits = [
        numpy_helper.from_array(a, n) for a, n in ((gamma, "g"), (beta, "b"), (mean, "m"), (var, "v"), (weight, "w"))
    ]
    nodes = [
        helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["bn"], epsilon=eps),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("Conv", ["r", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, channels, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return model, (gamma, beta, mean, var, eps)


def _run(model, x):
    options = ort.SessionOptions()
    # No ORT fusions: the graphs themselves are compared, not ORT's rewrite of them.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_bn_becomes_an_equal_depthwise_conv():
    rng = np.random.default_rng(0)
    model, (gamma, beta, mean, var, eps) = _bn_graph(rng)
    x = rng.normal(0, 2, (2, 5, 4, 4)).astype(np.float32)
    before = _run(model, x)
    assert bn_to_depthwise_conv(model) == 1
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["Conv", "Relu", "Conv"]
    dw = model.graph.node[0]
    assert {a.name: helper.get_attribute_value(a) for a in dw.attribute} == {"group": 5, "kernel_shape": [1, 1]}
    # The BN parameters are gone; the folded weight is gamma / sqrt(var + eps), by hand:
    names = {i.name for i in model.graph.initializer}
    assert not {"g", "b", "m", "v"} & names
    weight = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == dw.input[1]))
    np.testing.assert_allclose(weight.ravel(), gamma / np.sqrt(var + eps), rtol=1e-6)
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-5, atol=1e-5)


def test_output_head_stops_at_the_last_convolution():
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="trunk"),
        helper.make_node("Conv", ["a", "w2"], ["s"], name="score"),
        helper.make_node("Unsqueeze", ["s", "axes"], ["u"], name="unsq"),
        helper.make_node("Identity", ["u"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph)
    name_nodes(model)
    assert model.graph.node[3].name == "Identity_3"
    assert sorted(output_head_nodes(model)) == ["Identity_3", "score", "unsq"]


def test_calibration_indices_spread_over_the_split():
    np.testing.assert_array_equal(calibration_indices(10, 3), [0, 4, 9])
    np.testing.assert_array_equal(calibration_indices(4, 100), [0, 1, 2, 3])


def _qdq_conv(weights: np.ndarray, activation=TensorProto.UINT8, weight=TensorProto.INT8, group=1):
    """x (float) -> Q/DQ in ``activation`` -> Conv with the DequantizeLinear of ``weights`` -> y."""
    out_channels = weights.shape[0]
    zero = np.zeros(out_channels, np.int8 if weight == TensorProto.INT8 else np.uint8)
    inits = [
        helper.make_tensor("wq", weight, weights.shape, weights.astype(np.int64).ravel().tolist()),
        numpy_helper.from_array(np.full(out_channels, 0.01, np.float32), "ws"),
        numpy_helper.from_array(zero, "wz"),
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        helper.make_tensor("xz", activation, [], [0]),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], group=group),
    ]
    graph = helper.make_graph(nodes, "qdq", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_pair_sum_bound_takes_each_channels_two_largest_weights():
    """By hand: 255 (the largest uint8 activation) x the two largest |w| of the worst channel."""
    weights = np.zeros((2, 3, 1, 1), np.int64)
    weights[0, :, 0, 0] = [127, -127, 5]  # 8-bit weights: 255 x 254 = 64,770, beyond int16
    weights[1, :, 0, 0] = [10, 20, -30]
    assert pair_sum_bound(_qdq_conv(weights)) == 255 * 254 > INT16_MAX
    weights[0, :, 0, 0] = [64, -64, 5]  # 7-bit weights (reduce_range): 255 x 128 = 32,640
    assert pair_sum_bound(_qdq_conv(weights)) == 32_640 <= INT16_MAX
    # A depthwise convolution has one weight per output channel: no pair to saturate.
    depthwise = np.array([127, -127, 90], np.int64).reshape(3, 1, 1, 1)
    assert pair_sum_bound(_qdq_conv(depthwise, group=3)) == 255 * 127
    # Only u8 x s8 convolutions can saturate: s8 activations or u8 weights are not counted.
    assert pair_sum_bound(_qdq_conv(weights, activation=TensorProto.INT8)) == 0
    assert pair_sum_bound(_qdq_conv(np.abs(weights), weight=TensorProto.UINT8)) == 0
