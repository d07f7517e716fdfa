"""dlib's ResNet face embedding as an ONNX graph, and onnxruntime runners for it and for user models.

dlib-bin computes the embedding with its own single-threaded matrix code (~80 ms a face);
onnxruntime runs the same weights with MLAS kernels on any number of threads. The graph is
built from ``dlib_face_recognition_resnet_model_v1.dat`` itself: :func:`read_dlib_net` parses
dlib's binary serialization with numpy alone and :func:`build_onnx` emits the equivalent graph,
so the descriptors equal dlib's to float rounding. The built model is cached under the user
cache directory, keyed by the sha256 of the ``.dat`` file.

dlib's format, as written by ``serialize()`` in ``dlib/serialize.h`` and ``dlib/dnn``:

* integers: a control byte (low nibble: byte count, 0x80: negative), then the magnitude's
  bytes, little-endian; strings: their length as such an integer, then the bytes; bools: the
  character ``'1'`` or ``'0'``; floats: ``float_details``, i.e. the integers mantissa and
  exponent of ``mantissa * 2**exponent``;
* tensors: version 2, num_samples, k, nr, nc, then the values as little-endian float32;
  alias tensors (views into a layer's ``params``): version 1 and the four dimensions;
* a network nests ``add_layer<details, subnet>`` wrappers outermost first and each writes
  ``version, subnet, details, state``, so the file holds every wrapper's version number
  (outermost first), then the input layer, then each layer's details innermost first. Tag and
  skip wrappers write only their version (1) and ``add_prev_`` only its name: which tag a skip
  or an add refers to is not in the file, so :data:`ANET_STAGES` (the network definition of
  dlib's ``dnn_face_recognition_ex.cpp``) supplies it and the file is checked against it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import onnxruntime as ort

from .choices import PRECISIONS, Precision
from .errors import ModelError
from .models import DLIB_RESNET, model_path

if TYPE_CHECKING:
    import onnx

# ``onnx`` is imported only where a graph is built (about 0.7 s, 2 s under load): a process that finds its
# converted graphs cached never loads it (BENCHMARKS.md, "Start-up").

# -- dlib's network, as parsed ------------------------------------------------------------


@dataclass(frozen=True)
class InputLayer:
    """``input_rgb_image_sized``: dlib feeds ``(pixel - mean) / 256`` per channel."""

    mean_rgb: tuple[float, float, float]
    size: tuple[int, int]


@dataclass(frozen=True, eq=False)
class Conv:
    weights: np.ndarray  # (out, in, rows, cols), cross-correlation as in ONNX
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True, eq=False)
class Affine:
    """Frozen batch norm: ``gamma * x + beta`` per channel."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class Pool:
    op: Literal["max", "avg"]
    window: tuple[int, int]  # (0, 0): the whole input (``avg_pool_everything``)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class AddPrev:
    """Adds a tagged earlier output, zero-padding the smaller tensor (dlib's ``tt::add``)."""


@dataclass(frozen=True)
class Marker:
    """A tag or skip wrapper: the file records that one is there, not which."""


@dataclass(frozen=True, eq=False)
class Fc:
    weights: np.ndarray  # (inputs, outputs): dlib computes ``x @ weights``


Layer = Conv | Affine | Pool | Relu | AddPrev | Marker | Fc


@dataclass(frozen=True)
class DlibNet:
    loss: str
    input: InputLayer
    layers: tuple[Layer, ...]  # input side first


# -- dlib's serialization -----------------------------------------------------------------

_TAG_OR_SKIP_VERSION = 1
_WRAPPER_VERSIONS = {_TAG_OR_SKIP_VERSION, 2}  # 2: add_layer
_INPUT_ADD_LAYER_VERSIONS = (2, 3)  # 3 appended the sample expansion factor
_CONV_MODE = 0  # dlib's layer_mode: one gamma and beta per channel
_FC_NO_BIAS = 1  # dlib's fc_bias_mode
_FLOAT_SPECIALS = {32000: np.inf, 32001: -np.inf, 32002: np.nan}


