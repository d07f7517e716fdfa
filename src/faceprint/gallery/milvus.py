"""A gallery store in Milvus: people, templates and metadata in three collections, searched by Milvus.

``milvus://host:19530/name`` talks to a Milvus server or cluster (token from ``$FACEPRINT_MILVUS_TOKEN``,
``milvuss://`` for TLS); ``milvus-lite:///path/file.db`` or a path ending in ``.milvus.db`` opens a local
Milvus Lite file (the same engine in-process, for one machine and for tests). The collections are
``<name>_people``, ``<name>_templates`` (the vectors, with an AUTOINDEX inner-product index that Milvus
builds and keeps up to date itself) and ``<name>_meta``.

Milvus has no multi-row transactions: each change is a few single-collection writes, ordered so that
a crash leaves at worst an unreferenced row (a template whose person is gone is never returned as a
match; a person with no template is visible and can be removed). Ids come from counters in the meta
collection, so one process should write to a gallery at a time; any number may read.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..choices import Mode, Storage
from ..errors import GalleryError, PersonNotFoundError
from ..progress import OnProgress
from .names import name_key
from .records import NewTemplate, Person, TemplateRecord

try:
    from pymilvus import DataType, MilvusClient, MilvusException  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the install
    MilvusClient = None  # type: ignore[assignment,misc]

# Milvus Lite cannot give an iterator its snapshot timestamp and says so on every read; the client-side
# timestamp it falls back to is right for us (collections are strongly consistent).
logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)

DEFAULT_COLLECTION = "faceprint"
#: Most rows one Milvus query returns; larger reads page through an iterator.
_QUERY_LIMIT = 16_384
#: Milvus needs a vector field in every collection; people and meta carry this 2-d placeholder.
_PLACEHOLDER = [0.0, 0.0]
_PERSON_FIELDS = ["id", "name", "external_id", "metadata", "template_count", "created_at", "updated_at"]
_TEMPLATE_FIELDS = ["id", "person_id", "model_id", "image_sha256", "info"]


def _literal(value: Any) -> str:
    """``value`` as a Milvus expression literal (Milvus Lite does not bind ``filter_params``)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(int(value))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class MilvusStore:
    """The ``GalleryStore`` interface over Milvus (see the module docstring for the layout and limits)."""

    def __init__(self, uri: str, collection: str = DEFAULT_COLLECTION, *, token: str | None = None) -> None:
        if MilvusClient is None:
            raise GalleryError(f"{uri}: the Milvus backend needs pymilvus: pip install 'faceprint[milvus]'")
        self.path = uri
        self.collection = collection
        try:
            self._client = MilvusClient(uri=uri, token=token or "")
            self._ensure_collections()
        except MilvusException as exc:
            raise GalleryError(f"{uri}: cannot open the Milvus gallery {collection!r} ({exc})") from None

    @classmethod
    def from_uri(cls, location: str) -> MilvusStore:
        """``milvus://host:port/collection``, ``milvuss://...`` (TLS), ``milvus-lite:///file.db``, ``x.milvus.db``."""
        token = os.environ.get("FACEPRINT_MILVUS_TOKEN")
        if location.startswith("milvus-lite://"):
            return cls(location.removeprefix("milvus-lite://"), token=token)
        if not location.startswith(("milvus://", "milvuss://")):
            return cls(location, token=token)
        parts = urlsplit(location)
        if not parts.hostname:
            raise GalleryError(f"{location}: a Milvus URI needs a host, as in milvus://localhost:19530/faceprint")
        scheme = "https" if parts.scheme == "milvuss" else "http"
        collection = parts.path.strip("/") or DEFAULT_COLLECTION
        if not collection.replace("_", "").isalnum():
            raise GalleryError(f"{location}: a collection name holds only letters, digits and _")
        return cls(f"{scheme}://{parts.hostname}:{parts.port or 19530}", collection, token=token)

    # --- collections ----------------------------------------------------------------------

    @property
    def _people(self) -> str:
        return f"{self.collection}_people"

    @property
    def _templates(self) -> str:
        return f"{self.collection}_templates"

    @property
    def _meta(self) -> str:
        return f"{self.collection}_meta"

    def _ensure_collections(self) -> None:
        self._create_missing()
        for name in (self._meta, self._people, self._templates):
            if self._client.has_collection(name):
                self._client.load_collection(name)  # a reopened collection starts released

    def _create_missing(self) -> None:
        if not self._client.has_collection(self._meta):
            schema = MilvusClient.create_schema(auto_id=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
            schema.add_field("value", DataType.VARCHAR, max_length=65_535)
            self._create(self._meta, schema)
        if not self._client.has_collection(self._people):
            schema = MilvusClient.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("name", DataType.VARCHAR, max_length=1024)
            schema.add_field("external_id", DataType.VARCHAR, max_length=1024)
            schema.add_field("metadata", DataType.JSON)
            schema.add_field("template_count", DataType.INT64)
            schema.add_field("created_at", DataType.VARCHAR, max_length=32)
            schema.add_field("updated_at", DataType.VARCHAR, max_length=32)
            self._create(self._people, schema)

    def _create(self, name: str, schema: Any, dimension: int = len(_PLACEHOLDER)) -> None:
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        index = self._client.prepare_index_params()
        index.add_index("vector", index_type="AUTOINDEX", metric_type="IP")
        self._client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")

    def _ensure_templates(self, dimension: int) -> None:
        if self._client.has_collection(self._templates):
            return
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("person_id", DataType.INT64)
        schema.add_field("model_id", DataType.VARCHAR, max_length=256)
        schema.add_field("image_sha256", DataType.VARCHAR, max_length=64)
        schema.add_field("info", DataType.JSON)
        self._create(self._templates, schema, dimension)

    def _has_templates(self) -> bool:
        return bool(self._client.has_collection(self._templates))

    def close(self) -> None:
        self._client.close()

    def _rows(self, collection: str, filter: str, fields: list[str], **params: Any) -> list[dict[str, Any]]:
        """Every row of ``collection`` matching ``filter`` (values bound from ``params``)."""
        if collection == self._templates and not self._has_templates():
            return []
        iterator = self._client.query_iterator(
            collection,
            batch_size=_QUERY_LIMIT,
            filter=filter.format(**{name: _literal(value) for name, value in params.items()}),
            output_fields=fields,
        )
        rows: list[dict[str, Any]] = []
        try:
            while batch := iterator.next():
                rows.extend(batch)
        finally:
            iterator.close()
        return rows

    # --- metadata -------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        rows = self._client.get(self._meta, ids=[key], output_fields=["value"])
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._client.upsert(self._meta, [{"key": key, "value": value, "vector": _PLACEHOLDER}])
        if key != "generation":
            self._bump_generation()

    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    def _bump_generation(self) -> None:
        self.set_meta("generation", str(self.generation() + 1))

    def _next_ids(self, counter: str, count: int) -> list[int]:
        first = int(self.meta(counter) or 1)
        self.set_meta(counter, str(first + count))
        return list(range(first, first + count))

    # --- people ---------------------------------------------------------------------------

    def people(self) -> list[Person]:
        return sorted((_person(r) for r in self._rows(self._people, "id >= 0", _PERSON_FIELDS)), key=lambda p: p.name)

    def person(self, key: str | int) -> Person:
        """A person by name, or by numeric id, or by external id."""
        text = str(key)
        found = None if isinstance(key, int) else self._find_person(text)  # ids come as ints from faceprint itself
        if found is not None:
            return found
        lookups: list[tuple[str, str | int]] = []
        if text.lstrip("-").isdigit():
            lookups.append(("id == {key}", int(text)))
        lookups.append(("external_id == {key}", text))
        for expression, value in lookups:
            rows = self._rows(self._people, expression, _PERSON_FIELDS, key=value)
            if rows:
                return _person(rows[0])
        raise PersonNotFoundError(f"{self.path}: no person {key!r} in the gallery {self.collection!r}")

    def names_of(self, person_ids: Sequence[int]) -> dict[int, str]:
        if not len(person_ids):
            return {}
        rows = self._client.get(self._people, ids=[int(i) for i in person_ids], output_fields=["id", "name"])
        return {int(r["id"]): r["name"] for r in rows}

    def _find_person(self, name: str) -> Person | None:
        """The person called ``name``, else one whose name differs only in case (see faceprint.gallery.names).

        Milvus filters compare exactly, so the second lookup reads every name: people are far fewer than
        templates, and it runs only for a new name or a rename."""
        rows = self._rows(self._people, "name == {key}", _PERSON_FIELDS, key=name)
        if not rows:
            key = name_key(name)
            rows = [r for r in self._rows(self._people, "id >= 0", _PERSON_FIELDS) if name_key(r["name"]) == key]
        return _person(rows[0]) if rows else None

    def _write_person(self, person: Person) -> None:
        row = {k: v for k, v in person.to_dict().items()}
        row["external_id"] = row["external_id"] or ""
        self._client.upsert(self._people, [{**row, "vector": _PLACEHOLDER}])

    def enroll(
        self, name: str, external_id: str | None, metadata: dict[str, Any] | None, templates: Sequence[NewTemplate]
    ) -> tuple[int, list[int]]:
        """Create or update ``name`` and add ``templates`` (an image already enrolled for them is skipped)."""
        person = self._find_person(name)
        if external_id is not None:
            owner = self._rows(self._people, "external_id == {x}", ["id"], x=external_id)
            if owner and (person is None or owner[0]["id"] != person.id):
                raise GalleryError(f"external id {external_id!r} already belongs to another person")
            if person is not None and person.external_id not in (None, external_id):
                raise GalleryError(f"{name!r} already has external id {person.external_id!r}, not {external_id!r}")
        now = _now()
        if person is None:
            person = Person(self._next_ids("next_person_id", 1)[0], name, external_id, {}, 0, now, now)
        new = self._new_templates(person.id, templates)
        ids = self._next_ids("next_template_id", len(new)) if new else []
        if new:
            self._ensure_templates(len(new[0].vector))
            self._client.insert(self._templates, [_template_row(i, person.id, t, now) for i, t in zip(ids, new)])
        self._write_person(
            Person(
                person.id,
                person.name,  # an existing person keeps their spelling; ``kit`` adds to ``Kit``
                person.external_id or external_id,
                {**person.metadata, **(metadata or {})},
                person.template_count + len(ids),
                person.created_at,
                now,
            )
        )
        self._bump_generation()
        return person.id, ids

    def _new_templates(self, person_id: int, templates: Sequence[NewTemplate]) -> list[NewTemplate]:
        """``templates`` less the images already enrolled for the person (or twice in ``templates``)."""
        hashes = [t.image_sha256 for t in templates if t.image_sha256]
        seen = (
            {
                (r["model_id"], r["image_sha256"])
                for r in self._rows(
                    self._templates,
                    "person_id == {p} and image_sha256 in {h}",
                    ["model_id", "image_sha256"],
                    p=person_id,
                    h=hashes,
                )
            }
            if hashes
            else set()
        )
        new = []
        for t in templates:
            key = (t.model_id, t.image_sha256)
            if t.image_sha256 is None or key not in seen:
                new.append(t)
                seen.add(key)
        return new

    def rename(self, key: str | int, new_name: str) -> Person:
        person = self.person(key)
        other = self._find_person(new_name)
        if other is not None and other.id != person.id:
            raise GalleryError(f"cannot rename {person.name!r}: {other.name!r} already exists (merge instead)")
        renamed = Person(**{**person.to_dict(), "name": new_name, "updated_at": _now()})
        self._write_person(renamed)
        self._bump_generation()
        return renamed

    def merge(self, source: str | int, target: str | int) -> Person:
        """Move every template of ``source`` to ``target`` and remove ``source``: the moved templates are
        written under the target first, then the source is deleted, so a crash never loses one."""
        src, dst = self.person(source), self.person(target)
        if src.id == dst.id:
            raise GalleryError(f"cannot merge {src.name!r} into itself")
        fields = [*_TEMPLATE_FIELDS, "vector"]
        moving = self._rows(self._templates, "person_id == {p}", fields, p=src.id)
        kept = {
            (r["model_id"], r["image_sha256"])
            for r in self._rows(self._templates, "person_id == {p}", fields[:4], p=dst.id)
        }
        moved = [r for r in moving if not r["image_sha256"] or (r["model_id"], r["image_sha256"]) not in kept]
        if moved:
            self._client.upsert(self._templates, [{**r, "person_id": dst.id} for r in moved])
        duplicates = [r["id"] for r in moving if r not in moved]
        if duplicates:
            self._client.delete(self._templates, ids=duplicates)
        merged = Person(
            dst.id,
            dst.name,
            dst.external_id or src.external_id,
            {**src.metadata, **dst.metadata},
            dst.template_count + len(moved),
            dst.created_at,
            _now(),
        )
        self._write_person(merged)
        self._client.delete(self._people, ids=[src.id])
        self._bump_generation()
        return merged

    def remove_person(self, key: str | int) -> Person:
        person = self.person(key)
        self._client.delete(self._people, ids=[person.id])  # first: its templates can no longer match
        if self._has_templates():
            self._client.delete(self._templates, filter=f"person_id == {int(person.id)}")
        self._bump_generation()
        return person

    def remove_template(self, template_id: int) -> TemplateRecord:
        record = self.template(template_id)
        self._client.delete(self._templates, ids=[int(template_id)])
        person = self.person(record.person_id)
        self._write_person(Person(**{**person.to_dict(), "template_count": person.template_count - 1}))
        self._bump_generation()
        return record

    # --- templates ------------------------------------------------------------------------

    def template(self, template_id: int) -> TemplateRecord:
        rows = self._rows(self._templates, "id == {i}", _TEMPLATE_FIELDS, i=int(template_id))
        if not rows:
            raise PersonNotFoundError(f"{self.path}: no template {template_id} in the gallery {self.collection!r}")
        return _template(rows[0])

    def templates_of(self, person_id: int) -> list[TemplateRecord]:
        rows = self._rows(self._templates, "person_id == {p}", _TEMPLATE_FIELDS, p=int(person_id))
        return sorted((_template(r) for r in rows), key=lambda t: t.id)

    def template_owners(self, person_ids: Sequence[int], model_id: str) -> dict[int, int]:
        if not len(person_ids) or not self._has_templates():
            return {}
        rows = self._rows(
            self._templates,
            "person_id in {people} and model_id == {m}",
            ["id", "person_id"],
            people=[int(p) for p in person_ids],
            m=model_id,
        )
        return {int(r["id"]): int(r["person_id"]) for r in rows}

    def model_ids(self) -> list[str]:
        return sorted({r["model_id"] for r in self._rows(self._templates, "id >= 0", ["model_id"])})

    def template_count(self, model_id: str) -> int:
        if not self._has_templates():
            return 0
        rows = self._client.query(
            self._templates, filter=f"model_id == {_literal(model_id)}", output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"])

    def vectors(self, template_ids: Sequence[int] | np.ndarray, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows(
            self._templates,
            "id in {ids} and model_id == {m}",
            ["id", "vector"],
            ids=[int(i) for i in template_ids],
            m=model_id,
        )
        rows.sort(key=lambda r: r["id"])
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.array([r["id"] for r in rows], np.int64), np.array([r["vector"] for r in rows], np.float32)

    def persons_of(self, template_ids: Sequence[int] | np.ndarray) -> dict[int, int]:
        if not len(template_ids) or not self._has_templates():
            return {}
        rows = self._client.get(self._templates, ids=[int(i) for i in template_ids], output_fields=["id", "person_id"])
        return {int(r["id"]): int(r["person_id"]) for r in rows}

    def open_index(
        self,
        model_id: str,
        *,
        mode: Mode = "auto",
        storage: Storage | None = None,
        on_progress: OnProgress | None = None,
    ) -> MilvusIndex:
        """Milvus's own index of the templates (``mode``, ``storage`` and ``on_progress`` do not apply: Milvus
        chooses, builds and updates its index itself)."""
        return MilvusIndex(self, model_id)


class MilvusIndex:
    """The ``GalleryIndex`` of a Milvus gallery: Milvus's AUTOINDEX (inner product) over one model's templates."""

    #: Why there is nothing for faceprint to inspect, rebuild or verify.
    MANAGED = "Milvus builds and updates this gallery's index itself (AUTOINDEX, inner product); faceprint keeps none"

    def __init__(self, store: MilvusStore, model_id: str) -> None:
        self.store = store
        self.model_id = model_id

    def __len__(self) -> int:
        return self.store.template_count(self.model_id)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, template_ids)`` from Milvus's own index, best first, padded with ``-1`` ids."""
        store = self.store
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        if not store._has_templates() or k == 0:
            return scores[:, :0], ids[:, :0]
        hits = store._client.search(
            store._templates,
            data=queries.tolist(),
            limit=k,
            anns_field="vector",
            filter=f"model_id == {_literal(self.model_id)}",
            search_params={"metric_type": "IP"},
        )
        for row, found in enumerate(hits):
            for column, hit in enumerate(found):
                scores[row, column], ids[row, column] = hit["distance"], hit["id"]
        width = max((len(found) for found in hits), default=0)
        return scores[:, :width], ids[:, :width]

    def exhaustive_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """None: Milvus chooses how its index searches (a "no" of this gallery is not confirmed exhaustively)."""
        return None

    def close(self) -> None:
        """Nothing to release: the index lives in Milvus, reached through the store's client."""

    def stats(self) -> dict[str, object]:
        raise GalleryError(f"{self.store.path}: {self.MANAGED}")

    def rebuild(self) -> dict[str, object]:
        raise GalleryError(f"{self.store.path}: {self.MANAGED}")

    def verify(self) -> list[str]:
        raise GalleryError(f"{self.store.path}: {self.MANAGED}")

    def erase_removed(self) -> None:
        """Ask Milvus to compact the collection: a deletion only marks rows deleted, and their vectors stay in
        Milvus's segment files until a compaction rewrites those segments (a server runs it in the background;
        this asks for it now, and Milvus Lite, which does not compact, keeps them; see the README's "Privacy")."""
        store = self.store
        if store._has_templates():
            try:
                store._client.compact(store._templates)
            except Exception as exc:  # Milvus Lite: "compact" is not supported
                if "not support" not in str(exc).lower() and "unimplemented" not in str(exc).lower():
                    raise GalleryError(f"{store.path}: compaction failed ({exc})") from None


def _template_row(template_id: int, person_id: int, t: NewTemplate, now: str) -> dict[str, Any]:
    info = {
        "source": t.source,
        "box": list(t.box) if t.box is not None else None,
        "quality": t.quality,
        "quality_report": t.quality_report,
        "created_at": now,
    }
    return {
        "id": template_id,
        "person_id": person_id,
        "model_id": t.model_id,
        "image_sha256": t.image_sha256 or "",
        "info": info,
        "vector": np.asarray(t.vector, np.float32).tolist(),
    }


def _person(row: dict[str, Any]) -> Person:
    return Person(
        int(row["id"]),
        row["name"],
        row["external_id"] or None,
        dict(row["metadata"] or {}),
        int(row["template_count"]),
        row["created_at"],
        row["updated_at"],
    )


def _template(row: dict[str, Any]) -> TemplateRecord:
    info = row["info"] if isinstance(row["info"], dict) else json.loads(row["info"])
    return TemplateRecord(
        int(row["id"]),
        int(row["person_id"]),
        row["model_id"],
        row["image_sha256"] or None,
        info.get("source"),
        info.get("box"),
        info.get("quality"),
        info.get("quality_report"),
        info.get("created_at", ""),
    )
