"""The template export (.npz of ``faceprint embed``): written from real results, read back, foreign files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceprint.errors import DatasetError, OutputError
from faceprint.export import read_templates, write_templates
from faceprint.pipeline import DEFAULT_OPTIONS, ImageResult, process_files

from .conftest import KIT, MULTI


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[ImageResult]:
    """One face, two faces, no face (a blank photo) and an unreadable file."""
    folder = tmp_path_factory.mktemp("export")
    blank, broken = folder / "blank.png", folder / "broken.jpg"
    Image.new("RGB", (160, 160), "grey").save(blank)
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    return list(process_files([KIT[0], MULTI, blank, broken], workers=1))


def test_round_trip(results: list[ImageResult], tmp_path: Path) -> None:
    summary = write_templates(results, tmp_path / "out" / "t.npz")
    assert (summary.faces, summary.images_with_faces) == (3, 2)
    assert summary.no_face == [results[2].source] and [image for image, _ in summary.errors] == [results[3].source]
    assert summary.to_dict()["errors"][0]["message"].endswith("not an image, or a format faceprint cannot read")
    back = read_templates(summary.out)
    assert back.paths == [str(KIT[0]), str(MULTI), str(MULTI)] and list(back.face_index) == [0, 0, 1]
    assert back.model == summary.model == results[0].faces[0].template.model_id
    faces = [results[0].faces[0], *results[1].faces]
    assert np.array_equal(back.embeddings, np.stack([f.template.vector for f in faces]).astype(np.float32))
    assert np.allclose(back.boxes, [f.box.as_tuple() for f in faces])
    assert np.allclose(back.quality, [f.quality.score for f in faces])
    assert back.no_face == summary.no_face and back.errors == [results[3].source]


def test_largest_keeps_each_images_main_face_and_npz_is_added(results: list[ImageResult], tmp_path: Path) -> None:
    summary = write_templates(results, tmp_path / "main", largest=True)
    assert summary.out == tmp_path / "main.npz" and summary.faces == 2
    assert list(read_templates(summary.out).face_index) == [0, 0]


def test_nothing_found_still_writes_a_readable_file(results: list[ImageResult], tmp_path: Path) -> None:
    summary = write_templates(results[2:], tmp_path / "empty.npz")
    back = read_templates(summary.out)
    assert back.embeddings.shape == (0, DEFAULT_OPTIONS.model.dimension) and back.paths == []
    assert summary.model == back.model


def test_foreign_or_corrupt_files_are_refused_by_name(results: list[ImageResult], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 truncated")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    other = tmp_path / "other.npz"
    np.savez(other, embeddings=np.zeros((2, 128)))
    not_unit = tmp_path / "not_unit.npz"
    arrays = dict(np.load(write_templates(results, tmp_path / "good.npz").out))
    np.savez(not_unit, **(arrays | {"embeddings": arrays["embeddings"] * 3}))
    for path in (garbage, single, other, not_unit, tmp_path / "missing.npz"):
        with pytest.raises(DatasetError, match=path.name):
            read_templates(path)


def test_unwritable_output_raises_output_error(results: list[ImageResult], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file/sub"):
        write_templates(results, blocker / "sub" / "t.npz")
