"""`faceprint rekey` (the master key of a gallery encrypted at rest, faceprint.protect) and `faceprint private`
(identification in the encrypted domain, faceprint.encrypted)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    DbOption,
    FpirOption,
    JsonOption,
    ProfileOption,
    emit,
    handles_errors,
    open_gallery,
    pipeline_options,
)

if TYPE_CHECKING:
    from ..encrypted import ClientKey, ScoringServer


def register(app: typer.Typer) -> None:
    app.command()(rekey)
    app.add_typer(private, name="private")


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


private = typer.Typer(
    help="Identify without the server seeing the probe: CKKS homomorphic encryption (the client holds the key).",
    no_args_is_help=True,
)
KeyOption = Annotated[Path, typer.Option("--key", help="The client's private key (faceprint private keygen).")]
EncryptedGalleryOption = Annotated[
    Path | None,
    typer.Option(
        "--encrypted-gallery",
        help="A gallery of rows encrypted under --key (faceprint private enroll); without it, the --db gallery.",
        show_default=False,
    ),
]


@private.command()
@handles_errors
def keygen(
    key_file: Annotated[Path, typer.Argument(help="Where to write the new key (refused if it exists).")],
    json_output: JsonOption = False,
) -> None:
    """Make a client key (the secret key and the CKKS parameters; the server needs no key)."""
    from ..encrypted import ClientKey

    key = ClientKey.generate()
    key.save(key_file)
    data = {"key_file": str(key_file), "parameters": key.parameters.to_dict(), "key_bytes": key.key_bytes()}
    emit(data, f"wrote {key_file} ({key.parameters.security_bits}-bit CKKS key; keep it private)", json_output)


@private.command()
@handles_errors
def enroll(
    name: Annotated[str, typer.Argument(help="The person's name.")],
    images: Annotated[list[Path], typer.Argument(help="Photos of them, one face each.")],
    key: KeyOption,
    gallery: Annotated[Path, typer.Option("--encrypted-gallery", help="The encrypted gallery file (made if missing).")],
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add a person to a gallery the server cannot read: one row (their photos' centroid), encrypted under --key."""
    from ..api import embed
    from ..encrypted import ClientKey, enroll_privately
    from ..gallery.names import normalize_name
    from ..pipeline import single_face

    options = pipeline_options(profile, None)
    faces = [single_face(embed(image, options=options), str(image)) for image in images]
    templates = [face.template for face in faces if face.template is not None]
    rows = enroll_privately(ClientKey.load(key), gallery, normalize_name(name), templates)
    emit({"gallery": str(gallery), "rows": len(rows.labels)}, f"enrolled {name} ({len(rows.labels)} rows)", json_output)


@private.command()
@handles_errors
def remove(
    name: Annotated[str, typer.Argument(help="The person's name.")],
    key: KeyOption,
    gallery: Annotated[Path, typer.Option("--encrypted-gallery", help="The encrypted gallery file.")],
    json_output: JsonOption = False,
) -> None:
    """Remove a person from an encrypted gallery: their block is encrypted anew without them (needs --key)."""
    from ..encrypted import ClientKey, remove_privately
    from ..gallery.names import normalize_name

    rows = remove_privately(ClientKey.load(key), gallery, normalize_name(name))
    emit({"gallery": str(gallery), "rows": len(rows.labels)}, f"removed {name} ({len(rows.labels)} rows)", json_output)


ServiceUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="FACEPRINT_URL",
        help="A faceprint service (faceprint serve) whose --collection to search; without it, a local gallery.",
        show_default=False,
    ),
]
CollectionOption = Annotated[str | None, typer.Option("--collection", help="The service's collection (with --url).")]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="FACEPRINT_API_KEY", help="An API key with the recognize scope (with --url)."),
]


@private.command()
@handles_errors
def identify(
    image: Annotated[Path, typer.Argument(help="The photo whose main face to identify.")],
    key: KeyOption,
    gallery: EncryptedGalleryOption = None,
    db: DbOption = None,
    url: ServiceUrlOption = None,
    collection: CollectionOption = None,
    api_key: ApiKeyOption = None,
    fpir: FpirOption = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Candidates to list.")] = 5,
    json_output: JsonOption = False,
) -> None:
    """Identify the main face: the probe is encrypted here, scored encrypted (by the service at --url, or here
    against --encrypted-gallery or --db), decrypted and decided here."""
    from ..api import embed
    from ..encrypted import ClientKey, identify_privately
    from ..errors import NoFaceError
    from ..models import EMBEDDING_MODELS
    from ..profiles import options_for_model

    client = ClientKey.load(key)
    server = _scoring_server(client, url, collection, api_key, gallery, db, fpir)
    faces = embed(image, options=options_for_model(EMBEDDING_MODELS[server.model_id]))
    if not faces or faces[0].template is None:
        raise NoFaceError(f"{image}: no face found")
    answer = identify_privately(client, faces[0].template.vector, server, top_k)
    emit(answer.to_dict(), f"{image}: {answer.name} ({answer.decision})", json_output)


def _scoring_server(
    client: ClientKey,
    url: str | None,
    collection: str | None,
    api_key: str | None,
    gallery: Path | None,
    db: str | None,
    fpir: float | None,
) -> ScoringServer:
    """The service's collection (``--url``), the encrypted gallery file, or the local gallery, as options say."""
    from ..encrypted import PrivateGallery, Scorer, connect

    if url is not None:
        if collection is None or api_key is None:
            raise typer.BadParameter("--url needs --collection and --api-key (or $FACEPRINT_API_KEY)")
        return connect(url, collection, api_key, client.parameters, fpir)
    if gallery is not None:
        return PrivateGallery.of_file(gallery, fpir, Scorer(client.parameters))
    with open_gallery(db, create=False) as opened:
        return PrivateGallery.of_gallery(opened, fpir, Scorer(client.parameters))
