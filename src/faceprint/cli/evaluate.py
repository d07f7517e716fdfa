"""`faceprint eval` and `faceprint calibrate`: measure accuracy on your data, and calibrate decisions on it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from ..errors import DatasetError
from ..evaluation import EvaluationSettings, identify_split, read_pairs, split_folder, split_from_csv, verify_pairs
from ..evaluation.cache import EmbeddingCache, embed_images
from ..evaluation.calibration import ScoredPairs, all_pairs, calibration_document
from ..evaluation.evaluate import score_pairs
from ..evaluation.fairness import read_labels
from ..evaluation.metrics import MIN_ERRORS
from ..evaluation.protocols import identity_of
from ..evaluation.report import write_report
from ..gallery import Gallery, calibration_stored_at
from ..image import iter_image_files
from ..match import DEFAULT_FMR
from ..pipeline import DEFAULT_OPTIONS
from .common import (
    DbOption,
    FmrOption,
    JsonOption,
    console,
    err_console,
    handles_errors,
    print_json,
    progress_bar,
)

ImagesOption = Annotated[
    Path | None,
    typer.Option("--images", help="Folder the pairs file's image paths are relative to (default: its own)."),
]
EvalWorkersOption = Annotated[int, typer.Option("--workers", min=1, help="Worker processes for embedding.")]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the embedding cache.")]


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
    app.command()(calibrate)


@handles_errors
def evaluate(
    source: Annotated[
        Path,
        typer.Argument(
            help="Pairs file (CSV path_a,path_b,same or LFW pairs.txt), folder-per-person dataset, "
            "or gallery CSV (path,identity) with --probes.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Report folder (HTML, PNG plots, JSON).")] = Path("eval-report"),
    groups: Annotated[
        Path | None, typer.Option("--groups", help="Labels CSV (identity or path column + label columns).")
    ] = None,
    probes: Annotated[Path | None, typer.Option("--probes", help="Probe CSV (path,identity): 1:N mode.")] = None,
    withhold: Annotated[
        float, typer.Option("--withhold", min=0.0, max=0.9, help="1:N: share of identities kept out of the gallery.")
    ] = 0.3,
    seed: Annotated[int, typer.Option("--seed", help="1:N: seed of the split.")] = 0,
    fmr: FmrOption = None,
    images: ImagesOption = None,
    resamples: Annotated[int, typer.Option("--resamples", min=0, help="Bootstrap resamples for CIs.")] = 1000,
    workers: EvalWorkersOption = 2,
    no_cache: NoCacheOption = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Measure accuracy: verification (pairs file) or identification (folder, or gallery CSV + --probes)."""
    labels = read_labels(groups) if groups else None
    with _cache(no_cache) as cache:
        settings = EvaluationSettings(
            calibration=calibration_stored_at(db), fmr=fmr, workers=workers, cache=cache, resamples=resamples
        )
        if probes is not None or source.is_dir():
            if labels is not None:
                raise typer.BadParameter("--groups applies to verification pairs only")
            split = (
                split_from_csv(source, probes, withhold=withhold, seed=seed)
                if probes
                else split_folder(source, withhold=withhold, seed=seed)
            )
            run = _with_progress(len(split.images()), json_output, settings, lambda s: identify_split(split, s))
        else:
            pairs = read_pairs(source, images)
            run = _with_progress(len(pairs.images()), json_output, settings, lambda s: verify_pairs(pairs, s, labels))
    files = write_report(run, out)
    summary = {**run.summary, "report": {name: str(path) for name, path in files.items()}}
    if json_output:
        print_json(summary)
    elif summary["kind"] == "verification":
        _print_verification(summary)
    else:
        _print_identification(summary)


@contextmanager
def _cache(disabled: bool) -> Iterator[EmbeddingCache | None]:
    """The embedding cache, or nothing with --no-cache."""
    if disabled:
        yield None
        return
    cache = EmbeddingCache()
    try:
        yield cache
    finally:
        cache.close()


def _with_progress(total: int, json_output: bool, settings: EvaluationSettings, run: Any) -> Any:
    with progress_bar(total, "embedding", enabled=not json_output) as advance:
        return run(dataclasses.replace(settings, on_done=advance))


