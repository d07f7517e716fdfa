"""The photo library's tables in the gallery file: each photo scanned and every face found in it.

Schema 5 of ``faceprint.gallery.sqlite`` creates them (schema 8 adds videos: a video is a photo row sampled
every ``keyframe_every`` seconds, its faces with their frame). Each changing method is one transaction, so a scan
killed at any point leaves whole batches behind it and nothing half-written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import GalleryError
from ..gallery import Gallery
from ..gallery.sqlite import SQLiteStore
from ..pipeline import ImageResult
from ..types import Face

#: A face to store: the face, its thumbnail, and for a video's face the frame's number and time (else None).
FrameFace = tuple[Face, bytes | None, int | None, float | None]


@dataclass(frozen=True)
class FileStat:
    """What tells a changed file from an unchanged one without reading it."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class PhotoRow:
    """A scanned photo as stored: its stat and digest when scanned (``sha256`` None if it was unreadable); a
    video also says how often it was sampled (``keyframe_every``, seconds)."""

    id: int
    stat: FileStat
    sha256: str | None
    keyframe_every: float | None = None


class Catalog:
    """Photos and faces of one SQLite gallery (a photo library needs the SQLite store)."""

    def __init__(self, gallery: Gallery) -> None:
        if not isinstance(gallery.store, SQLiteStore):
            raise GalleryError(f"{gallery.path}: a photo library needs an SQLite gallery, not this store")
        self.store: SQLiteStore = gallery.store
        self.model_id = gallery.model_id

    def photos_under(self, folder: str) -> dict[str, PhotoRow]:
        """Every photo stored under ``folder`` (an absolute path), by path."""
        prefix = folder.rstrip("/") + "/"
        # A range over the unique index on path: every path that starts with the prefix ("0" follows "/").
        rows = self.store.query(
            "SELECT id, path, size, mtime_ns, sha256, keyframe_every FROM photo WHERE path >= ? AND path < ?",
            (prefix, prefix[:-1] + "0"),
        )
        return {row[1]: PhotoRow(row[0], FileStat(row[1], row[2], row[3]), row[4], row[5]) for row in rows}

    def face_models(self) -> list[str]:
        return [row[0] for row in self.store.query("SELECT DISTINCT model_id FROM face")]

    def record(self, scanned: Sequence[tuple[FileStat, ImageResult]]) -> int:
        """Store the photos of one batch with their faces (a photo scanned before loses its old faces):
        the number of faces stored."""
        faces = 0
        with self.store.transaction() as db:
            for stat, result in scanned:
                error = str(result.error) if result.error is not None else None
                photo_id = self._store_photo(db, stat, result.sha256, error, None)
                found = [(face, thumbnail, None, None) for face, thumbnail in faces_with_thumbnails(result)]
                faces += self._store_faces(db, photo_id, found)
        return faces

    def record_video(
        self, stat: FileStat, sha256: str | None, every: float, found: Sequence[FrameFace], error: str | None
    ) -> int:
        """Store one video sampled every ``every`` seconds with the faces kept of its keyframes (one
        transaction: a scan killed meanwhile samples it again): the number of faces stored."""
        with self.store.transaction() as db:
            photo_id = self._store_photo(db, stat, sha256, error, every)
            return self._store_faces(db, photo_id, found)

    def _store_photo(
        self, db: Any, stat: FileStat, sha256: str | None, error: str | None, keyframe_every: float | None
    ) -> int:
        return int(
            db.execute(
                "INSERT INTO photo (path, size, mtime_ns, sha256, error, scanned_at, keyframe_every)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET size = excluded.size,"
                " mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, error = excluded.error,"
                " scanned_at = excluded.scanned_at, keyframe_every = excluded.keyframe_every RETURNING id",
                (stat.path, stat.size, stat.mtime_ns, sha256, error, _now(), keyframe_every),
            ).fetchone()[0]
        )

    def _store_faces(self, db: Any, photo_id: int, found: Sequence[FrameFace]) -> int:
        """Replace a photo's faces by ``found``: ``(face, thumbnail, frame index, frame time)`` each."""
        db.execute("DELETE FROM face WHERE photo_id = ?", (photo_id,))
        # The ids are chosen before inserting (as SQLite would) to seal each face to its row.
        next_id = int(db.execute("SELECT coalesce(max(id), 0) + 1 FROM face").fetchone()[0])
        db.executemany(
            "INSERT INTO face (id, photo_id, face_index, model_id, vector, box, quality, quality_report,"
            " thumbnail, frame_index, frame_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (*self._face_row(next_id + i, photo_id, i, face, thumbnail), frame_index, frame_time)
                for i, (face, thumbnail, frame_index, frame_time) in enumerate(found)
            ],
        )
        return len(found)

    def _face_row(self, face_id: int, photo_id: int, index: int, face: Face, thumbnail: bytes | None) -> tuple:
        if face.template is None:
            raise ValueError("a scanned face needs its template")
        model_id = face.template.model_id
        vector, thumbnail = self.store.stored_face(face_id, model_id, face.template.vector, thumbnail)
        return (
            face_id,
            photo_id,
            index,
            model_id,
            vector,
            json.dumps(list(face.box.as_tuple())),
            face.quality.score,
            json.dumps(face.quality.to_dict()),
            thumbnail,
        )

    def restat(self, moved: Sequence[tuple[int, FileStat]]) -> None:
        """Photos whose content is unchanged (by digest) under a new stat or a new path: the new ones stored."""
        if not moved:
            return
        with self.store.transaction() as db:
            db.executemany(
                "UPDATE photo SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                [(stat.path, stat.size, stat.mtime_ns, photo_id) for photo_id, stat in moved],
            )

    def forget(self, photo_ids: Sequence[int]) -> None:
        """Remove photos that are gone, with their faces."""
        if not photo_ids:
            return
        with self.store.transaction() as db:
            db.executemany("DELETE FROM photo WHERE id = ?", [(int(i),) for i in photo_ids])

    def counts(self) -> tuple[int, int]:
        """``(photos, faces)`` stored."""
        row = self.store.query("SELECT (SELECT count(*) FROM photo), (SELECT count(*) FROM face)")[0]
        return int(row[0]), int(row[1])


def faces_with_thumbnails(result: ImageResult) -> list[tuple[Face, bytes | None]]:
    """Each face of a pipeline result with its thumbnail (None when none was made)."""
    thumbnails: list[bytes | None] = list(result.thumbnails) or [None] * len(result.faces)
    return list(zip(result.faces, thumbnails))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
