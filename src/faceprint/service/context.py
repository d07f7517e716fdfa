"""What every route shares: the service's state, the API key check (tenant, scope, rate), uploads, and
running work off the event loop."""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ..apikeys import ApiKey, KeyStore
from ..audit import AuditLog
from ..choices import Scope
from ..errors import AccessError
from ..gallery import Gallery
from ..image import sniff_format
from ..pipeline import ImageResult, PipelineOptions, process_files
from ..ratelimit import QueryBudgets, RateLimits
from ..tenancy import GALLERY_FILE, Tenancy
from .metrics import Metrics
from .problems import Problem
from .settings import ServiceSettings
from .timing import record, timed
from .warm import PIPELINE, helper_images

T = TypeVar("T")


@dataclass(frozen=True)
class Upload:
    """An uploaded image's bytes, with the name it is reported by (the client's file name)."""

    name: str
    data: bytes


@dataclass
class _OpenCollection:
    gallery: Gallery
    lock: threading.Lock
    #: (device, inode) of the gallery file it opened: a collection deleted and made anew is another file.
    file_id: tuple[int, int]


@dataclass
class _Images:
    """Images of one request waiting for the pipeline, and where their results go."""

    sources: list[bytes]
    options: PipelineOptions
    embed: bool
    done: Future[list[ImageResult]]
    queued: float = dataclasses.field(default_factory=time.perf_counter)
    #: When its batch started and how many images it held (the request's ``queue`` and ``pipeline`` timings).
    started: float = 0.0
    batch_images: int = 0


class ImageBatcher:
    """Runs the images of concurrent requests through the pipeline in one thread, holding ``PIPELINE``: the
    requests that arrive while a batch runs form the next one (up to ``max_images`` images with the same
    pipeline options), whose faces are then embedded in one batched call."""

    def __init__(self, metrics: Metrics, max_images: int = 8) -> None:
        self.metrics, self.max_images = metrics, max_images
        self._waiting: list[_Images] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def images(self, sources: list[bytes], options: PipelineOptions, *, embed: bool = True) -> list[ImageResult]:
        """The pipeline's results for ``sources``, in order (blocks the calling worker thread until done)."""
        item = _Images(sources, options, embed, Future())
        with self._ready:
            self._waiting.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="faceprint-images", daemon=True)
                self._thread.start()
            self._ready.notify()
        self.metrics.queued(len(sources))
        try:
            results = item.done.result()
        finally:
            self.metrics.queued(-len(sources))
        record("queue", item.started - item.queued)
        record("pipeline", time.perf_counter() - item.started, f"batch of {item.batch_images}")
        return results

    def _next_batch(self) -> list[_Images]:
        with self._ready:
            self._ready.wait_for(lambda: bool(self._waiting))
            first, count = self._waiting[0], 0
            batch: list[_Images] = []
            for item in list(self._waiting):
                same = item.options == first.options and item.embed == first.embed
                if same and (not batch or count + len(item.sources) <= self.max_images):
                    batch.append(item)
                    count += len(item.sources)
                    self._waiting.remove(item)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            sources = [source for item in batch for source in item.sources]
            started = time.perf_counter()
            for item in batch:
                item.started, item.batch_images = started, len(sources)
            try:
                results = iter(self._run(sources, batch[0].options, batch[0].embed))
            except Exception as error:  # each request answers with it; the thread goes on
                for item in batch:
                    item.done.set_exception(error)
                continue
            for item in batch:
                item.done.set_result([next(results) for _ in item.sources])

    @staticmethod
    def _run(sources: list[bytes], options: PipelineOptions, embed: bool) -> list[ImageResult]:
        results = helper_images(sources, options, embed)  # while this process's models are not loaded yet
        if results is not None:
            return results
        with PIPELINE:
            return list(process_files(sources, options, workers=1, embed=embed, chunk_size=len(sources)))


