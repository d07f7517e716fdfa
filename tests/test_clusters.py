"""Clusters of library faces: unknown faces grouped into people, and the user's decisions kept by every update."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import Gallery, GalleryError
from faceprint.cli import app
from faceprint.library import Clusters, clustering, scan

from .conftest import KIT, OBAMA


@pytest.fixture()
def gallery(scanned_library: Path, tmp_path: Path) -> Gallery:
    shutil.copy(scanned_library, tmp_path / "library.db")
    g = Gallery(tmp_path / "library.db")
    yield g
    g.close()


def people_of(clusters: Clusters) -> dict[int, list[str]]:
    """The folder (person) of each face of each listed cluster."""
    return {c.id: [Path(f.path).parent.name for f in clusters.faces(c.id)] for c in clusters.all_clusters()}


def cluster_of(clusters: Clusters, person: str) -> int:
    found = {cid for cid, people in people_of(clusters).items() if person in people}
    assert len(found) == 1, f"{person} in clusters {found}"
    return found.pop()


def test_update_groups_each_person_with_several_photos_and_never_mixes_people(gallery: Gallery) -> None:
    clusters = Clusters(gallery)
    summary = clusters.update()
    groups = people_of(clusters)
    assert all(len(set(people)) == 1 for people in groups.values()), groups
    for person in ("Barack_Obama", "Kit_Harington"):
        assert cluster_of(clusters, person) in groups
    assert summary.founded == sum(len(p) for p in groups.values()) and summary.recognised == 0
    assert summary.waiting_before == summary.founded + summary.waiting
    again = clusters.update()  # nothing new: nothing moves
    assert (again.joined, again.founded, again.new_clusters) == (0, 0, 0) and people_of(clusters) == groups


def test_new_photos_join_existing_clusters_without_the_others_moving(gallery: Gallery, tmp_path: Path) -> None:
    clusters = Clusters(gallery)
    clusters.update()
    before = people_of(clusters)
    more = tmp_path / "more"
    for photo in (KIT[0], OBAMA[0]):  # the same people again, under new names, in a folder of their own
        (more / photo.parent.name).mkdir(parents=True)
        shutil.copy(photo, more / photo.parent.name / f"again_{photo.name}")
    scan(gallery, more, workers=1)
    summary = clusters.update()
    assert summary.joined == 2 and summary.new_clusters == 0
    after = people_of(clusters)
    assert set(after) == set(before)
    for cluster_id, people in before.items():
        assert set(after[cluster_id]) == set(people)
    assert sum(map(len, after.values())) == sum(map(len, before.values())) + 2


def test_a_face_that_waited_pairs_with_a_new_face_like_it(gallery: Gallery, tmp_path: Path, people_dir: Path) -> None:
    clusters = Clusters(gallery)
    clusters.update()
    assert not any("Lin-Manuel_Miranda" in people for people in people_of(clusters).values())  # one photo: waits
    again = tmp_path / "again" / "Lin-Manuel_Miranda"
    again.mkdir(parents=True)
    shutil.copy(next((people_dir / "Lin-Manuel_Miranda").iterdir()), again / "lin_again.png")
    scan(gallery, tmp_path / "again", workers=1)
    summary = clusters.update()
    assert (summary.founded, summary.new_clusters) == (2, 1)
    assert len(clusters.faces(cluster_of(clusters, "Lin-Manuel_Miranda"))) == 2


def test_naming_enrolls_the_best_faces_and_new_photos_are_recognised(gallery: Gallery, tmp_path: Path) -> None:
    clusters = Clusters(gallery)
    clusters.update()
    kit = cluster_of(clusters, "Kit_Harington")
    named = clusters.name(kit, "Kit Harington")
    assert named.name == "Kit Harington" and named.person_id is not None
    assert gallery.person("Kit Harington").template_count == min(3, named.faces)
    assert [face.name for face in gallery.identify(KIT[1])] == ["Kit Harington"]
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(KIT[2], more / "kit_again.jpg")  # a photo already enrolled, under a new name
    scan(gallery, more, workers=1)
    summary = clusters.update()
    assert summary.recognised == 1
    assert any(f.path.endswith("kit_again.jpg") for f in clusters.faces(kit))


def test_merge_split_and_ignore_are_kept_by_later_updates(gallery: Gallery) -> None:
    clusters = Clusters(gallery)
    clusters.update()
    kit, obama = cluster_of(clusters, "Kit_Harington"), cluster_of(clusters, "Barack_Obama")
    merged = clusters.merge(kit, obama)
    assert merged.id == kit
    with pytest.raises(GalleryError, match="no cluster"):
        clusters.cluster(obama)
    obama_faces = [f.id for f in clusters.faces(kit) if "Obama" in f.path]
    split = clusters.split(kit, obama_faces)
    assert sorted(f.id for f in clusters.faces(split.id)) == sorted(obama_faces)
    with pytest.raises(GalleryError, match="not in cluster"):
        clusters.split(kit, obama_faces)
    ignored = clusters.ignore(split.id)
    assert ignored.ignored and split.id not in {c.id for c in clusters.all_clusters()}
    assert split.id in {c.id for c in clusters.all_clusters(ignored=True)}
    clusters.update()
    assert {Path(f.path).parent.name for f in clusters.faces(kit)} == {"Kit_Harington"}
    assert sorted(f.id for f in clusters.faces(split.id)) == sorted(obama_faces)


def test_split_off_faces_of_a_named_cluster_stop_being_its_templates(gallery: Gallery) -> None:
    clusters = Clusters(gallery)
    clusters.update()
    obama = cluster_of(clusters, "Barack_Obama")
    clusters.name(obama, "Barack Obama")
    enrolled = gallery.person("Barack Obama").template_count
    first = clusters.faces(obama)[0]
    clusters.split(obama, [first.id])
    assert gallery.person("Barack Obama").template_count == enrolled - 1


def test_whispers_keep_existing_labels_and_let_a_lone_face_wait() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 16))
    vectors = np.concatenate(
        [centres[0] + 0.01 * rng.normal(size=(4, 16)), centres[1] + 0.01 * rng.normal(size=(3, 16))]
    )
    vectors = np.concatenate([vectors, rng.normal(size=(1, 16))]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.array([7, 7, -1, -1, -1, -1, -1, -1])
    rows = np.arange(2, 8)
    graph = clustering.neighbours_above(vectors[rows], vectors, 0.9, exclude=rows)
    found = clustering.whispers(graph, labels, rows)
    assert list(found[:4]) == [7, 7, 7, 7]
    assert found[4] == found[5] == found[6] not in (7, -1)
    assert found[7] == clustering.WAITING


def test_clusters_commands_from_update_to_naming_with_a_contact_sheet(scanned_library: Path, tmp_path: Path) -> None:
    db = tmp_path / "library.db"
    shutil.copy(scanned_library, db)

    def run(*args: object, code: int = 0) -> str:
        result = CliRunner().invoke(app, ["clusters", *map(str, args), "--db", str(db)])
        assert result.exit_code == code, result.output
        return result.stdout  # messages (the contact sheet's path) go to stderr

    update = json.loads(run("update", "--json"))
    assert update["new_clusters"] >= 2
    listed = json.loads(run("list", "--json", "--html", tmp_path / "sheet.html"))
    sheet = (tmp_path / "sheet.html").read_text()
    assert sheet.count("<section>") == len(listed)
    assert sheet.count("data:image/jpeg;base64,") == sum(c["faces"] for c in listed)
    biggest = listed[0]
    shown = json.loads(run("show", biggest["id"], "--json"))
    assert len(shown["face_list"]) == biggest["faces"]
    person = Path(shown["face_list"][0]["path"]).parent.name
    assert json.loads(run("name", biggest["id"], person, "--json"))["name"] == person
    with Gallery(db) as gallery:
        photo = Path(shown["face_list"][-1]["path"])
        assert [face.name for face in gallery.identify(photo)] == [person]
    run("merge", biggest["id"], biggest["id"], code=5)
    run("split", biggest["id"], 999_999, code=5)
    run("show", 999_999, code=5)
    run("ignore", listed[-1]["id"])
    assert listed[-1]["id"] not in {c["id"] for c in json.loads(run("list", "--json"))}
