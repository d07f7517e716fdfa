"""Privacy: hide faces in photos and videos before they are published.

>>> from faceprint.privacy import anonymize_image
>>> hidden = anonymize_image("tests/data/faces-hires/multi/kit_harington_and_rose_leslie.jpg")
>>> len(hidden.faces), len(remaining_faces(hidden.pixels))
(2, 0)
"""

from .anonymize import (
    FAST,
    METHODS,
    THOROUGH,
    AnonymizedImage,
    AnonymizedVideo,
    Selection,
    anonymize_image,
    anonymize_video,
    hide,
    remaining_faces,
)

__all__ = [
    "FAST",
    "METHODS",
    "THOROUGH",
    "AnonymizedImage",
    "AnonymizedVideo",
    "Selection",
    "anonymize_image",
    "anonymize_video",
    "hide",
    "remaining_faces",
]
