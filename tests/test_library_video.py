"""Video keyframes in a photo library: sampled, one face per run kept, incremental, clustered like photos."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import Gallery
from faceprint.cli import app
from faceprint.gallery.names import name_key
from faceprint.gallery.sqlite import APPLICATION_ID, MIGRATIONS
from faceprint.library import Clusters, scan
from faceprint.library.clusters import CLUSTER_FMR
from faceprint.library.keyframes import KeyframeFace, best_of_runs
from faceprint.library.scan import file_digest
from faceprint.match import operating_point
from faceprint.pipeline import process_files
from faceprint.types import Box

from .conftest import KIT, ROOT, ROSE, SHARED_DATA
from .video_clips import KIT as KIT_SPRITE
from .video_clips import Clip, Walker, crossing_clip, make_clip

runner = CliRunner()
#: Keyframes every 0.4 s: 6 of the 60-frame clips at 25 fps.
EVERY = 0.4


@pytest.fixture(scope="module")
def kit_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Clip]:
    """Kit walking across the frame for 2.4 s, alone (a face in every keyframe)."""
    clip = make_clip([Walker("Kit Harington", KIT_SPRITE, (150, 160), (480, 170), 120, 0, 60)], frames=60)
    return clip.write(tmp_path_factory.mktemp("clips") / "kit.mp4"), clip


@pytest.fixture(scope="module")
def crossing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Clip]:
    clip = crossing_clip(frames=60)
    return clip.write(tmp_path_factory.mktemp("clips") / "crossing.mp4"), clip


def video_faces(db: Path) -> list[tuple]:
    """``(path, frame index, frame time, box, thumbnail)`` of every face of a video, in id order."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT p.path, f.frame_index, f.frame_time, f.box, f.thumbnail FROM face f JOIN photo p"
            " ON p.id = f.photo_id WHERE p.keyframe_every IS NOT NULL ORDER BY f.id"
        ).fetchall()


def test_a_video_is_sampled_and_each_run_keeps_its_best_face_with_frame_and_thumbnail(
    tmp_path: Path, crossing: tuple[Path, Clip]
) -> None:
    folder = tmp_path / "library"
    folder.mkdir()
    shutil.copy(crossing[0], folder / "crossing.mp4")
    shutil.copy(KIT[0], folder / KIT[0].name)
    with Gallery(tmp_path / "all.db") as gallery:
        every = scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY, keep_repeats=True)
    with Gallery(tmp_path / "g.db") as gallery:
        summary = scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY)
    assert (summary.photos, summary.new, summary.videos, summary.keyframes) == (2, 2, 1, 6)
    faces = video_faces(tmp_path / "g.db")
    assert every.repeats == 0 and len(video_faces(tmp_path / "all.db")) == every.faces - 1 >= 10
    assert summary.faces == 1 + len(faces) and summary.repeats == every.faces - summary.faces > 0
    clip = crossing[1]
    people = set()
    for _, frame, seconds, box, thumbnail in faces:
        assert frame % 10 == 0 and seconds == pytest.approx(frame / clip.fps)
        assert thumbnail.startswith(b"\xff\xd8")
        truth = {name: boxes[frame] for name, boxes in clip.truth.items() if boxes[frame] is not None}
        found = Box(*json.loads(box))
        people.add(max(truth, key=lambda name: found.iou(truth[name])))
    assert people == {"Kit Harington", "Rose Leslie"}  # both, each a few times at most (runs break as they cross)


def test_one_person_in_every_keyframe_is_stored_once(tmp_path: Path, kit_clip: tuple[Path, Clip]) -> None:
    folder = tmp_path / "library"
    folder.mkdir()
    shutil.copy(kit_clip[0], folder / "kit.mp4")
    with Gallery(tmp_path / "g.db") as gallery:
        summary = scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY)
    assert (summary.keyframes, summary.faces, summary.repeats) == (6, 1, 5)


