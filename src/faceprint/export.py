"""The template export of ``faceprint embed``: every face's template in one ``.npz`` file.

Fields of the file (N faces, one row each, in input order; ``np.load`` reads it):

- ``paths`` (str, N): the image each face came from;
- ``face_index`` (int32, N): the face's place among its image's faces (0 is the main face);
- ``boxes`` (float32, N x 4): the face box in source pixels: left, top, right, bottom;
- ``embeddings`` (float32, N x dim): the templates, unit length (compare with a dot product);
- ``quality`` (float32, N): the face's quality score, 0 to 1;
- ``model`` (str, a scalar): the id of the model that computed the templates;
- ``no_face`` (str): the images in which no face was found;
- ``errors`` (str): the images that could not be read.

``write_templates`` writes it from pipeline results; ``read_templates`` reads it back, checked.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetError, OutputError
from .match import check_same_model
from .pipeline import DEFAULT_OPTIONS, ImageResult, PipelineOptions, single_face, template_of
from .types import Face

_FIELDS = ("paths", "face_index", "boxes", "embeddings", "quality", "model", "no_face", "errors")
#: How far from 1 a template's length may be in a file we read (float32 rounding is far below it).
_UNIT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ExportSummary:
    """What ``write_templates`` wrote: counts, and the images without a face or unreadable."""

    out: Path
    faces: int
    images_with_faces: int
    model: str
    no_face: list[str] = field(default_factory=list)
    #: (image, message) of each image that could not be read.
    errors: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "faces": self.faces,
            "images_with_faces": self.images_with_faces,
            "no_face": self.no_face,
            "errors": [{"image": image, "message": message} for image, message in self.errors],
            "model": self.model,
        }


@dataclass(frozen=True, eq=False)
class TemplateExport:
    """A template export read back (the fields of the module docstring, typed)."""

    paths: list[str]
    face_index: np.ndarray
    boxes: np.ndarray
    embeddings: np.ndarray
    quality: np.ndarray
    model: str
    no_face: list[str]
    errors: list[str]


def write_templates(
    results: Sequence[ImageResult],
    path: Path,
    *,
    largest: bool = False,
    options: PipelineOptions = DEFAULT_OPTIONS,
) -> ExportSummary:
    """Write the templates of every face of ``results`` to ``path`` (``.npz`` is added unless there);
    with ``largest``, only each image's main face. The model is that of the templates (``options.model``
    when there are none); templates of different models are refused with ``ModelError``."""
    faces = [(r.source, n, face) for r in results for n, face in enumerate(_kept_faces(r, largest))]
    templates = [template_of(face) for _, _, face in faces]
    model = templates[0].model_id if templates else options.model.model_id
    for template in templates:
        check_same_model(template.model_id, model)
    dimension = templates[0].vector.shape[0] if templates else options.model.dimension
    no_face = [r.source for r in results if not r.error and not r.faces]
    errors = [(r.source, str(r.error)) for r in results if r.error]
    target = path if path.name.endswith(".npz") else path.with_name(path.name + ".npz")
    arrays = {
        "paths": np.array([source for source, _, _ in faces], dtype=str),
        "face_index": np.array([n for _, n, _ in faces], dtype=np.int32),
        "boxes": np.array([face.box.as_tuple() for _, _, face in faces], dtype=np.float32).reshape(-1, 4),
        "embeddings": np.array([t.vector for t in templates], dtype=np.float32).reshape(-1, dimension),
        "quality": np.array([face.quality.score for _, _, face in faces], dtype=np.float32),
        "model": np.array(model),
        "no_face": np.array(no_face, dtype=str),
        "errors": np.array([image for image, _ in errors], dtype=str),
    }
    _save(target, arrays)
    return ExportSummary(target, len(faces), len({source for source, _, _ in faces}), model, no_face, errors)


def _kept_faces(result: ImageResult, largest: bool) -> list[Face]:
    if largest and result.faces:
        return [single_face(result.faces, result.source, largest=True)]
    return result.faces


def _save(target: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(target, **arrays)  # type: ignore[arg-type]
    except OSError as exc:
        raise OutputError(f"{target}: cannot write the templates ({exc.strerror or exc})") from None


def read_templates(path: Path) -> TemplateExport:
    """Read a file written by ``write_templates``; anything else raises ``DatasetError`` naming the file."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: not a readable template export ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path}: not a faceprint template export (a single array, not an .npz)")
    with data:
        missing = [name for name in _FIELDS if name not in data.files]
        if missing:
            raise DatasetError(f"{path}: not a faceprint template export (no {', '.join(missing)})")
        try:
            arrays = {name: data[name] for name in _FIELDS}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{path}: not a readable template export ({exc})") from None
    return _checked(path, arrays)


def _checked(path: Path, arrays: dict[str, np.ndarray]) -> TemplateExport:
    embeddings = arrays["embeddings"]
    rows = len(embeddings) if embeddings.ndim == 2 else -1
    shapes_fit = (
        rows >= 0
        and arrays["boxes"].shape == (rows, 4)
        and all(arrays[name].shape == (rows,) for name in ("paths", "face_index", "quality"))
        and arrays["model"].shape == ()
    )
    if not shapes_fit:
        raise DatasetError(f"{path}: the fields of this template export do not fit together (one row per face)")
    if rows and not np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=_UNIT_TOLERANCE):
        raise DatasetError(f"{path}: the embeddings are not unit length, so not faceprint templates")
    return TemplateExport(
        paths=[str(p) for p in arrays["paths"]],
        face_index=arrays["face_index"].astype(np.int32),
        boxes=arrays["boxes"].astype(np.float32),
        embeddings=embeddings.astype(np.float32),
        quality=arrays["quality"].astype(np.float32),
        model=str(arrays["model"]),
        no_face=[str(p) for p in arrays["no_face"]],
        errors=[str(p) for p in arrays["errors"]],
    )
