"""The service's audit log: who did what to which collection and person, and how much.

One row per changing or reading request: the API key's id (never its secret), the tenant, the action, the
collection, the person, and counts (faces added, refused, ...). Never an image, a template or a face box:
the log says that Rose Leslie got two photos at 10:02 by key 3f2a, not what she looks like.
"""

from __future__ import annotations

import json
import os
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
    """The audit log of a data directory (``<data>/audit.db``, SQLite in WAL mode, shared by every process)."""

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self._db = open_data_db(data_dir, AUDIT_FILE, _SCHEMA)

    def close(self) -> None:
        self._db.close()

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
        self._db.execute(
            "INSERT INTO audit (at, key_id, tenant, action, collection, person, counts) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                at,
                key_id,
                tenant,
                action,
                collection,
                person,
                json.dumps({k: int(v) for k, v in (counts or {}).items()}),
            ),
        )

    def entries(self, tenant: str, *, limit: int = 100, before: int | None = None) -> list[AuditEntry]:
        """The tenant's latest entries, newest first (older than entry id ``before``, for paging)."""
        rows = self._db.execute(
            "SELECT id, at, key_id, tenant, action, collection, person, counts FROM audit"
            " WHERE tenant = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (tenant, before if before is not None else 2**62, limit),
        )
        return [AuditEntry(i, at, k, t, a, c, p, json.loads(counts)) for i, at, k, t, a, c, p, counts in rows]
