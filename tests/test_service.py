"""The HTTP service through the ASGI test client: every endpoint, keys, scopes, tenants, bad input."""

from __future__ import annotations

import gc
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs faceprint[server]")
from fastapi.testclient import TestClient

from faceprint.apikeys import KeyStore
from faceprint.match import DEFAULT_FPIR, operating_point
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.service.app import create_app
from faceprint.service.settings import ServiceSettings
from faceprint.service.warm import WARM

from .conftest import KIT, MULTI, ROSE

ALL = ["read", "enroll", "recognize", "admin"]
#: What image-vs-image verification decides at: the shipped calibration of the default pipeline's model.
SHIPPED_FMR = operating_point(DEFAULT_OPTIONS.model.model_id).fmr


@dataclass
class Keys:
    admin: dict[str, str]
    reader: dict[str, str]
    other_tenant: dict[str, str]
    admin_id: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def photo(path: Path, field: str = "image") -> dict[str, tuple[str, bytes, str]]:
    return {field: (path.name, path.read_bytes(), "image/jpeg")}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> Keys:
    store = KeyStore(data_dir)
    admin, admin_token = store.create("acme", ALL)
    _, reader = store.create("acme", ["read"])
    _, other = store.create("globex", ALL)
    return Keys(bearer(admin_token), bearer(reader), bearer(other), admin.id)


@pytest.fixture(scope="module")
def client(data_dir: Path, keys: Keys) -> Iterator[TestClient]:
    settings = ServiceSettings(data_dir, max_upload_bytes=2 * 1024 * 1024, rate_per_second=1000, rate_burst=1000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def enrolled(client: TestClient, keys: Keys) -> dict[str, int]:
    """A collection ``staff`` of tenant acme with Kit Harington and Rose Leslie, one photo each."""
    assert client.post("/v1/collections", json={"name": "staff"}, headers=keys.admin).status_code == 201
    ids = {}
    for name, photos in (("Kit Harington", KIT), ("Rose Leslie", ROSE)):
        person = client.post("/v1/collections/staff/people", json={"name": name}, headers=keys.admin).json()
        added = client.post(
            f"/v1/collections/staff/people/{person['id']}/faces", files=photo(photos[0], "images"), headers=keys.admin
        )
        assert added.status_code == 201, added.text
        ids[name] = person["id"]
    return ids


def is_problem(response: object, status: int) -> bool:
    body = response.json()  # type: ignore[attr-defined]
    return (
        response.status_code == status  # type: ignore[attr-defined]
        and response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
        and body["status"] == status
        and body["title"]
        and "Traceback" not in response.text  # type: ignore[attr-defined]
    )


# --- collections, people, faces ------------------------------------------------------------------


def test_collections_are_created_listed_described_and_deleted(client: TestClient, keys: Keys) -> None:
    made = client.post("/v1/collections", json={"name": "visitors", "thumbnails": True}, headers=keys.admin)
    assert made.status_code == 201 and made.json()["thumbnails"] and made.json()["people"] == 0
    assert "visitors" in client.get("/v1/collections", headers=keys.admin).json()["collections"]
    described = client.get("/v1/collections/visitors", headers=keys.reader).json()
    assert described["model_id"] and described["identification"]["point"]["fpir"] == pytest.approx(DEFAULT_FPIR)
    assert is_problem(client.post("/v1/collections", json={"name": "visitors"}, headers=keys.admin), 409)
    assert is_problem(client.post("/v1/collections", json={"name": "../x"}, headers=keys.admin), 422)
    assert client.delete("/v1/collections/visitors", headers=keys.admin).status_code == 204
    assert is_problem(client.get("/v1/collections/visitors", headers=keys.admin), 404)


def test_people_are_paged_renamed_merged_and_deleted(client: TestClient, keys: Keys, enrolled: dict[str, int]) -> None:
    made = [
        client.post(
            "/v1/collections/staff/people",
            json={"name": n, "external_id": f"x-{n}", "metadata": {"n": n}},
            headers=keys.admin,
        ).json()
        for n in ("a", "b", "c")
    ]
    page = client.get("/v1/collections/staff/people?offset=1&limit=2", headers=keys.reader).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["offset"] == 1
    first = client.get(f"/v1/collections/staff/people/{made[0]['id']}", headers=keys.reader).json()
    assert first["external_id"] == "x-a" and first["metadata"] == {"n": "a"}
    renamed = client.patch(f"/v1/collections/staff/people/{made[0]['id']}", json={"name": "A b"}, headers=keys.admin)
    assert renamed.json()["name"] == "A b"
    taken = client.post("/v1/collections/staff/people", json={"name": "kit harington"}, headers=keys.admin)
    assert is_problem(taken, 409)
    merged = client.post(
        f"/v1/collections/staff/people/{made[1]['id']}/merge", json={"into": made[2]["id"]}, headers=keys.admin
    )
    assert merged.status_code == 200 and merged.json()["id"] == made[2]["id"]
    assert is_problem(client.get(f"/v1/collections/staff/people/{made[1]['id']}", headers=keys.admin), 404)
    for person in (made[0], made[2]):
        assert client.delete(f"/v1/collections/staff/people/{person['id']}", headers=keys.admin).status_code == 204
    assert client.get("/v1/collections/staff/people", headers=keys.reader).json()["total"] == 2


def test_faces_are_added_with_reasons_listed_and_deleted(client: TestClient, keys: Keys) -> None:
    assert client.post("/v1/collections", json={"name": "faces"}, headers=keys.admin).status_code == 201
    person = client.post("/v1/collections/faces/people", json={"name": "Kit"}, headers=keys.admin).json()
    url = f"/v1/collections/faces/people/{person['id']}/faces"
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in (KIT[0], KIT[1], MULTI)]
    added = client.post(url + "?quality=strict", files=files, headers=keys.admin).json()
    assert len(added["added"]) == 1 and added["quality"] == "strict"
    reasons = {r["image"]: r for r in added["refused"]}
    assert "head turned too far" in reasons[KIT[1].name]["reason"]  # Kit_Harington_0002 turns his head
    assert reasons[MULTI.name]["kind"] == "ManyFacesError" and MULTI.name in reasons[MULTI.name]["reason"]
    refused = client.post(url, files=photo(MULTI, "images"), headers=keys.admin)
    assert is_problem(refused, 422) and client.get(url, headers=keys.admin).json()["total"] == 1  # nothing stored
    more = client.post(
        url, files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in KIT[1:]], headers=keys.admin
    )
    assert len(more.json()["added"]) == 2
    listed = client.get(url + "?limit=2", headers=keys.reader).json()
    assert listed["total"] == 3 and len(listed["items"]) == 2 and listed["items"][0]["source"] == KIT[0].name
    assert client.delete(f"{url}/{listed['items'][0]['id']}", headers=keys.admin).status_code == 204
    assert is_problem(client.delete(f"{url}/{listed['items'][0]['id']}", headers=keys.admin), 404)
    assert client.delete(url, headers=keys.admin).json() == {"removed": 2}
    assert client.get(url, headers=keys.admin).json()["total"] == 0


