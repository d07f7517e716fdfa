"""Per-key request rates of the service, shared by every server process of a data directory.

A token bucket per API key (``rate`` requests per second on average, ``burst`` at once) kept in
``<data>/limits.db`` rather than in each process's memory: with ``faceprint serve --workers N`` a key gets
its rate once, not N times. Each request takes a token in one SQLite statement (an atomic upsert), without
an fsync (``synchronous=NORMAL`` in WAL mode: a power cut may forget the last tokens taken, which only
hands a key a few requests back). Cost per request: BENCHMARKS.md, "Service".
"""

from __future__ import annotations

import os
import sqlite3
import time

from .datadir import open_data_db

LIMITS_FILE = "limits.db"

#: Both tables of the file: the rate buckets and the query budgets.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS bucket (
    key_id TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS budget (
    key_id TEXT PRIMARY KEY,
    window_start REAL NOT NULL,
    used INTEGER NOT NULL
);
"""

# The bucket refilled since it was last taken from (wall-clock seconds: every process shares them; a clock
# set back refills nothing), less the token of this request, only where a whole token is there.
_TAKE = """
INSERT INTO bucket (key_id, tokens, updated) VALUES (:key, :burst - 1, :now)
ON CONFLICT (key_id) DO UPDATE
SET tokens = min(:burst, tokens + max(0, :now - updated) * :rate) - 1, updated = :now
WHERE min(:burst, tokens + max(0, :now - updated) * :rate) >= 1
RETURNING tokens
"""


def _open_limits(data_dir: str | os.PathLike) -> sqlite3.Connection:
    """The data directory's ``limits.db``, written without an fsync per statement (see above)."""
    db = open_data_db(data_dir, LIMITS_FILE, _SCHEMA)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class RateLimits:
    """The token buckets of a data directory's API keys."""

    def __init__(self, data_dir: str | os.PathLike, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1 (got {rate}, {burst})")
        self.rate, self.burst = rate, burst
        self._db = _open_limits(data_dir)

    def close(self) -> None:
        self._db.close()

    def take(self, key_id: str) -> float:
        """One request of ``key_id``: 0 if it may go ahead, else the seconds until it may (nothing is taken)."""
        now = time.time()
        taken = self._db.execute(_TAKE, {"key": key_id, "burst": self.burst, "now": now, "rate": self.rate})
        if taken.fetchone() is not None:
            return 0.0
        tokens, updated = self._db.execute("SELECT tokens, updated FROM bucket WHERE key_id = ?", (key_id,)).fetchone()
        available = min(self.burst, tokens + max(0.0, now - updated) * self.rate)
        return max((1.0 - available) / self.rate, 1e-3)


#: The window a key's query budget is counted in: a UTC day.
BUDGET_WINDOW = 86_400.0

# One query counted in the current window (a new window starts the count afresh), only while under budget.
_SPEND = """
INSERT INTO budget (key_id, window_start, used) VALUES (:key, :start, 1)
ON CONFLICT (key_id) DO UPDATE
SET used = CASE WHEN window_start = :start THEN used + 1 ELSE 1 END, window_start = :start
WHERE window_start != :start OR used < :budget
RETURNING used
"""


class QueryBudgets:
    """Each API key's queries per window (``BUDGET_WINDOW``), counted in ``<data>/limits.db`` beside the rate
    buckets, so that every server process draws on one budget: score-based attacks (hill-climbing, model
    inversion) need many queries, which a budget denies them."""

    def __init__(self, data_dir: str | os.PathLike, window: float = BUDGET_WINDOW) -> None:
        self.window = window
        self._db = _open_limits(data_dir)

    def close(self) -> None:
        self._db.close()

    def spend(self, key_id: str, budget: int) -> float:
        """One query of ``key_id`` against ``budget``: 0 if it may go ahead, else the seconds until its next
        window (nothing is counted)."""
        now = time.time()
        start = now - now % self.window
        spent = self._db.execute(_SPEND, {"key": key_id, "start": start, "budget": budget})
        return 0.0 if spent.fetchone() is not None else max(start + self.window - now, 1e-3)