class DlibReader:
    """Sequential reader of dlib-serialized values."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise ModelError(f"dlib model file truncated at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def read_int(self) -> int:
        control = self.take(1)[0]
        value = int.from_bytes(self.take(control & 0x0F), "little")
        return -value if control & 0x80 else value

    def read_ints(self, count: int) -> tuple[int, ...]:
        return tuple(self.read_int() for _ in range(count))

    def read_pair(self) -> tuple[int, int]:
        return self.read_int(), self.read_int()

    def read_str(self) -> str:
        return self.take(self.read_int()).decode("latin-1")

    def read_bool(self) -> bool:
        char = self.take(1)
        if char not in (b"0", b"1"):
            raise ModelError(f"dlib model file: no bool at byte {self.pos - 1}")
        return char == b"1"

    def read_float(self) -> float:
        mantissa, exponent = self.read_int(), self.read_int()
        return _FLOAT_SPECIALS.get(exponent, float(np.ldexp(float(mantissa), exponent)))

    def read_tensor(self) -> np.ndarray:
        self.read_version("tensor", 2)
        shape = self.read_ints(4)
        values = np.frombuffer(self.take(4 * int(np.prod(shape))), dtype="<f4")
        return values.astype(np.float32).reshape(shape)

    def read_alias(self) -> tuple[int, ...]:
        self.read_version("alias_tensor", 1)
        return self.read_ints(4)

    def read_version(self, what: str, *versions: int) -> int:
        version = self.read_int()
        if version not in versions:
            raise ModelError(f"dlib model file: {what} version {version}, expected one of {versions}")
        return version

    def next_is_string(self, prefix: bytes) -> bool:
        """Whether a string starting with ``prefix`` comes next (consumes nothing)."""
        start = self.pos
        try:
            return self.read_int() >= len(prefix) and self.take(len(prefix)) == prefix
        except ModelError:
            return False
        finally:
            self.pos = start


def read_dlib_net(path: str | os.PathLike) -> DlibNet:
    """Parse a serialized ``loss_metric`` network (dlib's ``anet_type``) into its layers."""
    reader = DlibReader(Path(path).read_bytes())
    reader.read_version("add_loss_layer", 1)
    loss = _read_loss(reader)
    wrappers: list[int] = []
    while not reader.next_is_string(b"input"):
        wrappers.append(reader.read_int())
    if not wrappers:
        raise ModelError("dlib model file: no layer wrapper before the input layer")
    input_wrapper = wrappers.pop()
    if input_wrapper not in _INPUT_ADD_LAYER_VERSIONS or not set(wrappers) <= _WRAPPER_VERSIONS:
        raise ModelError(f"dlib model file: unexpected layer wrapper versions {sorted({*wrappers, input_wrapper})}")
    net_input = _read_input(reader)
    layers = [_read_layer(reader)]
    _skip_add_layer_state(reader, sample_expansion=input_wrapper == 3)
    for version in reversed(wrappers):
        if version == _TAG_OR_SKIP_VERSION:
            layers.append(Marker())
        else:
            layers.append(_read_layer(reader))
            _skip_add_layer_state(reader)
    if reader.pos != len(reader.data):
        raise ModelError(f"dlib model file: {len(reader.data) - reader.pos} bytes left after the network")
    return DlibNet(loss, net_input, tuple(layers))


def _read_loss(reader: DlibReader) -> str:
    name = reader.read_str()
    if name != "loss_metric_2":
        raise ModelError(f"dlib model file: loss {name!r}, expected loss_metric_2")
    reader.read_float(), reader.read_float()  # margin and distance threshold: training only
    return name


def _read_input(reader: DlibReader) -> InputLayer:
    name = reader.read_str()
    if name != "input_rgb_image_sized":
        raise ModelError(f"dlib model file: input layer {name!r}, expected input_rgb_image_sized")
    mean = (reader.read_float(), reader.read_float(), reader.read_float())
    return InputLayer(mean, (reader.read_int(), reader.read_int()))


def _skip_add_layer_state(reader: DlibReader, *, sample_expansion: bool = False) -> None:
    """Training state an add_layer writes after its details: 3 flags, 3 tensors (gradients, cached output)."""
    for _ in range(3):
        reader.read_bool()
    for _ in range(3):
        reader.read_tensor()
    if sample_expansion:
        reader.read_int()


def _read_layer(reader: DlibReader) -> Layer:
    name = reader.read_str()
    parse = _LAYER_PARSERS.get(name)
    if parse is None:
        raise ModelError(f"dlib model file: unsupported layer {name!r} at byte {reader.pos}")
    return parse(reader)


def _read_conv(reader: DlibReader) -> Conv:
    params = reader.read_tensor().ravel()
    filters, rows, cols = reader.read_ints(3)
    stride, padding = reader.read_pair(), reader.read_pair()
    weight_shape, bias_shape = reader.read_alias(), reader.read_alias()
    for _ in range(4):
        reader.read_float()  # learning-rate and weight-decay multipliers
    weight_count = int(np.prod(weight_shape))
    weights: np.ndarray = params[:weight_count].reshape(weight_shape)
    if weights.shape[0] != filters or weights.shape[2:] != (rows, cols):
        raise ModelError(f"dlib model file: con_ filters {weights.shape} disagree with ({filters}, {rows}, {cols})")
    bias = params[weight_count : weight_count + int(np.prod(bias_shape))]
    return Conv(weights, bias, stride, padding)


def _read_affine(reader: DlibReader) -> Affine:
    params = reader.read_tensor().ravel()
    gamma_shape, _beta_shape = reader.read_alias(), reader.read_alias()
    if reader.read_int() != _CONV_MODE:
        raise ModelError("dlib model file: affine_ in FC mode (only CONV mode, per channel, is supported)")
    channels = int(np.prod(gamma_shape))
    return Affine(params[:channels], params[channels : 2 * channels])


def _read_pool(op: Literal["max", "avg"], reader: DlibReader) -> Pool:
    window, stride, padding = reader.read_pair(), reader.read_pair(), reader.read_pair()
    return Pool(op, window, stride, padding)


def _read_fc(reader: DlibReader) -> Fc:
    outputs, inputs = reader.read_pair()
    params = reader.read_tensor().ravel()
    reader.read_alias(), reader.read_alias()  # weights (inputs, outputs), then the (empty) biases
    if reader.read_int() != _FC_NO_BIAS:
        raise ModelError("dlib model file: fc_ with a bias (only fc_no_bias is supported)")
    for _ in range(4):
        reader.read_float()
    return Fc(params[: inputs * outputs].reshape(inputs, outputs))


_LAYER_PARSERS: dict[str, Callable[[DlibReader], Layer]] = {
    "con_4": _read_conv,
    "affine_": _read_affine,
    "relu_": lambda reader: Relu(),
    "max_pool_2": functools.partial(_read_pool, "max"),
    "avg_pool_2": functools.partial(_read_pool, "avg"),
    "add_prev_": lambda reader: AddPrev(),
    "fc_2": _read_fc,
}


# -- dlib's anet_type: the topology the file does not record ------------------------------

#: (filters, residual blocks, whether the first block halves the resolution) per stage,
#: input side first: ``alevel4`` to ``alevel0`` of ``dnn_face_recognition_ex.cpp``.
ANET_STAGES: tuple[tuple[int, int, bool], ...] = (
    (32, 3, False),
    (64, 4, True),
    (128, 3, True),
    (256, 3, True),
    (256, 1, True),
)

# residual:      add_prev1<block<N,BN,1,tag1<SUBNET>>>, then relu
_RESIDUAL = ("tag1", "con", "affine", "relu", "con", "affine", "add_prev1", "relu")
# residual_down: add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>, then relu
_RESIDUAL_DOWN = ("tag1", "con", "affine", "relu", "con", "affine", "tag2", "skip1", "avg_pool", "add_prev2", "relu")


def anet_filters() -> list[int]:
    """Output channels of each convolution of ``anet_type``, input side first (the stem has 32)."""
    return [32] + [filters for filters, blocks, _ in ANET_STAGES for _ in range(2 * blocks)]


def anet_plan() -> list[str]:
    """Layer tokens of dlib's ``anet_type``, input side first (input layer and loss excluded)."""
    plan = ["con", "affine", "relu", "max_pool"]
    for _filters, blocks, downsamples in ANET_STAGES:
        for block in range(blocks):
            plan += _RESIDUAL_DOWN if downsamples and block == 0 else _RESIDUAL
    return [*plan, "avg_pool", "fc"]


def layer_kind(layer: Layer) -> str:
    """The plan token kind a parsed layer stands for (tags and skips are both ``"marker"``)."""
    if isinstance(layer, Pool):
        return f"{layer.op}_pool"
    return {Conv: "con", Affine: "affine", Relu: "relu", AddPrev: "add_prev", Marker: "marker", Fc: "fc"}[type(layer)]


def _token_kind(token: str) -> str:
    if token.startswith(("tag", "skip")):
        return "marker"
    return "add_prev" if token.startswith("add_prev") else token


def match_anet(net: DlibNet) -> list[tuple[str, Layer]]:
    """Each parsed layer with its ``anet_type`` token; ``ModelError`` if the file holds another network."""
    expected = [_token_kind(token) for token in anet_plan()]
    found = [layer_kind(layer) for layer in net.layers]
    if found != expected:
        at = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b), min(len(found), len(expected)))
        raise ModelError(
            f"not dlib's face recognition ResNet: {len(found)} layers (expected {len(expected)}), "
            f"first difference at layer {at}: {found[at : at + 1]} instead of {expected[at : at + 1]}"
        )
    filters = [layer.weights.shape[0] for layer in net.layers if isinstance(layer, Conv)]
    if filters != anet_filters():
        raise ModelError(f"not dlib's face recognition ResNet: convolution filters {filters}")
    return list(zip(anet_plan(), net.layers))


