"""faceprint.pipeline: batching, per-file errors, single faces, templates, and the two-step video path."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from faceprint.detection import detect_boxes
from faceprint.errors import InvalidImageError, ManyFacesError, NoFaceError
from faceprint.image import load_image
from faceprint.pipeline import (
    DEFAULT_OPTIONS,
    _shared_with_pool,
    embed_located,
    find_faces,
    locate_face,
    process_files,
    single_face,
    template_of,
)
from faceprint.types import Face

from .conftest import KIT, MULTI, OBAMA, ROSE


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Two faces, one face, one face, none."""
    return [*(load_image(path).pixels for path in (MULTI, ROSE[0], KIT[0])), np.full((90, 120, 3), 128, np.uint8)]


@pytest.fixture(scope="module")
def batch(photos: list[np.ndarray]) -> list[list[Face]]:
    return find_faces(photos)


def assert_same_faces(actual: list[Face], expected: list[Face]) -> None:
    assert [face.box for face in actual] == [face.box for face in expected]
    for a, b in zip(actual, expected):
        assert np.array_equal(a.landmarks, b.landmarks)
        assert a.quality == b.quality
        assert a.template is not None and b.template is not None
        np.testing.assert_allclose(a.template.vector, b.template.vector, atol=1e-5)


def test_find_faces_in_one_batch_equals_image_by_image(photos: list[np.ndarray], batch: list[list[Face]]) -> None:
    assert [len(faces) for faces in batch] == [2, 1, 1, 0]
    for pixels, faces in zip(photos, batch):
        assert_same_faces(faces, find_faces([pixels])[0])


def test_find_faces_without_embedding_has_no_templates(photos: list[np.ndarray], batch: list[list[Face]]) -> None:
    faces = find_faces(photos[:1], embed=False)[0]
    assert [face.box for face in faces] == [face.box for face in batch[0]]
    assert all(face.template is None for face in faces)


def test_locate_then_embed_equals_find_faces(photos: list[np.ndarray], batch: list[list[Face]]) -> None:
    pixels = photos[0]
    options = DEFAULT_OPTIONS
    detections = detect_boxes(pixels, detector=options.detector, upsample=options.upsample, max_side=options.max_side)
    located = [locate_face(pixels, detection) for detection in detections]
    assert all(item.face.template is None for item in located)
    # Each model embeds from its own chip; a fused model from one chip per part.
    parts = [part for part, _ in options.model.parts] or [options.model]
    chips = [item.chip if isinstance(item.chip, tuple) else (item.chip,) for item in located]
    assert all([c.shape for c in chip] == [(m.chip_size, m.chip_size, 3) for m in parts] for chip in chips)
    assert_same_faces(embed_located(located), batch[0])


def test_process_files_keeps_order_and_reports_bad_files_as_their_own_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    missing = tmp_path / "missing.jpg"
    sources = [ROSE[0], broken, KIT[0], missing, MULTI]
    done: list[int] = []
    results = list(process_files(sources, workers=1, chunk_size=2, on_done=done.append))
    assert [result.source for result in results] == [str(source) for source in sources]
    assert sum(done) == len(sources)
    assert [len(result.faces) for result in results] == [1, 0, 1, 0, 2]
    for result in (results[1], results[3]):
        assert isinstance(result.error, InvalidImageError) and result.source in str(result.error)
        assert result.sha256 is None
    good = [results[i] for i in (0, 2, 4)]
    assert all(result.error is None and result.sha256 for result in good)
    expected = find_faces([load_image(source).pixels for source in (ROSE[0], KIT[0], MULTI)])
    for result, faces in zip(good, expected):
        assert_same_faces(result.faces, faces)


@pytest.mark.slow
def test_process_files_in_worker_processes_equals_one_process() -> None:
    sources = [*OBAMA, *ROSE]
    alone = list(process_files(sources, workers=1))
    pooled = list(process_files(sources, workers=2, chunk_size=2))
    assert [result.source for result in pooled] == [result.source for result in alone]
    for a, b in zip(pooled, alone):
        assert_same_faces(a.faces, b.faces)


def test_chunks_shared_with_a_pool_come_back_in_order_run_by_the_pool_and_the_caller() -> None:
    ran: list[int] = []

    def work(chunk: list[int]) -> list[tuple[int, int]]:
        ran.append(chunk[0])
        time.sleep(0.01 * (chunk[0] % 3))  # chunks finish out of order
        return [(item, threading.get_ident()) for item in chunk]

    chunks = [[i, i + 100] for i in range(20)]
    with ThreadPoolExecutor(2) as pool:
        results = list(_shared_with_pool(chunks, work, pool, 2))  # type: ignore[arg-type]
    assert [[item for item, _ in result] for result in results] == chunks
    ran_by = {ident for result in results for _, ident in result}
    assert threading.get_ident() in ran_by and len(ran_by) > 1
    ran.clear()
    with ThreadPoolExecutor(1) as pool:
        shared = _shared_with_pool(chunks, work, pool, 1)  # type: ignore[arg-type]
        next(shared)
        shared.close()  # the caller stops early: no chunk is started after
    assert len(ran) < len(chunks)


def test_single_face_takes_the_one_face_or_with_largest_the_main_one(batch: list[list[Face]]) -> None:
    assert single_face(batch[1], "rose.jpg") is batch[1][0]
    assert single_face(batch[0], "group.jpg", largest=True) is batch[0][0]
    with pytest.raises(ManyFacesError, match=re.escape("group.jpg: 2 faces")):
        single_face(batch[0], "group.jpg")
    with pytest.raises(NoFaceError, match=re.escape("wall.jpg: no face")):
        single_face(batch[3], "wall.jpg", largest=True)


def test_template_of_images_faces_and_templates(batch: list[list[Face]]) -> None:
    face = batch[1][0]
    assert face.template is not None
    assert template_of(face) is face.template
    assert template_of(face.template) is face.template
    np.testing.assert_allclose(template_of(ROSE[0]).vector, face.template.vector, atol=1e-5)
    np.testing.assert_allclose(template_of(MULTI, largest=True).vector, batch[0][0].template.vector, atol=1e-5)
    with pytest.raises(ManyFacesError):
        template_of(MULTI)
    with pytest.raises(ValueError, match="no template"):
        template_of(find_faces([load_image(ROSE[0]).pixels], embed=False)[0][0])
