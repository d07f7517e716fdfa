"""The photo library's tables in the gallery file: each photo scanned and every face found in it.

Schema 5 of ``faceprint.gallery.sqlite`` creates them. Each changing method is one transaction, so a scan
killed at any point leaves whole batches behind it and nothing half-written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from ..errors import GalleryError
from ..gallery import Gallery
from ..gallery.sqlite import SQLiteStore
from ..pipeline import ImageResult
from ..types import Face


@dataclass(frozen=True)
class FileStat:
    """What tells a changed file from an unchanged one without reading it."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class PhotoRow:
    """A scanned photo as stored: its stat and digest when scanned (``sha256`` None if it was unreadable)."""

    id: int
    stat: FileStat
    sha256: str | None


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
            "SELECT id, path, size, mtime_ns, sha256 FROM photo WHERE path >= ? AND path < ?",
            (prefix, prefix[:-1] + "0"),
        )
        return {row[1]: PhotoRow(row[0], FileStat(row[1], row[2], row[3]), row[4]) for row in rows}

    def face_models(self) -> list[str]:
        return [row[0] for row in self.store.query("SELECT DISTINCT model_id FROM face")]

    def record(self, scanned: Sequence[tuple[FileStat, ImageResult]]) -> int:
        """Store the photos of one batch with their faces (a photo scanned before loses its old faces):
        the number of faces stored."""
        faces = 0
        with self.store.transaction() as db:
            for stat, result in scanned:
                error = str(result.error) if result.error is not None else None
                photo_id = db.execute(
                    "INSERT INTO photo (path, size, mtime_ns, sha256, error, scanned_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
                    " sha256 = excluded.sha256, error = excluded.error, scanned_at = excluded.scanned_at"
                    " RETURNING id",
                    (stat.path, stat.size, stat.mtime_ns, result.sha256, error, _now()),
                ).fetchone()[0]
                db.execute("DELETE FROM face WHERE photo_id = ?", (photo_id,))
                # The ids are chosen before inserting (as SQLite would) to seal each face to its row.
                next_id = int(db.execute("SELECT coalesce(max(id), 0) + 1 FROM face").fetchone()[0])
                db.executemany(
                    "INSERT INTO face (id, photo_id, face_index, model_id, vector, box, quality, quality_report,"
                    " thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        self._face_row(next_id + i, photo_id, i, face, thumbnail)
                        for i, (face, thumbnail) in enumerate(_with_thumbs(result))
                    ],
                )
                faces += len(result.faces)
        return faces

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


def _with_thumbs(result: ImageResult) -> list[tuple[Face, bytes | None]]:
    thumbnails: list[bytes | None] = list(result.thumbnails) or [None] * len(result.faces)
    return list(zip(result.faces, thumbnails))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
