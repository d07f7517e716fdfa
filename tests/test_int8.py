"""dlib's ResNet as an int8 graph: built from the shipped ranges, run as int8 kernels, cached, and its
templates within the measured tolerance of the float graph's."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from faceprint import int8, models, resnet_onnx
from faceprint.embedding import embed_chips
from faceprint.errors import ModelError
from faceprint.image import load_image
from faceprint.pipeline import PipelineOptions, find_faces
from faceprint.profiles import ACCURATE, FAST

from .conftest import HIRES

DAT = models.model_path(models.DLIB_RESNET.file)
#: The lowest cosine between a face's int8 and float template: 0.99955 over faces-dev's 1,783 images, 0.99972
#: on the committed photos (BENCHMARKS.md, "Issue 13: int8"); fused with SFace (the accurate profile), 0.99972
#: over faces-dev.
AGREEMENT = 0.9995


@pytest.fixture(scope="module")
def int8_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return resnet_onnx.resnet_int8_bytes(DAT, tmp_path_factory.mktemp("int8-cache"))


def test_onnxruntime_runs_every_convolution_and_sum_as_int8(int8_bytes: bytes, tmp_path: Path) -> None:
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(int8_bytes, options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)
    float_ops = collections.Counter(
        node.op_type for node in onnx.load_from_string(resnet_onnx.resnet_onnx_bytes()).graph.node
    )
    assert ops["QLinearConv"] == float_ops["Conv"] and ops["QLinearAdd"] == float_ops["Add"]
    assert "Conv" not in ops and "Relu" not in ops


@pytest.mark.parametrize("profile", [FAST, ACCURATE], ids=["fast", "accurate"])
def test_templates_of_the_int8_profiles_agree_with_the_float_graphs(
    int8_bytes: bytes, profile: PipelineOptions
) -> None:
    assert profile.precision == "int8"
    images = [load_image(path).pixels for path in sorted(HIRES.glob("**/*.jpg"))]
    quantized = find_faces(images, profile)
    reference = find_faces(images, dataclasses.replace(profile, precision="fp32"))
    pairs = [(a, b) for faces_a, faces_b in zip(quantized, reference) for a, b in zip(faces_a, faces_b)]
    assert len(pairs) >= len(images)
    cosines = [float(a.template.vector @ b.template.vector) for a, b in pairs]
    assert min(cosines) >= AGREEMENT, cosines
    assert {a.template.model_id for a, _ in pairs} == {profile.model.model_id}  # the same model id


def test_the_int8_graph_is_cached_and_a_corrupt_one_rebuilt(
    int8_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = resnet_onnx.resnet_int8_bytes(DAT, tmp_path)
    assert built == int8_bytes  # the conversion is deterministic
    cached = resnet_onnx.cached_model_path(resnet_onnx.file_sha256(DAT), tmp_path, "int8")
    assert cached.read_bytes() == built
    assert cached != resnet_onnx.cached_model_path(resnet_onnx.file_sha256(DAT), tmp_path)
    assert resnet_onnx.model_metadata(built)["graph_version"] == resnet_onnx.int8_version()

    real_quantize = int8.quantize

    def fail(*args: object) -> onnx.ModelProto:
        raise AssertionError("rebuilt although the cache is valid")

    monkeypatch.setattr(int8, "quantize", fail)
    assert resnet_onnx.resnet_int8_bytes(DAT, tmp_path) == built

    monkeypatch.setattr(int8, "quantize", real_quantize)
    float_graph = resnet_onnx.cached_model_path(resnet_onnx.file_sha256(DAT), tmp_path).read_bytes()
    for corrupt in (b"not a model", built[: len(built) // 2], built[:-1], float_graph):
        cached.write_bytes(corrupt)
        assert resnet_onnx.resnet_int8_bytes(DAT, tmp_path) == built
        assert cached.read_bytes() == built


def test_ranges_recorded_for_another_model_are_refused() -> None:
    with pytest.raises(ModelError, match="another model"):
        resnet_onnx.int8_ranges("0" * 64)


def test_a_missing_range_is_an_error_not_a_guess() -> None:
    ranges = resnet_onnx.int8_ranges(resnet_onnx.file_sha256(DAT))
    model = onnx.load_from_string(resnet_onnx.resnet_onnx_bytes())
    first_conv = next(node for node in model.graph.node if node.op_type == "Conv")
    del ranges[first_conv.input[0]]
    with pytest.raises(ModelError, match=first_conv.input[0]):
        int8.quantize(model, ranges)


def test_int8_is_refused_where_no_int8_graph_runs() -> None:
    chip = np.zeros((112, 112, 3), np.uint8)
    with pytest.raises(ValueError, match="no int8 graph"):
        embed_chips([chip], model=models.SFACE, precision="int8")
    with pytest.raises(ValueError, match="onnxruntime only"):
        embed_chips([np.zeros((150, 150, 3), np.uint8)], model=models.DLIB_RESNET, backend="dlib", precision="int8")
