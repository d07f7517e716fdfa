"""Video: sources, tracking through occlusion and crossings, identity per track, event timeline, CLI.

Clips are synthesized from the committed real photos (tests/video_clips.py), so who is where
in every frame is known exactly.
"""

from __future__ import annotations

import doctest
import importlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import Gallery, InvalidImageError
from faceprint.choices import DetectorName
from faceprint.cli import app
from faceprint.detection import Detection, detect_boxes
from faceprint.errors import OutputError
from faceprint.image import load_image
from faceprint.pipeline import locate_face
from faceprint.profiles import FAST
from faceprint.types import Box
from faceprint.video import (
    FrameResult,
    IdentityOptions,
    Timeline,
    TrackEvent,
    VideoOptions,
    VideoProcessor,
    open_source,
    timeline_summary,
)
from faceprint.video.identity import IdentityResolver, Shot
from faceprint.video.source import Frame, StreamSource, read_ahead
from faceprint.video.tracker import Tracker

from .conftest import KIT, ROSE, SHARED_DATA
from .video_clips import Clip, crossing_clip, frames_of, make_gallery, occlusion_clip, returning_stranger_clip


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    return make_gallery(tmp_path_factory.mktemp("video") / "gallery.db")


@pytest.fixture(scope="module")
def occlusion() -> Clip:
    return occlusion_clip()


@pytest.fixture(scope="module")
def crossing() -> Clip:
    return crossing_clip()


def track(
    clip: Clip, gallery: Gallery | None, every: int = 5, detector: DetectorName = "hog"
) -> tuple[list[FrameResult], list, VideoProcessor]:
    # The clips' faces are over 100 px: no need to upsample (as for 720p video, unlike for small videos).
    options = VideoOptions(detect_every=every, detect_upsample=0, detector=detector)
    processor = VideoProcessor(gallery, options, fps=clip.fps)
    results = [processor.process(frame) for frame in frames_of(clip)]
    return results, processor.finish(), processor


def tracks_on(clip: Clip, results: list[FrameResult], name: str) -> list[int | None]:
    """Per frame where ``name`` is visible: the id of the track whose box covers their face best
    (None: none). Coasting tracks (predictions for faces hidden at the last detection) are left out."""
    ids = []
    for index in clip.visible_frames(name):
        truth = clip.truth[name][index]
        overlaps = [(face.box.iou(truth), face.track_id) for face in results[index].faces if not face.coasting]
        best = max(overlaps, default=(0.0, None))
        ids.append(best[1] if best[0] >= 0.4 else None)
    return ids


def labels_of(results: list[FrameResult], track_id: int) -> list[str]:
    return [face.label for r in results for face in r.faces if face.track_id == track_id]


@pytest.mark.parametrize("every", [1, 5, 10])
def test_one_track_per_face_through_occlusion(occlusion: Clip, gallery: Gallery, every: int) -> None:
    results, events, processor = track(occlusion, gallery, every)
    kit = tracks_on(occlusion, results, "Kit Harington")
    hidden = [i for i, box in enumerate(occlusion.truth["Kit Harington"]) if box is None]
    assert hidden, "the clip must hide Kit behind the pillar for a while"
    # The same track before and after the pillar, on (nearly) every frame he is visible.
    assert len({t for t in kit if t is not None}) == 1
    assert kit.count(None) <= 2
    assert sorted(e.label for e in events) == ["Kit Harington", "unknown-1"]
    # The detector runs on every frame only when asked to; tracking fills the gaps.
    if every == 1:
        assert processor.detections_run == len(occlusion.frames)
    if every == 10:
        assert processor.detections_run <= len(occlusion.frames) / 3


@pytest.fixture(scope="module")
def dlib_gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    """The people of ``gallery`` on dlib's ResNet alone (the fast profile), whose scores drop most on half faces."""
    return make_gallery(tmp_path_factory.mktemp("video-dlib") / "gallery.db", FAST)


