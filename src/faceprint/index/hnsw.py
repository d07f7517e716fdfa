"""Approximate nearest-template search: an HNSW graph from usearch (chosen over faiss in BENCHMARKS.md).

usearch removes vectors by key (faiss's HNSW cannot remove), stores float16/int8 vectors
natively and memory-maps a saved index, so a million-template gallery opens in milliseconds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from usearch.index import Index

#: How vectors are stored in the graph: float32 (exact scores), float16 (half the memory), int8 (a quarter).
Storage = Literal["f32", "f16", "i8"]
STORAGES: tuple[Storage, ...] = ("f32", "f16", "i8")

#: Graph degree ("M") and insertion depth ("efConstruction"), fixed by bench/index_scale.py's
#: measurements on face templates.
CONNECTIVITY = 32
EXPANSION_ADD = 128
#: Search depth ("ef") up to 100,000 templates: recall@1 99.9 % there (BENCHMARKS.md, "1:N search at scale").
EXPANSION_SEARCH = 128
#: Concurrent inserts into a near-empty graph leave some nodes poorly linked (900 clustered templates:
#: recall@1 between 98.3 % and 100 % from run to run, always 100 % when inserted one by one); past a
#: few thousand nodes parallel inserts cost no recall, so only the first ones are inserted serially.
SERIAL_INSERTS = 2000


def search_depth(count: int) -> int:
    """The search depth ("ef") that keeps recall@1 ≥ 99.5 % on a graph of ``count`` templates.

    A bigger graph needs a deeper search for the same recall: measured at 1,000,000 templates, ef 128
    finds exact search's best template for 98.25 % of faces, ef 256 for 99.55 % (in about twice the
    time). ef doubles from 100k to 1M and grows by 128 per further factor of 10.
    """
    return EXPANSION_SEARCH + round(EXPANSION_SEARCH * max(0.0, math.log10(max(count, 1) / 100_000)))


class HNSWIndex:
    """Cosine (inner product of unit vectors) HNSW search over template ids."""

    def __init__(self, index: Index) -> None:
        self._index = index
        self._fixed_depth: int | None = None

    @classmethod
    def empty(cls, dimension: int, storage: Storage = "f32") -> HNSWIndex:
        index = Index(
            ndim=dimension,
            metric="ip",
            dtype=storage,
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION_ADD,
            expansion_search=EXPANSION_SEARCH,
        )
        return cls(index)

    @classmethod
    def build(
        cls,
        chunks: Iterable[tuple[np.ndarray, np.ndarray]],
        dimension: int,
        storage: Storage = "f32",
        on_added: Callable[[int], None] | None = None,
    ) -> HNSWIndex:
        """An index of every ``(ids, vectors)`` chunk, using every core."""
        built = cls.empty(dimension, storage)
        for ids, vectors in chunks:
            built.add(ids, vectors)
            if on_added is not None:
                on_added(len(ids))
        return built

    @classmethod
    def load(cls, path: Path, *, view: bool) -> HNSWIndex:
        """A saved index; ``view`` memory-maps it read-only (instant open, no copy in RAM)."""
        index = Index.restore(str(path), view=view)
        if index is None:
            raise ValueError(f"{path}: not a usearch index")
        return cls(index)

    def copy(self) -> HNSWIndex:
        """A private, writable copy (of a memory-mapped view, say)."""
        copied = HNSWIndex(self._index.copy())
        copied._fixed_depth = self._fixed_depth
        return copied

    def save(self, path: Path) -> None:
        """Write to ``path`` atomically: a crash leaves the old file or the new one, never half of one."""
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        self._index.save(str(partial))
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, path)

    @property
    def expansion_search(self) -> int:
        """Search depth ("ef"): higher finds more of the true nearest templates, slower. Follows the
        graph's size (``search_depth``) unless set; set ``None`` to follow it again."""
        return self._fixed_depth or search_depth(len(self))

    @expansion_search.setter
    def expansion_search(self, value: int | None) -> None:
        self._fixed_depth = value

    @property
    def storage(self) -> str:
        return str(self._index.dtype).rsplit(".", 1)[-1].lower()

    @property
    def dimension(self) -> int:
        return int(self._index.ndim)

    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, template_id: int) -> bool:
        return template_id in self._index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = np.asarray(ids, np.uint64), np.ascontiguousarray(vectors, np.float32)
        serial = max(0, min(len(ids), SERIAL_INSERTS - len(self)))
        if serial:
            self._index.add(ids[:serial], vectors[:serial], threads=1)
        if len(ids) > serial:
            self._index.add(ids[serial:], vectors[serial:], threads=0)

    def remove(self, ids: np.ndarray) -> None:
        present = [int(i) for i in ids if int(i) in self._index]
        if present:
            self._index.remove(present)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored (possibly quantised) vectors of ``ids``, as float32."""
        return np.asarray(self._index.get(np.asarray(ids, np.uint64), dtype=np.float32), np.float32)

    def keys(self) -> np.ndarray:
        return np.asarray(self._index.keys, np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, template_ids)``, best first; rows padded with ``-1`` ids when fewer are found.

        One query runs on one thread (a second only adds overhead); a batch uses every core.
        """
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        self._index.expansion_search = self.expansion_search
        found = self._index.search(queries, k, threads=1 if len(queries) == 1 else 0)
        keys = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        if len(queries) == 1:  # one query's Matches hold only what was found
            count = len(found.keys)
            keys[0, :count], scores[0, :count] = found.keys, 1.0 - found.distances
            return scores, keys
        filled = np.arange(k)[None, :] < np.asarray(found.counts)[:, None]
        keys[filled] = np.asarray(found.keys, np.int64)[filled]
        scores[filled] = 1.0 - np.asarray(found.distances, np.float32)[filled]
        return scores, keys
