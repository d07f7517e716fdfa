"""Encrypted identification through the service (faceprint.service.private) with real TenSEAL: the client encrypts,
the service scores ciphertexts, the client decides; and what the service refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the service needs faceprint[server]")
pytest.importorskip("tenseal", reason="encrypted identification needs faceprint[private]")
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from faceprint import encrypted
from faceprint.apikeys import KeyStore
from faceprint.cli import app as cli
from faceprint.encrypted import ClientKey, RemoteGallery, identify_privately
from faceprint.pipeline import ImageResult
from faceprint.service.app import create_app
from faceprint.service.settings import ServiceSettings
from faceprint.tenancy import Tenancy

from .conftest import HIRES, PERSONS
from .service_server import running_server

SCORES = "/v1/collections/staff/private/scores"


@dataclass
class Served:
    client: TestClient
    data_dir: Path
    admin: dict[str, str]
    reader: dict[str, str]
    other_tenant: dict[str, str]
    admin_token: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def main_vector(result: ImageResult) -> np.ndarray:
    template = result.faces[0].template
    assert template is not None
    return np.asarray(template.vector)


def first_photo(hires_results: dict[str, ImageResult], person: str) -> str:
    return min(path for path in hires_results if path.startswith(f"{person}/"))


def enroll_first_photos(data_dir: Path, hires_results: dict[str, ImageResult]) -> None:
    """Collection ``staff`` of tenant acme: each faces-hires person enrolled from their first photo."""
    with Tenancy(data_dir).create("acme", "staff") as gallery:
        for person in PERSONS:
            template = hires_results[first_photo(hires_results, person)].faces[0].template
            assert template is not None
            gallery.add_templates(person.replace("_", " "), [template])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, hires_results: dict[str, ImageResult]) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("private-service")
    store = KeyStore(data_dir)
    _, admin = store.create("acme", ["read", "enroll", "recognize", "admin"])
    _, reader = store.create("acme", ["read"])
    _, other = store.create("globex", ["read", "enroll", "recognize", "admin"])
    enroll_first_photos(data_dir, hires_results)
    settings = ServiceSettings(data_dir, max_upload_bytes=1024 * 1024, rate_per_second=1000, rate_burst=1000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Served(client, data_dir, bearer(admin), bearer(reader), bearer(other), admin)


@pytest.fixture(scope="module")
def key() -> ClientKey:
    return ClientKey.generate()


def remote(served: Served, key: ClientKey, sent: list[tuple[bytes, bytes]] | None = None) -> RemoteGallery:
    """The collection through the ASGI client, as ``encrypted.connect`` reaches it over HTTP (``sent``: each probe
    message posted and the scores message answered)."""
    manifest = served.client.get("/v1/collections/staff/private", headers=served.admin)
    assert manifest.status_code == 200, manifest.text

    def post(probe: bytes) -> bytes:
        answer = served.client.post(
            SCORES, params={"version": manifest.json()["version"]}, content=probe, headers=served.admin
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/octet-stream"
        if sent is not None:
            sent.append((probe, answer.content))
        return answer.content

    return RemoteGallery(manifest.json(), post, key.parameters)


def clear_pieces(values: np.ndarray) -> list[bytes]:
    """16-byte pieces of ``values`` as float32 and float64: what a message holding them in the clear contains."""
    pieces = []
    for dtype in ("<f4", "<f8"):
        data = np.asarray(values, dtype).tobytes()
        pieces += [data[at : at + 16] for at in range(0, len(data) - 15, 16)]
    return pieces


def test_encrypted_top_1_equals_the_plaintext_top_1_for_every_committed_photo_and_the_server_sees_no_plaintext(
    served: Served, key: ClientKey, hires_results: dict[str, ImageResult]
) -> None:
    sent: list[tuple[bytes, bytes]] = []
    server = remote(served, key, sent)
    probes = {path: main_vector(result) for path, result in hires_results.items() if result.faces}
    assert len(probes) >= 15
    plain = served.client.post(
        "/v1/collections/staff/search",
        json={"templates": [v.tolist() for v in probes.values()], "top_k": 1},
        headers=served.admin,
    )
    assert plain.status_code == 200, plain.text
    for (path, vector), expected in zip(probes.items(), plain.json()["results"]):
        answer = identify_privately(key, vector, server, top_k=1)
        best, wanted = answer.candidates[0], expected["candidates"][0]
        assert best.person_id == wanted["person_id"], path
        assert abs(best.similarity - wanted["similarity"]) < 1e-4, path
        assert answer.decision == expected["decision"], path
        probe, scores = sent[-1]
        assert not any(piece in probe for piece in clear_pieces(vector)), path
        assert not any(piece in scores for piece in clear_pieces(np.array([c.similarity for c in answer.candidates])))
    # The service wrote no probe anywhere, in the clear or as sent (the audit log counts, nothing more).
    written = b"".join(p.read_bytes() for p in served.data_dir.rglob("*") if p.is_file())
    for probe, _ in sent[:3]:
        assert probe[100:132] not in written
    enrolled = {first_photo(hires_results, person) for person in PERSONS}
    for path in [path for path in probes if path not in enrolled][:3]:
        assert not any(piece in written for piece in clear_pieces(probes[path])), path


def test_the_prepared_rows_are_reused_until_the_collection_changes(
    served: Served, key: ClientKey, hires_results: dict[str, ImageResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    of_gallery = encrypted.PlainRows.of_gallery.__func__  # type: ignore[attr-defined]

    def counted(cls: type, scorer: encrypted.Scorer, gallery: object) -> encrypted.PlainRows:
        built.append(1)
        return of_gallery(cls, scorer, gallery)

    monkeypatch.setattr(encrypted.PlainRows, "of_gallery", classmethod(counted))
    first = served.client.get("/v1/collections/staff/private", headers=served.admin).json()
    again = served.client.get("/v1/collections/staff/private?fpir=0.001", headers=served.admin).json()
    assert first["version"] == again["version"] and len(built) <= 1  # (0: prepared by an earlier test)
    assert again["point"]["fpir"] == 0.001 and again["labels"] == first["labels"]
    created = served.client.post("/v1/collections/staff/people", json={"name": "Newcomer"}, headers=served.admin)
    assert created.status_code == 201
    stale = served.client.post(SCORES, params={"version": first["version"]}, content=b"x", headers=served.admin)
    assert stale.status_code == 409 and "version" in stale.json()["detail"]
    changed = served.client.get("/v1/collections/staff/private", headers=served.admin).json()
    assert changed["version"] != first["version"]
    deleted = served.client.delete(f"/v1/collections/staff/people/{created.json()['id']}", headers=served.admin)
    assert deleted.status_code < 300


def test_malformed_probes_are_problem_documents_never_server_errors(served: Served, key: ClientKey) -> None:
    manifest = served.client.get("/v1/collections/staff/private", headers=served.admin).json()
    version = {"version": manifest["version"]}
    layout = encrypted.Layout(**manifest["layout"])
    valid = key.probe_message(np.ones(layout.dimension) / np.sqrt(layout.dimension), layout)
    parts = encrypted._unpack(valid)
    other_key_parameters = encrypted.Parameters(8192, (60, 40, 60), 40)
    from_other_parameters = ClientKey.generate(other_key_parameters).probe_message(np.zeros(layout.dimension), layout)
    bodies = {
        "empty": b"",
        "random bytes": np.random.default_rng(0).bytes(5000),
        "cut short": valid[: len(valid) // 2],
        "a ciphertext too many": encrypted._pack([*parts, parts[0]]),
        "a ciphertext damaged": encrypted._pack([parts[0][:40] + bytes(len(parts[0]) - 40), *parts[1:]]),
        "other parameters": from_other_parameters,
        "a length beyond the body": (2**63).to_bytes(8, "little") + b"SEAL",
        "a million empty ciphertexts": bytes(8 * 1_000_000),
        "framing cut short": b"\x01\x00\x00",
    }
    for name, body in bodies.items():
        answer = served.client.post(SCORES, params=version, content=body, headers=served.admin)
        assert answer.status_code == 422, (name, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json"), name
    too_large = served.client.post(SCORES, params=version, content=bytes(11 * 1024 * 1024 + 1), headers=served.admin)
    assert too_large.status_code == 413
    ok = served.client.post(SCORES, params=version, content=valid, headers=served.admin)
    assert ok.status_code == 200


def test_scope_tenant_and_audit(served: Served, key: ClientKey) -> None:
    manifest = served.client.get("/v1/collections/staff/private", headers=served.admin).json()
    version = {"version": manifest["version"]}
    assert served.client.get("/v1/collections/staff/private", headers=served.reader).status_code == 403
    assert served.client.post(SCORES, params=version, content=b"x", headers=served.reader).status_code == 403
    assert served.client.get("/v1/collections/staff/private").status_code == 401
    # Another tenant's collection of that name does not exist for it, whatever the version.
    assert served.client.get("/v1/collections/staff/private", headers=served.other_tenant).status_code == 404
    other = served.client.post(SCORES, params=version, content=b"x", headers=served.other_tenant)
    assert other.status_code == 404
    layout = encrypted.Layout(**manifest["layout"])
    probe = key.probe_message(np.ones(layout.dimension) / np.sqrt(layout.dimension), layout)
    assert served.client.post(SCORES, params=version, content=probe, headers=served.admin).status_code == 200
    entries = served.client.get("/v1/audit", headers=served.admin).json()["items"]
    actions = [e["action"] for e in entries]
    assert "private.manifest" in actions and "private.scores" in actions
    scored = next(e for e in entries if e["action"] == "private.scores")
    assert scored["collection"] == "staff" and scored["counts"]["probe_bytes"] == len(probe)
    assert probe[100:132] not in json.dumps(entries).encode()


def test_a_key_capped_below_scores_gets_no_encrypted_scores(served: Served, key: ClientKey) -> None:
    """The client decrypts raw scores, which no band or decision can coarsen: a capped key is refused them."""
    _, token = KeyStore(served.data_dir).create("acme", ["recognize"], disclosure="bands")
    manifest = served.client.get("/v1/collections/staff/private", headers=served.admin).json()
    layout = encrypted.Layout(**manifest["layout"])
    probe = key.probe_message(np.ones(layout.dimension) / np.sqrt(layout.dimension), layout)
    refused = served.client.post(SCORES, params={"version": manifest["version"]}, content=probe, headers=bearer(token))
    assert refused.status_code == 403 and "capped at bands" in refused.json()["detail"]


def test_the_openapi_schema_declares_the_binary_probe_and_scores(served: Served) -> None:
    schema = served.client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/collections/{collection}/private/scores"]["post"]
    binary = {"type": "string", "format": "binary"}
    assert operation["requestBody"]["content"]["application/octet-stream"]["schema"] == binary
    assert operation["responses"]["200"]["content"]["application/octet-stream"]["schema"] == binary


@pytest.mark.slow
def test_private_identify_on_the_command_line_against_a_running_service(
    tmp_path: Path, hires_results: dict[str, ImageResult]
) -> None:
    store = KeyStore(tmp_path)
    _, token = store.create("acme", ["recognize"])
    enroll_first_photos(tmp_path, hires_results)
    key_file = tmp_path / "client.key"
    assert CliRunner().invoke(cli, ["private", "keygen", str(key_file)]).exit_code == 0
    photo = HIRES / max(path for path in hires_results if path.startswith("Rose_Leslie/"))
    with running_server(tmp_path) as url:
        command = ["private", "identify", str(photo), "--key", str(key_file), "--url", url, "--collection", "staff"]
        answer = CliRunner().invoke(cli, [*command, "--json"], env={"FACEPRINT_API_KEY": token})
        missing = CliRunner().invoke(
            cli, [*command[:-2], "--collection", "nobody", "--json"], env={"FACEPRINT_API_KEY": token}
        )
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output)["name"] == "Rose Leslie"
    assert missing.exit_code == 5 and "404" in missing.output
