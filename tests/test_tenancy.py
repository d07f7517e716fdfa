"""The library pieces of the service: tenants' collections, API keys, the audit log, the strict quality filter,
and the gallery's verify against a person, template search and removing a person's templates."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from faceprint.apikeys import KeyStore, parse_scopes
from faceprint.audit import AUDIT_FILE, AuditLog
from faceprint.draw import thumbnail as draw_thumbnail
from faceprint.errors import (
    AccessError,
    CollectionNotFoundError,
    GalleryError,
    InvalidNameError,
    KeyRequiredError,
    ModelError,
)
from faceprint.gallery import Gallery
from faceprint.pipeline import ImageResult, process_files
from faceprint.protect import KEY_FILE_VARIABLE, write_key_file
from faceprint.quality import STRICT_THRESHOLDS, problems_for
from faceprint.tenancy import CollectionSettings, Tenancy, collection_settings, keep_thumbnail, thumbnail

from .conftest import KIT, ROSE


@pytest.fixture(scope="module")
def photos() -> dict[str, list[ImageResult]]:
    results = list(process_files([*KIT[:2], *ROSE[:2]], workers=1))
    return {"kit": results[:2], "rose": results[2:]}


# --- tenants and collections ---------------------------------------------------------------


def test_each_tenant_has_its_own_collections_in_its_own_folder(tmp_path: Path) -> None:
    tenancy = Tenancy(tmp_path)
    tenancy.create("acme", "staff", CollectionSettings(thumbnails=True)).close()
    tenancy.create("globex", "staff").close()
    assert tenancy.collections("acme") == ["staff"] == tenancy.collections("globex")
    assert tenancy.collection_dir("acme", "staff") != tenancy.collection_dir("globex", "staff")
    assert tenancy.collection_dir("acme", "staff").is_relative_to(tmp_path / "tenants" / "acme")
    with tenancy.open("acme", "staff") as gallery:
        assert collection_settings(gallery).thumbnails
    with tenancy.open("globex", "staff") as gallery:
        assert not collection_settings(gallery).thumbnails
    assert tenancy.collections("initech") == []
    with pytest.raises(CollectionNotFoundError):
        tenancy.open("initech", "staff")


@pytest.mark.parametrize("name", ["..", "../acme", "a/b", "a\\b", "", "A", "x" * 65, "a\x00b", ".hidden", "-x"])
def test_names_that_could_leave_the_tenants_folder_are_refused(tmp_path: Path, name: str) -> None:
    tenancy = Tenancy(tmp_path)
    with pytest.raises(InvalidNameError):
        tenancy.create("acme", name)
    with pytest.raises(InvalidNameError):
        tenancy.create(name, "staff")
    assert not any(tmp_path.rglob("*.db"))


def test_a_collection_is_created_once_and_deleted_with_all_its_files(tmp_path: Path) -> None:
    tenancy = Tenancy(tmp_path)
    tenancy.create("acme", "staff").close()
    with pytest.raises(GalleryError, match="already exists"):
        tenancy.create("acme", "staff")
    tenancy.delete("acme", "staff")
    assert tenancy.collections("acme") == [] and not any(tenancy.tenant_dir("acme").iterdir())
    with pytest.raises(CollectionNotFoundError):
        tenancy.delete("acme", "staff")


# --- API keys ------------------------------------------------------------------------------


def test_a_key_is_shown_once_stored_as_a_salted_hash_and_checked(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    key, token = keys.create("acme", ["read", "recognize"])
    assert key.scopes == ("recognize", "read") and key.tenant == "acme"
    assert keys.authenticate(token) == key
    secret = token.split("_", 2)[2]  # fpk_<id>_<secret>: the id is hex, the secret may hold "_" itself
    stored = (tmp_path / "keys.db").read_bytes()
    assert secret.encode() not in stored and token.encode() not in stored
    other, other_token = keys.create("acme", ["read"])
    row = sqlite3.connect(tmp_path / "keys.db").execute("SELECT salt FROM api_key").fetchall()
    assert row[0] != row[1]  # a salt per key
    for wrong in [token[:-1] + ("A" if token[-1] != "A" else "B"), "", "fpk", f"fpk_{key.id}_", "x" + token]:
        with pytest.raises(AccessError):
            keys.authenticate(wrong)
    assert keys.authenticate(other_token).id == other.id


def test_revocation_and_expiry_take_effect_at_the_next_check_in_every_process(tmp_path: Path) -> None:
    keys, elsewhere = KeyStore(tmp_path), KeyStore(tmp_path)  # another server process
    key, token = keys.create("acme", ["admin"])
    assert elsewhere.authenticate(token).id == key.id
    keys.revoke(key.id)
    with pytest.raises(AccessError):
        elsewhere.authenticate(token)
    assert keys.list("acme")[0].revoked_at is not None
    soon = datetime.now(timezone.utc) + timedelta(milliseconds=200)
    _, expiring = keys.create("acme", ["read"], expires_at=soon)
    assert keys.authenticate(expiring)
    while datetime.now(timezone.utc) <= soon:
        pass
    with pytest.raises(AccessError):
        keys.authenticate(expiring)


def test_keys_are_refused_bad_scopes_tenants_and_naive_expiries(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    with pytest.raises(ValueError, match="scopes must be among"):
        keys.create("acme", ["read", "delete"])
    with pytest.raises(ValueError):
        parse_scopes([])
    with pytest.raises(InvalidNameError):
        keys.create("../acme", ["read"])
    with pytest.raises(ValueError, match="time zone"):
        keys.create("acme", ["read"], expires_at=datetime(2030, 1, 1))
    with pytest.raises(AccessError):
        keys.revoke("nope")
    with pytest.raises(ValueError, match="disclosure"):
        keys.create("acme", ["recognize"], disclosure="everything")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget"):
        keys.create("acme", ["recognize"], budget=0)
    assert keys.list() == []


def test_a_key_store_from_before_disclosure_caps_and_budgets_still_opens(tmp_path: Path) -> None:
    key, token = KeyStore(tmp_path).create("acme", ["recognize"], disclosure="bands", budget=5)
    assert (key.disclosure, key.budget) == ("bands", 5)
    with sqlite3.connect(tmp_path / "keys.db") as old:  # the table as the first key stores had it
        old.execute("ALTER TABLE api_key DROP COLUMN disclosure")
        old.execute("ALTER TABLE api_key DROP COLUMN budget")
    reopened = KeyStore(tmp_path).authenticate(token)
    assert (reopened.id, reopened.disclosure, reopened.budget) == (key.id, "scores", None)


# --- the audit log ---------------------------------------------------------------------------


def test_the_audit_log_keeps_who_what_and_how_many_per_tenant(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.record(key_id="k1", tenant="acme", action="faces.add", collection="staff", person="7", counts={"added": 2})
    log.record(key_id="k2", tenant="globex", action="recognize", collection="staff", counts={"faces": 3})
    (entry,) = log.entries("acme")
    assert (entry.key_id, entry.action, entry.collection, entry.person, entry.counts) == (
        "k1",
        "faces.add",
        "staff",
        "7",
        {"added": 2},
    )
    assert [e.tenant for e in log.entries("globex")] == ["globex"]
    assert (tmp_path / AUDIT_FILE).is_file()


def test_recording_an_audit_row_waits_neither_for_the_disk_nor_for_other_writers(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    other_process = sqlite3.connect(tmp_path / AUDIT_FILE, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")  # holds the database's write lock
    started = time.perf_counter()
    for faces in range(20):
        log.record(key_id="k1", tenant="acme", action="recognize", collection="staff", counts={"faces": faces})
    assert time.perf_counter() - started < 5  # written in the request's thread, each would wait for the lock (30 s)
    other_process.execute("COMMIT")
    assert [entry.counts["faces"] for entry in log.entries("acme")] == list(range(19, -1, -1))
    log.close()


def test_a_process_that_exits_writes_the_audit_rows_it_recorded(tmp_path: Path) -> None:
    script = (
        "import sys; from faceprint.audit import AuditLog; log = AuditLog(sys.argv[1])\n"
        "for i in range(200): log.record(key_id='k1', tenant='acme', action='recognize', counts={'faces': i})"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    assert len(AuditLog(tmp_path).entries("acme", limit=500)) == 200


# --- the strict quality filter ---------------------------------------------------------------


def test_strict_is_stricter_than_auto_on_every_measure(photos: dict[str, list[ImageResult]]) -> None:
    quality = photos["kit"][0].faces[0].quality
    assert problems_for(quality, "auto") == () and problems_for(quality, "strict") == ()
    small = dataclasses.replace(quality, face_size=STRICT_THRESHOLDS.min_face_size - 1)
    turned = dataclasses.replace(quality, yaw=STRICT_THRESHOLDS.max_abs_yaw + 1)
    assert problems_for(small, "strict") and problems_for(turned, "strict")
    assert problems_for(small, "auto") == () and problems_for(turned, "none") == ()


def test_enrollment_refuses_by_the_strict_filter(tmp_path: Path, photos: dict[str, list[ImageResult]]) -> None:
    frontal, turned = photos["kit"]  # Kit_Harington_0002 turns his head by about 43 degrees
    with Gallery(tmp_path / "g.db") as gallery:
        strict = gallery.enroll_results("Kit", [frontal, turned], quality_filter="strict")
        assert len(strict.added) == 1 and "head turned too far" in str(strict.rejected[0][1])
        assert strict.rejected[0][0] == turned.source
        assert len(gallery.enroll_results("Kit", [turned], quality_filter="auto").added) == 1


# --- gallery: verify against a person, template search, removing templates --------------------


def test_verify_template_search_and_remove_templates(tmp_path: Path, photos: dict[str, list[ImageResult]]) -> None:
    with Gallery(tmp_path / "g.db") as gallery:
        gallery.enroll_results("Kit", photos["kit"][:1])
        gallery.enroll_results("Rose", photos["rose"][:1])
        kit_probe, rose_probe = photos["kit"][1].faces[0], photos["rose"][1].faces[0]
        assert gallery.verify(kit_probe, "Kit").match and not gallery.verify(rose_probe, "Kit").match
        assert gallery.verify(kit_probe, "Kit").fmr == gallery.operating_point().fmr
        vectors = [face.template.vector * 3 for face in (kit_probe, rose_probe) if face.template]
        answers = gallery.identify_templates(np.stack(vectors))
        faces = gallery.identify_faces([kit_probe, rose_probe])
        assert [a.name for a in answers] == ["Kit", "Rose"] == [f.name for f in faces]
        assert answers[0].fpir == faces[0].fpir and answers[0].threshold == faces[0].threshold
        with pytest.raises(ModelError, match="numbers"):
            gallery.identify_templates(np.zeros((1, 7)))
        with pytest.raises(ValueError, match="finite"):
            gallery.identify_templates(np.full((1, vectors[0].size), np.nan))
        removed = gallery.remove_templates("Kit")
        assert len(removed) == 1 and gallery.person("Kit").template_count == 0
        assert gallery.identify_templates(np.stack(vectors))[0].name == "unknown"


# --- the CLI: faceprint apikeys ------------------------------------------------------------------


def test_apikeys_create_list_revoke_on_the_command_line(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from faceprint.cli import app

    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    made = runner.invoke(app, ["apikeys", "create", "--tenant", "acme", "--scope", "read,enroll", "--json", *data])
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    assert KeyStore(tmp_path).authenticate(created["key"]).scopes == ("enroll", "read")
    capped = ["--disclose", "decisions", "--budget", "100", "--json", "--data-dir", str(tmp_path / "capped")]
    made = runner.invoke(app, ["apikeys", "create", "--tenant", "acme", "--scope", "recognize", *capped])
    assert made.exit_code == 0, made.output
    assert (json.loads(made.output)["disclosure"], json.loads(made.output)["budget"]) == ("decisions", 100)
    expiring = runner.invoke(
        app, ["apikeys", "create", "--tenant", "acme", "--scope", "read", "--expires", "2030-01-01", *data]
    )
    assert expiring.exit_code == 0 and expiring.output.startswith("fpk_")
    listed = json.loads(runner.invoke(app, ["apikeys", "list", "--json", *data]).output)
    assert [k["expires_at"] for k in listed] == [None, "2030-01-01T00:00:00.000000+00:00"]
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    revoked = runner.invoke(app, ["apikeys", "revoke", created["id"], *data])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    with pytest.raises(AccessError):
        KeyStore(tmp_path).authenticate(created["key"])
    assert runner.invoke(app, ["apikeys", "revoke", "nope", *data]).exit_code == 2
    assert runner.invoke(app, ["apikeys", "create", "--tenant", "acme", "--scope", "all", *data]).exit_code == 2
    assert runner.invoke(app, ["apikeys", "create", "--tenant", "../x", "--scope", "read", *data]).exit_code == 2


# --- a person's face thumbnail: in the gallery, sealed with it, erased with the person ------------------------------


def clear_pieces(jpeg: bytes) -> list[bytes]:
    """32-byte pieces of the JPEG's entropy-coded second half (a row this size may be split across pages)."""
    body = jpeg[len(jpeg) // 2 : -16]
    return [body[i : i + 32] for i in range(0, len(body) - 31, 32)]


def files_holding(folder: Path, pieces: list[bytes]) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and any(x in p.read_bytes() for x in pieces))


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_thumbnail_is_sealed_like_the_vectors_and_erased_with_its_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photos: dict[str, list[ImageResult]], encrypted: bool
) -> None:
    if encrypted:
        monkeypatch.setenv(KEY_FILE_VARIABLE, str(write_key_file(tmp_path / "master.key")))
    tenancy = Tenancy(tmp_path / "data")
    folder = tenancy.collection_dir("acme", "album")
    jpeg = draw_thumbnail(KIT[0], photos["kit"][0].faces[0].box)
    with tenancy.create("acme", "album", CollectionSettings(thumbnails=True)) as gallery:
        gallery.enroll_results("Kit", photos["kit"])
        kit = gallery.person("Kit").id
        assert keep_thumbnail(gallery, kit, jpeg) and not keep_thumbnail(gallery, kit, b"another")  # kept once
        assert thumbnail(gallery, kit) == jpeg
        assert bool(files_holding(folder, clear_pieces(jpeg))) is not encrypted
    if encrypted:
        monkeypatch.delenv(KEY_FILE_VARIABLE)
        with pytest.raises(KeyRequiredError):
            tenancy.open("acme", "album")
        monkeypatch.setenv(KEY_FILE_VARIABLE, str(tmp_path / "master.key"))
    with tenancy.open("acme", "album") as gallery:
        assert thumbnail(gallery, kit) == jpeg
        gallery.remove_person(kit)
        assert thumbnail(gallery, kit) is None
        assert files_holding(folder, clear_pieces(jpeg)) == []


def test_thumbnail_files_of_an_older_collection_move_into_its_gallery(
    tmp_path: Path, photos: dict[str, list[ImageResult]]
) -> None:
    tenancy = Tenancy(tmp_path)
    with tenancy.create("acme", "album", CollectionSettings(thumbnails=True)) as gallery:
        gallery.enroll_results("Kit", photos["kit"])
        kit = gallery.person("Kit").id
    files = tenancy.collection_dir("acme", "album") / "thumbnails"
    files.mkdir()
    jpeg = draw_thumbnail(KIT[0], photos["kit"][0].faces[0].box)
    (files / f"{kit}.jpg").write_bytes(jpeg)
    (files / f"{kit + 1}.jpg").write_bytes(jpeg)  # a person removed since
    with tenancy.open("acme", "album") as gallery:
        assert thumbnail(gallery, kit) == jpeg and thumbnail(gallery, kit + 1) is None
    assert not files.exists()
