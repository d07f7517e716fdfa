"""Liveness: eye aspect ratio and blinks on landmark sequences with known geometry, head-turn sign
on real photos and their mirror images, still photos failing, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import load_image
from faceprint.cli import app
from faceprint.liveness import Measure, eye_aspect_ratio, eyes_openness, find_blinks, judge, measure_frames
from faceprint.video import Frame

from .conftest import OBAMA

FPS = 25.0


def eye(openness: float, width: float = 30.0) -> np.ndarray:
    """Six eye landmarks (dlib order) whose eye aspect ratio is exactly ``openness``."""
    half = openness * width / 2
    return np.array(
        [[0, 0], [width / 3, -half], [2 * width / 3, -half], [width, 0], [2 * width / 3, half], [width / 3, half]]
    )


def landmarks(openness: float) -> np.ndarray:
    points = np.zeros((68, 2))
    points[36:42] = eye(openness)
    points[42:48] = eye(openness) + np.array([60.0, 0.0])
    return points


def sequence(ears: list[float | None]) -> list[Measure]:
    return [Measure(i, i / FPS, ear, 0.0) for i, ear in enumerate(ears)]


def test_eye_aspect_ratio_of_known_geometry() -> None:
    assert eye_aspect_ratio(eye(0.3)) == pytest.approx(0.3)
    assert eyes_openness(landmarks(0.12)) == pytest.approx(0.12)


def test_blinks_are_found_where_the_eyes_close() -> None:
    ears = [0.3] * 10 + [0.2, 0.1, 0.08, 0.15, 0.28] + [0.31] * 10 + [0.12, 0.1] + [0.3] * 8
    measures = sequence([eyes_openness(landmarks(e)) for e in ears])
    blinks = find_blinks(measures, open_level=0.3)
    assert [(b.start_frame, b.end_frame) for b in blinks] == [(10, 13), (25, 26)]
    assert blinks[0].min_ear == pytest.approx(0.08)
    result = judge(measures, "blink")
    assert result.passed and len(result.blinks) == 2 and "2 blink(s)" in result.reason


@pytest.mark.parametrize(
    ("ears", "why"),
    [
        ([0.3] * 30, "eyes never close (a still photo)"),
        ([0.3] * 5 + [0.1] * 25 + [0.3] * 5, "closed for a second: not a blink"),
        ([0.1] * 3 + [0.3] * 30, "closed from the start, never seen closing"),
        ([0.3] * 10 + [0.27, 0.25, 0.26] + [0.3] * 10, "a flicker, not a closing"),
    ],
)
def test_no_blink_without_a_real_closing(ears: list[float], why: str) -> None:
    assert not judge(sequence(ears), "blink").passed, why


def test_frames_without_a_face_fail_and_break_a_blink() -> None:
    result = judge(sequence([0.3] * 5 + [None] * 20), "blink")
    assert not result.passed and "a face was found in only 5 of 25 frames" in result.reason
    assert find_blinks(sequence([0.3] * 5 + [0.1, None, 0.3] + [0.3] * 30), 0.3) == []


@pytest.fixture(scope="module")
def turn_clip() -> list[Frame]:
    """Frames of a real face looking at the camera, then turned towards the image's right (his left)."""
    frontal, turned = (letterbox(load_image(OBAMA[i]).pixels) for i in (0, 3))
    return [Frame(i, i / FPS, frontal if i < 6 else turned) for i in range(12)]


def letterbox(pixels: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """``pixels`` scaled to fit a ``width`` x ``height`` grey frame, centred."""
    scale = min(width / pixels.shape[1], height / pixels.shape[0])
    scaled = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 128, np.uint8)
    top, left = (height - scaled.shape[0]) // 2, (width - scaled.shape[1]) // 2
    frame[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    return frame


@pytest.fixture(scope="module")
def turn_measures(turn_clip: list[Frame]) -> list[Measure]:
    return measure_frames(turn_clip)


def test_head_turn_direction_from_real_photos(turn_measures: list[Measure]) -> None:
    left = judge(turn_measures, "turn-left")
    assert left.passed, left.reason
    assert left.start_yaw < 15 and left.peak_yaw > 25 and left.peak_frame == 6
    assert not judge(turn_measures, "turn-right").passed
    # A printed photo held still does not blink.
    assert not judge(turn_measures, "blink").passed


def test_mirrored_clip_turns_the_other_way(turn_clip: list[Frame], turn_measures: list[Measure]) -> None:
    mirrored = measure_frames([Frame(f.index, f.time, np.ascontiguousarray(f.pixels[:, ::-1])) for f in turn_clip])
    assert np.sign([m.yaw for m in mirrored[6:]]).tolist() == (-np.sign([m.yaw for m in turn_measures[6:]])).tolist()
    assert judge(mirrored, "turn-right").passed
    assert not judge(mirrored, "turn-left").passed
    # Declared as mirrored, the same clip is read back in the person's own directions.
    assert judge(mirrored, "turn-left", mirrored=True).passed


def test_turn_needs_a_frontal_start(turn_measures: list[Measure]) -> None:
    turned_only = turn_measures[6:]
    result = judge(turned_only, "turn-left")
    assert not result.passed and "must start facing the camera" in result.reason


def test_cli_liveness(turn_clip: list[Frame], tmp_path: Path) -> None:
    path = tmp_path / "turn.mp4"
    height, width = turn_clip[0].pixels.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
    for frame in turn_clip:
        writer.write(cv2.cvtColor(frame.pixels, cv2.COLOR_RGB2BGR))
    writer.release()
    passed = CliRunner().invoke(app, ["liveness", str(path), "--challenge", "turn-left", "--json"])
    assert passed.exit_code == 0, passed.output
    report = json.loads(passed.output)
    assert report["passed"] and len(report["per_frame"]) == 12
    failed = CliRunner().invoke(app, ["liveness", str(path), "--challenge", "blink"])
    assert failed.exit_code == 1 and "FAIL" in failed.output
    assert CliRunner().invoke(app, ["liveness", str(path), "--challenge", "smile"]).exit_code == 2
    missing = CliRunner().invoke(app, ["liveness", str(tmp_path / "none.mp4"), "--challenge", "blink"])
    assert missing.exit_code == 3 and "none.mp4" in missing.output