# --- recognition --------------------------------------------------------------------------------


def test_recognize_names_both_faces_of_the_group_photo(
    client: TestClient, keys: Keys, enrolled: dict[str, int]
) -> None:
    answer = client.post("/v1/collections/staff/recognize?top_k=2", files=photo(MULTI), headers=keys.admin).json()
    names = {face["name"] for face in answer["faces"]}
    assert names == {"Kit Harington", "Rose Leslie"} and answer["faces_found"] == 2
    face = answer["faces"][0]
    assert face["fpir"] == pytest.approx(DEFAULT_FPIR) and face["threshold"] is not None
    assert len(face["face"]["box"]) == 4 and "score" in face["face"]["quality"] and face["candidates"]
    stranger = client.post(
        "/v1/collections/staff/recognize",
        files=photo(sorted((MULTI.parents[1] / "Barack_Obama").glob("*"))[0]),
        headers=keys.admin,
    ).json()
    assert stranger["faces"][0]["name"] == "unknown" and stranger["faces"][0]["reason"]
    with_attributes = client.post(
        "/v1/collections/staff/recognize?attributes=pose", files=photo(KIT[0]), headers=keys.admin
    ).json()
    assert with_attributes["faces"][0]["face"]["attributes"]["pose"]["yaw"] is not None


