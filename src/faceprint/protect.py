"""Encryption at rest: template vectors sealed with AES-256-GCM under a per-gallery data key (envelope encryption).

A gallery's *data key* (random, 256 bits) encrypts every vector; the user's *master key* (a key file,
``$FACEPRINT_KEY_FILE``) only wraps the data key, which the gallery stores wrapped. Changing the master key
(``faceprint rekey``) therefore re-wraps 32 bytes rather than re-encrypting every row. Each sealed vector carries
its own random 96-bit nonce and is bound by GCM's associated data to what it belongs to (template id and model
id for a gallery row), so a row copied onto another row, or a wrapped key onto another gallery, fails to open. A
file (a saved search index) is sealed in chunks, each its own message bound to the file, its position in it and
whether it is the last (``Sealer.writing``), so that reading it authenticates each chunk before using it.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import ctypes
import functools
import mmap
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np

from .errors import KeyRequiredError

#: The environment variable naming the master key file.
KEY_FILE_VARIABLE = "FACEPRINT_KEY_FILE"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce: random per message (2^32 messages per key keep collisions negligible)
#: Bytes a sealed message adds to its plaintext: the nonce and GCM's 16-byte tag.
OVERHEAD = NONCE_BYTES + 16
#: Plaintext bytes per chunk of a file sealed in chunks (a saved search index): reading one holds one chunk.
CHUNK_BYTES = 1 << 20
#: Threads that decrypt a file sealed in chunks into memory (``SealedFile.opened``): filling fresh memory and AES-GCM
#: are bound by memory bandwidth beyond a few.
OPENING_THREADS = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 4)
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux's value; Python 3.11's mmap lacks it
_FILE_MAGIC = b"faceprint sealed in chunks 1\0"
_FILE_ID_BYTES = 16
_HEADER_BYTES = len(_FILE_MAGIC) + 4 + _FILE_ID_BYTES


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def write_key_file(path: str | os.PathLike) -> Path:
    """A new master key in ``path`` (base64, one line), readable by its owner only; an existing file is refused."""
    target = Path(path)
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyRequiredError(f"{target}: cannot create a key file there ({exc.strerror})") from None
    with os.fdopen(descriptor, "w") as f:
        f.write(base64.b64encode(new_key()).decode() + "\n")
    return target


def read_key_file(path: str | os.PathLike) -> bytes:
    """The master key in ``path`` (as written by ``write_key_file``)."""
    try:
        text = Path(path).read_text().strip()
        key = base64.b64decode(text, validate=True)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise KeyRequiredError(f"{path}: not a readable faceprint key file ({exc})") from None
    if len(key) != KEY_BYTES:
        raise KeyRequiredError(f"{path}: a key file holds {KEY_BYTES} bytes in base64, not {len(key)}")
    return key


def key_from_env() -> bytes | None:
    """The master key named by ``$FACEPRINT_KEY_FILE``, or None when it is unset."""
    path = os.environ.get(KEY_FILE_VARIABLE)
    return read_key_file(path) if path else None


class Sealer:
    """Seals and opens messages under one key (AES-256-GCM, a random nonce per message)."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # loaded by encrypted galleries only

        if len(key) != KEY_BYTES:
            raise KeyRequiredError(f"an encryption key holds {KEY_BYTES} bytes, not {len(key)}")
        self._key = key
        self._aead = AESGCM(key)

    def seal(self, message: bytes, associated: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, message, associated)

    def open(self, sealed: bytes | memoryview, associated: bytes, what: str) -> bytes:
        """The message; ``KeyRequiredError`` naming ``what`` if the key is wrong or the bytes were changed or moved."""
        with _opening(what):
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)

    def open_each(
        self, sealed: Iterable[bytes], associated: Iterable[bytes], what: Callable[[int], str]
    ) -> list[bytes]:
        """Many messages, each opened as ``open`` would; ``what(i)`` names the i-th in the error if it does not
        open. One loop without a context per message: for a template's 1 KiB, Python's per-message overhead in
        ``open`` cost more than AES-GCM itself (re-ranking opens a few hundred templates per search)."""
        from cryptography.exceptions import InvalidTag

        decrypt, opened = self._aead.decrypt, []
        for position, (message, context) in enumerate(zip(sealed, associated, strict=True)):
            try:
                opened.append(decrypt(message[:NONCE_BYTES], message[NONCE_BYTES:], context))
            except (InvalidTag, ValueError):
                raise _not_opening(what(position)) from None
        return opened

    @contextlib.contextmanager
    def writing(self, path: Path, associated: bytes) -> Iterator[Callable[[bytes], None]]:
        """``write(data)``: appends ``data`` to a new file at ``path``, sealed in chunks of ``CHUNK_BYTES`` that
        ``chunks`` reads back. Each chunk is its own GCM message bound to ``associated``, the file's header (a random
        file id), the chunk's position and whether it is the last: a chunk moved, dropped, added or taken from
        another file fails to open, and a file cut at a chunk boundary too."""
        header = _FILE_MAGIC + CHUNK_BYTES.to_bytes(4, "big") + secrets.token_bytes(_FILE_ID_BYTES)
        pending = bytearray()
        written = 0
        with open(path, "wb") as f:
            f.write(header)

            def seal_chunk(last: bool) -> None:
                nonlocal written
                chunk = bytes(pending[:CHUNK_BYTES])
                f.write(self.seal(chunk, _chunk_context(associated, header, written, last)))
                del pending[:CHUNK_BYTES]
                written += 1

            def write(data: bytes) -> None:
                pending.extend(data)
                while len(pending) > CHUNK_BYTES:  # the last chunk is never empty unless the whole file is
                    seal_chunk(last=False)

            yield write
            seal_chunk(last=True)

    def chunks(self, path: Path, associated: bytes) -> Iterator[bytes]:
        """The plaintext of a file ``writing`` sealed, chunk by chunk, each authenticated before it is given out (one
        chunk in memory at a time). ``KeyRequiredError`` at the first chunk that does not open; ``ValueError`` for a
        file that is not sealed in chunks."""
        for sealed, context, what in _sealed_chunks(path, associated):
            yield self.open(sealed, context, what)

    def read_array(self, path: Path, associated: bytes) -> np.ndarray:
        """The plaintext of a file ``writing`` sealed, as bytes in one array (``SealedFile``, every chunk opened)."""
        sealed = SealedFile(self, path, associated)
        return sealed.opened(0, sealed.size)


