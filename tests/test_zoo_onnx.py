"""The OpenCV Zoo's int8 YuNet and SFace as fp32 graphs: they run, compute what the source does, are cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from faceprint import models, resnet_onnx, zoo_onnx


def session(model: bytes | onnx.ModelProto) -> ort.InferenceSession:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo-cache")


def test_block_dequantization_repeats_scale_and_zero_point_along_the_axis() -> None:
    quantized = np.array([[10, 12, 14], [0, 1, 2]], dtype=np.int8)
    scale = np.array([[0.5, 2.0], [1.0, 3.0]], dtype=np.float32)
    zero = np.array([[10, 0], [1, 2]], dtype=np.int8)
    expected = [[0.0, 1.0, 28.0], [-1.0, 0.0, 0.0]]
    np.testing.assert_array_equal(zoo_onnx.dequantize(quantized, scale, zero, axis=1, block_size=2), expected)


def test_yunet_runs_on_any_multiple_of_32(cache_dir: Path) -> None:
    runner = session(zoo_onnx.yunet_onnx_bytes(cache_dir))
    for height, width in [(64, 96), (256, 160)]:
        outputs = dict(
            zip(
                [o.name for o in runner.get_outputs()],
                runner.run(None, {"input": np.zeros((1, 3, height, width), np.float32)}),
            )
        )
        for stride in (8, 16, 32):
            anchors = (height // stride) * (width // stride)
            assert outputs[f"cls_{stride}"].shape == (1, anchors, 1)
            assert outputs[f"bbox_{stride}"].shape == (1, anchors, 4)
            assert outputs[f"kps_{stride}"].shape == (1, anchors, 10)


def test_sface_takes_only_the_image_and_batches(cache_dir: Path) -> None:
    runner = session(zoo_onnx.sface_onnx_bytes(cache_dir))
    assert [i.name for i in runner.get_inputs()] == ["data"]
    batch = np.random.default_rng(0).uniform(0, 255, (3, 3, 112, 112)).astype(np.float32)
    together = runner.run(None, {"data": batch})[0]
    assert together.shape == (3, 128)
    np.testing.assert_allclose(runner.run(None, {"data": batch[1:2]})[0], together[1:2], atol=1e-5)


def test_prelu_rewrite_computes_what_prelu_does(cache_dir: Path) -> None:
    plain = zoo_onnx.dequantized(onnx.load(models.packaged_path(models.SFACE_FILE)))
    assert any(node.op_type == "PRelu" for node in plain.graph.node)
    rewritten = onnx.load_model_from_string(zoo_onnx.sface_onnx_bytes(cache_dir))
    assert not any(node.op_type == "PRelu" for node in rewritten.graph.node)
    # Some slopes exceed 1, so that Max(x, a*x) would be wrong: the rewrite must hold for them too.
    slopes = [onnx.numpy_helper.to_array(t) for t in plain.graph.initializer if t.name.endswith("relu_gamma")]
    assert max(float(s.max()) for s in slopes) > 1
    image = np.random.default_rng(1).uniform(0, 255, (1, 3, 112, 112)).astype(np.float32)
    reference = session(plain).run(None, {"data": image})[0]
    np.testing.assert_allclose(session(rewritten).run(None, {"data": image})[0], reference, rtol=1e-4, atol=1e-5)


def test_the_cache_is_reused_and_a_corrupt_one_rebuilt(tmp_path: Path) -> None:
    built = zoo_onnx.yunet_onnx_bytes(tmp_path)
    (cached,) = (p for p in tmp_path.iterdir() if p.name != resnet_onnx.DIGESTS_FILE)
    assert cached.read_bytes() == built
    assert cached.name.startswith(f"yunet-{models.YUNET_FILE.sha256[:16]}-")
    for corrupt in (built[: len(built) // 2], b"not a model", built[:-20]):
        cached.write_bytes(corrupt)
        assert zoo_onnx.yunet_onnx_bytes(tmp_path) == built
        assert cached.read_bytes() == built
