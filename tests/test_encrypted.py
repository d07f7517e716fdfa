"""Identification in the encrypted domain (faceprint.encrypted): scores computed on ciphertexts equal plaintext ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint.cli import app
from faceprint.encrypted import (
    ClientKey,
    EncryptedRows,
    Layout,
    PlainRows,
    Scorer,
    ciphertexts_from_bytes,
    ciphertexts_to_bytes,
    decide,
)
from faceprint.errors import KeyRequiredError, ModelError, PersonNotFoundError
from faceprint.gallery import Gallery
from faceprint.models import EMBEDDING_MODELS
from faceprint.types import Template

runner = CliRunner()


@pytest.fixture(scope="module")
def key() -> ClientKey:
    return ClientKey.generate()


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer()


def unit_rows(count: int, dimension: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, dimension))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize(("rows", "dimension"), [(10, 128), (700, 256), (3000, 96)])
def test_the_layout_puts_every_coordinate_of_every_row_once_and_folds_back_to_inner_products(
    rows: int, dimension: int
) -> None:
    layout = Layout.for_rows(rows, dimension)
    gallery, probe = unit_rows(rows, dimension, 1), unit_rows(1, dimension, 2)[0]
    length = layout.segment_length
    blocks = [layout.block_values(gallery[s : s + length]) for s in range(0, rows, length)]
    products = [sum(p * b for p, b in zip(layout.probe_values(probe), block)) for block in blocks]
    np.testing.assert_allclose(layout.fold(products), gallery @ probe, atol=1e-12)
    assert layout.blocks == len(blocks) and layout.segments * length == layout.slots


def test_mode_plain_scores_an_encrypted_probe_like_the_gallery_and_decides_with_its_point(
    tmp_path: Path, key: ClientKey, scorer: Scorer
) -> None:
    with Gallery(tmp_path / "g.db") as gallery:
        dimension = EMBEDDING_MODELS[gallery.model_id].dimension
        vectors = unit_rows(60, dimension, 3)
        for n in range(0, 60, 3):
            gallery.add_templates(
                f"person {n}", [Template(v.astype(np.float32), gallery.model_id) for v in vectors[n : n + 3]]
            )
        rows = PlainRows.of_gallery(scorer, gallery)
        probe = vectors[6]
        # The probe crosses the wire as bytes, and so do the scores.
        message = key.probe_message(probe, rows.layout)
        assert len(message) < 0.6 * len(ciphertexts_to_bytes(key.encrypt_probe(probe, rows.layout)))  # seeded
        sent = ciphertexts_from_bytes(scorer.context, message)
        scores = key.decrypt_scores(
            ciphertexts_from_bytes(key.context, ciphertexts_to_bytes(scorer.score(sent, rows.blocks, False))),
            rows.layout,
        )
        _, _, centroids = gallery.person_centroids()
        np.testing.assert_allclose(scores, centroids @ probe, atol=1e-4)
        point = gallery.identification_point()
        answer = decide(scores, rows.labels, point)
        plain = gallery.rank_people(probe[None].astype(np.float32), 5)[0]
    assert [c.person_id for c in answer.candidates] == [p for p, _ in plain.people]
    assert answer.candidates[0].name == "person 6"
    assert answer.candidates[0].offset == pytest.approx(point.offset(plain.cohort), abs=1e-4)
    assert answer.decision == point.decide(answer.candidates[0].score)


def test_mode_encrypted_scores_rows_the_server_cannot_read_across_blocks(key: ClientKey, scorer: Scorer) -> None:
    dimension = 64
    rows = EncryptedRows.empty("some-model", dimension, rows_per_block=256)
    vectors = unit_rows(600, dimension, 4)
    added = 0
    while added < len(vectors):
        count = min(rows.room, 250, len(vectors) - added)  # several messages per block, blocks filled across
        chunk = vectors[added : added + count]
        rows.add(scorer, [f"p{added + i}" for i in range(count)], key.encrypt_rows(chunk, rows.layout, rows.next_slot))
        added += count
    assert rows.layout.blocks == 3
    probe = unit_rows(1, dimension, 5)[0]
    scores = key.decrypt_scores(scorer.score(key.encrypt_probe(probe, rows.layout), rows.blocks, True), rows.layout)
    np.testing.assert_allclose(scores, vectors @ probe, atol=1e-4)


def test_an_encrypted_gallery_and_a_key_survive_a_round_trip_through_files(
    tmp_path: Path, key: ClientKey, scorer: Scorer
) -> None:
    rows = EncryptedRows.empty("some-model", 32)
    vectors = unit_rows(5, 32, 6)
    rows.add(scorer, ["a", "b", "c", "d", "e"], key.encrypt_rows(vectors, rows.layout, 0))
    rows.save(tmp_path / "rows.fpe")
    key.save(tmp_path / "client.key")
    assert (tmp_path / "client.key").stat().st_mode & 0o777 == 0o600
    loaded, reloaded = ClientKey.load(tmp_path / "client.key"), EncryptedRows.load(tmp_path / "rows.fpe", scorer)
    assert [name for _, name in reloaded.labels] == ["a", "b", "c", "d", "e"]
    scores = loaded.decrypt_scores(
        scorer.score(loaded.encrypt_probe(vectors[2], reloaded.layout), reloaded.blocks, True), reloaded.layout
    )
    assert int(np.argmax(scores)) == 2
    other = ClientKey.generate()
    wrong = other.decrypt_scores(
        scorer.score(other.encrypt_probe(vectors[2], reloaded.layout), reloaded.blocks, True), reloaded.layout
    )
    assert np.abs(wrong - vectors @ vectors[2]).max() > 1  # another key decrypts noise


def test_bad_keys_and_probes_are_refused(tmp_path: Path, key: ClientKey) -> None:
    (tmp_path / "junk.key").write_bytes(b"junk")
    with pytest.raises(KeyRequiredError, match=r"junk\.key"):
        ClientKey.load(tmp_path / "junk.key")
    with pytest.raises(ModelError, match="64-d probe"):
        key.encrypt_probe(np.zeros(64), Layout.for_rows(10, 128))


HIRES = Path(__file__).parent / "data" / "faces-hires"


def test_private_keygen_enroll_identify_on_the_command_line(tmp_path: Path) -> None:
    key, rows = tmp_path / "client.key", tmp_path / "rows.fpe"
    kit, rose = sorted((HIRES / "Kit_Harington").glob("*.jpg")), sorted((HIRES / "Rose_Leslie").glob("*.jpg"))
    assert runner.invoke(app, ["private", "keygen", str(key)]).exit_code == 0
    for name, photos in (("Kit Harington", kit[:2]), ("Rose Leslie", rose[:1])):
        enrolled = runner.invoke(
            app, ["private", "enroll", name, *map(str, photos), "--key", str(key), "--encrypted-gallery", str(rows)]
        )
        assert enrolled.exit_code == 0, enrolled.output
    found = runner.invoke(
        app, ["private", "identify", str(rose[1]), "--key", str(key), "--encrypted-gallery", str(rows), "--json"]
    )
    assert found.exit_code == 0, found.output
    answer = json.loads(found.stdout)
    assert [c["name"] for c in answer["candidates"]] == ["Rose Leslie", "Kit Harington"]
    assert answer["decision"] in ("match", "uncertain")  # decided at the shipped calibration's point for 2 rows

    with Gallery(tmp_path / "g.db") as gallery:
        gallery.enroll("Kit Harington", kit[:2])
        gallery.enroll("Rose Leslie", rose[:1])
        plain = gallery.identify(kit[2])[0]
    found = runner.invoke(
        app, ["private", "identify", str(kit[2]), "--key", str(key), "--db", str(tmp_path / "g.db"), "--json"]
    )
    answer = json.loads(found.stdout)
    assert answer["name"] == plain.name and answer["decision"] == plain.decision
    assert abs(answer["candidates"][0]["similarity"] - plain.candidates[0].similarity) < 1e-4
    removed = runner.invoke(
        app, ["private", "remove", "Rose Leslie", "--key", str(key), "--encrypted-gallery", str(rows)]
    )
    assert removed.exit_code == 0, removed.output
    gone = runner.invoke(app, ["private", "remove", "Rose Leslie", "--key", str(key), "--encrypted-gallery", str(rows)])
    assert gone.exit_code == 5
    with pytest.raises(KeyRequiredError):
        ClientKey.load(rows)  # a gallery is no key


def test_removing_a_row_from_an_encrypted_gallery_re_encrypts_its_block(tmp_path: Path, key: ClientKey) -> None:
    from faceprint.encrypted import PrivateGallery, enroll_privately, identify_privately, remove_privately
    from faceprint.pipeline import DEFAULT_OPTIONS

    path, model = tmp_path / "rows.fpe", DEFAULT_OPTIONS.model
    EncryptedRows.empty(model.model_id, model.dimension, rows_per_block=16).save(path)
    vectors = unit_rows(20, model.dimension, 7).astype(np.float32)
    for n, vector in enumerate(vectors):
        enroll_privately(key, path, f"p{n}", [Template(vector, model.model_id)])
    before = path.read_bytes()
    rows = remove_privately(key, path, "p1")  # in the first block; the last row (p19, second block) moves there
    order = [0, 19, *range(2, 19)]
    assert [name for _, name in rows.labels] == [f"p{n}" for n in order] and len(rows.blocks) == 2
    scorer = Scorer(key.parameters)
    server = PrivateGallery.of_file(path, scorer=scorer)
    for n in (0, 2, 17, 19):
        assert identify_privately(key, vectors[n], server).candidates[0].name == f"p{n}"
    probe = key.encrypt_probe(vectors[1], server.layout)
    scores = key.decrypt_scores(scorer.score(probe, server.rows.blocks, True), server.layout)
    np.testing.assert_allclose(scores, vectors[order] @ vectors[1], atol=1e-4)
    after = path.read_bytes()
    # One ciphertext per block here (~64 KB each, the file's last two): neither touched block's old bytes remain.
    assert before[-100_000:-96_000] not in after and before[-20_000:-16_000] not in after
    with pytest.raises(PersonNotFoundError):
        remove_privately(key, path, "p1")