def test_answers_say_where_their_time_went_in_the_server(
    client: TestClient, keys: Keys, enrolled: dict[str, int]
) -> None:
    answer = client.post("/v1/collections/staff/recognize", files=photo(KIT[0]), headers=keys.admin)
    entries = dict(entry.split(";", 1) for entry in answer.headers["server-timing"].split(", "))
    assert {"admit", "queue", "pipeline", "search", "audit", "hops", "total", "process"} <= set(entries)
    milliseconds = {
        name: float(value.split("dur=")[1].split(";")[0]) for name, value in entries.items() if "dur=" in value
    }
    assert 0 < milliseconds["pipeline"] < milliseconds["total"]
    assert sum(milliseconds.values()) - milliseconds["total"] <= milliseconds["total"] * 1.01  # phases, not overlaps
    assert 'desc="batch of 1"' in entries["pipeline"] and entries["process"] == f'desc="{os.getpid()}"'
    refused = client.post("/v1/collections/staff/recognize", files=photo(KIT[0]), headers=bearer("fpk_wrong"))
    assert refused.status_code == 401 and "admit;dur=" in refused.headers["server-timing"]


def test_search_by_template_decides_like_recognize(client: TestClient, keys: Keys, enrolled: dict[str, int]) -> None:
    from faceprint.api import embed

    vector = embed(ROSE[1])[0].template.vector.tolist()  # type: ignore[union-attr]
    found = client.post("/v1/collections/staff/search", json={"templates": [vector]}, headers=keys.admin).json()
    assert found["results"][0]["name"] == "Rose Leslie" and found["results"][0]["fpir"] == pytest.approx(DEFAULT_FPIR)
    wrong = client.post("/v1/collections/staff/search", json={"templates": [[0.1, 0.2]]}, headers=keys.admin)
    assert is_problem(wrong, 422) and "numbers" in wrong.json()["detail"]


def test_verify_images_and_against_a_person(client: TestClient, keys: Keys, enrolled: dict[str, int]) -> None:
    same = client.post("/v1/verify", files={**photo(KIT[0], "a"), **photo(KIT[2], "b")}, headers=keys.admin).json()
    other = client.post("/v1/verify", files={**photo(KIT[0], "a"), **photo(ROSE[0], "b")}, headers=keys.admin).json()
    assert same["match"] and not other["match"] and same["operating_fmr"] == SHIPPED_FMR
    person = enrolled["Rose Leslie"]
    url = f"/v1/collections/staff/people/{person}/verify"
    assert client.post(url, files=photo(ROSE[1]), headers=keys.admin).json()["match"]
    assert not client.post(url, files=photo(KIT[2]), headers=keys.admin).json()["match"]
    assert is_problem(client.post(url, files=photo(MULTI), headers=keys.admin), 422)  # two faces
    assert client.post(url + "?largest=true", files=photo(MULTI), headers=keys.admin).status_code == 200


def test_detect_and_analyze(client: TestClient, keys: Keys) -> None:
    found = client.post("/v1/detect", files=photo(MULTI), headers=keys.reader)
    assert is_problem(found, 403)  # detect needs the recognize scope
    found = client.post("/v1/detect", files=photo(MULTI), headers=keys.admin).json()
    assert found["faces_found"] == 2 and len(found["faces"][0]["landmarks"]) == 5
    analyzed = client.post("/v1/analyze?attributes=gender", files=photo(ROSE[0]), headers=keys.admin).json()
    assert analyzed["faces"][0]["attributes"]["gender"]["label"] == "female"


# --- keys, scopes, tenants -----------------------------------------------------------------------


def test_another_tenant_gets_404_for_everything_even_by_guessed_ids(
    client: TestClient, keys: Keys, enrolled: dict[str, int]
) -> None:
    kit = enrolled["Kit Harington"]
    other = keys.other_tenant
    assert client.get("/v1/collections", headers=other).json()["collections"] == []
    for method, url in [
        ("GET", "/v1/collections/staff"),
        ("GET", "/v1/collections/staff/people"),
        ("GET", f"/v1/collections/staff/people/{kit}"),
        ("GET", f"/v1/collections/staff/people/{kit}/faces"),
        ("DELETE", f"/v1/collections/staff/people/{kit}/faces/1"),
        ("DELETE", f"/v1/collections/staff/people/{kit}"),
        ("DELETE", "/v1/collections/staff"),
    ]:
        assert is_problem(client.request(method, url, headers=other), 404), (method, url)
    assert is_problem(client.post("/v1/collections/staff/recognize", files=photo(KIT[0]), headers=other), 404)
    # Its own collection of the same name is another one, and ids in it are its own.
    assert client.post("/v1/collections", json={"name": "staff"}, headers=other).status_code == 201
    assert is_problem(client.get(f"/v1/collections/staff/people/{kit}", headers=other), 404)
    assert client.get("/v1/collections/staff", headers=keys.admin).json()["people"] >= 2


