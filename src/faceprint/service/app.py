"""The FastAPI application: routers, problem documents, request size limit, metrics, the web page."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from . import collections, private, recognition, schemas, timing, videos
from .context import AdminKey, ReadKey, Service, service_of
from .problems import ERROR_RESPONSES, Problem, install, problem_response
from .settings import ServiceSettings
from .warm import HELPER_GRACE, has_helper, models_loaded, warm_up

API_DESCRIPTION = """Face recognition as a service: collections of enrolled people per tenant, recognition that
answers `unknown` for strangers at a stated false-positive identification rate (FPIR), verification at a stated
false-match rate (FMR). Every request carries an API key (`Authorization: Bearer fpk_...`) made by
`faceprint apikeys create`; every error is an RFC 9457 problem document."""


def create_app(settings: ServiceSettings) -> FastAPI:
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # With a start-up helper (`faceprint serve`) answering, this process loads its models a little later:
        # loading them now would hold the GIL while the first requests are served.
        warm_up(delay=HELPER_GRACE if has_helper() else 0.0)
        # What the imports made (~90k objects: fastapi's, pydantic's, the routes') lives as long as the process:
        # out of the collector's sight, a full collection no longer walks it (110 ms under load; BENCHMARKS.md).
        # `faceprint serve` turned the collector off for the start-up; it runs again from here on.
        gc.freeze()
        gc.enable()
        yield
        service.close_collections()

    app = FastAPI(
        title="faceprint",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.service = service
    install(app)
    # The routers' own routes, served as they are (prefix, responses and tags are the routers'): included, FastAPI
    # would build each route's parameters and response models a second time, at its first request (BENCHMARKS.md).
    for router in (collections.router, recognition.router, private.router, videos.router, _service_routes()):
        app.router.routes.extend(router.routes)
    static = resources.files("faceprint.service") / "static"
    app.mount("/ui", StaticFiles(directory=str(static), html=True), name="ui")

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.add_middleware(_Observed, service=service)
    app.add_middleware(_BodyLimit, limit=settings.max_request_bytes)
    return app


def app_from_env() -> FastAPI:
    """The app of a uvicorn worker process (``faceprint serve --workers N``), configured by ``$FACEPRINT_SERVICE``."""
    return create_app(ServiceSettings.from_env())


def _service_routes() -> Any:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/health", response_model=schemas.Health, tags=["service"])
    async def health() -> dict[str, Any]:
        """The process answers (with its process id: with ``--workers N``, which one did)."""
        return {"status": "ok", "process": os.getpid()}

    @router.get("/ready", response_model=schemas.Health, tags=["service"], responses={503: ERROR_RESPONSES[503]})
    async def ready(request: Request) -> dict[str, str]:
        """The models are loaded, the data directory and the key store can be read: the process serves requests
        at full speed (503 while it warms up after a start)."""
        service = service_of(request)
        if not models_loaded():
            raise Problem(503, "Not ready", "loading the models", headers={"Retry-After": "1"})
        if not service.settings.data_dir.is_dir():
            raise Problem(503, "Not ready", f"data directory {service.settings.data_dir} is missing")
        await service.run(lambda: service.keys.list("-"))
        return {"status": "ready"}

    @router.get("/metrics", response_class=PlainTextResponse, tags=["service"])
    async def metrics(request: Request) -> str:
        """Prometheus text: requests, latency histogram, faces processed, queue depth (of this process)."""
        return service_of(request).metrics.render()

    @router.get("/v1/me", response_model=schemas.WhoAmI, tags=["service"], responses=ERROR_RESPONSES)
    async def whoami(*, key: ReadKey) -> dict[str, Any]:
        """The key's tenant and scopes (what the web page signs in with)."""
        return {"key_id": key.id, "tenant": key.tenant, "scopes": list(key.scopes), "expires_at": key.expires_at}

    @router.get("/v1/audit", response_model=schemas.AuditPage, tags=["service"], responses=ERROR_RESPONSES)
    async def audit(
        request: Request,
        *,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
        key: AdminKey,
    ) -> dict[str, Any]:
        """The tenant's audit log, newest first: key id, action, collection, person, counts."""
        service = service_of(request)
        entries = await service.run(lambda: service.audit.entries(key.tenant, limit=limit, before=before))
        return {"items": [e.to_dict() for e in entries]}

    return router


class _Observed:
    """Counts every request in the metrics, by route template (not by raw path: ids would explode the labels),
    and tells the client where its time went (``Server-Timing``)."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status, timings = time.perf_counter(), 500, timing.start()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), timings.header_item()]}
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/ui" if scope["path"].startswith("/ui") else "other")
            self.service.metrics.observe(scope["method"], path, status, time.perf_counter() - start)


class _BodyTooLarge(Exception):
    pass


class _BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413, by its Content-Length or, streamed, as it arrives,
    before it is parsed or spooled to disk."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        received, started = 0, False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.limit} bytes"
        await problem_response(Problem(413, "Request too large", detail))(scope, receive, send)