@pytest.mark.parametrize("profile", ["default", "fast"])
def test_yunet_keeps_one_track_and_name_through_the_pillar(
    profile: str, gallery: Gallery, dlib_gallery: Gallery
) -> None:
    # 720p, where YuNet finds Kit half hidden at both edges of the pillar (HOG does not): those partial views
    # neither slow his track down (it would lose him as he comes out) nor count as evidence of who he is.
    occlusion = occlusion_clip(scale=2, frames=150)
    results, events, _ = track(occlusion, gallery if profile == "default" else dlib_gallery, 5, detector="yunet")
    kit = tracks_on(occlusion, results, "Kit Harington")
    assert len({t for t in kit if t is not None}) == 1
    assert kit.count(None) <= 3
    assert sorted(e.label for e in events) == ["Kit Harington", "unknown-1"]
    assert all(e.revisions == 0 for e in events)


def test_a_face_going_behind_something_keeps_its_width_and_speed() -> None:
    # A face 100 px wide and 160 tall walks right at 4 px a frame into a pillar that hides more and more of its
    # right side: the detector's boxes keep its left edge and height but narrow.
    tracker = Tracker(fps=25.0)
    for frame in range(12):
        tracker.predict()
        left = 100.0 + 4 * frame
        width = 100.0 if frame < 6 else 100.0 - 10 * (frame - 5)
        tracker.update([Detection(Box(left, 50, left + width, 210), 0.9, "yunet")], frame)
    (face,) = tracker.tracks
    assert face.partial
    assert face.box.width == pytest.approx(100, abs=5)
    assert face.box.left == pytest.approx(100 + 4 * 11, abs=5)
    # A face that gets smaller (walking away) narrows in both directions: it is whole, and its track follows it.
    tracker.predict()
    tracker.update([Detection(Box(150, 80, 210, 176), 0.9, "yunet")], 12)
    assert not face.partial


def test_identity_per_track_without_flicker(occlusion: Clip, gallery: Gallery) -> None:
    results, events, processor = track(occlusion, gallery, 5)
    by_label = {e.label: e for e in events}
    for event in events:
        labels = labels_of(results, event.track_id)
        changes = [b for a, b in itertools.pairwise(labels) if a != b]
        # '?' until decided, then one name for good.
        assert changes == [event.label], labels
        assert event.revisions == 0
    # Named well above the gallery's threshold (a score on the gallery's model's scale, not a fixed number).
    assert by_label["Kit Harington"].decision == "match"
    assert by_label["Kit Harington"].similarity > gallery.identification_point().band[1]
    # Decided within a few detections, from a few best shots, not from every frame.
    assert by_label["Kit Harington"].decided_frame <= 10
    assert processor.resolver.embeddings <= 12 < sum(e.detections for e in events)


def test_crossing_people_keep_their_tracks_and_names(crossing: Clip, gallery: Gallery) -> None:
    results, events, _ = track(crossing, gallery, 5)
    for name in ("Kit Harington", "Rose Leslie"):
        ids = tracks_on(crossing, results, name)
        (only,) = {t for t in ids if t is not None}
        assert ids.count(None) <= 2
        assert next(e for e in events if e.track_id == only).label == name
    assert len(events) == 2


def test_timeline_matches_ground_truth(occlusion: Clip, gallery: Gallery) -> None:
    every = 5
    _, events, _ = track(occlusion, gallery, every)
    for event in events:
        visible = occlusion.visible_frames(event.label if event.label != "unknown-1" else "Alex Lacamoire")
        assert abs(event.first_frame - visible[0]) <= every
        assert abs(event.last_frame - visible[-1]) <= every
        assert event.first_time == pytest.approx(event.first_frame / occlusion.fps)
        assert event.first_frame <= event.best_frame <= event.last_frame