def test_videos_are_rescanned_only_when_changed_or_sampled_otherwise_and_gone_ones_forgotten(
    tmp_path: Path, kit_clip: tuple[Path, Clip], crossing: tuple[Path, Clip]
) -> None:
    folder, db = tmp_path / "library", tmp_path / "g.db"
    folder.mkdir()
    video = folder / "clip.mp4"
    shutil.copy(kit_clip[0], video)
    shutil.copy(ROSE[0], folder / ROSE[0].name)
    with Gallery(db) as gallery:
        scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY)
        again = scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY)
        assert (again.unchanged, again.videos, again.keyframes, again.faces) == (2, 0, 0, 0)
        os.utime(video, ns=(1, 1))  # touched, same content: not decoded again
        assert (scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY).moved, len(video_faces(db))) == (
            1,
            1,
        )
        photos_only = scan(gallery, folder, workers=1)  # without --videos the video's faces stay
        assert (photos_only.photos, photos_only.deleted, len(video_faces(db))) == (1, 0, 1)
        resampled = scan(gallery, folder, workers=1, videos=True, keyframe_every=2 * EVERY)
        assert (resampled.changed, resampled.keyframes) == (1, 3)
        shutil.copy(crossing[0], video)  # new content under the same name
        changed = scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY)
        assert (changed.changed, changed.keyframes) == (1, 6) and len(video_faces(db)) == changed.faces >= 2
        video.unlink()
        assert scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY).deleted == 1
        assert video_faces(db) == []


def test_a_file_that_is_no_video_is_reported_and_the_others_stored(tmp_path: Path, kit_clip: tuple[Path, Clip]) -> None:
    folder = tmp_path / "library"
    folder.mkdir()
    shutil.copy(kit_clip[0], folder / "kit.mp4")
    (folder / "notes.mp4").write_text("not a video")
    (folder / "cut.avi").write_bytes(kit_clip[0].read_bytes()[:2000])  # a truncated file
    shutil.copy(ROSE[0], folder / ROSE[0].name)
    with Gallery(tmp_path / "g.db") as gallery:
        summary = scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY)
        assert sorted(Path(path).name for path, _ in summary.errors) == ["cut.avi", "notes.mp4"]
        assert all("video" in error for _, error in summary.errors)
        assert (summary.videos, summary.faces) == (1, 2)
        assert scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY).unchanged == 4  # not retried


def test_video_faces_cluster_with_photos_of_the_same_person_and_name_with_their_time(
    tmp_path: Path, kit_clip: tuple[Path, Clip]
) -> None:
    folder = tmp_path / "library"
    folder.mkdir()
    for photo in (*KIT, ROSE[0]):
        shutil.copy(photo, folder / photo.name)
    shutil.copy(kit_clip[0], folder / "kit.mp4")
    with Gallery(tmp_path / "g.db") as gallery:
        scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY)
        clusters = Clusters(gallery)
        clusters.update()
        kit = next(c for c in clusters.all_clusters() if any(f.frame_time is not None for f in clusters.faces(c.id)))
        members = clusters.faces(kit.id)
        assert sorted(Path(f.path).name for f in members) == sorted([*(p.name for p in KIT), "kit.mp4"])
        video = next(f for f in members if f.frame_time is not None)
        assert video.source == f"{video.path}#t={video.frame_time:.1f}" and video.frame_index is not None
        clusters.name(kit.id, "Kit")
        assert any(t.source == video.source for t in gallery.templates("Kit"))
        assert [f.name for f in gallery.identify(KIT[0])] == ["Kit"]
    shown = runner.invoke(app, ["clusters", "show", str(kit.id), "--db", str(tmp_path / "g.db"), "--json"])
    assert shown.exit_code == 0, shown.output
    assert video.source in {face["source"] for face in json.loads(shown.output)["face_list"]}


