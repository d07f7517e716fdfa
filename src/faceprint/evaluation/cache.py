"""Embedding each image's main face for an evaluation, with an on-disk cache so a re-run is fast.

The cache is one SQLite file keyed by the image file's SHA-256 and a digest of everything a
template depends on (faceprint version, model, pipeline options), so a renamed file is still
found and a changed option or model never reuses a stale vector. With a master key (``$FACEPRINT_KEY_FILE``, as for
galleries: ``faceprint.protect``) the vectors are stored AES-256-GCM encrypted under the cache's own wrapped data key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import platformdirs

from ..errors import KeyRequiredError
from ..pipeline import ImageResult, PipelineOptions, process_files
from ..protect import Sealer, key_from_env, new_key, unwrap_data_key, wrap_data_key
from ..quality import DEFAULT_THRESHOLDS

QUALITY_FIELDS = ("face_size", "sharpness", "yaw")


def default_cache_path() -> Path:
    return platformdirs.user_cache_path("faceprint") / "eval-embeddings.db"


@dataclass(frozen=True)
class EmbeddedImages:
    """Main-face template of each image (NaN row when none), its status and quality measures."""

    paths: list[Path]
    vectors: np.ndarray
    #: "hog"/"cnn": the detector that found the face; "none": no face; "error": unreadable
    status: np.ndarray
    #: per image: face size (px), sharpness, yaw (degrees); NaN without a face
    quality: np.ndarray
    problems: dict[Path, str]
    cached: int
    seconds: float

    def rows(self, paths: Sequence[Path]) -> np.ndarray:
        """Row of each of ``paths`` in the arrays."""
        index = {p: i for i, p in enumerate(self.paths)}
        return np.array([index[p] for p in paths], dtype=np.int64)


def options_key(options: PipelineOptions) -> str:
    """Digest of what shapes a template; quality thresholds and thread counts do not (so every key has the defaults)."""
    relevant = dataclasses.replace(options, thresholds=DEFAULT_THRESHOLDS, threads=None)
    return hashlib.sha256(f"faceprint {metadata.version('faceprint')} {relevant!r}".encode()).hexdigest()[:24]


class EmbeddingCache:
    """Main-face results by (file SHA-256, options key) in a SQLite file."""

    def __init__(self, path: Path | None = None, *, key: bytes | None = None) -> None:
        """``key``: the master key (default: ``$FACEPRINT_KEY_FILE``'s); a cache made with one needs it, and a plain
        cache opened with one drops its rows (they are recomputed, encrypted)."""
        self.path = path or default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS face (sha256 TEXT, options TEXT, status TEXT, vector BLOB, quality TEXT,"
            " message TEXT, PRIMARY KEY (sha256, options))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        try:
            self._sealer = self._open_sealer(key if key is not None else key_from_env())
        except BaseException:
            self._db.close()
            raise

    def _open_sealer(self, master_key: bytes | None) -> Sealer | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'data_key'").fetchone()
        if row is not None:
            if master_key is None:
                raise KeyRequiredError(
                    f"{self.path}: the embedding cache is encrypted; give its key file ($FACEPRINT_KEY_FILE), "
                    "or run with --no-cache"
                )
            return Sealer(unwrap_data_key(row[0], master_key, _CACHE_OWNER, str(self.path)))
        if master_key is None:
            return None
        data_key = new_key()
        with self._db:
            self._db.execute("DELETE FROM face")  # vectors in the clear: recomputed and stored encrypted
            wrapped = wrap_data_key(data_key, master_key, _CACHE_OWNER)
            self._db.execute("INSERT INTO meta (key, value) VALUES ('data_key', ?)", (wrapped,))
        return Sealer(data_key)

    def close(self) -> None:
        self._db.close()

    def get(self, digests: Sequence[str], options: str) -> dict[str, tuple]:
        found = {}
        for i in range(0, len(digests), 500):  # SQLite limits the number of bound parameters
            chunk = list(digests[i : i + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT sha256, status, vector, quality, message FROM face WHERE options = ? AND sha256 IN ({marks})",
                [options, *chunk],
            )
            found.update({row[0]: (row[1], self._vector(row[2], row[0], options), *row[3:]) for row in rows})
        return found

    def put(self, rows: Sequence[tuple]) -> None:
        """``(sha256, options, status, vector bytes or None, quality, message)`` rows."""
        if self._sealer is not None:
            sealer = self._sealer
            rows = [
                (d, o, s, v if v is None else sealer.seal(v, _row_context(d, o)), *rest) for d, o, s, v, *rest in rows
            ]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO face VALUES (?, ?, ?, ?, ?, ?)", rows)

    def _vector(self, stored: bytes | None, digest: str, options: str) -> bytes | None:
        if stored is None or self._sealer is None:
            return stored
        return self._sealer.open(stored, _row_context(digest, options), f"{self.path}: the cached vector of {digest}")


#: Whose data key a cache's wrapped key is (GCM associated data).
_CACHE_OWNER = "evaluation embedding cache"


def _row_context(digest: str, options: str) -> bytes:
    return f"faceprint cached vector\0{digest}\0{options}".encode()


def embed_images(
    paths: Sequence[Path],
    options: PipelineOptions,
    *,
    workers: int | None = 2,
    cache: EmbeddingCache | None = None,
    on_done: Callable[[int], None] | None = None,
) -> EmbeddedImages:
    """The main face (largest, favouring the centre) of every image, computing only what the cache lacks."""
    start = time.perf_counter()
    key = options_key(options)
    digests = {p: _file_digest(p) for p in paths}
    known: dict[str, tuple] = cache.get([d for d in digests.values() if d], key) if cache else {}
    missing = {p: d for p, d in digests.items() if d and d not in known}
    if on_done:
        on_done(len(paths) - len(missing))
    computed = [_row(r) for r in process_files(list(missing), options, workers=workers, on_done=on_done)]
    if cache:
        cache.put([(d, key, *row) for d, row in zip(missing.values(), computed)])
    results = {**known, **dict(zip(missing.values(), computed))}
    return _assemble(list(paths), digests, results, options.model.dimension, len(paths) - len(missing), start)


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _row(result: ImageResult) -> tuple:
    """(status, vector bytes, quality JSON, message) of one pipeline result."""
    if result.error is not None:
        return ("error", None, None, str(result.error))
    if not result.faces:
        return ("none", None, None, f"{result.source}: no face found")
    face = result.faces[0]
    assert face.template is not None  # process_files embeds every face it returns
    measures = {name: getattr(face.quality, name) for name in QUALITY_FIELDS}
    return (face.detector, face.template.vector.astype(np.float32).tobytes(), json.dumps(measures), None)


def _assemble(
    paths: list[Path], digests: dict[Path, str | None], results: dict[str, tuple], dim: int, cached: int, start: float
) -> EmbeddedImages:
    vectors = np.full((len(paths), dim), np.nan, dtype=np.float32)
    quality = np.full((len(paths), len(QUALITY_FIELDS)), np.nan)
    status = np.full(len(paths), "error", dtype="<U5")
    problems: dict[Path, str] = {}
    for i, path in enumerate(paths):
        digest = digests[path]
        if digest is None:
            problems[path] = f"{path}: cannot read file"
            continue
        status[i], vector, measures, message = results[digest]
        if vector is not None:
            vectors[i] = np.frombuffer(vector, dtype=np.float32)
            quality[i] = [json.loads(measures)[name] for name in QUALITY_FIELDS]
        elif message:
            problems[path] = message
    return EmbeddedImages(paths, vectors, status, quality, problems, cached, time.perf_counter() - start)
