"""The ``yaolian`` command line (typer): serve, demo, and the adapter/profile tools.

Every ``serve`` option also comes from a ``YAOLIAN_*`` environment variable through
:mod:`gateway.settings`; command-line values win.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

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
    demo: Annotated[
        bool, typer.Option("--demo", help="Load the demo alliance first (idempotent); implies --insecure-dev")
    ] = False,
    insecure_dev: Annotated[
        bool,
        typer.Option(
            "--insecure-dev",
            help="Authentication OFF: every call runs as an admin. Development only [env YAOLIAN_INSECURE_DEV]",
        ),
    ] = False,
    mllp_senders: Annotated[
        str | None, typer.Option(help='Members and the addresses they send from: "CODE=IP[,CIDR];CODE=..."')
    ] = None,
    mllp_tls_cert: Annotated[str | None, typer.Option(help="MLLP over TLS: the server certificate (PEM)")] = None,
    mllp_tls_key: Annotated[str | None, typer.Option(help="MLLP over TLS: its private key (PEM)")] = None,
    mllp_client_ca: Annotated[
        str | None, typer.Option(help="MLLP over TLS: CA of client certificates (CN = member code)")
    ] = None,
) -> None:
    """Start the gateway; the FHIR base is http://HOST:PORT/fhir."""
    import uvicorn

    _apply_env(host=host, port=port, database=database, redis=redis, workers=workers, mllp_port=mllp_port)
    _apply_env(
        mllp_senders=mllp_senders, mllp_tls_cert=mllp_tls_cert, mllp_tls_key=mllp_tls_key, mllp_client_ca=mllp_client_ca
    )
    if demo:
        _apply_env(demo=True)
    if insecure_dev:
        _apply_env(insecure_dev=True)
    from gateway.settings import get_settings

    settings = get_settings()
    if settings.demo:
        _load_demo(settings.database)
        console.print("[bold yellow]--demo implies --insecure-dev:[/] the demo answers without tokens.")
    if settings.insecure_dev:
        from gateway.security.authn import INSECURE_WARNING

        console.print(f"[bold red]WARNING: {INSECURE_WARNING}[/]")
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
    service = FhirService(store, settings)
    pipeline = IngestPipeline(service, journal)
    if settings.audit:  # replayed messages are recorded like any other
        from gateway.security.audit import AuditTrail

        pipeline.audit = AuditTrail(store)
        pipeline.audit.install(service.hooks)
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


clients_app = typer.Typer(
    help="Clients allowed to call the gateway (SMART Backend Services; docs/security.md).", no_args_is_help=True
)
app.add_typer(clients_app, name="clients")


def _open_store(database: str | None) -> Any:
    _apply_env(database=database)
    from gateway.settings import get_settings
    from gateway.store.sql import open_store

    store = open_store(get_settings().database)
    store.create_schema()
    return store


@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Argument(help="What the client is, e.g. 'Township centre A HIS'")],
    role: Annotated[
        str, typer.Option(help="member | county-pharmacy | insurance | regulator | admin", show_default=False)
    ],
    member: Annotated[str | None, typer.Option(help="Member code (required for role member)")] = None,
    scope: Annotated[
        str | None,
        typer.Option(help='SMART v2 system scopes, e.g. "system/MedicationRequest.rs" (default: the role\'s)'),
    ] = None,
    jwks: Annotated[
        Path | None,
        typer.Option(help="The client's PUBLIC JWKS (private_key_jwt, RS384/ES384)", exists=True, dir_okay=False),
    ] = None,
    secret: Annotated[
        bool, typer.Option("--secret", help="Issue a client secret instead (HTTP Basic, weaker)")
    ] = False,
    database: Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")] = None,
) -> None:
    """Register a client and print its client_id (and its secret, ONCE)."""
    from gateway.principal import Role
    from gateway.security.clients import register

    try:
        chosen = Role(role)
    except ValueError:
        console.print(f"[red]unknown role {role!r}[/]: one of {', '.join(r.value for r in Role)}")
        raise typer.Exit(2) from None
    store = _open_store(database)
    try:
        done = register(
            store,
            name,
            chosen,
            member=member,
            scopes=scope,
            jwks=jwks.read_text(encoding="utf-8") if jwks is not None else None,
            secret=secret,
        )
    except ValueError as exc:
        console.print(f"[red]not registered:[/] {exc}")
        raise typer.Exit(2) from None
    finally:
        store.dispose()
    typer.echo(f"client_id: {done.client.client_id}")
    typer.echo(f"scopes: {done.client.scopes}")
    if done.secret is not None:
        typer.echo(f"client_secret: {done.secret}")
        console.print("[bold yellow]Store the secret now: it is not shown again (only its hash is kept).[/]")


