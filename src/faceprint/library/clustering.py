"""Grouping face templates into people: the algorithms, on plain arrays (``faceprint.library.clusters``
keeps their result in the gallery and applies the user's decisions).

The method, Chinese whispers over the faces linked above a threshold (``whispers``), was chosen by
measurement against dlib's own Chinese whispers, an Immich-style core-point method and HDBSCAN
(``bench/clustering.py``, BENCHMARKS.md). Two faces are linked when their similarity passes a threshold
stated as a false-match rate (``faceprint.match.operating_point``), so a setting means the same for every
model. It is incremental: the faces already clustered keep their labels and new faces join them or form new
clusters.

A label of ``-1`` means "not clustered": the face waits for more faces like it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

#: Neighbours kept per face, most similar first: enough for every core test and link (a person with more
#: photos is joined by the links among the 64 nearest of each).
NEIGHBOURS = 64
#: Rounds of Chinese whispers at most (it settles in a few on faces).
WHISPER_ROUNDS = 20
#: Most scores computed at once (float32: 64 MiB).
_MAX_SCORES = 1 << 24
WAITING = -1


@dataclass(frozen=True)
class Graph:
    """Each face's neighbours above the threshold, most similar first (``ids`` ``-1`` past the last)."""

    ids: np.ndarray
    scores: np.ndarray

    def degree(self) -> np.ndarray:
        return (self.ids >= 0).sum(axis=1)


def neighbours_above(
    queries: np.ndarray, vectors: np.ndarray, threshold: float, *, exclude: np.ndarray | None = None
) -> Graph:
    """Each query's (up to ``NEIGHBOURS``) rows of ``vectors`` with similarity at least ``threshold``, most
    similar first; ``exclude[i]``: query i's own row, left out. Exact, one matrix product per block of queries:
    only scores above the threshold are sorted, so 10,000 queries against 110,000 faces take seconds."""
    ids = np.full((len(queries), NEIGHBOURS), -1, dtype=np.int64)
    scores = np.zeros((len(queries), NEIGHBOURS), dtype=np.float32)
    step = max(1, _MAX_SCORES // max(len(vectors), 1))
    for start in range(0, len(queries), step):
        block = queries[start : start + step] @ vectors.T
        if exclude is not None:
            block[np.arange(len(block)), exclude[start : start + step]] = -np.inf
        # One pass over the flat block: np.nonzero on 2-D arrays is 15x slower, most of a 10k x 110k search.
        rows, cols = np.divmod(np.flatnonzero(block >= threshold), block.shape[1])
        found = block[rows, cols]
        order = np.lexsort((-found, rows))
        rows, cols, found = rows[order], cols[order], found[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
        kept = rank < NEIGHBOURS
        ids[start + rows[kept], rank[kept]] = cols[kept]
        scores[start + rows[kept], rank[kept]] = found[kept]
    return Graph(ids, scores)


def self_graph(vectors: np.ndarray, threshold: float) -> Graph:
    return neighbours_above(vectors, vectors, threshold, exclude=np.arange(len(vectors)))


def whispers(
    graph: Graph, labels: np.ndarray, rows: np.ndarray, *, rounds: int = WHISPER_ROUNDS, seed: int = 0
) -> np.ndarray:
    """Chinese whispers for the waiting faces at ``rows`` (row ``i`` of ``graph`` is face ``rows[i]``;
    ``graph.ids`` index ``labels``), the clustered faces' labels held fixed: each waiting face starts alone,
    then, in a random order each round, takes the label most of its links (and itself) carry, until no label
    moves. Existing clusters are never merged or shrunk (that is the user's to decide); new faces join them or
    form new ones; a face left alone waits."""
    labels = labels.copy()
    first = int(labels.max(initial=WAITING)) + 1
    labels[rows] = first + np.arange(len(rows))
    links = _undirected(graph, rows)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        moved = 0
        for row in rng.permutation(len(rows)):
            if not len(links[row]):
                continue
            face = rows[row]
            votes = Counter(labels[links[row]].tolist())
            votes[int(labels[face])] += 1
            best = max(votes.items(), key=lambda item: (item[1], -item[0]))[0]  # ties: the lowest label, as dlib
            if best != labels[face]:
                labels[face], moved = best, moved + 1
        if not moved:
            break
    return _alone_waits(labels, rows, first)


def _undirected(graph: Graph, rows: np.ndarray) -> list[np.ndarray]:
    """Each row's links, plus the waiting faces that link to it (a face's nearest 64 need not list it back)."""
    row_of = {int(face): row for row, face in enumerate(rows)}
    extra: list[list[int]] = [[] for _ in rows]
    for row, ids in enumerate(graph.ids):
        for other in ids[ids >= 0]:
            if int(other) in row_of:
                extra[row_of[int(other)]].append(int(rows[row]))
    return [np.unique(np.concatenate([ids[ids >= 0], np.array(more, np.int64)])) for ids, more in zip(graph.ids, extra)]


def _alone_waits(labels: np.ndarray, rows: np.ndarray, first: int) -> np.ndarray:
    """A new label held by one face only means that face found no one: it waits."""
    new = labels[rows] >= first
    values, counts = np.unique(labels[rows][new], return_counts=True)
    alone = np.isin(labels[rows], values[counts == 1]) & new
    labels[rows[alone]] = WAITING
    return labels