# -- ONNX graph ---------------------------------------------------------------------------

#: Bumped whenever the emitted graph changes, so that stale cached models are rebuilt.
GRAPH_VERSION = 1
#: Bumped whenever the int8 quantization changes (faceprint.int8 or how INT8_RANGES is recorded).
INT8_RECIPE = 1
#: Each activation's range over dlib chips of faces-dev's main faces and their mirror images, recorded on the
#: float graph by tools/resnet_int8_ranges.py: numbers only, so int8 graphs build offline anywhere.
INT8_RANGES = "dlib-resnet-int8-ranges.json"
OPSET = 17
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"


def fold_affines(steps: list[tuple[str, Layer]]) -> list[tuple[str, Layer]]:
    """Merge each ``con`` directly followed by an ``affine`` into one convolution (both are linear)."""
    folded: list[tuple[str, Layer]] = []
    for token, layer in steps:
        if isinstance(layer, Affine) and folded and isinstance(folded[-1][1], Conv):
            folded[-1] = (folded[-1][0], _fold(folded[-1][1], layer))
        else:
            folded.append((token, layer))
    return folded


def _fold(conv: Conv, affine: Affine) -> Conv:
    gamma = affine.gamma.astype(np.float64)
    weights = conv.weights.astype(np.float64) * gamma[:, None, None, None]
    bias = conv.bias.astype(np.float64) * gamma + affine.beta
    return replace(conv, weights=weights.astype(np.float32), bias=bias.astype(np.float32))