class Service:
    """The state of one server process: settings, tenants' collections (each opened once), keys, audit, metrics."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.tenancy = Tenancy(settings.data_dir)
        self.keys = KeyStore(settings.data_dir)
        self.audit = AuditLog(settings.data_dir)
        self.metrics = Metrics()
        self.limits = RateLimits(settings.data_dir, settings.rate_per_second, settings.rate_burst)
        self.budgets = QueryBudgets(settings.data_dir)
        self.batcher = ImageBatcher(self.metrics, settings.batch_images)
        self._keys_lock = threading.Lock()
        self._open: dict[tuple[str, str], _OpenCollection] = {}
        self._open_lock = threading.Lock()
        #: The video job runner (``faceprint.service.videos``), started with the first job.
        self.jobs: Any = None
        self.lock = threading.Lock()

    def close_collections(self) -> None:
        """Close every open gallery (at shutdown; they open again on the next request, as after a restart).
        The key store and the audit log stay open for the process's life."""
        with self._open_lock:
            for entry in self._open.values():
                with entry.lock:
                    entry.gallery.close()
            self._open.clear()

    def authenticate(self, token: str) -> ApiKey:
        with self._keys_lock:
            return self.keys.authenticate(token)

    def admit(self, token: str) -> ApiKey:
        """The key of ``token``, valid now and within its rate (shared by every server process), or a 401 or
        429 problem (call from a worker thread: both are SQLite reads or writes)."""
        with timed("admit"):
            try:
                key = self.authenticate(token)
            except AccessError as error:
                raise Problem(401, "Invalid API key", str(error)) from None
            wait = self.limits.take(key.id)
        if wait > 0:
            raise _retry_later("Too many requests", "rate limit of this key", wait)
        return key

    def spend(self, key: ApiKey) -> None:
        """One query of ``key`` against its budget (shared by every server process), or a 429 problem."""
        wait = 0.0 if key.budget is None else self.budgets.spend(key.id, key.budget)
        if wait > 0:
            raise _retry_later("Query budget exhausted", f"this key's {key.budget} queries of the day are spent", wait)

    # --- collections ----------------------------------------------------------------------

    @contextmanager
    def collection(self, tenant: str, name: str) -> Iterator[Gallery]:
        """The tenant's collection, for one operation at a time (call from a worker thread: it may block)."""
        entry = self._entry(tenant, name)
        with entry.lock:
            yield entry.gallery

    def _entry(self, tenant: str, name: str) -> _OpenCollection:
        path = self.tenancy.collection_dir(tenant, name) / GALLERY_FILE
        try:
            stat = os.stat(path)
            file_id = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            file_id = (-1, -1)
        with self._open_lock:
            entry = self._open.get((tenant, name))
            if entry is not None and entry.file_id == file_id:
                return entry
            if entry is not None:  # deleted (and perhaps made anew) by another request or process
                del self._open[(tenant, name)]
                with entry.lock:
                    entry.gallery.close()
            gallery = self.tenancy.open(tenant, name)
            entry = _OpenCollection(gallery, threading.Lock(), file_id)
            self._open[(tenant, name)] = entry
            return entry

    def forget(self, tenant: str, name: str) -> None:
        """Close a collection about to be deleted."""
        with self._open_lock:
            entry = self._open.pop((tenant, name), None)
        if entry is not None:
            with entry.lock:
                entry.gallery.close()

    # --- work off the event loop ------------------------------------------------------------

    async def run(self, work: Callable[[], T]) -> T:
        """Work off the event loop, in a worker thread: gallery work (SQLite, search), and waiting for images
        (``images``). The hand-over to the thread and back to the event loop is timed as ``hops``."""
        handed = time.perf_counter()
        began = finished = 0.0

        def timed_work() -> T:
            nonlocal began, finished
            began = time.perf_counter()
            try:
                return work()
            finally:
                finished = time.perf_counter()

        try:
            return await run_in_threadpool(timed_work)
        finally:
            record("hops", (began - handed) + (time.perf_counter() - finished))

    def images(self, uploads: list[Upload], options: PipelineOptions, *, embed: bool = True) -> list[ImageResult]:
        """The pipeline's results for uploaded images (call from a worker thread: it waits for the batcher),
        each reported by its upload's name."""
        results = self.batcher.images([u.data for u in uploads], options, embed=embed)
        self.metrics.faces_processed(sum(len(r.faces) for r in results))
        return [named(result, upload) for result, upload in zip(results, uploads)]

    def options(self, base: PipelineOptions) -> PipelineOptions:
        """``base`` within the service's pixel limit."""
        return dataclasses.replace(base, max_pixels=self.settings.max_pixels)

    def record(
        self, key: ApiKey, action: str, collection: str | None = None, person: Any = None, **counts: int
    ) -> None:
        with timed("audit"):
            self.audit.record(
                key_id=key.id,
                tenant=key.tenant,
                action=action,
                collection=collection,
                person=None if person is None else str(person),
                counts=counts,
            )


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


_bearer = HTTPBearer(auto_error=False, description="An API key made by `faceprint apikeys create`.")


def require(scope: Scope, *, query: bool = False) -> Callable[..., Any]:
    """A route dependency: the request's API key, valid now, within its rate, holding ``scope``; for a ``query``
    (an answer with scores) within its query budget too."""

    async def key_with_scope(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> ApiKey:
        if credentials is None:
            raise Problem(401, "API key required", "send the key as 'Authorization: Bearer fpk_...'")
        service = service_of(request)
        key = await service.run(lambda: service.admit(credentials.credentials))
        if not key.allows(scope):
            raise Problem(403, "Scope missing", f"this key lacks the {scope!r} scope")
        if query:
            await service.run(lambda: service.spend(key))
        request.state.key = key
        return key

    return key_with_scope


ReadKey = Annotated[ApiKey, Depends(require("read"))]
EnrollKey = Annotated[ApiKey, Depends(require("enroll"))]
RecognizeKey = Annotated[ApiKey, Depends(require("recognize"))]
QueryKey = Annotated[ApiKey, Depends(require("recognize", query=True))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]


async def read_upload(service: Service, upload: UploadFile) -> Upload:
    """An uploaded image within the size limit, recognised by its content (not its name or declared type)."""
    limit = service.settings.max_upload_bytes
    data = await upload.read(limit + 1)
    name = os.path.basename(upload.filename or "") or "upload"
    if len(data) > limit:
        raise Problem(413, "Upload too large", f"{name}: larger than the limit of {limit} bytes")
    if not data:
        raise Problem(422, "Empty upload", f"{name}: the file is empty (0 bytes)")
    if sniff_format(data) is None:
        raise Problem(415, "Not an image", f"{name}: not a JPEG, PNG, WebP, BMP or TIFF image (by its content)")
    return Upload(name, data)


def named(result: ImageResult, upload: Upload) -> ImageResult:
    """A pipeline result reported by the upload's name rather than ``<N bytes>``."""
    anonymous = result.source
    error = result.error
    if error is not None:
        error = type(error)(str(error).replace(anonymous, upload.name))
    return dataclasses.replace(result, source=upload.name, error=error)


def _retry_later(title: str, detail: str, wait: float) -> Problem:
    """A 429 problem telling the client to come back in ``wait`` seconds (at least 1, whole)."""
    seconds = max(1, math.ceil(wait))
    return Problem(429, title, f"{detail}: retry in {seconds} s", headers={"Retry-After": str(seconds)})
