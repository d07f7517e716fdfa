"""Evaluation end to end on real photos: pairs files, reports, the embedding cache, 1:N splits, and
calibration changing real decisions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import faceprint
from faceprint import Gallery
from faceprint.cli import app
from faceprint.errors import DatasetError
from faceprint.evaluation import read_pairs, split_folder, split_from_csv
from faceprint.evaluation.calibration import ScoredPairs, calibration_document
from faceprint.evaluation.fairness import MIXED, UNLABELLED, pair_groups, read_labels
from faceprint.match import fmr_for_fpir
from faceprint.pipeline import ImageResult

from .conftest import ALEX, HIRES, KIT, LIN

runner = CliRunner()


def run(*args: object, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    return result.output


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private embedding cache for this module (never the user's)."""
    home = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(home))
        patch.delenv("FACEPRINT_DB", raising=False)
        yield home


@pytest.fixture(scope="module")
def first_eval(cache_home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """`faceprint eval` on the committed faces-hires pairs, embedding every image (cache empty)."""
    out = tmp_path_factory.mktemp("report")
    summary = json.loads(run("eval", HIRES / "pairs.csv", "--out", out, "--workers", 1, "--resamples", 100, "--json"))
    return summary, out


@pytest.mark.slow
def test_eval_on_real_pairs_writes_every_number_and_plot(first_eval: tuple[dict, Path]) -> None:
    summary, out = first_eval
    assert summary["pairs"] == {"total": 105, "genuine": 22, "impostor": 83, "without_face": 0}
    assert summary["timing"]["images_cached"] == 0
    # These high-resolution photos of 5 people separate perfectly.
    assert summary["accuracy"]["mean"] == 1.0 and summary["auc"]["value"] == 1.0 and summary["eer"]["value"] == 0.0
    tar = {p["fmr"]: p for p in summary["tar_at_fmr"]}
    assert tar[0.1]["support"] == "low" and "8 impostor pair(s)" in tar[0.1]["note"]
    assert "value" not in tar[1e-3] and "needs at least 1,000" in tar[1e-3]["note"]
    assert set(summary["groups"]) == {
        "face size (px, smaller face)",
        "sharpness (blurrier face)",
        "head turn (|yaw|, more turned face)",
    }
    for name in ("roc.png", "det.png", "scores.png", "report.html"):
        assert (out / name).stat().st_size > 1000
    assert json.loads((out / "report.json").read_text())["auc"] == summary["auc"]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "tar_at_fmr" in page


@pytest.mark.slow
def test_rerun_reads_the_cache_and_prints_the_figures(first_eval: tuple[dict, Path], tmp_path: Path) -> None:
    output = run("eval", HIRES / "pairs.csv", "--out", tmp_path, "--resamples", 100)
    assert "accuracy (10-fold)  100.00% ± 0.00%" in output
    assert "15 of 15 images cached" in output and "EER" in output and "TAR @ FMR 0.1" in output


@pytest.mark.slow
def test_lfw_pairs_txt_and_groups(first_eval: tuple[dict, Path], tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    # LFW format: "sets pairs-per-set", then same pairs (name i j) and different pairs (name i name j).
    pairs.write_text(
        "1 2\nKit_Harington 1 2\nBarack_Obama 1 3\nKit_Harington 1 Alex_Lacamoire 1\nRose_Leslie 2 Barack_Obama 4\n"
    )
    parsed = read_pairs(pairs, HIRES)
    assert parsed.same.tolist() == [True, True, False, False]
    assert parsed.path_b[2] == HIRES / "Alex_Lacamoire" / "Alex_Lacamoire_0001.png"  # .png when no .jpg
    labels = tmp_path / "labels.csv"
    labels.write_text("identity,band\nKit_Harington,A\nAlex_Lacamoire,A\nBarack_Obama,B\nRose_Leslie,B\n")
    summary = json.loads(
        run("eval", pairs, "--images", HIRES, "--groups", labels, "--out", tmp_path / "r", "--resamples", 0, "--json")
    )
    assert summary["pairs"]["total"] == 4 and summary["accuracy"]["mean"] == 1.0
    band = {row["group"]: row for row in summary["groups"]["band"]["groups"]}
    assert (band["A"]["genuine_pairs"], band["A"]["impostor_pairs"]) == (1, 1)
    assert (band["B"]["genuine_pairs"], band["B"]["impostor_pairs"]) == (1, 1)


def test_bad_pairs_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("path_a,path_b,same\na.jpg,b.jpg,maybe\n")
    with pytest.raises(DatasetError, match=r"bad\.csv.*'same' must be 1 or 0"):
        read_pairs(bad)
    bad.write_text("left,right\na.jpg,b.jpg\n")
    assert "missing column(s) path_a, path_b, same" in run("eval", bad, code=3)
    one_sided = tmp_path / "one.csv"
    one_sided.write_text("path_a,path_b,same\na.jpg,b.jpg,1\n")
    assert "both same-person and different-person" in run("eval", one_sided, code=3)
    assert "no such pairs file" in run("eval", tmp_path / "missing.csv", code=3)
    ghosts = tmp_path / "ghosts.csv"
    ghosts.write_text("path_a,path_b,same\na.jpg,b.jpg,1\na.jpg,c.jpg,0\n")
    message = run("eval", ghosts, "--no-cache", code=3)
    assert "no pair has a face on both sides" in message and "a.jpg: cannot read file" in message


def test_folder_split_is_seeded_and_withholds_identities(people_dir: Path) -> None:
    split = split_folder(people_dir, withhold=0.4, seed=3)
    assert split == split_folder(people_dir, withhold=0.4, seed=3)
    assert len(split.withheld) == 2
    assert not split.withheld & {name for _, name in split.gallery}
    assert len(split.gallery) == 3 and len({name for _, name in split.gallery}) == 3


@pytest.mark.slow
def test_identification_eval_on_a_folder(first_eval: tuple[dict, Path], people_dir: Path, tmp_path: Path) -> None:
    summary = json.loads(
        run("eval", people_dir, "--withhold", 0.4, "--seed", 3, "--out", tmp_path, "--json", "--workers", 1)
    )
    assert summary["kind"] == "identification" and summary["timing"]["images_cached"] == 15
    probes = summary["probes"]
    assert summary["gallery"]["identities"] == 3 and probes["mated"] + probes["non_mated"] == 12
    assert summary["rank1"] == 1.0 and summary["cmc"][-1] == 1.0
    # Too few non-mated searches for FPIR 0.1: said so rather than measured.
    assert "needs at least 10" in summary["open_set"][0]["note"]
    assert summary["operating_point"]["fnir"] == 0.0 and summary["operating_point"]["fpir"] == 0.0
    assert (tmp_path / "cmc.png").stat().st_size > 1000
    # The identification DET curve: a point at each non-mated top score, FPIR rising as FNIR falls.
    det = summary["det"]
    assert len(det["fpir"]) == len(det["fnir"]) == len(det["threshold"]) >= 1
    assert det["fpir"] == sorted(det["fpir"]) and det["fnir"] == sorted(det["fnir"], reverse=True)
    assert det["fpir"][-1] == 1.0 and (tmp_path / "det.png").stat().st_size > 1000


def template_scores(results: dict[str, ImageResult]) -> tuple[np.ndarray, np.ndarray]:
    """Similarities of the committed faces-hires pairs from the session's pipeline results."""
    pairs = read_pairs(HIRES / "pairs.csv")
    vector = {path: results[str(path.relative_to(HIRES))].faces[0].template.vector for path in pairs.images()}
    scores = np.array([vector[a] @ vector[b] for a, b in zip(pairs.path_a, pairs.path_b)], dtype=np.float64)
    return scores[~pairs.same], scores[pairs.same]


@pytest.mark.slow
def test_calibration_moves_decisions_and_estimated_fmr(tmp_path: Path, hires_results: dict[str, ImageResult]) -> None:
    rel = lambda p: str(p.relative_to(HIRES))  # noqa: E731
    with Gallery(tmp_path / "g.db") as gallery:
        gallery.enroll_results("Alex Lacamoire", [hires_results[rel(ALEX[1])]])
        shipped = gallery.calibration()
        (before,) = gallery.identify_faces(hires_results[rel(LIN[0])].faces)
        # Lin-Manuel Miranda is the default model's closest impostor of these photos to Alex Lacamoire, but
        # below the shipped tail's threshold at FPIR 1e-2 for one template (FMR 1e-2): within the band at most.
        assert before.name == "unknown" and before.match is None and before.decision != "match"
        assert before.threshold == pytest.approx(shipped.threshold(fmr_for_fpir(0.01, 1)))
        impostors, genuines = template_scores(hires_results)
        document = calibration_document(
            ScoredPairs(impostors),
            ScoredPairs(genuines),
            model_id=gallery.model_id,
            source="faces-hires pairs",
            pipeline="default",
            operating_fmr=0.1,
            min_false_matches=2,
        )
        assert [p["fmr"] for p in document["points"]] == [0.1, 0.03]  # 83 impostor pairs: no lower FMR
        gallery.set_calibration(document)

    # Another process opening the gallery decides by the stored calibration and its operating FMR.
    with Gallery(tmp_path / "g.db") as gallery:
        calibration = gallery.calibration()
        assert calibration.source == "faces-hires pairs" and calibration.operating_fmr == 0.1
        (after,) = gallery.identify_faces(hires_results[rel(LIN[0])].faces, fpir=0.1)
        best = after.candidates[0]
        assert best.name == "Alex Lacamoire"
        # One template: FPIR 0.1 needs a per-comparison FMR of 0.1.
        assert after.threshold == pytest.approx(calibration.threshold(fmr_for_fpir(0.1, 1)))
        # At FPIR 0.1 on these pairs Lin is taken for Alex, but only inside the uncertain band,
        # between the thresholds at FPIR 0.1 x 10 (clamped to FMR 0.1) and 0.1 / 10 (clamped to FMR 0.03).
        low, high = calibration.band(0.1)
        assert low <= best.similarity < high
        assert after.name == "Alex Lacamoire" and after.decision == "uncertain"
        # The estimated FMR is read from the new table: it agrees with the share of these impostor
        # pairs scoring as high, and no longer with the shipped table.
        share = np.mean(impostors >= best.similarity)
        assert best.estimated_fmr == pytest.approx(calibration.estimated_fmr(best.similarity))
        assert share / 2 < best.estimated_fmr < share * 2
        assert best.estimated_fmr != pytest.approx(shipped.estimated_fmr(best.similarity), rel=0.2)
        # A stricter operating point than this table can promise (two templates: FMR 0.015, below its 0.03,
        # and too shallow a table to extrapolate): unknown, uncertain, and why.
        gallery.enroll_results("Kit Harington", [hires_results[rel(KIT[0])]])
        (strict,) = gallery.identify_faces(hires_results[rel(LIN[0])].faces, fpir=0.03)
        assert strict.name == "unknown" and strict.decision == "uncertain"
        assert strict.reason is not None and "unsupported" in strict.reason
        (kit,) = gallery.identify_faces(hires_results[rel(KIT[1])].faces, fpir=0.1)
        assert kit.name == "Kit Harington" and kit.decision == "match"
        verdict = faceprint.verify(LIN[0], ALEX[1], calibration=calibration)
        assert verdict.match and verdict.decision == "uncertain" and verdict.fmr == 0.1


def test_calibrate_cli_stores_the_table_and_refuses_unsupported_fmr(
    first_eval: tuple[dict, Path], tmp_path: Path
) -> None:
    db, out = tmp_path / "g.db", tmp_path / "cal.json"
    message = run("calibrate", HIRES / "pairs.csv", "--db", db, code=3)
    assert "83 impostor pairs measure no FMR of the grid; FMR 0.001 needs about 10,000" in message
    document = json.loads(
        run(
            "calibrate", HIRES / "pairs.csv", "--fmr", 0.1, "--min-false-matches", 2, "--db", db, "--out", out, "--json"
        )
    )
    assert document["stored_in"] == str(db) and json.loads(out.read_text())["points"] == document["points"]
    # Lin-Manuel Miranda and Alex Lacamoire: the closest impostor pair of these photos for the default model
    # (its similarity lies between the stored table's thresholds at FMR 0.1 and 0.03).
    verdict = json.loads(run("verify", LIN[0], ALEX[1], "--db", db, "--json"))
    assert verdict["decision"] == "uncertain" and verdict["operating_fmr"] == 0.1
    Gallery(tmp_path / "uncalibrated.db").close()
    shipped = json.loads(run("verify", LIN[0], ALEX[1], "--db", tmp_path / "uncalibrated.db", "--json", code=1))
    assert shipped["decision"] == "no_match" and shipped["operating_fmr"] == 1e-3
    run("enroll", "Alex Lacamoire", ALEX[1], "--db", db, "--json")
    (face,) = json.loads(run("identify", LIN[0], "--db", db, "--fpir", 0.1, "--json"))[0]["faces"]
    assert face["name"] == "Alex Lacamoire" and face["decision"] == "uncertain"
    assert face["candidates"][0]["decision"] == "uncertain"
    # The stored table stops at FMR 0.03 (too shallow to extrapolate): the default FPIR 1e-2 cannot be
    # promised, and no name is given.
    (face,) = json.loads(run("identify", LIN[0], "--db", db, "--json", code=1))[0]["faces"]
    assert face["name"] == "unknown" and face["decision"] == "uncertain" and face["threshold"] is None
    assert "target FPIR 0.01 unsupported" in face["reason"]


def test_csv_split_withholds_gallery_identities_as_non_mated_probes(tmp_path: Path) -> None:
    gallery, probes = tmp_path / "gallery.csv", tmp_path / "probes.csv"
    names = [f"p{i}" for i in range(10)]
    gallery.write_text("path,identity\n" + "".join(f"{n}/0.jpg,{n}\n" for n in names))
    probes.write_text("path,identity\n" + "".join(f"{n}/{k}.jpg,{n}\n" for n in names for k in range(1, 13)))
    split = split_from_csv(gallery, probes, withhold=0.3, seed=5)
    assert len(split.withheld) == 3 and len(split.gallery) == 7
    enrolled = {name for _, name in split.gallery}
    non_mated = [path for path, name in split.probes if name not in enrolled]
    # Up to 10 searches per withheld identity, its former gallery photo among the candidates.
    assert len(non_mated) == 30 and not enrolled & split.withheld
    assert len(split.probes) == 7 * 12 + 30
    assert split_from_csv(gallery, probes, withhold=0.0, seed=5).gallery == [
        (tmp_path / f"{n}/0.jpg", n) for n in names
    ]


def test_labels_by_path_group_pairs(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    labels = tmp_path / "labels.csv"
    labels.write_text("path,light\nimgs/a.jpg,dark\nimgs/b.jpg,dark\nimgs/c.jpg,bright\n")
    parsed = read_labels(labels)
    a, b, c, d = (tmp_path / "imgs" / f"{x}.jpg" for x in "abcd")
    assert pair_groups(parsed, "light", [a, a, c], [b, c, d]).tolist() == ["dark", MIXED, MIXED]
    assert parsed.of(d, "light") == UNLABELLED
    labels.write_text("name,light\nx,dark\n")
    with pytest.raises(DatasetError, match="needs an 'identity' or a 'path' column"):
        read_labels(labels)
