"""Disclosure levels: a result shows every score, only the calibration band of each, or the decision alone."""

import json

import pytest

from faceprint.match import disclose, least_detailed, load_calibration, score_band
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.types import Candidate, TemplateIdentification, Verification

CALIBRATION = load_calibration(DEFAULT_OPTIONS.model.model_id)


def _verification(similarity: float) -> Verification:
    fmr = CALIBRATION.fmrs[len(CALIBRATION.fmrs) // 2]
    return Verification(
        distance=(2 - 2 * similarity) ** 0.5,
        similarity=similarity,
        match=similarity >= CALIBRATION.threshold(fmr),
        threshold=CALIBRATION.threshold(fmr),
        fmr=fmr,
        estimated_fmr=CALIBRATION.estimated_fmr(similarity),
        decision=CALIBRATION.decide(similarity, fmr),
    )


def _identification() -> TemplateIdentification:
    high, low = CALIBRATION.thresholds[-1] + 0.01, CALIBRATION.thresholds[0] - 0.01
    named = Candidate(1, "Ann", high, CALIBRATION.estimated_fmr(high), "match")
    other = Candidate(2, "Bob", low, CALIBRATION.estimated_fmr(low), "no_match")
    return TemplateIdentification((named, other), named, CALIBRATION.thresholds[-1], "match", 1e-2)


def _numbers(document: object) -> list[float]:
    """Every float anywhere in ``document``."""
    if isinstance(document, dict):
        return [n for value in document.values() for n in _numbers(value)]
    if isinstance(document, list):
        return [n for value in document for n in _numbers(value)]
    return [document] if isinstance(document, float) else []


def test_bands_are_the_strictest_fmr_of_the_table_passed():
    for fmr, threshold in zip(CALIBRATION.fmrs, CALIBRATION.thresholds):
        assert score_band(threshold, CALIBRATION) == f"fmr<={fmr:g}"
    assert score_band(CALIBRATION.thresholds[0] - 0.01, CALIBRATION) == f"fmr>{CALIBRATION.fmrs[0]:g}"


def test_scores_level_shows_the_result_unchanged():
    result = _identification().to_dict()
    assert disclose(result, "scores", CALIBRATION) == result


@pytest.mark.parametrize("result", [_verification(CALIBRATION.thresholds[1] + 1e-3), _identification()])
def test_bands_show_no_raw_score(result):
    full = result.to_dict()
    shown = disclose(full, "bands", CALIBRATION)
    scores = {full["similarity"], full.get("distance"), full.get("estimated_fmr")}
    assert not scores & set(_numbers(shown))
    assert all("similarity" not in c and "estimated_fmr" not in c for c in shown.get("candidates", []))
    assert shown["band"] == score_band(full["similarity"], CALIBRATION)
    assert shown["decision"] == full["decision"]


def test_decisions_show_no_score_and_only_the_named_candidate():
    full = _identification().to_dict()
    shown = disclose(full, "decisions", CALIBRATION)
    assert (shown["name"], shown["decision"]) == ("Ann", "match")
    assert [c["name"] for c in shown["candidates"]] == ["Ann"]
    text = json.dumps(shown)
    assert "similarity" not in text and "estimated_fmr" not in text and "band" not in text
    verification = disclose(_verification(0.5).to_dict(), "decisions", CALIBRATION)
    assert not {"similarity", "distance", "estimated_fmr", "band"} & verification.keys()


def test_unknown_face_keeps_no_candidate_at_decisions_level():
    unknown = TemplateIdentification(_identification().candidates, None, 1.0, "no_match", 1e-2).to_dict()
    assert disclose(unknown, "decisions", CALIBRATION)["candidates"] == []


def test_a_request_can_only_lower_the_detail():
    assert least_detailed("bands", "scores") == "bands"
    assert least_detailed("bands", "decisions") == "decisions"


def test_an_unknown_level_is_refused():
    with pytest.raises(ValueError, match="disclosure"):
        disclose({}, "everything", CALIBRATION)  # type: ignore[arg-type]
