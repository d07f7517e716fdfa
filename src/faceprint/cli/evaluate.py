"""`faceprint eval` and `faceprint calibrate`: measure accuracy on your data, and calibrate decisions on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .common import (
    DbOption,
    FmrOption,
    JsonOption,
    console,
    err_console,
    handles_errors,
    open_gallery,
    print_json,
    progress_bar,
)

if TYPE_CHECKING:
    from ..evaluation.cache import EmbeddingCache
    from ..evaluation.calibration import CalibrationRun

ImagesOption = Annotated[
    Path | None,
    typer.Option("--images", help="Folder the pairs file's image paths are relative to (default: its own)."),
]
EvalWorkersOption = Annotated[int, typer.Option("--workers", min=1, help="Worker processes for embedding.")]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the embedding cache.")]


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
    app.command()(calibrate)


EvalSourceArgument = Annotated[
    Path,
    typer.Argument(
        help="Pairs file (CSV path_a,path_b,same or LFW pairs.txt), folder-per-person dataset, "
        "or gallery CSV (path,identity) with --probes.",
        show_default=False,
    ),
]
ReportOption = Annotated[Path, typer.Option("--out", help="Report folder (HTML, PNG plots, JSON).")]
GroupsOption = Annotated[
    Path | None, typer.Option("--groups", help="Labels CSV (identity or path column + label columns).")
]
ProbesOption = Annotated[Path | None, typer.Option("--probes", help="Probe CSV (path,identity): 1:N mode.")]
WithholdOption = Annotated[
    float, typer.Option("--withhold", min=0.0, max=0.9, help="1:N: share of identities kept out of the gallery.")
]
SeedOption = Annotated[int, typer.Option("--seed", help="1:N: seed of the split.")]
ResamplesOption = Annotated[int, typer.Option("--resamples", min=0, help="Bootstrap resamples for CIs.")]


@handles_errors
def evaluate(
    source: EvalSourceArgument,
    out: ReportOption = Path("eval-report"),
    groups: GroupsOption = None,
    probes: ProbesOption = None,
    withhold: WithholdOption = 0.3,
    seed: SeedOption = 0,
    fmr: FmrOption = None,
    images: ImagesOption = None,
    resamples: ResamplesOption = 1000,
    workers: EvalWorkersOption = 2,
    no_cache: NoCacheOption = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Measure accuracy: verification (pairs file) or identification (folder, or gallery CSV + --probes)."""
    from .. import evaluation
    from ..gallery import calibration_stored_at

    protocol = evaluation.read_protocol(source, probes=probes, images=images, withhold=withhold, seed=seed)
    model_id = evaluation.EvaluationSettings().options.model.model_id
    labels, stored = evaluation.read_labels(groups) if groups else None, calibration_stored_at(db, model_id=model_id)
    with _cache(no_cache) as cache, progress_bar(len(protocol.images()), "embedding", enabled=not json_output) as done:
        settings = evaluation.EvaluationSettings(
            calibration=stored, fmr=fmr, workers=workers, cache=cache, resamples=resamples, on_done=done
        )
        run = evaluation.evaluate(protocol, settings, labels)
    files = evaluation.write_report(run, out)
    _print_evaluation({**run.summary, "report": {name: str(path) for name, path in files.items()}}, json_output)