def test_strangers_keep_their_anonymous_id_when_they_come_back(gallery: Gallery) -> None:
    clip = returning_stranger_clip()
    _, events, _ = track(clip, gallery, 3)
    assert [(e.first_frame // 10, e.label) for e in events] == [(0, "unknown-1"), (2, "unknown-2"), (5, "unknown-1")]


def test_without_a_gallery_tracks_are_anonymous(crossing: Clip) -> None:
    _, events, _ = track(crossing, None, 5)
    assert sorted(e.label for e in events) == ["unknown-1", "unknown-2"]


def shot(path: Path, frame: int) -> Shot:
    pixels = load_image(path).pixels
    located = locate_face(pixels, detect_boxes(pixels)[0])
    return Shot(frame, frame / 25, located, pixels[:10, :10])


def test_a_decision_is_revised_only_on_strong_evidence(gallery: Gallery) -> None:
    options = IdentityOptions(shots=2, recheck=0.0, min_quality=0.0)
    resolver = IdentityResolver(gallery, options)
    identity = resolver.identity(1, 0.0)
    for i, path in enumerate(KIT[:2]):
        identity.observe(shot(path, i), options)
    resolver.resolve([1], 2, 0.1)
    assert identity.label == "Kit Harington"
    # One good shot of someone else (a tracker swap for a moment) does not rename the track...
    identity.observe(shot(ROSE[0], 3), options)
    resolver.resolve([1], 3, 0.2)
    assert (identity.label, identity.revisions) == ("Kit Harington", 0)
    # ...but consistent evidence that outweighs the earlier shots does.
    for frame in range(4, 10):
        identity.observe(shot(ROSE[frame % 2], frame), options)
        resolver.resolve([1], frame, frame / 10)
    assert (identity.label, identity.revisions) == ("Rose Leslie", 1)


def test_video_file_source_uses_container_fps_and_timestamps(crossing: Clip, tmp_path: Path) -> None:
    path = crossing.write(tmp_path / "clip.mp4")
    with open_source(path) as source:
        frames = list(source)
        assert (source.fps, source.frame_count) == (25.0, len(crossing.frames))
    assert [f.index for f in frames] == list(range(len(crossing.frames)))
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(len(frames))], abs=1e-3)
    assert frames[0].pixels.shape == (360, 640, 3)


def test_image_sequence_source(tmp_path: Path, crossing: Clip) -> None:
    for i, pixels in enumerate(crossing.frames[:5]):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    with open_source(tmp_path, fps=10) as source:
        frames = list(source)
    assert [f.time for f in frames] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert np.array_equal(frames[2].pixels, crossing.frames[2])
    assert len(list(open_source(str(tmp_path / "00[0-2].png")))) == 3


def test_stream_reconnects_after_a_drop(crossing: Clip, tmp_path: Path) -> None:
    path = crossing.write(tmp_path / "stream.mp4")
    # The "stream" is a file: at its end the read fails like a dropped connection and is reopened.
    stream = StreamSource(str(path), sleep=lambda seconds: None)
    frames = list(itertools.islice(stream, len(crossing.frames) + 5))
    assert stream.reconnects == 1
    assert [f.index for f in frames] == list(range(len(frames)))
    # When the source is gone for good, the stream ends after its reconnection attempts.
    gone = StreamSource(str(path), reconnect_attempts=3, sleep=lambda seconds: path.unlink(missing_ok=True))
    assert len(list(gone)) == len(crossing.frames)
    assert gone.reconnects == 0


def test_read_ahead_keeps_the_order_and_raises_errors_where_they_happen(crossing: Clip) -> None:
    frames = frames_of(crossing)[:5]
    assert [f.index for f in read_ahead(iter(frames))] == [0, 1, 2, 3, 4]

    def broken() -> Iterator[Frame]:
        yield from frames[:3]
        raise InvalidImageError("frame 3 is corrupt")

    seen = []
    with pytest.raises(InvalidImageError, match="frame 3"):
        for frame in read_ahead(broken()):
            seen.append(frame.index)
    assert seen == [0, 1, 2]
    # A consumer that stops early stops the reader too.
    ahead = read_ahead(iter(frames))
    next(ahead)
    ahead.close()


