"""The recognition commands: enroll, identify, verify, detect, embed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..choices import Disclosure
from .analyze import attribute_cells, parse_attributes
from .common import (
    EXIT_FACE,
    EXIT_NEGATIVE,
    AnnotatedOutOption,
    AttributesListOption,
    DbOption,
    DiscloseOption,
    FmrOption,
    FpirOption,
    JsonOption,
    PipelineDetectorOption,
    ProfileOption,
    RayAddressOption,
    WorkersOption,
    batch_runner,
    console,
    err_console,
    exit_code_for,
    handles_errors,
    open_gallery,
    pipeline_options,
    print_json,
    progress_bar,
    warn_if_empty,
    warn_if_stale,
)

if TYPE_CHECKING:
    from ..export import ExportSummary
    from ..gallery import PeopleEnrollment, PhotoIdentification
    from ..match import Calibration
    from ..types import Face, Identification, Verification

LargestOption = Annotated[
    bool, typer.Option("--largest", help="Use the main face (largest, favouring the centre) when there are several.")
]
MainFaceOnlyOption = Annotated[
    bool, typer.Option("--largest", help="Keep only the main face of each image (largest, favouring the centre).")
]
FromDirOption = Annotated[
    Path | None, typer.Option("--from-dir", help="A folder with one sub-folder of photos per person.")
]


def register(app: typer.Typer) -> None:
    for command in (enroll, identify, verify, detect, embed):
        app.command()(command)


@handles_errors
def enroll(
    name: Annotated[str | None, typer.Argument(help="The person's name (omit with --from-dir).")] = None,
    images: Annotated[list[Path] | None, typer.Argument(help="Photos of the person, one face each.")] = None,
    from_dir: FromDirOption = None,
    external_id: Annotated[str | None, typer.Option("--external-id", help="Your own id for the person.")] = None,
    largest: LargestOption = False,
    no_quality_check: Annotated[bool, typer.Option("--no-quality-check", help="Enroll low-quality faces too.")] = False,
    profile: ProfileOption = None,
    detector: PipelineDetectorOption = None,
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Enroll a person from photos, or everyone in a folder-per-person directory."""
    people = _people(name, images or [], from_dir, external_id)
    total = sum(len(photos) for photos in people.values())
    progress = progress_bar(total, "enrolling", enabled=not json_output)
    with open_gallery(db, profile=profile, detector=detector) as gallery, progress as advance:
        outcome = gallery.enroll_people(
            people,
            external_id=external_id,
            largest=largest,
            quality_filter="none" if no_quality_check else "auto",
            workers=workers,
            on_done=advance,
            runner=batch_runner(ray_address),
        )
    _report_enrollment(outcome, json_output)
    _exit_for_enrollment(outcome)


def _people(
    name: str | None, images: list[Path], from_dir: Path | None, external_id: str | None
) -> dict[str, list[Path]]:
    if from_dir is not None:
        if name or images:
            raise typer.BadParameter("give either NAME IMAGES... or --from-dir, not both")
        if external_id:
            raise typer.BadParameter("--external-id names one person; it cannot be used with --from-dir")
        from ..image import person_folders

        return person_folders(from_dir)
    if not name or not images:
        raise typer.BadParameter("give a NAME and at least one image, or --from-dir DIR")
    from ..image import image_files

    return {name: image_files(images)}


def _exit_for_enrollment(outcome: PeopleEnrollment) -> None:
    if outcome.failed and not outcome.enrolled:
        raise typer.Exit(exit_code_for(outcome.failed[0][1]))
    if outcome.refused_any:
        raise typer.Exit(EXIT_FACE)


def _report_enrollment(outcome: PeopleEnrollment, json_output: bool) -> None:
    if json_output:
        print_json(outcome.to_dict())
        return
    for o in outcome.enrolled:
        extra = f", {o.duplicates} already enrolled" if o.duplicates else ""
        console.print(
            f"[green]enrolled[/] [bold]{o.person.name}[/]: {len(o.added)} new templates{extra}, "
            f"{o.person.template_count} in total"
        )
        for _, error in o.rejected:
            err_console.print(f"  [yellow]skipped[/] {error}", highlight=False, soft_wrap=True)
    for person, error in outcome.failed:
        err_console.print(f"[bold red]not enrolled[/] {person}: {error}", highlight=False, soft_wrap=True)


