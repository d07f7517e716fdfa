"""Comparing templates: similarity, distance, and thresholds stated as false-match rates.

Scores are cosine similarities of L2-normalised templates (1 = identical); the Euclidean
distance between them is ``sqrt(2 - 2 * similarity)``. A threshold is never a bare number:
it is read from a calibration table that maps false-match rates (FMR), measured on real
impostor pairs, to similarity thresholds (see ``bench/calibrate.py`` and BENCHMARKS.md).

``operating_point`` is the one decision rule for 1:1 comparisons (``verify``): which calibration
decides, and at which FMR. ``identification_point`` is its 1:N counterpart (``Gallery.identify``, video,
evaluation, later the HTTP service): the threshold that keeps the false-positive identification rate
(FPIR, the chance that a person who is not enrolled is given an enrolled name) at its target for the
gallery's size, from the same per-comparison tail and what the gallery measured of itself (``GalleryTail``). Where
that measurement is fresh and reaches the target's band, it decides on similarities moved by each search's cohort
(``cohort_score``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from .choices import DISCLOSURES, Disclosure
from .errors import ModelError, UnsupportedFMRError
from .types import Decision, Template, Verification

#: Default operating point: one false match in a thousand impostor comparisons.
DEFAULT_FMR = 1e-3
#: Width of the ``uncertain`` band, as a factor on the FMR (or FPIR) either side of the operating point.
UNCERTAIN_FACTOR = 10.0
#: Default 1:N operating point: one stranger in a hundred searches given an enrolled name.
DEFAULT_FPIR = 1e-2
#: A gallery's own measurement is stale once its template count moved by more than this fraction.
STALE_AFTER = 0.10
#: False positives a measured FPIR point must rest on (as for every rate faceprint reports).
MIN_FALSE_POSITIVES = 10
#: FPIRs at which a gallery's best-impostor distribution is tabulated (those with enough searches).
MEASURED_FPIRS = (0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 3e-5, 1e-5)
#: A 1:N search of a large gallery needs per-comparison FMRs below any table's lowest (FPIR 1e-2 at 1M
#: templates: 1e-8). Below its lowest FMR a table's tail is extrapolated this many decades at most, and only
#: from a table measured down to ``EXTRAPOLATE_FROM`` (its last ``EXTRAPOLATION_FIT`` decades fit the slope).
EXTRAPOLATED_DECADES = 4.0
EXTRAPOLATE_FROM = 1e-4
EXTRAPOLATION_FIT = 2.0
#: People after the best whose mean score is a search's cohort score (``cohort_score``). Subtracting it from the
#: best score (``IdentificationPoint.offset``) discounts a probe that scores high on everyone: at FPIR 1e-2 with one
#: photo per person it misses 25 mated searches of 821 at 1M templates instead of 32 (bench/cohort_scores.py, exact
#: search); 5 to 50 people do about as well. Not at 600 real people, where it missed more at 1e-2 (BENCHMARKS.md,
#: "Issue 14: cohort-moved scores"): a gallery decides on it only where its own measurement of it reaches.
COHORT = 10


@dataclass(frozen=True)
class Calibration:
    """Similarity thresholds for a range of false-match rates, measured for one model.

    ``operating_fmr`` is the FMR chosen when the table was measured (``faceprint calibrate
    --fmr``); it is the default operating point wherever this calibration is active.
    """

    model_id: str
    fmrs: tuple[float, ...]
    thresholds: tuple[float, ...]
    source: str
    operating_fmr: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """From the JSON document written by ``bench/calibrate.py`` or ``faceprint calibrate``."""
        try:
            points = sorted(data["points"], key=lambda p: -p["fmr"])
            calibration = cls(
                model_id=data["model_id"],
                fmrs=tuple(float(p["fmr"]) for p in points),
                thresholds=tuple(float(p["threshold"]) for p in points),
                source=data["source"],
                operating_fmr=data.get("operating_fmr"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed calibration ({type(exc).__name__}: {exc})") from None
        if not points:
            raise ModelError(f"calibration from {calibration.source!r} has no operating points")
        return calibration

    def threshold(self, fmr: float) -> float:
        """Similarity above which two faces are declared a match at the given FMR."""
        if not self.fmrs[-1] <= fmr <= self.fmrs[0]:
            raise UnsupportedFMRError(
                f"FMR {fmr:g} is outside the range calibrated for {self.model_id}: "
                f"choose one from {self.fmrs[-1]:g} to {self.fmrs[0]:g}"
            )
        # FMRs are stored decreasing, thresholds increasing: interpolate in log(FMR).
        return float(np.interp(-math.log10(fmr), [-math.log10(f) for f in self.fmrs], self.thresholds))

    def clamped_threshold(self, fmr: float) -> float:
        """``threshold`` at ``fmr`` moved into the calibrated range (for thresholds derived from the operating one)."""
        return self.threshold(min(max(fmr, self.fmrs[-1]), self.fmrs[0]))

    def estimated_fmr(self, similarity: float) -> float:
        """Fraction of impostor pairs scoring at least ``similarity`` (clamped to the table's range)."""
        log_fmr = np.interp(similarity, self.thresholds, [math.log10(f) for f in self.fmrs])
        return float(10.0**log_fmr)

    def tail_threshold(self, fmr: float) -> float | None:
        """A threshold for 1:N bounds at any ``fmr``: the table's within its range (its loosest end above it:
        stricter, so safe), and below its lowest FMR the tail extrapolated (``tail_slope``); None beyond
        ``EXTRAPOLATED_DECADES``, or for a table too shallow to extrapolate from."""
        floor = self.fmrs[-1]
        if fmr >= floor:
            return self.clamped_threshold(fmr)
        decades = math.log10(floor / fmr)
        if self.tail_slope is None or decades > EXTRAPOLATED_DECADES:
            return None
        return self.thresholds[-1] + decades * self.tail_slope

    @functools.cached_property
    def tail_slope(self) -> float | None:
        """Threshold gained per decade of FMR in the table's last ``EXTRAPOLATION_FIT`` decades (least squares),
        i.e. an exponential impostor tail: it falls no faster than a Gaussian-like tail of cosine scores
        does, so the thresholds it extrapolates err high (fewer false positives than stated). None for a
        table not measured down to ``EXTRAPOLATE_FROM`` or with fewer than 3 points there."""
        floor = self.fmrs[-1]
        if floor > EXTRAPOLATE_FROM:
            return None
        tail = [(-math.log10(f), t) for f, t in zip(self.fmrs, self.thresholds) if f <= floor * 10**EXTRAPOLATION_FIT]
        if len(tail) < 3:
            return None
        decades, thresholds = np.array(tail).T
        slope = float(np.polyfit(decades, thresholds, 1)[0])
        return slope if slope > 0 else None

    def band(self, fmr: float) -> tuple[float, float]:
        """Similarities bounding the ``uncertain`` band around the operating point ``fmr``: the
        thresholds at ``fmr * UNCERTAIN_FACTOR`` and ``fmr / UNCERTAIN_FACTOR``, each clamped to the
        calibrated range (at the range's end the band is one-sided)."""
        return self.clamped_threshold(fmr * UNCERTAIN_FACTOR), self.clamped_threshold(fmr / UNCERTAIN_FACTOR)

    def decide(self, similarity: float, fmr: float) -> Decision:
        """``match`` when even the FMR-÷10 threshold is passed, ``no_match`` below the FMR-×10 one,
        ``uncertain`` between (the decision at ``fmr`` itself could go either way on other data)."""
        low, high = self.band(fmr)
        if similarity >= high:
            return "match"
        return "no_match" if similarity < low else "uncertain"


#: The keys of a result's dict that carry a fine-grained score of the probe.
SCORE_KEYS = ("similarity", "score", "distance", "estimated_fmr")


def least_detailed(*levels: Disclosure) -> Disclosure:
    """The level that shows least of ``levels`` (a request may ask for less than its key's cap, never more)."""
    return max(levels, key=DISCLOSURES.index)


def score_band(similarity: float, calibration: Calibration) -> str:
    """The strictest FMR of ``calibration``'s table whose threshold ``similarity`` passes, e.g. ``fmr<=0.0001``;
    ``fmr>`` its loosest FMR below every threshold."""
    passed = [fmr for fmr, threshold in zip(calibration.fmrs, calibration.thresholds) if similarity >= threshold]
    return f"fmr<={passed[-1]:g}" if passed else f"fmr>{calibration.fmrs[0]:g}"


def disclose(result: dict[str, Any], level: Disclosure, calibration: Calibration) -> dict[str, Any]:
    """What ``level`` may show of a result's ``to_dict()`` (``Verification``, ``TemplateIdentification``,
    ``Identification``): ``scores`` all of it; ``bands`` each score replaced by ``band`` (``score_band``);
    ``decisions`` no score, and no candidate but the one named. ``calibration``: the one that decided."""
    if level not in DISCLOSURES:
        raise ValueError(f"disclosure {level!r}: choose one of {', '.join(DISCLOSURES)}")
    if level == "scores":
        return result
    shown = _without_scores(result, level, calibration)
    if "candidates" in result:
        candidates = result["candidates"]
        if level == "decisions":
            candidates = [
                c for c in candidates if result["person_id"] is not None and c["person_id"] == result["person_id"]
            ]
        shown["candidates"] = [_without_scores(c, level, calibration) for c in candidates]
    return shown


def _without_scores(result: dict[str, Any], level: Disclosure, calibration: Calibration) -> dict[str, Any]:
    shown = {key: value for key, value in result.items() if key not in SCORE_KEYS}
    if level == "bands" and result.get("similarity") is not None:
        shown["band"] = score_band(result["similarity"], calibration)
    return shown


def parse_calibration(text: str, origin: str) -> Calibration:
    """A calibration from its JSON text; ``origin`` (a file or gallery) names it in errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{origin}: calibration is not valid JSON ({exc})") from None
    try:
        return Calibration.from_dict(data)
    except ModelError as exc:
        raise ModelError(f"{origin}: {exc}") from None


@functools.cache
def load_calibration(model_id: str) -> Calibration:
    """The calibration shipped for ``model_id``."""
    try:
        text = resources.files("faceprint.data").joinpath(f"calibration-{model_id}.json").read_text()
    except FileNotFoundError:
        raise ModelError(f"no calibration shipped for model {model_id!r}") from None
    return parse_calibration(text, f"calibration-{model_id}.json")


def similarity(a: Template, b: Template) -> float:
    """Cosine similarity of two templates of the same model."""
    check_same_model(a.model_id, b.model_id)
    return float(np.dot(a.vector, b.vector))


def distance_from_similarity(similarity: float) -> float:
    """Euclidean distance between unit vectors with the given cosine similarity."""
    return math.sqrt(max(2.0 - 2.0 * similarity, 0.0))


def check_same_model(a: str, b: str) -> None:
    if a != b:
        raise ModelError(f"cannot compare templates of different models ({a!r} vs {b!r}); re-embed one side")


@dataclass(frozen=True)
class OperatingPoint:
    """A calibration and the false-match rate it decides at: what every decision is made with."""

    calibration: Calibration
    fmr: float
    #: Similarity from which two faces match at ``fmr``.
    threshold: float

    def decide(self, similarity: float) -> Decision:
        """``match``, ``uncertain`` or ``no_match`` (see ``Calibration.decide``)."""
        return self.calibration.decide(similarity, self.fmr)

    def estimated_fmr(self, similarity: float) -> float:
        return self.calibration.estimated_fmr(similarity)


def operating_point(model_id: str, *, fmr: float | None = None, stored: Calibration | None = None) -> OperatingPoint:
    """The one decision rule: the calibration ``stored`` in a gallery (``faceprint calibrate``), else the one
    shipped for ``model_id``; decided at ``fmr`` if given, else at the calibration's own operating FMR, else
    at ``DEFAULT_FMR``. An FMR outside the calibrated range raises ``UnsupportedFMRError`` naming the range.

    >>> point = operating_point("dlib-resnet-v1")
    >>> point.fmr, round(point.threshold, 4)
    (0.001, 0.9256)
    """
    calibration = stored or load_calibration(model_id)
    check_same_model(model_id, calibration.model_id)
    if fmr is None:
        fmr = calibration.operating_fmr if calibration.operating_fmr is not None else DEFAULT_FMR
    return OperatingPoint(calibration, fmr, calibration.threshold(fmr))


def compare(
    a: Template, b: Template, *, fmr: float | None = None, calibration: Calibration | None = None
) -> Verification:
    """Verify two templates at the operating point given by ``fmr`` and ``calibration`` (see ``operating_point``)."""
    score = similarity(a, b)
    point = operating_point(a.model_id, fmr=fmr, stored=calibration)
    return Verification(
        distance=distance_from_similarity(score),
        similarity=score,
        match=score >= point.threshold,
        threshold=point.threshold,
        fmr=point.fmr,
        estimated_fmr=point.estimated_fmr(score),
        decision=point.decide(score),
    )


# --- 1:N: false-positive identification rate ------------------------------------------------


def cohort_score(ranked_scores: Sequence[float] | np.ndarray) -> float | None:
    """A search's cohort score: the mean person score of the ``COHORT`` people ranked after its best (fewer in a
    small gallery); None with no one after the best."""
    cohort = ranked_scores[1 : COHORT + 1]
    return float(np.mean(cohort)) if len(cohort) else None


def fmr_for_fpir(fpir: float, comparisons: float) -> float:
    """Per-comparison FMR at which ``comparisons`` independent impostor comparisons give ``fpir``:
    solves FPIR = 1 - (1 - FMR)^n."""
    return -math.expm1(math.log1p(-fpir) / max(comparisons, 1.0))


def fpir_for_fmr(fmr: float, comparisons: float) -> float:
    """FPIR of a search making ``comparisons`` independent comparisons at per-comparison ``fmr``."""
    return -math.expm1(max(comparisons, 1.0) * math.log1p(-min(fmr, 1.0 - 1e-12)))


def _check_fpir(fpir: float) -> None:
    if not 0.0 < fpir < 1.0:
        raise UnsupportedFMRError(f"FPIR {fpir:g} is not a rate: choose one between 0 and 1 (e.g. 0.01)")


@dataclass(frozen=True)
class GalleryTail:
    """Best-impostor person scores measured on a gallery itself, at the size it had then.

    Each sampled person's templates are searched against everyone else (leave-one-person-out, through
    the gallery's own index and person-level scores): the best score of each search is what a stranger's
    search meets at this size and in this population. ``fpirs``/``thresholds`` tabulate that distribution
    (points resting on at least ``MIN_FALSE_POSITIVES`` searches); ``comparisons_per_template`` is the fit of
    the shipped per-comparison tail to it: a search of T templates behaves like ``T * comparisons_per_template``
    independent comparisons (below 1 where a person's templates, or similar-looking people, overlap).

    ``cohort_mean`` is the mean of the searches' cohort scores (``cohort_score``), ``cohort_thresholds`` the same
    table of their best scores moved by it (``IdentificationPoint.offset``) as ``identify`` moves them: both None
    in a measurement made before faceprint used cohorts, or with no one to make one.
    """

    model_id: str
    people: int
    templates: int
    searches: int
    fpirs: tuple[float, ...]
    thresholds: tuple[float, ...]
    comparisons_per_template: float | None
    seconds: float
    cohort_mean: float | None = None
    cohort_thresholds: tuple[float, ...] | None = None

    @classmethod
    def from_scores(
        cls,
        best: np.ndarray,
        *,
        calibration: Calibration,
        people: int,
        templates: int,
        seconds: float,
        cohorts: np.ndarray | None = None,
    ) -> GalleryTail:
        """From the best impostor score of each leave-one-person-out search, and its cohort score (NaN: none)."""
        best = np.asarray(best, np.float64)
        fpirs = tuple(f for f in MEASURED_FPIRS if MIN_FALSE_POSITIVES <= int(f * len(best)) < len(best))
        thresholds = _points(best, fpirs)
        cohorts = None if cohorts is None else np.asarray(cohorts, np.float64)
        cohort_mean, cohort_thresholds = None, None
        if cohorts is not None and np.isfinite(cohorts).any():
            cohort_mean = round(float(np.nanmean(cohorts)), 6)
            cohort_thresholds = _points(best + np.where(np.isfinite(cohorts), cohort_mean - cohorts, 0.0), fpirs)
        return cls(
            calibration.model_id,
            people,
            templates,
            len(best),
            fpirs,
            thresholds,
            _fit_comparisons(fpirs, thresholds, calibration, templates),
            round(seconds, 3),
            cohort_mean,
            cohort_thresholds,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GalleryTail:
        try:
            moved = [p.get("cohort_threshold") for p in data["points"]]
            return cls(
                data["model_id"],
                int(data["people"]),
                int(data["templates"]),
                int(data["searches"]),
                tuple(float(p["fpir"]) for p in data["points"]),
                tuple(float(p["threshold"]) for p in data["points"]),
                data["comparisons_per_template"],
                float(data["seconds"]),
                data.get("cohort_mean"),
                tuple(float(t) for t in moved) if moved and None not in moved else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed gallery calibration ({type(exc).__name__}: {exc})") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "people": self.people,
            "templates": self.templates,
            "searches": self.searches,
            "points": [
                {"fpir": f, "threshold": t, **({"cohort_threshold": c} if c is not None else {})}
                for f, t, c in zip(self.fpirs, self.thresholds, self.cohort_thresholds or [None] * len(self.fpirs))
            ],
            "comparisons_per_template": self.comparisons_per_template,
            "seconds": self.seconds,
            "cohort_mean": self.cohort_mean,
        }

    def fresh(self, templates: int) -> bool:
        """Was this measured at (about) ``templates``: within ``STALE_AFTER`` of it?"""
        return abs(templates - self.templates) <= STALE_AFTER * self.templates

    def threshold(self, fpir: float, templates: int, *, moved: bool = False) -> float | None:
        """The measured threshold for ``fpir`` at ``templates`` (the table's FPIR moved to the measured size as
        for independent comparisons: a small step, since it is fresh); None outside the measured range. ``moved``:
        from ``cohort_thresholds`` (None without them), and above the table's loosest FPIR its loosest threshold."""
        table = self.cohort_thresholds if moved else self.thresholds
        at_measured = fpir_for_fmr(fmr_for_fpir(fpir, templates), self.templates)
        if moved and self.fpirs:
            at_measured = min(at_measured, self.fpirs[0])
        if table is None or not self.fpirs or not self.fpirs[-1] <= at_measured <= self.fpirs[0]:
            return None
        return float(np.interp(-math.log10(at_measured), [-math.log10(f) for f in self.fpirs], table))

    def comparisons_beyond(self, fpir: float, calibration: Calibration) -> float | None:
        """Effective comparisons per template for an ``fpir`` (at the measured size) below the table's deepest point:
        the points' fits (``_point_fits``) continued along their trend, a straight line in log n against log FPIR
        (least squares), never below the deepest point's own fit, and held from where it reaches ``calibration``'s
        floor (below it, the shipped tail's extrapolation errs strict by itself: ``Calibration.tail_slope``). None
        within or above the table, or without fits.

        A person's score is their centroid's (``Gallery.rank_people``): with several photos a person, its impostor
        tail is heavier than the per-comparison one of single templates that ``calibration`` tabulates, so the n
        that makes the shipped tail fit the gallery grows toward the tail (faces-dev, 600 templates, 3 photos: 0.7
        at FPIR 0.3, 1.1 at 0.1, 2 at 0.03), and one n for all points (``comparisons_per_template``) understates
        the FPIR beyond the table 2-3-fold there (BENCHMARKS.md, "Honest at small galleries"). With one template a
        person the shipped tail describes each person's score itself, so one n fits every FPIR: the mean fit
        (``comparisons_per_template``) decides, since a trend through a few noisy points only adds their noise
        (600 templates: the sd of 17 galleries' thresholds for 1e-2 falls from 0.0044 to 0.0017, and their misses
        from 30 to 21; BENCHMARKS.md, "one template a person — the mean fit beyond the gallery's table")."""
        if not self.fpirs or fpir >= self.fpirs[-1]:
            return None
        if self.templates <= self.people:
            return self.comparisons_per_template
        fits = _point_fits(self.fpirs, self.thresholds, calibration, self.templates)
        if not fits:
            return None
        deepest = fits[-1][1]
        log_fpirs, log_fits = np.log([f for f, _ in fits]), np.log([n for _, n in fits])
        slope, intercept = np.polyfit(log_fpirs, log_fits, 1) if len(fits) > 1 else (0.0, float(log_fits[0]))

        def trend(at: float) -> float:
            return max(float(math.exp(intercept + slope * math.log(at))), deepest)

        # The FPIR at which the trend's comparisons reach the table's floor FMR: FPIR(n(f)) - f falls as f rises.
        low, high = math.log(1e-12), math.log(self.fpirs[-1])
        for _ in range(50):
            middle = (low + high) / 2
            reached = fpir_for_fmr(calibration.fmrs[-1], trend(math.exp(middle)) * self.templates)
            low, high = (middle, high) if reached > math.exp(middle) else (low, middle)
        return trend(max(fpir, math.exp(high)))


def _points(best: np.ndarray, fpirs: Sequence[float]) -> tuple[float, ...]:
    """The score a share ``fpir`` of searches pass, for each of ``fpirs``: midway between the k-th and (k+1)-th best."""
    ordered = np.sort(best)[::-1]
    return tuple(round(float((ordered[int(f * len(best)) - 1] + ordered[int(f * len(best))]) / 2), 6) for f in fpirs)


def _point_fits(
    fpirs: Sequence[float], thresholds: Sequence[float], calibration: Calibration, templates: int
) -> list[tuple[float, float]]:
    """``(fpir, n)`` for each measured point inside the shipped table's range: the effective independent comparisons
    per template n that make 1 - (1 - FMR(t))^(n T) equal the measured FPIR at its threshold t."""
    low, high = calibration.thresholds[0], calibration.thresholds[-1]
    return [
        (fpir, math.log1p(-fpir) / math.log1p(-calibration.estimated_fmr(t)) / max(templates, 1))
        for fpir, t in zip(fpirs, thresholds)
        if low < t < high  # at an end of the table the FMR is censored, not measured
    ]


def _fit_comparisons(
    fpirs: Sequence[float], thresholds: Sequence[float], calibration: Calibration, templates: int
) -> float | None:
    """Effective independent comparisons per template: the geometric mean of the points' fits (None if none)."""
    fits = [n for _, n in _point_fits(fpirs, thresholds, calibration, templates)]
    return float(math.exp(np.mean(np.log(fits)))) if fits else None


@dataclass(frozen=True)
class IdentificationPoint:
    """What a 1:N search decides with: a target FPIR at the gallery's size, and the thresholds it implies.

    Thresholds apply to a candidate's score: its similarity plus its search's ``offset``. Where the gallery's fresh
    measurement tabulates cohort-moved scores through the whole band (``FPIR x 10`` to ``FPIR / 10``: at 1e-2, from
    10,000 searches), the point decides on them (``by_cohort``); elsewhere the offset is 0 and what follows decides
    on similarities, the scale of the shipped tail.

    A search of a gallery of T templates (person score = best over their templates) names a stranger
    when the best of T impostor scores passes the threshold. Assuming the comparisons independent,
    FPIR(t) = 1 - (1 - FMR(t))^n with n = T, FMR(t) read from the per-comparison impostor tail (the
    calibration). Comparisons are not independent (a person's templates, look-alikes), so where the gallery
    measured itself (``GalleryTail``, fresh) its measured thresholds decide, and beyond their range the tail
    with the fitted n (past the table's deep end, the fits' trend continued, or their mean with one template a
    person: ``comparisons_for``); otherwise
    n = T x max(1, the last fitted factor): the independence bound, never looser than what was measured. Below
    the table's lowest FMR the tail is extrapolated (``Calibration.tail_threshold``: exponential, up to
    ``EXTRAPOLATED_DECADES``), so that this bound decides at every size up to 1M templates; ``extrapolated`` says
    when it does. A target beyond even that is unsupported (``threshold`` None,
    ``unsupported`` says why): no name is given.
    """

    calibration: Calibration
    fpir: float
    templates: int
    #: Effective independent comparisons per search.
    comparisons: float
    #: The gallery's own measurement, when fresh (it decides where it reaches).
    measured: GalleryTail | None
    basis: str

    @functools.cached_property
    def by_cohort(self) -> bool:
        """Does this point decide on cohort-moved scores: does the gallery's fresh measurement tabulate them down to
        ``fpir / UNCERTAIN_FACTOR`` (they need no table above its loosest point: that one stands in, stricter)?"""
        if self.measured is None:
            return False
        return self.measured.threshold(self.fpir / UNCERTAIN_FACTOR, self.templates, moved=True) is not None

    def offset(self, cohort: float | None) -> float:
        """What a search with cohort score ``cohort`` (``cohort_score``) adds to its candidates' similarities to make
        the scores this point decides on: the gallery's measured mean cohort score minus it. A probe that scores high
        on everyone is discounted, one unlike anyone enrolled is credited. 0 where the point does not decide
        ``by_cohort``, or for a search with no one after its best."""
        if not self.by_cohort or cohort is None:
            return 0.0
        assert self.measured is not None and self.measured.cohort_mean is not None
        return self.measured.cohort_mean - cohort

    def offsets(self, cohorts: np.ndarray) -> np.ndarray:
        """``offset`` of each of many searches' cohort scores (NaN: a search with no one after its best)."""
        return np.array([self.offset(None if np.isnan(c) else float(c)) for c in cohorts], np.float64)

    def threshold_for(self, fpir: float) -> float | None:
        """Score a best candidate must reach for ``fpir`` at this size; None where unsupported (deciding
        ``by_cohort``: beyond the measured table's strict end)."""
        if self.by_cohort:
            assert self.measured is not None
            return self.measured.threshold(fpir, self.templates, moved=True)
        if self.measured is not None:
            measured = self.measured.threshold(fpir, self.templates)
            if measured is not None:
                return measured
        return self.calibration.tail_threshold(fmr_for_fpir(fpir, self.comparisons_for(fpir)))

    def comparisons_for(self, fpir: float) -> float:
        """Effective independent comparisons of a search, for ``fpir``: beyond the deep end of the gallery's own
        table, its fits' trend continued (``GalleryTail.comparisons_beyond``); elsewhere ``comparisons``."""
        if self.measured is None:
            return self.comparisons
        at_measured = fpir_for_fmr(fmr_for_fpir(fpir, self.templates), self.measured.templates)
        per_template = self.measured.comparisons_beyond(at_measured, self.calibration)
        return self.comparisons if per_template is None else self.templates * per_template

    @property
    def extrapolated(self) -> bool:
        """Is ``threshold`` read from the tail extrapolated below its lowest FMR (``Calibration.tail_threshold``)?"""
        if self.threshold is None or self.by_cohort:
            return False
        if self.measured is not None and self.measured.threshold(self.fpir, self.templates) is not None:
            return False
        return fmr_for_fpir(self.fpir, self.comparisons_for(self.fpir)) < self.calibration.fmrs[-1]

    @functools.cached_property
    def threshold(self) -> float | None:
        return self.threshold_for(self.fpir)

    @functools.cached_property
    def band(self) -> tuple[float, float] | None:
        """Thresholds at FPIR x 10 and FPIR / 10 (the strict one at the strictest supported end if beyond)."""
        if self.threshold is None:
            return None
        low = self.threshold_for(min(self.fpir * UNCERTAIN_FACTOR, 0.5)) or self.threshold
        high = self.threshold_for(self.fpir / UNCERTAIN_FACTOR)
        if high is None:
            ends = [self.calibration.thresholds[-1], *(self.measured.thresholds[-1:] if self.measured else ())]
            high = max(ends)
        return min(low, self.threshold), max(high, self.threshold)

    @property
    def unsupported(self) -> str | None:
        """Why ``fpir`` cannot be promised at this size (None if it can)."""
        if self.threshold is not None:
            return None
        fmr = fmr_for_fpir(self.fpir, self.comparisons_for(self.fpir))
        floor = self.calibration.fmrs[-1]
        reach = (
            f"the {floor / 10**EXTRAPOLATED_DECADES:g} its tail is extrapolated to"
            if self.calibration.tail_slope is not None
            else "too shallow a table to extrapolate"
        )
        return (
            f"target FPIR {self.fpir:g} unsupported at this gallery size ({self.templates:,} templates): it needs "
            f"a per-comparison FMR of {fmr:.1e}, below the {floor:g} calibrated for {self.calibration.model_id} "
            f"({reach}); choose a higher FPIR, or measure the gallery (faceprint calibrate --gallery)"
        )

    def decide(self, similarity: float) -> Decision:
        """``match`` from the FPIR/10 threshold, ``no_match`` below the FPIR x 10 one, ``uncertain`` between
        (and always when the target is unsupported: no decision can keep the promise)."""
        if self.band is None:
            return "uncertain"
        low, high = self.band
        if similarity >= high:
            return "match"
        return "no_match" if similarity < low else "uncertain"

    def estimated_fmr(self, similarity: float) -> float:
        return self.calibration.estimated_fmr(similarity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fpir": self.fpir,
            "threshold": self.threshold,
            "templates": self.templates,
            "comparisons": round(self.comparisons_for(self.fpir), 1),
            "basis": self.basis,
            "extrapolated": self.extrapolated,
            "unsupported": self.unsupported,
            "cohort_mean": self.measured.cohort_mean if self.by_cohort and self.measured is not None else None,
        }


def identification_point(
    model_id: str,
    *,
    templates: int,
    fpir: float | None = None,
    stored: Calibration | None = None,
    measured: GalleryTail | None = None,
) -> IdentificationPoint:
    """The 1:N decision rule for a gallery of ``templates`` templates, at ``fpir`` (default ``DEFAULT_FPIR``):
    per-comparison tail from ``stored`` (a gallery's ``faceprint calibrate``) else the shipped one, corrected
    by ``measured`` (the gallery's own leave-one-person-out tail; see ``IdentificationPoint``).

    >>> point = identification_point("dlib-resnet-v1", templates=100)
    >>> point.fpir, round(point.threshold, 4), point.basis
    (0.01, 0.9371, 'shipped tail at 100 templates, independent comparisons (no measurement of this gallery)')
    """
    fpir = DEFAULT_FPIR if fpir is None else fpir
    _check_fpir(fpir)
    calibration = stored or load_calibration(model_id)
    check_same_model(model_id, calibration.model_id)
    templates = max(templates, 1)
    factor = measured.comparisons_per_template if measured is not None else None
    if measured is not None and measured.fresh(templates):
        check_same_model(model_id, measured.model_id)
        per_template = factor if factor is not None else 1.0
        basis = f"measured on this gallery at {measured.templates:,} templates ({measured.searches:,} searches)"
        point = IdentificationPoint(calibration, fpir, templates, templates * per_template, measured, basis)
        return dataclasses.replace(point, basis=f"{basis}, scores moved by their cohort") if point.by_cohort else point
    if measured is not None:
        basis = f"shipped tail at {templates:,} templates, bound (measured at {measured.templates:,} templates: stale)"
    else:
        basis = f"shipped tail at {templates:,} templates, independent comparisons (no measurement of this gallery)"
    return IdentificationPoint(calibration, fpir, templates, templates * max(factor or 1.0, 1.0), None, basis)
