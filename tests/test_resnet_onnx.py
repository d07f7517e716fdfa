"""dlib's ResNet ported to ONNX: the parsed structure, descriptors equal to dlib's, the cache, user models."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from faceprint import align, models, resnet_onnx
from faceprint.detection import detect_boxes
from faceprint.errors import ModelError
from faceprint.image import load_image
from faceprint.resnet_onnx import OnnxEmbedder, OnnxResnet

from .conftest import HIRES, run_python

DAT = models.model_path(models.DLIB_RESNET.file)
#: dlib's float32 conv and gemm loops sum in another order than onnxruntime's kernels.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def chips() -> list[np.ndarray]:
    """Aligned chips of every face in the committed photos."""
    found = []
    for path in sorted(HIRES.glob("*/*.jpg")):
        pixels = load_image(path).pixels
        found += [align.face_chip(pixels, align.shape(pixels, d.box)) for d in detect_boxes(pixels)]
    return found


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def test_parsed_structure_is_dlibs_resnet() -> None:
    net = resnet_onnx.read_dlib_net(DAT)
    kinds = Counter(resnet_onnx.layer_kind(layer) for layer in net.layers)
    assert kinds == {
        "con": 29, "affine": 29, "relu": 29, "add_prev": 14, "marker": 22, "avg_pool": 5, "max_pool": 1, "fc": 1,
    }  # fmt: skip
    assert net.loss == "loss_metric_2"
    assert net.input.size == (150, 150)
    np.testing.assert_allclose(net.input.mean_rgb, (122.782, 117.001, 104.298), atol=1e-4)

    convs = [layer for layer in net.layers if isinstance(layer, resnet_onnx.Conv)]
    assert convs[0].weights.shape == (32, 3, 7, 7) and convs[0].stride == (2, 2) and convs[0].padding == (0, 0)
    blocks = [(conv.weights.shape[0], conv.stride) for conv in convs[1::2]]  # the first conv of each block
    assert blocks == [
        *[(32, (1, 1))] * 3,
        (64, (2, 2)), *[(64, (1, 1))] * 3,
        (128, (2, 2)), *[(128, (1, 1))] * 2,
        (256, (2, 2)), *[(256, (1, 1))] * 2,
        (256, (2, 2)),
    ]  # fmt: skip
    assert all(conv.padding == (1, 1) for conv in convs if conv.stride == (1, 1))
    assert net.layers[-1].weights.shape == (256, 128)
    assert len(resnet_onnx.match_anet(net)) == len(net.layers)
    with pytest.raises(ModelError, match="not dlib's"):
        resnet_onnx.match_anet(dataclasses.replace(net, layers=net.layers[:-1]))


def test_a_truncated_or_foreign_file_is_a_model_error(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(DAT.read_bytes()[:100_000])
    with pytest.raises(ModelError, match="truncated"):
        resnet_onnx.read_dlib_net(truncated)
    with pytest.raises(ModelError, match="loss"):
        resnet_onnx.read_dlib_net(models.model_path("shape_predictor_5_face_landmarks.dat"))


@pytest.mark.slow
def test_onnx_descriptors_equal_dlibs(chips: list[np.ndarray], cache_dir: Path) -> None:
    assert len(chips) >= 15
    expected = np.array(models.dlib_embedder().compute_face_descriptor(chips), dtype=np.float32)
    actual = OnnxResnet(threads=1, batch_size=4, cache_dir=cache_dir).embed(chips)
    assert actual.dtype == np.float32 and actual.shape == (len(chips), 128)
    assert np.abs(actual - expected).max() < TOLERANCE


def test_one_chip_at_a_time_equals_the_batch(chips: list[np.ndarray], cache_dir: Path) -> None:
    runner = OnnxResnet(threads=1, cache_dir=cache_dir)
    batched = runner.embed(chips[:3])
    single = np.concatenate([runner.embed([chip]) for chip in chips[:3]])
    np.testing.assert_allclose(single, batched, atol=1e-6)
    assert runner.embed([]).shape == (0, 128)


def test_wrong_chips_are_refused(cache_dir: Path) -> None:
    runner = OnnxResnet(threads=1, cache_dir=cache_dir)
    with pytest.raises(ValueError, match="150, 150, 3"):
        runner.embed([np.zeros((112, 112, 3), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        runner.embed([np.zeros((150, 150, 3), np.float32)])


def test_the_cache_is_reused_and_a_corrupt_one_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = resnet_onnx.resnet_onnx_bytes(DAT, tmp_path)
    cached = resnet_onnx.cached_model_path(resnet_onnx.file_sha256(DAT), tmp_path)
    assert cached.read_bytes() == built
    assert {p.name for p in tmp_path.iterdir()} == {cached.name, resnet_onnx.DIGESTS_FILE}  # no temporary file

    real_build = resnet_onnx.build_onnx

    def fail(*args: object, **kwargs: object) -> onnx.ModelProto:
        raise AssertionError("rebuilt although the cache is valid")

    monkeypatch.setattr(resnet_onnx, "build_onnx", fail)
    assert resnet_onnx.resnet_onnx_bytes(DAT, tmp_path) == built

    monkeypatch.setattr(resnet_onnx, "build_onnx", real_build)
    for corrupt in (b"not a model", built[: len(built) // 2], built[:-1]):  # [:-1]: the metadata cut short
        cached.write_bytes(corrupt)
        assert resnet_onnx.resnet_onnx_bytes(DAT, tmp_path) == built
        assert cached.read_bytes() == built


def test_model_digests_are_remembered_until_the_file_changes_and_a_damaged_memo_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "model.dat"
    source.write_bytes(b"weights" * 1000)
    cache = tmp_path / "cache"
    first = resnet_onnx.known_sha256(source, cache)
    assert first == resnet_onnx.file_sha256(source)

    real_hash = resnet_onnx.file_sha256

    def fail(path: object) -> str:
        raise AssertionError("hashed again although the file did not change")

    monkeypatch.setattr(resnet_onnx, "file_sha256", fail)
    assert resnet_onnx.known_sha256(source, cache) == first

    monkeypatch.setattr(resnet_onnx, "file_sha256", real_hash)
    source.write_bytes(b"WEIGHTS" * 1000)  # same size, new content: ctime (and mtime) change
    changed = resnet_onnx.known_sha256(source, cache)
    assert changed == resnet_onnx.file_sha256(source) != first

    for damage in (b"{not json", b"[1, 2]", b'{"%s": [1, 2]}' % str(source.resolve()).encode()):
        (cache / resnet_onnx.DIGESTS_FILE).write_bytes(damage)
        assert resnet_onnx.known_sha256(source, cache) == changed
        monkeypatch.setattr(resnet_onnx, "file_sha256", fail)
        assert resnet_onnx.known_sha256(source, cache) == changed  # remembered again
        monkeypatch.setattr(resnet_onnx, "file_sha256", real_hash)


def test_the_optimised_graph_is_saved_reused_with_the_same_descriptors_and_a_damaged_one_remade(
    tmp_path: Path, cache_dir: Path, chips: list[np.ndarray]
) -> None:
    plain = OnnxResnet(threads=1, cache_dir=cache_dir, providers=["CPUExecutionProvider"])
    plain._session._saved = None  # the session made from the cached graph, optimised as it loads
    expected = plain.embed(chips[:4])
    saved = resnet_onnx.optimised_path(resnet_onnx.resnet_graph_path(DAT, cache_dir))

    def made() -> np.ndarray:
        return OnnxResnet(threads=1, cache_dir=cache_dir, providers=["CPUExecutionProvider"]).embed(chips[:4])

    np.testing.assert_array_equal(made(), expected)  # optimised and saved on the way
    assert saved.is_file() and not [p for p in saved.parent.iterdir() if p.name.endswith(".tmp")]
    before = saved.stat().st_mtime_ns
    np.testing.assert_array_equal(made(), expected)  # loaded from the saved graph, not optimised again
    assert saved.stat().st_mtime_ns == before

    def unused() -> bytes:
        raise AssertionError("optimised again although the saved graph is there")

    options = plain._session._options
    resnet_onnx.optimised_session(saved, unused, options)
    full = saved.read_bytes()
    for damage in (b"not a model", full[: len(full) // 2]):
        saved.write_bytes(damage)
        np.testing.assert_array_equal(made(), expected)
        resnet_onnx.optimised_session(saved, unused, options)  # made again, whole


def test_the_cache_check_reads_the_metadata_onnx_reads() -> None:
    data = resnet_onnx.resnet_onnx_bytes(DAT)
    expected = {prop.key: prop.value for prop in onnx.load_model_from_string(data).metadata_props}
    assert (
        resnet_onnx.model_metadata(data)
        == expected
        == {"source_sha256": resnet_onnx.file_sha256(DAT), "graph_version": str(resnet_onnx.GRAPH_VERSION)}
    )


def test_the_default_pipeline_loads_neither_onnx_nor_dlibs_hog_detector_once_graphs_are_cached() -> None:
    """onnx (about 0.7 s) is for converting; the default pipeline detects with YuNet (HOG: about 2 s to load)."""
    code = (
        "import sys, faceprint; from faceprint import models; faceprint.embed(sys.argv[1]); "
        "print('onnx' in sys.modules, models.hog_detector.cache_info().currsize)"
    )
    photo = str(sorted(HIRES.glob("*/*.jpg"))[0])
    run_python(code, photo)  # converts and caches the graphs where this machine has not yet
    result = run_python(code, photo)
    assert result.returncode == 0 and result.stdout.split() == ["False", "0"], result.stdout + result.stderr


def test_an_unwritable_cache_still_gives_the_model(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache directory cannot be created under a file")
    data = resnet_onnx.resnet_onnx_bytes(DAT, blocker / "cache")
    assert onnx.load_model_from_string(data).graph.input[0].name == "chips"


def _mean_colour_model(path: Path, layout: str) -> None:
    """A tiny ONNX 'embedding': the mean of each channel, (N, 3), for an 8x8 float input."""
    if layout == "NCHW":
        shape, nodes = ["N", 3, 8, 8], [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=0)]
    else:
        shape, nodes = ["N", 8, 8, 3], [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2], keepdims=0)]
    graph = helper.make_graph(
        nodes,
        "mean_colour",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["N", 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_user_onnx_model_gets_normalised_chips(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "mean.onnx"
    _mean_colour_model(path, layout)
    rng = np.random.default_rng(0)
    chips = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(5)]
    embedder = OnnxEmbedder(path, (8, 8), mean=(10, 20, 30), std=(2, 4, 8), layout=layout, threads=1, batch_size=2)

    expected = [(chip.reshape(-1, 3).mean(axis=0) - (10, 20, 30)) / (2, 4, 8) for chip in chips]
    np.testing.assert_allclose(embedder.embed(chips), expected, rtol=1e-5)
    assert embedder.embed([]).shape == (0, 3)
    with pytest.raises(ValueError, match="8, 8, 3"):
        embedder.embed([np.zeros((150, 150, 3), np.uint8)])


def test_user_onnx_model_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        OnnxEmbedder(tmp_path / "absent.onnx", (112, 112))
    path = tmp_path / "mean.onnx"
    _mean_colour_model(path, "NCHW")
    with pytest.raises(ValueError, match="layout"):
        OnnxEmbedder(path, (8, 8), layout="CHW")  # type: ignore[arg-type]