def _pooled(size: int, window: int, stride: int, padding: int) -> int:
    """Output length of a dlib (and ONNX, floor mode) convolution or pooling window."""
    return 1 + (size + 2 * padding - window) // stride


class _Graph:
    """Accumulates ONNX nodes and initializers, tracking each tensor's static shape after the batch axis."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def constant(self, stem: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...] | None, **attrs: Any) -> str:
        from onnx import helper

        output = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        if shape is not None:
            self.shapes[output] = shape
        return output

    def preprocess(self, layer: InputLayer) -> str:
        """uint8 NHWC RGB to dlib's float NCHW ``(pixel - mean) / 256`` (exact: 1/256 is a power of 2)."""
        from onnx import TensorProto

        pixels = self.node("Cast", [INPUT_NAME], None, to=TensorProto.FLOAT)
        nchw = self.node("Transpose", [pixels], None, perm=[0, 3, 1, 2])
        mean = self.constant("mean", np.array(layer.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1))
        centred = self.node("Sub", [nchw, mean], None)
        return self.node(
            "Mul", [centred, self.constant("scale", np.array(1 / 256, dtype=np.float32))], (3, *layer.size)
        )

    def conv(self, x: str, layer: Conv) -> str:
        _, rows, cols = self.shapes[x]
        kernel, stride, (pad_y, pad_x) = layer.weights.shape[2:], layer.stride, layer.padding
        shape = (
            layer.weights.shape[0],
            _pooled(rows, kernel[0], stride[0], pad_y),
            _pooled(cols, kernel[1], stride[1], pad_x),
        )
        weights, bias = self.constant("weights", layer.weights), self.constant("bias", layer.bias)
        return self.node(
            "Conv", [x, weights, bias], shape, kernel_shape=list(kernel), strides=list(stride),
            pads=[pad_y, pad_x, pad_y, pad_x],
        )  # fmt: skip

    def pool(self, x: str, layer: Pool) -> str:
        channels, rows, cols = self.shapes[x]
        if layer.window == (0, 0):
            return self.node("GlobalAveragePool" if layer.op == "avg" else "GlobalMaxPool", [x], (channels, 1, 1))
        if layer.op == "avg" and layer.padding != (0, 0):
            raise ModelError("padded average pooling is not supported (dlib's anet_type has none)")
        window, stride, (pad_y, pad_x) = layer.window, layer.stride, layer.padding
        shape = (channels, _pooled(rows, window[0], stride[0], pad_y), _pooled(cols, window[1], stride[1], pad_x))
        return self.node(
            "MaxPool" if layer.op == "max" else "AveragePool", [x], shape, kernel_shape=list(window),
            strides=list(stride), pads=[pad_y, pad_x, pad_y, pad_x],
        )  # fmt: skip

    def add_padded(self, a: str, b: str) -> str:
        """dlib's ``tt::add``: the sum over the larger shape, each input zero-padded at the far end."""
        target = tuple(max(pair) for pair in zip(self.shapes[a], self.shapes[b]))
        return self.node("Add", [self.pad_to(a, target), self.pad_to(b, target)], target)

    def pad_to(self, x: str, target: tuple[int, ...]) -> str:
        if self.shapes[x] == target:
            return x
        tail = [want - have for want, have in zip(target, self.shapes[x])]
        pads = self.constant("pads", np.array([0, 0, 0, 0, 0, *tail], dtype=np.int64))
        return self.node("Pad", [x, pads], target)

    def fc(self, x: str, layer: Fc) -> str:
        flat = self.node("Flatten", [x], None, axis=1)
        return self.node("MatMul", [flat, self.constant("fc", layer.weights)], (layer.weights.shape[1],))

    def step(self, token: str, layer: Layer, x: str, tags: dict[str, str]) -> str:
        """Emit one ``anet_type`` step on ``x``; ``tags`` holds what tag wrappers marked."""
        if token.startswith("tag"):
            tags[token.removeprefix("tag")] = x
            return x
        if token.startswith("skip"):
            return tags[token.removeprefix("skip")]
        if token.startswith("add_prev"):
            return self.add_padded(x, tags[token.removeprefix("add_prev")])
        if isinstance(layer, Conv):
            return self.conv(x, layer)
        if isinstance(layer, Pool):
            return self.pool(x, layer)
        if isinstance(layer, Fc):
            return self.fc(x, layer)
        if isinstance(layer, Relu):
            return self.node("Relu", [x], self.shapes[x])
        raise ModelError(f"no ONNX equivalent for a lone {token!r}")  # an affine is always folded into its con


