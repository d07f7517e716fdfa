"""Measuring a calibration with the library: a folder-per-person source end to end, its coverage
rule and writer, and the weighted bootstrap that bench/calibrate.py builds the shipped table with."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from faceprint.errors import DatasetError, OutputError
from faceprint.evaluation.cache import EmbeddingCache
from faceprint.evaluation.calibration import (
    ScoredPairs,
    calibrate,
    calibration_points,
    read_calibration_source,
    write_calibration,
)
from faceprint.match import Calibration

from .conftest import HIRES


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingCache]:
    """A private embedding cache, so the photos are embedded once for the module."""
    cache = EmbeddingCache(tmp_path_factory.mktemp("cache") / "embeddings.db")
    yield cache
    cache.close()


def test_folder_source_uses_every_pair_and_covers_the_fmr(people_dir: Path, cache: EmbeddingCache) -> None:
    source = read_calibration_source(people_dir)
    done: list[int] = []
    run = calibrate(source, fmr=0.1, min_false_matches=2, workers=1, cache=cache, on_done=done.append)
    assert sum(done) == len(source.images) == 15
    # 15 photos of 5 people: 105 pairs, 22 of them of one person; 2 false matches in 83 need FMR >= 0.03.
    assert (run.impostor_pairs, run.genuine_pairs) == (83, 22)
    document = run.document
    assert document["pairs"] == {"impostor": 83, "genuine": 22}
    assert document["interval_resampling"] == "identities" and document["operating_fmr"] == 0.1
    assert document["source"] == f"{people_dir}: 15 images with a face, every pair"
    assert [p["fmr"] for p in document["points"]] == [0.1, 0.03]
    calibration = Calibration.from_dict(document)
    assert calibration.threshold(0.1) == document["points"][0]["threshold"]


def test_an_fmr_the_impostor_pairs_cannot_measure_names_the_source(people_dir: Path, cache: EmbeddingCache) -> None:
    source = read_calibration_source(people_dir)
    with pytest.raises(DatasetError) as raised:
        calibrate(source, fmr=1e-3, min_false_matches=2, workers=1, cache=cache)
    assert str(raised.value).startswith(f"{people_dir}: 83 impostor pairs measure FMR 0.03 to 0.1; FMR 0.001 needs")


def test_a_folder_of_one_person_is_refused(tmp_path: Path) -> None:
    shutil.copytree(HIRES / "Kit_Harington", tmp_path / "Kit_Harington")
    with pytest.raises(DatasetError, match="at least 2 people"):
        read_calibration_source(tmp_path)


def test_writing_the_document_where_it_cannot_go_is_an_output_error(tmp_path: Path) -> None:
    document = {"model_id": "dlib-resnet-v1", "points": []}
    write_calibration(document, tmp_path / "cal.json")
    assert (tmp_path / "cal.json").read_text().startswith('{\n  "model_id": "dlib-resnet-v1"')
    missing = tmp_path / "no such folder" / "cal.json"
    with pytest.raises(OutputError, match="no such folder"):
        write_calibration(document, missing)


def test_weighted_bootstrap_reproduces_the_shipped_tables_numbers() -> None:
    # Six people with 1 to 4 faces; every pair scored by a fixed rule, genuine pairs higher. Genuine
    # pairs weigh 1 / their identity's genuine pairs, as bench/calibrate.py weighs them for the shipped
    # table. The numbers are those of the bench's own bootstrap before it moved into the library.
    faces = np.array([1, 2, 2, 3, 3, 4])
    identity = np.repeat(np.arange(6), faces)
    a, b = np.triu_indices(len(identity), k=1)
    scores = ((a * 37 + b * 101) % 211) / 211
    same = identity[a] == identity[b]
    scores = np.where(same, 0.85 + scores / 6, scores)
    per_identity = 1.0 / (faces * (faces - 1) / 2)[identity[a][same]]
    impostors = ScoredPairs(scores[~same], identity[a][~same], identity[b][~same])
    genuines = ScoredPairs(scores[same], identity[a][same], identity[b][same], per_identity)
    points = calibration_points(impostors, genuines, np.array([0.1, 0.03]))
    assert points == [
        {
            "fmr": 0.1,
            "threshold": 0.917062,
            "false_matches": 9,
            "threshold_90ci": [0.856991, 0.959716],
            "fnmr": 0.466667,
            "fnmr_90ci": [0.0, 0.833333],
        },
        {
            "fmr": 0.03,
            "threshold": 0.969195,
            "false_matches": 2,
            "threshold_90ci": [0.919431, 0.973934],
            "fnmr": 0.866667,
            "fnmr_90ci": [0.333333, 0.944444],
        },
    ]