def test_keys_are_checked_on_every_request(client: TestClient, keys: Keys, data_dir: Path) -> None:
    assert is_problem(client.get("/v1/collections"), 401)
    assert is_problem(client.get("/v1/collections", headers=bearer("fpk_0_nothing")), 401)
    assert is_problem(client.post("/v1/collections", json={"name": "x"}, headers=keys.reader), 403)
    store = KeyStore(data_dir)
    key, token = store.create("acme", ["read"])
    assert client.get("/v1/me", headers=bearer(token)).json()["tenant"] == "acme"
    store.revoke(key.id)  # as `faceprint apikeys revoke` would, from another process
    assert is_problem(client.get("/v1/me", headers=bearer(token)), 401)


def test_a_key_over_its_rate_gets_429_with_retry_after(data_dir: Path, keys: Keys) -> None:
    settings = ServiceSettings(data_dir, rate_per_second=0.5, rate_burst=3)
    with TestClient(create_app(settings)) as limited:
        answers = [limited.get("/v1/me", headers=keys.reader) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert is_problem(answers[-1], 429) and int(answers[-1].headers["Retry-After"]) >= 1
        assert limited.get("/v1/me", headers=keys.admin).status_code == 200  # per key


def test_a_keys_rate_holds_across_server_processes_sharing_a_data_directory(tmp_path: Path) -> None:
    """Two apps on one data directory, as ``--workers 2`` runs them: the key gets its burst once, not twice."""
    _, token = KeyStore(tmp_path).create("acme", ["read"])
    settings = ServiceSettings(tmp_path, rate_per_second=0.5, rate_burst=3)
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        answers = [(first, second)[turn % 2].get("/v1/me", headers=bearer(token)) for turn in range(6)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]
        assert all(int(a.headers["Retry-After"]) >= 1 for a in answers[3:])


def test_the_audit_log_names_keys_and_counts_never_images(
    client: TestClient, keys: Keys, enrolled: dict[str, int]
) -> None:
    entries = client.get("/v1/audit", headers=keys.admin).json()["items"]
    adds = [e for e in entries if e["action"] == "faces.add" and e["collection"] == "staff"]
    assert adds and adds[-1]["key_id"] == keys.admin_id and adds[-1]["counts"]["added"] == 1
    assert all(set(e) == {"id", "at", "key_id", "tenant", "action", "collection", "person", "counts"} for e in entries)
    assert is_problem(client.get("/v1/audit", headers=keys.reader), 403)


# --- bad input -------------------------------------------------------------------------------------


def test_bad_uploads_are_problems_and_store_nothing(client: TestClient, keys: Keys, enrolled: dict[str, int]) -> None:
    kit = enrolled["Kit Harington"]
    url = f"/v1/collections/staff/people/{kit}/faces"
    before = client.get(url, headers=keys.admin).json()["total"]
    jpeg = KIT[0].read_bytes()
    cases = {
        415: [("images", ("photo.jpg", b"GIF89a not really", "image/jpeg"))],  # sniffed, not by name
        422: [("images", ("cut.jpg", jpeg[:300], "image/jpeg"))],
        413: [("images", ("big.jpg", jpeg[:3] + b"\0" * (3 * 1024 * 1024), "image/jpeg"))],
    }
    for status, files in cases.items():
        assert is_problem(client.post(url, files=files, headers=keys.admin), status), status
    mixed = [("images", ("ok.jpg", jpeg, "image/jpeg")), ("images", ("x.jpg", b"nope", "image/jpeg"))]
    assert is_problem(client.post(url, files=mixed, headers=keys.admin), 415)
    assert is_problem(client.post(url, headers=keys.admin), 422)
    assert is_problem(client.post(url + "?quality=perfect", files=photo(KIT[0], "images"), headers=keys.admin), 422)
    assert is_problem(client.get("/v1/collections/staff/people/99999999999999999999", headers=keys.admin), 422)
    assert is_problem(client.get("/v1/nowhere", headers=keys.admin), 404)
    assert client.get(url, headers=keys.admin).json()["total"] == before


def test_pixel_limit_and_request_size_limit(data_dir: Path, keys: Keys) -> None:
    settings = ServiceSettings(data_dir, max_pixels=100_000, max_upload_bytes=1024 * 1024, max_files=1)
    with TestClient(create_app(settings)) as small:
        answer = small.post("/v1/detect", files=photo(KIT[0]), headers=keys.admin)
        assert is_problem(answer, 422) and KIT[0].name in answer.json()["detail"]
        huge = small.post("/v1/detect", content=b"x" * (2 * 1024 * 1024), headers=keys.admin)
        assert is_problem(huge, 413)


def test_health_ready_metrics_docs_and_page(client: TestClient, keys: Keys, enrolled: dict[str, int]) -> None:
    assert client.get("/health").json()["status"] == "ok"

    assert WARM.wait(120)  # the models load in the background after a start
    assert client.get("/ready").json() == {"status": "ready"}
    assert client.post("/v1/collections/staff/recognize", files=photo(MULTI), headers=keys.admin).status_code == 200
    metrics = client.get("/metrics").text
    assert (
        'faceprint_requests_total{method="POST",route="/v1/collections/{collection}/recognize",status="200"}' in metrics
    )
    assert "faceprint_request_seconds_bucket" in metrics and "faceprint_queue_depth 0" in metrics
    assert f'faceprint_process{{pid="{os.getpid()}"}} 1' in metrics  # whose figures (per process)
    assert int(metrics.split("\nfaceprint_faces_processed_total ")[1].split()[0]) >= 2
    assert "/v1/collections/{collection}/recognize" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    assert "faceprint" in client.get("/").text


def test_the_garbage_collector_runs_again_once_the_app_has_started(tmp_path: Path) -> None:
    gc.disable()  # as `faceprint serve` turns it off for its start-up
    try:
        with TestClient(create_app(ServiceSettings(tmp_path))) as started:
            assert gc.isenabled() and started.get("/health").status_code == 200
            assert WARM.wait(120)  # the models' thread ends before the process does
    finally:
        gc.enable()


def test_every_error_response_refers_to_the_one_declared_problem_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["schemas"]["ProblemDocument"]["required"] == ["type", "title", "status", "detail"]
    errors = [
        response
        for operation in (op for path in schema["paths"].values() for op in path.values())
        for status, response in operation["responses"].items()
        if status.startswith(("4", "5"))
    ]
    assert len(errors) > 100  # every route's
    refs = {response["content"]["application/json"]["schema"]["$ref"] for response in errors}
    assert refs == {"#/components/schemas/ProblemDocument"}


def test_thumbnails_only_where_the_collection_opted_in(
    client: TestClient, keys: Keys, enrolled: dict[str, int]
) -> None:
    kit = enrolled["Kit Harington"]
    assert is_problem(client.get(f"/v1/collections/staff/people/{kit}/thumbnail", headers=keys.reader), 404)
    assert client.post("/v1/collections", json={"name": "album", "thumbnails": True}, headers=keys.admin).is_success
    person = client.post("/v1/collections/album/people", json={"name": "Rose"}, headers=keys.admin).json()
    url = f"/v1/collections/album/people/{person['id']}"
    assert is_problem(client.get(url + "/thumbnail", headers=keys.reader), 404)  # no photo yet
    client.post(url + "/faces", files=photo(ROSE[0], "images"), headers=keys.admin)
    picture = client.get(url + "/thumbnail", headers=keys.reader)
    assert picture.headers["content-type"] == "image/jpeg" and picture.content[:3] == b"\xff\xd8\xff"
    assert client.delete(url, headers=keys.admin).status_code == 204
    with sqlite3.connect(client.app.state.service.tenancy.collection_dir("acme", "album") / "gallery.db") as db:
        assert db.execute("SELECT count(*) FROM person_thumbnail").fetchone()[0] == 0  # gone with the person


@pytest.mark.slow
def test_a_video_job_runs_to_a_jsonl_timeline(
    client: TestClient, keys: Keys, enrolled: dict[str, int], tmp_path: Path
) -> None:
    import json
    import time

    from .video_clips import occlusion_clip

    clip = occlusion_clip(frames=40).write(tmp_path / "clip.mp4")
    upload = {"video": ("clip.mp4", clip.read_bytes(), "video/mp4")}
    assert is_problem(
        client.post("/v1/collections/staff/videos", files=photo(KIT[0], "video"), headers=keys.admin), 415
    )
    assert is_problem(client.post("/v1/collections/nope/videos", files=upload, headers=keys.admin), 404)
    job = client.post("/v1/collections/staff/videos", files=upload, headers=keys.admin)
    assert job.status_code == 202 and job.json()["state"] in ("queued", "running")
    url = f"/v1/jobs/{job.json()['id']}"
    deadline = time.monotonic() + 300
    while client.get(url, headers=keys.admin).json()["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
    done = client.get(url, headers=keys.admin).json()
    assert done["state"] == "done" and done["frames"] == 40 and done["events"] >= 2, done
    lines = client.get(url + "/events", headers=keys.admin).text.splitlines()
    labels = {json.loads(line)["label"] for line in lines}
    assert len(lines) == done["events"] and "Kit Harington" in labels
    assert is_problem(client.get(url, headers=keys.other_tenant), 404)  # another tenant's job
    assert not (client.app.state.service.tenancy.jobs_dir("acme") / done["id"] / "clip").exists()


def test_every_library_error_has_its_problem_status() -> None:
    import faceprint.errors as errors
    from faceprint.service.problems import PROBLEM_STATUS, problem_for

    kinds = [k for k in vars(errors).values() if isinstance(k, type) and issubclass(k, errors.FaceprintError)]
    for kind in kinds:
        assert any(mapped is kind for mapped, _, _ in PROBLEM_STATUS), f"{kind.__name__} has no row of its own"
    assert all(400 <= status < 600 for _, status, _ in PROBLEM_STATUS)
    assert problem_for(errors.PersonNotFoundError("x")).status == 404  # before GalleryError's 409
    assert problem_for(errors.CollectionNotFoundError("x")).status == 404
    assert problem_for(errors.GalleryError("x")).status == 409
    assert problem_for(errors.InvalidImageError("x")).status == 422
    assert problem_for(errors.AccessError("x")).status == 401


def test_concurrent_requests_images_are_batched_and_each_gets_its_own_results() -> None:
    import hashlib
    import time
    from concurrent.futures import ThreadPoolExecutor

    from faceprint.pipeline import DEFAULT_OPTIONS
    from faceprint.service.context import ImageBatcher
    from faceprint.service.metrics import Metrics
    from faceprint.service.warm import PIPELINE

    photos = [p.read_bytes() for p in (*KIT, *ROSE, MULTI)]
    metrics = Metrics()
    batcher = ImageBatcher(metrics, max_images=4)
    pool = ThreadPoolExecutor(len(photos))
    with PIPELINE:  # held until every request waits: they run in batches of up to 4 photos
        running = [pool.submit(batcher.images, [photo], DEFAULT_OPTIONS) for photo in photos]
        deadline = time.monotonic() + 30
        while metrics.queue_depth < len(photos) and time.monotonic() < deadline:
            time.sleep(0.01)
    results = [future.result(timeout=300)[0] for future in running]
    pool.shutdown()
    assert metrics.queue_depth == 0
    assert [r.sha256 for r in results] == [hashlib.sha256(p).hexdigest() for p in photos]
    assert [len(r.faces) for r in results] == [1] * (len(photos) - 1) + [2]


def test_a_key_capped_at_bands_never_gets_a_raw_score_by_asking(
    client: TestClient, keys: Keys, enrolled: dict[str, int], data_dir: Path
) -> None:
    _, token = KeyStore(data_dir).create("acme", ["recognize"], disclosure="bands")
    capped = bearer(token)
    url = "/v1/collections/staff/recognize"
    face = client.post(url + "?disclose=scores", files=photo(KIT[2]), headers=capped).json()["faces"][0]
    assert face["name"] == "Kit Harington" and face["band"].startswith("fmr") and face["similarity"] is None
    assert all(c["similarity"] is None and c["estimated_fmr"] is None and c["band"] for c in face["candidates"])
    decided = client.post(url + "?disclose=decisions", files=photo(KIT[2]), headers=capped).json()["faces"][0]
    assert decided["band"] is None and decided["similarity"] is None
    assert [c["name"] for c in decided["candidates"]] == ["Kit Harington"]
    verify_url = f"/v1/collections/staff/people/{enrolled['Rose Leslie']}/verify?disclose=scores"
    verified = client.post(verify_url, files=photo(ROSE[1]), headers=capped).json()
    assert verified["match"] and verified["band"].startswith("fmr<=")
    assert verified["similarity"] is None and verified["distance"] is None and verified["estimated_fmr"] is None
    assert is_problem(client.post(url + "?disclose=everything", files=photo(KIT[2]), headers=capped), 422)


def test_a_request_may_ask_for_decisions_only(client: TestClient, keys: Keys) -> None:
    files = {**photo(KIT[0], "a"), **photo(KIT[2], "b")}
    same = client.post("/v1/verify?disclose=decisions", files=files, headers=keys.admin).json()
    assert same["match"] and same["decision"] and same["similarity"] is None and same["band"] is None


def test_a_query_budget_holds_across_server_processes_and_ends_in_429(tmp_path: Path) -> None:
    from faceprint.api import embed

    store = KeyStore(tmp_path)
    _, admin = store.create("acme", ALL)
    _, token = store.create("acme", ["recognize"], budget=3)
    vector = embed(ROSE[1])[0].template.vector.tolist()  # type: ignore[union-attr]
    settings = ServiceSettings(tmp_path, rate_per_second=1000, rate_burst=1000)
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        assert first.post("/v1/collections", json={"name": "staff"}, headers=bearer(admin)).status_code == 201
        search = {"json": {"templates": [vector]}, "headers": bearer(token)}
        answers = [(first, second)[turn % 2].post("/v1/collections/staff/search", **search) for turn in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        assert is_problem(answers[3], 429) and int(answers[3].headers["Retry-After"]) >= 1
        assert "budget" in answers[3].json()["title"].lower()
        assert first.post(
            "/v1/collections/staff/search", json={"templates": [vector]}, headers=bearer(admin)
        ).is_success


def test_the_start_up_helper_answers_as_this_process_would_and_exits_when_retired() -> None:
    import numpy as np

    from faceprint.pipeline import process_files
    from faceprint.service.warm import StartHelper

    photos = [MULTI.read_bytes(), b"not an image"]
    helper = StartHelper()
    assert helper.ready.wait(120)  # its models loaded (/ready answers 200 from then on)
    try:
        helped = helper.images(photos, DEFAULT_OPTIONS, True)
    finally:
        helper.retire()
    assert not helper.process.is_alive()
    own = list(process_files(photos, DEFAULT_OPTIONS, workers=1, chunk_size=len(photos)))
    assert helped is not None and [r.sha256 for r in helped] == [r.sha256 for r in own]
    assert [len(r.faces) for r in helped] == [len(r.faces) for r in own] == [2, 0]
    assert type(helped[1].error) is type(own[1].error) and helped[1].error is not None
    for mine, theirs in zip(own[0].faces, helped[0].faces, strict=True):
        assert mine.box == theirs.box
        assert np.allclose(mine.template.vector, theirs.template.vector, atol=1e-5)


def test_a_batch_runs_in_this_process_when_the_start_up_helper_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    from faceprint.service import warm
    from faceprint.service.context import ImageBatcher
    from faceprint.service.metrics import Metrics

    helper = warm.StartHelper()
    helper.process.kill()
    helper.process.join()
    monkeypatch.setattr(warm, "_helper", helper)
    (result,) = ImageBatcher(Metrics()).images([MULTI.read_bytes()], DEFAULT_OPTIONS)
    assert len(result.faces) == 2 and not warm.has_helper()


def test_the_start_up_helper_exits_once_this_process_has_its_models(monkeypatch: pytest.MonkeyPatch) -> None:
    from faceprint.service import warm

    helper = warm.StartHelper()
    monkeypatch.setattr(warm, "_helper", helper)
    monkeypatch.setattr(warm, "WARM", type(WARM)())  # this process's models not loaded (as after a start)
    warm.warm_up()
    assert warm.WARM.wait(120)
    deadline = time.monotonic() + 10
    while warm.has_helper() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not warm.has_helper() and not helper.process.is_alive()
