"""`yaolian conformance …`: run the kit against any FHIR R5 endpoint, load its seed data, list tests.

Mount into the main CLI with `app.add_typer(conformance.cli.app, name="conformance")`; it also runs
standalone as `python -m conformance`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conformance import fixtures
from conformance.client import FhirClient
from conformance.model import Check, Result
from conformance.runner import all_checks, run, select
from conformance.session import seed as load_seed

app = typer.Typer(help="Alliance FHIR conformance kit 医联体 FHIR 一致性测试工具", no_args_is_help=True)
console = Console(stderr=True)

BaseUrl = Annotated[str, typer.Option("--base-url", help="FHIR base of the server under test, e.g. http://host/fhir")]
Token = Annotated[str | None, typer.Option("--token", envvar="YAOLIAN_CONFORMANCE_TOKEN", help="Bearer token")]


ClientId = Annotated[
    str | None, typer.Option("--client-id", envvar="YAOLIAN_CONFORMANCE_CLIENT_ID", help="OAuth client id")
]
ClientSecret = Annotated[
    str | None,
    typer.Option("--client-secret", envvar="YAOLIAN_CONFORMANCE_CLIENT_SECRET", help="shared client secret"),
]
KeyFile = Annotated[
    Path | None, typer.Option("--key", help="private key (PEM) for a SMART signed JWT; needs PyJWT + cryptography")
]
KeyId = Annotated[
    str | None, typer.Option("--key-id", help="kid of --key in the client's registered JWKS (the assertion's header)")
]
Scope = Annotated[str, typer.Option("--scope", help="scope requested with --client-id")]
TokenUrl = Annotated[str | None, typer.Option("--token-url", help="token endpoint (default: discovered)")]


def _token(
    base_url: str,
    token: str | None,
    client_id: str | None,
    client_secret: str | None,
    key: Path | None,
    scope: str,
    token_url: str | None,
    key_id: str | None = None,
) -> str | None:
    """The bearer token: `--token`, or one fetched with the client credentials."""
    if not client_id:
        if client_secret or key:
            console.print("[red]--client-secret / --key need --client-id[/red]")
            raise typer.Exit(2)
        return token
    if token:
        console.print("[red]give either --token or --client-id, not both[/red]")
        raise typer.Exit(2)
    from conformance.auth import AuthError, fetch_token

    try:
        fetched = fetch_token(
            base_url,
            client_id,
            client_secret=client_secret,
            key_file=key,
            key_id=key_id,
            scope=scope or None,
            token_url=token_url,
        )
    except AuthError as exc:
        console.print(f"[red]could not get a token: {exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"token obtained for client {client_id}")
    return fetched


@app.command("run")
def run_command(
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="FHIR base of the server under test, e.g. http://host/fhir")
    ] = None,
    token: Token = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    key: KeyFile = None,
    key_id: KeyId = None,
    scope: Scope = "system/*.cruds",
    token_url: TokenUrl = None,
    adapter: Annotated[
        str | None, typer.Option("--adapter", help="also test this adapter (entry point yaolian.adapters)")
    ] = None,
    samples: Annotated[
        Path | None, typer.Option("--samples", help="sample messages for --adapter (default: the package's own)")
    ] = None,
    suite: Annotated[str, typer.Option(help="core = required (SHALL) tests, full = all")] = "full",
    only: Annotated[str | None, typer.Option(help="groups or test-id prefixes, comma-separated")] = None,
    report: Annotated[Path | None, typer.Option(help="directory for report.html, junit.xml, …")] = None,
    seed_only: Annotated[
        bool, typer.Option("--seed-only", help="do not write test data; use the loaded seed set")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run the conformance tests; exit code 1 if any required test fails or errs.

    With --base-url the server tests; with --adapter NAME the adapter group (in-process); both may be given."""
    if not base_url and not adapter:
        console.print("[red]give --base-url (a server) and/or --adapter (an adapter package)[/red]")
        raise typer.Exit(2)
    if samples is not None and not samples.is_dir():
        console.print(f"[red]--samples {samples}: not a directory[/red]")
        raise typer.Exit(2)
    checks = select(all_checks(), suite, only) if base_url else []
    if adapter:
        from conformance.adapter_group import adapter_checks

        checks += adapter_checks(adapter, samples)
    if base_url:
        token = _token(base_url, token, client_id, client_secret, key, scope, token_url, key_id)
    if not checks:
        console.print(f"[red]no test matches --suite {suite} --only {only}[/red]")
        raise typer.Exit(2)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[tally]}"),
        console=console,
        disable=quiet,
    )
    tally: Counter[str] = Counter()
    with progress:
        task = progress.add_task("conformance", total=len(checks), tally="")

        def on_progress(check: Check, result: Result | None) -> None:
            if result is None:
                progress.update(task, description=check.id[:60])
                return
            tally[result.outcome.value] += 1
            shown = " ".join(f"{k}={v}" for k, v in sorted(tally.items()))
            progress.update(task, advance=1, tally=shown)

        outcome = run(
            base_url or f"adapter:{adapter}",
            token=token,
            suite=suite,
            only=only,
            seed_only=seed_only,
            progress=on_progress,
            checks=checks,
        )
    _summary(outcome.results)
    if report:
        from conformance.reports import write_all

        for kind, path in write_all(outcome, report).items():
            console.print(f"{kind:>10}: {path}")
    adapter_results = [r for r in outcome.results if r.check.group == "adapter"]
    if adapter and not any(r.outcome.value in ("pass", "fail", "error") for r in adapter_results):
        console.print(
            f"[red bold]FAILED[/red bold]: nothing was tested for adapter {adapter} (no samples or not loadable)"
        )
        raise typer.Exit(1)
    if not outcome.passed:
        console.print(f"[red bold]FAILED[/red bold]: {len(outcome.blocking)} required test(s) failed or erred")
        raise typer.Exit(1)
    console.print("[green bold]PASSED[/green bold]: every required test passed")


