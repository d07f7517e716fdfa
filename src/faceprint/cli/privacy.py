"""`faceprint rekey`: the master key of an encrypted gallery (faceprint.protect)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import DbOption, JsonOption, emit, handles_errors, open_gallery


def register(app: typer.Typer) -> None:
    app.command()(rekey)


@handles_errors
def rekey(
    new_key_file: Annotated[
        Path, typer.Argument(help="The new master key file (made, readable by you only, if it does not exist).")
    ],
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Wrap the gallery's data key under a new master key (the current one from $FACEPRINT_KEY_FILE); an
    unencrypted gallery is encrypted. The vectors are not re-encrypted: the old key file opens it no more."""
    from ..protect import read_key_file, write_key_file

    made = not new_key_file.exists()
    if made:
        write_key_file(new_key_file)
    with open_gallery(db, create=False) as gallery:
        gallery.rekey(read_key_file(new_key_file))
        where = str(gallery.path)
    data = {"gallery": where, "key_file": str(new_key_file), "key_file_made": made}
    emit(data, f"{where} is now opened with {new_key_file}" + (" (made)" if made else ""), json_output)
