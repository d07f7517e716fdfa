"""Identification in the encrypted domain (CKKS homomorphic encryption, Microsoft SEAL through TenSEAL).

The client holds the secret key. It encrypts a probe template, the server scores it against every row of a gallery
(a person's centroid, as ``Gallery.rank_people`` scores them) without decrypting anything, and returns encrypted
scores; the client decrypts, ranks and decides with the gallery's ``IdentificationPoint``. The gallery's rows are
either plaintext on the server (mode "plain": the server's own gallery, protected at rest by ``faceprint.protect``)
or encrypted under the client's key (mode "encrypted": the server holds only ciphertexts). The server needs no key
at all: scoring takes one multiplication per ciphertext pair and additions, so no relinearisation or rotation key.

Packing (``Layout``): one gallery row per slot, coordinate-major (``coordinate j of many rows in one ciphertext``),
which needs no rotation. A block of ``slots`` slots is cut into ``segments`` segments of ``segment_length`` rows, and
segment ``s`` of the block's ciphertext ``k`` holds coordinate ``k·segments + s`` of those rows; the probe's
ciphertext ``k`` holds that coordinate of the probe across the segment. Summing ``ciphertexts_per_block`` products
gives each slot a partial inner product, and the client adds a row's ``segments`` partial sums after decrypting. A
gallery smaller than a block thus costs ``dimension / segments`` products instead of ``dimension``.

Parameters (``PARAMETERS``): N = 4096 with a 100-bit coefficient modulus (60 + 40 bits), at most the 109 bits the
Homomorphic Encryption Standard's table allows N = 4096 for 128-bit classical security (ternary secret); SEAL
checks this (``SEC_LEVEL_TYPE.TC128``) when the context is made. Scale 2^28: scores come back at scale 2^56 below
the 60-bit data modulus (no rescaling), accurate to about 1e-5.

What the client learns: every row's score and, with ``segments`` > 1, each row's partial sums over the segments'
coordinates, plus the rows' labels. What the server learns: the gallery's size and the time a search takes; nothing
of the probe. The client must not hand decrypted scores back to the server (CKKS decryptions carry noise that can
reveal the secret key to whoever also sees the ciphertexts).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import (
    AccessError,
    CollectionNotFoundError,
    GalleryError,
    KeyRequiredError,
    ModelError,
    PersonNotFoundError,
)
from .match import Calibration, GalleryTail, IdentificationPoint, check_same_model, cohort_score, identification_point
from .types import UNKNOWN, Candidate, Decision, Template

if TYPE_CHECKING:
    from .gallery import Gallery

#: File magic of a client key and of an encrypted gallery.
_KEY_MAGIC, _GALLERY_MAGIC = b"FPHEKEY1", b"FPHEGAL1"


@dataclass(frozen=True)
class Parameters:
    """CKKS parameters: ring degree, coefficient modulus primes (bits; the last is SEAL's special prime), scale."""

    poly_modulus_degree: int = 4096
    coeff_modulus_bits: tuple[int, ...] = (60, 40)
    scale_bits: int = 28
    #: Classical security by the HE Standard's table for this degree and total modulus (SEAL enforces it).
    security_bits: int = 128

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "poly_modulus_degree": self.poly_modulus_degree,
            "coeff_modulus_bits": list(self.coeff_modulus_bits),
            "total_modulus_bits": sum(self.coeff_modulus_bits),
            "scale_bits": self.scale_bits,
            "security_bits": self.security_bits,
            "slots": self.slots,
        }


PARAMETERS = Parameters()