def _summary(results: list[Result]) -> None:
    table = Table(title="结果 Results")
    outcomes = ["pass", "fail", "not-applicable", "insufficient-data", "error"]
    table.add_column("group")
    for o in outcomes:
        table.add_column(o, justify="right")
    groups: dict[str, Counter[str]] = {}
    for r in results:
        groups.setdefault(r.check.group, Counter())[r.outcome.value] += 1
    for g, c in groups.items():
        table.add_row(g, *(str(c[o]) for o in outcomes))
    console.print(table)
    for r in results:
        if r.outcome.value in ("fail", "error"):
            console.print(f"[red]{r.outcome.value}[/red] [{r.check.level}] {r.check.id}: {r.message[:300]}")


@app.command("seed")
def seed_command(
    base_url: BaseUrl,
    token: Token = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    key: KeyFile = None,
    key_id: KeyId = None,
    scope: Scope = "system/*.cruds",
    token_url: TokenUrl = None,
    out: Annotated[
        Path | None, typer.Option(help="write the seed transaction Bundle here instead of loading it")
    ] = None,
) -> None:
    """Load the seed set (fixed ids `ylc-seed-*`) so every test can apply on a server the kit may not write to."""
    if out:
        out.write_text(json.dumps(fixtures.seed_bundle(), ensure_ascii=False, indent=1), encoding="utf-8")
        console.print(f"seed Bundle written to {out}")
        return
    token = _token(base_url, token, client_id, client_secret, key, scope, token_url, key_id)
    client = FhirClient(base_url, token=token)
    try:
        problems = load_seed(client)
    finally:
        client.close()
    for p in problems:
        console.print(f"[red]{p}[/red]")
    if problems:
        raise typer.Exit(1)
    console.print(f"loaded {len(fixtures.seed_bundle()['entry'])} seed resources into {base_url}")


@app.command("record")
def record_command(
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8090,
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    base_path: Annotated[str, typer.Option("--base-path", help="FHIR base path")] = "/fhir",
    report: Annotated[Path | None, typer.Option(help="directory for report.html, junit.xml, …")] = None,
) -> None:
    """Serve a recording FHIR server; check every request a client or adapter sends (Ctrl-C to stop).

    Exit code 1 if any recorded request failed its checks."""
    import uvicorn

    from conformance.recorder import Recorder

    recorder = Recorder(
        base_path,
        report,
        public_url=f"http://{host}:{port}{'/' + base_path.strip('/') if base_path.strip('/') else ''}",
    )
    console.print(f"recording FHIR server at {recorder.public_url} (Ctrl-C to stop)")
    uvicorn.run(recorder.app, host=host, port=port, log_level="warning")
    outcome = recorder.run_record()
    _summary(outcome.results)
    if report:
        for kind, path in recorder.write_reports().items():
            console.print(f"{kind:>10}: {path}")
    if not outcome.passed:
        console.print(f"[red bold]FAILED[/red bold]: {len(outcome.blocking)} request(s) failed the checks")
        raise typer.Exit(1)
    console.print(f"[green bold]PASSED[/green bold]: {len(outcome.results)} request(s) recorded, none failed")


@app.command("list")
def list_command(
    suite: Annotated[str, typer.Option()] = "full",
    only: Annotated[str | None, typer.Option()] = None,
) -> None:
    """List the generated tests with their requirement."""
    for c in select(all_checks(), suite, only):
        typer.echo(f"{c.level:6} {c.id}\t{c.requirement}")


if __name__ == "__main__":  # pragma: no cover
    app()
