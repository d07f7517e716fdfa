"""Routes that look at faces: recognize (from a photo, or a template), verify, detect, analyze."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile

from ..api import verify as verify_images
from ..apikeys import ApiKey
from ..choices import AttributeName, Disclosure
from ..match import disclose as shown_at
from ..match import least_detailed, load_calibration
from ..pipeline import DEFAULT_OPTIONS, ImageResult, single_face
from ..types import Face
from . import schemas
from .collections import CollectionName, PersonId, person_in
from .context import QueryKey, RecognizeKey, read_upload, service_of
from .problems import ERROR_RESPONSES, Problem
from .timing import timed

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

Fpir = Annotated[
    float | None,
    Query(gt=0, lt=1, description="False-positive identification rate to decide at (default 1e-2)"),
]
Fmr = Annotated[float | None, Query(gt=0, lt=1, description="False-match rate to decide at (default: calibrated)")]
TopK = Annotated[int, Query(ge=1, le=50, description="Candidates listed per face")]
Attributes = Annotated[list[AttributeName], Query(description="Face attributes to estimate as well")]
Disclose = Annotated[
    Disclosure,
    Query(
        description="Every score, each only as the calibration band it passes, or the decisions alone; "
        "never more than the key's own cap (faceprint apikeys create --disclose)"
    ),
]


@router.post("/collections/{collection}/recognize", response_model=schemas.Recognition, tags=["recognize"])
async def recognize(
    request: Request,
    *,
    collection: CollectionName,
    image: Annotated[UploadFile, File(description="A photo; every face of it is decided")],
    fpir: Fpir = None,
    top_k: TopK = 5,
    attributes: Attributes = [],  # noqa: B006 - FastAPI copies a default list per request
    disclose: Disclose = "scores",
    key: QueryKey,
) -> dict[str, Any]:
    """Every face of the photo (main faces first, at most the service's limit): a name or ``unknown``, the
    decision and its reason, the FPIR it was decided at, the candidates, the box and the quality report."""
    service = service_of(request)
    upload = await read_upload(service, image)

    def work() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            options = service.options(dataclasses.replace(gallery.options, attributes=tuple(attributes)))
        (result,) = service.images([upload], options)
        if result.error is not None:
            raise result.error
        faces = result.faces[: service.settings.max_faces]
        with timed("search"), service.collection(key.tenant, collection) as gallery:
            answers = gallery.identify_faces(faces, top_k=top_k, fpir=fpir)
            calibration, level = gallery.calibration(), least_detailed(key.disclosure, disclose)
        named_count = sum(a.match is not None for a in answers)
        service.record(key, "recognize", collection, faces=len(answers), named=named_count)
        shown = [shown_at(a.to_dict(), level, calibration) for a in answers]
        return {"image": upload.name, "faces": shown, "faces_found": len(result.faces)}

    return await service.run(work)


@router.post("/collections/{collection}/search", response_model=schemas.SearchResults, tags=["recognize"])
async def search_templates(
    request: Request,
    *,
    collection: CollectionName,
    body: schemas.TemplateSearch,
    disclose: Disclose = "scores",
    key: QueryKey,
) -> dict[str, Any]:
    """Bring your own template: vectors computed by the collection's model (``faceprint embed``), each decided
    as ``recognize`` decides a face."""
    service = service_of(request)

    def work() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            answers = gallery.identify_templates(body.templates, top_k=body.top_k, fpir=body.fpir)
            calibration, level = gallery.calibration(), least_detailed(key.disclosure, disclose)
        service.record(key, "search", collection, templates=len(answers))
        return {"results": [shown_at(a.to_dict(), level, calibration) for a in answers]}

    return await service.run(work)


@router.post("/verify", response_model=schemas.Verification, tags=["verify"])
async def verify(
    request: Request,
    *,
    a: Annotated[UploadFile, File(description="A photo of one face")],
    b: Annotated[UploadFile, File(description="Another photo of one face")],
    fmr: Fmr = None,
    largest: Annotated[bool, Query(description="Use the main face of a photo with several")] = False,
    disclose: Disclose = "scores",
    key: QueryKey,
) -> dict[str, Any]:
    """Are the faces of two photos the same person? Decided at ``fmr`` with the shipped calibration."""
    service = service_of(request)
    first, second = await read_upload(service, a), await read_upload(service, b)

    def work() -> dict[str, Any]:
        options = service.options(DEFAULT_OPTIONS)
        faces = [_one_face(result, largest) for result in service.images([first, second], options)]
        answer = verify_images(faces[0], faces[1], fmr=fmr)
        service.record(key, "verify", match=int(answer.match))
        calibration = load_calibration(options.model.model_id)
        return shown_at(answer.to_dict(), least_detailed(key.disclosure, disclose), calibration)

    return await service.run(work)


@router.post(
    "/collections/{collection}/people/{person_id}/verify", response_model=schemas.Verification, tags=["verify"]
)
async def verify_person(
    request: Request,
    *,
    collection: CollectionName,
    person_id: PersonId,
    image: Annotated[UploadFile, File(description="A photo of one face")],
    fmr: Fmr = None,
    largest: Annotated[bool, Query(description="Use the main face of a photo with several")] = False,
    disclose: Disclose = "scores",
    key: QueryKey,
) -> dict[str, Any]:
    """Is the face of the photo this enrolled person? Decided at ``fmr`` (1:1) with the collection's calibration."""
    service = service_of(request)
    upload = await read_upload(service, image)

    def work() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            options = service.options(gallery.options)
        (result,) = service.images([upload], options)
        face = _one_face(result, largest)
        with service.collection(key.tenant, collection) as gallery:
            answer = gallery.verify(face, person_in(gallery, person_id).id, fmr=fmr)
            calibration = gallery.calibration()
        service.record(key, "verify", collection, person_id, match=int(answer.match))
        return shown_at(answer.to_dict(), least_detailed(key.disclosure, disclose), calibration)

    return await service.run(work)


@router.post("/detect", response_model=schemas.Detection, tags=["detect"])
async def detect(
    request: Request,
    *,
    image: Annotated[UploadFile, File(description="A photo")],
    key: RecognizeKey,
) -> dict[str, Any]:
    """The faces of a photo, main face first: box, landmarks, quality report."""
    return await _faces(request, image, (), key, "detect")


@router.post("/analyze", response_model=schemas.Detection, tags=["detect"])
async def analyze(
    request: Request,
    *,
    image: Annotated[UploadFile, File(description="A photo")],
    attributes: Attributes = ["age", "gender", "expression", "pose"],  # noqa: B006
    key: RecognizeKey,
) -> dict[str, Any]:
    """The faces of a photo with estimated attributes (guesses from appearance, not facts about a person)."""
    if not attributes:
        raise Problem(422, "Invalid request", "ask for at least one attribute")
    return await _faces(request, image, tuple(attributes), key, "analyze")


async def _faces(
    request: Request, image: UploadFile, attributes: tuple[AttributeName, ...], key: ApiKey, action: str
) -> dict[str, Any]:
    service = service_of(request)
    upload = await read_upload(service, image)

    def work() -> dict[str, Any]:
        options = service.options(dataclasses.replace(DEFAULT_OPTIONS, attributes=attributes))
        (result,) = service.images([upload], options, embed=False)
        if result.error is not None:
            raise result.error
        faces = result.faces
        service.record(key, action, faces=len(faces))
        shown = faces[: service.settings.max_faces]
        return {"image": upload.name, "faces": [face.to_dict() for face in shown], "faces_found": len(faces)}

    return await service.run(work)


def _one_face(result: ImageResult, largest: bool) -> Face:
    if result.error is not None:
        raise result.error
    return single_face(result.faces, result.source, largest=largest)
