"""Video jobs: upload a clip to a collection, follow the job's status, read its event timeline (JSONL).

Each server process runs its own jobs one at a time, in a thread, from a bounded queue (full: 503 with
Retry-After); the job's files live in the tenant's folder (``faceprint.video.jobs``).
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse

from ..errors import CollectionNotFoundError
from . import schemas
from .collections import CollectionName
from .context import RecognizeKey, Service, service_of
from .problems import ERROR_RESPONSES, Problem
from .warm import PIPELINE

if TYPE_CHECKING:
    from ..video.jobs import JobStatus, VideoJobs

# ``faceprint.video`` is imported with the first video request, not at the server's start (it is not needed
# for the first recognize answer; BENCHMARKS.md, "Service").

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
log = logging.getLogger("faceprint.service")
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The job's id")]


class JobRunner:
    """One thread per process running queued jobs in order."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.waiting: queue.Queue[tuple[str, str]] = queue.Queue(service.settings.max_queued_jobs)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, tenant: str, job: JobStatus) -> None:
        try:
            self.waiting.put_nowait((tenant, job.id))
        except queue.Full:
            shutil.rmtree(self.service.tenancy.jobs_dir(tenant) / job.id, ignore_errors=True)
            raise Problem(
                503, "Video queue full", "too many video jobs waiting; try again later", headers={"Retry-After": "30"}
            ) from None
        self.service.metrics.jobs(1)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="faceprint-video-jobs", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            tenant, job_id = self.waiting.get()
            try:
                self._run(tenant, job_id)
            finally:
                self.service.metrics.jobs(-1)

    def _run(self, tenant: str, job_id: str) -> None:
        jobs = _jobs(self.service, tenant)
        try:
            job = jobs.status(job_id)
            with self.service.tenancy.open(tenant, job.collection) as gallery:
                jobs.run(job_id, gallery, exclusive=PIPELINE)
        except Exception as error:  # a job's failure must not end the thread that runs the others
            log.exception("video job %s failed", job_id)
            jobs.fail(job_id, f"{type(error).__name__}: the job could not be run")


def runner_of(service: Service) -> JobRunner:
    with service.lock:
        if service.jobs is None:
            service.jobs = JobRunner(service)
        runner: JobRunner = service.jobs
        return runner


@router.post("/collections/{collection}/videos", status_code=202, response_model=schemas.Job, tags=["video"])
async def submit_video(
    request: Request,
    *,
    collection: CollectionName,
    video: Annotated[UploadFile, File(description="An MP4, MOV, WebM, Matroska or AVI clip")],
    fpir: Annotated[float | None, Query(gt=0, lt=1, description="FPIR the tracks are named at")] = None,
    key: RecognizeKey,
) -> dict[str, Any]:
    """Queue a clip: its faces are tracked and identified against the collection; follow the job's status."""
    service = service_of(request)
    limit = service.settings.max_upload_bytes
    data = await video.read(limit + 1)
    if len(data) > limit:
        raise Problem(413, "Upload too large", f"the video is larger than the limit of {limit} bytes")
    from ..video.jobs import sniff_video

    if not sniff_video(data):
        raise Problem(415, "Not a video", "not an MP4, MOV, WebM, Matroska or AVI video (by its content)")

    def create() -> JobStatus:
        if not service.tenancy.exists(key.tenant, collection):
            raise CollectionNotFoundError(f"no collection {collection!r}")
        return _jobs(service, key.tenant).create(collection, data, fpir=fpir)

    job = await service.run(create)
    runner_of(service).submit(key.tenant, job)
    service.record(key, "video.submit", collection, bytes=len(data))
    return job.to_dict()


@router.get("/jobs/{job_id}", response_model=schemas.Job, tags=["video"])
async def get_job(request: Request, *, job_id: JobId, key: RecognizeKey) -> dict[str, Any]:
    """The job's state (queued, running, done, failed), frames processed, events found, error."""
    service = service_of(request)
    return (await service.run(lambda: _job(service, key.tenant, job_id))).to_dict()


@router.get(
    "/jobs/{job_id}/events",
    response_class=FileResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One JSON line per ended track"}},
    tags=["video"],
)
async def get_job_events(request: Request, *, job_id: JobId, key: RecognizeKey) -> FileResponse:
    """The job's event timeline so far: one JSON line per track, written as it ends (the format of
    ``faceprint video --events``)."""
    service = service_of(request)
    _job(service, key.tenant, job_id)
    path = _jobs(service, key.tenant).events_path(job_id)
    if not path.exists():
        raise Problem(404, "No events yet", f"job {job_id} has not started")
    return FileResponse(path, media_type="application/x-ndjson")


def _jobs(service: Service, tenant: str) -> VideoJobs:
    from ..video.jobs import VideoJobs

    return VideoJobs(service.tenancy.jobs_dir(tenant))


def _job(service: Service, tenant: str, job_id: str) -> JobStatus:
    try:
        return _jobs(service, tenant).status(job_id)
    except FileNotFoundError:
        raise Problem(404, "No such job", f"no job {job_id}") from None
