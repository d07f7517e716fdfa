"""Static int8 quantization of faceprint's float ONNX graphs, from activation ranges recorded once.

onnxruntime runs a graph's ``DequantizeLinear -> Conv -> QuantizeLinear`` groups (QDQ form) as int8
kernels, which use AVX-512 VNNI / AVX2 on x86 and dot-product instructions on ARM: dlib's ResNet runs
about twice as fast (BENCHMARKS.md, "Issue 13: int8"). :func:`quantize` rewrites a float graph into
that form with numpy alone, from a table of each activation's range (:func:`record_ranges`), so a
user's machine needs no calibration images:

* weights of ``Conv``: int8, symmetric, one scale per output channel; biases int32 at the scale of
  input times weight (what onnxruntime's fused kernels expect);
* activations (the tensors ``Conv``, ``Add``, the pools and ``Pad`` read or write): uint8 with the
  recorded range widened to include 0. Pools and ``Pad`` keep their input's scale, as onnxruntime
  needs to run them on the int8 values;
* a ``Relu`` after a quantized tensor is dropped: that tensor's range starts at 0, so its zero
  point is 0 and quantizing clamps at 0 exactly as the ``Relu`` did;
* everything from the first other node on (dlib's global average pooling and its 256x128 matrix)
  stays float: it costs little and keeps the last rounding off the descriptor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from .errors import ModelError

if TYPE_CHECKING:
    import onnx

#: Ops that run on int8 values: their float activation inputs and outputs are quantized.
QUANTIZED_OPS = frozenset({"Conv", "Add", "MaxPool", "AveragePool", "Pad"})
#: Ops whose output keeps its input's scale and zero point (they only move or average values).
SAME_SCALE_OPS = frozenset({"MaxPool", "AveragePool", "Pad"})
_UINT8_MAX = 255
_INT8_MAX = 127

Ranges = Mapping[str, tuple[float, float]]


def record_ranges(model_bytes: bytes, batches: Iterable[Mapping[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """The smallest and largest value each float tensor of the graph takes over ``batches`` (inputs by name)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load_from_string(model_bytes)
    produced = [output for node in model.graph.node for output in node.output]
    known = {output.name for output in model.graph.output}
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in produced if name not in known)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ranges: dict[str, tuple[float, float]] = {}
    for batch in batches:
        for name, value in zip((o.name for o in session.get_outputs()), session.run(None, dict(batch))):
            if value.dtype != np.float32 or value.size == 0:
                continue
            low, high = ranges.get(name, (np.inf, -np.inf))
            ranges[name] = (min(low, float(value.min())), max(high, float(value.max())))
    return ranges


def quantize(model: onnx.ModelProto, ranges: Ranges) -> onnx.ModelProto:
    """A copy of ``model`` in QDQ form (see the module's docstring); ``ModelError`` if a range is missing."""
    import onnx

    quantized = onnx.ModelProto()
    quantized.CopyFrom(model)
    graph = quantized.graph
    _drop_relus(graph, ranges)
    weights = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in graph.initializer}
    params = _activation_params(graph, ranges, weights)
    nodes: list[onnx.NodeProto] = []
    dequantized: dict[str, str] = {}
    for source in graph.node:
        node = onnx.NodeProto()
        node.CopyFrom(source)
        if node.op_type in QUANTIZED_OPS:
            _quantize_inputs(node, params, weights, dequantized, graph, nodes)
        nodes.append(node)
        if node.op_type in QUANTIZED_OPS:
            for output in node.output:
                nodes.extend(_qdq_pair(output, params[output], dequantized, graph))
    _rewire_consumers(nodes, dequantized)
    del graph.node[:]
    graph.node.extend(nodes)
    _remove_unused_initializers(graph)
    return quantized


def _drop_relus(graph: onnx.GraphProto, ranges: Ranges) -> None:
    """Remove each ``Relu`` whose input is made by a quantized op and read by that ``Relu`` alone."""
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    producers = {output: node for node in graph.node for output in node.output}
    for relu in [node for node in graph.node if node.op_type == "Relu"]:
        source = producers.get(relu.input[0])
        if source is None or source.op_type not in QUANTIZED_OPS or readers[relu.input[0]] != 1:
            continue
        if relu.output[0] not in ranges or ranges[relu.output[0]][0] < 0:
            raise ModelError(f"int8: no non-negative range recorded for {relu.output[0]!r}")
        source.output[list(source.output).index(relu.input[0])] = relu.output[0]
        graph.node.remove(relu)


