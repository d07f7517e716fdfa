"""Identification decides at a false-positive identification rate (FPIR) for the gallery's size: the promise
holds against strangers, an unsupported target names no one, low-quality faces are not named, a gallery
measures itself and knows when that measurement is stale, and a video's label changes are timeline events."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

import faceprint.gallery as gallery_module
from faceprint import Gallery, Template
from faceprint.evaluation import split_from_csv
from faceprint.image import load_image
from faceprint.match import (
    DEFAULT_FPIR,
    GalleryTail,
    fmr_for_fpir,
    fpir_for_fmr,
    identification_point,
    load_calibration,
)
from faceprint.pipeline import ImageResult, process_files
from faceprint.video import Timeline, VideoOptions, VideoProcessor
from faceprint.video.identity import IdentityOptions

from .conftest import HIRES, KIT, ROSE, SHARED_DATA
from .video_clips import Walker, frames_of, make_clip, make_gallery

MODEL = "dlib-resnet-v1"
DEV = SHARED_DATA / "faces-dev"


def rel(path: Path) -> str:
    return str(path.relative_to(HIRES))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_the_threshold_rises_with_the_gallery_and_unsupported_targets_are_said() -> None:
    shipped = load_calibration(MODEL)
    small, large = (identification_point(MODEL, templates=n) for n in (10, 500))
    assert small.threshold is not None and large.threshold is not None and small.threshold < large.threshold
    # FPIR = 1 - (1 - FMR)^N: at 500 templates, FPIR 1e-2 needs FMR ~2e-5.
    assert large.threshold == pytest.approx(shipped.threshold(fmr_for_fpir(DEFAULT_FPIR, 500)))
    assert fpir_for_fmr(fmr_for_fpir(0.01, 500), 500) == pytest.approx(0.01)
    assert not large.extrapolated
    # Below the table's lowest FMR (1e-5) its tail is extrapolated, up to 4 decades (1M templates at FPIR 1e-2).
    extrapolated = identification_point(MODEL, templates=5000)
    assert extrapolated.extrapolated and extrapolated.threshold is not None
    assert extrapolated.threshold > shipped.thresholds[-1] > large.threshold
    million = identification_point(MODEL, templates=1_000_000)
    assert million.threshold == pytest.approx(shipped.thresholds[-1] + 3 * shipped.tail_slope, abs=1e-4)
    beyond = identification_point(MODEL, templates=1_000_000, fpir=1e-4)
    assert beyond.threshold is None and beyond.decide(0.999) == "uncertain"
    assert beyond.unsupported is not None and "FPIR 0.0001 unsupported" in beyond.unsupported
    assert "1e-05 calibrated" in beyond.unsupported and "1e-09 its tail is extrapolated to" in beyond.unsupported


def _sampled_best_scores(rng: np.random.Generator, searches: int, comparisons: float) -> np.ndarray:
    """Best-impostor scores of ``searches`` searches that each behave like ``comparisons`` independent comparisons
    of the shipped per-comparison tail."""
    shipped = load_calibration(MODEL)
    fpirs = rng.uniform(size=searches)
    fmrs = 1 - (1 - fpirs) ** (1 / comparisons)
    return np.interp(np.log10(fmrs), np.log10(shipped.fmrs[::-1]), shipped.thresholds[::-1])


def test_a_measurement_decides_while_fresh_and_a_bound_no_looser_once_stale() -> None:
    shipped = load_calibration(MODEL)
    rng = np.random.default_rng(0)
    # Best-impostor scores of a gallery whose searches behave like 300 of its 1,000 templates.
    best = _sampled_best_scores(rng, 20_000, comparisons=300)
    tail = GalleryTail.from_scores(best, calibration=shipped, people=1000, templates=1000, seconds=0.0)
    assert tail.comparisons_per_template == pytest.approx(0.3, rel=0.1)
    assert GalleryTail.from_dict(json.loads(json.dumps(tail.to_dict()))) == tail
    fresh = identification_point(MODEL, templates=1050, measured=tail)
    assert fresh.measured is tail and fresh.threshold == pytest.approx(np.quantile(best, 0.99), abs=2e-3)
    stale = identification_point(MODEL, templates=1200, measured=tail)
    assert stale.measured is None and "stale" in stale.basis
    assert stale.comparisons == 1200  # the independence bound: the measured factor (< 1) is not used
    assert stale.threshold is None or stale.threshold >= fresh.threshold


def _small_gallery_tail(
    per_template: Callable[[float], float], templates: int, people: int
) -> tuple[GalleryTail, Callable]:
    """A gallery's measured tail when its searches behave like ``per_template(FMR) * templates`` comparisons of the
    shipped tail (one search per template, at exact quantiles), and the true FPIR at any threshold in the table."""
    shipped = load_calibration(MODEL)

    def true_fpir(threshold: float) -> float:
        fmr = shipped.estimated_fmr(threshold)
        return fpir_for_fmr(fmr, per_template(fmr) * templates)

    grid = np.linspace(shipped.thresholds[0], shipped.thresholds[-1], 4000)
    quantiles = (np.arange(templates) + 0.5) / templates
    best = np.interp(-quantiles, -np.array([true_fpir(t) for t in grid]), grid)
    tail = GalleryTail.from_scores(best, calibration=shipped, people=people, templates=templates, seconds=0.0)
    return tail, true_fpir


def test_beyond_a_small_gallerys_table_the_promise_holds_for_a_heavier_tail() -> None:
    """Several photos a person: the centroids' impostor tail is heavier than the shipped one, so the comparisons
    that fit the measured points grow toward the tail; beyond the table (400 searches reach FPIR 0.03) their trend
    decides, where one mean fit of all points promised 1e-2 and gave twice that."""
    templates, shipped = 400, load_calibration(MODEL)
    tail, true_fpir = _small_gallery_tail(lambda fmr: 0.5 * (fmr / 1e-3) ** -0.35, templates, people=templates // 3)
    assert tail.fpirs[-1] > DEFAULT_FPIR
    point = identification_point(MODEL, templates=templates, measured=tail)
    assert point.measured is tail and point.threshold is not None
    assert true_fpir(point.threshold) == pytest.approx(DEFAULT_FPIR, rel=0.15)
    one_mean = shipped.threshold(fmr_for_fpir(DEFAULT_FPIR, templates * tail.comparisons_per_template))
    assert true_fpir(one_mean) > 2 * DEFAULT_FPIR


def test_beyond_a_one_photo_gallerys_table_the_mean_fit_decides() -> None:
    """One template a person: the shipped tail describes each person's score, so beyond the table the mean fit of
    the measured points decides; a trend through their noise would move each gallery's threshold at random."""
    shipped, templates = load_calibration(MODEL), 600
    rng = np.random.default_rng(3)
    best = _sampled_best_scores(rng, templates, comparisons=180)  # 0.3 comparisons per template
    one_photo = GalleryTail.from_scores(best, calibration=shipped, people=templates, templates=templates, seconds=0.0)
    assert one_photo.comparisons_per_template is not None and one_photo.fpirs[-1] > DEFAULT_FPIR
    point = identification_point(MODEL, templates=templates, measured=one_photo)
    assert point.comparisons_for(DEFAULT_FPIR) == templates * one_photo.comparisons_per_template
    assert point.threshold == shipped.tail_threshold(fmr_for_fpir(DEFAULT_FPIR, point.comparisons_for(DEFAULT_FPIR)))
    # The same searches from a gallery where people hold several templates: the fits' trend decides.
    several = dataclasses.replace(one_photo, people=templates // 3)
    trend = identification_point(MODEL, templates=templates, measured=several).comparisons_for(DEFAULT_FPIR)
    assert trend != pytest.approx(templates * one_photo.comparisons_per_template, rel=0.02)


def test_an_unsupported_target_answers_uncertain_and_says_why(
    tmp_path: Path, hires_results: dict[str, ImageResult]
) -> None:
    with Gallery(tmp_path / "g.db") as gallery:
        gallery.enroll_results("Kit Harington", [hires_results[rel(KIT[0])]])
        (kit,) = gallery.identify_faces(hires_results[rel(KIT[1])].faces)
        assert (kit.name, kit.decision, kit.fpir, kit.reason) == ("Kit Harington", "match", DEFAULT_FPIR, None)
        (answer,) = gallery.identify_faces(hires_results[rel(KIT[1])].faces, fpir=1e-10)
    assert answer.match is None and answer.decision == "uncertain" and answer.threshold is None
    assert answer.candidates[0].name == "Kit Harington", "the search still ranks Kit first"
    shown = answer.to_dict()
    assert shown["fpir"] == 1e-10 and shown["threshold"] is None and "unsupported" in shown["reason"]


def test_a_low_quality_face_is_not_named(tmp_path: Path, hires_results: dict[str, ImageResult]) -> None:
    pixels = load_image(KIT[1]).pixels
    blurred = tmp_path / "blurred.png"
    cv2.imwrite(str(blurred), cv2.cvtColor(cv2.GaussianBlur(pixels, (0, 0), 6), cv2.COLOR_RGB2BGR))
    with Gallery(tmp_path / "g.db") as gallery:
        gallery.enroll_results("Kit Harington", [hires_results[rel(KIT[0])]])
        (answer,) = gallery.identify(blurred)
    assert not answer.face.quality.acceptable
    assert answer.match is None and answer.decision in ("uncertain", "no_match")
    assert answer.reason is not None and answer.reason.startswith("low quality: ")
    assert "blurry" in answer.reason


def test_a_gallery_measures_itself_and_refreshes_when_it_grew(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with Gallery(tmp_path / "g.db") as gallery:
        dimension = gallery.options.model.dimension
        for person in range(40):
            vectors = rng.normal(size=(2, dimension))
            gallery.add_templates(f"p{person}", [Template(v / np.linalg.norm(v), gallery.model_id) for v in vectors])
        assert gallery.measured_tail() is None
        point = gallery.identification_point()  # small: measured on the spot
        tail = gallery.measured_tail()
        assert tail is not None and (tail.people, tail.templates, tail.searches) == (40, 80, 80)
        assert point.measured == tail and gallery.identification_stats()["fresh"]
        for person in range(40, 50):
            vector = rng.normal(size=dimension)
            gallery.add_templates(f"p{person}", [Template(vector / np.linalg.norm(vector), gallery.model_id)])
        assert not gallery.identification_stats()["fresh"]  # 90 templates: grew by more than 10%
        gallery.identification_point()
        assert gallery.measured_tail().templates == 90


def test_a_changed_label_is_a_revision_event_in_the_timeline(tmp_path: Path) -> None:
    """A track that starts on Kit and continues on Rose (a tracker that swapped faces): the label shown first
    is not silently replaced; the change is a line of its own in the .jsonl timeline."""
    kit, rose = (str(p.relative_to(HIRES)) for p in (KIT[1], ROSE[1]))
    walkers = [
        Walker("Kit", kit, (160, 180), (300, 180), 120, 0, 40),
        Walker("Rose", rose, (303, 180), (420, 180), 120, 40, 150),
    ]
    clip = make_clip(walkers, frames=150)
    options = VideoOptions(detect_every=5, detect_upsample=0, identity=IdentityOptions(recheck=0.2))
    with make_gallery(tmp_path / "g.db") as gallery, Timeline(tmp_path / "events.jsonl") as timeline:
        processor = VideoProcessor(gallery, options, fps=clip.fps, on_event=timeline.line)
        for frame in frames_of(clip):
            processor.process(frame)
        processor.finish()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    revisions = [e for e in lines if e["event"] == "revision"]
    tracks = [e for e in lines if e["event"] == "track"]
    assert len(tracks) == 1 and tracks[0]["label"] == "Rose Leslie" and tracks[0]["revisions"] == 1, lines
    assert [(e["previous_label"], e["label"]) for e in revisions] == [("Kit Harington", "Rose Leslie")]
    assert 40 < revisions[0]["last_frame"] < 150 and revisions[0]["track_id"] == tracks[0]["track_id"]


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.skipif(not (DEV / "identify_gallery.csv").exists(), reason="../shared/data/faces-dev not available")
def test_the_fpir_promise_holds_for_strangers(tmp_path: Path) -> None:
    """faces-dev's 1:N split with 30% of the gallery's identities withheld, plus every faces-hires photo: no
    stranger here is enrolled. At FPIR 0.1 the share of strangers given a name must not be above 0.1 (the
    previous per-comparison rule gave a third of them a name), nor so far below that the rule is uselessly strict.

    Below 0.1 the check allows a factor of 2: the threshold is the gallery's own 10% point from 426 searches
    (itself uncertain by about 1.5 points) and strangers come in clusters of one person's photos, so over the
    split's seeds 0-5 the named share was 5.2-12.0% (mean 8.6%), wider than one sample's interval."""
    split = split_from_csv(DEV / "identify_gallery.csv", DEV / "identify_probes.csv", withhold=0.3, seed=0)
    enrolled = {name for _, name in split.gallery}
    strangers = [path for path, name in split.probes if name not in enrolled]
    strangers += sorted(p for p in HIRES.glob("*/*") if p.suffix in (".jpg", ".png"))
    results = list(process_files([p for p, _ in split.gallery] + strangers, workers=2))
    with Gallery(tmp_path / "dev.db") as gallery:
        for (_, name), result in zip(split.gallery, results):
            if result.faces:
                gallery.enroll_results(name, [result], largest=True, quality_filter="none")
        answers = gallery.identify_photos([r.faces[:1] for r in results[len(split.gallery) :]], fpir=0.1)
        point = gallery.identification_point(0.1)
    judged = [a[0] for a in answers if a and not (a[0].reason or "").startswith("low quality")]
    assert len(judged) >= 0.8 * len(strangers) >= 250, "the promise must rest on strangers judged by score"
    named = sum(a.match is not None for a in judged)
    low, high = wilson(named, len(judged))
    assert point.measured is not None, "the gallery measured itself"
    assert low <= 0.1 and high >= 0.1 / 2, f"{named} of {len(judged)} strangers named at FPIR 0.1 ({point.basis})"


def test_the_centroid_cache_stays_within_its_bound_and_follows_every_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    with Gallery(tmp_path / "g.db") as gallery:
        dimension = gallery.options.model.dimension
        monkeypatch.setattr(gallery_module, "CENTROID_CACHE_BYTES", 5 * 4 * dimension)  # room for 5 people

        def unit(rows: int) -> np.ndarray:
            vectors = rng.normal(size=(rows, dimension)).astype(np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

        def centroid(vectors: np.ndarray) -> np.ndarray:
            return vectors.sum(axis=0) / np.linalg.norm(vectors.sum(axis=0))

        people = {f"p{n}": unit(2) for n in range(20)}
        for name, vectors in people.items():
            gallery.add_templates(name, [Template(v, gallery.model_id) for v in vectors])
        ids = {name: gallery.person(name).id for name in people}
        queries = np.stack([vectors[0] for vectors in people.values()])
        for _ in range(2):  # computed, then (partly) from the cache: the same answers
            ranked = gallery.rank_people(queries, 1)
            assert [row.people[0][0] for row in ranked] == list(ids.values())
            for vectors, row in zip(people.values(), ranked):
                assert row.people[0][1] == pytest.approx(float(vectors[0] @ centroid(vectors)), abs=1e-5)
            assert len(gallery._centroid_cache) == 5
        # An enrollment moves p0's centroid; a removal takes p1 out of every answer.
        extra = unit(1)
        gallery.add_templates("p0", [Template(extra[0], gallery.model_id)])
        gallery.remove_person("p1")
        ((p0,), _), ((p1,), _) = gallery.rank_people(queries[:2], 1)
        expected = float(queries[0] @ centroid(np.concatenate([people["p0"], extra])))
        assert p0 == (ids["p0"], pytest.approx(expected, abs=1e-5))
        assert p1[0] != ids["p1"]
