"""The service's audit log: who did what to which collection and person, and how much.

One row per changing or reading request: the API key's id (never its secret), the tenant, the action, the
collection, the person, and counts (faces added, refused, ...). Never an image, a template or a face box:
the log says that Rose Leslie got two photos at 10:02 by key 3f2a, not what she looks like.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .datadir import open_data_db

AUDIT_FILE = "audit.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    collection TEXT,
    person TEXT,
    counts TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit(tenant, id);
"""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    key_id: str
    tenant: str
    action: str
    collection: str | None
    person: str | None
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class AuditLog:
    """The audit log of a data directory (``<data>/audit.db``, SQLite in WAL mode, shared by every process).

    Rows are written by a thread of their own, all those recorded meanwhile in one commit (one fsync), so that
    whoever records does not wait for the disk: the service's requests did, and a disk busy with other writes
    held some of them for a second (BENCHMARKS.md, "The latency tail"). Each row keeps the time it was
    recorded at; ``entries``, ``flush`` and ``close`` wait for the rows recorded before them, and a process
    that exits normally writes them all (the writer is not a daemon thread). A process killed outright loses
    the rows not yet written (those of the last commit's few milliseconds); a failed write is raised by the
    next ``record``, ``flush`` or ``entries``.
    """

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self._db = open_data_db(data_dir, AUDIT_FILE, _SCHEMA)
        self._writer_db = open_data_db(data_dir, AUDIT_FILE, _SCHEMA)
        self._state = threading.Condition()
        self._unwritten: list[tuple[Any, ...]] = []
        self._recorded = self._written = 0
        self._writer: threading.Thread | None = None
        self._failure: sqlite3.Error | None = None

    def close(self) -> None:
        self.flush()
        self._db.close()
        self._writer_db.close()

    def record(
        self,
        *,
        key_id: str,
        tenant: str,
        action: str,
        collection: str | None = None,
        person: str | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:
        at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        counted = json.dumps({k: int(v) for k, v in (counts or {}).items()})
        with self._state:
            self._raise_failure()
            self._unwritten.append((at, key_id, tenant, action, collection, person, counted))
            self._recorded += 1
            if self._writer is None:
                self._writer = threading.Thread(target=self._write, name="faceprint-audit")
                self._writer.start()

    def flush(self) -> None:
        """Wait until every row recorded so far is written."""
        with self._state:
            recorded = self._recorded
            self._state.wait_for(lambda: self._written >= recorded)
            self._raise_failure()

    def _write(self) -> None:
        while True:
            with self._state:
                rows, self._unwritten = self._unwritten, []
                if not rows:
                    self._writer = None
                    return
            try:
                with self._writer_db:
                    self._writer_db.execute("BEGIN IMMEDIATE")
                    self._writer_db.executemany(
                        "INSERT INTO audit (at, key_id, tenant, action, collection, person, counts)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
            except sqlite3.Error as error:
                with self._state:
                    self._failure = error
            with self._state:
                self._written += len(rows)
                self._state.notify_all()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def entries(self, tenant: str, *, limit: int = 100, before: int | None = None) -> list[AuditEntry]:
        """The tenant's latest entries, newest first (older than entry id ``before``, for paging)."""
        self.flush()
        rows = self._db.execute(
            "SELECT id, at, key_id, tenant, action, collection, person, counts FROM audit"
            " WHERE tenant = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (tenant, before if before is not None else 2**62, limit),
        )
        return [AuditEntry(i, at, k, t, a, c, p, json.loads(counts)) for i, at, k, t, a, c, p, counts in rows]