def _print_evaluation(summary: dict[str, Any], json_output: bool) -> None:
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
    from ..evaluation.cache import EmbeddingCache

    cache = EmbeddingCache()
    try:
        yield cache
    finally:
        cache.close()


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
    for rule in s["fpir_rule"]:
        if rule["threshold"] is None:
            console.print(f"decided at FPIR {rule['fpir']:g}: unsupported (every search 'uncertain')")
        else:
            measured = "-" if rule["measured_fpir"] is None else f"{rule['measured_fpir']:.2%}"
            console.print(
                f"decided at FPIR {rule['fpir']:g}: threshold {rule['threshold']:.4f}, FNIR {rule['fnir']:.2%}, "
                f"measured FPIR {measured} ({rule['false_positives']} of {rule['non_mated']})"
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


CalibrationSourceArgument = Annotated[
    Path | None,
    typer.Argument(
        help="Pairs file (CSV or LFW pairs.txt), or a folder-per-person dataset (every pair is used).",
        show_default=False,
    ),
]
CalibrationOutOption = Annotated[Path | None, typer.Option("--out", help="Also write the calibration JSON here.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Measure and print; store nothing.")]
MinFalseMatchesOption = Annotated[
    int | None,
    typer.Option(
        "--min-false-matches",
        min=1,
        help="False matches an FMR point must rest on (default: 10, as for every rate faceprint reports).",
        show_default=False,
    ),
]


GalleryFlag = Annotated[
    bool,
    typer.Option(
        "--gallery",
        help="Measure the gallery itself for identification (leave-one-person-out searches of its own "
        "templates) instead of a dataset: needed after it grew or shrank by more than 10%.",
    ),
]


@handles_errors
def calibrate(
    source: CalibrationSourceArgument = None,
    gallery: GalleryFlag = False,
    fmr: FmrOption = None,
    out: CalibrationOutOption = None,
    dry_run: DryRunOption = False,
    min_false_matches: MinFalseMatchesOption = None,
    images: ImagesOption = None,
    workers: EvalWorkersOption = 2,
    no_cache: NoCacheOption = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Measure thresholds on your data (each FMR), or the gallery itself (--gallery), and store them in it."""
    from ..evaluation import calibration

    if gallery or source is None:
        return _measure_gallery(db, json_output, asked=gallery)
    dataset = calibration.read_calibration_source(source, images)
    with _cache(no_cache) as cache, progress_bar(len(dataset.images), "embedding", enabled=not json_output) as advance:
        run = calibration.calibrate(
            dataset, fmr=fmr, min_false_matches=min_false_matches, workers=workers, cache=cache, on_done=advance
        )
    if out is not None:
        calibration.write_calibration(run.document, out)
    stored = None if dry_run else _store(run.document, db)
    if json_output:
        print_json({**run.document, "stored_in": stored, "written_to": str(out) if out else None})
    else:
        _print_calibration(run, stored)


def _measure_gallery(db: str | None, json_output: bool, *, asked: bool) -> None:
    """``calibrate --gallery``: the gallery measures itself for identification; print what it decides with."""
    if not asked:
        raise typer.BadParameter("give a pairs file or dataset to calibrate on, or --gallery")
    with open_gallery(db) as opened:
        stats = opened.identification_stats(measure=True)
    measured, point = stats["measured"], stats["point"]
    if json_output:
        print_json(stats)
        return
    table = Table("FPIR", "threshold", title=f"{opened.path}: best-impostor scores")
    for p in measured["points"]:
        table.add_row(f"{p['fpir']:g}", f"{p['threshold']:.4f}")
    console.print(table)
    console.print(
        f"{measured['searches']:,} searches of {measured['templates']:,} templates ({measured['people']:,} people) "
        f"in {measured['seconds']:.1f} s; at FPIR {point['fpir']:g}: threshold "
        f"{'unsupported' if point['threshold'] is None else format(point['threshold'], '.4f')} ({point['basis']})"
    )


def _store(document: dict[str, Any], db: str | None) -> str:
    """Store the calibration in the gallery; its path."""
    with open_gallery(db) as gallery:
        gallery.set_calibration(document)
        return str(gallery.path)


def _print_calibration(run: CalibrationRun, stored: str | None) -> None:
    table = Table("FMR", "threshold (90% CI)", "false matches", "FNMR (90% CI)")
    for p in run.document["points"]:
        table.add_row(
            f"{p['fmr']:g}",
            f"{p['threshold']:.4f} ({p['threshold_90ci'][0]:.4f}–{p['threshold_90ci'][1]:.4f})",
            f"{p['false_matches']:,}",
            f"{p['fnmr']:.2%} ({p['fnmr_90ci'][0]:.2%}–{p['fnmr_90ci'][1]:.2%})",
        )
    console.print(table)
    console.print(
        f"{run.impostor_pairs:,} impostor and {run.genuine_pairs:,} genuine pairs; "
        f"operating FMR {run.document['operating_fmr']:g}; "
        f"90% intervals resample {run.document['interval_resampling']}"
    )
    if stored:
        console.print(f"stored in {stored}: verify and identify with this gallery now decide by it")
