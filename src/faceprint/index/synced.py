"""A search index kept consistent with a gallery store, persisted next to the gallery file.

The store is the source of truth; the index is a cache of it. Each template insertion or
deletion gets a sequence number in the store's change log (written by the same transaction),
and the index records the last change it holds. Before every search the index replays the
newer changes, whichever process made them. Replaying is idempotent (every touched template is
removed, then re-added if it still exists), so an index that holds more than its recorded
change is still made exact. A saved index that is missing, built for another gallery file,
model, storage type or format, newer than the gallery, or unreadable is rebuilt from the store.

Small galleries are searched exactly (one matrix product); from ``ANN_THRESHOLD`` templates on,
an HNSW graph is used, with exact re-ranking of the candidates when the graph stores float16 or
int8 vectors. The file is written only by whole-file atomic replacement (index first, then its
info), so killing the process at any moment leaves the old file, the new one, or an info that
no longer matches it (rebuilt on the next open): never a wrong answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..choices import MODES, STORAGES, Mode, Storage
from ..errors import KeyRequiredError
from ..progress import OnProgress
from ..protect import Sealer
from . import ExactIndex, distinct
from .hnsw import HNSWIndex

try:
    import fcntl
except ImportError:  # Windows: concurrent saves of one index are not serialised
    fcntl = None  # type: ignore[assignment]

#: Exact search up to this many templates, HNSW from here on. Measured (BENCHMARKS.md, "1:N at
#: scale"): numpy brute force answers one query in ~1 ms at 50k templates on 2 cores, the p50
#: target, while an HNSW graph costs build time and memory and misses a small fraction of matches.
ANN_THRESHOLD = 50_000
#: Index file format: bump whenever the layout or the HNSW parameters change.
FORMAT = 2
#: Save the index again once this many changes (or 1 % of the index, if more) are not in the saved file:
#: replaying fewer at the next open is quicker than writing the whole file after every enrollment.
CHECKPOINT_CHANGES = 1000
#: Rebuild the graph once this share of its nodes are removed templates: searches walk through
#: tombstones without returning them, so each one costs time and memory but no correctness.
COMPACT_SHARE = 0.25
#: Candidates fetched per wanted result when the graph holds quantised vectors, before exact re-ranking.
RERANK_FACTOR = 2
#: How a sealed graph stores its vectors unless the user chooses: a sealed file is decrypted whole into fresh memory
#: at every open, and int8 vectors make it 41 % of the float32 file (54 against 130 MB at 100,000 256-d templates),
#: which opens about 2.5x sooner; scores stay exact (re-ranked with the gallery's float32 templates); recall@1 at
#: 100k was 99.75 % against float32's 99.90 % (one build each; BENCHMARKS.md, "Issue 17: sealed index open (third
#: 2026-12-02 session)").
SEALED_STORAGE: Storage = "i8"


class VectorStore(Protocol):
    """What a gallery store gives its index (SQLiteStore implements it)."""

    path: Path
    #: Seals the saved index when the store is encrypted (None: saved in the clear, and memory-mapped).
    sealer: Sealer | None

    def snapshot(self) -> contextlib.AbstractContextManager[None]: ...
    def last_change(self) -> int: ...
    def changed_templates(self, since: int) -> tuple[int, np.ndarray]: ...
    def template_count(self, model_id: str) -> int: ...
    def iter_vectors(self, model_id: str, chunk: int = ...) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...
    def vectors(self, template_ids: np.ndarray, model_id: str) -> tuple[np.ndarray, np.ndarray]: ...
    def meta(self, key: str) -> str | None: ...


@dataclass(frozen=True)
class IndexInfo:
    """The sidecar ``.json`` of a saved index: what it was built from."""

    format: int
    gallery_id: str
    model_id: str
    storage: str
    dimension: int
    change: int
    count: int
    bytes: int
    #: Encrypted with the gallery's data key (``faceprint.protect``).
    sealed: bool = False


def _saved_files(gallery: Path, storage: Storage) -> tuple[Path, Path]:
    """The saved graph of a gallery file for ``storage``, and its info (one file per storage type, so trying f16
    does not throw away a built f32 index)."""
    suffix = ".hnsw" if storage == "f32" else f".{storage}.hnsw"
    return gallery.with_name(gallery.name + suffix), gallery.with_name(gallery.name + suffix + ".json")


class SyncedIndex:
    """Nearest templates of a store, exact or HNSW, always reflecting the store's committed state.

    ``mode``: ``"auto"`` (HNSW from ``threshold`` templates), ``"exact"`` or ``"hnsw"``.
    ``storage``: how the HNSW graph stores vectors (``"f32"``, ``"f16"`` or ``"i8"``; default ``"f32"``, and
    ``SEALED_STORAGE`` when the store seals its index).
    ``on_progress``: told how building the graph advances (see ``faceprint.progress``).
    """

    def __init__(
        self,
        store: VectorStore,
        model_id: str,
        *,
        mode: Mode = "auto",
        storage: Storage | None = None,
        threshold: int = ANN_THRESHOLD,
        on_progress: OnProgress | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"index mode must be one of {', '.join(MODES)}, not {mode!r}")
        storage = storage or (SEALED_STORAGE if store.sealer is not None else "f32")
        if storage not in STORAGES:
            raise ValueError(f"index storage must be one of {', '.join(STORAGES)}, not {storage!r}")
        self.store = store
        self.model_id = model_id
        self.mode = mode
        self.storage = storage
        self.threshold = threshold
        self.on_progress = on_progress
        self.path, self.info_path = _saved_files(store.path, storage)
        #: Why the saved index was last rebuilt (None: it was up to date or never needed).
        self.rebuild_reason: str | None = None
        self._lock = threading.RLock()
        self._index: ExactIndex | HNSWIndex | None = None
        self._change = -1
        self._view = False  # the HNSW graph is a read-only memory map of the saved file
        self._unsaved = 0

    # --- searching ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.refresh())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, template_ids)`` of the ``k`` nearest templates per query, best first, exact
        scores; rows are padded with ``-1`` ids (and ``-inf`` scores) when fewer are found."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if not len(queries):
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64)
        with self._lock:
            index = self.refresh()
            if isinstance(index, HNSWIndex) and index.storage != "f32":
                return self._reranked(index.search, queries, k * RERANK_FACTOR, k)
            return index.search(queries, k)

    def exhaustive_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``search`` comparing every template (``HNSWIndex.scan``), for the answers the graph may have got wrong;
        None when the gallery is searched exactly already (below the HNSW threshold, or ``mode="exact"``)."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        with self._lock:
            index = self.refresh()
            if not isinstance(index, HNSWIndex):
                return None
            if not len(queries):
                return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64)
            if index.storage == "f32":  # in slices: each query's candidates' vectors are read to score them
                return _in_slices(lambda rows: index.scan(rows, k), queries)
            return self._reranked(index.scan, queries, k * RERANK_FACTOR, k)

    def _reranked(
        self,
        candidates_of: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
        queries: np.ndarray,
        wanted: int,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``k`` best of ``wanted`` candidates per query picked by ``candidates_of`` (quantised scores), scored with
        the store's float32 vectors; in slices (a whole batch's candidates' vectors would take a lot of memory)."""
        return _in_slices(lambda rows: self._reranked_slice(candidates_of, rows, wanted, k), queries)

    def _reranked_slice(
        self,
        candidates_of: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
        queries: np.ndarray,
        wanted: int,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        _, candidates = candidates_of(queries, wanted)
        ids, vectors = self.store.vectors(distinct(candidates[candidates >= 0]), self.model_id)
        width = min(k, candidates.shape[1])
        if not len(ids):
            return np.full((len(queries), 0), -np.inf, np.float32), np.full((len(queries), 0), -1, np.int64)
        rows = np.searchsorted(ids, candidates).clip(max=len(ids) - 1)
        stored = ids[rows] == candidates  # False for padding and for templates removed meanwhile
        exact = np.einsum("qd,qkd->qk", queries, vectors[rows])
        exact[~stored] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")[:, :width]
        scores = np.take_along_axis(exact, order, axis=1).astype(np.float32)
        found = np.where(np.isfinite(scores), np.take_along_axis(candidates, order, axis=1), -1)
        return scores, found

    # --- keeping up with the store --------------------------------------------------------

    def refresh(self, *, whole: bool = False) -> ExactIndex | HNSWIndex:
        """The index, brought up to the store's latest committed change; ``whole``: a sealed graph's links too (it
        answers searches by scan while they are decrypted, ``HNSWIndex.load``)."""
        with self._lock, self.store.snapshot():
            change = self.store.last_change()
            self._rebuild_if_unopened(change, wait=whole or change != self._change)
            if self._index is not None and change == self._change:
                return self._index
            if isinstance(self._index, HNSWIndex):
                self._apply_changes()
            if not self._wants_hnsw():
                ids, vectors = self._all_vectors()
                self._index, self._change = ExactIndex(ids, vectors), change
                return self._index
            if not isinstance(self._index, HNSWIndex):
                self._index = self._open_saved(change)
                if self._index is None:
                    self._index = self._converted(change)
                if self._index is not None:
                    self._apply_changes()
            if self._index is not None and self._index.dead_share > COMPACT_SHARE:
                self.rebuild_reason = f"{self._index.dead_share:.0%} of the graph were removed templates"
                self._index = None
            if self._index is None:
                self._index = self._build(change)
            self._checkpoint_if_due()
            return self._index

    def _rebuild_if_unopened(self, change: int, wait: bool) -> None:
        """A graph whose sealed links did not open (the file altered since its vectors were read) is rebuilt; ``wait``:
        for them to open or not (the graph is about to be used whole)."""
        if isinstance(self._index, HNSWIndex) and (failure := self._index.opening_failure(wait)) is not None:
            self.rebuild_reason = f"{self.path} is unreadable ({failure})"
            self._build(change)

    def _wants_hnsw(self) -> bool:
        if self.mode != "auto":
            return self.mode == "hnsw"
        if isinstance(self._index, HNSWIndex):  # up to date, and cheaper than counting in the store
            return len(self._index) >= self.threshold
        return self.store.template_count(self.model_id) >= self.threshold

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        chunks = list(self.store.iter_vectors(self.model_id))
        if not chunks:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])

    def _apply_changes(self) -> None:
        assert isinstance(self._index, HNSWIndex)
        latest, touched = self.store.changed_templates(self._change)
        if not len(touched):
            self._change = latest
            return
        if self._view:  # the memory map is read-only: take a private copy before changing it
            self._index, self._view = self._index.copy(), False
        ids, vectors = self.store.vectors(touched, self.model_id)
        self._index.remove(touched)
        self._index.add(ids, vectors)
        self._change = latest
        self._unsaved += len(touched)

    def _checkpoint_if_due(self) -> None:
        if self._unsaved and self._unsaved >= max(CHECKPOINT_CHANGES, len(self._index or ()) // 100):
            self.save()

    def erase_removed(self) -> None:
        """Leave no removed template's vector in a file this index wrote: the saved graph's tombstones are zeroed
        (``HNSWIndex.scrub_removed``) and the file written anew; saved graphs of other storage types, and one this
        gallery no longer searches with, are deleted (caches: rebuilt when next needed)."""
        with self._lock, self.store.snapshot():
            for storage in STORAGES:
                if storage != self.storage:
                    for path in _saved_files(self.store.path, storage):
                        path.unlink(missing_ok=True)
            if not self.path.is_file():
                return
            index = self.refresh(whole=True)
            if not isinstance(index, HNSWIndex):
                self.path.unlink(missing_ok=True)
                self.info_path.unlink(missing_ok=True)
                return
            if self._view:
                index, self._view = index.copy(), False
                self._index = index
            index.scrub_removed()
            self.save()

    def close(self) -> None:
        """Save the index if enough changes are not in the saved file yet (the store stays open)."""
        with self._lock:
            if isinstance(self._index, HNSWIndex):
                self._checkpoint_if_due()

    # --- the saved file -------------------------------------------------------------------

    def read_info(self) -> IndexInfo | None:
        try:
            return IndexInfo(**json.loads(self.info_path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"unreadable index info {self.info_path} ({exc})") from None

    def _open_saved(self, change: int) -> HNSWIndex | None:
        """The saved graph, memory-mapped (a sealed one from its decrypted copy in memory), if it is one of this
        gallery's states; else None (and why)."""
        try:
            info = self.read_info()
            problem = self._mismatch(info, change)
            if problem is None:
                assert info is not None
                sealer = self.store.sealer
                index = HNSWIndex.load(self.path, view=True, sealer=sealer, context=self._context())
                if len(index) == info.count and index.dimension == info.dimension:
                    self._view, self._change, self._unsaved = index.read_only, info.change, 0
                    return index
                problem = f"{self.path} is corrupt: {len(index)} vectors where {info.count} were saved"
        except (OSError, ValueError, RuntimeError, KeyRequiredError) as exc:
            problem = f"{self.path} is unreadable ({exc})"
        self.rebuild_reason = problem
        return None

    def _converted(self, change: int) -> HNSWIndex | None:
        """This gallery's saved float32 graph with its vectors encoded as this index's storage, saved (the same links:
        seconds, where a build takes minutes at 100,000 templates), so that a gallery encrypted before its default
        storage became ``SEALED_STORAGE`` keeps its graph; None when there is no usable float32 graph."""
        if self.storage == "f32":
            return None
        source = SyncedIndex(self.store, self.model_id, mode="hnsw", storage="f32")
        saved = source._open_saved(change)
        if saved is None:
            return None
        self._index, self._view, self._change = saved.with_storage(self.storage), False, source._change
        self.save()
        self.rebuild_reason = f"{self.path} converted from {source.path}"
        return self._index

    def _mismatch(self, info: IndexInfo | None, change: int) -> str | None:
        """Why a saved index with ``info`` cannot serve the gallery at ``change`` (None if it can)."""
        if info is None or not self.path.is_file():
            return f"no saved index at {self.path}"
        expected = {
            "format": FORMAT,
            "gallery_id": self.store.meta("gallery_id"),
            "model_id": self.model_id,
            "storage": self.storage,
            "sealed": self.store.sealer is not None,
        }
        for key, value in expected.items():
            if getattr(info, key) != value:
                return f"{self.path} was built for {key} {getattr(info, key)!r}, not {value!r}"
        if info.change > change:
            return f"{self.path} is newer than the gallery (change {info.change} > {change}): a restored backup?"
        if info.bytes != self.path.stat().st_size:
            return f"{self.path} does not match its info {self.info_path} (interrupted save?)"
        return None

    def _build(self, change: int) -> HNSWIndex:
        """A new graph from every template of the store (inside the caller's snapshot), saved."""
        added = self._reporter(f"building the search index of {self.store.path.name}")
        index = HNSWIndex.build(self.store.iter_vectors(self.model_id), self._dimension(), self.storage, added)
        self._view, self._change, self._unsaved = False, change, len(index)
        self._index = index
        self.save()
        return index

    def _reporter(self, description: str) -> Callable[[int], None] | None:
        """``on_added(n)`` for a build: passes the running count of added templates to ``on_progress``."""
        on_progress = self.on_progress
        if on_progress is None:
            return None
        total, done = self.store.template_count(self.model_id), 0
        on_progress(description, 0, total)

        def added(count: int) -> None:
            nonlocal done
            done += count
            on_progress(description, done, total)

        return added

    def _dimension(self) -> int:
        for _, vectors in self.store.iter_vectors(self.model_id, chunk=1):
            return vectors.shape[1]
        return 128

    def rebuild(self) -> dict[str, object]:
        """Build the HNSW graph from the store anew and save it, whatever the mode and size; what was built."""
        with self._lock, self.store.snapshot():
            self.rebuild_reason = "asked for"
            self._index = None
            built = self._build(self.store.last_change())
            return {"templates": len(built), "storage": built.storage, "file": str(self.path)}

    def save(self) -> None:
        """Write the graph and then its info, each atomically (one process at a time)."""
        with self._lock, self._save_lock():
            index = self._index
            if not isinstance(index, HNSWIndex):
                return
            index.save(self.path, sealer=self.store.sealer, context=self._context())
            info = IndexInfo(
                format=FORMAT,
                gallery_id=self.store.meta("gallery_id") or "",
                model_id=self.model_id,
                storage=self.storage,
                dimension=index.dimension,
                change=self._change,
                count=len(index),
                bytes=self.path.stat().st_size,
                sealed=self.store.sealer is not None,
            )
            partial = self.info_path.with_name(f"{self.info_path.name}.{os.getpid()}.partial")
            with open(partial, "w") as f:
                json.dump(asdict(info), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, self.info_path)
            self._unsaved = 0

    def _context(self) -> bytes:
        """What a sealed index file is bound to: this gallery, model and storage."""
        owner = f"{self.store.meta('gallery_id')}\0{self.model_id}\0{self.storage}"
        return b"faceprint index\0" + owner.encode()

    @contextlib.contextmanager
    def _save_lock(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # --- inspection -----------------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        """What is searched and how: kind, size, storage, memory, saved file and its state."""
        with self._lock:
            started = time.perf_counter()
            index = self.refresh(whole=True)
            seconds = time.perf_counter() - started
            hnsw = isinstance(index, HNSWIndex)
            # A saved graph is reported also when this gallery is searched exactly ("auto" below the threshold).
            saved = self.path.is_file()
            info = self.read_info() if saved else None
            if isinstance(index, HNSWIndex):
                storage, memory = index.storage, index.memory_bytes()
            else:
                storage, memory = "f32", int(index.vectors.nbytes + index.ids.nbytes)
            return {
                "kind": "hnsw" if hnsw else "exact",
                "mode": self.mode,
                "threshold": self.threshold,
                "templates": len(index),
                "storage": storage,
                # A memory-mapped graph's vectors and links are in the file (paged in as searched), not counted here.
                "memory_bytes": memory,
                "memory_mapped": hnsw and self._view,
                "file": str(self.path) if saved else None,
                "file_bytes": self.path.stat().st_size if saved else None,
                "saved_change": info.change if info else None,
                "gallery_change": self._change,
                "rebuilt": self.rebuild_reason,
                "open_seconds": round(seconds, 4),
            }

    def verify(self) -> list[str]:
        """Problems found comparing the index with the store, template by template (empty: consistent)."""
        with self._lock, self.store.snapshot():
            index = self.refresh()
            problems: list[str] = []
            stored = 0
            for ids, vectors in self.store.iter_vectors(self.model_id):
                stored += len(ids)
                if isinstance(index, HNSWIndex):
                    problems += self._compare(index, ids, vectors)
            if len(index) != stored:
                problems.append(f"the index holds {len(index)} templates, the gallery {stored}")
            return problems[:20]

    def _compare(self, index: HNSWIndex, ids: np.ndarray, vectors: np.ndarray) -> list[str]:
        present = index.contains(ids)
        problems = [f"template {i} is missing from the index" for i in ids[~present][:10]]
        if present.any():
            stored = index.vectors(ids[present])
            tolerance = {"f32": 1e-6, "f16": 2e-3, "i8": 0.01}[self.storage]
            wrong = np.abs(stored - vectors[present]).max(axis=1) > tolerance
            problems += [f"template {i}'s vector differs in the index" for i in ids[present][wrong][:10]]
        return problems


def _in_slices(
    search: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], queries: np.ndarray, rows: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """``search`` over ``queries`` ``rows`` at a time, its ``(scores, ids)`` put back together."""
    parts = [search(queries[i : i + rows]) for i in range(0, len(queries), rows)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
