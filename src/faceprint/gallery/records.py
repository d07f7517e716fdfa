"""What a gallery holds, whichever store keeps it: people, their templates' provenance, and new templates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Person:
    """Someone enrolled in a gallery (``template_count`` of the templates stored for them)."""

    id: int
    name: str
    external_id: str | None
    metadata: dict[str, Any]
    template_count: int
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TemplateRecord:
    """A stored template's provenance (the vector itself is loaded only for search)."""

    id: int
    person_id: int
    model_id: str
    image_sha256: str | None
    source: str | None
    box: list[float] | None
    quality: float | None
    quality_report: dict[str, Any] | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class NewTemplate:
    """A template to store, with where it came from."""

    vector: np.ndarray
    model_id: str
    image_sha256: str | None = None
    source: str | None = None
    box: Sequence[float] | None = None
    quality: float | None = None
    quality_report: dict[str, Any] | None = None