@handles_errors
def identify(
    inputs: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Candidates listed per face.")] = 3,
    fpir: FpirOption = None,
    out: AnnotatedOutOption = None,
    attributes: AttributesListOption = None,
    profile: ProfileOption = None,
    detector: PipelineDetectorOption = None,
    workers: WorkersOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
    disclosure: DiscloseOption = "scores",
) -> None:
    """Name every face in images, against the gallery, at a false-positive identification rate; else `unknown`."""
    from .. import draw

    paths = _single_image_for_out(inputs, out)
    wanted = parse_attributes(attributes) if attributes is not None else ()
    progress = progress_bar(len(paths), "identifying", enabled=not json_output)
    with open_gallery(db, create=False, profile=profile, detector=detector) as gallery, progress as advance:
        warn_if_empty(gallery, "enroll people first")
        answers = gallery.identify_files(
            paths, top_k=top_k, fpir=fpir, attributes=wanted, workers=workers, on_done=advance
        )
        warn_if_stale(gallery, db)
        calibration = gallery.calibration()
    if out is not None and not answers[0].result.error:
        draw.save_annotated(paths[0], [i.face for i in answers[0].faces], [i.name for i in answers[0].faces], out)
    _report_identification(answers, json_output, bool(wanted), disclosure, calibration)
    _exit_for_identification(answers)


def _exit_for_identification(answers: list[PhotoIdentification]) -> None:
    if len(answers) == 1 and answers[0].result.error:  # the only input; its error is in the report already
        raise typer.Exit(exit_code_for(answers[0].result.error))
    if not any(i.match for answer in answers for i in answer.faces):
        raise typer.Exit(EXIT_NEGATIVE)


def _single_image_for_out(inputs: list[Path], out: Path | None) -> list[Path]:
    from ..image import image_files

    paths = image_files(inputs)
    if out is not None and len(paths) != 1:
        raise typer.BadParameter("--out needs exactly one input image")
    return paths


