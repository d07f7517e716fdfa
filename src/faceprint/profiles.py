"""Pipeline profiles: options measured to trade accuracy for speed (BENCHMARKS.md, "Speed profiles" and
"Issue 13: speed").

``ACCURATE`` is the default pipeline (``pipeline.DEFAULT_OPTIONS``): YuNet detection with dlib's ResNet (as its
int8 graph) and SFace fused (SFace aligned on YuNet's 5 points, without its mirror image), 256-d templates: 99.85%
on faces-dev and, at FPIR 1e-2, FNIR 0.9% at 10,000 templates with one photo per person; less CPU per image
than the classic profile. ``FAST``: YuNet detection with dlib's ResNet alone, run as its int8 graph
(faceprint.int8: the float graph's accuracy and model id at about half its CPU). ``CLASSIC``: the former
default, HOG with the CNN as fallback and dlib's ResNet (99.65%; 128-d templates, the model of
face_recognition): FNIR 40% in the same search. A gallery's
templates say which pipeline it needs (:func:`options_for_model`): a gallery of dlib's ResNet keeps
``CLASSIC``, and ``faceprint people reembed`` moves it to the default model.
"""

from __future__ import annotations

import dataclasses

from .choices import ProfileName
from .models import DLIB_RESNET, EmbeddingModel
from .pipeline import DEFAULT_OPTIONS, PipelineOptions

ACCURATE = DEFAULT_OPTIONS
FAST = PipelineOptions(detector="yunet", model=DLIB_RESNET, precision="int8")
CLASSIC = PipelineOptions(detector="auto", model=DLIB_RESNET, precision="fp32")

PROFILES: dict[ProfileName, PipelineOptions] = {"accurate": ACCURATE, "fast": FAST, "classic": CLASSIC}


def profile_options(name: ProfileName | None) -> PipelineOptions:
    """The options of a profile; the defaults for None."""
    if name is None:
        return DEFAULT_OPTIONS
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose from {', '.join(PROFILES)}")
    return PROFILES[name]


def options_for_model(model: EmbeddingModel) -> PipelineOptions:
    """The pipeline that makes ``model``'s templates: the default one for the default model, ``CLASSIC`` for
    dlib's ResNet (a gallery made by the former default keeps its pipeline unchanged), and ``CLASSIC``'s
    detector for another model (SFace alone: its calibration was measured on dlib's 68 points)."""
    if model == DEFAULT_OPTIONS.model:
        return DEFAULT_OPTIONS
    if model == CLASSIC.model:
        return CLASSIC
    return dataclasses.replace(CLASSIC, model=model, unflipped=())  # SFace's calibration kept its mirror image
