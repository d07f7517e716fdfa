"""A real server on 127.0.0.1 under load, and killed (SIGKILL) during enrollment: no errors, nothing acknowledged
is lost. Bounded in time; they stop by themselves."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the load test needs httpx (dev extra)")
pytest.importorskip("fastapi", reason="the service needs faceprint[server]")

from faceprint.apikeys import KeyStore  # noqa: E402

from .conftest import ALEX, KIT, MULTI, OBAMA, ROSE  # noqa: E402
from .service_server import free_port, running_server, start_server, stop_server  # noqa: E402

pytestmark = pytest.mark.slow
#: People enrolled under load: not those of MULTI. Kit's own photos under other names would make his face
#: ambiguous between several people, which the decision rightly answers "uncertain".
PHOTOS = [p.read_bytes() for p in (*OBAMA, *ALEX)]


def _setup(data: Path) -> dict[str, str]:
    _, token = KeyStore(data).create("acme", ["read", "enroll", "recognize", "admin"])
    return {"Authorization": f"Bearer {token}"}


def _enroll(client: httpx.Client, base: str, headers: dict[str, str], name: str, photo: bytes) -> tuple[int, int]:
    """(person id, face id) once both are acknowledged."""
    person = client.post(f"{base}/v1/collections/load/people", json={"name": name}, headers=headers)
    assert person.status_code == 201, person.text
    person_id = person.json()["id"]
    added = client.post(
        f"{base}/v1/collections/load/people/{person_id}/faces?largest=true",
        files={"images": ("p.jpg", photo, "image/jpeg")},
        headers=headers,
    )
    assert added.status_code == 201, added.text
    return person_id, added.json()["added"][0] if added.json()["added"] else -1


def _all_present(base: str, headers: dict[str, str], acknowledged: list[tuple[int, int]]) -> list[tuple[int, int]]:
    with httpx.Client(timeout=60) as client:
        missing = []
        for person_id, face_id in acknowledged:
            faces = client.get(f"{base}/v1/collections/load/people/{person_id}/faces?limit=500", headers=headers)
            if faces.status_code != 200 or (face_id > 0 and face_id not in {f["id"] for f in faces.json()["items"]}):
                missing.append((person_id, face_id))
        return missing


def test_eight_clients_for_ten_seconds_without_errors_or_losses(tmp_path: Path) -> None:
    headers = _setup(tmp_path)
    with running_server(tmp_path, "--rate-limit", "10000", "--rate-burst", "10000") as base:
        with httpx.Client(timeout=60) as client:
            assert client.post(f"{base}/v1/collections", json={"name": "load"}, headers=headers).status_code == 201
            _enroll(client, base, headers, "Kit Harington", KIT[0].read_bytes())
        errors: list[str] = []
        acknowledged: list[tuple[int, int]] = []
        recognized = []
        lock = threading.Lock()
        deadline = time.monotonic() + 10

        def client_loop(number: int) -> None:
            with httpx.Client(timeout=120) as client:
                turn = 0
                while time.monotonic() < deadline:
                    turn += 1
                    try:
                        if turn % 2:
                            answer = client.post(
                                f"{base}/v1/collections/load/recognize",
                                files={"image": ("g.jpg", MULTI.read_bytes(), "image/jpeg")},
                                headers=headers,
                            )
                            assert answer.status_code == 200, answer.text
                            with lock:
                                recognized.append({f["name"] for f in answer.json()["faces"]})
                        else:
                            photo = PHOTOS[(number + turn) % len(PHOTOS)]
                            done = _enroll(client, base, headers, f"person {number}-{turn}", photo)
                            with lock:
                                acknowledged.append(done)
                    except (AssertionError, httpx.HTTPError) as error:
                        with lock:
                            errors.append(repr(error))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client_loop, range(8)))
        assert errors == []
        assert len(acknowledged) >= 8 and recognized and all("Kit Harington" in names for names in recognized)
        assert _all_present(base, headers, acknowledged) == []


def test_sigkill_during_enrollment_loses_nothing_acknowledged(tmp_path: Path) -> None:
    headers = _setup(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port, "--rate-limit", "10000", "--rate-burst", "10000")
    acknowledged: list[tuple[int, int]] = []
    lock = threading.Lock()
    try:
        with httpx.Client(timeout=60) as client:
            assert client.post(f"{base}/v1/collections", json={"name": "load"}, headers=headers).status_code == 201
        stop = threading.Event()

        def enroll_loop(number: int) -> None:
            with httpx.Client(timeout=60) as client:
                turn = 0
                while not stop.is_set():
                    turn += 1
                    try:
                        done = _enroll(client, base, headers, f"p{number}-{turn}", PHOTOS[turn % len(PHOTOS)])
                    except (AssertionError, httpx.HTTPError):
                        return  # the server is gone: this enrollment was never acknowledged
                    with lock:
                        acknowledged.append(done)

        with ThreadPoolExecutor(4) as pool:
            running = [pool.submit(enroll_loop, n) for n in range(4)]
            deadline = time.monotonic() + 90
            while len(acknowledged) < 8 and time.monotonic() < deadline:  # enrollments under way, some done
                time.sleep(0.1)
            stop_server(server, signal.SIGKILL)  # mid-request, without a chance to clean up
            stop.set()
            for future in running:
                future.result(timeout=120)
    finally:
        stop_server(server)
    assert acknowledged
    with running_server(tmp_path) as restarted:
        assert _all_present(restarted, headers, acknowledged) == []


def test_two_worker_processes_share_a_collection(tmp_path: Path) -> None:
    """What one process enrolls, the other recognizes at once: each follows the gallery's change log."""
    headers = _setup(tmp_path)
    server = running_server(tmp_path, "--workers", "2", "--rate-limit", "10000", "--rate-burst", "10000")
    with server as base, httpx.Client(timeout=120) as client:
        assert client.post(f"{base}/v1/collections", json={"name": "load"}, headers=headers).status_code == 201
        for name, photo in (("Kit Harington", KIT[0]), ("Rose Leslie", ROSE[0])):
            _enroll(client, base, headers, name, photo.read_bytes())
            # Requests land on either process (a new connection each): every answer knows the new person.
            for _ in range(6):
                with httpx.Client(timeout=120) as fresh:
                    answer = fresh.post(
                        f"{base}/v1/collections/load/recognize",
                        files={"image": ("g.jpg", MULTI.read_bytes(), "image/jpeg")},
                        headers=headers,
                    )
                assert name in {face["name"] for face in answer.json()["faces"]}
        assert len({process_of(base) for _ in range(40)}) == 2  # two processes answer


def test_a_keys_rate_limit_holds_across_two_worker_processes(tmp_path: Path) -> None:
    """Requests on fresh connections land on both processes; together they let the key its burst, once."""
    headers = _setup(tmp_path)
    with running_server(tmp_path, "--workers", "2", "--rate-limit", "0.01", "--rate-burst", "5") as base:
        statuses = []
        for _ in range(20):
            with httpx.Client(timeout=60) as fresh:
                statuses.append(fresh.get(f"{base}/v1/me", headers=headers).status_code)
        assert statuses == [200] * 5 + [429] * 15
        assert len({process_of(base) for _ in range(40)}) == 2  # both processes answer


def process_of(base: str) -> int:
    with httpx.Client(timeout=60) as client:
        return int(client.get(f"{base}/health").json()["process"])