@dataclass(frozen=True)
class Layout:
    """Where each coordinate of each gallery row lies in the ciphertexts (see the module docstring)."""

    slots: int
    dimension: int
    segments: int
    rows: int

    @classmethod
    def for_rows(cls, rows: int, dimension: int, parameters: Parameters = PARAMETERS) -> Layout:
        """As many segments as fit ``rows`` (a power of two, at most ``dimension``): fewest products per probe."""
        segments = 1
        while segments * 2 <= dimension and rows * segments * 2 <= parameters.slots:
            segments *= 2
        return cls(parameters.slots, dimension, segments, rows)

    @property
    def segment_length(self) -> int:
        return self.slots // self.segments

    @property
    def blocks(self) -> int:
        return math.ceil(self.rows / self.segment_length)

    @property
    def ciphertexts_per_block(self) -> int:
        return math.ceil(self.dimension / self.segments)

    def block_values(self, rows: np.ndarray, first: int = 0) -> list[np.ndarray]:
        """The slot values of one block's ciphertexts holding ``rows`` from slot row ``first`` (zeros elsewhere)."""
        padded = np.zeros((self.ciphertexts_per_block * self.segments, len(rows)))
        padded[: self.dimension] = np.asarray(rows, np.float64).T
        values = np.zeros((self.ciphertexts_per_block, self.segments, self.segment_length))
        values[:, :, first : first + len(rows)] = padded.reshape(self.ciphertexts_per_block, self.segments, -1)
        return list(values.reshape(self.ciphertexts_per_block, self.slots))

    def probe_values(self, probe: np.ndarray) -> list[np.ndarray]:
        padded = np.zeros(self.ciphertexts_per_block * self.segments)
        padded[: self.dimension] = probe
        per_segment = padded.reshape(self.ciphertexts_per_block, self.segments, 1)
        return list(np.repeat(per_segment, self.segment_length, axis=2).reshape(self.ciphertexts_per_block, -1))

    def fold(self, decrypted: Sequence[np.ndarray]) -> np.ndarray:
        """Each row's score from the decrypted blocks (its segments' partial sums added)."""
        blocks = [
            np.asarray(d[: self.slots]).reshape(self.segments, self.segment_length).sum(axis=0) for d in decrypted
        ]
        return np.concatenate(blocks)[: self.rows] if blocks else np.zeros(0)

    def to_dict(self) -> dict[str, int]:
        return {"slots": self.slots, "dimension": self.dimension, "segments": self.segments, "rows": self.rows}


def _seal() -> Any:
    import tenseal.sealapi as seal  # loaded on first use (a C++ library)

    return seal


def _context(parameters: Parameters) -> Any:
    seal = _seal()
    params = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
    params.set_poly_modulus_degree(parameters.poly_modulus_degree)
    params.set_coeff_modulus(
        seal.CoeffModulus.Create(parameters.poly_modulus_degree, list(parameters.coeff_modulus_bits))
    )
    context = seal.SEALContext(params, True, seal.SEC_LEVEL_TYPE.TC128)
    if not context.parameters_set():
        raise GalleryError(f"CKKS parameters refused by SEAL at 128-bit security: {parameters}")
    return context


def _to_bytes(items: Iterable[Any]) -> list[bytes]:
    """SEAL objects' serialisations, compressed (SEAL's Python binding saves to files only: one scratch file for
    all of them, in memory where the system has a memory file system)."""
    with _scratch_file() as path:
        saved = []
        for item in items:
            item.save(path)
            saved.append(Path(path).read_bytes())
        return saved


def _from_bytes(make: Callable[[], Any], context: Any, blobs: Iterable[bytes]) -> list[Any]:
    """SEAL objects (each from ``make()``) loaded from their serialisations."""
    with _scratch_file() as path:
        loaded = []
        for blob in blobs:
            Path(path).write_bytes(blob)
            item = make()
            item.load(context, path)
            loaded.append(item)
        return loaded


@contextlib.contextmanager
def _scratch_file() -> Iterator[str]:
    """A path in a new private folder (removed after): under /dev/shm where it exists, so that what passes through it
    (a secret key, on saving or loading one) is never written to a disk."""
    memory = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=memory) as folder:
        yield os.path.join(folder, "item")


def _pack(parts: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack("<Q", len(p)) + p for p in parts)


def _unpack(data: bytes) -> list[bytes]:
    parts, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from("<Q", data, at)
        parts.append(data[at + 8 : at + 8 + size])
        at += 8 + size
    return parts


