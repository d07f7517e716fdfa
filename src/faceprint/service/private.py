"""Routes of encrypted identification (``faceprint.encrypted``, mode "plain"): the client encrypts a probe under its
own CKKS key, the service scores it against a collection's people without being able to decrypt it, and the client
decrypts, ranks and decides with the decision rule the manifest gave it.

Mode "encrypted" (a gallery encrypted under the client's key, held by the server) is not served: such a gallery is
the client's file, grown and shrunk by the client (removing a person means decrypting and re-encrypting a block), and
a 100,000-row one takes 412 MB, beyond a request's size limit. ``faceprint private enroll|identify
--encrypted-gallery`` keeps it where its owner runs.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import WithJsonSchema

from ..encrypted import ProbeError, ServedGalleries, score_probe
from .collections import CollectionName
from .context import QueryKey, RecognizeKey, service_of
from .problems import ERROR_RESPONSES, Problem
from .recognition import Fpir
from .schemas import Shape

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["recognize"])

_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_NOT_INSTALLED = {**ERROR_RESPONSES[503], "description": "The server lacks the 'private' extra"}
_served_lock = threading.Lock()

#: A row's person id and name. Its schema is written without JSON Schema's tuple keyword (``prefixItems``, what
#: pydantic writes): schemathesis 4.32 turns that into draft 4's list of item schemas and then rejects its own
#: result as an OpenAPI 3.1 schema, failing every valid manifest it checks.
Label = Annotated[
    tuple[int, str],
    WithJsonSchema(
        {
            "type": "array",
            "description": "[person id, name]",
            "minItems": 2,
            "maxItems": 2,
            "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        }
    ),
]


class PrivateManifest(Shape):
    """What a client needs to encrypt a probe for this collection and decide from its scores."""

    mode: str
    #: The collection's content the rows are of: name it back when posting a probe.
    version: str | None
    model_id: str
    #: CKKS parameters: the client's key must have been made with the same.
    parameters: dict[str, Any]
    #: Where each coordinate of each row lies in the ciphertexts.
    layout: dict[str, int]
    #: Each row's person id and name, in row order.
    labels: list[Label]
    #: The decision point in brief (threshold, FPIR, size), and in full for the client to decide with.
    point: dict[str, Any]
    decision_rule: dict[str, Any]


def _served(request: Request) -> ServedGalleries:
    """This process's prepared galleries (made on first use: it loads SEAL)."""
    state = request.app.state
    with _served_lock:
        if getattr(state, "private_galleries", None) is None:
            try:
                state.private_galleries = ServedGalleries()
            except ImportError:
                raise Problem(501, "Not available", "this server lacks the 'private' extra (tenseal)") from None
        served: ServedGalleries = state.private_galleries
        return served


@router.get("/collections/{collection}/private", response_model=PrivateManifest, responses={501: _NOT_INSTALLED})
async def private_manifest(
    request: Request, *, collection: CollectionName, fpir: Fpir = None, key: RecognizeKey
) -> dict[str, Any]:
    """The manifest of an encrypted search of the collection's people (one row each, their centroid), decided at
    ``fpir``. Prepared once per content of the collection, not per request."""
    service, served = service_of(request), _served(request)

    def work() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            manifest = served.private_gallery(gallery, fpir).manifest()
        service.record(key, "private.manifest", collection, rows=len(manifest["labels"]))
        return manifest

    return await service.run(work)


@router.post(
    "/collections/{collection}/private/scores",
    response_class=Response,
    responses={200: {"content": _BINARY, "description": "The encrypted scores"}, 501: _NOT_INSTALLED},
    openapi_extra={"requestBody": {"required": True, "content": _BINARY}},
)
async def private_scores(
    request: Request,
    *,
    collection: CollectionName,
    version: Annotated[str, Query(max_length=200, description="The manifest's version")],
    key: QueryKey,
) -> Response:
    """Encrypted scores for an encrypted probe (the body: ``ClientKey.probe_message``), one per row of the manifest
    of ``version``; 409 if the collection has changed since (fetch the manifest again). The service holds no key:
    it never sees the probe, the scores or the decision; its audit log records the request, not the probe."""
    if key.disclosure != "scores":  # the client decrypts raw scores: no band or decision can be imposed on them
        raise Problem(403, "Scores not disclosed", f"this key is capped at {key.disclosure}: encrypted scores are raw")
    service, served = service_of(request), _served(request)
    probe = await request.body()
    if not probe:
        raise Problem(422, "Empty probe", "the body holds no encrypted probe")

    def work() -> bytes:
        with service.collection(key.tenant, collection) as gallery:
            current, rows = served.rows(gallery)
        if current != version:
            raise Problem(409, "Collection changed", f"the collection is at version {current}, not {version}")
        try:
            scores = score_probe(served.scorer, rows, probe)  # outside the collection's lock: rows do not change
        except ProbeError as error:
            raise Problem(422, "Malformed probe", str(error)) from None
        service.record(key, "private.scores", collection, rows=rows.layout.rows, probe_bytes=len(probe))
        return scores

    return Response(await service.run(work), media_type="application/octet-stream")
