"""Nearest-template search behind one small interface, so an ANN index can replace exact search.

``SearchIndex`` is what searches; ``GalleryIndex`` is the one a gallery store opens over its templates
(``SQLiteStore``: ``faceprint.index.synced.SyncedIndex``, exact or HNSW; ``MilvusStore``: Milvus's own index),
and the only way ``Gallery`` searches. This module imports no ANN library: faiss loads with ``hnsw``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-d array, sorted: ``np.unique`` without the import of ``numpy.ma`` that its first
    call makes on numpy 2.x (12-35 ms measured here), which the first search of every process paid."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if len(ordered) else ordered


class SearchIndex(Protocol):
    """Finds the gallery templates most similar to each query template."""

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, template_ids)``, each ``(len(queries), min(k, len(self)))``, best first."""
        ...


class GalleryIndex(SearchIndex, Protocol):
    """The search index of a gallery store, kept in step with the store's templates by its owner."""

    def exhaustive_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``search`` comparing every template, for answers an approximate search may have got wrong (its graph
        can miss the nearest template); None when ``search`` is exact already, or when the index cannot."""
        ...

    def close(self) -> None:
        """Release the index (saving what is worth saving); the store stays open."""
        ...

    def stats(self) -> dict[str, object]:
        """What is searched and how."""
        ...

    def rebuild(self) -> dict[str, object]:
        """Build the index from the store anew; what was built."""
        ...

    def verify(self) -> list[str]:
        """Problems found comparing the index with the store (empty: consistent)."""
        ...

    def erase_removed(self) -> None:
        """Leave no copy of a removed template's vector in what the index keeps on disk (as far as it can)."""
        ...


#: Most query-template scores held at once by ExactIndex (float32: 64 MiB).
_MAX_SCORES = 1 << 24


class ExactIndex:
    """Brute-force cosine search with one matrix product: exact, and fast enough to ~100k templates."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors must have the same length")
        self.ids = np.asarray(ids, dtype=np.int64)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        k = min(k, len(self))
        if k == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        # Queries in blocks so the score matrix stays small (2,000 queries x 1M templates would be 8 GB).
        step = max(1, _MAX_SCORES // len(self))
        parts = [self._search_block(queries[i : i + step], k) for i in range(0, len(queries), step)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _search_block(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ self.vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        return np.take_along_axis(top_scores, order, axis=1), self.ids[np.take_along_axis(top, order, axis=1)]
