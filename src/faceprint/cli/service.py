"""`faceprint serve` (the HTTP service) and `faceprint apikeys create | list | revoke` (its API keys)."""

from __future__ import annotations

import gc
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ..choices import Disclosure
from .common import JsonOption, console, emit, err_console, handles_errors, print_json

apikeys = typer.Typer(help="API keys of the service: create (shown once), list, revoke.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(apikeys, name="apikeys")


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="FACEPRINT_DATA_DIR",
        help="The service's data: tenants' collections, API keys, audit log (default: per-user data dir/service).",
        show_default=False,
    ),
]


def _data_dir(data_dir: Path | None) -> Path:
    from ..tenancy import default_data_dir

    return data_dir or default_data_dir()


@handles_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes sharing the galleries.")] = 1,
    data_dir: DataDirOption = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest uploaded file, in MB.")] = 10.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest decoded image, in pixels.")] = 40_000_000,
    rate_limit: Annotated[float, typer.Option(min=0.01, help="Requests per second per API key (average).")] = 20.0,
    rate_burst: Annotated[int, typer.Option(min=1, help="Requests per API key at once.")] = 40,
    batch_images: Annotated[
        int, typer.Option(min=1, max=64, help="Images of concurrent requests embedded together, at most.")
    ] = 8,
) -> None:
    """Serve the HTTP API (/v1, docs at /docs) and the web page (/) until interrupted."""
    if workers == 1:
        _load_models_early()
    uvicorn = _server_package()
    from ..service.settings import SETTINGS_ENV, ServiceSettings

    settings = ServiceSettings(
        _data_dir(data_dir),
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels,
        rate_per_second=rate_limit,
        rate_burst=rate_burst,
        batch_images=batch_images,
    )
    os.environ[SETTINGS_ENV] = settings.to_env()  # read by each worker process
    typer.echo(f"faceprint service on http://{host}:{port}/ (data: {settings.data_dir})")  # not Rich: BENCHMARKS.md
    uvicorn.run("faceprint.service.app:app_from_env", factory=True, host=host, port=port, workers=workers)


def _load_models_early() -> None:
    """With one worker the app runs in this process: its models load while uvicorn, fastapi and the routes import
    (BENCHMARKS.md, "Service start-up"). The garbage collector is off meanwhile: it would walk the ~90k long-lived
    objects of the start-up again and again while they are made (~15% of its CPU); the app's lifespan freezes them
    and turns it back on."""
    gc.disable()
    from ..service.warm import load_models_early

    load_models_early()


def _server_package() -> Any:
    try:
        import uvicorn
    except ImportError:
        err_console.print("[bold red]error:[/] the service needs: pip install 'faceprint[server]'")
        raise typer.Exit(2) from None
    return uvicorn


@apikeys.command()
@handles_errors
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose collections the key reaches.")],
    scope: Annotated[str, typer.Option("--scope", help="Comma-separated: recognize, enroll, read, admin.")],
    expires: Annotated[
        datetime | None, typer.Option("--expires", help="Expiry, UTC unless a zone is given.", show_default=False)
    ] = None,
    label: Annotated[str, typer.Option("--label", help="A note on what the key is for.")] = "",
    disclosure: Annotated[
        Disclosure, typer.Option("--disclose", help="The most its recognize/verify answers show of scores.")
    ] = "scores",
    budget: Annotated[
        int | None, typer.Option("--budget", min=1, help="Recognize/verify/search queries allowed per UTC day.")
    ] = None,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a key; its text is printed once and never stored (only a salted hash is)."""
    from datetime import timezone

    from ..apikeys import KeyStore

    expiry = expires.replace(tzinfo=timezone.utc) if expires and expires.tzinfo is None else expires
    try:
        key, token = KeyStore(_data_dir(data_dir)).create(
            tenant, scope.split(","), expires_at=expiry, label=label, disclosure=disclosure, budget=budget
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    emit({**key.to_dict(), "key": token}, f"{token}\n(key {key.id}, tenant {tenant}: shown once, keep it)", json_output)


@apikeys.command("list")
@handles_errors
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Every key (never its secret): id, tenant, scopes, expiry, revocation."""
    from ..apikeys import KeyStore

    keys = KeyStore(_data_dir(data_dir)).list(tenant)
    if json_output:
        print_json([key.to_dict() for key in keys])
        return
    for key in keys:
        state = f"revoked {key.revoked_at}" if key.revoked_at else f"expires {key.expires_at or 'never'}"
        console.print(f"{key.id}  {key.tenant}  {','.join(key.scopes)}  {state}  {key.label}", highlight=False)


@apikeys.command()
@handles_errors
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `apikeys list`).")],
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke a key: every server process refuses it from its next request on."""
    from ..apikeys import KeyStore

    key = KeyStore(_data_dir(data_dir)).revoke(key_id)
    emit(key.to_dict(), f"revoked {key.id} ({key.tenant}) at {key.revoked_at}", json_output)
