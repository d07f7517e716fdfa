"""Every error answer is an RFC 9457 problem document (``application/problem+json``) with a 4xx status.

Library errors are mapped in ONE table, ``PROBLEM_STATUS`` (like the CLI's ``EXIT_CODES``): the first class an
error is an instance of wins. The service's own refusals (no key, scope, size, type, rate) raise ``Problem``.
Nothing else reaches a client: an unexpected exception is logged and answered as a 500 problem without a
traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..errors import (
    AccessError,
    CollectionNotFoundError,
    DatasetError,
    FaceprintError,
    GalleryError,
    InvalidImageError,
    InvalidNameError,
    KeyRequiredError,
    LowQualityError,
    ManyFacesError,
    ModelError,
    NoFaceError,
    OutputError,
    PersonNotFoundError,
    UnsupportedFMRError,
)

PROBLEM_TYPE = "application/problem+json"
log = logging.getLogger("faceprint.service")

#: The one table from library errors to HTTP statuses and titles.
PROBLEM_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (AccessError, 401, "Invalid API key"),
    (CollectionNotFoundError, 404, "No such collection"),
    (PersonNotFoundError, 404, "No such person or face"),
    (UnsupportedFMRError, 422, "Rate outside the calibrated range"),
    (InvalidNameError, 422, "Name cannot be used"),
    (InvalidImageError, 422, "Unreadable image"),
    (DatasetError, 422, "Unusable input"),
    (NoFaceError, 422, "No face found"),
    (ManyFacesError, 422, "Several faces found"),
    (LowQualityError, 422, "Face quality too low"),
    (ModelError, 422, "Template of another model"),
    # The server was started without the master key of an encrypted collection: its operator must act.
    (KeyRequiredError, 503, "Collection key not available"),
    (GalleryError, 409, "Conflict with the collection's content"),
    (OutputError, 503, "Result could not be stored"),
    (FaceprintError, 422, "Request cannot be done"),
    (ValueError, 422, "Invalid value"),
)


class Problem(Exception):
    """A refusal of the service itself, answered as a problem document."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers: dict[str, str] = extra.pop("headers", {})


class ProblemDocument(BaseModel):
    """RFC 9457: ``type`` (here always about:blank), ``title``, ``status``, ``detail``, and members per problem."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str


def problem_for(error: Exception) -> Problem:
    """The problem a library error answers with (``PROBLEM_STATUS``)."""
    for kind, status, title in PROBLEM_STATUS:
        if isinstance(error, kind):
            return Problem(status, title, str(error))
    raise error


def problem_response(problem: Problem) -> JSONResponse:
    body = {"type": "about:blank", "title": problem.title, "status": problem.status, "detail": problem.detail}
    return JSONResponse(
        {**body, **problem.extra}, status_code=problem.status, media_type=PROBLEM_TYPE, headers=problem.headers
    )


#: Declared for every route in the OpenAPI schema, so that clients (and Schemathesis) know the error shape. By
#: reference to the one schema that ``install`` declares: a model here would be a pydantic TypeAdapter per route and
#: status (~300) made at start-up (BENCHMARKS.md, "Service start-up").
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "content": {PROBLEM_TYPE: {}, "application/json": {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}},
        "description": description,
    }
    for status, description in (
        (400, "Malformed request"),
        (401, "Missing or invalid API key"),
        (403, "The key lacks the scope"),
        (404, "Not found (also: another tenant's)"),
        (409, "Conflict"),
        (413, "Upload too large"),
        (415, "Not an image format faceprint reads"),
        (422, "Invalid input"),
        (429, "Rate limit exceeded (see Retry-After)"),
        (503, "Busy: the video queue is full (see Retry-After)"),
    )
}


def _methods_of(request: Request) -> list[str]:
    return sorted(
        {
            method
            for route in request.app.routes
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE
            for method in route.methods or ()
        }
    )


def install(app: FastAPI) -> None:
    """Answer every error with a problem document, declared once in the OpenAPI schema."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        schema.setdefault("components", {}).setdefault("schemas", {})["ProblemDocument"] = (
            ProblemDocument.model_json_schema(mode="serialization")
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_library_error(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(problem_for(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem_response(Problem(422, "Invalid request", detail, errors=errors))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette lists the methods of one route only; a path has one route per method
            headers["Allow"] = ", ".join(_methods_of(request))
        return problem_response(Problem(exc.status_code, str(exc.detail), str(exc.detail), headers=headers))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(Problem(500, "Internal error", "the server failed; the error is logged"))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(FaceprintError, on_library_error)
    app.add_exception_handler(ValueError, on_library_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