def _print_verification(s: dict[str, Any]) -> None:
    pairs, acc = s["pairs"], s["accuracy"]
    console.print(
        f"[bold]{pairs['total']:,} pairs[/] ({pairs['genuine']:,} same, {pairs['impostor']:,} different; "
        f"{pairs['without_face']} with an image without a face), {s['images']['total']:,} images"
    )
    console.print(f"accuracy (10-fold)  {acc['mean']:.2%} ± {acc['std']:.2%}")
    console.print(f"ROC AUC             {s['auc']['value']:.4f}{_ci(s['auc']['ci95'], '.4f')}")
    console.print(f"EER                 {s['eer']['value']:.2%}{_ci(s['eer']['ci95'], '.2%')}")
    for point in s["tar_at_fmr"]:
        _print_point(f"TAR @ FMR {point['fmr']:<9g}", point, "value")
    op = s["operating_point"]
    console.print(
        f"calibrated threshold {op['threshold']:.4f} (FMR {op['fmr']:g}): measured FMR {op['measured_fmr']:.2%} "
        f"({op['false_matches']} false matches), FNMR {op['measured_fnmr']:.2%}"
    )
    _print_groups(s["groups"])
    _print_footer(s)


def _print_point(label: str, point: dict[str, Any], key: str) -> None:
    """One operating point's rate with its interval, or a dash, and the reason it is unreliable or missing."""
    value = f"{point[key]:.2%}{_ci(point.get('ci95'), '.2%')}" if key in point else "-"
    note = f"  [yellow]{point['note']}[/]" if "note" in point else ""
    console.print(f"{label} {value}{note}")


def _ci(interval: list[float] | None, fmt: str) -> str:
    return f"  (95% CI {interval[0]:{fmt}}–{interval[1]:{fmt}})" if interval else ""


def _print_groups(groups: dict[str, Any]) -> None:
    for name, result in groups.items():
        table = Table("group", "genuine", "impostor", "FNMR", "FMR", title=name, title_justify="left")
        for row in result["groups"]:
            table.add_row(
                str(row["group"]),
                str(row["genuine_pairs"]),
                str(row["impostor_pairs"]),
                _rate(row["fnmr"], row["false_non_matches"]),
                _rate(row["fmr"], row["false_matches"]),
            )
        console.print(table)
        for rate in ("fmr", "fnmr"):
            ratio = result[f"{rate}_ratio"]
            value = f"{ratio['ratio']:.2f}" if ratio["ratio"] is not None else "undefined"
            note = f" ({ratio['note']})" if ratio.get("note") else ""
            console.print(f"  {rate.upper()} max/min ratio: {value}{note}", highlight=False)


def _rate(value: float | None, errors: int) -> str:
    return "-" if value is None else f"{value:.2%} ({errors})"


def _print_identification(s: dict[str, Any]) -> None:
    console.print(
        f"[bold]gallery[/] {s['gallery']['identities']} identities ({s['gallery']['images']} images); "
        f"[bold]probes[/] {s['probes']['mated']} mated, {s['probes']['non_mated']} non-mated"
    )
    console.print(f"rank-1 {s['rank1']:.2%}   rank-5 {s['rank5']:.2%}")
    for point in s["open_set"]:
        _print_point(f"FNIR @ FPIR {point['fpir']:<7g}", point, "fnir")
    op = s["operating_point"]
    fpir = f"{op['fpir']:.2%}" if op["fpir"] is not None else "-"
    console.print(
        f"at the calibrated threshold {op['threshold']:.4f} (FMR {op['fmr']:g}): FNIR {op['fnir']:.2%}, FPIR {fpir}"
    )
    _print_footer(s)


def _print_footer(s: dict[str, Any]) -> None:
    timing = s["timing"]
    console.print(
        f"embedding {timing['embed_s']:.1f} s ({timing['images_cached']} of {s['images']['total']} images cached), "
        f"scoring {timing['score_s'] * 1000:.1f} ms"
    )
    for problem in s["problems"]:
        err_console.print(f"  [yellow]{problem}[/]", highlight=False, soft_wrap=True)
    console.print(f"report: {s['report']['html']}")


