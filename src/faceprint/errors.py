"""One exception hierarchy for everything faceprint raises on purpose.

Every message names the input it is about (a file path, a person, a gallery file),
so a batch job's log says which of a thousand inputs went wrong. Exit codes and HTTP
statuses belong to the front ends, which map these classes in one table each.
"""

from __future__ import annotations


class FaceprintError(Exception):
    """Base class of every error faceprint raises on purpose."""


class InvalidImageError(FaceprintError):
    """The input is not a readable image: missing, empty, truncated, not an image, too large."""


class NoFaceError(FaceprintError):
    """No face was found where one was expected."""


class ManyFacesError(FaceprintError):
    """Several faces were found where exactly one was expected."""


class LowQualityError(FaceprintError):
    """A face is below the quality needed for the task (enrollment); the message says why."""


class ModelError(FaceprintError):
    """A model file is missing or templates from different models were mixed."""


class DatasetError(FaceprintError):
    """An evaluation input (pairs file, labels file, dataset folder) is malformed or unusable."""


class GalleryError(FaceprintError):
    """The gallery file is corrupt, locked, from a newer version, or the request is inconsistent."""


class KeyRequiredError(GalleryError):
    """An encrypted gallery (or file) was opened without its key, with a wrong key, or its sealed bytes were
    altered; nothing was changed."""


class PersonNotFoundError(GalleryError):
    """The named person (or template) is not in the gallery."""


class InvalidNameError(FaceprintError, ValueError):
    """A person's name that cannot be stored: empty, with control characters, or the reserved ``unknown``."""


class UnsupportedFMRError(FaceprintError, ValueError):
    """A false-match rate outside the range a calibration measured (the message gives the range)."""


class OutputError(FaceprintError):
    """A result (annotated image, export, report, timeline) could not be written where asked."""


class CollectionNotFoundError(GalleryError):
    """The tenant has no collection of that name (``faceprint.tenancy``)."""


class AccessError(FaceprintError):
    """An API key that is unknown, malformed, wrong, expired or revoked (``faceprint.apikeys``)."""