def build_onnx(net: DlibNet, *, source_sha256: str = "") -> onnx.ModelProto:
    """The ONNX model of ``net``: input ``chips``, uint8 (N, 150, 150, 3) RGB; output ``descriptors``, (N, 128)."""
    import onnx
    from onnx import TensorProto, helper

    graph = _Graph()
    x = graph.preprocess(net.input)
    tags: dict[str, str] = {}
    for token, layer in fold_affines(match_anet(net)):
        x = graph.step(token, layer, x, tags)
    graph.nodes.append(helper.make_node("Identity", [x], [OUTPUT_NAME], name=OUTPUT_NAME))
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "dlib_face_recognition_resnet_model_v1",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", *net.input.size, 3])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", *graph.shapes[x]])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=8,  # what opset 17 needs; newer IR versions lock out older runtimes
        producer_name="faceprint",
    )
    stamp(model, source_sha256, GRAPH_VERSION)
    onnx.checker.check_model(model)
    return model


# -- cache --------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("faceprint")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: The sha256 of model files hashed before, by path: ``[size, mtime_ns, ctime_ns, inode, sha256]``.
DIGESTS_FILE = "sha256.json"


def known_sha256(path: str | os.PathLike, cache_dir: Path | None = None) -> str:
    """``file_sha256(path)``, remembered between processes in the cache directory under the file's size,
    mtime, ctime and inode: a changed file (its ctime changes with any write, and cannot be set back) is
    hashed again. Saves hashing ~60 MB of model sources at every start (BENCHMARKS.md, "Service")."""
    path = Path(path).resolve()
    stat = path.stat()
    key = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
    memo_path = (cache_dir if cache_dir is not None else default_cache_dir()) / DIGESTS_FILE
    memo = _read_digests(memo_path)
    known = memo.get(str(path))
    if isinstance(known, list) and len(known) == 5 and known[:4] == key and isinstance(known[4], str):
        return known[4]
    digest = file_sha256(path)
    memo = {**_read_digests(memo_path), str(path): [*key, digest]}  # read again: another process may have added
    with contextlib.suppress(OSError):  # read-only cache: hash again next time
        write_atomically(memo_path, json.dumps(memo, indent=0).encode())
    return digest


