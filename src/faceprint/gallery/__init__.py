"""The gallery: people, their templates, enrollment and 1:N identification.

The store (an SQLite file, or a Milvus collection) is the source of truth. For an SQLite
gallery the search index is a cache kept in step with the file's change log (see
``faceprint.index.synced``); Milvus searches its own index.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import platformdirs

from ..choices import MODES, STORAGES, AttributeName, Mode, QualityFilter, Storage
from ..errors import FaceprintError, GalleryError, LowQualityError, ModelError, PersonNotFoundError
from ..image import ImageSource
from ..index import GalleryIndex, distinct
from ..match import (
    COHORT,
    STALE_AFTER,
    Calibration,
    GalleryTail,
    IdentificationPoint,
    OperatingPoint,
    check_same_model,
    cohort_score,
    compare,
    identification_point,
    operating_point,
    parse_calibration,
)
from ..models import EMBEDDING_MODELS
from ..pipeline import (
    DEFAULT_OPTIONS,
    BatchRunner,
    ImageResult,
    PipelineOptions,
    process_files,
    single_face,
    template_of,
)
from ..profiles import options_for_model
from ..progress import OnProgress
from ..protect import key_from_env
from ..quality import problems_for
from ..types import Candidate, Decision, Face, Identification, Template, TemplateIdentification, Verification
from .names import name_key, normalize_name
from .records import NewTemplate, Person, TemplateRecord
from .refresh import BackgroundMeasurement
from .sqlite import SQLiteStore
from .store import GalleryStore, open_store

__all__ = [
    "Enrollment",
    "Gallery",
    "GalleryStore",
    "PeopleEnrollment",
    "Person",
    "PhotoIdentification",
    "Ranking",
    "Reembedding",
    "TemplateRecord",
    "calibration_stored_at",
    "default_gallery_path",
]

#: Gallery meta key of the calibration measured by ``faceprint calibrate`` (JSON, as shipped in faceprint/data).
CALIBRATION_KEY = "calibration"
#: Gallery meta key of the gallery's own best-impostor tail (``faceprint.match.GalleryTail``, JSON).
TAIL_KEY = "identification_tail"
#: How many nearest templates are aggregated into per-person candidates.
_TEMPLATES_PER_CANDIDATE = 20
#: Candidates ranked at least (whatever ``top_k``): a search's cohort (``faceprint.match.cohort_score``) is drawn from
#: the owners of as many nearest templates in every search, the gallery's measurement of itself included (with one
#: template a person it ranks only the owners of the nearest few: the same people, ``measure_identification``).
_CANDIDATES_AT_LEAST = 5
#: Leave-one-person-out searches a measurement of the gallery makes at most: FPIR 1e-3 rests on 20 of them.
MEASURE_SEARCHES = 20_000
#: Memory a gallery's cache of person centroids may hold (float32 vectors): a gallery kept open for long (the
#: HTTP service) keeps those used most recently; 64 MiB is 65,536 people of 256-d templates.
CENTROID_CACHE_BYTES = 64 * 2**20
#: Galleries up to this size measure themselves on the search that finds their measurement missing or stale: it
#: costs that search 1.7 s of CPU at 5,000 templates, but 4.9 s at 10,000 and 16 s at 20,000 (the searches grow
#: with the size, and so does each one; BENCHMARKS.md, "Open-set identification at an FPIR"). Larger ones decide
#: with the size-scaled bound (the shipped tail, extrapolated below its floor: strict, never "uncertain" for want
#: of a measurement) until a background measurement (``faceprint.gallery.refresh``) or ``faceprint calibrate
#: --gallery`` has stored a fresh one.
AUTO_MEASURE_TEMPLATES = 5_000
#: A measurement searches this many templates at a time: a search of the foreground waits for one chunk at most.
MEASURE_CHUNK = 256


def default_gallery_path() -> str | Path:
    """``$FACEPRINT_DB`` if set (a path or a Milvus URI), else ``gallery.db`` in the per-user data directory."""
    env = os.environ.get("FACEPRINT_DB")
    return env if env else platformdirs.user_data_path("faceprint") / "gallery.db"


def calibration_stored_at(
    location: str | os.PathLike | None = None, *, model_id: str | None = None, required: bool = False
) -> Calibration | None:
    """The calibration stored by ``faceprint calibrate`` in the gallery at ``location`` (default:
    ``default_gallery_path()``), for decisions without a gallery search (``faceprint.verify``); None when
    that gallery does not exist (it is not created; with ``required``, a ``GalleryError``), holds none, or
    holds one for another model than ``model_id`` (e.g. a gallery of the former default model: templates of
    today's default are decided by their own shipped table)."""
    location = location or default_gallery_path()
    if not required and "://" not in os.fspath(location) and not Path(location).exists():
        return None
    with Gallery(location, create=False) as gallery:
        stored = gallery.stored_calibration()
    return stored if stored is None or model_id in (None, stored.model_id) else None


@dataclass(frozen=True)
class Enrollment:
    """What an enrollment stored, skipped as already enrolled, and refused (with the reason)."""

    person: Person
    added: list[int]
    duplicates: int
    rejected: list[tuple[str, FaceprintError]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "person": self.person.to_dict(),
            "added_templates": self.added,
            "duplicates": self.duplicates,
            "rejected": [{"image": source, "reason": str(error)} for source, error in self.rejected],
        }


@dataclass(frozen=True, eq=False)
class PhotoIdentification:
    """One input of a batch: its faces, each identified, or the error it raised (``result.error``)."""

    result: ImageResult
    faces: list[Identification]

    def to_dict(self) -> dict[str, Any]:
        error = self.result.error
        return {
            "image": self.result.source,
            "error": str(error) if error else None,
            "faces": [face.to_dict() for face in self.faces],
        }


@dataclass(frozen=True)
class PeopleEnrollment:
    """``Gallery.enroll_people``: each person enrolled, and each person not enrolled (with the error)."""

    enrolled: list[Enrollment]
    failed: list[tuple[str, FaceprintError]]

    @property
    def refused_any(self) -> bool:
        """Was a person, or a photo of an enrolled person, refused?"""
        return bool(self.failed) or any(e.rejected for e in self.enrolled)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enrolled": [e.to_dict() for e in self.enrolled],
            "failed": [{"person": p, "error": type(e).__name__, "message": str(e)} for p, e in self.failed],
        }