class Scorer:
    """The server's side: scores encrypted probes against gallery rows; holds the parameters, never a key."""

    def __init__(self, parameters: Parameters = PARAMETERS) -> None:
        seal = _seal()
        self.parameters = parameters
        self.context = _context(parameters)
        self._evaluator = seal.Evaluator(self.context)
        self._encoder = seal.CKKSEncoder(self.context)

    def encode(self, values: np.ndarray) -> Any:
        plain = _seal().Plaintext()
        self._encoder.encode(values.tolist(), 2.0**self.parameters.scale_bits, plain)
        return plain

    def load_ciphertexts(self, blobs: Sequence[bytes]) -> list[Any]:
        seal = _seal()
        return _from_bytes(seal.Ciphertext, self.context, blobs)

    def score(self, probe: Sequence[Any], blocks: Sequence[Sequence[Any]], encrypted: bool) -> list[Any]:
        """One ciphertext of partial scores per block: the sum of the probe's ciphertexts times the block's
        (plaintexts, or ciphertexts when ``encrypted``: then of size 3, decryptable without relinearisation)."""
        seal = _seal()
        multiply = self._evaluator.multiply if encrypted else self._evaluator.multiply_plain
        results = []
        for block in blocks:
            total, product = seal.Ciphertext(), seal.Ciphertext()
            multiply(probe[0], block[0], total)
            for probe_part, row_part in zip(probe[1:], block[1:]):
                multiply(probe_part, row_part, product)
                self._evaluator.add_inplace(total, product)
            results.append(total)
        return results


class ClientKey:
    """The client's side: the secret key; encrypts probes (and gallery rows for mode "encrypted"), decrypts scores."""

    def __init__(self, parameters: Parameters, context: Any, secret_key: Any) -> None:
        seal = _seal()
        self.parameters = parameters
        self.context = context
        self._secret_key = secret_key
        self._encryptor = seal.Encryptor(context, secret_key)
        self._decryptor = seal.Decryptor(context, secret_key)
        self._encoder = seal.CKKSEncoder(context)

    @classmethod
    def generate(cls, parameters: Parameters = PARAMETERS) -> ClientKey:
        context = _context(parameters)
        return cls(parameters, context, _seal().KeyGenerator(context).secret_key())

    def save(self, path: str | os.PathLike) -> Path:
        """The key in ``path``, readable by its owner only; an existing file is refused."""
        target = Path(path)
        bits = ",".join(map(str, self.parameters.coeff_modulus_bits))
        header = f"{self.parameters.poly_modulus_degree}:{bits}:{self.parameters.scale_bits}".encode()
        try:
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise KeyRequiredError(f"{target}: cannot write a key there ({exc.strerror})") from None
        with os.fdopen(descriptor, "wb") as f:
            f.write(_KEY_MAGIC + _pack([header, *_to_bytes([self._secret_key])]))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> ClientKey:
        try:
            data = Path(path).read_bytes()
            if not data.startswith(_KEY_MAGIC):
                raise ValueError("not a faceprint private key")
            header, secret = _unpack(data[len(_KEY_MAGIC) :])
            degree, bits, scale = header.decode().split(":")
            parameters = Parameters(int(degree), tuple(int(b) for b in bits.split(",")), int(scale))
            context = _context(parameters)
            return cls(parameters, context, _from_bytes(_seal().SecretKey, context, [secret])[0])
        except (OSError, ValueError, RuntimeError, struct.error) as exc:
            raise KeyRequiredError(f"{path}: not a readable faceprint private key ({exc})") from None

    def key_bytes(self) -> int:
        return len(_to_bytes([self._secret_key])[0])

    def _encrypt(self, values: np.ndarray) -> Any:
        seal = _seal()
        plain, cipher = seal.Plaintext(), seal.Ciphertext()
        self._encoder.encode(values.tolist(), 2.0**self.parameters.scale_bits, plain)
        self._encryptor.encrypt_symmetric(plain, cipher)
        return cipher

    def encrypt_probe(self, probe: np.ndarray, layout: Layout) -> list[Any]:
        self._check_probe(probe, layout)
        return [self._encrypt(values) for values in layout.probe_values(probe)]

    def probe_message(self, probe: np.ndarray, layout: Layout) -> bytes:
        """``encrypt_probe`` as a message for the server, half the size: a ciphertext encrypted with the secret key
        travels as its seed and one polynomial (SEAL's seeded serialisation), which the server expands on loading."""
        self._check_probe(probe, layout)
        seal, seeded = _seal(), []
        for values in layout.probe_values(probe):
            plain = seal.Plaintext()
            self._encoder.encode(values.tolist(), 2.0**self.parameters.scale_bits, plain)
            seeded.append(self._encryptor.encrypt_symmetric(plain))
        return _pack(_to_bytes(seeded))

    @staticmethod
    def _check_probe(probe: np.ndarray, layout: Layout) -> None:
        if len(probe) != layout.dimension:
            raise ModelError(f"a {len(probe)}-d probe for a gallery of {layout.dimension}-d templates")

    def encrypt_rows(self, rows: np.ndarray, layout: Layout, first: int = 0) -> list[Any]:
        """The block ciphertexts holding ``rows`` at slot rows ``first``… of one block (zeros elsewhere)."""
        return [self._encrypt(values) for values in layout.block_values(rows, first)]

    def decrypt_scores(self, scores: Sequence[Any], layout: Layout) -> np.ndarray:
        """Each gallery row's similarity to the probe."""
        return layout.fold([self._decrypt(cipher) for cipher in scores])

    def block_rows(self, block: Sequence[Any], layout: Layout) -> np.ndarray:
        """The rows one block of an encrypted gallery holds (``segment_length`` × ``dimension``; zeros past them)."""
        values = np.stack([self._decrypt(cipher)[: layout.slots] for cipher in block])
        by_coordinate = values.reshape(len(block), layout.segments, layout.segment_length)
        return by_coordinate.transpose(2, 0, 1).reshape(layout.segment_length, -1)[:, : layout.dimension]

    def _decrypt(self, cipher: Any) -> np.ndarray:
        plain = _seal().Plaintext()
        self._decryptor.decrypt(cipher, plain)
        return np.asarray(self._encoder.decode_double(plain))