@clients_app.command("list")
def clients_list(
    database: Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")] = None,
) -> None:
    """Every registered client, revoked ones too."""
    from rich.table import Table

    store = _open_store(database)
    try:
        found = store.clients_list()
    finally:
        store.dispose()
    table = Table(title=f"{len(found)} clients")
    for column in ("id", "name", "member", "role", "scopes", "auth", "created", "revoked"):
        table.add_column(column, overflow="fold")
    for c in found:
        auth = "private_key_jwt" if c.auth_kind == "private_key_jwt" else "secret (Basic)"
        table.add_row(
            c.client_id,
            c.name,
            c.member or "",
            c.role,
            c.scopes.replace(" ", "\n"),
            auth,
            c.created[:19],
            c.revoked or "",
        )
    Console().print(table)


@clients_app.command("revoke")
def clients_revoke(
    client_id: Annotated[str, typer.Argument(help="The client_id to revoke")],
    database: Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")] = None,
) -> None:
    """Revoke a client: no new tokens; its current tokens stop working within seconds."""
    from gateway.security.clients import revoke

    store = _open_store(database)
    try:
        done = revoke(store, client_id)
    finally:
        store.dispose()
    if not done:
        console.print(f"[red]no active client {client_id}[/]")
        raise typer.Exit(1)
    console.print(f"client {client_id} revoked")


@clients_app.command("set-jwks")
def clients_set_jwks(
    client_id: Annotated[str, typer.Argument(help="A private_key_jwt client")],
    jwks: Annotated[Path, typer.Argument(help="Its new PUBLIC JWKS (keep the old kid during rotation)", exists=True)],
    database: Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")] = None,
) -> None:
    """Key rotation: replace a client's public keys."""
    from gateway.security.clients import set_jwks

    store = _open_store(database)
    try:
        done = set_jwks(store, client_id, jwks.read_text(encoding="utf-8"))
    except ValueError as exc:
        console.print(f"[red]not changed:[/] {exc}")
        raise typer.Exit(2) from None
    finally:
        store.dispose()
    if not done:
        console.print(f"[red]no private_key_jwt client {client_id}[/]")
        raise typer.Exit(1)
    console.print(f"client {client_id}: JWKS replaced")


audit_app = typer.Typer(help="The audit trail: verify its hash chain, prune past the retention.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    database: Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")] = None,
) -> None:
    """Walk the hash chain; exit 1 naming each record edited, deleted or re-ordered."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from gateway.security.audit import record_of_line, verify
    from gateway.security.audit_spool import chain as chain_spools
    from gateway.settings import audit_spool_directory, get_settings
    from gateway.store.base import AuditCriteria
    from gateway.store.sql import open_store

    _apply_env(database=database)
    settings = get_settings()
    store = open_store(settings.database)
    store.create_schema()
    try:
        spool = audit_spool_directory(settings)
        recovered = chain_spools(store, spool, record_of_line) if spool is not None else 0
        if recovered:
            console.print(f"{recovered} spooled records of reads chained first")
        anchor = store.audit_anchor()
        total = store.audit_search(AuditCriteria(), count=0, offset=0)[1]
        columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("verifying", total=total)
            report = verify(store, progress=lambda n: progress.advance(task, n))
    finally:
        store.dispose()
    start = f"from the prune anchor (record {anchor.seq})" if anchor else "from the first record"
    if report.ok:
        console.print(
            f"[green]audit chain intact[/]: {report.checked} records {start}; "
            f"head record {report.head_seq} hash {report.head_hash}"
        )
        return
    for problem in report.problems:
        console.print(f"[red]{problem}[/]")
    console.print(f"audit chain BROKEN: {len(report.problems)} problem(s) in {report.checked} records {start}")
    raise typer.Exit(1)


@audit_app.command("prune")
def audit_prune(
    before: Annotated[str, typer.Option(help="Delete records recorded before this date (YYYY-MM-DD)")],
    database: Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")] = None,
) -> None:
    """Delete old records (never younger than audit_retention_days, 183 by default) and keep
    the chain verifiable from the last pruned record."""
    from gateway.security.audit import prune
    from gateway.settings import get_settings
    from gateway.store.sql import open_store

    _apply_env(database=database)
    settings = get_settings()
    store = open_store(settings.database)
    store.create_schema()
    try:
        anchor = prune(store, before, retention_days=settings.audit_retention_days)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    finally:
        store.dispose()
    if anchor is None:
        console.print(f"nothing recorded before {before}")
    else:
        console.print(f"pruned up to record {anchor.seq} ({anchor.pruned} pruned in all); the chain starts there")


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
    from gateway.commands import feature_commands

    for command in feature_commands():
        app.add_typer(command.app, name=command.name, help=command.help)

    app.add_typer(conformance_app, name="conformance", help="Run the vendor conformance kit against any FHIR server.")


_mount_optional()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["app"]