def _read_digests(path: Path) -> dict[str, Any]:
    """The remembered digests, or none if the file is missing or damaged (it is then written anew)."""
    try:
        memo = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def cached_model_path(dat_sha256: str, cache_dir: Path, precision: Precision = "fp32") -> Path:
    quantized = f"-int8r{INT8_RECIPE}" if precision == "int8" else ""
    return cache_dir / f"dlib-resnet-{dat_sha256[:16]}-g{GRAPH_VERSION}{quantized}.onnx"


def resnet_graph_path(
    dat_path: str | os.PathLike | None = None, cache_dir: Path | None = None, precision: Precision = "fp32"
) -> Path:
    """Where the ONNX model of dlib's ResNet (at ``precision``) is cached (it may not be there yet)."""
    dat_path = Path(dat_path) if dat_path is not None else model_path(DLIB_RESNET.file)
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    return cached_model_path(known_sha256(dat_path, cache_dir), cache_dir, precision)


def resnet_onnx_bytes(dat_path: str | os.PathLike | None = None, cache_dir: Path | None = None) -> bytes:
    """The serialized ONNX model of dlib's ResNet: from the cache, else built in memory and cached."""
    dat_path = Path(dat_path) if dat_path is not None else model_path(DLIB_RESNET.file)
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    digest = known_sha256(dat_path, cache_dir)
    return cached_onnx_bytes(
        cached_model_path(digest, cache_dir),
        digest,
        GRAPH_VERSION,
        lambda: build_onnx(read_dlib_net(dat_path), source_sha256=digest),
    )


def resnet_int8_bytes(dat_path: str | os.PathLike | None = None, cache_dir: Path | None = None) -> bytes:
    """dlib's ResNet quantized to int8 (:mod:`faceprint.int8`) with the shipped activation ranges
    (:data:`INT8_RANGES`): from the cache, else built from the float graph and cached."""
    dat_path = Path(dat_path) if dat_path is not None else model_path(DLIB_RESNET.file)
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    digest = known_sha256(dat_path, cache_dir)

    def build() -> onnx.ModelProto:
        import onnx

        from . import int8

        model = int8.quantize(onnx.load_from_string(resnet_onnx_bytes(dat_path, cache_dir)), int8_ranges(digest))
        stamp(model, digest, int8_version())
        return model

    return cached_onnx_bytes(cached_model_path(digest, cache_dir, "int8"), digest, int8_version(), build)


def int8_version() -> str:
    """What an int8 graph is stamped with: the float graph's version and the quantization recipe's."""
    return f"{GRAPH_VERSION}-int8r{INT8_RECIPE}"


def int8_ranges(dat_sha256: str) -> dict[str, tuple[float, float]]:
    """The shipped activation ranges, checked to be those of this ``.dat`` file's float graph."""
    table = json.loads(resources.files("faceprint.data").joinpath(INT8_RANGES).read_text())
    made_for = (table["source_sha256"], table["graph_version"], table["recipe"])
    if made_for != (dat_sha256, GRAPH_VERSION, INT8_RECIPE):
        raise ModelError(
            f"{INT8_RANGES} was recorded for another model or conversion ({made_for}); "
            "rebuild it with tools/resnet_int8_ranges.py"
        )
    return {name: (low, high) for name, (low, high) in table["ranges"].items()}


def cached_onnx_bytes(
    cached: Path, digest: str, graph_version: int | str, build: Callable[[], onnx.ModelProto]
) -> bytes:
    """A converted model: from ``cached`` if valid, else ``build()`` in memory and cached there.

    A cached file is used only if it decodes and its metadata names the source's sha256
    (``digest``) and ``graph_version`` (see :func:`stamp`; protobuf writes the metadata after
    the graph, so a truncated file fails the check too). An unwritable cache directory only
    costs a rebuild next time.
    """
    data = _read_valid_cache(cached, digest, graph_version)
    if data is None:
        data = build().SerializeToString()
        with contextlib.suppress(OSError):  # read-only or full cache directory: serve from memory
            write_atomically(cached, data)
    return data


def stamp(model: onnx.ModelProto, source_sha256: str, graph_version: int | str) -> None:
    """Record in ``model`` what it was converted from, for :func:`cached_onnx_bytes`."""
    from onnx import helper

    helper.set_model_props(model, {"source_sha256": source_sha256, "graph_version": str(graph_version)})


def _read_valid_cache(path: Path, digest: str, graph_version: int | str) -> bytes | None:
    try:
        data = path.read_bytes()
        props = model_metadata(data)
    except (OSError, ValueError):
        return None
    return data if props == {"source_sha256": digest, "graph_version": str(graph_version)} else None


