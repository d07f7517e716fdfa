"""The small SQLite files of a service's data directory (API keys, audit log), shared by every server process."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def open_data_db(data_dir: str | os.PathLike, file_name: str, schema: str) -> sqlite3.Connection:
    """``<data_dir>/<file_name>`` in WAL mode (readers never wait for a writer), with ``schema`` applied;
    autocommit, usable from the server's worker threads."""
    path = Path(data_dir) / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema)
    return db
