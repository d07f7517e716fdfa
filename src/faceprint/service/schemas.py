"""The JSON shapes of the API (what the OpenAPI schema documents and every answer conforms to)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..choices import QualityFilter, Scope


class Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="1-64 lowercase letters, digits, - or _")
    thumbnails: bool = Field(False, description="Keep a small face picture per template, for the web page")
    description: str = Field("", max_length=1000)


class Collection(Shape):
    name: str
    thumbnails: bool
    description: str
    people: int
    templates: int
    model_id: str
    #: The 1:1 operating point (verify against a person) and what 1:N decides with (identification).
    fmr: float
    identification: dict[str, Any]


class CollectionList(Shape):
    collections: list[str]


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    external_id: str | None = Field(None, min_length=1, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class PersonRename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class PersonMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: int = Field(ge=1, le=2**62, description="The person who receives every template; this one is removed")


class Person(Shape):
    id: int
    name: str
    external_id: str | None
    metadata: dict[str, Any]
    template_count: int
    created_at: str
    updated_at: str


class PeoplePage(Shape):
    items: list[Person]
    total: int
    offset: int
    limit: int


class FaceRecord(Shape):
    id: int
    person_id: int
    model_id: str
    source: str | None
    box: list[float] | None
    quality: float | None
    created_at: str


class FacesPage(Shape):
    items: list[FaceRecord]
    total: int
    offset: int
    limit: int


class Refusal(Shape):
    image: str
    kind: str
    reason: str


class FacesAdded(Shape):
    person: Person
    added: list[int]
    duplicates: int
    quality: QualityFilter
    refused: list[Refusal]


class Removed(Shape):
    removed: int


class FaceOut(Shape):
    box: list[float]
    confidence: float
    detector: str
    landmarks: list[list[float]]
    quality: dict[str, Any]


class Candidate(Shape):
    person_id: int
    name: str
    #: Absent where the key or request discloses less than scores (``faceprint.match.disclose``).
    similarity: float | None = None
    #: What the threshold applies to: the similarity plus the search's cohort offset (``faceprint.match``).
    score: float | None = None
    estimated_fmr: float | None = None
    #: The calibration band of the similarity, where bands are disclosed.
    band: str | None = None
    decision: str | None


class Recognized(Shape):
    name: str
    decision: str
    reason: str | None
    person_id: int | None
    similarity: float | None = None
    score: float | None = None
    band: str | None = None
    fpir: float
    threshold: float | None
    #: What the threshold was read from: the collection's own measurement, or the bound for its size meanwhile.
    basis: str | None = None
    candidates: list[Candidate]


class RecognizedFace(Recognized):
    face: FaceOut


class Recognition(Shape):
    image: str
    faces: list[RecognizedFace]
    faces_found: int


class TemplateSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    templates: list[list[float]] = Field(min_length=1, max_length=100, description="Vectors of the collection's model")
    fpir: float | None = Field(None, gt=0, lt=1)
    top_k: int = Field(5, ge=1, le=50)


class SearchResults(Shape):
    results: list[Recognized]


class Verification(Shape):
    match: bool
    decision: str
    similarity: float | None = None
    distance: float | None = None
    band: str | None = None
    threshold: float
    operating_fmr: float
    estimated_fmr: float | None = None


class Detection(Shape):
    image: str
    faces: list[FaceOut]
    faces_found: int


class AuditEntry(Shape):
    id: int
    at: str
    key_id: str
    tenant: str
    action: str
    collection: str | None
    person: str | None
    counts: dict[str, int]


class AuditPage(Shape):
    items: list[AuditEntry]


class WhoAmI(Shape):
    key_id: str
    tenant: str
    scopes: list[Scope]
    expires_at: str | None


class Job(Shape):
    id: str
    collection: str
    state: str
    fpir: float | None
    created_at: str
    frames: int
    events: int
    error: str | None
    finished_at: str | None


class Health(Shape):
    status: str