def test_bad_video_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"missing\.mp4: no such video file"):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InvalidImageError, match=r"empty\.mp4: the file is empty"):
        open_source(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("not a video at all\n" * 50)
    with pytest.raises(InvalidImageError, match=r"text\.mp4"):
        list(open_source(tmp_path / "text.mp4"))
    with pytest.raises(InvalidImageError, match="no image files"):
        open_source(tmp_path / "nothing-*.png")
    with pytest.raises(ValueError, match="detect_every"):
        VideoOptions(detect_every=0)


def test_cli_video_writes_timeline_crops_and_annotated_video(crossing: Clip, gallery: Gallery, tmp_path: Path) -> None:
    clip = crossing.write(tmp_path / "clip.mp4")
    out, events, crops = tmp_path / "annotated.mp4", tmp_path / "events.jsonl", tmp_path / "crops"
    result = CliRunner().invoke(
        app,
        [
            "video",
            str(clip),
            "--out",
            str(out),
            "--events",
            str(events),
            "--crops",
            str(crops),
            "--db",
            str(gallery.path),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert sorted(line["label"] for line in lines) == ["Kit Harington", "Rose Leslie"]
    assert all(Path(line["crop"]).is_file() for line in lines)
    with open_source(out) as annotated:
        assert annotated.frame_count == len(crossing.frames)
    assert "Kit Harington" in result.output
    missing = CliRunner().invoke(app, ["video", str(tmp_path / "nope.mp4"), "--no-identify"])
    assert missing.exit_code == 3 and "nope.mp4" in missing.output


def test_jsonl_timeline_gets_a_line_as_each_track_ends(crossing: Clip, tmp_path: Path) -> None:
    path = tmp_path / "new" / "events.jsonl"
    lines_when_ended: list[int] = []
    with Timeline(path) as timeline:

        def on_event(event: TrackEvent) -> None:
            timeline.line(event)
            lines_when_ended.append(len(path.read_text().splitlines()))

        processor = VideoProcessor(None, VideoOptions(detect_upsample=0), fps=crossing.fps, on_event=on_event)
        for frame in frames_of(crossing):
            processor.process(frame)
        events = processor.finish()
    assert len(events) >= 2 and lines_when_ended == list(range(1, len(events) + 1))
    assert [json.loads(line) for line in path.read_text().splitlines()] == [e.to_dict() for e in events]


def test_json_timeline_is_one_document_written_at_the_end(crossing: Clip, tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    with open_source(crossing.write(tmp_path / "clip.mp4")) as frames, Timeline(path) as timeline:
        processor = VideoProcessor(None, VideoOptions(detect_upsample=0), fps=frames.fps, on_event=timeline.line)
        for _ in processor.run(frames):
            pass
        events = processor.finish()
        assert path.read_text() == ""
        timeline.finish(timeline_summary(events, frames, processor))
    document = json.loads(path.read_text())
    assert document["source"] == frames.name and document["detections_run"] == processor.detections_run
    assert document["events"] == [e.to_dict() for e in events] and len(events) >= 2


def test_unwritable_timeline_raises_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"file/sub/events\.jsonl"):
        Timeline(blocker / "sub" / "events.jsonl")
    if Path("/dev/full").exists():  # opens, but every write fails (disk full)
        event = TrackEvent(1, "unknown-1", None, None, 0, 0.0, 9, 0.36, None, None, None, 2, 0, 0, None)
        with pytest.raises(OutputError, match="/dev/full"), Timeline(Path("/dev/full")) as full:
            full.line(event)


@pytest.mark.shared
@pytest.mark.slow
def test_real_video_names_lin_manuel_miranda(tmp_path: Path) -> None:
    video = SHARED_DATA / "video" / "short_hamilton_clip.mp4"
    if not video.exists():
        pytest.skip("../shared/data/video is not available")
    from .conftest import HIRES

    with Gallery(tmp_path / "g.db") as people:
        people.enroll("Lin-Manuel Miranda", [HIRES / "Lin-Manuel_Miranda" / "Lin-Manuel_Miranda_0001.png"])
        people.enroll("Barack Obama", sorted((HIRES / "Barack_Obama").glob("*"))[:4])
        with open_source(video) as source:
            processor = VideoProcessor(people, VideoOptions(detect_every=10), fps=source.fps)
            for _ in processor.run(source):
                pass
        events = processor.finish()
    lin = [e for e in events if e.label == "Lin-Manuel Miranda"]
    # Lin-Manuel is on screen in frames 0-20 (wide shot) and ~100-215 (medium shot), per the data README.
    assert any(e.first_frame <= 10 for e in lin)
    assert any(e.first_frame <= 110 and e.last_frame >= 200 for e in lin)
    assert all(e.revisions == 0 for e in events)


@pytest.mark.parametrize("module", ["faceprint.video", "faceprint.privacy", "faceprint.liveness"])
def test_docstring_examples(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import ROOT

    monkeypatch.chdir(ROOT)
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