def _activation_params(
    graph: onnx.GraphProto, ranges: Ranges, weights: Mapping[str, np.ndarray]
) -> dict[str, tuple[float, int]]:
    """(scale, uint8 zero point) of every float activation a quantized op reads or writes."""
    params: dict[str, tuple[float, int]] = {}
    for node in graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        activations = [name for name in node.input if name and name not in weights]
        for name in activations:
            params.setdefault(name, _uint8_params(name, ranges))
        for output in node.output:
            same = node.op_type in SAME_SCALE_OPS
            params[output] = params[activations[0]] if same else _uint8_params(output, ranges)
    return params


def _uint8_params(name: str, ranges: Ranges) -> tuple[float, int]:
    if name not in ranges:
        raise ModelError(f"int8: no range recorded for the activation {name!r}")
    low, high = min(ranges[name][0], 0.0), max(ranges[name][1], 0.0)
    scale = (high - low) / _UINT8_MAX or 1.0
    return float(np.float32(scale)), int(np.clip(round(-low / scale), 0, _UINT8_MAX))


def _quantize_inputs(
    node: onnx.NodeProto,
    params: Mapping[str, tuple[float, int]],
    weights: Mapping[str, np.ndarray],
    dequantized: dict[str, str],
    graph: onnx.GraphProto,
    nodes: list[onnx.NodeProto],
) -> None:
    """QDQ pairs for activations that enter here unquantized (the graph's first), int8 weights for a Conv."""
    for name in node.input:
        if name in params and name not in dequantized:
            nodes.extend(_qdq_pair(name, params[name], dequantized, graph))
    if node.op_type == "Conv":
        nodes.extend(_conv_weights(node, params[node.input[0]][0], weights, graph))


def _qdq_pair(
    tensor: str, param: tuple[float, int], dequantized: dict[str, str], graph: onnx.GraphProto
) -> list[onnx.NodeProto]:
    from onnx import helper, numpy_helper

    scale, zero_point = f"{tensor}_scale", f"{tensor}_zero_point"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(param[0], dtype=np.float32), scale),
            numpy_helper.from_array(np.array(param[1], dtype=np.uint8), zero_point),
        ]
    )
    dequantized[tensor] = f"{tensor}_dq"
    return [
        helper.make_node("QuantizeLinear", [tensor, scale, zero_point], [f"{tensor}_q"], name=f"{tensor}_q"),
        helper.make_node("DequantizeLinear", [f"{tensor}_q", scale, zero_point], [f"{tensor}_dq"], name=f"{tensor}_dq"),
    ]


def _conv_weights(
    node: onnx.NodeProto, input_scale: float, weights: Mapping[str, np.ndarray], graph: onnx.GraphProto
) -> list[onnx.NodeProto]:
    """The Conv's weights as int8 per output channel and its bias as int32, each behind a DequantizeLinear."""
    from onnx import helper, numpy_helper

    kernel = weights[node.input[1]].astype(np.float64)
    per_channel = np.abs(kernel).reshape(len(kernel), -1).max(axis=1) / _INT8_MAX
    per_channel = np.where(per_channel > 0, per_channel, 1.0).astype(np.float32)
    tensors = {1: (np.round(kernel / per_channel.reshape(-1, 1, 1, 1)).astype(np.int8), per_channel)}
    if len(node.input) > 2:
        bias_scale = (np.float64(input_scale) * per_channel).astype(np.float32)
        tensors[2] = (np.round(weights[node.input[2]] / bias_scale.astype(np.float64)).astype(np.int32), bias_scale)
    nodes = []
    for position, (values, scale) in tensors.items():
        name = node.input[position]
        graph.initializer.extend(
            [
                numpy_helper.from_array(values, f"{name}_int"),
                numpy_helper.from_array(scale, f"{name}_int_scale"),
                numpy_helper.from_array(np.zeros(len(scale), dtype=values.dtype), f"{name}_int_zero_point"),
            ]
        )
        nodes.append(
            helper.make_node(
                "DequantizeLinear", [f"{name}_int", f"{name}_int_scale", f"{name}_int_zero_point"],
                [f"{name}_dq"], name=f"{name}_dq", axis=0,
            )
        )  # fmt: skip
        node.input[position] = f"{name}_dq"
    return nodes


def _rewire_consumers(nodes: list[onnx.NodeProto], dequantized: Mapping[str, str]) -> None:
    """Every node but a tensor's own QuantizeLinear reads the dequantized copy."""
    for node in nodes:
        if node.op_type == "QuantizeLinear":
            continue
        for position, name in enumerate(node.input):
            if name in dequantized:
                node.input[position] = dequantized[name]


def _remove_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    keep = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
