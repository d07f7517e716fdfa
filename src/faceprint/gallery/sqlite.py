"""The SQLite gallery store: one file, WAL mode, every change one transaction.

Concurrency: WAL lets readers work while one writer writes; writers take the lock up front
(``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for each other, so two processes
enrolling at once both succeed. ``synchronous=FULL`` makes a committed enrollment survive
a crash of the process or the machine. A ``generation`` counter, bumped by every change,
tells readers (and caches such as search indexes) that the content moved.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..choices import Mode, Storage
from ..errors import GalleryError, KeyRequiredError, PersonNotFoundError
from ..index import distinct
from ..progress import OnProgress
from ..protect import Sealer, new_key, unwrap_data_key, wrap_data_key
from .names import name_key
from .records import NewTemplate, Person, TemplateRecord

if TYPE_CHECKING:
    from ..index.synced import SyncedIndex

#: Marks the file as a faceprint gallery ("FPRT"), so a foreign SQLite file is never migrated.
APPLICATION_ID = 0x46505254
SCHEMA_VERSION = 8

# MIGRATIONS[v] upgrades a gallery at schema version v - 1 to version v.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE person (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        external_id TEXT UNIQUE,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE template (
        id INTEGER PRIMARY KEY,
        person_id INTEGER NOT NULL REFERENCES person(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        vector BLOB NOT NULL,
        image_sha256 TEXT,
        source TEXT,
        box TEXT,
        quality REAL,
        quality_report TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (person_id, model_id, image_sha256)
    );
    CREATE INDEX template_person ON template(person_id);
    INSERT INTO meta (key, value) VALUES ('generation', '0');
    """,
    # A log of template insertions and deletions, written by triggers inside the changing
    # transaction: a search index remembers the last change it holds and replays only the
    # newer ones, whichever process made them. ``gallery_id`` tells an index built for a
    # copy or an older backup of the file from one built for this file.
    2: """
    CREATE TABLE template_change (seq INTEGER PRIMARY KEY AUTOINCREMENT, template_id INTEGER NOT NULL);
    CREATE TRIGGER template_added AFTER INSERT ON template
        BEGIN INSERT INTO template_change (template_id) VALUES (new.id); END;
    CREATE TRIGGER template_removed AFTER DELETE ON template
        BEGIN INSERT INTO template_change (template_id) VALUES (old.id); END;
    INSERT INTO template_change (template_id) SELECT id FROM template;
    INSERT INTO meta (key, value) VALUES ('gallery_id', lower(hex(randomblob(16))));
    """,
    # Finding a gallery's models and counting a model's templates without reading every row
    # (each enrollment checks the models: 57 ms at 1M templates with a full scan).
    3: "CREATE INDEX template_model ON template(model_id);",
    # Names differing only in case are one person (faceprint.gallery.names): looked up by their key.
    # Not a unique index: a gallery made before may hold both ``Kit`` and ``kit``, which stay
    # reachable by their exact names until merged; writers check the key under the write lock.
    4: """
    ALTER TABLE person ADD COLUMN name_key TEXT;
    UPDATE person SET name_key = faceprint_name_key(name);
    CREATE INDEX person_name_key ON person(name_key);
    """,
    # A photo library (faceprint.library.scan): each photo scanned, with the stat and digest that tell a changed
    # file from an unchanged one, and every face found in it (deleted with its photo).
    5: """
    CREATE TABLE photo (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT,
        error TEXT,
        scanned_at TEXT NOT NULL
    );
    CREATE INDEX photo_sha256 ON photo(sha256);
    CREATE TABLE face (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photo(id) ON DELETE CASCADE,
        face_index INTEGER NOT NULL,
        model_id TEXT NOT NULL,
        vector BLOB NOT NULL,
        box TEXT NOT NULL,
        quality REAL NOT NULL,
        quality_report TEXT NOT NULL,
        thumbnail BLOB,
        UNIQUE (photo_id, face_index)
    );
    CREATE INDEX face_model ON face(model_id);
    """,
    # Clusters of library faces (candidate people) and the user's decisions about them: a cluster named is
    # an enrolled person; a face placed by the user (merge, split) is pinned and never moved by a later
    # update; a face split off a cluster never joins it again (face_rejection); the template enrolled from
    # a face (when its cluster was named) goes if the face leaves the cluster; ``considered``: the face has
    # been through an update (a face still waiting then is compared with newer faces only).
    6: """
    CREATE TABLE face_cluster (
        id INTEGER PRIMARY KEY,
        person_id INTEGER REFERENCES person(id) ON DELETE SET NULL,
        ignored INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    ALTER TABLE face ADD COLUMN cluster_id INTEGER REFERENCES face_cluster(id) ON DELETE SET NULL;
    ALTER TABLE face ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE face ADD COLUMN template_id INTEGER REFERENCES template(id) ON DELETE SET NULL;
    ALTER TABLE face ADD COLUMN considered INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX face_cluster_id ON face(cluster_id);
    CREATE TABLE face_rejection (
        face_id INTEGER NOT NULL REFERENCES face(id) ON DELETE CASCADE,
        cluster_id INTEGER NOT NULL REFERENCES face_cluster(id) ON DELETE CASCADE,
        PRIMARY KEY (face_id, cluster_id)
    );
    """,
    # A person's face thumbnail (the service's collections that opted in): in the gallery rather than beside it,
    # so that it is sealed as the vectors are and erased with the person (deleted by the cascade, zeroed by
    # secure_delete, out of the WAL by erase_removed).
    7: """
    CREATE TABLE person_thumbnail (
        person_id INTEGER PRIMARY KEY REFERENCES person(id) ON DELETE CASCADE,
        jpeg BLOB NOT NULL
    );
    """,
    # Video keyframes in a photo library (faceprint.library.keyframes): a video is a ``photo`` row whose
    # ``keyframe_every`` says how often it was sampled (NULL: a photo; another interval asked for: sampled
    # again), and each of its faces says which frame it was found in (frame number and time in seconds).
    8: """
    ALTER TABLE photo ADD COLUMN keyframe_every REAL;
    ALTER TABLE face ADD COLUMN frame_index INTEGER;
    ALTER TABLE face ADD COLUMN frame_time REAL;
    """,
}


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of ``script`` (a trigger's body holds ``;`` too, so split where SQLite would)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


#: Meta key of the gallery's data key, wrapped by the master key (present: the vectors are encrypted).
DATA_KEY = "data_key"

#: SQLite's default limit on ``?`` parameters per statement is 32766; stay well under it.
_MAX_SQL_PARAMS = 10_000


def _row_context(template_id: int, model_id: str) -> bytes:
    """What a sealed vector is bound to: its row and its model (a blob moved to another row does not open)."""
    return b"faceprint template\0%d\0%s" % (template_id, model_id.encode())


def _face_context(face_id: int, model_id: str, part: str) -> bytes:
    """What a sealed part (``vector`` or ``thumbnail``) of a library face is bound to: that part of that row."""
    return b"faceprint face %s\0%d\0%s" % (part.encode(), face_id, model_id.encode())


def _sealed_face(
    sealer: Sealer, face_id: int, model_id: str, vector: bytes, thumbnail: bytes | None
) -> tuple[bytes, bytes | None]:
    sealed_vector = sealer.seal(vector, _face_context(face_id, model_id, "vector"))
    if thumbnail is None:
        return sealed_vector, None
    return sealed_vector, sealer.seal(thumbnail, _face_context(face_id, model_id, "thumbnail"))


def _thumbnail_context(person_id: int) -> bytes:
    return b"faceprint person thumbnail\0%d" % person_id


def _inserted_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row ``cursor`` just inserted."""
    assert cursor.lastrowid is not None  # every INSERT sets it
    return cursor.lastrowid


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SQLiteStore:
    """Persons and templates in one SQLite file; every public method is one transaction."""

    def __init__(
        self, path: Path, *, busy_timeout: float = 30.0, create: bool = True, key: bytes | None = None
    ) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._checked = False  # by _check_before_first_write
        if not create and not path.is_file():
            raise GalleryError(f"{path}: no gallery there (check --db / $FACEPRINT_DB, or enroll someone first)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise GalleryError(f"{path}: cannot open gallery ({exc})") from None
        try:
            self._open()
            #: The data key sealing the vectors (None: an unencrypted gallery), and its cipher.
            self._data_key = self._open_data_key(key)
            self.sealer = Sealer(self._data_key) if self._data_key is not None else None
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise GalleryError(
                f"{path}: not a readable faceprint gallery ({exc}); the file was left untouched"
            ) from None
        except BaseException:
            self._db.close()
            raise

    def _open(self) -> None:
        with self.snapshot():  # one state of the file: another process may be creating the gallery meanwhile
            app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            has_tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if app_id != APPLICATION_ID and has_tables:
            raise GalleryError(f"{self.path}: an SQLite file, but not a faceprint gallery; the file was left untouched")
        if version > SCHEMA_VERSION:
            raise GalleryError(
                f"{self.path}: gallery schema {version} is newer than this faceprint supports ({SCHEMA_VERSION}); "
                "upgrade faceprint"
            )
        self._use_wal()
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, not merely unlinked: a removed person's vector must not stay
        # readable in the file's free space (GDPR art. 17; see erase_removed for the WAL).
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.create_function("faceprint_name_key", 1, name_key, deterministic=True)
        if version < SCHEMA_VERSION:
            self._migrate()

    def _use_wal(self) -> None:
        """Write-ahead logging. Switching a new file to it needs the file alone, and SQLite reports "database is
        locked" at once then rather than waiting: another process creating the same gallery at that moment made
        the open fail (tests/test_gallery.py), so the switch is retried for as long as a write would wait."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _migrate(self) -> None:
        with self.transaction() as db:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[target]):
                    db.execute(statement)
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _open_data_key(self, master_key: bytes | None) -> bytes | None:
        """The gallery's data key, unwrapped with ``master_key``; a gallery without one is encrypted now when a
        key is given, and stays unencrypted otherwise."""
        wrapped = self.meta(DATA_KEY)
        if wrapped is None:
            return self._encrypt(master_key) if master_key is not None else None
        if master_key is None:
            raise KeyRequiredError(
                f"{self.path}: the gallery is encrypted; give its key file ($FACEPRINT_KEY_FILE); nothing was changed"
            )
        return unwrap_data_key(wrapped, master_key, self._gallery_id(), str(self.path))

    def _gallery_id(self) -> str:
        return self.meta("gallery_id") or ""

    def _encrypt(self, master_key: bytes) -> bytes:
        """Give the gallery a data key wrapped by ``master_key`` and seal every stored vector with it."""
        data_key = new_key()
        sealer = Sealer(data_key)
        with self.transaction() as db:
            if db.execute("SELECT value FROM meta WHERE key = ?", (DATA_KEY,)).fetchone():
                raise KeyRequiredError(f"{self.path}: another process encrypted the gallery meanwhile; open it again")
            rows = db.execute("SELECT id, model_id, vector FROM template").fetchall()
            db.executemany(
                "UPDATE template SET vector = ? WHERE id = ?",
                [(sealer.seal(blob, _row_context(i, model)), i) for i, model, blob in rows],
            )
            faces = db.execute("SELECT id, model_id, vector, thumbnail FROM face").fetchall()
            db.executemany(
                "UPDATE face SET vector = ?, thumbnail = ? WHERE id = ?",
                [(*_sealed_face(sealer, i, model, vector, thumb), i) for i, model, vector, thumb in faces],
            )
            thumbnails = db.execute("SELECT person_id, jpeg FROM person_thumbnail").fetchall()
            db.executemany(
                "UPDATE person_thumbnail SET jpeg = ? WHERE person_id = ?",
                [(sealer.seal(jpeg, _thumbnail_context(person)), person) for person, jpeg in thumbnails],
            )
            wrapped = wrap_data_key(data_key, master_key, self._gallery_id())
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (DATA_KEY, wrapped))
        return data_key

    @property
    def encrypted(self) -> bool:
        return self.sealer is not None

    def rekey(self, new_master_key: bytes) -> None:
        """Wrap the data key under ``new_master_key`` (the vectors stay as they are: only 32 bytes change)."""
        if self._data_key is None:
            raise KeyRequiredError(f"{self.path}: the gallery is not encrypted; open it with a key to encrypt it")
        wrapped = wrap_data_key(self._data_key, new_master_key, self._gallery_id())
        with self.transaction() as db:
            db.execute("UPDATE meta SET value = ? WHERE key = ?", (wrapped, DATA_KEY))

    def _stored_vector(self, template_id: int, model_id: str, vector: np.ndarray) -> bytes:
        raw = np.asarray(vector, dtype="<f4").tobytes()
        return raw if self.sealer is None else self.sealer.seal(raw, _row_context(template_id, model_id))

    def _unpack(self, rows: Sequence[Sequence[Any]], model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, float32 vectors)`` from ``(id, vector blob)`` rows of ``model_id``."""
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        blobs = [r[1] for r in rows]
        if self.sealer is not None:
            template_ids = ids.tolist()
            contexts = (_row_context(i, model_id) for i in template_ids)
            blobs = self.sealer.open_each(blobs, contexts, lambda n: f"{self.path}: template {template_ids[n]}")
        vectors = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(rows), -1)
        return ids, vectors.astype(np.float32)

    # --- library faces (faceprint.library): sealed like templates, bound to their row and model -----------------

    def stored_face(
        self, face_id: int, model_id: str, vector: np.ndarray, thumbnail: bytes | None
    ) -> tuple[bytes, bytes | None]:
        """``(vector blob, thumbnail blob)`` of a library face as stored (sealed in an encrypted gallery)."""
        raw = np.asarray(vector, dtype="<f4").tobytes()
        return (raw, thumbnail) if self.sealer is None else _sealed_face(self.sealer, face_id, model_id, raw, thumbnail)

    def face_vectors(self, rows: Sequence[Sequence[Any]], dimension: int) -> np.ndarray:
        """The float32 vectors of rows starting ``(face id, model id, vector blob)``, opened in an encrypted gallery."""
        blobs = [bytes(r[2]) for r in rows]
        if self.sealer is not None:
            blobs = [self._open_face(int(r[0]), r[1], b, "vector") for r, b in zip(rows, blobs)]
        return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(rows), dimension).astype(np.float32)

    def face_thumbnail(self, face_id: int, model_id: str, blob: bytes) -> bytes:
        """A library face's JPEG thumbnail from its stored blob."""
        return bytes(blob) if self.sealer is None else self._open_face(face_id, model_id, blob, "thumbnail")

    def _open_face(self, face_id: int, model_id: str, blob: bytes, part: str) -> bytes:
        assert self.sealer is not None
        context = _face_context(face_id, model_id, part)
        return self.sealer.open(bytes(blob), context, f"{self.path}: the {part} of face {face_id}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self, *, content: bool = True) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locking) transaction that bumps the generation on commit (unless it writes
        bookkeeping only, ``content=False``: the gallery's people and templates are as they were)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise GalleryError(f"{self.path}: gallery is busy or read-only ({exc})") from None
            try:
                if content:  # bookkeeping touches a meta row: checking every page under the write lock costs seconds
                    self._check_before_first_write()
                yield self._db
                if content:
                    self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self._rollback()
                raise GalleryError(f"{self.path}: {exc}; nothing was changed") from None
            except BaseException:
                self._rollback()
                raise

    def _check_before_first_write(self) -> None:
        """Refuse to write into a damaged file. Garbage in the middle of a gallery passes the checks made at
        opening, and a write there can succeed while every search then fails: ``PRAGMA quick_check`` (every page
        read once; BENCHMARKS.md, "Writing to a damaged gallery") runs once per opened store, under the write lock."""
        if self._checked:
            return
        try:
            rows = self._db.execute("PRAGMA quick_check(3)").fetchall()
        except sqlite3.DatabaseError as exc:  # damage the check cannot even walk past (e.g. in a table's root)
            rows = [(str(exc),)]
        problems = [line for row in rows for line in str(row[0]).splitlines() if not line.startswith("***")]
        if problems != ["ok"]:
            raise GalleryError(
                f"{self.path}: the gallery file is damaged ({'; '.join(problems)}); nothing was changed "
                "(restore a backup, or recover it with sqlite3's .recover)"
            )
        self._checked = True

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read (for modules that keep their own tables in the gallery, as ``faceprint.library``)."""
        return self._query(sql, params)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise GalleryError(f"{self.path}: {exc}") from None

    # --- metadata -------------------------------------------------------------------------

    def generation(self) -> int:
        return int(self._query("SELECT value FROM meta WHERE key = 'generation'")[0][0])

    def meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def swap_meta(self, key: str, change: Callable[[str | None], str | None]) -> str | None:
        """Read ``key`` and write ``change(value)`` in its place (None: remove it) in one short write transaction:
        a compare-and-set across processes, for bookkeeping such as a lease (the generation does not move)."""
        with self.transaction(content=False) as db:
            rows = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()
            value = change(rows[0][0] if rows else None)
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            return value

    # --- people ---------------------------------------------------------------------------

    _PERSON_SQL = """
        SELECT p.id, p.name, p.external_id, p.metadata, count(t.id), p.created_at, p.updated_at
        FROM person p LEFT JOIN template t ON t.person_id = p.id
    """

    def people(self) -> list[Person]:
        rows = self._query(self._PERSON_SQL + " GROUP BY p.id ORDER BY p.name")
        return [self._person(row) for row in rows]

    def person(self, key: str | int) -> Person:
        """A person by name (exact, else in any case), or by numeric id, or by external id."""
        lookups = (("p.name", key), ("p.name_key", name_key(str(key))), ("p.id", key), ("p.external_id", key))
        for column, value in lookups:
            rows = self._query(self._PERSON_SQL + f" WHERE {column} = ? GROUP BY p.id", (value,))
            if rows:
                return self._person(rows[0])
        raise PersonNotFoundError(f"{self.path}: no person {key!r} in the gallery")

    @staticmethod
    def _person(row: Sequence[Any]) -> Person:
        return Person(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6])

    def ensure_person(
        self, db: sqlite3.Connection, name: str, external_id: str | None, metadata: dict[str, Any] | None
    ) -> int:
        """Id of the person called ``name``, created if new (within the caller's transaction)."""
        same = "SELECT id, external_id FROM person WHERE name_key = ? ORDER BY name = ? DESC LIMIT 1"
        row = db.execute(same, (name_key(name), name)).fetchone()
        now = _now()
        if row is None:
            try:
                cursor = db.execute(
                    "INSERT INTO person (name, name_key, external_id, metadata, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (name, name_key(name), external_id, json.dumps(metadata or {}), now, now),
                )
            except sqlite3.IntegrityError:
                raise GalleryError(f"external id {external_id!r} already belongs to another person") from None
            return _inserted_id(cursor)
        if external_id is not None and row[1] not in (None, external_id):
            raise GalleryError(f"{name!r} already has external id {row[1]!r}, not {external_id!r}")
        if metadata or external_id is not None:
            old = json.loads(db.execute("SELECT metadata FROM person WHERE id = ?", (row[0],)).fetchone()[0])
            db.execute(
                "UPDATE person SET metadata = ?, external_id = coalesce(external_id, ?), updated_at = ? WHERE id = ?",
                (json.dumps({**old, **(metadata or {})}), external_id, now, row[0]),
            )
        return int(row[0])

    def enroll(
        self, name: str, external_id: str | None, metadata: dict[str, Any] | None, templates: Sequence[NewTemplate]
    ) -> tuple[int, list[int]]:
        """Create or update ``name`` and add ``templates`` in one transaction: ``(person id, added template ids)``."""
        with self.transaction() as db:
            person_id = self.ensure_person(db, name, external_id, metadata)
            return person_id, self.add_templates(db, person_id, templates)

    def add_templates(self, db: sqlite3.Connection, person_id: int, templates: Sequence[NewTemplate]) -> list[int]:
        """Insert templates (within the caller's transaction); an image already enrolled for
        this person is skipped. Returns the ids of the templates actually added."""
        added = []
        # The id is chosen before inserting (as SQLite would: one past the largest) to seal the vector to its row.
        next_id = int(db.execute("SELECT coalesce(max(id), 0) + 1 FROM template").fetchone()[0])
        for t in templates:
            cursor = db.execute(
                "INSERT OR IGNORE INTO template (id, person_id, model_id, vector, image_sha256, source, box, quality,"
                " quality_report, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    next_id,
                    person_id,
                    t.model_id,
                    self._stored_vector(next_id, t.model_id, t.vector),
                    t.image_sha256,
                    t.source,
                    json.dumps(list(t.box)) if t.box is not None else None,
                    t.quality,
                    json.dumps(t.quality_report) if t.quality_report is not None else None,
                    _now(),
                ),
            )
            if cursor.rowcount:
                added.append(_inserted_id(cursor))
                next_id += 1
        if added:
            db.execute("UPDATE person SET updated_at = ? WHERE id = ?", (_now(), person_id))
        return added

    def replace_templates(
        self, removed: Sequence[int], added: Sequence[tuple[int, NewTemplate]], meta_removed: Sequence[str] = ()
    ) -> list[int]:
        """Remove templates (and meta keys) and add templates (``(person id, template)``) in one transaction:
        the ids added."""
        with self.transaction() as db:
            db.executemany("DELETE FROM meta WHERE key = ?", [(key,) for key in meta_removed])
            db.executemany("DELETE FROM template WHERE id = ?", [(int(i),) for i in removed])
            added_ids: list[int] = []
            for person_id in dict.fromkeys(person for person, _ in added):
                added_ids += self.add_templates(db, person_id, [t for person, t in added if person == person_id])
            return added_ids

    def all_templates(self) -> list[TemplateRecord]:
        """Every template's provenance, in id order."""
        return [self._template(row) for row in self._query(self._TEMPLATE_SQL + " ORDER BY id")]

    def rename(self, key: str | int, new_name: str) -> Person:
        person = self.person(key)
        with self.transaction() as db:
            other = "SELECT name FROM person WHERE (name = ? OR name_key = ?) AND id != ?"
            taken = db.execute(other, (new_name, name_key(new_name), person.id)).fetchone()
            if taken:
                raise GalleryError(f"cannot rename {person.name!r}: {taken[0]!r} already exists (merge instead)")
            db.execute(
                "UPDATE person SET name = ?, name_key = ?, updated_at = ? WHERE id = ?",
                (new_name, name_key(new_name), _now(), person.id),
            )
        return self.person(person.id)

    def merge(self, source: str | int, target: str | int) -> Person:
        """Move every template of ``source`` to ``target`` and remove ``source``."""
        src, dst = self.person(source), self.person(target)
        if src.id == dst.id:
            raise GalleryError(f"cannot merge {src.name!r} into itself")
        with self.transaction() as db:
            # Images both people were enrolled from stay once, under the target; deleting the
            # source cascades to the duplicates left behind.
            db.execute("UPDATE OR IGNORE template SET person_id = ? WHERE person_id = ?", (dst.id, src.id))
            db.execute("DELETE FROM person WHERE id = ?", (src.id,))
            db.execute(
                "UPDATE person SET metadata = ?, external_id = ?, updated_at = ? WHERE id = ?",
                (json.dumps({**src.metadata, **dst.metadata}), dst.external_id or src.external_id, _now(), dst.id),
            )
        return self.person(dst.id)

    def remove_person(self, key: str | int) -> Person:
        """Remove a person with their templates and, when a photo library named them, their library faces (the
        faces of the clusters named as them: the vectors their templates were copied from) and those clusters."""
        person = self.person(key)
        with self.transaction() as db:
            named = "SELECT id FROM face_cluster WHERE person_id = ?"
            db.execute(f"DELETE FROM face WHERE cluster_id IN ({named})", (person.id,))
            db.execute("DELETE FROM face_cluster WHERE person_id = ?", (person.id,))
            db.execute("DELETE FROM person WHERE id = ?", (person.id,))
        return person

    def keep_thumbnail(self, person_id: int, jpeg: bytes) -> bool:
        """Keep ``jpeg`` as the person's face thumbnail unless they have one (sealed in an encrypted gallery): whether
        it was kept."""
        stored = jpeg if self.sealer is None else self.sealer.seal(jpeg, _thumbnail_context(person_id))
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO person_thumbnail (person_id, jpeg) SELECT id, ? FROM person WHERE id = ?"
                " ON CONFLICT (person_id) DO NOTHING",
                (stored, person_id),
            )
            return cursor.rowcount > 0

    def thumbnail(self, person_id: int) -> bytes | None:
        """The person's face thumbnail (a JPEG), if one is kept."""
        rows = self._query("SELECT jpeg FROM person_thumbnail WHERE person_id = ?", (person_id,))
        if not rows:
            return None
        if self.sealer is None:
            return bytes(rows[0][0])
        return self.sealer.open(rows[0][0], _thumbnail_context(person_id), f"{self.path}: the thumbnail of {person_id}")

    def remove_template(self, template_id: int) -> TemplateRecord:
        record = self.template(template_id)
        with self.transaction() as db:
            db.execute("DELETE FROM template WHERE id = ?", (template_id,))
        return record

    # --- templates ------------------------------------------------------------------------

    _TEMPLATE_SQL = (
        "SELECT id, person_id, model_id, image_sha256, source, box, quality, quality_report, created_at FROM template"
    )

    def template(self, template_id: int) -> TemplateRecord:
        rows = self._query(self._TEMPLATE_SQL + " WHERE id = ?", (template_id,))
        if not rows:
            raise PersonNotFoundError(f"{self.path}: no template {template_id} in the gallery")
        return self._template(rows[0])

    def templates_of(self, person_id: int) -> list[TemplateRecord]:
        rows = self._query(self._TEMPLATE_SQL + " WHERE person_id = ? ORDER BY id", (person_id,))
        return [self._template(row) for row in rows]

    @staticmethod
    def _template(row: Sequence[Any]) -> TemplateRecord:
        box = json.loads(row[5]) if row[5] else None
        report = json.loads(row[7]) if row[7] else None
        return TemplateRecord(row[0], row[1], row[2], row[3], row[4], box, row[6], report, row[8])

    def model_ids(self) -> list[str]:
        """The models of the gallery's templates and of its photo library's faces."""
        return sorted({*self._model_ids_in("template"), *self._model_ids_in("face")})

    def _model_ids_in(self, table: str) -> list[str]:
        # One index seek per model: SELECT DISTINCT would read the whole index.
        found = [self._query(f"SELECT min(model_id) FROM {table}")[0][0]]
        while found[-1] is not None:
            found.append(self._query(f"SELECT min(model_id) FROM {table} WHERE model_id > ?", (found[-1],))[0][0])
        return found[:-1]

    def template_count(self, model_id: str) -> int:
        return int(self._query("SELECT count(*) FROM template WHERE model_id = ?", (model_id,))[0][0])

    def iter_vectors(self, model_id: str, chunk: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(template_ids, vectors)`` of every template of ``model_id`` in id order, ``chunk`` rows at a time
        (call inside ``snapshot()`` for a consistent view)."""
        last = -1
        while True:
            rows = self._query(
                "SELECT id, vector FROM template WHERE model_id = ? AND id > ? ORDER BY id LIMIT ?",
                (model_id, last, chunk),
            )
            if not rows:
                return
            yield self._unpack(rows, model_id)
            last = rows[-1][0]

    def vectors(self, template_ids: Sequence[int] | np.ndarray, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(template_ids, vectors)`` of those of ``template_ids`` that exist with ``model_id``, in id order."""
        found: list[sqlite3.Row] = []
        ids = [int(i) for i in template_ids]
        for start in range(0, len(ids), _MAX_SQL_PARAMS):
            part = ids[start : start + _MAX_SQL_PARAMS]
            found += self._query(
                f"SELECT id, vector FROM template WHERE model_id = ? AND id IN ({','.join('?' * len(part))})",
                (model_id, *part),
            )
        return self._unpack(sorted(found), model_id)

    def template_owners(self, person_ids: Sequence[int], model_id: str) -> dict[int, int]:
        ids = [int(i) for i in person_ids]
        found: dict[int, int] = {}
        for start in range(0, len(ids), _MAX_SQL_PARAMS):
            part = ids[start : start + _MAX_SQL_PARAMS]
            holders = ",".join("?" * len(part))
            sql = f"SELECT id, person_id FROM template WHERE model_id = ? AND person_id IN ({holders})"
            found.update((int(template), int(person)) for template, person in self._query(sql, (model_id, *part)))
        return found

    def persons_of(self, template_ids: Sequence[int] | np.ndarray) -> dict[int, int]:
        """Person id of each of ``template_ids`` that still exists."""
        ids = [int(i) for i in template_ids]
        found: dict[int, int] = {}
        for start in range(0, len(ids), _MAX_SQL_PARAMS):
            part = ids[start : start + _MAX_SQL_PARAMS]
            sql = f"SELECT id, person_id FROM template WHERE id IN ({','.join('?' * len(part))})"
            found.update((int(template), int(person)) for template, person in self._query(sql, part))
        return found

    # --- change log (for search indexes) --------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the file, whatever other processes commit meanwhile (nests)."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                self._rollback()

    def last_change(self) -> int:
        """Sequence number of the latest template insertion or deletion (0 if none)."""
        return int(self._query("SELECT coalesce(max(seq), 0) FROM template_change")[0][0])

    def changed_templates(self, since: int) -> tuple[int, np.ndarray]:
        """``(latest change, ids of templates inserted or deleted after change ``since``)``."""
        rows = self._query("SELECT seq, template_id FROM template_change WHERE seq > ? ORDER BY seq", (since,))
        if not rows:
            return since, np.zeros(0, np.int64)
        return int(rows[-1][0]), distinct(np.array([r[1] for r in rows], dtype=np.int64))

    def names_of(self, person_ids: Sequence[int]) -> dict[int, str]:
        """Name of each of ``person_ids`` that still exists."""
        ids = [int(i) for i in person_ids]
        found: dict[int, str] = {}
        for start in range(0, len(ids), _MAX_SQL_PARAMS):
            part = ids[start : start + _MAX_SQL_PARAMS]
            sql = f"SELECT id, name FROM person WHERE id IN ({','.join('?' * len(part))})"
            found.update((int(person), str(name)) for person, name in self._query(sql, part))
        return found

    def open_index(
        self,
        model_id: str,
        *,
        mode: Mode = "auto",
        storage: Storage | None = None,
        on_progress: OnProgress | None = None,
    ) -> SyncedIndex:
        """Exact search or an HNSW graph kept in step with this file (see ``faceprint.index.synced``)."""
        from ..index.synced import SyncedIndex  # faiss loads when a gallery is opened, not when faceprint is imported

        return SyncedIndex(self, model_id, mode=mode, storage=storage, on_progress=on_progress)

    def erase_removed(self) -> bool:
        """Copy the WAL into the file and truncate it to zero bytes: the WAL's older frames still hold the pages as
        they were before a deletion (vectors included) until overwritten. False when other connections still read
        from the WAL: those frames go when the next erasure or checkpoint finds it free."""
        with self._lock:
            busy = self._query("PRAGMA wal_checkpoint(TRUNCATE)")[0][0]
        return not busy

    def integrity_check(self) -> str:
        return str(self._query("PRAGMA integrity_check")[0][0])
