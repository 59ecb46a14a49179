"""The ``yaolian`` command line (typer): serve, demo, and the adapter/profile tools.

Every ``serve`` option also comes from a ``YAOLIAN_*`` environment variable through
:mod:`gateway.settings`; command-line values win.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Yaolian (药联) FHIR R5 gateway for county medical alliances.", no_args_is_help=True)
console = Console(stderr=True)


def _apply_env(**values: object) -> None:
    """Command-line options become environment settings so worker processes see them too."""
    for key, value in values.items():
        if value is not None:
            os.environ[f"YAOLIAN_{key.upper()}"] = str(value)
    from gateway.settings import get_settings

    get_settings.cache_clear()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [env YAOLIAN_HOST; 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [env YAOLIAN_PORT; 8080]")] = None,
    database: Annotated[
        str | None, typer.Option(help="sqlite:///FILE or postgresql://… [env YAOLIAN_DATABASE]")
    ] = None,
    redis: Annotated[str | None, typer.Option(help="redis://host:6379/0 for events [env YAOLIAN_REDIS]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [env YAOLIAN_WORKERS; 1]")] = None,
    mllp_port: Annotated[int | None, typer.Option(help="Also accept HL7 v2 over MLLP on this port")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo alliance first (idempotent)")] = False,
) -> None:
    """Start the gateway; the FHIR base is http://HOST:PORT/fhir."""
    import uvicorn

    _apply_env(host=host, port=port, database=database, redis=redis, workers=workers, mllp_port=mllp_port)
    from gateway.settings import get_settings

    settings = get_settings()
    if demo or settings.demo:
        _load_demo(settings.database)
    _create_schema(settings.database)  # once, before uvicorn forks workers (issue 12: startup race)
    console.print(
        f"[bold green]Yaolian[/] FHIR base [cyan]http://{settings.host}:{settings.port}/fhir[/] "
        f"(store: {settings.database.split('://')[0]}, workers: {settings.workers})"
    )
    uvicorn.run(
        "gateway.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="info",
        access_log=False,
    )


def _create_schema(database: str) -> None:
    from gateway.store.sql import open_store

    store = open_store(database)
    store.create_schema()
    store.dispose()


def _load_demo(database: str) -> None:
    from gateway.demo import load_demo

    count = load_demo(database)
    console.print(f"demo alliance loaded: {count} resources")


@app.command()
def demo(
    database: Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")] = None,
) -> None:
    """Load the demo alliance (county hospital, township centres, village clinics, drugs, prescriptions)."""
    _apply_env(database=database)
    from gateway.settings import get_settings

    _load_demo(get_settings().database)


@app.command("init-db")
def init_db(database: Annotated[str | None, typer.Option(help="Database URL")] = None) -> None:
    """Create the tables (serve does this on start; useful before a bulk load)."""
    _apply_env(database=database)
    from gateway.settings import get_settings
    from gateway.store.sql import open_store

    store = open_store(get_settings().database)
    store.create_schema()
    store.dispose()
    console.print("schema ready")


@app.command()
def replay(
    database: Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")] = None,
    adapter: Annotated[str | None, typer.Option(help="Only messages of this adapter")] = None,
    limit: Annotated[int, typer.Option(help="At most this many messages")] = 1000,
) -> None:
    """Re-run rejected (dead-letter) messages, e.g. after a mapping fix."""
    from rich.progress import Progress

    from gateway.hooks import RequestContext
    from gateway.ingest.journal import ACCEPTED, Journal
    from gateway.ingest.pipeline import IngestPipeline
    from gateway.service.fhir_service import FhirService
    from gateway.settings import get_settings
    from gateway.store.sql import open_store

    _apply_env(database=database)
    settings = get_settings()
    store = open_store(settings.database)
    store.create_schema()
    journal = Journal(store)
    pipeline = IngestPipeline(FhirService(store, settings), journal)
    entries = list(journal.dead_letters(adapter, limit))
    fixed = 0
    ctx = RequestContext(
        base_url=settings.base_url or f"http://{settings.host}:{settings.port}/fhir", interaction="replay"
    )
    with Progress(console=console) as progress:
        task = progress.add_task("replaying", total=len(entries))
        for entry in entries:
            result = pipeline.replay(entry, ctx)
            fixed += result.status == ACCEPTED
            if result.status != ACCEPTED and result.issues:
                console.print(
                    f"#{entry.seq} {entry.adapter} {entry.control_id}: still rejected - {result.issues[0].en}"
                )
            progress.advance(task)
    store.dispose()
    console.print(f"replayed {len(entries)}: {fixed} accepted, {len(entries) - fixed} still rejected")
    if fixed < len(entries):
        raise typer.Exit(1)


@app.command("bulk-load")
def bulk_load_command(
    file: Annotated[Path, typer.Argument(help="NDJSON: one resource per line", exists=True, dir_okay=False)],
    database: Annotated[str | None, typer.Option(help="Database URL")] = None,
    workers: Annotated[int, typer.Option(help="Processes rendering and indexing")] = 1,
) -> None:
    """Create many resources fast: NO validation, NO events, new ids only (see gateway.store.bulk)."""
    _apply_env(database=database)
    from gateway.settings import get_settings
    from gateway.store.bulk import bulk_load
    from gateway.store.sql import open_store

    store = open_store(get_settings().database)
    store.create_schema()
    with file.open("rb") as lines:
        count = bulk_load(store, (line for line in lines if line.strip()), workers=workers)
    store.dispose()
    console.print(f"{count} resources loaded (not validated)")


@app.command()
def reindex(
    database: Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")] = None,
    resource_type: Annotated[str | None, typer.Option("--type", help="Only this resource type")] = None,
) -> None:
    """Rebuild the search index from stored resources (after search parameter definitions change)."""
    from rich.progress import Progress

    from gateway.settings import get_settings
    from gateway.store.reindex import current_count
    from gateway.store.reindex import reindex as run_reindex
    from gateway.store.sql import open_store

    _apply_env(database=database)
    store = open_store(get_settings().database)
    store.create_schema()
    total = current_count(store, resource_type)
    with Progress(console=console) as progress:
        task = progress.add_task("reindexing", total=total)
        done = run_reindex(store, resource_type, progress=lambda n: progress.advance(task, n))
    store.dispose()
    console.print(f"reindexed {done} resources")


profiles_app = typer.Typer(help="Alliance profiles: readable documentation.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")


@profiles_app.command("docs")
def profiles_docs(out: Annotated[Path, typer.Option(help="Output folder")] = Path("profile-docs")) -> None:
    """Render one HTML page per alliance profile (elements, cardinality, bindings, examples)."""
    from gateway.validation.docs import render_profile_docs

    pages = render_profile_docs(out)
    console.print(f"{len(pages)} pages written; open {pages[0] if pages else out}")


def _mount_optional() -> None:
    """Sub-commands that live beside the core (adapters, profiles) mount when present."""
    try:
        from adapters.cli import app as adapters_app
    except ImportError:
        pass
    else:
        from adapters.cli import convert

        app.add_typer(adapters_app, name="adapters", help="List, scaffold and run adapters.")
        # The spellings of the adapter issue and of most docs: ``yaolian adapter new NAME`` and
        # ``yaolian convert --adapter NAME FILE``, the same commands under a second name.
        app.add_typer(adapters_app, name="adapter", hidden=True)
        app.command("convert", help="Convert FILE with an adapter, store nothing (= adapters convert).")(convert)
    from conformance.cli import app as conformance_app

    app.add_typer(conformance_app, name="conformance", help="Run the vendor conformance kit against any FHIR server.")


_mount_optional()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["app"]