@dataclass(frozen=True)
class Reembedding:
    """``Gallery.reembed``: how many templates were computed anew, and the templates removed because their
    source image is gone, has changed, or no longer shows the face (each with the reason)."""

    model_id: str
    reembedded: int
    removed: list[tuple[TemplateRecord, str]]
    #: A calibration stored by ``faceprint calibrate`` for the previous model, dropped: it no longer applies.
    calibration_dropped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "reembedded": self.reembedded,
            "removed": [{**record.to_dict(), "reason": reason} for record, reason in self.removed],
            "calibration_dropped": self.calibration_dropped,
        }


class Ranking(NamedTuple):
    """One search's ranked people: up to ``top_k`` (person id, person score), best first, and the search's cohort
    score (``faceprint.match.cohort_score`` over every person it found; None with no one after the best)."""

    people: list[tuple[int, float]]
    cohort: float | None


class Gallery:
    """Enrolled people and their templates in one SQLite file, or in Milvus.

    ``path``: an SQLite file, ``milvus://host:19530/collection`` (a Milvus server or cluster), or a
    local Milvus Lite file (``milvus-lite:///path/file.db`` or any path ending in ``.milvus.db``).
    ``index``: ``"auto"`` searches exactly below ``faceprint.index.synced.ANN_THRESHOLD`` templates
    and with an HNSW graph from there on; ``"exact"`` or ``"hnsw"`` force one. ``index_storage``:
    ``"f32"``, or ``"f16"``/``"i8"`` for a graph of half/a quarter the memory (scores stay exact:
    candidates are re-ranked with the stored float32 templates); by default ``"f32"``, and ``"i8"`` in an
    encrypted gallery, whose sealed graph is decrypted whole at every open. Both apply to SQLite galleries;
    their defaults come from ``$FACEPRINT_INDEX`` and ``$FACEPRINT_INDEX_STORAGE`` when set.
    ``on_progress`` is told how building the search index advances (see ``faceprint.progress``).
    ``fpir`` is the identification operating point (default ``faceprint.match.DEFAULT_FPIR``); ``fmr`` the
    comparison one (``operating_point``, for 1:1 decisions). ``create=False`` opens only a gallery that
    exists (``GalleryError`` naming the file otherwise), for reading: an SQLite gallery is otherwise created
    on first use.
    ``key``: the master key (32 bytes, ``faceprint.protect.read_key_file``; default: the file named by
    ``$FACEPRINT_KEY_FILE``). With a key, an SQLite gallery's vectors, and its saved search index, are stored
    AES-256-GCM encrypted (a gallery opened with a key for the first time is encrypted then); an encrypted gallery
    opened without its key, or with another, is a ``KeyRequiredError`` and nothing changes.
    ``options``: the pipeline; by default, the one of the model the gallery's templates hold
    (``faceprint.profiles.options_for_model``), and ``pipeline.DEFAULT_OPTIONS`` for a new gallery.
    A gallery measures what strangers' searches meet in it (``measure_identification``) when a search finds that
    measurement missing or stale: at once up to ``measure_at_once`` templates (default ``AUTO_MEASURE_TEMPLATES``);
    beyond, with ``measure_in_background`` (SQLite galleries), in a thread while searches decide with the bound for
    the current size (``faceprint.gallery.refresh``); without, not at all (``faceprint calibrate --gallery`` does
    it: short runs, whose thread would be dropped when they end).

    >>> from faceprint import Gallery
    >>> with Gallery("/tmp/doctest-gallery.db") as gallery:
    ...     _ = gallery.enroll("Rose Leslie", ["tests/data/faces-hires/Rose_Leslie/Rose_Leslie_0001.jpg"])
    ...     [face.name for face in gallery.identify("tests/data/faces-hires/Rose_Leslie/Rose_Leslie_0002.jpg")]
    ['Rose Leslie']
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        options: PipelineOptions | None = None,
        fmr: float | None = None,
        fpir: float | None = None,
        index: Mode | None = None,
        index_storage: Storage | None = None,
        on_progress: OnProgress | None = None,
        create: bool = True,
        key: bytes | None = None,
        measure_in_background: bool = True,
        measure_at_once: int | None = None,
    ) -> None:
        self.fmr = fmr
        self.fpir = fpir
        self.measure_in_background = measure_in_background
        self.measure_at_once = AUTO_MEASURE_TEMPLATES if measure_at_once is None else measure_at_once
        self._centroid_cache = _CentroidCache()
        self._mode = index or _from_env("FACEPRINT_INDEX", MODES) or MODES[0]
        # None: the store's default (faceprint.index.synced.SEALED_STORAGE for an encrypted gallery, else f32).
        self._storage = index_storage or _from_env("FACEPRINT_INDEX_STORAGE", STORAGES)
        self._on_progress = on_progress
        location = path if path is not None else default_gallery_path()
        key = key if key is not None else key_from_env()
        self.store: GalleryStore = open_store(location, create=create, key=key)
        self.path = self.store.path
        #: The measurement of this gallery under way in the background (SQLite galleries; see ``refresh``).
        self.background = BackgroundMeasurement(self, key) if isinstance(self.store, SQLiteStore) else None
        self.options = options if options is not None else _options_of_templates(self.store)
        try:
            #: The only way this gallery searches (the store's own: exact or HNSW for SQLite, Milvus's for Milvus).
            self.index: GalleryIndex = self._open_index()
        except ValueError:
            self.store.close()
            raise

    def _open_index(self) -> GalleryIndex:
        return self.store.open_index(
            self.model_id, mode=self._mode, storage=self._storage, on_progress=self._on_progress
        )

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the gallery; a background measurement under way is dropped (after its current chunk)."""
        self._stop_measuring()
        try:
            self.index.close()
        finally:
            self.store.close()

    def _stop_measuring(self) -> None:
        if self.background is not None:
            self.background.stop()

    @property
    def model_id(self) -> str:
        return self.options.model.model_id

    def template_count(self) -> int:
        """How many templates of this gallery's model are enrolled."""
        return self.store.template_count(self.model_id)

    # --- enrollment -----------------------------------------------------------------------

    def enroll(
        self,
        name: str,
        images: Sequence[ImageSource],
        *,
        external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        largest: bool = False,
        quality_filter: QualityFilter = "auto",
        workers: int | None = 1,
    ) -> Enrollment:
        """Add ``name`` (or more photos of them) from images holding one face each.

        All photos are stored in one transaction, or none: a crash mid-way loses nothing
        already committed and commits nothing half-done. Photos with no face, several faces
        (unless ``largest``) or too low a quality for ``quality_filter`` (``faceprint.quality.problems_for``)
        are refused with the reason; if every photo is refused, the error of the first is raised and
        nothing is stored.
        """
        results = list(process_files(images, self.options, workers=workers))
        return self.enroll_results(
            name, results, external_id=external_id, metadata=metadata, largest=largest, quality_filter=quality_filter
        )

    def enroll_results(
        self,
        name: str,
        results: Sequence[ImageResult],
        *,
        external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        largest: bool = False,
        quality_filter: QualityFilter = "auto",
    ) -> Enrollment:
        """``enroll`` for images already run through ``faceprint.pipeline.process_files``."""
        name = normalize_name(name)
        accepted: list[NewTemplate] = []
        rejected: list[tuple[str, FaceprintError]] = []
        for result in results:
            try:
                accepted.append(self._new_template(result, largest, quality_filter))
            except FaceprintError as error:
                rejected.append((result.source, error))
        if not accepted:
            if not rejected:
                raise ValueError("no images given to enroll")
            first = rejected[0][1]
            reasons = "; ".join(str(error) for _, error in rejected)
            raise type(first)(f"nothing enrolled for {name!r}: {reasons}")
        self._check_gallery_model()
        person_id, added = self.store.enroll(name, external_id, metadata, accepted)
        return Enrollment(self.store.person(person_id), added, len(accepted) - len(added), rejected)

    def enroll_people(
        self,
        people: Mapping[str, Sequence[ImageSource]],
        *,
        external_id: str | None = None,
        largest: bool = False,
        quality_filter: QualityFilter = "auto",
        workers: int | None = None,
        on_done: Callable[[int], None] | None = None,
        runner: BatchRunner = process_files,
    ) -> PeopleEnrollment:
        """``enroll`` each person of ``{name: photos}`` (e.g. ``faceprint.image.person_folders(folder)``,
        one sub-folder of photos per person) in one batch across ``workers`` processes.

        A person whose every photo is refused is listed in ``failed`` and the others are enrolled
        still. ``external_id`` is for a single person. ``on_done(n)`` reports progress as in
        ``faceprint.pipeline.process_files``; ``runner`` runs the pipeline (default: ``process_files``; a
        ``faceprint.library.distributed.RayRunner`` for a Ray cluster).
        """
        if external_id is not None and len(people) != 1:
            raise ValueError("external_id names one person; it cannot be given for several")
        photos = [photo for person_photos in people.values() for photo in person_photos]
        # All at once: the last on_done comes only once the batch is read to its end.
        results = iter(list(runner(photos, self.options, workers=workers, on_done=on_done)))
        enrolled: list[Enrollment] = []
        failed: list[tuple[str, FaceprintError]] = []
        for name, person_photos in people.items():
            person_results = [next(results) for _ in person_photos]
            try:
                enrolled.append(
                    self.enroll_results(
                        name, person_results, external_id=external_id, largest=largest, quality_filter=quality_filter
                    )
                )
            except FaceprintError as error:
                failed.append((name, error))
        return PeopleEnrollment(enrolled, failed)

    def _new_template(self, result: ImageResult, largest: bool, quality_filter: QualityFilter) -> NewTemplate:
        if result.error is not None:
            raise result.error
        face = single_face(result.faces, result.source, largest=largest)
        problems = problems_for(face.quality, quality_filter)
        if problems:
            raise LowQualityError(f"{result.source}: face quality too low: {'; '.join(problems)}")
        return _stored_template(face, result.source, result.sha256)

    def add_person(
        self, name: str, *, external_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Person:
        """Enroll someone with no photo yet (``enroll`` adds photos); a name already enrolled, whatever its case,
        is a ``GalleryError``, and so is an external id that belongs to someone else."""
        name = normalize_name(name)
        if any(name_key(p.name) == name_key(name) for p in self.store.people()):
            raise GalleryError(f"{name!r} is already enrolled")
        return self.store.person(self.store.enroll(name, external_id, metadata, [])[0])

    def add_templates(self, name: str, templates: Sequence[Template], *, source: str | None = None) -> list[int]:
        """Store precomputed templates (e.g. from ``faceprint embed``) for ``name``."""
        name = normalize_name(name)
        for template in templates:
            check_same_model(template.model_id, self.model_id)
        self._check_gallery_model()
        rows = [NewTemplate(t.vector, t.model_id, source=source) for t in templates]
        return self.store.enroll(name, None, None, rows)[1]

    def _check_gallery_model(self) -> None:
        others = [m for m in self.store.model_ids() if m != self.model_id]
        if others:
            raise ModelError(
                f"{self.path}: holds templates of model {others[0]!r}, not {self.model_id!r}; "
                "mixing models is refused (re-embed the gallery)"
            )

    def reembed(
        self,
        options: PipelineOptions = DEFAULT_OPTIONS,
        *,
        workers: int | None = None,
        on_done: Callable[[int], None] | None = None,
    ) -> Reembedding:
        """Compute every template anew with ``options`` (e.g. another model) from the image it was enrolled
        from, where that file still exists with the same content (sha256): the face whose centre lies in
        the stored box, nearest its centre. One transaction replaces them all; the templates that cannot
        be computed anew are removed with them (a gallery holds one model) and listed with the reason, and
        so is a calibration stored for another model. Relative source paths are read from the current
        folder. SQLite galleries only.
        """
        if not isinstance(self.store, SQLiteStore):
            raise GalleryError(
                f"{self.path}: re-embedding needs an SQLite gallery (a Milvus collection's dimension is fixed)"
            )
        self._stop_measuring()  # it measures the templates about to be replaced
        faces = self.store.query("SELECT model_id FROM face WHERE model_id != ? LIMIT 1", (options.model.model_id,))
        if faces:  # they would be left behind, of another model than the templates
            raise ModelError(
                f"{self.path}: its photo library (faceprint scan) holds faces of model {faces[0][0]!r}; re-embedding "
                "them is not supported yet, so nothing was changed (a gallery holds one model)"
            )
        records = self.store.all_templates()
        readable = [r for r in records if r.source and r.image_sha256 and Path(r.source).is_file()]
        sources: list[ImageSource] = [str(r.source) for r in readable]
        results = dict(zip([r.id for r in readable], process_files(sources, options, workers=workers, on_done=on_done)))
        added: list[tuple[int, NewTemplate]] = []
        removed: list[tuple[TemplateRecord, str]] = []
        for record in records:
            outcome = _reembedded(record, results.get(record.id))
            if isinstance(outcome, str):
                removed.append((record, outcome))
            else:
                added.append((record.person_id, outcome))
        stored = self.stored_calibration()
        stale = stored is not None and stored.model_id != options.model.model_id
        # The gallery's measurement of itself was of the old templates: identification measures anew.
        dropped = [TAIL_KEY, *([CALIBRATION_KEY] if stale else [])]
        self.store.replace_templates([r.id for r in records], added, dropped)
        self.options = options
        self.index.close()
        self.index = self._open_index()
        self.erase_removed()  # the old model's vectors, in the file and in a saved index
        return Reembedding(options.model.model_id, len(added), removed, stale)

    # --- calibration ------------------------------------------------------------------------

    def stored_calibration(self) -> Calibration | None:
        """The calibration stored in this gallery by ``faceprint calibrate``, if any."""
        text = self.store.meta(CALIBRATION_KEY)
        return None if text is None else parse_calibration(text, f"{self.path} (stored calibration)")

    def calibration(self) -> Calibration:
        """The calibration this gallery decides with: its stored one, else the one shipped for its model."""
        return self.operating_point().calibration

    def operating_point(self, fmr: float | None = None) -> OperatingPoint:
        """What this gallery decides with (``faceprint.match.operating_point``): its stored calibration, else
        the shipped one; at ``fmr``, else the gallery's ``fmr``, else the calibration's operating FMR."""
        return operating_point(
            self.model_id, fmr=fmr if fmr is not None else self.fmr, stored=self.stored_calibration()
        )

    def set_calibration(self, document: dict[str, Any]) -> Calibration:
        """Store a calibration document (the format of ``faceprint/data/calibration-*.json``); from now on
        every decision of this gallery, in any process, uses its thresholds and operating FMR."""
        calibration = Calibration.from_dict(document)
        check_same_model(calibration.model_id, self.model_id)
        self.store.set_meta(CALIBRATION_KEY, json.dumps(document))
        return calibration

    def measured_tail(self) -> GalleryTail | None:
        """The gallery's last measurement of itself (``measure_identification``), fresh or not; None if never."""
        text = self.store.meta(TAIL_KEY)
        if text is None:
            return None
        try:
            return GalleryTail.from_dict(json.loads(text))
        except (json.JSONDecodeError, ModelError) as exc:
            raise ModelError(f"{self.path}: stored identification tail unreadable ({exc})") from None

    def measure_identification(
        self,
        *,
        searches: int = MEASURE_SEARCHES,
        seed: int = 0,
        store: SQLiteStore | None = None,
        before_chunk: Callable[[], None] | None = None,
    ) -> GalleryTail:
        """Measure what a stranger's search meets in this gallery and store it: the templates of randomly
        chosen people (up to ``searches`` in all) are searched through the index, each against everyone but
        its own person, with the same person-level scores as ``identify``, and over every template (the index's
        ``exhaustive_search``, where it has one), as ``identify`` confirms each answer that names no one
        (``rank_people``); the best score of each search, with its cohort score, is a best-impostor score at this
        size (``faceprint.match.GalleryTail``), the size it had when the searches began. ``on_progress`` (the
        gallery's) is told how the searches advance, ``MEASURE_CHUNK`` at a time.
        ``store``: another connection to this gallery's file to read and write through (a background measurement's),
        ``before_chunk()`` is called before each chunk (it may raise to stop the measurement)."""
        start = time.perf_counter()
        reader = store if store is not None else self.store
        people = [p for p in reader.people() if p.template_count]
        order = np.random.default_rng(seed).permutation(len(people))
        owner: dict[int, int] = {}
        for index in order:
            if len(owner) >= searches:
                break
            person = people[int(index)]
            owner.update((t.id, person.id) for t in reader.templates_of(person.id) if t.model_id == self.model_id)
        ids, vectors = reader.vectors(np.fromiter(owner, np.int64, len(owner)), self.model_id)
        templates = reader.template_count(self.model_id)
        spare = max((p.template_count for p in people), default=0)  # k grows by the left-out person's templates
        # With one template a person, the nearest templates' owners are the best people in order: the best and its
        # cohort are the owners of the COHORT + 2 nearest (the left-out person's own included). The search still
        # fetches as many as identify's (a quantised scan's order is exact only after it re-scores them), but the
        # owners and centroids of the others, most of a measurement's time at 1M templates, are not read.
        owners_of = COHORT + 1 + spare if spare == 1 else None
        centroids = _CentroidCache()  # its own: a measurement's 20,000 people would flush the searches' cache
        best: list[float] = []
        cohorts: list[float] = []
        self._report("measuring identification", 0, len(ids))
        for first in range(0, len(ids), MEASURE_CHUNK):
            if before_chunk is not None:
                before_chunk()
            chunk = slice(first, first + MEASURE_CHUNK)
            exclude = [owner[int(i)] for i in ids[chunk]]
            found = self._rank(
                vectors[chunk],
                1,
                exclude=exclude,
                spare=spare,
                store=reader,
                centroids=centroids,
                exhaustive=True,
                owners_of=owners_of,
            )
            ranked = [ranking for ranking in found if ranking.people]
            best.extend(ranking.people[0][1] for ranking in ranked)
            cohorts.extend(np.nan if ranking.cohort is None else ranking.cohort for ranking in ranked)
            self._report("measuring identification", min(first + MEASURE_CHUNK, len(ids)), len(ids))
        tail = GalleryTail.from_scores(
            np.array(best, np.float64),
            calibration=self.calibration(),
            people=len(people),
            templates=templates,
            seconds=time.perf_counter() - start,
            cohorts=np.array(cohorts, np.float64),
        )
        if store is not None:  # the result is not content: no generation bump, no check of every page
            store.swap_meta(TAIL_KEY, lambda _: json.dumps(tail.to_dict()))
        else:
            self.store.set_meta(TAIL_KEY, json.dumps(tail.to_dict()))
        return tail

    def _report(self, description: str, done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(description, done, total)

    def identification_point(self, fpir: float | None = None, *, refresh: bool = True) -> IdentificationPoint:
        """What this gallery identifies with (``faceprint.match.identification_point``) at ``fpir``, else the
        gallery's ``fpir``, else the default: for its size now, corrected by its own measurement where that is
        fresh. With ``refresh``, a missing or stale measurement is made anew: at once up to ``measure_at_once``
        templates, else in the background (``measure_in_background``), the bound deciding meanwhile (its ``basis``
        says so)."""
        templates = self.template_count()
        measured = self.measured_tail()
        underway = None
        if refresh and templates and (measured is None or not measured.fresh(templates)):
            if templates <= self.measure_at_once:
                measured = self.measure_identification()
            elif self.measure_in_background and self.background is not None:
                underway = self.background.start()
        point = identification_point(
            self.model_id,
            templates=templates,
            fpir=fpir if fpir is not None else self.fpir,
            stored=self.stored_calibration(),
            measured=measured,
        )
        return point if underway is None else dataclasses.replace(point, basis=f"{point.basis}; {underway}")

    def stale_measurement(self) -> str | None:
        """Why identification decides with the size bound rather than this gallery's own measurement (None: it
        does not: the measurement is fresh, or the gallery is small enough to make it on its next search)."""
        templates = self.template_count()
        measured = self.measured_tail()
        if templates <= self.measure_at_once or (measured is not None and measured.fresh(templates)):
            return None
        if measured is None:
            return f"it holds {templates:,} templates and has never measured itself"
        return (
            f"it measured itself at {measured.templates:,} templates and holds {templates:,} now "
            f"(stale beyond {STALE_AFTER:.0%})"
        )

    def identification_stats(self, fpir: float | None = None, *, measure: bool = False) -> dict[str, Any]:
        """What identification decides with now: the gallery's own measurement (None if never made; made
        anew first with ``measure``) and whether it is fresh, a measurement under way (``faceprint.gallery.refresh``),
        and the point at ``fpir`` it gives."""
        measured = self.measure_identification() if measure else self.measured_tail()
        point = self.identification_point(fpir, refresh=False)
        return {
            "measured": measured.to_dict() if measured else None,
            "fresh": point.measured is not None,
            "underway": self.background.underway() if self.background is not None else None,
            "point": point.to_dict(),
        }

    # --- identification -------------------------------------------------------------------

    def identify(self, image: ImageSource, *, top_k: int = 5, fpir: float | None = None) -> list[Identification]:
        """Who is each face of ``image``? Main face first; ``unknown`` unless named at ``fpir``."""
        answer = self.identify_files([image], top_k=top_k, fpir=fpir, workers=1)[0]
        if answer.result.error is not None:
            raise answer.result.error
        return answer.faces

    def identify_files(
        self,
        sources: Sequence[ImageSource],
        *,
        top_k: int = 5,
        fpir: float | None = None,
        attributes: Sequence[AttributeName] = (),
        workers: int | None = None,
        on_done: Callable[[int], None] | None = None,
    ) -> list[PhotoIdentification]:
        """``identify`` for many images: the pipeline across worker processes (``process_files``, with
        ``on_done`` for progress), then one batched search for every face. A bad input is that item's error."""
        options = dataclasses.replace(self.options, attributes=tuple(attributes))
        results = list(process_files(sources, options, workers=workers, on_done=on_done))
        found = self.identify_photos([result.faces for result in results], top_k=top_k, fpir=fpir)
        return [PhotoIdentification(result, faces) for result, faces in zip(results, found)]

    def identify_faces(
        self, faces: Sequence[Face], *, top_k: int = 5, fpir: float | None = None
    ) -> list[Identification]:
        """Decide for faces of one photo; no person is given to two faces of it."""
        return self.identify_photos([faces], top_k=top_k, fpir=fpir)[0]

    def identify_photos(
        self, photos: Sequence[Sequence[Face]], *, top_k: int = 5, fpir: float | None = None
    ) -> list[list[Identification]]:
        """``identify_faces`` for the faces of many photos with one batched search (much faster
        per face than one search each, on a large gallery). Decided at ``fpir`` (``identification_point``);
        a face whose quality report has problems is not named."""
        point = self.identification_point(fpir)
        found = self._nearest_people([face for faces in photos for face in faces], top_k, point)
        # Read after the search: a person removed meanwhile is skipped.
        names = self.store.names_of(sorted({person for ranking in found for person, _ in ranking.people}))
        nearest = iter(found)
        answers = []
        for faces in photos:
            ranked = [_candidates(next(nearest), names, point) for _ in faces]
            trusted = [c if face.quality.acceptable else [] for face, c in zip(faces, ranked)]
            matches = _assign(trusted, point.threshold) if point.threshold is not None else [None] * len(faces)
            answers.append(
                [_identification(face, tuple(c), match, point) for face, c, match in zip(faces, ranked, matches)]
            )
        return answers

    def identify_templates(
        self, vectors: Sequence[Sequence[float]] | np.ndarray, *, top_k: int = 5, fpir: float | None = None
    ) -> list[TemplateIdentification]:
        """Who is each template computed elsewhere (bring your own embedding: this gallery's model, so its
        dimension; normalised here)? Each is decided alone at ``fpir`` as ``identify`` decides a face, with no
        quality report (none is refused for quality). A wrong dimension is a ``ModelError``."""
        queries = self._query_vectors(vectors)
        point = self.identification_point(fpir)
        found = self.rank_people(queries, top_k, decided_by=point) if len(queries) else []
        names = self.store.names_of(sorted({person for ranking in found for person, _ in ranking.people}))
        answers = []
        for ranking in found:
            ranked = _candidates(ranking, names, point)
            match = _assign([ranked], point.threshold)[0] if point.threshold is not None else None
            decision, reason = _decision((), ranked, match, point)
            answers.append(
                TemplateIdentification(ranked, match, point.threshold, decision, point.fpir, reason, point.basis)
            )
        return answers

    def _query_vectors(self, vectors: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """Templates given as numbers, checked against this gallery's model and normalised to unit length."""
        queries = np.asarray(vectors, dtype=np.float32)
        dimension = self.options.model.dimension
        if queries.ndim != 2 or queries.shape[1] != dimension:
            raise ModelError(
                f"{self.path}: templates of model {self.model_id!r} have {dimension} numbers; got shape "
                f"{list(queries.shape)}"
            )
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        if not np.all(np.isfinite(queries)) or np.any(norms == 0):
            raise ValueError("a template must be finite numbers, not all zero")
        return queries / norms

    def _nearest_people(self, faces: Sequence[Face], top_k: int, point: IdentificationPoint) -> list[Ranking]:
        """For each face, its ``Ranking`` decided by ``point`` (see ``rank_people``)."""
        if not faces:
            return []
        templates = [template_of(face) for face in faces]
        for template in templates:
            check_same_model(template.model_id, self.model_id)
        return self.rank_people(np.stack([t.vector for t in templates]), top_k, decided_by=point)

    def rank_people(
        self,
        queries: np.ndarray,
        top_k: int,
        *,
        exclude: Sequence[int] | None = None,
        confirm_below: float | None = None,
        decided_by: IdentificationPoint | None = None,
    ) -> list[Ranking]:
        """For each query vector, its ``Ranking``: up to ``top_k`` (person id, person score), best first, and its
        cohort score; ``exclude[i]``: a person left out of query i's answer (leave-one-person-out).

        ``confirm_below``: a query whose best person scores below it (no one: a "no" to be) is searched again
        over every template (the index's ``exhaustive_search``; HNSW galleries), and its candidates are those
        of both searches. ``decided_by``: a point to confirm below the score from which it names someone (its band's
        strict end; none where its target is unsupported: no one is named), each best score moved by its search's
        offset (``IdentificationPoint.offset``), as the point decides.

        An HNSW graph sometimes does not return a person's template at all, and what it returns then scores like a
        stranger's best; confirming every "no" exhaustively means a mate is never
        lost to the graph, while a match needs no confirmation (the exhaustive search can only add candidates).
        ``identify`` confirms below the score that names someone (its point's band), and the gallery's own
        measurement (``measure_identification``) searches exhaustively, so its thresholds hold for such answers.

        A person's score is the similarity to their centroid (the normalised mean of their templates):
        on faces-dev with 3 photos per person it misses a third to a quarter as many mated searches at
        FPIR 1e-2 as the best score over their templates (``bench/open_set.py --aggregations``), and with
        one photo it is that photo's score. The candidates are the owners of the nearest templates."""
        spare = max((p.template_count for p in self.store.people()), default=0) if exclude is not None else 0
        if decided_by is not None:
            confirm_below = decided_by.band[1] if decided_by.band is not None else None
        return self._rank(
            queries,
            top_k,
            exclude=exclude,
            spare=spare,
            store=self.store,
            centroids=self._centroid_cache,
            confirm_below=confirm_below,
            offset=decided_by.offset if decided_by is not None else None,
        )

    def _rank(
        self,
        queries: np.ndarray,
        top_k: int,
        *,
        exclude: Sequence[int] | None,
        spare: int,
        store: GalleryStore,
        centroids: _CentroidCache,
        confirm_below: float | None = None,
        offset: Callable[[float | None], float] | None = None,
        exhaustive: bool = False,
        owners_of: int | None = None,
    ) -> list[Ranking]:
        """``rank_people`` reading through ``store`` with ``centroids``; ``spare`` more templates are fetched (the
        most a left-out person holds); ``offset``: what a search's cohort score adds to its best score before it is
        compared with ``confirm_below``; ``exhaustive``: every query searched over every template at once;
        ``owners_of``: how many of the nearest templates' owners are ranked (default: all that are fetched)."""
        k = max(top_k, _CANDIDATES_AT_LEAST) * _TEMPLATES_PER_CANDIDATE + spare
        found = self.index.exhaustive_search(queries, k) if exhaustive else None
        template_ids = (found[1] if found is not None else self.search_templates(queries, k)[1])[:, :owners_of]
        nearest = self._people_of(queries, template_ids, top_k, exclude, store, centroids)
        if confirm_below is None or found is not None:
            return nearest

        def doubtful_answer(ranking: Ranking) -> bool:
            if not ranking.people:
                return True
            moved = offset(ranking.cohort) if offset is not None else 0.0
            return ranking.people[0][1] + moved < confirm_below

        doubtful = np.flatnonzero([doubtful_answer(ranking) for ranking in nearest])
        confirmed = self.index.exhaustive_search(queries[doubtful], k) if len(doubtful) else None
        if confirmed is not None:
            candidates = np.concatenate([template_ids[doubtful], confirmed[1]], axis=1)
            left_out = [exclude[int(i)] for i in doubtful] if exclude is not None else None
            again = self._people_of(queries[doubtful], candidates, top_k, left_out, store, centroids)
            for row, ranking in zip(doubtful, again):
                nearest[row] = ranking
        return nearest

    def _people_of(
        self,
        queries: np.ndarray,
        template_ids: np.ndarray,
        top_k: int,
        exclude: Sequence[int] | None,
        store: GalleryStore,
        centroids: _CentroidCache,
    ) -> list[Ranking]:
        """The ``top_k`` owners of each query's candidate templates, scored by their centroids, best first, and the
        search's cohort score over every owner."""
        persons = store.persons_of(distinct(template_ids[template_ids >= 0]))
        rows = []
        for row, row_ids in enumerate(template_ids):
            left_out = exclude[row] if exclude is not None else None
            owners = (persons.get(int(t)) for t in row_ids)  # None: a template removed since the search
            rows.append(list(dict.fromkeys(p for p in owners if p is not None and p != left_out)))
        found = centroids.of({p for row in rows for p in row}, store, self.model_id, self.options.model.dimension)
        nearest = []
        for query, candidates in zip(queries, rows):
            people = [p for p in candidates if p in found]  # a person removed since the search is skipped
            scores = np.stack([found[p] for p in people]) @ query if people else np.zeros(0)
            order = np.argsort(-scores, kind="stable")
            ranked = [(people[i], float(scores[i])) for i in order[:top_k]]
            nearest.append(Ranking(ranked, cohort_score(scores[order])))
        return nearest

    def _centroids(self, people: set[int]) -> dict[int, np.ndarray]:
        """Normalised mean template of each of ``people`` (``_CentroidCache``)."""
        return self._centroid_cache.of(people, self.store, self.model_id, self.options.model.dimension)

    def person_centroids(self) -> tuple[list[int], list[str], np.ndarray]:
        """Every person's id, name and centroid (the vector ``rank_people`` scores them by), in id order: the rows
        an encrypted search scores (``faceprint.encrypted``)."""
        people = sorted(self.store.people(), key=lambda p: p.id)
        centroids = self._centroids({p.id for p in people})
        kept = [p for p in people if p.id in centroids]
        dimension = EMBEDDING_MODELS[self.model_id].dimension if self.model_id in EMBEDDING_MODELS else 0
        vectors = np.stack([centroids[p.id] for p in kept]) if kept else np.zeros((0, dimension), np.float32)
        return [p.id for p in kept], [p.name for p in kept], vectors

    def search_templates(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, template_ids)`` of the ``k`` most similar templates to each query vector,
        best first (rows padded with id ``-1`` when the gallery holds fewer)."""
        return self.index.search(queries, k)

    # --- the search index -------------------------------------------------------------------

    def index_stats(self) -> dict[str, object]:
        """How the gallery is searched: exact or HNSW, size, memory, saved file (opened or rebuilt first),
        and what its identifications decide with (``identification_stats``)."""
        return {**self.index.stats(), "identification": self.identification_stats()}

    def rebuild_index(self) -> dict[str, object]:
        """Build the search index from the gallery anew and save it (templates, storage, file)."""
        return self.index.rebuild()

    def verify_index(self) -> list[str]:
        """Problems found comparing the search index with the gallery, template by template (empty: consistent)."""
        return self.index.verify()

    # --- people ---------------------------------------------------------------------------

    def people(self) -> list[Person]:
        return self.store.people()

    def person(self, key: str | int) -> Person:
        """A person by name, id or external id."""
        return self.store.person(key)

    def templates(self, key: str | int) -> list[TemplateRecord]:
        return self.store.templates_of(self.store.person(key).id)

    def rename(self, key: str | int, new_name: str) -> Person:
        return self.store.rename(key, normalize_name(new_name))

    def merge(self, source: str | int, target: str | int) -> Person:
        """Move every template of ``source`` into ``target`` and remove ``source``."""
        merged = self.store.merge(source, target)
        self.erase_removed()  # templates of images both were enrolled from are removed
        return merged

    def remove_person(self, key: str | int) -> Person:
        """Remove a person and their templates, leaving no copy of their vectors in the files faceprint wrote
        (``erase_removed``)."""
        removed = self.store.remove_person(key)
        self.erase_removed()
        return removed

    def remove_template(self, template_id: int) -> TemplateRecord:
        removed = self.store.remove_template(template_id)
        self.erase_removed()
        return removed

    def erase_removed(self) -> None:
        """Leave no copy of a removed template's vector in a file faceprint wrote for this gallery: the SQLite file
        (deleted rows are zeroed as they are deleted) and its WAL (checkpointed and truncated), the search index's
        file (its tombstones zeroed). Copies made outside faceprint (backups) are not reachable; see the README."""
        if isinstance(self.store, SQLiteStore):
            self.store.erase_removed()
        self.index.erase_removed()

    # --- encryption at rest ---------------------------------------------------------------------

    def rekey(self, new_key: bytes) -> None:
        """Wrap the gallery's data key under ``new_key`` (encrypting the gallery first if it is not): the old
        master key opens it no more. The vectors are not re-encrypted."""
        if not isinstance(self.store, SQLiteStore):
            raise GalleryError(f"{self.path}: faceprint encrypts SQLite galleries only")
        self._stop_measuring()
        self.background = BackgroundMeasurement(self, new_key)  # its own connection opens with the new key
        if not self.store.encrypted:
            self.store.close()
            self.store = SQLiteStore(Path(self.path), key=new_key)
            self.index.close()
            self.index = self._open_index()
            self.erase_removed()  # the vectors in the clear: in the WAL, in a saved index
            return
        self.store.rekey(new_key)

    def remove_templates(self, key: str | int) -> list[TemplateRecord]:
        """Remove every template of a person, who stays enrolled (with none) for new photos; erased as
        ``remove_template`` erases."""
        removed = [self.store.remove_template(t.id) for t in self.templates(key)]
        self.erase_removed()
        return removed

    # --- 1:1 against an enrolled person -----------------------------------------------------

    def verify(
        self, probe: ImageSource | Face | Template, key: str | int, *, fmr: float | None = None, largest: bool = False
    ) -> Verification:
        """Is ``probe`` (an image of one face, a face or a template) the enrolled person ``key``? Compared with
        the person's centroid (as ``identify`` scores people), decided at ``operating_point(fmr)`` (1:1)."""
        template = template_of(probe, largest=largest, options=self.options)
        check_same_model(template.model_id, self.model_id)
        person = self.store.person(key)
        centroid = self._centroids({person.id}).get(person.id)
        if centroid is None:
            raise PersonNotFoundError(f"{self.path}: {person.name!r} has no template of model {self.model_id!r}")
        point = self.operating_point(fmr)
        return compare(template, Template(centroid, self.model_id), fmr=point.fmr, calibration=point.calibration)


class _CentroidCache:
    """Each person's normalised mean template, kept until the gallery changes (any enrollment or removal, by any
    process), within ``CENTROID_CACHE_BYTES``: the least recently used are dropped first. One thread at a time."""

    def __init__(self) -> None:
        self._entries: OrderedDict[int, np.ndarray] = OrderedDict()  # least recently used first
        self._generation = -1
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def of(self, people: set[int], store: GalleryStore, model_id: str, dimension: int) -> dict[int, np.ndarray]:
        with self._lock:
            cache = self._entries
            generation = store.generation()
            if generation != self._generation:
                cache.clear()
                self._generation = generation
            for person in people & cache.keys():
                cache.move_to_end(person)
            computed = _centroids_of(people - cache.keys(), store, model_id)
            answer = {p: cache[p] for p in people if p in cache} | computed
            cache.update(computed)
            limit = max(CENTROID_CACHE_BYTES // (4 * dimension), 1)
            while len(cache) > limit:
                cache.popitem(last=False)
            return answer


def _centroids_of(people: set[int], store: GalleryStore, model_id: str) -> dict[int, np.ndarray]:
    """Normalised mean of each person's templates of ``model_id``, read from ``store``."""
    owner = store.template_owners(sorted(people), model_id) if people else {}
    found = store.vectors(np.fromiter(owner, np.int64, len(owner)), model_id) if owner else ((), ())
    sums: dict[int, np.ndarray] = {}
    for template_id, vector in zip(*found):
        person = owner[int(template_id)]
        sums[person] = sums[person] + vector if person in sums else vector.astype(np.float32)
    return {p: v / max(float(np.linalg.norm(v)), 1e-12) for p, v in sums.items()}


Choice = TypeVar("Choice", bound=str)


def _options_of_templates(store: GalleryStore) -> PipelineOptions:
    """The pipeline of the one model a gallery's templates hold; the defaults for a new gallery (or one
    holding several models or a model this faceprint does not know, whose enrollments are refused)."""
    held = store.model_ids()
    return (
        options_for_model(EMBEDDING_MODELS[held[0]])
        if len(held) == 1 and held[0] in EMBEDDING_MODELS
        else DEFAULT_OPTIONS
    )


def _from_env(variable: str, choices: Sequence[Choice]) -> Choice | None:
    """``$variable`` if set (checked against ``choices``), else None."""
    value = os.environ.get(variable)
    if not value:
        return None
    for choice in choices:
        if value == choice:
            return choice
    raise GalleryError(f"${variable} is {value!r}; it must be one of {', '.join(choices)}")


def _candidates(ranking: Ranking, names: Mapping[int, str], point: IdentificationPoint) -> tuple[Candidate, ...]:
    """A search's people (those of ``names``: a person removed since the search is skipped), scored and graded by
    ``point``."""
    offset = point.offset(ranking.cohort)
    return tuple(
        Candidate(p, names[p], s, point.estimated_fmr(s), point.decide(s + offset), offset)
        for p, s in ranking.people
        if p in names
    )


def _identification(
    face: Face, candidates: tuple[Candidate, ...], match: Candidate | None, point: IdentificationPoint
) -> Identification:
    """The decision for one face, with the reason it is not (or only doubtfully) named."""
    decision, reason = _decision(face.quality.problems, candidates, match, point)
    return Identification(candidates, match, point.threshold, decision, point.fpir, reason, point.basis, face=face)


def _decision(
    problems: Sequence[str], candidates: Sequence[Candidate], match: Candidate | None, point: IdentificationPoint
) -> tuple[Decision, str | None]:
    """The decision for one probe whose quality report lists ``problems``, and why it is not (or only
    doubtfully) named."""
    best = candidates[0] if candidates else None
    passes = best is not None and point.threshold is not None and best.score >= point.threshold
    if point.threshold is None:
        return "uncertain", point.unsupported
    if problems:
        return ("uncertain" if passes else "no_match"), "low quality: " + "; ".join(problems)
    if match is not None:
        decision = match.decision or "match"
        return decision, None if decision == "match" else "named within the uncertain band"
    if passes:
        return "uncertain", "its best candidate was given to another face of the photo"
    if best is not None and best.decision == "uncertain":
        return "uncertain", "below threshold, within the uncertain band"
    return "no_match", "below threshold" if best is not None else "no one enrolled"


def _reembedded(record: TemplateRecord, result: ImageResult | None) -> NewTemplate | str:
    """The template computed anew for a stored one, or why it cannot be."""
    if result is None:
        return "no source image stored" if not (record.source and record.image_sha256) else "source image gone"
    if result.error is not None:
        return f"source image unreadable: {result.error}"
    if result.sha256 != record.image_sha256:
        return "source image changed since enrollment"
    face = _face_in_box(result.faces, record.box)
    if face is None:
        return "face no longer found in the source image"
    return _stored_template(face, record.source, record.image_sha256)


def _stored_template(face: Face, source: str | None, sha256: str | None) -> NewTemplate:
    """What the gallery stores of an embedded face: its template with the face's box and quality report."""
    template = template_of(face)
    return NewTemplate(
        vector=template.vector,
        model_id=template.model_id,
        image_sha256=sha256,
        source=source,
        box=face.box.as_tuple(),
        quality=face.quality.score,
        quality_report=face.quality.to_dict(),
    )


def _face_in_box(faces: Sequence[Face], box: Sequence[float] | None) -> Face | None:
    """The face whose centre lies in ``box`` (left, top, right, bottom), nearest its centre; the main face
    when no box was stored. Detectors draw different boxes around one face, so overlap would be too strict."""
    if box is None:
        return faces[0] if faces else None
    left, top, right, bottom = box
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    inside = [face for face in faces if _inside(_centre(face), left, top, right, bottom)]
    return min(inside, key=lambda face: float(np.linalg.norm(_centre(face) - centre)), default=None)


def _centre(face: Face) -> np.ndarray:
    return np.array([(face.box.left + face.box.right) / 2, (face.box.top + face.box.bottom) / 2])


def _inside(point: np.ndarray, left: float, top: float, right: float, bottom: float) -> bool:
    return bool(left <= point[0] <= right and top <= point[1] <= bottom)


def _assign(candidates: Sequence[Sequence[Candidate]], threshold: float) -> list[Candidate | None]:
    """Best-first assignment: the strongest (face, person) pairs above threshold win, and
    each face and each person is used at most once."""
    pairs = sorted(
        ((c.score, face, c) for face, ranked in enumerate(candidates) for c in ranked if c.score >= threshold),
        key=lambda item: -item[0],
    )
    matches: list[Candidate | None] = [None] * len(candidates)
    taken: set[int] = set()
    for _, face, candidate in pairs:
        if matches[face] is None and candidate.person_id not in taken:
            matches[face] = candidate
            taken.add(candidate.person_id)
    return matches
