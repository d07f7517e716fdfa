"""faceprint: face recognition on a plain CPU, offline.

    >>> import faceprint
    >>> faceprint.verify("tests/data/faces-hires/Kit_Harington/Kit_Harington_0001.jpg",
    ...                  "tests/data/faces-hires/Kit_Harington/Kit_Harington_0002.jpg").match
    True

Data flows one way: image -> faces (``detect``) -> templates (``embed``) -> matches
(``verify``, ``Gallery.identify``). Nothing slow happens at import: models load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .choices import ATTRIBUTES
from .errors import (
    FaceprintError,
    GalleryError,
    InvalidImageError,
    KeyRequiredError,
    LowQualityError,
    ManyFacesError,
    ModelError,
    NoFaceError,
    PersonNotFoundError,
    UnsupportedFMRError,
)

__version__ = "0.1.0"

#: Public names, by module, imported on first use: ``import faceprint`` loads neither numpy nor OpenCV, dlib,
#: onnxruntime or faiss, so that it and the CLI start at once (tests/test_structure.py, BENCHMARKS.md).
_PUBLIC = {
    "api": ("analyze", "detect", "embed", "verify"),
    "gallery": ("Enrollment", "Gallery", "Person", "default_gallery_path"),
    "image": ("load_image",),
    "match": ("DEFAULT_FMR", "disclose", "load_calibration", "operating_point"),
    "pipeline": ("PipelineOptions", "process_files"),
    "quality": ("QualityThresholds",),
    "types": (
        *("UNKNOWN", "Age", "Attributes", "Box", "Candidate", "Expression", "Face", "Gender", "HeadPose"),
        *("Identification", "Quality", "Template", "Verification"),
    ),
}
_LAZY = {name: module for module, names in _PUBLIC.items() for name in names}

if TYPE_CHECKING:
    from .api import analyze, detect, embed, verify
    from .gallery import Enrollment, Gallery, Person, default_gallery_path
    from .image import load_image
    from .match import DEFAULT_FMR, disclose, load_calibration, operating_point
    from .pipeline import PipelineOptions, process_files
    from .quality import QualityThresholds
    from .types import (
        UNKNOWN,
        Age,
        Attributes,
        Box,
        Candidate,
        Expression,
        Face,
        Gender,
        HeadPose,
        Identification,
        Quality,
        Template,
        Verification,
    )


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # found once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "ATTRIBUTES",
    "DEFAULT_FMR",
    "UNKNOWN",
    "Age",
    "Attributes",
    "Box",
    "Candidate",
    "Enrollment",
    "Expression",
    "Face",
    "FaceprintError",
    "Gallery",
    "GalleryError",
    "Gender",
    "HeadPose",
    "Identification",
    "InvalidImageError",
    "KeyRequiredError",
    "LowQualityError",
    "ManyFacesError",
    "ModelError",
    "NoFaceError",
    "Person",
    "PersonNotFoundError",
    "PipelineOptions",
    "Quality",
    "QualityThresholds",
    "Template",
    "UnsupportedFMRError",
    "Verification",
    "analyze",
    "default_gallery_path",
    "detect",
    "disclose",
    "embed",
    "load_calibration",
    "load_image",
    "operating_point",
    "process_files",
    "verify",
]
