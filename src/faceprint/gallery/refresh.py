"""A stale gallery measures itself anew in the background, one process at a time, while searches go on.

A large gallery's own measurement (``Gallery.measure_identification``) takes seconds to minutes. In a process
that keeps a gallery open (the HTTP service, a video run, a library user) a search that finds it stale or missing
starts this measurement in a thread and decides meanwhile with the bound for the current size (strict: it never
promises more than it can keep). The thread reads and writes through its own SQLite connection (WAL: readers
never wait for it, and it writes only a lease row now and then and the result at the end, each a short
transaction), searches through the gallery's index in chunks (``MEASURE_CHUNK``: a search of the foreground waits
for one chunk at most), and stores the result with the size it was measured at.

One measurement at a time per gallery file, across processes: a lease row in the gallery (``LEASE_KEY``), renewed
while the measurement advances, expires ``LEASE_SECONDS`` after its last renewal, or at once when its holder, a
process on this machine, has gone (killed).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from ..errors import FaceprintError
from ..match import GalleryTail
from .sqlite import SQLiteStore
from .store import GalleryStore

#: Gallery meta key of the lease of the one process measuring the gallery (JSON, ``Lease``).
LEASE_KEY = "identification_refresh_lease"
#: A lease not renewed for this long is free (its holder died, or hangs); renewed every third of it.
LEASE_SECONDS = 120.0
#: What a search's basis says while this process measures its gallery.
MEASURING = "measuring this gallery anew in the background"
#: After a measurement failed, the next search tries again only this much later (not at every search).
RETRY_AFTER_SECONDS = LEASE_SECONDS


class Measurable(Protocol):
    """What a background measurement needs of the gallery it measures (``faceprint.gallery.Gallery``)."""

    @property
    def path(self) -> str | Path: ...
    @property
    def store(self) -> GalleryStore: ...
    def measure_identification(
        self, *, store: SQLiteStore | None = None, before_chunk: Callable[[], None] | None = None
    ) -> GalleryTail: ...


class Cancelled(Exception):
    """The gallery was closed (or changed model) while it measured itself: the measurement is dropped."""


@dataclass(frozen=True)
class Lease:
    """Who measures a gallery now, and until when unless renewed."""

    owner: str
    host: str
    pid: int
    expires: float

    @classmethod
    def mine(cls, owner: str, seconds: float, now: float) -> Lease:
        return cls(owner, socket.gethostname(), os.getpid(), now + seconds)

    @classmethod
    def parse(cls, text: str | None) -> Lease | None:
        if text is None:
            return None
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):
            return None  # unreadable: as if free (the next claim writes a good one)

    def held(self, now: float) -> bool:
        """Is this lease still in force: not expired, and its holder alive if it runs on this machine?"""
        if now >= self.expires:
            return False
        return self.host != socket.gethostname() or process_alive(self.pid)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def current_lease(store: SQLiteStore, now: float | None = None) -> Lease | None:
    """The lease in force on the gallery of ``store``, if any."""
    lease = Lease.parse(store.meta(LEASE_KEY))
    return lease if lease is not None and lease.held(time.time() if now is None else now) else None


def claim_lease(store: SQLiteStore, owner: str, *, seconds: float = LEASE_SECONDS, now: float | None = None) -> bool:
    """Take (or renew) the gallery's lease for ``owner``; False when another holds it in force."""
    now = time.time() if now is None else now
    wanted = Lease.mine(owner, seconds, now).to_json()

    def take(text: str | None) -> str | None:
        held = Lease.parse(text)
        free = held is None or held.owner == owner or not held.held(now)
        return wanted if free else text

    return store.swap_meta(LEASE_KEY, take) == wanted


def release_lease(store: SQLiteStore, owner: str) -> None:
    """Give the lease back if ``owner`` holds it."""

    def give_back(text: str | None) -> str | None:
        held = Lease.parse(text)
        return None if held is not None and held.owner == owner else text

    store.swap_meta(LEASE_KEY, give_back)


class BackgroundMeasurement:
    """The background measurement of one opened gallery (``Gallery(measure_in_background=True)``): started by a search
    that finds the measurement stale, at most one at a time, stopped when the gallery closes."""

    def __init__(self, gallery: Measurable, key: bytes | None, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self.gallery = gallery
        self.key = key  # the gallery's master key: the thread opens its own connection with it
        self.lease_seconds = lease_seconds
        #: The last measurement this process stored, and the error of the last that failed (None: none did).
        self.measured: GalleryTail | None = None
        self.error: Exception | None = None
        self._failed_at = -float("inf")
        self._owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def underway(self) -> str | None:
        """The measurement of this gallery under way, in words (None: none, in this process or another)."""
        if self.running:
            return MEASURING
        assert isinstance(self.gallery.store, SQLiteStore)
        other = current_lease(self.gallery.store)
        return None if other is None else f"being measured anew by process {other.pid} on {other.host}"

    def start(self) -> str:
        """Start measuring unless this process measures already, another holds the lease, or the last attempt
        failed a short while ago; what is under way (or why nothing is), in words."""
        with self._lock:
            underway = self.underway()
            if underway is not None:
                return underway
            if time.monotonic() - self._failed_at < RETRY_AFTER_SECONDS:
                return f"the last background measurement failed ({self.error}); it is tried again later"
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"faceprint-measure {self.gallery.path}", daemon=True
            )
            self._thread.start()
            return MEASURING

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the measurement under way (if any) to end; False if it still runs after ``timeout`` seconds."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def stop(self) -> None:
        """Drop the measurement under way (it stops after its current chunk) and wait for it to go."""
        self._stop.set()
        self.wait()

    def _run(self) -> None:
        try:
            store = SQLiteStore(Path(self.gallery.path), key=self.key, create=False)
        except FaceprintError as exc:
            self._failed(exc)
            return
        try:
            if claim_lease(store, self._owner, seconds=self.lease_seconds):
                try:
                    renew = functools.partial(self._renew, store)
                    self.measured = self.gallery.measure_identification(store=store, before_chunk=renew)
                    self.error = None
                finally:
                    release_lease(store, self._owner)
        except Cancelled:
            pass
        except Exception as exc:  # a thread has no caller to raise to: kept in ``error``, and searches say it
            self._failed(exc)
        finally:
            store.close()

    def _renew(self, store: SQLiteStore) -> None:
        """Before each chunk: stop if told to, and keep the lease (a write every third of its length)."""
        if self._stop.is_set():
            raise Cancelled
        lease = Lease.parse(store.meta(LEASE_KEY))
        if lease is None or lease.expires - time.time() < 2 * self.lease_seconds / 3:
            claim_lease(store, self._owner, seconds=self.lease_seconds)

    def _failed(self, error: Exception) -> None:
        self.error = error
        self._failed_at = time.monotonic()
