"""The Gallery API on Milvus, through a real Milvus Lite engine (one local file for the whole module)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import Gallery, GalleryError, PersonNotFoundError, Template
from faceprint.cli import app
from faceprint.gallery.milvus import MilvusIndex, MilvusStore
from faceprint.pipeline import ImageResult

from .conftest import ALEX, HIRES, KIT, MULTI, OBAMA, ROSE

pytest.importorskip("milvus_lite")


def rel(path: Path) -> str:
    return str(path.relative_to(HIRES))


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "gallery.milvus.db")


@pytest.fixture(scope="module")
def gallery(uri: str, hires_results: dict[str, ImageResult]) -> Gallery:
    g = Gallery(uri)
    for name, photos in (("Kit Harington", KIT[:2]), ("Rose Leslie", ROSE[:1]), ("Barack Obama", OBAMA[:1])):
        g.enroll_results(name, [hires_results[rel(p)] for p in photos], external_id=f"id-{name.split()[0]}")
    yield g
    g.close()


def names(gallery: Gallery, results: dict[str, ImageResult], photo: Path) -> list[str]:
    return [i.name for i in gallery.identify_faces(results[rel(photo)].faces)]


def test_the_store_is_milvus_and_searches_itself(gallery: Gallery) -> None:
    assert isinstance(gallery.store, MilvusStore) and isinstance(gallery.index, MilvusIndex)
    assert gallery.store.template_count(gallery.model_id) == 4


@pytest.mark.slow
def test_enroll_and_identify_like_sqlite(gallery: Gallery, hires_results: dict[str, ImageResult]) -> None:
    assert names(gallery, hires_results, KIT[2]) == ["Kit Harington"]
    assert names(gallery, hires_results, ROSE[1]) == ["Rose Leslie"]
    assert names(gallery, hires_results, ALEX[1]) == ["unknown"]
    assert sorted(names(gallery, hires_results, MULTI)) == ["Kit Harington", "Rose Leslie"]
    (answer,) = gallery.identify_faces(hires_results[rel(OBAMA[3])].faces, top_k=3)
    assert answer.candidates[0].name == "Barack Obama" and len(answer.candidates) == 3


@pytest.mark.slow
def test_people_metadata_and_duplicates(gallery: Gallery, hires_results: dict[str, ImageResult]) -> None:
    again = gallery.enroll_results("Kit Harington", [hires_results[rel(KIT[0])]])
    assert again.added == [] and again.duplicates == 1
    kit = gallery.person("id-Kit")
    assert kit.name == "Kit Harington" and kit.template_count == 2
    assert gallery.person(kit.id) == kit
    assert [t.source for t in gallery.templates("Kit Harington")] == [str(p) for p in KIT[:2]]
    assert {p.name for p in gallery.people()} == {"Kit Harington", "Rose Leslie", "Barack Obama"}
    with pytest.raises(GalleryError, match="already belongs"):
        gallery.enroll_results("Someone", [hires_results[rel(ALEX[0])]], external_id="id-Kit")
    with pytest.raises(PersonNotFoundError, match="Nobody"):
        gallery.person("Nobody")


def test_meta_for_calibration_and_generation(gallery: Gallery) -> None:
    before = gallery.store.generation()
    gallery.store.set_meta("note", json.dumps({"threshold": 0.93}))
    assert json.loads(gallery.store.meta("note")) == {"threshold": 0.93}
    assert gallery.store.meta("missing") is None
    assert gallery.store.generation() > before


@pytest.mark.slow
def test_rename_merge_and_deletes_propagate(uri: str, hires_results: dict[str, ImageResult]) -> None:
    with Gallery(uri) as g:
        g.enroll_results("Alex", [hires_results[rel(ALEX[0])]])
        g.enroll_results("Alex twin", [hires_results[rel(ALEX[2])]])
        assert names(g, hires_results, ALEX[1]) in (["Alex"], ["Alex twin"])
        merged = g.merge("Alex twin", "Alex")
        assert merged.template_count == 2 and names(g, hires_results, ALEX[1]) == ["Alex"]
        assert g.rename("Alex", "Alex Lacamoire").name == "Alex Lacamoire"
        assert names(g, hires_results, ALEX[1]) == ["Alex Lacamoire"]
        first, second = g.templates("Alex Lacamoire")
        g.remove_template(first.id)
        assert g.person("Alex Lacamoire").template_count == 1
        g.remove_person("Alex Lacamoire")
        assert names(g, hires_results, ALEX[1]) == ["unknown"]
        _, ids = g.search_templates(hires_results[rel(ALEX[1])].faces[0].template.vector, 10)
        assert second.id not in ids[0].tolist() and first.id not in ids[0].tolist()


@pytest.mark.slow
def test_reopened_gallery_keeps_everything(uri: str, gallery: Gallery, hires_results: dict[str, ImageResult]) -> None:
    with Gallery(f"milvus-lite://{uri}") as again:
        assert again.person("Rose Leslie").template_count == 1
        assert names(again, hires_results, ROSE[1]) == ["Rose Leslie"]


def test_other_models_are_refused(gallery: Gallery) -> None:
    with pytest.raises(Exception, match="model"):
        gallery.add_templates("X", [Template(np.ones(128, np.float32) / np.sqrt(128), "other-model")])


def test_cli_selects_milvus_by_uri(uri: str, gallery: Gallery, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["people", "list", "--db", uri, "--json"])
    assert listed.exit_code == 0, listed.output
    assert "Rose Leslie" in {p["name"] for p in json.loads(listed.stdout)}
    monkeypatch.setenv("FACEPRINT_DB", f"milvus-lite://{uri}")
    shown = runner.invoke(app, ["people", "show", "Rose Leslie", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["template_count"] == 1
    index = runner.invoke(app, ["index", "stats"])
    assert index.exit_code == 5 and "Milvus" in index.output


def test_bad_milvus_uris_are_clear_errors() -> None:
    with pytest.raises(GalleryError, match="needs a host"):
        Gallery("milvus:///nohost")
    with pytest.raises(GalleryError, match="collection name"):
        Gallery("milvus://localhost:19530/bad-name!")
