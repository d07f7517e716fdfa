"""Where a server process's start-up goes, step by step in the order `faceprint serve` takes them (run in a
fresh interpreter by ``python bench/service.py startup --phases``; each step's wall and CPU time in seconds: on
a shared machine the CPU time is the steadier figure).

    python bench/startup_phases.py DATA_DIR    # a service data directory with the collection bench/bench
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

PHOTO = Path(__file__).resolve().parents[1] / "src" / "faceprint" / "samples" / "Kit_Harington_0001.jpg"


def main() -> None:
    data = Path(sys.argv[1])
    started = last = time.perf_counter()
    last_cpu = time.process_time()

    def step(name: str, work: Callable[[], object] = lambda: None) -> None:
        nonlocal last, last_cpu
        work()
        now, cpu = time.perf_counter(), time.process_time()
        print(f"| {name} | {now - last:.3f} | {cpu - last_cpu:.3f} |")
        last, last_cpu = now, cpu

    print("| step | wall s | CPU s |\n| --- | --- | --- |")
    gc.disable()  # as `faceprint serve` has it until the app's lifespan

    def cli() -> None:
        from faceprint.cli import app_for

        app_for(["serve"])
        __import__("uvicorn")

    step("import the CLI's serve command, typer, uvicorn", cli)
    step("import fastapi (pydantic, starlette)", lambda: __import__("fastapi"))
    step("import numpy, cv2, dlib", lambda: [__import__(m) for m in ("numpy", "cv2", "dlib")])
    step("import the service (routes, gallery, pipeline)", lambda: __import__("faceprint.service.app"))
    from faceprint import models
    from faceprint.pipeline import DEFAULT_OPTIONS, ImageResult, process_files
    from faceprint.service.app import create_app
    from faceprint.service.settings import ServiceSettings

    app = create_app(ServiceSettings(data))
    step("create the app")
    step("import onnxruntime", lambda: __import__("onnxruntime"))
    step("import the graph loaders (resnet_onnx, zoo_onnx)", lambda: __import__("faceprint.zoo_onnx"))
    from faceprint import resnet_onnx, zoo_onnx

    step("dlib's 5-point shape predictor", lambda: models.shape_predictor(5))
    step(
        "find the optimised graphs (the models' sha256 remembered)",
        lambda: [
            resnet_onnx.optimised_path(path()).is_file()
            for path in (resnet_onnx.resnet_graph_path, zoo_onnx.sface_graph_path, zoo_onnx.yunet_graph_path)
        ],
    )
    photo = PHOTO.read_bytes()
    results: list[ImageResult] = []

    def pipeline() -> list[ImageResult]:
        return list(process_files([photo], DEFAULT_OPTIONS, workers=1))

    step("first pipeline call (onnxruntime sessions made)", lambda: results.extend(pipeline()))
    step("second pipeline call", pipeline)
    service = app.state.service

    def collection(search: bool) -> None:
        with service.collection("bench", "bench") as gallery:
            if search:
                gallery.identify_faces(results[0].faces, top_k=5)

    step("open the collection and its index", lambda: collection(search=False))
    step("first search", lambda: collection(search=True))
    print(f"| in all | {time.perf_counter() - started:.3f} | {time.process_time():.3f} |")


if __name__ == "__main__":
    main()