class SealedFile:
    """A file ``Sealer.writing`` sealed, decrypted part by part into one array: ``opened(start, end)`` decrypts the
    chunks that hold those bytes, straight from the memory-mapped file into their place (no other copy is made), on
    up to ``OPENING_THREADS`` threads that each fill their part's fresh pages first (``_fill`` and ``cryptography``
    release the GIL). Errors as ``Sealer.chunks``; a part is only given out once each of its chunks has opened (a chunk
    that fails may have been written into the array unauthenticated)."""

    def __init__(self, sealer: Sealer, path: Path, associated: bytes) -> None:
        self._aead = sealer._aead
        self._chunks = list(_sealed_chunks(path, associated))
        self._ends = np.cumsum([max(len(sealed) - OVERHEAD, 0) for sealed, _, _ in self._chunks]).tolist()
        self._starts = [0, *self._ends[:-1]]
        self._opened = [False] * len(self._chunks)
        #: Plaintext bytes.
        self.size: int = self._ends[-1]
        self._plaintext = _fresh_memory(self.size)

    def opened(self, start: int, end: int, threads: int | None = None) -> np.ndarray:
        """``plaintext[start:end]`` (a view of the one array), each chunk holding it opened first (those not yet)."""
        first, last = bisect.bisect_right(self._ends, start), bisect.bisect_left(self._starts, end)
        if end >= self.size:  # the last chunk too, even empty: it is what says that the file ends there
            first, last = min(first, len(self._opened) - 1), len(self._opened)
        positions = [position for position in range(first, last) if not self._opened[position]]
        into = self._plaintext.data

        def open_chunks(run: range) -> None:
            if run:
                _fill(self._plaintext, self._starts[positions[run[0]]], self._ends[positions[run[-1]]])
            for position in (positions[i] for i in run):
                sealed, context, what = self._chunks[position]
                with _opening(what):
                    nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
                    self._aead.decrypt_into(
                        nonce, ciphertext, context, into[self._starts[position] : self._ends[position]]
                    )

        _on_threads(open_chunks, len(positions), threads or OPENING_THREADS)
        for position in positions:
            self._opened[position] = True
        if all(self._opened):  # the sealed file's mapping is not needed any more
            self._chunks.clear()
        return self._plaintext[start:end]


