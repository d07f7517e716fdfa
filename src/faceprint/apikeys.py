"""API keys of the service: created for one tenant with scopes, shown once, stored only as a salted hash.

A key reads ``fpk_<id>_<secret>``: the id finds the stored row, the secret (256 random bits) is checked
against its salted SHA-256. A slow password hash would protect guessable secrets; these are random, and a
fast hash keeps the check below a millisecond on every request. Every check reads the key's row anew, so a
revocation or an expiry takes effect at the next request, in every server process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .choices import DISCLOSURES, SCOPES, Disclosure, Scope
from .datadir import open_data_db
from .errors import AccessError

PREFIX = "fpk"
KEYS_FILE = "keys.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_key (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    scopes TEXT NOT NULL,
    salt BLOB NOT NULL,
    secret_hash BLOB NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    disclosure TEXT NOT NULL DEFAULT 'scores',
    budget INTEGER
)
"""
#: Columns added since the first key stores, each with its definition (added to an older store on opening).
_ADDED = {"disclosure": "TEXT NOT NULL DEFAULT 'scores'", "budget": "INTEGER"}


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    tenant: str
    scopes: tuple[Scope, ...]
    label: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    #: The most a response to this key shows of its scores (``faceprint.match.disclose``).
    disclosure: Disclosure = "scores"
    #: Recognize/verify/search queries allowed per budget window (``faceprint.ratelimit.QueryBudgets``); None: no cap.
    budget: int | None = None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "scopes": list(self.scopes)}


def parse_scopes(names: Iterable[str]) -> tuple[Scope, ...]:
    """Scope names in canonical order; ``ValueError`` names an unknown one, or none given."""
    wanted = {name.strip() for name in names if name.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown or not wanted:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})")
    return tuple(scope for scope in SCOPES if scope in wanted)


class KeyStore:
    """The API keys of a data directory (``<data>/keys.db``, SQLite in WAL mode)."""

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self._db = open_data_db(data_dir, KEYS_FILE, _SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(api_key)")}
        for column, definition in _ADDED.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE api_key ADD COLUMN {column} {definition}")

    def close(self) -> None:
        self._db.close()

    def create(
        self,
        tenant: str,
        scopes: Iterable[str],
        *,
        expires_at: datetime | None = None,
        label: str = "",
        disclosure: Disclosure = "scores",
        budget: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its full text (``fpk_<id>_<secret>``), which is not stored and cannot be shown again.
        ``disclosure`` caps what its responses show of scores; ``budget`` caps its queries per window."""
        from .tenancy import check_name

        check_name(tenant, "tenant")
        if disclosure not in DISCLOSURES:
            raise ValueError(f"disclosure {disclosure!r}: choose one of {', '.join(DISCLOSURES)}")
        if budget is not None and budget < 1:
            raise ValueError(f"a query budget must be at least 1 (got {budget})")
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("an expiry needs a time zone (e.g. 2026-12-31T00:00:00+00:00)")
        key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_bytes(16)
        limits = (disclosure, budget)
        expiry = expires_at.astimezone(timezone.utc).isoformat(timespec="microseconds") if expires_at else None
        self._db.execute(
            "INSERT INTO api_key (id, tenant, scopes, salt, secret_hash, label, created_at, expires_at,"
            " disclosure, budget) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key_id, tenant, ",".join(parse_scopes(scopes)), salt, _hash(salt, secret), label, _now(), expiry, *limits),
        )
        return self.get(key_id), f"{PREFIX}_{key_id}_{secret}"

    def get(self, key_id: str) -> ApiKey:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM api_key WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise AccessError(f"no API key {key_id!r}")
        return _key(row)

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of ``tenant``), oldest first."""
        where, params = ("WHERE tenant = ?", (tenant,)) if tenant else ("", ())
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM api_key {where} ORDER BY created_at, id", params)
        return [_key(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key from now on (revoking it again keeps the first time)."""
        self.get(key_id)
        self._db.execute("UPDATE api_key SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (_now(), key_id))
        return self.get(key_id)

    def authenticate(self, token: str) -> ApiKey:
        """The key ``token`` is, if it is valid now; otherwise an ``AccessError`` (the same for every kind of
        wrong key, not saying which ids exist)."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        row = self._db.execute(f"SELECT {_COLUMNS}, salt, secret_hash FROM api_key WHERE id = ?", (key_id,)).fetchone()
        valid = (
            prefix == PREFIX
            and row is not None
            and hmac.compare_digest(_hash(row[-2], secret), row[-1])
            and row[6] is None
            and (row[5] is None or row[5] > _now())
        )
        if not valid:
            raise AccessError("invalid, expired or revoked API key")
        return _key(row[:-2])


_COLUMNS = "id, tenant, scopes, label, created_at, expires_at, revoked_at, disclosure, budget"


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, tenant, scopes, *rest = row
    return ApiKey(key_id, tenant, parse_scopes(scopes.split(",")), *rest)


def _hash(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
