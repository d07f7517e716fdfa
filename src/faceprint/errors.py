"""One exception hierarchy for everything faceprint raises on purpose.

Every message names the input it is about (a file path, a person, a gallery file),
so a batch job's log says which of a thousand inputs went wrong.
"""

from __future__ import annotations


class FaceprintError(Exception):
    """Base class of every error faceprint raises on purpose."""

    #: Process exit code used by the CLI for this kind of error.
    exit_code = 1


class InvalidImageError(FaceprintError):
    """The input is not a readable image: missing, empty, truncated, not an image, too large."""

    exit_code = 3


class NoFaceError(FaceprintError):
    """No face was found where one was expected."""

    exit_code = 4


class ManyFacesError(FaceprintError):
    """Several faces were found where exactly one was expected."""

    exit_code = 4


class LowQualityError(FaceprintError):
    """A face is below the quality needed for the task (enrollment); the message says why."""

    exit_code = 4


class ModelError(FaceprintError):
    """A model file is missing or templates from different models were mixed."""

    exit_code = 6


class DatasetError(FaceprintError):
    """An evaluation input (pairs file, labels file, dataset folder) is malformed or unusable."""

    exit_code = 3


class GalleryError(FaceprintError):
    """The gallery file is corrupt, locked, from a newer version, or the request is inconsistent."""

    exit_code = 5


class PersonNotFoundError(GalleryError):
    """The named person (or template) is not in the gallery."""
