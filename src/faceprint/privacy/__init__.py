"""Privacy: hide faces in photos and videos before they are published.

>>> from faceprint.privacy import anonymize_image
>>> hidden = anonymize_image("tests/data/faces-hires/multi/kit_harington_and_rose_leslie.jpg")
>>> len(hidden.faces), len(remaining_faces(hidden.pixels))
(2, 0)
"""

from .anonymize import (
    ANONYMIZERS,
    FAST,
    METHODS,
    THOROUGH,
    YUNET,
    AnonymizedFiles,
    AnonymizedImage,
    AnonymizedVideo,
    Method,
    Selection,
    anonymize_frames,
    anonymize_image,
    anonymize_photos,
    anonymize_video,
    hide,
    is_photos,
    remaining_faces,
)

__all__ = [
    "ANONYMIZERS",
    "FAST",
    "METHODS",
    "THOROUGH",
    "YUNET",
    "AnonymizedFiles",
    "AnonymizedImage",
    "AnonymizedVideo",
    "Method",
    "Selection",
    "anonymize_frames",
    "anonymize_image",
    "anonymize_photos",
    "anonymize_video",
    "hide",
    "is_photos",
    "remaining_faces",
]