def _on_threads(work: Callable[[range], None], count: int, threads: int) -> None:
    """``work`` over ``range(count)`` cut into up to ``threads`` runs, one per thread (this one does the first); the
    first run's error, in order, is raised once every thread has finished."""
    runs = [range(count * i // threads, count * (i + 1) // threads) for i in range(threads)]
    with ThreadPoolExecutor(max(threads - 1, 1), thread_name_prefix="faceprint-open") as pool:
        others = [pool.submit(work, run) for run in runs[1:] if run]
        work(runs[0])  # an error here is the first in order; leaving the block waits for the others
        for other in others:
            other.result()


@contextlib.contextmanager
def _opening(what: str) -> Iterator[None]:
    """``KeyRequiredError`` naming ``what`` when a message does not open (a wrong key, or bytes changed or moved)."""
    from cryptography.exceptions import InvalidTag

    try:
        yield
    except (InvalidTag, ValueError):
        raise _not_opening(what) from None


def _not_opening(what: str) -> KeyRequiredError:
    return KeyRequiredError(f"{what} does not open with this key (a wrong key, or the bytes were altered or moved)")


def _fresh_memory(size: int) -> np.ndarray:
    """``size`` writable bytes whose pages the kernel has not filled yet (``_fill``). Not huge pages: in a VM that
    hands freed 2 MiB blocks back to its host (virtio-balloon free page reporting, as here), filling 130 MB of them
    took 28-190 ms against 41-54 ms in 4 KiB pages (BENCHMARKS.md, "Privacy")."""
    if size <= 0 or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(size, np.uint8)
    return np.frombuffer(mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS), np.uint8)


def _fill(memory: np.ndarray, start: int, end: int) -> None:
    """Has the kernel fill the pages of ``memory[start:end]`` in one call (``MADV_POPULATE_WRITE``, Linux 5.14 and
    later), through ``ctypes``, which releases the GIL, so that threads fill their own parts at once: quicker than
    a page fault per page as it is first written, which is what happens where this call does not exist."""
    madvise = _madvise()
    if madvise is None or end <= start:
        return
    first = memory.ctypes.data + start
    page = first - first % mmap.PAGESIZE
    madvise(page, first + (end - start) - page, _MADV_POPULATE_WRITE)  # a refusal only leaves the faults


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    if sys.platform != "linux":
        return None
    call = ctypes.CDLL(None, use_errno=True).madvise
    call.argtypes, call.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return cast(Callable[[int, int, int], int], call)


def _chunk_bytes(path: Path) -> int:
    """The chunk size of a file ``Sealer.writing`` sealed (``ValueError`` if it is not one)."""
    with open(path, "rb") as f:
        header = f.read(_HEADER_BYTES)
    chunk_bytes = int.from_bytes(header[len(_FILE_MAGIC) : len(_FILE_MAGIC) + 4], "big")
    if len(header) < _HEADER_BYTES or not header.startswith(_FILE_MAGIC) or not 0 < chunk_bytes <= 1 << 28:
        raise ValueError(f"{path} is not a file faceprint sealed in chunks")
    return chunk_bytes


def _sealed_chunks(path: Path, associated: bytes) -> Iterator[tuple[memoryview, bytes, str]]:
    """Each sealed chunk of a file ``Sealer.writing`` sealed, with the associated data it must open with: views of
    the file memory-mapped read-only (the page cache's own pages, not a copy). Files are only ever replaced whole
    (``HNSWIndex.save``), so the mapped file does not change under the reader."""
    chunk_bytes = _chunk_bytes(path)
    with open(path, "rb") as f:
        mapped = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    header, at, position = bytes(mapped[:_HEADER_BYTES]), _HEADER_BYTES, 0
    while True:
        end = min(at + chunk_bytes + OVERHEAD, len(mapped))
        last = end == len(mapped)
        yield mapped[at:end], _chunk_context(associated, header, position, last), f"{path} (chunk {position})"
        if last:
            return
        at, position = end, position + 1


def wrap_data_key(data_key: bytes, master_key: bytes, owner: str) -> str:
    """``data_key`` sealed under ``master_key`` for ``owner`` (e.g. a gallery id), as text to store."""
    return base64.b64encode(Sealer(master_key).seal(data_key, _wrap_context(owner))).decode()


def unwrap_data_key(wrapped: str, master_key: bytes, owner: str, what: str) -> bytes:
    """The data key ``wrap_data_key`` wrapped; ``KeyRequiredError`` naming ``what`` when the master key is wrong."""
    try:
        sealed = base64.b64decode(wrapped, validate=True)
    except ValueError:
        raise KeyRequiredError(f"{what}: its wrapped data key is damaged") from None
    return Sealer(master_key).open(sealed, _wrap_context(owner), f"{what}'s data key")


def _wrap_context(owner: str) -> bytes:
    return b"faceprint data key\0" + owner.encode()


def _chunk_context(associated: bytes, header: bytes, position: int, last: bool) -> bytes:
    return associated + b"\0" + header + position.to_bytes(8, "big") + (b"\1" if last else b"\0")
