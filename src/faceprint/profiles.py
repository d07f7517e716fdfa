"""Speed profiles: pipeline options measured to trade accuracy for speed (BENCHMARKS.md, "Speed profiles"
and "Issue 13: speed").

``FAST``: YuNet detection with dlib's ResNet, the default's model (its templates mix with a default
gallery's): 1.5-2.0x the default's throughput, 99.55% on faces-dev. ``ACCURATE``: YuNet detection with
dlib's ResNet and SFace fused (SFace aligned on YuNet's 5 points, and without its mirror image, which
gained nothing at 3x dlib's cost): 99.85%, 0.89-1.03x the default's throughput. Neither is the
default: ``PipelineOptions()`` is. A gallery's templates say which pipeline it needs
(:func:`options_for_model`)."""

from __future__ import annotations

import dataclasses

from .choices import ProfileName
from .models import FUSED, SFACE, EmbeddingModel
from .pipeline import DEFAULT_OPTIONS, PipelineOptions

FAST = PipelineOptions(detector="yunet")
#: SFace's mirror image costs over 3x dlib's and gains nothing in the fused score (3 pairs wrong either way).
ACCURATE = PipelineOptions(detector="yunet", model=FUSED, unflipped=(SFACE.model_id,))

PROFILES: dict[ProfileName, PipelineOptions] = {"fast": FAST, "accurate": ACCURATE}


def profile_options(name: ProfileName | None) -> PipelineOptions:
    """The options of a profile; the defaults for None."""
    if name is None:
        return DEFAULT_OPTIONS
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose from {', '.join(PROFILES)}")
    return PROFILES[name]


def options_for_model(model: EmbeddingModel) -> PipelineOptions:
    """The pipeline that makes ``model``'s templates: the default one, or the profile measured for that model."""
    if model == DEFAULT_OPTIONS.model:
        return DEFAULT_OPTIONS
    if model == ACCURATE.model:
        return ACCURATE
    return dataclasses.replace(DEFAULT_OPTIONS, model=model)
