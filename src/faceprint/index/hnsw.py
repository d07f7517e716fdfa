"""Approximate nearest-template search: an HNSW graph from faiss (chosen over usearch in BENCHMARKS.md).

At 1,000,000 templates faiss's HNSW reaches recall@1 99.5 % in 1.0–1.2 ms per query on one core,
where usearch needs 2.4–4.4 ms for the same recall. faiss cannot unlink a node from an HNSW graph,
so a removed template becomes a tombstone: its id in the graph's id map is set to ``-1``, searches
still walk through it (the graph stays navigable) but never return it, and the owner rebuilds the
graph once tombstones are a large share of it (``dead_share``). A saved graph is one file (vectors,
links and id map) that faiss memory-maps, so a million-template gallery opens in a fraction of a second. A sealed
file (an encrypted gallery's) must be decrypted into memory first: its vectors and id map, which faiss writes last,
are decrypted first and searched by scanning them while a thread decrypts the links (``load``).
``scan`` compares every template instead (a batch in matrix products, a few queries through an int8 copy of the
vectors): what a gallery confirms a "no" with, since the graph sometimes does not return the nearest template at all.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from ..choices import Storage
from ..protect import SealedFile, Sealer
from . import distinct

_QUANTISERS: dict[Storage, int] = {"f16": faiss.ScalarQuantizer.QT_fp16, "i8": faiss.ScalarQuantizer.QT_8bit_uniform}

#: Graph degree ("M") and insertion depth ("efConstruction"), fixed by bench/index_scale.py's
#: measurements on face templates: efConstruction 256 builds in twice the time of 128 but lets a
#: 1M graph reach recall@1 99.5 % at ef 224 instead of 320 (1.1 ms per query instead of 1.5 ms).
CONNECTIVITY = 32
EXPANSION_ADD = 256
#: Search depth ("ef") up to 100,000 templates (BENCHMARKS.md, "1:N search at scale").
EXPANSION_SEARCH = 128
#: Further depth per factor of 10 beyond 100,000 templates (1M: ef 448). Measured on the fused model's
#: 256-d templates at 1,000,000 (bench/open_set_misses.py; BENCHMARKS.md, "Open-set identification"): at ef 224
#: the graph did not return the mate of 35 of 821 mated faces-dev searches that exact search finds best (all 22
#: searches exact search names at FPIR 1e-2 and the gallery did not), at ef 448 of 18 (11 lost), at ef 1024 of 9
#: (7); one search on one thread took 3.3 ms at ef 224 and 6.1 ms at ef 448 (loaded machine), and a gallery's
#: search about 3x as long at ef 1024 as at 224. 448 halves the loss for twice the time; 128-d dlib templates
#: had recall@1 99.65 % already at ef 224.
EXPANSION_PER_DECADE = 320
#: Concurrent inserts into a near-empty graph can leave some nodes poorly linked (900 clustered
#: templates: recall@1 between 98.3 % and 100 % from run to run with usearch); past a few thousand
#: nodes parallel inserts cost no recall, so only the first ones are inserted on one thread.
SERIAL_INSERTS = 2000
#: faiss reports a removed template's id, and a missing result's, as -1.
_NONE = -1
#: Up to this many ids are looked up by scanning the id map (~0.5 ms per id at 1M) rather than by
#: sorting it (~80 ms at 1M, and undone by the next insertion).
_SCAN_LIMIT = 32
#: Bytes faiss asks for at a time from a sealed file.
_READ_CHUNK = 1 << 22
#: What a sealed file holds after faiss's serialisation (which faiss reads without it): this mark, then how many of
#: faiss's bytes at its end are the stored vectors and the id map (8 bytes, little-endian), for ``load`` to open first.
_TRAILER_MARK = b"fpvecs1\0"
_TRAILER_BYTES = len(_TRAILER_MARK) + 8
#: Accepts every live template id (tombstones are -1).
_LIVE = faiss.IDSelectorRange(0, np.iinfo(np.int64).max)
#: A scan of fewer than ``BATCH_SCAN`` queries over a float32 graph keeps this many candidates per wanted result
#: from its int8 copy, then scores them with the float32 vectors: the copy's error (about 0.002 in similarity)
#: reorders only near-ties, never a template this many places down.
SCAN_FACTOR = 2
#: From this many queries at once, ``scan`` multiplies them with the stored vectors block by block (one matrix
#: product, BLAS, every core) instead of faiss's per-query scan of an int8 copy: 20,000 searches of 1,000,000
#: 256-d templates took 7.5–8.0 s per 256 queries through faiss and 3.2–4.1 s through BLAS here (bench/index_scan.py);
#: the two break even near 24 queries at 1M (16: 0.44–0.55 s against 0.56–0.59 s; 32: 0.89–1.05 s against 0.74–0.8 s).
BATCH_SCAN = 24
#: Stored vectors multiplied with a batch's queries at a time (float32: 32 MiB at 256-d).
_SCAN_BLOCK = 32768


def search_depth(count: int) -> int:
    """The search depth ("ef") that keeps recall@1 ≥ 99.5 % on a graph of ``count`` templates.

    A bigger graph needs a deeper search for the same recall: measured at 1,000,000 templates of 128-d dlib
    templates, ef 128 finds exact search's best template for 98.8 % of faces, ef 224 for 99.55 %; the fused
    model's 256-d templates need more: ef 224 returns the mate of 95.7 % of mated searches, ef 448 97.8 %.
    """
    decades = max(0.0, math.log10(max(count, 1) / 100_000))
    return EXPANSION_SEARCH + round(EXPANSION_PER_DECADE * decades)


@dataclass
class _Arriving:
    """A sealed graph opened vectors first (``HNSWIndex.load``): its stored vectors and id map, decrypted and
    searchable by scan, and the whole graph, read by a thread once it has decrypted the links."""

    stored: faiss.IndexFlatCodes
    ids: np.ndarray
    graph: Future[faiss.IndexIDMap]

    def arrived(self) -> bool:
        return self.graph.done() and self.graph.exception() is None


class HNSWIndex:
    """Cosine (inner product of unit vectors) HNSW search over template ids."""

    def __init__(
        self, index: faiss.IndexIDMap | _Arriving, *, read_only: bool = False, source: Path | None = None
    ) -> None:
        self._arriving: _Arriving | None = None
        if isinstance(index, _Arriving):
            self._arriving = index
        else:
            self._take(index)
        #: A memory-mapped view: its vectors cannot be changed in place (``copy()`` first).
        self.read_only = read_only
        self._source = source  # the plain file a read-only view comes from (None: a sealed file's decrypted bytes)
        #: The decrypted sealed file that the graph's vectors are a view of (kept alive with it).
        self._plaintext: SealedFile | None = None
        self._fixed_depth: int | None = None
        self._dead = int(np.count_nonzero(self._ids() == _NONE))
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        #: The int8 copy of a float32 graph's vectors that ``scan`` compares every template with (built on first use).
        self._int8: faiss.IndexScalarQuantizer | None = None
        #: Which nodes ``scan`` may return (a bit per node, 0: tombstone), and faiss's selector over it.
        self._live_nodes: tuple[np.ndarray, faiss.IDSelector] | None = None

    def _take(self, index: faiss.IndexIDMap) -> None:
        self._whole = index
        self._whole_graph = cast(faiss.IndexHNSW, faiss.downcast_index(index.index))
        self._whole_stored = cast(faiss.IndexFlatCodes, faiss.downcast_index(self._whole_graph.storage))

    @property
    def _index(self) -> faiss.IndexIDMap:
        """faiss's whole index (a sealed graph opened vectors first waits for its links here)."""
        self.finish_opening()
        return self._whole

    @property
    def _graph(self) -> faiss.IndexHNSW:
        self.finish_opening()
        return self._whole_graph

    def _stored(self) -> faiss.IndexFlatCodes:
        """The stored vectors, node for node (also while a sealed graph's links are decrypted)."""
        return self._arriving.stored if self._arriving is not None else self._whole_stored

    def finish_opening(self) -> None:
        """Waits for a sealed graph's links (``load``); raises what kept them from opening."""
        if self._arriving is not None:
            self._take(self._arriving.graph.result())
            self._arriving = None

    def opening_failure(self, wait: bool = False) -> str | None:
        """Why a sealed graph's links did not open (altered on disk, say), once known (``wait``: wait until it is);
        None while they open and once they have. Searches scan the vectors meanwhile."""
        arriving = self._arriving
        if arriving is None or not (wait or arriving.graph.done()):
            return None
        failure = arriving.graph.exception()
        return None if failure is None else str(failure)

    @classmethod
    def empty(cls, dimension: int, storage: Storage = "f32") -> HNSWIndex:
        graph: faiss.IndexHNSW
        if storage == "f32":
            graph = faiss.IndexHNSWFlat(dimension, CONNECTIVITY, faiss.METRIC_INNER_PRODUCT)
        else:
            # faiss's stubs type the quantiser as a ScalarQuantizer; the SWIG constructor takes its type.
            quantiser = cast(faiss.ScalarQuantizer, _QUANTISERS[storage])
            graph = faiss.IndexHNSWSQ(dimension, quantiser, CONNECTIVITY, faiss.METRIC_INNER_PRODUCT)
            # Unit vectors' components lie in [-1, 1]: a fixed range, so no data is needed to train.
            graph.train(np.stack([-np.ones(dimension), np.ones(dimension)]).astype(np.float32))
        graph.hnsw.efConstruction = EXPANSION_ADD
        return cls(faiss.IndexIDMap(graph))  # the id map's Python object keeps the graph alive

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
    def load(cls, path: Path, *, view: bool, sealer: Sealer | None = None, context: bytes = b"") -> HNSWIndex:
        """A saved index; ``view`` memory-maps it read-only (instant open, pages read as searched); ``sealer``
        opens a file ``save`` sealed with ``context``: decrypted into memory that the graph is then a read-only view
        of, vectors first (``view``, with a faiss that can), or decrypted into faiss as it reads (writable)."""
        if sealer is None:
            index = _checked(faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if view else 0), path)
            return cls(index, read_only=view, source=path if view else None)
        if view and hasattr(faiss, "ZeroCopyIOReader"):
            return cls._opened_vectors_first(path, sealer, context)
        reader = faiss.PyCallbackIOReader(_ChunkReader(sealer.chunks(path, context)), _READ_CHUNK)  # type: ignore[attr-defined]
        return cls(_checked(faiss.read_index(reader), path))

    @classmethod
    def _opened_vectors_first(cls, path: Path, sealer: Sealer, context: bytes) -> HNSWIndex:
        """A sealed file read zero-copy, vectors first: the chunks of its stored vectors and id map (where ``save``'s
        trailer says) are decrypted on every core and searched by scan, while a thread decrypts the links and reads
        the whole graph, through which searches then go. Half the bytes stand between the open and its first answer
        (BENCHMARKS.md, "a sealed graph that decrypts its vectors first")."""
        sealed = SealedFile(sealer, path, context)
        trailer = sealed.opened(max(sealed.size - _TRAILER_BYTES, 0), sealed.size).tobytes()
        if not trailer.startswith(_TRAILER_MARK):  # saved before the trailer existed: the whole file first
            loaded = cls(_checked(_read_zero_copy(sealed.opened(0, sealed.size)), path), read_only=True)
        else:
            faiss_bytes = sealed.size - _TRAILER_BYTES
            tail = sealed.opened(faiss_bytes - int.from_bytes(trailer[len(_TRAILER_MARK) :], "little"), faiss_bytes)
            stored = _read_zero_copy(tail)
            id_map = tail[len(tail) - 8 * stored.ntotal - 8 :]
            if not isinstance(stored, faiss.IndexFlatCodes) or int.from_bytes(id_map[:8], "little") != stored.ntotal:
                raise ValueError(f"{path}: not a faceprint HNSW index")
            links = ThreadPoolExecutor(1, thread_name_prefix="faceprint-links")
            graph = links.submit(lambda: _checked(_read_zero_copy(sealed.opened(0, faiss_bytes, threads=1)), path))
            links.shutdown(wait=False)  # its thread ends with its one task
            loaded = cls(_Arriving(stored, id_map[8:].view(np.int64), graph), read_only=True)
        loaded._plaintext = sealed
        return loaded

    def copy(self) -> HNSWIndex:
        """A private, writable copy (of a memory-mapped view, say)."""
        if self._source is not None:
            copied = HNSWIndex.load(self._source, view=False)
        else:
            copied = HNSWIndex(cast(faiss.IndexIDMap, faiss.deserialize_index(faiss.serialize_index(self._index))))
        copied._fixed_depth = self._fixed_depth
        if self._int8 is not None:  # same nodes in the same order: the copy's int8 vectors are these
            copied._int8 = cast(faiss.IndexScalarQuantizer, faiss.clone_index(self._int8))
        return copied

    def with_storage(self, storage: Storage) -> HNSWIndex:
        """A writable copy whose vectors are stored as ``storage``: the same links and ids (tombstones included),
        the vectors encoded anew (from float32: seconds, where building the graph anew takes minutes at 100k)."""
        # A read-only view's links are views of memory it does not own: copying them would copy the views.
        source = self.copy() if self.read_only else self
        converted = HNSWIndex.empty(self.dimension, storage)
        graph, count = converted._graph, source._index.ntotal
        graph.hnsw = source._graph.hnsw  # SWIG assigns a copy of the links
        cast(faiss.IndexFlatCodes, faiss.downcast_index(graph.storage)).add(source._graph.reconstruct_n(0, count))
        graph.ntotal = converted._index.ntotal = count
        faiss.copy_array_to_vector(source._ids(), converted._index.id_map)
        return HNSWIndex(converted._index)

    def save(self, path: Path, *, sealer: Sealer | None = None, context: bytes = b"") -> None:
        """Write to ``path`` atomically: a crash leaves the old file or the new one, never half of one;
        encrypted by ``sealer`` (bound to ``context``) when given."""
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        if sealer is None:
            faiss.write_index(self._index, str(partial))
        else:
            with sealer.writing(partial, context) as write:
                faiss.write_index(self._index, faiss.PyCallbackIOWriter(write))  # type: ignore[attr-defined]
                write(_TRAILER_MARK + self._vectors_bytes().to_bytes(8, "little"))
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, path)

    def _vectors_bytes(self) -> int:
        """How many bytes of faiss's serialisation are its stored vectors and id map (written last)."""
        stored, empty = self._stored(), HNSWIndex.empty(self.dimension, self.storage)  # (kept: it owns its storage)
        return len(faiss.serialize_index(empty._stored())) + stored.ntotal * (stored.code_size + 8) + 8

    @property
    def expansion_search(self) -> int:
        """Search depth ("ef"): higher finds more of the true nearest templates, slower. Follows the
        graph's size (``search_depth``) unless set; set ``None`` to follow it again."""
        return self._fixed_depth or search_depth(len(self))

    @expansion_search.setter
    def expansion_search(self, value: int | None) -> None:
        self._fixed_depth = value

    @property
    def storage(self) -> Storage:
        stored = self._stored()
        if isinstance(stored, faiss.IndexScalarQuantizer):
            return next(name for name, q in _QUANTISERS.items() if q == stored.sq.qtype)
        return "f32"

    @property
    def dimension(self) -> int:
        return int(self._stored().d)

    @property
    def dead_share(self) -> float:
        """The share of the graph's nodes that are removed templates (tombstones)."""
        nodes = self._stored().ntotal
        return self._dead / nodes if nodes else 0.0

    def memory_bytes(self) -> int:
        """Bytes of vectors, links and ids (tombstones included)."""
        hnsw: Any = self._graph.hnsw  # faiss's stubs lack its link arrays
        vectors = self._index.ntotal * self._stored().code_size
        links = hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        scanned = self._int8.ntotal * self._int8.code_size if self._int8 is not None else 0
        return int(vectors + links + self._index.ntotal * 8 + scanned)

    def __len__(self) -> int:
        return self._stored().ntotal - self._dead

    def contains(self, template_ids: np.ndarray) -> np.ndarray:
        """Whether each of ``template_ids`` is in the index."""
        return self._labels(template_ids) >= 0

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = np.asarray(ids, np.int64), np.ascontiguousarray(vectors, np.float32)
        serial = max(0, min(len(ids), SERIAL_INSERTS - self._index.ntotal))
        if serial:
            with _threads(1):
                self._index.add_with_ids(vectors[:serial], ids[:serial])
        if len(ids) > serial:
            self._index.add_with_ids(vectors[serial:], ids[serial:])
        if self._int8 is not None:  # nodes are appended in order: the copy's rows stay the graph's nodes
            self._int8.add(vectors)
        self._lookup = self._live_nodes = None

    def remove(self, ids: np.ndarray) -> None:
        """Turn the nodes of ``ids`` into tombstones (ids not in the index are ignored)."""
        self.finish_opening()  # into the whole graph's id map
        labels = self._labels(np.asarray(ids, np.int64))
        labels = distinct(labels[labels >= 0])
        self._ids()[labels] = _NONE
        self._dead += len(labels)
        self._lookup = self._live_nodes = None

    def scrub_removed(self) -> None:
        """Overwrite the stored vectors of removed templates (tombstones) with zeros, so that a saved graph keeps no
        trace of them. The zeroed nodes still link the graph; searches pass through them as before (never returning
        them) until the owner rebuilds it (``dead_share``). Not on a read-only memory-mapped view: ``copy()`` first."""
        if self.read_only:
            raise ValueError("a memory-mapped graph is read-only: scrub a copy")
        dead = np.flatnonzero(self._ids() == _NONE)
        if len(dead):
            stored = self._stored()
            codes = faiss.rev_swig_ptr(stored.codes.data(), stored.codes.size())
            codes.reshape(stored.ntotal, stored.code_size)[dead] = 0

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored (possibly quantised) vectors of ``ids`` (all in the index), as float32."""
        labels = self._labels(np.asarray(ids, np.int64))
        if (labels < 0).any():
            raise KeyError(f"templates not in the index: {np.asarray(ids)[labels < 0][:5].tolist()}")
        return self._stored().reconstruct_batch(labels)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, template_ids)``, best first; rows padded with ``-1`` ids when fewer are found.

        One query runs on one thread (a second only adds overhead); a batch uses every core. A sealed graph whose
        links are still being decrypted (``load``) is scanned instead.
        """
        if self._arriving is not None and not self._arriving.arrived():
            return self.scan(queries, k)
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from faiss's stubs
        params.efSearch = self.expansion_search
        if self._dead:
            params.sel = _LIVE
        with _threads(1 if len(queries) == 1 else os.cpu_count() or 1):
            scores, ids = self._index.search(queries, k, params=params)
        scores[ids == _NONE] = -np.inf
        return scores, ids

    def scan(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exhaustive search: every live template compared with each query, ``(similarities, template_ids)`` best
        first as ``search`` gives them, but never missing a template the graph's links lead away from.

        A batch of ``BATCH_SCAN`` queries or more is multiplied with the stored vectors block by block
        (``_scanned_in_blocks``). Fewer run over a compact copy, one query on one thread: a quantised graph's own
        vectors, or for a float32 graph an int8 copy (a quarter of its vectors' memory, built on first use and
        kept in step) whose ``SCAN_FACTOR`` x ``k`` best are scored with the graph's float32 vectors. A quantised
        graph's scores are its quantised vectors' (the caller re-scores the candidates exactly, as
        ``SyncedIndex`` does); a float32 graph's are exact.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if len(queries) >= BATCH_SCAN:
            scores, nodes = self._scanned_in_blocks(queries, k)
        else:
            scores, nodes = self._scanned_per_query(queries, k)
        ids = np.where(nodes >= 0, self._ids()[nodes.clip(min=0)], _NONE)
        scores[ids == _NONE] = -np.inf
        return scores, ids

    def _scanned_per_query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``scan`` through faiss's per-query search of a compact copy: ``(scores, nodes)``."""
        # A float32 graph's vectors through their int8 copy, except while its links are decrypted (in memory then)
        copied = self.storage == "f32" and self._arriving is None
        compact = self._int8_copy() if copied else self._stored()
        wanted = min(k * SCAN_FACTOR, len(self)) if copied else k
        params = faiss.SearchParameters(sel=self._live_selector()) if self._dead else None  # type: ignore[call-arg]
        with _threads(1 if len(queries) == 1 else os.cpu_count() or 1):
            scores, nodes = compact.search(queries, wanted, params=params)
        return self._rescored(queries, nodes, k) if copied else (scores, nodes)

    def _scanned_in_blocks(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``scan`` as matrix products with ``_SCAN_BLOCK`` stored vectors at a time (a float32 graph's in place,
        a quantised one's decoded as faiss decodes them): ``(scores, nodes)``, best first. After the first block,
        only the scores above a query's k-th best so far are merged, a small share of each block's."""
        storage = self._stored()
        codes = faiss.rev_swig_ptr(storage.codes.data(), storage.codes.size()).reshape(-1, storage.code_size)
        live = self._ids() != _NONE if self._dead else None
        exact = self.storage == "f32"
        best_scores = np.full((len(queries), k), -np.inf, np.float32)
        best_nodes = np.full((len(queries), k), _NONE, np.int64)
        buffer = np.empty((min(_SCAN_BLOCK, len(codes)), self.dimension), np.float32)
        for first in range(0, len(codes), _SCAN_BLOCK):
            block, vectors = codes[first : first + _SCAN_BLOCK], buffer[: len(codes) - first]
            if exact:  # copied: a loaded graph's floats need not be aligned, and BLAS is 3x slower
                np.copyto(vectors, block.view(np.float32))
            else:
                storage.sa_decode(block, vectors)
            scores = queries @ vectors.T
            if live is not None:
                scores[:, ~live[first : first + _SCAN_BLOCK]] = -np.inf
            best_scores, best_nodes = _merged(best_scores, best_nodes, scores, first)
        return best_scores, best_nodes

    def _rescored(self, queries: np.ndarray, nodes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best of each query's candidate ``nodes`` by their float32 vectors (-1: no candidate)."""
        found = nodes >= 0
        vectors = np.zeros((*nodes.shape, queries.shape[1]), np.float32)
        vectors[found] = self._stored().reconstruct_batch(nodes[found])
        scores = np.einsum("qd,qkd->qk", queries, vectors)
        scores[~found] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(nodes, order, axis=1)

    def _int8_copy(self) -> faiss.IndexScalarQuantizer:
        """The int8 copy of a float32 graph's vectors, node for node (tombstones included), built on first use."""
        if self._int8 is None:
            storage = self._stored()
            copy = faiss.IndexScalarQuantizer(self.dimension, _QUANTISERS["i8"], faiss.METRIC_INNER_PRODUCT)
            copy.train(np.stack([-np.ones(self.dimension), np.ones(self.dimension)]).astype(np.float32))
            if storage.ntotal:  # the graph's vectors in place (a memory map's pages, read once), no float32 copy
                codes = faiss.rev_swig_ptr(storage.codes.data(), storage.codes.size())
                copy.add(codes.view(np.float32).reshape(storage.ntotal, self.dimension))
            self._int8 = copy
        return self._int8

    def _live_selector(self) -> faiss.IDSelector:
        """faiss's selector of the graph's live nodes (a bitmap, rebuilt after a change)."""
        if self._live_nodes is None:
            bits = np.packbits(self._ids() != _NONE, bitorder="little")
            self._live_nodes = bits, faiss.IDSelectorBitmap(self._stored().ntotal, faiss.swig_ptr(bits))
        return self._live_nodes[1]

    def _ids(self) -> np.ndarray:
        """The template id of every graph node (a writable view of faiss's id map; -1: tombstone)."""
        if self._arriving is not None:
            return self._arriving.ids
        id_map = self._index.id_map
        return faiss.rev_swig_ptr(id_map.data(), id_map.size()) if id_map.size() else np.zeros(0, np.int64)

    def _labels(self, template_ids: np.ndarray) -> np.ndarray:
        """The graph node of each template id (-1 where it has none)."""
        if self._lookup is None and len(template_ids) <= _SCAN_LIMIT:  # cheaper than sorting every id
            ids = self._ids()
            # (-1 is the tombstones' id, never a template's)
            found = [next(iter(np.flatnonzero(ids == i)), -1) if i >= 0 else -1 for i in template_ids]
            return np.array(found, np.int64)
        if self._lookup is None:
            ids = self._ids()
            live = np.flatnonzero(ids != _NONE)
            order = np.argsort(ids[live], kind="stable")
            self._lookup = ids[live][order], live[order]
        sorted_ids, labels = self._lookup
        if not len(sorted_ids):
            return np.full(len(template_ids), -1, np.int64)
        at = np.searchsorted(sorted_ids, template_ids).clip(max=len(sorted_ids) - 1)
        return np.where(sorted_ids[at] == template_ids, labels[at], -1)


def _merged(
    best_scores: np.ndarray, best_nodes: np.ndarray, scores: np.ndarray, first: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` best of its ``best_scores`` (best first) and a block's ``scores`` (nodes from ``first``)."""
    rows, k = best_scores.shape
    if k < scores.shape[1] and np.isneginf(best_scores[:, -1]).all():  # the first block: its own k best
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        scores, columns = np.take_along_axis(scores, top, axis=1), top
        row_of = np.repeat(np.arange(rows), k)
        new_scores, new_nodes = scores.ravel(), columns.ravel() + first
    else:  # only what beats a row's k-th best so far
        row_of, columns = np.nonzero(scores > best_scores[:, -1:])
        if not len(row_of):
            return best_scores, best_nodes
        new_scores, new_nodes = scores[row_of, columns], columns + first
    row_of = np.concatenate([np.repeat(np.arange(rows), k), row_of])
    all_scores = np.concatenate([best_scores.ravel(), new_scores])
    all_nodes = np.concatenate([best_nodes.ravel(), new_nodes])
    order = np.lexsort((-all_scores, row_of))  # row by row, best first (ties: the earlier node first)
    starts = np.searchsorted(row_of[order], np.arange(rows))
    take = order[(starts[:, None] + np.arange(k)).ravel()]
    return all_scores[take].reshape(rows, k), all_nodes[take].reshape(rows, k)


def _checked(index: faiss.Index, path: Path) -> faiss.IndexIDMap:
    if not isinstance(index, faiss.IndexIDMap) or not isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW):
        raise ValueError(f"{path}: not a faceprint HNSW index")
    return index


def _read_zero_copy(plaintext: np.ndarray) -> faiss.Index:
    """An index in decrypted bytes, its vectors (and links) a view of them."""
    reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(plaintext), len(plaintext))  # type: ignore[attr-defined]
    return faiss.read_index(reader, faiss.IO_FLAG_MMAP_IFC)


class _ChunkReader:
    """``read(n)`` over decrypted chunks, for faiss's callback reader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def __call__(self, count: int) -> bytes:
        while len(self._pending) < count:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        given, self._pending = self._pending[:count], self._pending[count:]
        return given


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """faiss's OpenMP threads for one call (one query runs faster on one thread than on two)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