def ciphertexts_to_bytes(ciphertexts: Sequence[Any]) -> bytes:
    """Ciphertexts as one message (a probe, or scores) for transport."""
    return _pack(_to_bytes(ciphertexts))


def ciphertexts_from_bytes(context: Any, data: bytes) -> list[Any]:
    seal = _seal()
    try:
        return _from_bytes(seal.Ciphertext, context, _unpack(data))
    except (RuntimeError, ValueError, struct.error) as exc:
        raise GalleryError(f"not a message of ciphertexts for these parameters ({exc})") from None


@dataclass(frozen=True)
class PrivateIdentification:
    """The client's decision from decrypted scores: candidates best first, decided at the gallery's point."""

    candidates: tuple[Candidate, ...]
    decision: Decision
    threshold: float | None
    fpir: float
    reason: str | None

    @property
    def name(self) -> str:
        return self.candidates[0].name if self.decision == "match" else UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "decision": self.decision,
            "threshold": self.threshold,
            "fpir": self.fpir,
            "reason": self.reason,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def decide(
    scores: np.ndarray, labels: Sequence[tuple[int, str]], point: IdentificationPoint, top_k: int = 5
) -> PrivateIdentification:
    """Rank the rows (``labels``: each row's person id and name) by ``scores`` and decide at ``point``, as
    ``Gallery.identify`` decides for a face of acceptable quality (the client checked quality before encrypting)."""
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind="stable")
    offset = point.offset(cohort_score(scores[order]))
    candidates = tuple(
        Candidate(
            labels[i][0],
            labels[i][1],
            float(scores[i]),
            point.estimated_fmr(float(scores[i])),
            point.decide(float(scores[i]) + offset),
            offset,
        )
        for i in order[:top_k]
    )
    best = candidates[0] if candidates else None
    decision: Decision
    if point.threshold is None:
        decision, reason = "uncertain", point.unsupported
    elif best is None:
        decision, reason = "no_match", "no one enrolled"
    elif best.score >= point.threshold:
        decision = best.decision or "match"
        reason = None if decision == "match" else "named within the uncertain band"
    elif best.decision == "uncertain":
        decision, reason = "uncertain", "below threshold, within the uncertain band"
    else:
        decision, reason = "no_match", "below threshold"
    return PrivateIdentification(candidates, decision, point.threshold, point.fpir, reason)


