"""Routes of collections, people and their faces."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Path, Query, Request, Response, UploadFile

from ..choices import QualityFilter
from ..draw import thumbnail
from ..errors import FaceprintError, PersonNotFoundError
from ..gallery import Gallery
from ..pipeline import ImageResult
from ..tenancy import CollectionSettings, collection_settings, keep_thumbnail
from ..tenancy import thumbnail as thumbnail_of
from . import schemas
from .context import AdminKey, EnrollKey, ReadKey, Upload, read_upload, service_of
from .problems import ERROR_RESPONSES, Problem

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

CollectionName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="The collection's name")]
PersonId = Annotated[int, Path(ge=1, le=2**62)]
FaceId = Annotated[int, Path(ge=1, le=2**62)]
Offset = Annotated[int, Query(ge=0, le=2**31)]
Limit = Annotated[int, Query(ge=1, le=500)]


def describe(gallery: Gallery, name: str) -> dict[str, Any]:
    people = gallery.people()
    return {
        "name": name,
        **collection_settings(gallery).to_dict(),
        "people": len(people),
        "templates": gallery.template_count(),
        "model_id": gallery.model_id,
        "fmr": gallery.operating_point().fmr,
        "identification": gallery.identification_stats(),
    }


def person_in(gallery: Gallery, person_id: int) -> Any:
    """The person of that id in this collection (a name or an external id that looks like the id is not it)."""
    person = gallery.person(person_id)
    if person.id != person_id:
        raise PersonNotFoundError(f"no person {person_id}")
    return person


@router.get("/collections", response_model=schemas.CollectionList, tags=["collections"])
async def list_collections(request: Request, *, key: ReadKey) -> dict[str, Any]:
    service = service_of(request)
    return {"collections": await service.run(lambda: service.tenancy.collections(key.tenant))}


@router.post("/collections", status_code=201, response_model=schemas.Collection, tags=["collections"])
async def create_collection(request: Request, *, body: schemas.CollectionCreate, key: AdminKey) -> dict[str, Any]:
    service = service_of(request)

    def create() -> dict[str, Any]:
        settings = CollectionSettings(thumbnails=body.thumbnails, description=body.description)
        with service.tenancy.create(key.tenant, body.name, settings) as gallery:
            service.record(key, "collection.create", body.name)
            return describe(gallery, body.name)

    return await service.run(create)


@router.get("/collections/{collection}", response_model=schemas.Collection, tags=["collections"])
async def get_collection(request: Request, *, collection: CollectionName, key: ReadKey) -> dict[str, Any]:
    service = service_of(request)

    def get() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            return describe(gallery, collection)

    return await service.run(get)


@router.delete("/collections/{collection}", status_code=204, tags=["collections"])
async def delete_collection(request: Request, *, collection: CollectionName, key: AdminKey) -> Response:
    service = service_of(request)

    def delete() -> None:
        service.forget(key.tenant, collection)
        service.tenancy.delete(key.tenant, collection)
        service.record(key, "collection.delete", collection)

    await service.run(delete)
    return Response(status_code=204)


@router.get("/collections/{collection}/people", response_model=schemas.PeoplePage, tags=["people"])
async def list_people(
    request: Request,
    *,
    collection: CollectionName,
    offset: Offset = 0,
    limit: Limit = 50,
    key: ReadKey,
) -> dict[str, Any]:
    service = service_of(request)

    def page() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            people = gallery.people()
        items = [p.to_dict() for p in people[offset : offset + limit]]
        return {"items": items, "total": len(people), "offset": offset, "limit": limit}

    return await service.run(page)


@router.post("/collections/{collection}/people", status_code=201, response_model=schemas.Person, tags=["people"])
async def create_person(
    request: Request,
    *,
    collection: CollectionName,
    body: schemas.PersonCreate,
    key: EnrollKey,
) -> dict[str, Any]:
    service = service_of(request)

    def create() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            person = gallery.add_person(body.name, external_id=body.external_id, metadata=body.metadata)
        service.record(key, "person.create", collection, person.id)
        return person.to_dict()

    return await service.run(create)


@router.get("/collections/{collection}/people/{person_id}", response_model=schemas.Person, tags=["people"])
async def get_person(
    request: Request, *, collection: CollectionName, person_id: PersonId, key: ReadKey
) -> dict[str, Any]:
    service = service_of(request)

    def get() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            return dict(person_in(gallery, person_id).to_dict())

    return await service.run(get)


@router.patch("/collections/{collection}/people/{person_id}", response_model=schemas.Person, tags=["people"])
async def rename_person(
    request: Request,
    *,
    collection: CollectionName,
    person_id: PersonId,
    body: schemas.PersonRename,
    key: EnrollKey,
) -> dict[str, Any]:
    service = service_of(request)

    def rename() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            person = gallery.rename(person_in(gallery, person_id).id, body.name)
        service.record(key, "person.rename", collection, person_id)
        return person.to_dict()

    return await service.run(rename)


@router.post("/collections/{collection}/people/{person_id}/merge", response_model=schemas.Person, tags=["people"])
async def merge_person(
    request: Request,
    *,
    collection: CollectionName,
    person_id: PersonId,
    body: schemas.PersonMerge,
    key: EnrollKey,
) -> dict[str, Any]:
    service = service_of(request)

    def merge() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            source, target = person_in(gallery, person_id), person_in(gallery, body.into)
            if source.id == target.id:
                raise Problem(422, "Cannot merge", "a person cannot be merged into themselves")
            person = gallery.merge(source.id, target.id)
        service.record(key, "person.merge", collection, f"{person_id}->{body.into}", templates=person.template_count)
        return person.to_dict()

    return await service.run(merge)


@router.delete("/collections/{collection}/people/{person_id}", status_code=204, tags=["people"])
async def delete_person(
    request: Request, *, collection: CollectionName, person_id: PersonId, key: EnrollKey
) -> Response:
    service = service_of(request)

    def delete() -> None:
        with service.collection(key.tenant, collection) as gallery:
            person = gallery.remove_person(person_in(gallery, person_id).id)
        service.record(key, "person.delete", collection, person_id, templates=person.template_count)

    await service.run(delete)
    return Response(status_code=204)


@router.post(
    "/collections/{collection}/people/{person_id}/faces",
    status_code=201,
    response_model=schemas.FacesAdded,
    tags=["faces"],
)
async def add_faces(
    request: Request,
    *,
    collection: CollectionName,
    person_id: PersonId,
    images: Annotated[list[UploadFile], File(description="Photos of the person, one face each")],
    quality: Annotated[QualityFilter, Query(description="Which faces to refuse for their quality")] = "auto",
    largest: Annotated[bool, Query(description="Use the main face of a photo with several")] = False,
    key: EnrollKey,
) -> dict[str, Any]:
    """Add faces from photos, all in one transaction or none; each refused photo is listed with the reason."""
    service = service_of(request)
    if len(images) > service.settings.max_files:
        raise Problem(413, "Too many files", f"at most {service.settings.max_files} images per request")
    uploads = [await read_upload(service, image) for image in images]

    def add() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            name = person_in(gallery, person_id).name
            options = service.options(gallery.options)
        results = service.images(uploads, options)
        with service.collection(key.tenant, collection) as gallery:
            person_in(gallery, person_id)  # still there
            enrollment = gallery.enroll_results(name, results, largest=largest, quality_filter=quality)
            if collection_settings(gallery).thumbnails:
                _keep_thumbnail(gallery, person_id, results, enrollment.rejected, uploads)
        refused = [{"image": s, "kind": type(e).__name__, "reason": str(e)} for s, e in enrollment.rejected]
        service.record(key, "faces.add", collection, person_id, added=len(enrollment.added), refused=len(refused))
        return {
            "person": enrollment.person.to_dict(),
            "added": enrollment.added,
            "duplicates": enrollment.duplicates,
            "quality": quality,
            "refused": refused,
        }

    return await service.run(add)


def _keep_thumbnail(
    gallery: Gallery,
    person_id: int,
    results: list[ImageResult],
    rejected: list[tuple[str, FaceprintError]],
    uploads: list[Upload],
) -> None:
    """The person's thumbnail, from the first accepted photo, unless they have one."""
    if thumbnail_of(gallery, person_id) is not None:
        return
    refused = {source for source, _ in rejected}
    for result, upload in zip(results, uploads):
        if result.faces and result.source not in refused:
            keep_thumbnail(gallery, person_id, thumbnail(upload.data, result.faces[0].box))
            return


