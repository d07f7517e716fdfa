"""Anonymizing the 1080p crowd clip with the default (YuNet) mode: frames/s, decoding included, and CPU per frame.

    flock /tmp/faceprint-bench.lock python bench/anonymize_speed.py [--rounds 2] [--threads 1 all]

Every frame goes through ``faceprint.privacy.anonymize_video`` from ``open_source`` (decoding, motion check,
YuNet on the whole frame, tracking, blurring) into a sink that drops it (no encoding). ``--threads``: YuNet's
onnxruntime threads (``all``: every core, the video loop's default). The CPU column counts this process's
threads whatever else runs on the machine. For an A/B against another checkout, run this file with that
checkout's ``src`` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from faceprint import yunet
from faceprint.privacy import YUNET, anonymize_video
from faceprint.video import open_source

ROOT = Path(__file__).resolve().parents[1]
CLIP = Path(os.environ.get("FACEPRINT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "video" / "crowd_walking.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", nargs="+", choices=("1", "all"), default=["all"])
    args = parser.parse_args()
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    print("| YuNet threads | round | frames | frames/s | CPU ms per frame |\n| --- | --- | --- | --- | --- |")
    for threads_name in args.threads:
        threads = None if threads_name == "all" else int(threads_name)
        options = dataclasses.replace(YUNET, pipeline=dataclasses.replace(YUNET.pipeline, threads=threads))
        yunet.detect(np.zeros((1080, 1920, 3), np.uint8), threads=threads)  # load the model before timing
        for round_number in range(1, args.rounds + 1):
            wall, cpu = time.perf_counter(), time.process_time()
            with open_source(CLIP) as source:
                frames = anonymize_video(source, lambda pixels: None, options=options).frames
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"| {threads_name} | {round_number} | {frames} | {frames / wall:.1f} | {1000 * cpu / frames:.0f} |")
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