#: ``ModelProto.metadata_props`` and the fields of each entry (``StringStringEntryProto``) in onnx.proto.
_METADATA_FIELD, _KEY_FIELD, _VALUE_FIELD = 14, 1, 2


def model_metadata(data: bytes) -> dict[str, str]:
    """The ``metadata_props`` of a serialized ONNX model, read from the protobuf wire format without
    ``onnx``: every top-level field is walked, so a truncated or foreign file raises ``ValueError``."""
    props = {}
    for field, value in _wire_fields(memoryview(data)):  # a view: the graph's megabytes are not copied
        if field == _METADATA_FIELD:
            entry = dict(_wire_fields(_delimited(value)))
            props[str(_delimited(entry.get(_KEY_FIELD)), "utf-8")] = str(_delimited(entry.get(_VALUE_FIELD)), "utf-8")
    return props


def _wire_fields(data: memoryview) -> list[tuple[int, memoryview | int]]:
    """``(field number, value)`` of a protobuf message: length-delimited values as views, others as ints."""
    fields: list[tuple[int, memoryview | int]] = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(data, position)
            fields.append((field, value))
            continue
        size = {1: 8, 5: 4}.get(wire_type)
        if wire_type == 2:
            size, position = _varint(data, position)
        if size is None or field == 0 or position + size > len(data):
            raise ValueError(f"not a protobuf message (field {field}, wire type {wire_type} at byte {position})")
        fields.append((field, data[position : position + size] if wire_type == 2 else 0))
        position += size
    return fields


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if byte < 0x80:
            return value, position


def _delimited(value: memoryview | int | None) -> memoryview:
    """A length-delimited field's bytes (an absent field is empty, as protobuf has it)."""
    if value is None:
        return memoryview(b"")
    if not isinstance(value, memoryview):
        raise ValueError("a message or string field is not length-delimited")
    return value


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory and ``os.replace``: readers never see half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- runtime ------------------------------------------------------------------------------


@functools.cache
def _machine_tag() -> str:
    """What an optimised graph was made for: onnxruntime's version, the machine, the CPU's instruction sets
    (onnxruntime's fully optimised graphs use the CPU's vector width, so they suit only the CPU they were made on)."""
    flags = ""
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        flags = next((line for line in lines if line.startswith(("flags", "Features"))), "")
    text = f"{ort.__version__} {platform.machine()} {platform.processor()} {flags}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def optimised_path(graph: Path) -> Path:
    """Where onnxruntime's optimised form of the cached ``graph`` is kept, for this onnxruntime and CPU."""
    return graph.with_name(f"{graph.stem}.ort-{_machine_tag()}.onnx")


def optimised_session(
    path: Path, load: Callable[[], bytes | str], options: Callable[[], ort.SessionOptions]
) -> ort.InferenceSession:
    """A CPU session from onnxruntime's optimised graph saved at ``path``, loaded with graph optimisation off
    (the session starts 2-3x faster; BENCHMARKS.md, "Service"). Missing or unreadable (onnxruntime refuses a
    damaged file), it is made from ``load()`` with full optimisation and saved there for the next process."""
    providers = ["CPUExecutionProvider"]
    if path.is_file():
        ready = options()
        ready.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(os.fspath(path), ready, providers=providers)
        except Exception:  # onnxruntime's load errors share no narrower base class
            path.unlink(missing_ok=True)
    fresh = options()
    fresh.log_severity_level = 3  # not its warning that the saved graph suits this CPU only: it is keyed by it
    temporary = None
    with contextlib.suppress(OSError):  # an unwritable cache directory: optimise again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        fresh.optimized_model_filepath = temporary  # written by onnxruntime as the session is made
    try:
        session = ort.InferenceSession(load(), fresh, providers=providers)
        if temporary is not None:
            os.replace(temporary, path)  # readers never see half a graph
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return session


