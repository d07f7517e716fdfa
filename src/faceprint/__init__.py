"""faceprint: face recognition on a plain CPU, offline.

    >>> import faceprint
    >>> faceprint.verify("tests/data/faces-hires/Kit_Harington/Kit_Harington_0001.jpg",
    ...                  "tests/data/faces-hires/Kit_Harington/Kit_Harington_0002.jpg").match
    True

Data flows one way: image -> faces (``detect``) -> templates (``embed``) -> matches
(``verify``, ``Gallery.identify``). Nothing slow happens at import: models load on first use.
"""

from .api import analyze, detect, embed, verify
from .attributes import ATTRIBUTES, Age, Attributes, Expression, Gender
from .errors import (
    FaceprintError,
    GalleryError,
    InvalidImageError,
    LowQualityError,
    ManyFacesError,
    ModelError,
    NoFaceError,
    PersonNotFoundError,
)
from .gallery import Enrollment, Gallery, Person, default_gallery_path
from .image import load_image
from .match import DEFAULT_FMR, load_calibration
from .pipeline import PipelineOptions, process_files
from .pose import HeadPose
from .quality import QualityThresholds
from .types import UNKNOWN, Box, Candidate, Face, Identification, Quality, Template, Verification

__version__ = "0.1.0"

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
    "Verification",
    "analyze",
    "default_gallery_path",
    "detect",
    "embed",
    "load_calibration",
    "load_image",
    "process_files",
    "verify",
]
