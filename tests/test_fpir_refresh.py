"""A stale large gallery measures itself anew in the background while searches (the library's, the service's)
answer with the bound: one process at a time (a lease in the gallery), a killed measurer's lease freed, short CLI
runs told how to refresh."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import faceprint.gallery as gallery_module
from faceprint import Gallery, Template
from faceprint.apikeys import KeyStore
from faceprint.cli import app
from faceprint.gallery.refresh import LEASE_KEY, MEASURING, Lease, claim_lease, current_lease, release_lease
from faceprint.gallery.sqlite import SQLiteStore
from faceprint.protect import new_key
from faceprint.service.app import create_app
from faceprint.service.settings import ServiceSettings
from faceprint.tenancy import GALLERY_FILE, Tenancy

PEOPLE = 40
MEASURING_PROGRESS = "measuring identification"


def enroll_random(gallery: Gallery, people: range, seed: int = 0) -> np.ndarray:
    """One random template for each of ``people`` (named p0, p1, ...); their vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(people), gallery.options.model.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for person, vector in zip(people, vectors):
        gallery.add_templates(f"p{person}", [Template(vector, gallery.model_id)])
    return vectors


def stale_gallery(path: Path) -> np.ndarray:
    """A gallery that measured itself at ``PEOPLE`` templates, then grew by half: stale."""
    with Gallery(path) as gallery:
        vectors = enroll_random(gallery, range(PEOPLE))
        gallery.measure_identification()
        return np.concatenate([vectors, enroll_random(gallery, range(PEOPLE, PEOPLE * 3 // 2), seed=1)])


def test_a_stale_gallery_is_measured_in_the_background_while_a_search_answers_with_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "g.db"
    vectors = stale_gallery(path)
    monkeypatch.setattr(gallery_module, "MEASURE_CHUNK", 8)  # several chunks: held between two of them
    halfway, go_on = threading.Event(), threading.Event()

    def on_progress(description: str, done: int, total: int) -> None:
        if description == MEASURING_PROGRESS and done == 16:
            halfway.set()
            go_on.wait(60)

    # measure_at_once=0: "large" from the first template on, as a 1M gallery is with the default.
    with Gallery(path, measure_at_once=0, on_progress=on_progress) as gallery:
        templates = gallery.template_count()
        first = gallery.identify_templates(vectors[:1])[0]
        assert halfway.wait(60), "the search started a measurement"
        # The measurement is under way, held mid-way: a search answers now, with the bound, and says so.
        during = gallery.identify_templates(vectors[:3])
        assert gallery.background is not None and gallery.background.running
        assert gallery.measured_tail().templates == PEOPLE
        for answer in [first, *during]:
            assert answer.basis is not None and "stale" in answer.basis and MEASURING in answer.basis
            assert answer.threshold == gallery.identification_point(refresh=False).threshold
        assert gallery.identification_stats()["underway"] == MEASURING
        late = enroll_random(gallery, range(100, 103), seed=2)  # enrollments go on meanwhile (5%: fresh after)
        go_on.set()
        assert gallery.background.wait(60)
        tail = gallery.measured_tail()
        assert tail is not None and gallery.background.measured == tail and gallery.background.error is None
        assert tail.templates == templates, "stored with the size it was measured at, not the size it ended at"
        after = gallery.identify_templates(late[:1])[0]
        assert after.basis is not None and after.basis.startswith("measured on this gallery")
        assert after.match is not None and after.match.name == "p100"
        assert current_lease(gallery.store) is None, "the lease is given back"


def test_a_small_gallery_still_measures_itself_on_the_search(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    stale_gallery(path)
    with Gallery(path) as gallery:  # the default measure_at_once is far above these 60 templates
        point = gallery.identification_point()
        assert point.measured is not None and point.measured.templates == gallery.template_count()
        assert gallery.background is not None and not gallery.background.running


def test_never_refresh_decides_with_the_bound_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    stale_gallery(path)
    with Gallery(path, measure_at_once=0, measure_in_background=False) as gallery:
        point = gallery.identification_point()
        assert point.measured is None and "stale" in point.basis and MEASURING not in point.basis
        assert gallery.background is not None and not gallery.background.running
        assert gallery.stale_measurement() == (
            f"it measured itself at {PEOPLE} templates and holds {PEOPLE * 3 // 2} now (stale beyond 10%)"
        )
    with Gallery(path) as gallery:
        assert gallery.stale_measurement() is None  # small enough to measure itself on its next search


def test_a_lease_expires_and_a_dead_holder_frees_it_at_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    try:
        generation = store.generation()
        assert claim_lease(store, "a", seconds=60, now=1000.0)
        assert not claim_lease(store, "b", seconds=60, now=1059.0), "held by a live process until it expires"
        assert claim_lease(store, "b", seconds=60, now=1060.0), "expired"
        assert claim_lease(store, "b", seconds=60, now=1100.0), "its holder renews it"
        release_lease(store, "a")  # not a's any more: nothing happens
        assert Lease.parse(store.meta(LEASE_KEY)).owner == "b"
        release_lease(store, "b")
        assert store.meta(LEASE_KEY) is None
        # A holder on this machine that has gone frees the lease before it expires.
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        gone = Lease("c", Lease.mine("c", 0, 0).host, int(dead.stdout), expires=1e12)
        store.swap_meta(LEASE_KEY, lambda _: gone.to_json())
        assert claim_lease(store, "d", seconds=60)
        assert store.generation() == generation, "a lease is bookkeeping, not a change of the gallery"
    finally:
        store.close()


# A process that searches a stale gallery (large for it) and reports: "measuring" when its background measurement
# has begun (then waits for a line on stdin), and at the end whether it measured.
MEASURER = """
import sys, threading
from faceprint import Gallery
import faceprint.gallery as gallery_module
gallery_module.MEASURE_CHUNK = 8
def on_progress(description, done, total):
    if description == "measuring identification" and done == 8:
        print("measuring", flush=True)
        sys.stdin.readline()
with Gallery(sys.argv[1], measure_at_once=0, on_progress=on_progress) as gallery:
    point = gallery.identification_point()
    gallery.background.wait()
    print("done", gallery.background.measured is not None, point.basis, flush=True)
"""


def measurer(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", MEASURER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_concurrent_processes_do_not_both_measure(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    stale_gallery(path)
    first, second = measurer(path), measurer(path)
    try:
        lines = {first: first.stdout.readline(), second: second.stdout.readline()}  # type: ignore[union-attr]
        # One holds the lease and waits mid-measurement; the other ends without measuring, saying who does.
        (holder,) = [p for p, line in lines.items() if line == "measuring\n"]
        (other,) = [p for p in lines if p is not holder]
        assert lines[other].startswith("done False") and other.wait(60) == 0
        assert f"being measured anew by process {holder.pid}" in lines[other] or MEASURING in lines[other]
        holder.stdin.write("\n")  # type: ignore[union-attr]
        holder.stdin.flush()  # type: ignore[union-attr]
        assert holder.stdout.readline().startswith("done True")  # type: ignore[union-attr]
        assert holder.wait(60) == 0
    finally:
        for process in (first, second):
            process.kill()
            process.wait()
    with Gallery(path) as gallery:
        assert gallery.measured_tail().templates == gallery.template_count()


def test_a_killed_measurer_leaves_no_lease_that_blocks_the_next(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    vectors = stale_gallery(path)
    process = measurer(path)
    try:
        assert process.stdout.readline() == "measuring\n"  # type: ignore[union-attr]
        with Gallery(path, measure_at_once=0, measure_in_background=False) as gallery:
            assert current_lease(gallery.store).pid == process.pid
            assert f"being measured anew by process {process.pid}" in gallery.identification_stats()["underway"]
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        process.kill()
    with Gallery(path, measure_at_once=0) as gallery:
        answer = gallery.identify_templates(vectors[:1])[0]
        assert answer.basis is not None and MEASURING in answer.basis, "the dead holder's lease is free"
        assert gallery.background is not None and gallery.background.wait(60)
        assert gallery.measured_tail().templates == gallery.template_count()


def test_identify_on_the_command_line_says_once_that_the_calibration_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short run decides with the bound at once, says so in every result and once on stderr, with the command
    that refreshes it, and measures nothing."""
    monkeypatch.setattr(gallery_module, "AUTO_MEASURE_TEMPLATES", 0)  # every gallery is "large"
    path = tmp_path / "g.db"
    stale_gallery(path)
    photos = sorted(str(p) for p in Path("tests/data/faces-hires/Rose_Leslie").glob("*.jpg"))[:2]
    result = CliRunner().invoke(app, ["identify", *photos, "--db", str(path), "--json"])
    answers = json.loads(result.stdout)
    assert all("stale" in face["basis"] for answer in answers for face in answer["faces"])
    assert result.stderr.count("faceprint calibrate --gallery") == 1
    assert f"it measured itself at {PEOPLE} templates and holds {PEOPLE * 3 // 2} now" in result.stderr
    with Gallery(path, measure_in_background=False) as gallery:
        assert gallery.measured_tail().templates == PEOPLE, "a short run does not measure"


def test_the_service_answers_a_stale_collection_with_the_bound_while_it_measures_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gallery_module, "AUTO_MEASURE_TEMPLATES", 0)  # every collection is "large"
    _, token = KeyStore(tmp_path).create("acme", ["read", "enroll", "recognize", "admin"])
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(ServiceSettings(tmp_path)), raise_server_exceptions=False) as client:
        assert client.post("/v1/collections", json={"name": "big"}, headers=headers).status_code == 201
        vectors = stale_gallery(Tenancy(tmp_path).collection_dir("acme", "big") / GALLERY_FILE)
        found = client.post("/v1/collections/big/search", json={"templates": [vectors[0].tolist()]}, headers=headers)
        assert found.status_code == 200, found.text
        (answer,) = found.json()["results"]
        assert "stale" in answer["basis"] and MEASURING in answer["basis"] and answer["name"] == "p0"
        deadline = time.monotonic() + 60
        while not client.get("/v1/collections/big", headers=headers).json()["identification"]["fresh"]:
            assert time.monotonic() < deadline, "the collection measured itself in the background"
            time.sleep(0.05)
        again = client.post("/v1/collections/big/search", json={"templates": [vectors[0].tolist()]}, headers=headers)
        assert again.json()["results"][0]["basis"].startswith("measured on this gallery")


def test_an_encrypted_gallery_measures_itself_in_the_background_with_its_key(tmp_path: Path) -> None:
    key = new_key()
    with Gallery(tmp_path / "g.db", key=key) as gallery:
        enroll_random(gallery, range(PEOPLE))
    with Gallery(tmp_path / "g.db", key=key, measure_at_once=0) as gallery:
        assert MEASURING in gallery.identification_point().basis
        assert gallery.background is not None and gallery.background.wait(60)
        assert gallery.background.error is None and gallery.measured_tail().templates == PEOPLE