@handles_errors
def calibrate(
    source: Annotated[
        Path,
        typer.Argument(
            help="Pairs file (CSV or LFW pairs.txt), or a folder-per-person dataset (every pair is used).",
            show_default=False,
        ),
    ],
    fmr: Annotated[
        float, typer.Option("--fmr", min=1e-6, max=0.1, help="Operating FMR stored with the calibration.")
    ] = DEFAULT_FMR,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the calibration JSON here.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Measure and print; store nothing.")] = False,
    min_false_matches: Annotated[
        int, typer.Option("--min-false-matches", min=1, help="False matches an FMR point must rest on.")
    ] = MIN_ERRORS,
    images: ImagesOption = None,
    workers: EvalWorkersOption = 2,
    no_cache: NoCacheOption = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Measure the similarity threshold for each FMR on your data and store it in the gallery,
    so that verify/identify decisions and their estimated FMR follow it."""
    with _cache(no_cache) as cache:
        impostors, genuines, origin = _calibration_scores(source, images, workers, cache, json_output)
    document = calibration_document(
        impostors,
        genuines,
        model_id=DEFAULT_OPTIONS.model.model_id,
        source=origin,
        pipeline=repr(DEFAULT_OPTIONS),
        operating_fmr=fmr,
        min_false_matches=min_false_matches,
    )
    _check_covers(document, fmr, source)
    if out is not None:
        out.write_text(json.dumps(document, indent=2) + "\n")
    stored = None
    if not dry_run:
        with Gallery(db) as gallery:
            gallery.set_calibration(document)
            stored = str(gallery.path)
    if json_output:
        print_json({**document, "stored_in": stored, "written_to": str(out) if out else None})
        return
    table = Table("FMR", "threshold (90% CI)", "false matches", "FNMR (90% CI)")
    for p in document["points"]:
        table.add_row(
            f"{p['fmr']:g}",
            f"{p['threshold']:.4f} ({p['threshold_90ci'][0]:.4f}–{p['threshold_90ci'][1]:.4f})",
            f"{p['false_matches']:,}",
            f"{p['fnmr']:.2%} ({p['fnmr_90ci'][0]:.2%}–{p['fnmr_90ci'][1]:.2%})",
        )
    console.print(table)
    console.print(
        f"{len(impostors.scores):,} impostor and {len(genuines.scores):,} genuine pairs; operating FMR {fmr:g}; "
        f"90% intervals resample {document['interval_resampling']}"
    )
    if stored:
        console.print(f"stored in {stored}: verify and identify with this gallery now decide by it")


def _calibration_scores(
    source: Path, images: Path | None, workers: int, cache: EmbeddingCache | None, quiet: bool
) -> tuple[ScoredPairs, ScoredPairs, str]:
    """Impostor and genuine pairs with a face on both sides: every pair of a folder-per-person dataset
    (with the people, for intervals over people), or a pairs file's."""
    if source.is_dir():
        files = iter_image_files(source)
        if len({identity_of(f) for f in files}) < 2:
            raise DatasetError(f"{source}: needs photos of at least 2 people, one folder each")
        with progress_bar(len(files), "embedding", enabled=not quiet) as advance:
            embedded = embed_images(files, DEFAULT_OPTIONS, workers=workers, cache=cache, on_done=advance)
        found = ~np.isnan(embedded.vectors[:, 0])
        _, identity = np.unique([identity_of(f) for f, ok in zip(files, found) if ok], return_inverse=True)
        scores, same, a, b = all_pairs(embedded.vectors[found], identity)
        split = [ScoredPairs(scores[m], identity[a[m]], identity[b[m]]) for m in (~same, same)]
        return split[0], split[1], f"{source}: {int(found.sum())} images with a face, every pair"
    pairs = read_pairs(source, images)
    with progress_bar(len(pairs.images()), "embedding", enabled=not quiet) as advance:
        embedded = embed_images(pairs.images(), DEFAULT_OPTIONS, workers=workers, cache=cache, on_done=advance)
    scores = score_pairs(embedded, pairs)
    usable = np.isfinite(scores)
    impostors, genuines = scores[usable & ~pairs.same], scores[usable & pairs.same]
    return (
        ScoredPairs(impostors),
        ScoredPairs(genuines),
        f"{source}: {int(usable.sum())} pairs with a face on both sides",
    )


def _check_covers(document: dict[str, Any], fmr: float, source: Path) -> None:
    fmrs = [p["fmr"] for p in document["points"]]
    impostors = document["pairs"]["impostor"]
    needed = int(np.ceil(document["min_false_matches"] / fmr))
    if not fmrs or not min(fmrs) <= fmr <= max(fmrs):
        covered = f"FMR {min(fmrs):g} to {max(fmrs):g}" if fmrs else "no FMR of the grid"
        raise DatasetError(
            f"{source}: {impostors:,} impostor pairs measure {covered}; FMR {fmr:g} needs about {needed:,} "
            "(use a folder-per-person dataset, where every pair of different people counts, or more pairs)"
        )
