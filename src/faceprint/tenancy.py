"""Tenants and their collections on disk: how the galleries of different tenants are kept apart.

A data directory holds every tenant's collections, one gallery each::

    <data>/tenants/<tenant>/collections/<collection>/gallery.db   the collection's SQLite gallery
                                                   (with its -wal/-shm files and saved search index beside it)
    <data>/tenants/<tenant>/jobs/<job id>/          a video job (``faceprint.video.jobs``)

Every path is built from a tenant and a collection name that ``check_name`` accepted (lowercase letters,
digits, ``-`` and ``_``; 1-64 characters, starting with a letter or a digit), so no name reaches outside its
tenant's folder: ``..``, ``/``, ``\\``, NUL and the empty name are refused. A tenant finds only what is under
its own folder: another tenant's collection of the same name is another file, and an id (a person's, a
template's) is looked up only inside the collection it is asked in. Deleting a collection renames its folder
away first (one atomic step), then removes it.

A person's face thumbnail, where the collection opted in (``CollectionSettings.thumbnails``), is kept in the
gallery (``keep_thumbnail``): sealed like the vectors when the gallery is encrypted, and erased with the person.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .errors import CollectionNotFoundError, GalleryError, InvalidNameError
from .gallery import Gallery
from .gallery.sqlite import SQLiteStore

#: Tenant and collection names: safe as one path component on every file system, and in a URL.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: Gallery meta key of a collection's settings (JSON).
SETTINGS_KEY = "collection"
GALLERY_FILE = "gallery.db"
#: Where collections made before thumbnails moved into the gallery kept them: ``<person id>.jpg`` files.
_THUMBNAIL_FILES = "thumbnails"


def default_data_dir() -> Path:
    """``$FACEPRINT_DATA_DIR`` if set, else ``service`` in the per-user data directory."""
    env = os.environ.get("FACEPRINT_DATA_DIR")
    return Path(env) if env else platformdirs.user_data_path("faceprint") / "service"


def check_name(name: str, what: str) -> str:
    """``name`` if it can name a tenant or a collection, else an ``InvalidNameError`` saying what is allowed."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidNameError(
            f"{what} {name!r} cannot be used: 1-64 lowercase letters, digits, '-' or '_', "
            "starting with a letter or a digit"
        )
    return name


@dataclass(frozen=True)
class CollectionSettings:
    """What a collection's owner chose when creating it."""

    #: Keep a small face picture per template, for the web page (off by default: privacy).
    thumbnails: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"thumbnails": self.thumbnails, "description": self.description}


class Tenancy:
    """The collections of every tenant under one data directory (see the module's docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def tenant_dir(self, tenant: str) -> Path:
        return self.root / "tenants" / check_name(tenant, "tenant") / "collections"

    def jobs_dir(self, tenant: str) -> Path:
        """The tenant's video jobs (``faceprint.video.jobs``), beside its collections."""
        return self.root / "tenants" / check_name(tenant, "tenant") / "jobs"

    def collection_dir(self, tenant: str, collection: str) -> Path:
        return self.tenant_dir(tenant) / check_name(collection, "collection")

    def collections(self, tenant: str) -> list[str]:
        """The tenant's collection names, sorted."""
        folder = self.tenant_dir(tenant)
        if not folder.is_dir():
            return []
        return sorted(
            p.name for p in folder.iterdir() if NAME_PATTERN.fullmatch(p.name) and (p / GALLERY_FILE).is_file()
        )

    def exists(self, tenant: str, collection: str) -> bool:
        return (self.collection_dir(tenant, collection) / GALLERY_FILE).is_file()

    def create(self, tenant: str, collection: str, settings: CollectionSettings = CollectionSettings()) -> Gallery:
        """A new, empty collection (``GalleryError`` if the tenant already has one of that name), opened."""
        folder = self.collection_dir(tenant, collection)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
        except FileExistsError:
            raise GalleryError(f"collection {collection!r} already exists") from None
        gallery = Gallery(folder / GALLERY_FILE)
        gallery.store.set_meta(SETTINGS_KEY, json.dumps(settings.to_dict()))
        return gallery

    def open(self, tenant: str, collection: str) -> Gallery:
        """The tenant's collection, opened; ``CollectionNotFoundError`` when the tenant has none of that name."""
        if not self.exists(tenant, collection):
            raise CollectionNotFoundError(f"no collection {collection!r}")
        folder = self.collection_dir(tenant, collection)
        gallery = Gallery(folder / GALLERY_FILE, create=False)
        if (folder / _THUMBNAIL_FILES).is_dir():
            _adopt_thumbnail_files(gallery, folder / _THUMBNAIL_FILES)
        return gallery

    def delete(self, tenant: str, collection: str) -> None:
        """Remove the collection with every file of it (``CollectionNotFoundError`` if there is none)."""
        if not self.exists(tenant, collection):
            raise CollectionNotFoundError(f"no collection {collection!r}")
        folder = self.collection_dir(tenant, collection)
        # Renamed away first: from here on the collection does not exist for anyone, even if removal stops midway.
        doomed = folder.with_name(f".deleted-{collection}-{uuid.uuid4().hex}")
        folder.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def collection_settings(gallery: Gallery) -> CollectionSettings:
    """The settings stored in a collection's gallery (the defaults for a gallery made elsewhere)."""
    text = gallery.store.meta(SETTINGS_KEY)
    data = json.loads(text) if text else {}
    return CollectionSettings(thumbnails=bool(data.get("thumbnails")), description=str(data.get("description", "")))


def keep_thumbnail(gallery: Gallery, person_id: int, jpeg: bytes) -> bool:
    """Keep ``jpeg`` as the person's face thumbnail unless they have one: whether it was kept."""
    return _sqlite(gallery).keep_thumbnail(person_id, jpeg)


def thumbnail(gallery: Gallery, person_id: int) -> bytes | None:
    """The person's face thumbnail (a JPEG), if the collection keeps one."""
    return _sqlite(gallery).thumbnail(person_id)


def _sqlite(gallery: Gallery) -> SQLiteStore:
    if not isinstance(gallery.store, SQLiteStore):
        raise GalleryError(f"{gallery.path}: a collection is an SQLite gallery")
    return gallery.store


def _adopt_thumbnail_files(gallery: Gallery, folder: Path) -> None:
    """Move the thumbnail files of an older collection into its gallery (sealed there if it is encrypted)."""
    for path in folder.glob("*.jpg"):
        if path.stem.isdigit():
            keep_thumbnail(gallery, int(path.stem), path.read_bytes())  # a removed person's is not kept
    shutil.rmtree(folder, ignore_errors=True)