def default_providers() -> list[str]:
    """CUDA when this onnxruntime build has it, else the CPU."""
    if "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class LazySession:
    """An onnxruntime session created on first use (thread-safe), with explicit thread counts.

    ``saved``, where given, names the cached graph whose onnxruntime-optimised form is kept beside it (on the
    CPU only): see :func:`optimised_session`."""

    def __init__(
        self,
        load: Callable[[], bytes | str],
        threads: int | None,
        providers: Sequence[str] | None,
        saved: Callable[[], Path] | None = None,
    ) -> None:
        self._load = load
        self._saved = saved
        self.threads = threads if threads is not None else (os.cpu_count() or 1)
        self.providers = list(providers) if providers is not None else default_providers()
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()

    def get(self) -> ort.InferenceSession:
        with self._lock:
            if self._session is None:
                if self._saved is not None and self.providers == ["CPUExecutionProvider"]:
                    self._session = optimised_session(optimised_path(self._saved()), self._load, self._options)
                else:
                    self._session = ort.InferenceSession(self._load(), self._options(), providers=self.providers)
            return self._session

    def _options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Idle threads must not spin: callers run dlib's detectors and shape predictors between
        # batches, and spinning threads took their cores (HOG 2-3x slower; BENCHMARKS.md, compat).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options

    def run(self, batch: np.ndarray, batch_size: int) -> np.ndarray:
        session = self.get()
        name = session.get_inputs()[0].name
        parts = [session.run(None, {name: batch[i : i + batch_size]})[0] for i in range(0, len(batch), batch_size)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def output_dimension(self) -> int:
        size = self.get().get_outputs()[0].shape[-1]
        if not isinstance(size, int):
            raise ModelError(f"the ONNX model's output size is not fixed ({size!r})")
        return size


def _stack(chips: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """The chips as one (N, H, W, 3) uint8 batch, after checking each is an RGB uint8 chip of ``size``."""
    for chip in chips:
        if chip.shape != (*size, 3) or chip.dtype != np.uint8:
            raise ValueError(f"chips must be {(*size, 3)} uint8 RGB arrays, got {chip.shape} {chip.dtype}")
    return np.stack(chips)


class OnnxResnet:
    """dlib's ResNet embedding on onnxruntime: raw (not normalised) 128-d descriptors, as dlib's.

    The session is created on the first :meth:`embed`, from the cached ONNX model (built on
    first use). ``threads`` defaults to every core; CUDA is used where onnxruntime has it.
    ``precision="int8"`` runs the int8 graph (:func:`resnet_int8_bytes`): about twice as fast on a
    CPU, descriptors within cosine ~0.9995 of the float ones (BENCHMARKS.md, "Issue 13: int8").
    """

    def __init__(
        self,
        dat_path: str | os.PathLike | None = None,
        *,
        threads: int | None = None,
        batch_size: int = 32,
        cache_dir: Path | None = None,
        providers: Sequence[str] | None = None,
        precision: Precision = "fp32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.chip_size = (DLIB_RESNET.chip_size, DLIB_RESNET.chip_size)
        self.batch_size = batch_size
        load = resnet_int8_bytes if precision == "int8" else resnet_onnx_bytes
        self._session = LazySession(
            lambda: load(dat_path, cache_dir),
            threads,
            providers,
            saved=lambda: resnet_graph_path(dat_path, cache_dir, precision),
        )

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, 128)`` float32 descriptors of 150x150 uint8 RGB chips from ``align.face_chip``."""
        if not chips:
            return np.zeros((0, DLIB_RESNET.dimension), dtype=np.float32)
        return self._session.run(_stack(chips, self.chip_size), self.batch_size)


@functools.cache
def shared_resnet(threads: int | None = None, precision: Precision = "fp32") -> OnnxResnet:
    """The process's one :class:`OnnxResnet` per thread count and precision (its session is built on first use)."""
    return OnnxResnet(threads=threads, precision=precision)


class OnnxEmbedder:
    """A user-supplied ONNX embedding model (e.g. ArcFace): one float image input, one (N, D) output.

    Chips (uint8 RGB of ``input_size`` = (height, width)) are fed as ``(pixel - mean) / std``
    per channel, in ``layout`` "NCHW" or "NHWC". The output is returned as the model gives it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        input_size: tuple[int, int],
        mean: Sequence[float] = (127.5, 127.5, 127.5),
        std: Sequence[float] = (127.5, 127.5, 127.5),
        layout: Literal["NCHW", "NHWC"] = "NCHW",
        *,
        threads: int | None = None,
        batch_size: int = 32,
        providers: Sequence[str] | None = None,
    ) -> None:
        if layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}")
        if not Path(path).is_file():
            raise ModelError(f"ONNX model file missing: {path}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.layout = layout
        self.batch_size = batch_size
        self._session = LazySession(lambda: os.fspath(path), threads, providers)

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float32 outputs of the model for uint8 RGB chips of ``input_size``."""
        if not chips:
            return np.zeros((0, self._session.output_dimension()), dtype=np.float32)
        batch = (_stack(chips, self.input_size).astype(np.float32) - self.mean) / self.std
        if self.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return self._session.run(np.ascontiguousarray(batch), self.batch_size)