class PlainRows:
    """Mode "plain": the server's gallery rows (one per person: their centroid, as ``Gallery.rank_people`` scores
    people) encoded once as CKKS plaintexts, ready to score encrypted probes."""

    def __init__(self, scorer: Scorer, labels: Sequence[tuple[int, str]], vectors: np.ndarray, model_id: str) -> None:
        self.model_id = model_id
        self.labels = list(labels)
        self.layout = Layout.for_rows(len(vectors), vectors.shape[1], scorer.parameters)
        length = self.layout.segment_length
        self.blocks = [
            [scorer.encode(values) for values in self.layout.block_values(vectors[start : start + length])]
            for start in range(0, len(vectors), length)
        ]

    @classmethod
    def of_gallery(cls, scorer: Scorer, gallery: Gallery) -> PlainRows:
        person_ids, names, centroids = gallery.person_centroids()
        return cls(scorer, list(zip(person_ids, names)), centroids, gallery.model_id)


@dataclass
class EncryptedRows:
    """Mode "encrypted": gallery rows encrypted under a client's key, as the server keeps them (row labels in the
    clear: who each row is). New rows arrive as ciphertexts of their block holding only them (``ClientKey.
    encrypt_rows`` at ``next_slot``), which the server adds into the block: growing needs no re-encryption."""

    model_id: str
    dimension: int
    segments: int
    labels: list[tuple[int, str]] = field(default_factory=list)
    blocks: list[list[Any]] = field(default_factory=list)

    @classmethod
    def empty(cls, model_id: str, dimension: int, rows_per_block: int = 1024) -> EncryptedRows:
        """A gallery of ``dimension``-d rows of ``model_id``, ``rows_per_block`` rows (a power of two) per block."""
        segments = max(1, min(dimension, PARAMETERS.slots // rows_per_block))
        return cls(model_id, dimension, segments)

    @property
    def layout(self) -> Layout:
        return Layout(PARAMETERS.slots, self.dimension, self.segments, len(self.labels))

    @property
    def room(self) -> int:
        """Rows that still fit in the last block (new rows of one message must not cross into the next)."""
        length = self.layout.segment_length
        return length - len(self.labels) % length

    @property
    def next_slot(self) -> int:
        return len(self.labels) % self.layout.segment_length

    def add(self, scorer: Scorer, names: Sequence[str], ciphertexts: list[Any]) -> None:
        """Add rows for ``names`` (at most ``room``), encrypted by the client at ``next_slot``."""
        if len(names) > self.room:
            raise GalleryError(f"{len(names)} rows do not fit the {self.room} slots left in the block")
        if self.next_slot == 0:
            self.blocks.append(ciphertexts)
        else:
            for total, part in zip(self.blocks[-1], ciphertexts):
                scorer._evaluator.add_inplace(total, part)
        first = max((person for person, _ in self.labels), default=0) + 1
        self.labels += [(first + n, name) for n, name in enumerate(names)]

    def save(self, path: Path) -> None:
        header = "\n".join([self.model_id, str(self.dimension), str(self.segments), *(n for _, n in self.labels)])
        parts = [header.encode(), *_to_bytes(c for block in self.blocks for c in block)]
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(_GALLERY_MAGIC + _pack(parts))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path, scorer: Scorer) -> EncryptedRows:
        try:
            data = path.read_bytes()
            if not data.startswith(_GALLERY_MAGIC):
                raise ValueError("not a faceprint encrypted gallery")
            header, *blobs = _unpack(data[len(_GALLERY_MAGIC) :])
            model_id, dimension, segments, *names = header.decode().split("\n")
            rows = cls(model_id, int(dimension), int(segments), list(enumerate(names, start=1)))
            per_block = rows.layout.ciphertexts_per_block
            ciphertexts = scorer.load_ciphertexts(blobs)
            rows.blocks = [ciphertexts[i : i + per_block] for i in range(0, len(ciphertexts), per_block)]
            return rows
        except (OSError, ValueError, RuntimeError, struct.error) as exc:
            raise GalleryError(f"{path}: not a readable encrypted gallery ({exc})") from None


class PrivateGallery:
    """The server's side of an encrypted search: rows to score, who each row is, and the decision point the client
    decides at. A service's endpoint publishes ``manifest()`` and answers ``score(probe message)``."""

    def __init__(
        self, rows: PlainRows | EncryptedRows, point: IdentificationPoint, scorer: Scorer, version: str | None = None
    ) -> None:
        self.rows = rows
        self.point = point
        self.scorer = scorer
        #: The gallery content the rows are of (``ServedGalleries``): a probe encrypted for another is refused.
        self.version = version

    @classmethod
    def of_gallery(cls, gallery: Gallery, fpir: float | None = None, scorer: Scorer | None = None) -> PrivateGallery:
        """Mode "plain": a faceprint gallery's people, decided at its ``identification_point(fpir)``."""
        scorer = scorer or Scorer()
        return cls(PlainRows.of_gallery(scorer, gallery), gallery.identification_point(fpir), scorer)

    @classmethod
    def of_file(cls, path: Path, fpir: float | None = None, scorer: Scorer | None = None) -> PrivateGallery:
        """Mode "encrypted": rows under a client's key in ``path`` (``enroll_privately``), decided at the shipped
        calibration's point for its size (the server cannot measure a gallery it cannot read)."""
        scorer = scorer or Scorer()
        rows = EncryptedRows.load(path, scorer)
        return cls(rows, identification_point(rows.model_id, templates=len(rows.labels), fpir=fpir), scorer)

    @property
    def encrypted(self) -> bool:
        return isinstance(self.rows, EncryptedRows)

    @property
    def model_id(self) -> str:
        return self.rows.model_id

    @property
    def layout(self) -> Layout:
        return self.rows.layout

    @property
    def labels(self) -> list[tuple[int, str]]:
        return self.rows.labels

    def manifest(self) -> dict[str, Any]:
        """What a client needs to encrypt a probe for this gallery and decide from its scores."""
        return {
            "mode": "encrypted" if self.encrypted else "plain",
            "version": self.version,
            "model_id": self.rows.model_id,
            "parameters": self.scorer.parameters.to_dict(),
            "layout": self.layout.to_dict(),
            "labels": self.labels,
            "point": self.point.to_dict(),
            "decision_rule": point_document(self.point),
        }

    def score(self, probe: bytes) -> bytes:
        """Encrypted scores (a message of ciphertexts) for an encrypted probe (``ClientKey.probe_message``'s);
        ``ProbeError`` for a message that is not one for this gallery."""
        return score_probe(self.scorer, self.rows, probe)


def score_probe(scorer: Scorer, rows: PlainRows | EncryptedRows, probe: bytes) -> bytes:
    """``PrivateGallery.score`` for ``rows``: the encrypted scores message, or ``ProbeError``."""
    try:
        count = len(_unpack(probe))  # counted before any is loaded: a message of a million empty parts costs nothing
    except struct.error:
        raise ProbeError("not a message of ciphertexts (its framing is cut short)") from None
    if count != rows.layout.ciphertexts_per_block:
        raise ProbeError(
            f"a probe of {count} ciphertexts, where this gallery's layout needs {rows.layout.ciphertexts_per_block}"
        )
    try:
        ciphertexts = ciphertexts_from_bytes(scorer.context, probe)
    except GalleryError as error:
        raise ProbeError(str(error)) from None
    try:
        return ciphertexts_to_bytes(scorer.score(ciphertexts, rows.blocks, isinstance(rows, EncryptedRows)))
    except (ValueError, RuntimeError) as exc:  # SEAL refuses ciphertexts valid alone but not for these rows
        raise ProbeError(f"the probe's ciphertexts cannot be scored against this gallery ({exc})") from None


class ProbeError(GalleryError):
    """An encrypted probe message that is not one for this gallery (malformed, other parameters or layout)."""


class ScoringServer(Protocol):
    """What a client needs of a server to identify privately: a ``PrivateGallery`` in the same process, or a
    ``RemoteGallery`` reached over HTTP."""

    @property
    def model_id(self) -> str: ...
    @property
    def layout(self) -> Layout: ...
    @property
    def labels(self) -> list[tuple[int, str]]: ...
    @property
    def point(self) -> IdentificationPoint: ...
    def score(self, probe: bytes) -> bytes: ...


def point_document(point: IdentificationPoint) -> dict[str, Any]:
    """``point`` in full (calibration, size, measured tail), so that a client decides exactly as the gallery would."""
    calibration = point.calibration
    return {
        "calibration": {
            "model_id": calibration.model_id,
            "source": calibration.source,
            "operating_fmr": calibration.operating_fmr,
            "points": [{"fmr": f, "threshold": t} for f, t in zip(calibration.fmrs, calibration.thresholds)],
        },
        "fpir": point.fpir,
        "templates": point.templates,
        "comparisons": point.comparisons,
        "measured": point.measured.to_dict() if point.measured is not None else None,
        "basis": point.basis,
    }


def point_from_document(document: dict[str, Any]) -> IdentificationPoint:
    """The point ``point_document`` described (``ModelError`` if the document is malformed)."""
    try:
        measured = document["measured"]
        return IdentificationPoint(
            Calibration.from_dict(document["calibration"]),
            float(document["fpir"]),
            int(document["templates"]),
            float(document["comparisons"]),
            GalleryTail.from_dict(measured) if measured is not None else None,
            str(document["basis"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"malformed decision rule ({type(exc).__name__}: {exc})") from None


class RemoteGallery:
    """A server's gallery as a client sees it: its manifest (``PrivateGallery.manifest``, e.g. from the service's
    ``GET …/private``) and ``post``, which sends a probe message and returns the server's scores message."""

    def __init__(self, manifest: dict[str, Any], post: Callable[[bytes], bytes], parameters: Parameters) -> None:
        try:
            theirs = manifest["parameters"]
            ours = parameters.to_dict()
            if {k: theirs[k] for k in ours} != ours:
                raise KeyRequiredError(f"the server encrypts with other CKKS parameters ({theirs}) than this key")
            self.model_id: str = manifest["model_id"]
            self.version: str | None = manifest.get("version")
            self.layout = Layout(**manifest["layout"])
            self.labels = [(int(person), str(name)) for person, name in manifest["labels"]]
            self.point = point_from_document(manifest["decision_rule"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GalleryError(f"not a manifest of an encrypted search ({type(exc).__name__}: {exc})") from None
        if len(self.labels) != self.layout.rows:
            raise GalleryError(f"a manifest of {len(self.labels)} labels for {self.layout.rows} rows")
        self._post = post

    def score(self, probe: bytes) -> bytes:
        return self._post(probe)


def connect(
    url: str, collection: str, api_key: str, parameters: Parameters, fpir: float | None = None, timeout: float = 120
) -> RemoteGallery:
    """The collection ``collection`` of the faceprint service at ``url`` (``faceprint serve``), as a server for
    ``identify_privately``: the manifest is fetched now; each probe is posted to it, named by the manifest's version.
    The service's refusals become errors: ``AccessError`` (401, 403), ``CollectionNotFoundError`` (404, also
    another tenant's), ``GalleryError`` (others; 409: the collection changed since the manifest, fetch it again)."""
    from urllib.parse import quote, urlencode

    base = f"{url.rstrip('/')}/v1/collections/{quote(collection, safe='')}/private"
    headers = {"Authorization": f"Bearer {api_key}"}
    query = urlencode({"fpir": fpir} if fpir is not None else {})
    manifest = json.loads(_http(f"{base}?{query}", headers, None, timeout))
    version = urlencode({"version": manifest.get("version") or ""})

    def post(probe: bytes) -> bytes:
        return _http(
            f"{base}/scores?{version}", {**headers, "Content-Type": "application/octet-stream"}, probe, timeout
        )

    return RemoteGallery(manifest, post, parameters)


def _http(url: str, headers: dict[str, str], body: bytes | None, timeout: float) -> bytes:
    """The response body of a GET (or a POST of ``body``); a problem document answered becomes a library error."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as error:
        try:
            problem = json.loads(error.read())
            detail = f"{problem['title']}: {problem['detail']}"
        except (ValueError, KeyError, TypeError):
            detail = error.reason
        kind = {401: AccessError, 403: AccessError, 404: CollectionNotFoundError}.get(error.code, GalleryError)
        raise kind(f"{url.split('?')[0]}: {error.code} {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        raise GalleryError(f"{url.split('?')[0]}: cannot reach the service ({error})") from None


class ServedGalleries:
    """A server's mode "plain" galleries, prepared once per gallery content and reused for every probe: encoding
    each person's centroid (``PlainRows``) is most of ``PrivateGallery.of_gallery``'s time. The content is named by
    ``version`` (the gallery's id and generation), which a manifest publishes and a probe names back, so that scores
    are never ranked against the labels of another content."""

    def __init__(self, scorer: Scorer | None = None) -> None:
        self.scorer = scorer or Scorer()
        self._prepared: weakref.WeakKeyDictionary[Gallery, tuple[str, PlainRows]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @staticmethod
    def version(gallery: Gallery) -> str:
        return f"{gallery.store.meta('gallery_id') or 'gallery'}.{gallery.store.generation()}"

    def rows(self, gallery: Gallery) -> tuple[str, PlainRows]:
        """``gallery``'s version now and its people's rows, prepared once per version (the caller keeps others from
        using ``gallery`` meanwhile)."""
        with self._lock:
            prepared = self._prepared.get(gallery)
        for _ in range(3):  # another process may change the gallery while its rows are read
            version = self.version(gallery)
            if prepared is not None and prepared[0] == version:
                return prepared
            rows = PlainRows.of_gallery(self.scorer, gallery)
            if self.version(gallery) == version:
                with self._lock:
                    self._prepared[gallery] = (version, rows)
                return version, rows
        raise GalleryError(f"{gallery.path}: changed while being prepared for encrypted search; try again")

    def private_gallery(self, gallery: Gallery, fpir: float | None = None) -> PrivateGallery:
        """``gallery``'s people ready to score encrypted probes, decided at its ``identification_point(fpir)``."""
        point = gallery.identification_point(fpir)  # first: a small gallery may measure itself, a change
        version, rows = self.rows(gallery)
        return PrivateGallery(rows, point, self.scorer, version)


def identify_privately(
    key: ClientKey, probe: np.ndarray, server: ScoringServer, top_k: int = 5
) -> PrivateIdentification:
    """The whole exchange in one process: the client encrypts ``probe``, the server scores it, the client decrypts,
    ranks and decides (messages cross as bytes, as they would between machines)."""
    scores = key.decrypt_scores(
        ciphertexts_from_bytes(key.context, server.score(key.probe_message(probe, server.layout))), server.layout
    )
    return decide(scores, server.labels, server.point, top_k)


def enroll_privately(key: ClientKey, path: Path, name: str, templates: Sequence[Template]) -> EncryptedRows:
    """Add ``name`` to the encrypted gallery at ``path`` (made if missing) as one row, the centroid of ``templates``
    (all of one model), encrypted under ``key``: what the server stores, it cannot read."""
    if not templates:
        raise ValueError("no templates to enroll")
    model_id = templates[0].model_id
    for template in templates:
        check_same_model(template.model_id, model_id)
    scorer = Scorer(key.parameters)
    vectors = np.stack([np.asarray(t.vector, np.float64) for t in templates])
    rows = EncryptedRows.load(path, scorer) if path.exists() else EncryptedRows.empty(model_id, vectors.shape[1])
    if rows.model_id != model_id:
        raise ModelError(f"{path}: holds rows of model {rows.model_id!r}, not {model_id!r}")
    if any(existing == name for _, existing in rows.labels):
        raise GalleryError(f"{path}: {name!r} is enrolled already")
    centroid = vectors.mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    rows.add(scorer, [name], key.encrypt_rows(centroid[None], rows.layout, rows.next_slot))
    rows.save(path)
    return rows


def remove_privately(key: ClientKey, path: Path, name: str) -> EncryptedRows:
    """Remove ``name``'s row from the encrypted gallery at ``path``: the client decrypts the row's block (and the last
    block), moves the last row into the freed slot and encrypts those blocks anew, so the file rewritten holds no
    ciphertext of the removed row."""
    scorer = Scorer(key.parameters)
    rows = EncryptedRows.load(path, scorer)
    names = [label for _, label in rows.labels]
    if name not in names:
        raise PersonNotFoundError(f"{path}: no {name!r} in the encrypted gallery")
    layout, length = rows.layout, rows.layout.segment_length
    position, last = names.index(name), len(names) - 1
    touched = sorted({position // length, last // length})
    plain = {block: key.block_rows(rows.blocks[block], layout) for block in touched}
    plain[position // length][position % length] = plain[last // length][last % length]
    names[position] = names[last]
    names.pop()
    rows.labels = list(enumerate(names, start=1))
    for block in touched:
        count = min(length, len(names) - block * length)
        if count > 0:
            rows.blocks[block] = key.encrypt_rows(plain[block][:count], rows.layout, 0)
    rows.blocks = rows.blocks[: rows.layout.blocks]
    rows.save(path)
    return rows