def _report_identification(
    answers: list[PhotoIdentification],
    json_output: bool,
    with_attributes: bool,
    disclosure: Disclosure,
    calibration: Calibration,
) -> None:
    from ..match import disclose

    if json_output:
        shown = [
            {**a.to_dict(), "faces": [disclose(f.to_dict(), disclosure, calibration) for f in a.faces]} for a in answers
        ]
        print_json(shown)
        return
    table = Table("image", "face", "similarity", "est. FMR", "runner-up")
    table.add_column("name", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    extra_columns = ("age", "gender", "expression", "yaw / pitch / roll") if with_attributes else ()
    for column in extra_columns:
        table.add_column(column)
    for answer in answers:
        result, ids = answer.result, answer.faces
        if result.error or not ids:
            blank = [""] * (1 + len(extra_columns))  # decision and attribute columns
            table.add_row(result.source, "-", "", "", "", f"[yellow]{result.error or 'no face'}[/]", *blank)
        for n, ident in enumerate(ids):
            table.add_row(
                result.source,
                str(n),
                *_score_cells(ident, disclosure, calibration),
                f"[green]{ident.name}[/]" if ident.match else "[red]unknown[/]",
                f"{ident.decision}: {ident.reason}" if ident.reason else ident.decision,
                *(attribute_cells(ident.face) if with_attributes else ()),
            )
    console.print(table)


def _score_cells(ident: Identification, disclosure: Disclosure, calibration: Calibration) -> tuple[str, str, str]:
    """Similarity, estimated FMR and runner-up cells, as much as ``disclosure`` shows."""
    from ..match import score_band

    best = ident.match or (ident.candidates[0] if ident.candidates else None)
    others = [c for c in ident.candidates if c is not best]
    if best is None or disclosure == "decisions":
        return "", "", ""
    if disclosure == "bands":
        return score_band(best.similarity, calibration), "", others[0].name if others else ""
    runner_up = f"{others[0].name} {others[0].similarity:.3f}" if others else ""
    return f"{best.similarity:.3f}", f"{best.estimated_fmr:.1e}", runner_up


@handles_errors
def verify(
    image_a: Annotated[Path, typer.Argument(help="First photo.")],
    image_b: Annotated[Path, typer.Argument(help="Second photo.")],
    fmr: FmrOption = None,
    largest: LargestOption = False,
    profile: ProfileOption = None,
    detector: PipelineDetectorOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
    disclosure: DiscloseOption = "scores",
) -> None:
    """Are the faces in two photos the same person? Exit code 0 if so, 1 if not.

    Decides by the calibration stored in the gallery (--db) by `faceprint calibrate`, if any."""
    from ..api import verify as verify_images
    from ..gallery import calibration_stored_at
    from ..match import disclose, load_calibration

    options = pipeline_options(profile, detector)  # a --db given must exist; its calibration, if of this model
    calibration = calibration_stored_at(db, model_id=options.model.model_id, required=db is not None)
    result = verify_images(image_a, image_b, fmr=fmr, largest=largest, options=options, calibration=calibration)
    shown = disclose(result.to_dict(), disclosure, calibration or load_calibration(options.model.model_id))
    if json_output:
        print_json(shown)
    else:
        console.print(_verdict(result, shown, disclosure))
    if not result.match:
        raise typer.Exit(EXIT_NEGATIVE)


def _verdict(result: Verification, shown: dict[str, Any], disclosure: Disclosure) -> str:
    verdict = "[green]same person[/]" if result.match else "[red]different people[/]"
    verdict += f" ({result.decision.replace('_', ' ')})"
    if disclosure == "decisions":
        return verdict
    if disclosure == "bands":
        return f"{verdict}: similarity band {shown['band']}"
    return (
        f"{verdict}: similarity {result.similarity:.3f} "
        f"(threshold {result.threshold:.3f} at FMR {result.fmr:g}), distance {result.distance:.3f}, "
        f"estimated FMR {result.estimated_fmr:.1e}"
    )


@handles_errors
def detect(
    image: Annotated[Path, typer.Argument(help="A photo.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write an annotated copy here.")] = None,
    detector: PipelineDetectorOption = None,
    upsample: Annotated[
        int | None, typer.Option("--upsample", min=0, max=3, help="Upsampling (default: auto).")
    ] = None,
    landmarks68: Annotated[bool, typer.Option("--landmarks68", help="Fit and draw 68 landmarks.")] = False,
    names: Annotated[bool, typer.Option("--names", help="Identify faces against the gallery and draw names.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Find faces: boxes, landmarks and quality; optionally names from the gallery."""
    from .. import draw
    from ..pipeline import faces_in

    labels: list[str] | None = None
    if names:  # names need templates of the gallery's model: its pipeline
        with open_gallery(db, create=False, detector=detector) as gallery:
            faces = faces_in(image, dataclasses.replace(gallery.options, upsample=upsample, landmarks68=landmarks68))
            labels = [i.name for i in gallery.identify_faces(faces)]
    else:
        options = dataclasses.replace(pipeline_options(None, detector), upsample=upsample, landmarks68=landmarks68)
        faces = faces_in(image, options, embed=False)
    if out is not None:
        draw.save_annotated(image, faces, labels, out)
    _report_faces(str(image), faces, labels, json_output)
    if not faces:
        raise typer.Exit(EXIT_FACE)


def _report_faces(image: str, faces: list[Face], labels: list[str] | None, json_output: bool) -> None:
    if json_output:
        named = [{**face.to_dict(), "name": labels[n] if labels else None} for n, face in enumerate(faces)]
        print_json({"image": image, "faces": named})
        return
    table = Table("face", "box (l t r b)", "size", "quality", "yaw", "detector", "name", title=image)
    for n, f in enumerate(faces):
        table.add_row(
            str(n),
            " ".join(f"{v:.0f}" for v in f.box.as_tuple()),
            f"{f.quality.face_size:.0f}",
            f"{f.quality.score:.2f}" + (" !" if f.quality.problems else ""),
            f"{f.quality.yaw:+.0f}",
            f.detector,
            labels[n] if labels else "",
        )
    console.print(table if faces else "[yellow]no face found[/]")


@handles_errors
def embed(
    inputs: Annotated[list[Path] | None, typer.Argument(help="Images or folders of images.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output .npz file.")] = Path("templates.npz"),
    file_list: Annotated[Path | None, typer.Option("--list", help="Text file with one image path per line.")] = None,
    largest: MainFaceOnlyOption = False,
    profile: ProfileOption = None,
    detector: PipelineDetectorOption = None,
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
    json_output: JsonOption = False,
) -> None:
    """Export templates of every face for your own pipeline (.npz; fields in faceprint.export).

    Paths, face_index, boxes, embeddings, quality, model, and the images with no face or an error."""
    from ..export import write_templates
    from ..image import image_files, read_image_list

    paths = image_files(inputs or []) + (read_image_list(file_list) if file_list else [])
    if not paths:
        raise typer.BadParameter("give images, folders or --list FILE")
    with progress_bar(len(paths), "embedding", enabled=not json_output) as advance:
        run, options = batch_runner(ray_address), pipeline_options(profile, detector)  # local processes, or Ray
        results = list(run(paths, options, workers=workers, on_done=advance))
    if all(r.error for r in results):  # nothing could be read: no empty export
        raise next(r.error for r in results if r.error)
    summary = write_templates(results, out, largest=largest)
    if json_output:
        print_json(summary.to_dict())
    else:
        _report_export(summary)


def _report_export(summary: ExportSummary) -> None:
    console.print(
        f"wrote {summary.faces} templates from {summary.images_with_faces} images to {summary.out}; "
        f"{len(summary.no_face)} without a face, {len(summary.errors)} unreadable"
    )
    for image in summary.no_face:
        err_console.print(f"  [yellow]no face[/] {image}", highlight=False, soft_wrap=True)
    for _, message in summary.errors:
        err_console.print(f"  [red]error[/] {message}", highlight=False, soft_wrap=True)
