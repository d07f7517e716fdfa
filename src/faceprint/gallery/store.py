"""What a gallery store is, and which one a path or URI names.

Two stores implement it: ``SQLiteStore`` (one file, the default) and ``MilvusStore``
(a Milvus server or cluster, or a local Milvus Lite file; needs ``pip install 'faceprint[milvus]'``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..choices import Mode, Storage
from ..errors import GalleryError
from ..index import GalleryIndex
from ..progress import OnProgress
from .records import NewTemplate, Person, TemplateRecord
from .sqlite import SQLiteStore

#: A local Milvus Lite file: ``milvus-lite:///path/file.db`` or any path ending like this.
MILVUS_LITE_SUFFIX = ".milvus.db"


@runtime_checkable
class GalleryStore(Protocol):
    """People, their templates and gallery metadata; every changing method is all-or-nothing where the
    backend allows it (see each store)."""

    #: Where the store is, for messages (a ``Path`` for files, the URI otherwise).
    path: Any

    def close(self) -> None: ...
    def generation(self) -> int:
        """A number that moves whenever the content changes (for caches)."""
        ...

    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def people(self) -> list[Person]: ...
    def person(self, key: str | int) -> Person: ...
    def names_of(self, person_ids: Sequence[int]) -> dict[int, str]: ...
    def persons_of(self, template_ids: Sequence[int] | np.ndarray) -> dict[int, int]: ...
    def enroll(
        self, name: str, external_id: str | None, metadata: dict[str, Any] | None, templates: Sequence[NewTemplate]
    ) -> tuple[int, list[int]]: ...
    def rename(self, key: str | int, new_name: str) -> Person: ...
    def merge(self, source: str | int, target: str | int) -> Person: ...
    def remove_person(self, key: str | int) -> Person: ...
    def remove_template(self, template_id: int) -> TemplateRecord: ...
    def template(self, template_id: int) -> TemplateRecord: ...
    def templates_of(self, person_id: int) -> list[TemplateRecord]: ...
    def template_owners(self, person_ids: Sequence[int], model_id: str) -> dict[int, int]:
        """Person id of each template of ``model_id`` that ``person_ids`` hold, by template id (one query)."""
        ...

    def model_ids(self) -> list[str]: ...
    def template_count(self, model_id: str) -> int: ...
    def vectors(self, template_ids: Sequence[int] | np.ndarray, model_id: str) -> tuple[np.ndarray, np.ndarray]: ...
    def open_index(
        self, model_id: str, *, mode: Mode, storage: Storage | None, on_progress: OnProgress | None
    ) -> GalleryIndex:
        """The index that searches ``model_id``'s templates (``mode`` and ``storage`` where the store
        lets faceprint choose, ``storage`` None: the store's default; ``on_progress`` told how a build advances);
        closed before the store."""
        ...


def open_store(location: str | os.PathLike, *, create: bool = True, key: bytes | None = None) -> GalleryStore:
    """The store named by ``location``: an SQLite file path, ``milvus://host:port/collection``,
    ``milvus-lite:///path/file.db`` or a path ending in ``.milvus.db``. Without ``create``, an SQLite
    file that does not exist is a ``GalleryError`` (a mistyped path is not a new, empty gallery).
    ``key``: the master key of an encrypted SQLite gallery (``faceprint.protect``; a gallery opened with a
    key for the first time is encrypted then)."""
    text = os.fspath(location)
    if text.startswith(("milvus://", "milvus-lite://")) or text.endswith(MILVUS_LITE_SUFFIX):
        if key is not None:
            # Milvus must read the vectors to index them: its own encryption at rest applies there.
            raise GalleryError(f"{text}: faceprint encrypts SQLite galleries only, not Milvus collections")
        from .milvus import MilvusStore  # pymilvus is an optional dependency

        return MilvusStore.from_uri(text)
    return SQLiteStore(Path(text), create=create, key=key)
