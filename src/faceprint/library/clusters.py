"""Clusters of library faces: candidate people that the owner names, merges, splits or ignores.

``update`` first recognises the waiting faces of enrolled people (the open-set rule of ``Gallery``
identification at its FPIR: ``identification_point``), putting each in its person's cluster, then clusters
the others by Chinese whispers (``faceprint.library.clustering``), incrementally: faces already in a
cluster stay there and new ones join them or found new clusters. Faces below the quality gate (tiny, blurred,
turned) wait. The user's decisions are stored and bind every later update: names (the cluster's best faces
enrolled as that person), merges and splits (the faces moved are pinned, and a face split off a cluster
never joins it again), ignored clusters (kept, so their faces do not come back as new clusters).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..errors import GalleryError
from ..gallery import Gallery
from ..gallery.names import normalize_name
from ..gallery.records import NewTemplate
from ..match import check_same_model, operating_point
from ..progress import OnProgress
from . import clustering
from .catalog import Catalog

#: Two faces are linked when they would match at this false-match rate (bench/clustering.py: BCubed
#: precision 1.0 on faces-dev, with and without 100,000 distractors).
CLUSTER_FMR = 1e-5
#: Faces of a cluster enrolled when it is named: its best by quality.
NAMED_FACES = 5

#: A face passes the quality gate when its quality report lists no problem.
_ACCEPTABLE = "json_array_length(f.quality_report, '$.problems') = 0"


@dataclass(frozen=True)
class Cluster:
    """A candidate person: ``name`` once named (an enrolled person), ``ignored`` when set aside."""

    id: int
    name: str | None
    person_id: int | None
    ignored: bool
    faces: int
    #: The cluster's best face by quality (its cover).
    cover_face: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LibraryFace:
    """A face of the library: where it is (photo and box; for a video, also the keyframe's frame number and
    time in seconds), how good, in which cluster."""

    id: int
    path: str
    face_index: int
    box: list[float]
    quality: float
    cluster_id: int | None
    pinned: bool
    frame_index: int | None = None
    frame_time: float | None = None

    @property
    def source(self) -> str:
        return face_source(self.path, self.frame_time)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "source": self.source}


@dataclass(frozen=True)
class ClusterUpdate:
    """What an update did with the waiting faces."""

    waiting_before: int
    recognised: int
    joined: int
    founded: int
    new_clusters: int
    waiting: int
    below_quality: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Faces:
    """Every face of the library (of the gallery's model) as arrays, in id order."""

    ids: np.ndarray
    vectors: np.ndarray
    #: Cluster id, or ``clustering.WAITING``.
    labels: np.ndarray
    #: Passes the quality gate.
    acceptable: np.ndarray
    #: Has been through an update.
    considered: np.ndarray


class Clusters:
    """The clusters of a gallery's photo library (see the module docstring)."""

    def __init__(self, gallery: Gallery, *, fmr: float = CLUSTER_FMR) -> None:
        self.gallery = gallery
        self.catalog = Catalog(gallery)
        self.store = self.catalog.store
        self.threshold = operating_point(gallery.model_id, fmr=fmr).threshold

    # --- update ---------------------------------------------------------------------------

    def update(self, *, on_progress: OnProgress | None = None) -> ClusterUpdate:
        started = time.perf_counter()
        faces = self._faces()
        waiting = np.flatnonzero((faces.labels == clustering.WAITING) & faces.acceptable)
        if on_progress:
            on_progress("clustering faces", 0, 3)
        labels = faces.labels.copy()
        recognised = self._recognise(faces.ids, faces.vectors, labels, waiting)
        if on_progress:
            on_progress("clustering faces", 1, 3)
        still = waiting[labels[waiting] == clustering.WAITING]
        graph = self._links(faces, still)
        labels = clustering.whispers(graph, labels, still)
        labels = self._respect_rejections(faces.ids, labels, still)
        if on_progress:
            on_progress("clustering faces", 2, 3)
        existing = {int(x) for x in faces.labels}
        new_labels = sorted({int(x) for x in labels[still]} - existing - {clustering.WAITING})
        self._store_labels(faces.ids, labels, still, new_labels, faces.ids[~faces.considered])
        if on_progress:
            on_progress("clustering faces", 3, 3)
        placed = still[labels[still] != clustering.WAITING]
        founded = int(np.isin(labels[placed], new_labels).sum())
        return ClusterUpdate(
            waiting_before=len(waiting),
            recognised=recognised,
            joined=len(placed) - founded,
            founded=founded,
            new_clusters=len(new_labels),
            waiting=int(((labels == clustering.WAITING) & faces.acceptable).sum()),
            below_quality=int((~faces.acceptable).sum()),
            seconds=time.perf_counter() - started,
        )

    def _links(self, faces: _Faces, still: np.ndarray) -> clustering.Graph:
        """The links of the waiting faces at ``still`` (positions in ``faces``): a new face's to every face
        passing the quality gate; a face that waited through an earlier update had no link enough to the
        faces before it, so its links are the new faces' links to it (``clustering.whispers`` adds them)."""
        gated = np.flatnonzero(faces.acceptable)
        new = still[~faces.considered[still]]
        found = clustering.neighbours_above(
            faces.vectors[new], faces.vectors[gated], self.threshold, exclude=np.searchsorted(gated, new)
        )
        ids = np.full((len(still), clustering.NEIGHBOURS), -1, dtype=np.int64)
        scores = np.zeros((len(still), clustering.NEIGHBOURS), dtype=np.float32)
        rows = np.searchsorted(still, new)
        ids[rows] = np.where(found.ids >= 0, gated[np.maximum(found.ids, 0)], -1)
        scores[rows] = found.scores
        return clustering.Graph(ids, scores)

    def _faces(self) -> _Faces:
        """Every face of the gallery's model, in id order."""
        rows = self.store.query(
            f"SELECT f.id, f.model_id, f.vector, coalesce(f.cluster_id, -1), {_ACCEPTABLE}, f.considered FROM face f"
            " WHERE f.model_id = ? ORDER BY f.id",
            (self.gallery.model_id,),
        )
        return _Faces(
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            vectors=self.store.face_vectors(rows, self.gallery.options.model.dimension),
            labels=np.array([r[3] for r in rows], dtype=np.int64),
            acceptable=np.array([bool(r[4]) for r in rows], dtype=bool),
            considered=np.array([bool(r[5]) for r in rows], dtype=bool),
        )

    def _recognise(self, ids: np.ndarray, vectors: np.ndarray, labels: np.ndarray, waiting: np.ndarray) -> int:
        """Waiting faces of enrolled people go to their person's cluster (``labels`` updated and stored)."""
        if not len(waiting) or not self.gallery.template_count():
            return 0
        point = self.gallery.identification_point()
        if point.threshold is None:
            return 0
        best = self.gallery.rank_people(vectors[waiting], 1, decided_by=point)  # a "no" confirmed
        matched = [
            (int(face), ranking.people[0][0])
            for face, ranking in zip(waiting, best)
            if ranking.people and ranking.people[0][1] + point.offset(ranking.cohort) >= point.threshold
        ]
        rejected = self._rejections(ids[[face for face, _ in matched]])
        with self.store.transaction() as db:
            count = 0
            for face, person in matched:
                cluster = _cluster_of_person(db, person)
                if cluster in rejected.get(int(ids[face]), ()):
                    continue
                db.execute("UPDATE face SET cluster_id = ? WHERE id = ?", (cluster, int(ids[face])))
                labels[face] = cluster
                count += 1
        return count

    def _rejections(self, face_ids: np.ndarray) -> dict[int, set[int]]:
        found: dict[int, set[int]] = {}
        for start in range(0, len(face_ids), 10_000):
            part = [int(i) for i in face_ids[start : start + 10_000]]
            rows = self.store.query(
                f"SELECT face_id, cluster_id FROM face_rejection WHERE face_id IN ({','.join('?' * len(part))})", part
            )
            for face, cluster in rows:
                found.setdefault(int(face), set()).add(int(cluster))
        return found

    def _respect_rejections(self, ids: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """A face the user split off a cluster does not join it again: it waits instead."""
        rejected = self._rejections(ids[rows])
        for row in rows:
            if int(labels[row]) in rejected.get(int(ids[row]), ()):
                labels[row] = clustering.WAITING
        return labels

    def _store_labels(
        self, ids: np.ndarray, labels: np.ndarray, rows: np.ndarray, new_labels: list[int], newly_considered: np.ndarray
    ) -> None:
        with self.store.transaction() as db:
            created = {label: _new_cluster(db) for label in new_labels}
            placed = [
                (created.get(int(labels[row]), int(labels[row])), int(ids[row]))
                for row in rows
                if labels[row] != clustering.WAITING
            ]
            db.executemany("UPDATE face SET cluster_id = ? WHERE id = ?", placed)
            db.executemany("UPDATE face SET considered = 1 WHERE id = ?", [(int(i),) for i in newly_considered])

    # --- reading --------------------------------------------------------------------------

    _CLUSTER_SQL = """
        SELECT c.id, p.name, c.person_id, c.ignored, count(f.id),
               (SELECT id FROM face WHERE cluster_id = c.id ORDER BY quality DESC, id LIMIT 1)
        FROM face_cluster c LEFT JOIN person p ON p.id = c.person_id LEFT JOIN face f ON f.cluster_id = c.id
    """

    def all_clusters(self, *, ignored: bool = False) -> list[Cluster]:
        """Every cluster with faces, largest first (ignored ones only with ``ignored``)."""
        rows = self.store.query(
            self._CLUSTER_SQL
            + " WHERE c.ignored <= ? GROUP BY c.id HAVING count(f.id) > 0 ORDER BY count(f.id) DESC, c.id",
            (int(ignored),),
        )
        return [_cluster(row) for row in rows]

    def cluster(self, cluster_id: int) -> Cluster:
        rows = self.store.query(self._CLUSTER_SQL + " WHERE c.id = ? GROUP BY c.id", (cluster_id,))
        if not rows:
            raise GalleryError(f"{self.store.path}: no cluster {cluster_id}")
        return _cluster(rows[0])

    def faces(self, cluster_id: int) -> list[LibraryFace]:
        """The faces of a cluster, best first."""
        self.cluster(cluster_id)
        rows = self.store.query(
            "SELECT f.id, p.path, f.face_index, f.box, f.quality, f.cluster_id, f.pinned, f.frame_index, f.frame_time"
            " FROM face f JOIN photo p ON p.id = f.photo_id WHERE f.cluster_id = ? ORDER BY f.quality DESC, f.id",
            (cluster_id,),
        )
        return [LibraryFace(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], bool(r[6]), r[7], r[8]) for r in rows]

    def thumbnails(self, face_ids: Sequence[int]) -> dict[int, bytes]:
        """The JPEG thumbnail of each face that has one."""
        found: dict[int, bytes] = {}
        for start in range(0, len(face_ids), 10_000):
            part = [int(i) for i in face_ids[start : start + 10_000]]
            sql = (
                "SELECT id, model_id, thumbnail FROM face"
                f" WHERE thumbnail IS NOT NULL AND id IN ({','.join('?' * len(part))})"
            )
            found.update((int(i), self.store.face_thumbnail(i, m, t)) for i, m, t in self.store.query(sql, part))
        return found

    # --- the user's decisions ------------------------------------------------------------

    def name(self, cluster_id: int, name: str, *, best: int = NAMED_FACES) -> Cluster:
        """Name a cluster: its ``best`` faces (passing the quality gate, by quality) are enrolled as ``name``
        (added to that person if they exist), so identification and later updates recognise them."""
        name = normalize_name(name)
        faces = self.store.query(
            "SELECT f.id, f.model_id, f.vector, p.sha256, p.path, f.box, f.quality, f.quality_report, f.frame_time"
            " FROM face f"
            f" JOIN photo p ON p.id = f.photo_id WHERE f.cluster_id = ? AND {_ACCEPTABLE}"
            " ORDER BY f.quality DESC, f.id LIMIT ?",
            (self.cluster(cluster_id).id, best),
        )
        if not faces:
            raise GalleryError(f"{self.store.path}: cluster {cluster_id} has no face good enough to enroll")
        vectors = self.store.face_vectors(faces, self.gallery.options.model.dimension)
        templates = [
            NewTemplate(vector, r[1], r[3], face_source(r[4], r[8]), json.loads(r[5]), r[6], json.loads(r[7]))
            for vector, r in zip(vectors, faces)
        ]
        check_same_model(templates[0].model_id, self.gallery.model_id)
        with self.store.transaction() as db:
            person = self.store.ensure_person(db, name, None, None)
            added = self.store.add_templates(db, person, templates)
            # add_templates skips a photo already enrolled for the person: link the faces it did add.
            sources = {(t.image_sha256, tuple(t.box or ())): face[0] for t, face in zip(templates, faces)}
            for template_id in added:
                sha, box = db.execute("SELECT image_sha256, box FROM template WHERE id = ?", (template_id,)).fetchone()
                face = sources.get((sha, tuple(json.loads(box))))
                db.execute("UPDATE face SET template_id = ? WHERE id = ?", (template_id, face))
            db.execute("UPDATE face_cluster SET person_id = ?, ignored = 0 WHERE id = ?", (person, cluster_id))
        return self.cluster(cluster_id)

    def merge(self, into: int, source: int) -> Cluster:
        """Move every face of ``source`` into ``into`` (pinned there) and remove ``source``; if both are named
        as different people, those people are merged too."""
        target, other = self.cluster(into), self.cluster(source)
        if target.id == other.id:
            raise GalleryError(f"cannot merge cluster {target.id} into itself")
        if target.person_id is not None and other.person_id is not None and target.person_id != other.person_id:
            self.gallery.merge(other.person_id, target.person_id)
        with self.store.transaction() as db:
            db.execute("UPDATE face SET cluster_id = ?, pinned = 1 WHERE cluster_id = ?", (target.id, other.id))
            if target.person_id is None and other.person_id is not None:
                db.execute("UPDATE face_cluster SET person_id = ? WHERE id = ?", (other.person_id, target.id))
            db.execute("DELETE FROM face_cluster WHERE id = ?", (other.id,))
        return self.cluster(target.id)

    def split(self, cluster_id: int, face_ids: Sequence[int]) -> Cluster:
        """Move ``face_ids`` out of a cluster into a new one (pinned; they never join the old one again). Any
        of them enrolled when the cluster was named stops being a template of that person."""
        cluster = self.cluster(cluster_id)
        members = {face.id for face in self.faces(cluster.id)}
        strangers = sorted(set(face_ids) - members)
        if strangers:
            raise GalleryError(f"{self.store.path}: faces {strangers} are not in cluster {cluster.id}")
        if not face_ids:
            raise GalleryError("no faces given to split off")
        with self.store.transaction() as db:
            new = _new_cluster(db)
            for face in face_ids:
                template = db.execute("SELECT template_id FROM face WHERE id = ?", (face,)).fetchone()[0]
                if template is not None:
                    db.execute("DELETE FROM template WHERE id = ?", (template,))
                db.execute("UPDATE face SET cluster_id = ?, pinned = 1 WHERE id = ?", (new, face))
                db.execute(
                    "INSERT OR IGNORE INTO face_rejection (face_id, cluster_id) VALUES (?, ?)", (face, cluster.id)
                )
        self.gallery.erase_removed()  # the templates enrolled from those faces
        return self.cluster(new)

    def ignore(self, cluster_id: int, ignored: bool = True) -> Cluster:
        """Set a cluster aside (or back): it is listed only on request, and keeps its faces and new ones
        like them, so they do not come back as a new cluster."""
        cluster = self.cluster(cluster_id)
        with self.store.transaction() as db:
            db.execute("UPDATE face_cluster SET ignored = ? WHERE id = ?", (int(ignored), cluster.id))
        return self.cluster(cluster.id)


def face_source(path: str, frame_time: float | None) -> str:
    """Where a face is: its photo's path, or its video's with the keyframe's time (a media fragment, ``#t=12.0``)."""
    return path if frame_time is None else f"{path}#t={frame_time:.1f}"


def _cluster(row: Sequence[Any]) -> Cluster:
    return Cluster(int(row[0]), row[1], row[2], bool(row[3]), int(row[4]), row[5])


def _cluster_of_person(db: Any, person: int) -> int:
    row = db.execute("SELECT id FROM face_cluster WHERE person_id = ? ORDER BY id LIMIT 1", (person,)).fetchone()
    if row is not None:
        return int(row[0])
    cluster = _new_cluster(db)
    db.execute("UPDATE face_cluster SET person_id = ? WHERE id = ?", (person, cluster))
    return cluster


def _new_cluster(db: Any) -> int:
    cursor = db.execute("INSERT INTO face_cluster (created_at) VALUES (?)", (_now(),))
    return int(cursor.lastrowid or 0)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
