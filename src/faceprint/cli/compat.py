"""``faceprint compat``: other libraries' command lines on faceprint (``face_recognition``'s two commands).

Each command hands its arguments to the original's click command (faceprint.compat), so options,
help and output lines are the original's.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Other libraries' command lines, run by faceprint.")


def register(cli: typer.Typer) -> None:
    cli.add_typer(app, name="compat")


#: The original parses every argument, ``--help`` included.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command("face_recognition", context_settings=_PASS_THROUGH, add_help_option=False)
def face_recognition(ctx: typer.Context) -> None:
    """face_recognition's `face_recognition KNOWN_PEOPLE_FOLDER IMAGE_TO_CHECK` (--tolerance, --show-distance)."""
    from ..compat.face_recognition import face_recognition_cli

    face_recognition_cli.main.main(args=ctx.args, prog_name="faceprint compat face_recognition")


@app.command("face_detection", context_settings=_PASS_THROUGH, add_help_option=False)
def face_detection(ctx: typer.Context) -> None:
    """face_recognition's `face_detection IMAGE_TO_CHECK` (--model hog|cnn, --upsample, --cpus)."""
    from ..compat.face_recognition import face_detection_cli

    face_detection_cli.main.main(args=ctx.args, prog_name="faceprint compat face_detection")