@router.get(
    "/collections/{collection}/people/{person_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "A small JPEG of the person's face"}},
    tags=["people"],
)
async def get_thumbnail(request: Request, *, collection: CollectionName, person_id: PersonId, key: ReadKey) -> Response:
    """The person's face thumbnail, where the collection opted in to keeping them (404 otherwise)."""
    service = service_of(request)

    def read() -> bytes:
        with service.collection(key.tenant, collection) as gallery:
            person_in(gallery, person_id)
            jpeg = thumbnail_of(gallery, person_id)
        if jpeg is None:
            raise Problem(404, "No thumbnail", f"no thumbnail of person {person_id} (none kept, or no photo yet)")
        return jpeg

    return Response(await service.run(read), media_type="image/jpeg")


@router.get("/collections/{collection}/people/{person_id}/faces", response_model=schemas.FacesPage, tags=["faces"])
async def list_faces(
    request: Request,
    *,
    collection: CollectionName,
    person_id: PersonId,
    offset: Offset = 0,
    limit: Limit = 50,
    key: ReadKey,
) -> dict[str, Any]:
    service = service_of(request)

    def page() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            templates = gallery.templates(person_in(gallery, person_id).id)
        items = [_face_record(t.to_dict()) for t in templates[offset : offset + limit]]
        return {"items": items, "total": len(templates), "offset": offset, "limit": limit}

    return await service.run(page)


def _face_record(record: dict[str, Any]) -> dict[str, Any]:
    fields = ("id", "person_id", "model_id", "source", "box", "quality", "created_at")
    return {field: record[field] for field in fields}


@router.delete("/collections/{collection}/people/{person_id}/faces/{face_id}", status_code=204, tags=["faces"])
async def delete_face(
    request: Request,
    *,
    collection: CollectionName,
    person_id: PersonId,
    face_id: FaceId,
    key: EnrollKey,
) -> Response:
    service = service_of(request)

    def delete() -> None:
        with service.collection(key.tenant, collection) as gallery:
            person = person_in(gallery, person_id)
            if face_id not in {t.id for t in gallery.templates(person.id)}:
                raise PersonNotFoundError(f"no face {face_id} of person {person_id}")
            gallery.remove_template(face_id)
        service.record(key, "faces.delete", collection, person_id, removed=1)

    await service.run(delete)
    return Response(status_code=204)


@router.delete("/collections/{collection}/people/{person_id}/faces", response_model=schemas.Removed, tags=["faces"])
async def delete_faces(
    request: Request, *, collection: CollectionName, person_id: PersonId, key: EnrollKey
) -> dict[str, Any]:
    service = service_of(request)

    def delete() -> dict[str, Any]:
        with service.collection(key.tenant, collection) as gallery:
            removed = gallery.remove_templates(person_in(gallery, person_id).id)
        service.record(key, "faces.delete", collection, person_id, removed=len(removed))
        return {"removed": len(removed)}

    return await service.run(delete)