def test_scan_command_samples_videos_and_refuses_a_bad_interval(tmp_path: Path, kit_clip: tuple[Path, Clip]) -> None:
    folder, db = tmp_path / "library", str(tmp_path / "g.db")
    folder.mkdir()
    shutil.copy(kit_clip[0], folder / "kit.mp4")
    bad = runner.invoke(app, ["scan", str(folder), "--videos", "--keyframe-every", "0", "--db", db])
    assert bad.exit_code == 2 and "keyframe-every" in bad.output
    assert not Path(db).exists()
    done = runner.invoke(app, ["scan", str(folder), "--videos", "--keyframe-every", str(EVERY), "--db", db, "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert (report["videos"], report["keyframes"], report["faces"], report["repeats"]) == (1, 6, 1, 5)
    plain = runner.invoke(app, ["scan", str(folder), "--db", db])
    assert plain.exit_code == 0 and "0 files" in plain.output


def test_a_gallery_of_schema_7_upgrades_and_keeps_its_photos(tmp_path: Path, kit_clip: tuple[Path, Clip]) -> None:
    folder, db = tmp_path / "library", tmp_path / "v7.db"
    folder.mkdir()
    photo = Path(shutil.copy(ROSE[0], folder / ROSE[0].name))
    with sqlite3.connect(db) as old:
        old.create_function("faceprint_name_key", 1, name_key)
        for version in range(1, 8):
            old.executescript(MIGRATIONS[version])
        old.execute(f"PRAGMA application_id={APPLICATION_ID}")
        old.execute("PRAGMA user_version=7")
        stat = photo.stat()
        old.execute(
            "INSERT INTO photo (path, size, mtime_ns, sha256, scanned_at) VALUES (?, ?, ?, ?, '')",
            (str(photo), stat.st_size, stat.st_mtime_ns, file_digest(str(photo))),
        )
    shutil.copy(kit_clip[0], folder / "kit.mp4")
    with Gallery(db) as gallery:
        summary = scan(gallery, folder, workers=1, videos=True, keyframe_every=EVERY)
        assert (summary.unchanged, summary.new, summary.videos) == (1, 1, 1)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == max(MIGRATIONS)
        assert conn.execute("SELECT keyframe_every FROM photo ORDER BY id").fetchall() == [(None,), (EVERY,)]


_SCAN_VIDEOS = """
import sys
from faceprint import Gallery
from faceprint.library import scan
with Gallery(sys.argv[1]) as gallery:
    scan(gallery, sys.argv[2], workers=1, videos=True, keyframe_every=0.2)
"""


@pytest.mark.slow
def test_a_scan_killed_mid_video_loses_that_video_only_and_the_next_one_completes(
    tmp_path: Path, kit_clip: tuple[Path, Clip]
) -> None:
    folder, db = tmp_path / "library", tmp_path / "g.db"
    folder.mkdir()
    for i in range(6):
        shutil.copy(kit_clip[0], folder / f"kit{i}.mp4")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen([sys.executable, "-c", _SCAN_VIDEOS, str(db), str(folder)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _videos(db) < 2:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    interrupted = _videos(db)
    assert 2 <= interrupted < 6, "the kill should land mid-scan"
    with sqlite3.connect(db) as conn:  # each video stored is whole: its row with its face
        assert conn.execute("SELECT count(*) FROM face").fetchone()[0] == interrupted
    with Gallery(db) as gallery:
        summary = scan(gallery, folder, workers=1, videos=True, keyframe_every=0.2)
    assert (summary.unchanged, summary.new, summary.faces) == (interrupted, 6 - interrupted, 6 - interrupted)


def _videos(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM photo").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.shared
@pytest.mark.slow
def test_the_real_clips_are_sampled_and_lin_manuel_miranda_recognised_in_them(tmp_path: Path) -> None:
    clips = SHARED_DATA / "video"
    if not (clips / "short_hamilton_clip.mp4").exists():
        pytest.skip("../shared/data/video is not available")
    from .conftest import HIRES

    with Gallery(tmp_path / "g.db") as gallery:
        gallery.enroll("Lin-Manuel Miranda", [HIRES / "Lin-Manuel_Miranda" / "Lin-Manuel_Miranda_0001.png"])
        summary = scan(gallery, clips, videos=True)
        assert summary.videos == 2 and summary.errors == [] and summary.repeats > 0
        assert Clusters(gallery).update().recognised >= 1
        lin = gallery.store.query(
            "SELECT p.path FROM face f JOIN photo p ON p.id = f.photo_id JOIN face_cluster c ON c.id = f.cluster_id"
            " JOIN person n ON n.id = c.person_id WHERE n.name = 'Lin-Manuel Miranda'"
        )
        assert {Path(path).name for (path,) in lin} == {"short_hamilton_clip.mp4"}
        assert np.all(np.array([r[0] for r in gallery.store.query("SELECT frame_time FROM face")]) >= 0)


def test_runs_link_one_person_across_keyframes_and_restart_after_their_span() -> None:
    kit, rose = (next(iter(process_files([photo], workers=1))).faces[0] for photo in (KIT[0], ROSE[0]))
    threshold = operating_point(kit.template.model_id, fmr=CLUSTER_FMR).threshold
    times = [2.0 * k for k in range(36)]  # 70 s, a keyframe every 2 s, both on screen throughout
    faces = [KeyframeFace(face, None, round(t * 25), t) for t in times for face in (kit, rose)]
    kept = best_of_runs(faces, threshold, span=30.0)
    # One face per person per 30 s run (0-28, 30-58, 60-70 s): never one of Kit's runs taking Rose's face.
    assert sorted((face.face is kit, face.frame_time) for face in kept) == [
        (who, start) for who in (False, True) for start in (0.0, 30.0, 60.0)
    ]
    alone = [KeyframeFace(kit, None, 0, 0.0), KeyframeFace(rose, None, 50, 2.0)]
    assert len(best_of_runs(alone, threshold)) == 2  # different people in successive keyframes: two runs
