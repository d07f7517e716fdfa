"""Larger checks on LFW (faces-dev), read from ../shared/data; skipped where it is absent.

LFW is research-only, so it is never committed: these tests run on developer machines and CI
that have the shared data folder beside the repository.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from faceprint import Gallery
from faceprint.match import DEFAULT_FMR, load_calibration
from faceprint.pipeline import process_files

from .conftest import SHARED_DATA

DEV = SHARED_DATA / "faces-dev"
pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not (DEV / "pairs.csv").exists(), reason="../shared/data/faces-dev not available"),
]


def read_csv(name: str) -> list[dict[str, str]]:
    with open(DEV / name, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_official_pairs_at_the_default_operating_point() -> None:
    rows = read_csv("pairs.csv")
    sample = rows[:40] + rows[300:340]  # 40 same-person and 40 different-person official pairs
    paths = sorted({r["path_a"] for r in sample} | {r["path_b"] for r in sample})
    vectors = {}
    for path, result in zip(paths, process_files([DEV / p for p in paths], workers=2)):
        assert result.faces, f"no face in {path}"
        vectors[path] = result.faces[0].template
    (model_id,) = {template.model_id for template in vectors.values()}  # the default pipeline's model
    threshold = load_calibration(model_id).threshold(DEFAULT_FMR)
    scores = np.array([vectors[r["path_a"]].vector @ vectors[r["path_b"]].vector for r in sample])
    same = np.array([r["same"] == "1" for r in sample])
    assert (scores[same] >= threshold).mean() >= 0.9
    assert (scores[~same] >= threshold).sum() <= 1


@pytest.mark.slow
def test_identification_rank1_on_a_slice_of_the_split(tmp_path) -> None:
    gallery_rows = read_csv("identify_gallery.csv")[:150]
    enrolled = {r["identity"] for r in gallery_rows}
    probes = [r for r in read_csv("identify_probes.csv") if r["identity"] in enrolled][:40]
    assert len(probes) >= 10
    with Gallery(tmp_path / "lfw.db") as gallery:
        results = list(process_files([DEV / r["path"] for r in gallery_rows + probes], workers=2))
        for row, result in zip(gallery_rows, results[: len(gallery_rows)]):
            gallery.enroll_results(row["identity"], [result], largest=True, quality_filter="none")
        correct = 0
        for row, result in zip(probes, results[len(gallery_rows) :]):
            answers = gallery.identify_faces(result.faces[:1])
            correct += bool(answers) and answers[0].name == row["identity"]
    assert correct / len(probes) >= 0.85
