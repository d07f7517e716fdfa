"""SFace on onnxruntime: the PRelu rewrite of ``faceprint.zoo_onnx`` against onnxruntime's PRelu kernel.

    python bench/sface_speed.py [--repeats 5]

Both graphs are the same dequantized fp32 SFace; one keeps PRelu, the other computes
``x * a + Relu(x) * (1 - a)``. Times are the median over ``--repeats`` of 16 one-face calls and
of one 16-face batch, on 1 onnxruntime thread, inputs random 0-255 (the time does not depend on them).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort

from faceprint import models, zoo_onnx

FACES = 16


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def ms_per_face(runner: ort.InferenceSession, batch: np.ndarray, repeats: int, one_at_a_time: bool) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        if one_at_a_time:
            for face in batch:
                runner.run(None, {"data": face[None]})
        else:
            runner.run(None, {"data": batch})
        times.append((time.perf_counter() - start) * 1000 / len(batch))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rewritten = onnx.load_model_from_string(zoo_onnx.sface_onnx_bytes())
    plain = zoo_onnx.dequantized(onnx.load(models.packaged_path(models.SFACE_FILE)))
    plain.graph.input[0].CopyFrom(rewritten.graph.input[0])  # the same batch dimension as the rewritten graph
    plain.graph.output[0].CopyFrom(rewritten.graph.output[0])
    del plain.graph.value_info[:]
    batch = np.random.default_rng(0).uniform(0, 255, (FACES, 3, 112, 112)).astype(np.float32)
    print("| SFace graph | batch 1 (ms/face) | batch 16 (ms/face) |\n|---|---|---|")
    for name, model in (("PRelu (onnxruntime kernel)", plain), ("x*a + Relu(x)*(1-a)", rewritten)):
        runner = session(model)
        runner.run(None, {"data": batch[:1]})  # warm-up
        single = ms_per_face(runner, batch, args.repeats, one_at_a_time=True)
        batched = ms_per_face(runner, batch, args.repeats, one_at_a_time=False)
        print(f"| {name} | {single:.1f} | {batched:.1f} |")


if __name__ == "__main__":
    main()
