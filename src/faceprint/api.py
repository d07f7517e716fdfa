"""The flat public functions: detect, embed, analyze, verify."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .choices import ATTRIBUTES, AttributeName, DetectorName, check_names
from .image import ImageSource
from .match import Calibration, compare
from .pipeline import DEFAULT_OPTIONS, PipelineOptions, faces_in, template_of
from .types import Face, Template, Verification


def detect(
    image: ImageSource,
    *,
    detector: DetectorName | None = None,
    upsample: int | None = None,
    landmarks68: bool = False,
) -> list[Face]:
    """Faces in ``image``, main face first, with landmarks and a quality report (no templates); ``detector``:
    the default pipeline's (YuNet) unless given, so that ``embed`` finds the same faces.

    >>> faces = detect("tests/data/faces-hires/multi/kit_harington_and_rose_leslie.jpg")
    >>> len(faces)
    2
    """
    options = dataclasses.replace(
        DEFAULT_OPTIONS, detector=detector or DEFAULT_OPTIONS.detector, upsample=upsample, landmarks68=landmarks68
    )
    return faces_in(image, options, embed=False)


def embed(image: ImageSource, *, options: PipelineOptions = DEFAULT_OPTIONS) -> list[Face]:
    """Every face in ``image`` with its template, main face first.

    >>> faces = embed("tests/data/faces-hires/Rose_Leslie/Rose_Leslie_0001.jpg")
    >>> faces[0].template.vector.shape, faces[0].template.model_id
    ((256,), 'dlib-resnet-v1+sface-2021dec')
    """
    return faces_in(image, options)


def analyze(
    image: ImageSource,
    attributes: Iterable[AttributeName] | AttributeName = ATTRIBUTES,
    *,
    options: PipelineOptions = DEFAULT_OPTIONS,
) -> list[Face]:
    """Faces in ``image``, main face first, each with the requested ``attributes`` (no templates).

    ``attributes`` is any of ``"age"``, ``"gender"``, ``"expression"``, ``"pose"``; only those are computed.
    Gender and expression are guesses from appearance, not facts about a person (see the README).

    >>> face = analyze("tests/data/faces-hires/Rose_Leslie/Rose_Leslie_0001.jpg", ("gender", "pose"))[0]
    >>> face.attributes.gender.label, abs(face.attributes.pose.yaw) < 20, face.attributes.age is None
    ('female', True, True)
    """
    names = check_names([attributes] if isinstance(attributes, str) else attributes)
    if not names:
        raise ValueError(f"ask for at least one attribute: {', '.join(ATTRIBUTES)}")
    options = dataclasses.replace(options, attributes=names)
    return faces_in(image, options, embed=False)


def verify(
    a: ImageSource | Face | Template,
    b: ImageSource | Face | Template,
    *,
    fmr: float | None = None,
    largest: bool = False,
    options: PipelineOptions = DEFAULT_OPTIONS,
    calibration: Calibration | None = None,
) -> Verification:
    """Are ``a`` and ``b`` the same person? Decided by ``faceprint.match.operating_point``.

    ``calibration`` maps similarities to FMR (default: the one shipped for the model; pass
    ``Gallery.stored_calibration()`` or ``faceprint.gallery.calibration_stored_at(path)`` for one
    measured with ``faceprint calibrate``); without ``fmr`` its operating FMR is used, else
    ``DEFAULT_FMR`` (1e-3). An ``fmr`` outside the calibrated range raises ``UnsupportedFMRError``.

    >>> result = verify("tests/data/faces-hires/Rose_Leslie/Rose_Leslie_0001.jpg",
    ...                 "tests/data/faces-hires/Rose_Leslie/Rose_Leslie_0002.jpg")
    >>> result.match, result.decision
    (True, 'match')
    """
    return compare(
        template_of(a, largest=largest, options=options),
        template_of(b, largest=largest, options=options),
        fmr=fmr,
        calibration=calibration,
    )
