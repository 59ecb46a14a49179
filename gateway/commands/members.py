"""``yaolian members add | list | check``: the member registry from the console, through the
same service (validation, hooks, audit) as ``PUT Organization``/``PUT Endpoint`` over REST."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from gateway.commands import FeatureCommand, operator_service
from gateway.errors import FhirError
from gateway.federation.endpoints import KINDS, SmartCredentials
from gateway.federation.registration import Registration, register_member
from gateway.federation.registry import TIERS, Member, MemberRegistry, load_registry
from gateway.federation.remote import MemberClient
from gateway.settings import get_settings

app = typer.Typer(help="The alliance's members: who they are and how each is reached (issue 13).")

DATABASE = typer.Option(None, "--database", help="Database URL (default: YAOLIAN_DATABASE).")


def _fail(error: FhirError) -> None:
    for found in error.issues:
        typer.echo(f"error {found.error_code}: {found.en} / {found.zh}", err=True)
    raise typer.Exit(1)


@app.command("add")
def add(
    code: str = typer.Argument(..., help="Member code (identifier http://yaolian.org/fhir/sid/member)."),
    name: str = typer.Option(..., "--name", help="Name of the institution."),
    tier: str = typer.Option(..., "--tier", help=" | ".join(TIERS)),
    parent: str | None = typer.Option(None, "--parent", help="Code of the parent member."),
    insurance_code: str | None = typer.Option(None, "--insurance-code", help="定点医药机构编码, e.g. H14042300101."),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="FHIR base URL of a live member; yaolian-sqlview:NAME for a database view."
    ),
    kind: str | None = typer.Option(None, "--kind", help=" | ".join(KINDS)),
    token_url: str | None = typer.Option(None, "--token-url", help="The member's SMART token endpoint."),
    client_id: str | None = typer.Option(None, "--client-id", help="The gateway's client id at the member."),
    key: Path | None = typer.Option(None, "--key", help="PEM private key signing the gateway's assertions."),
    key_id: str | None = typer.Option(None, "--key-id", help="The kid the member registered that key under."),
    mapping: str | None = typer.Option(
        None, "--mapping", help="A sql-view member's mapping (mappings/sqlview/NAME.yaml), e.g. generic-his."
    ),
    database: str | None = DATABASE,
) -> None:
    """Register a member (or update it): its Organization and, with --endpoint/--kind, its Endpoint."""
    smart = None
    if token_url or client_id or key:
        if not (token_url and client_id and key):
            typer.echo("error: --token-url, --client-id and --key go together", err=True)
            raise typer.Exit(2)
        smart = SmartCredentials(token_url, client_id, str(key.resolve()), key_id)
    if endpoint is not None and kind is None:
        kind = "fhir-r5"
    registration = Registration(code, name, tier, parent, insurance_code, endpoint, kind, smart, mapping)
    with operator_service(database) as (service, ctx):
        try:
            org_id, endpoint_id = register_member(service, ctx, registration)
        except FhirError as error:
            _fail(error)
            return
    typer.echo(f"member: {code}")
    typer.echo(f"organization: Organization/{org_id}")
    if endpoint_id:
        typer.echo(f"endpoint: Endpoint/{endpoint_id} ({kind})")


def _registry(database: str | None) -> MemberRegistry:
    with operator_service(database) as (service, ctx):
        return load_registry(service, ctx, endpoints=True)


def _reached(member: Member) -> str:
    if not member.reached_by:
        return "-"
    return ", ".join(f"{e.kind} {e.address}" + ("" if e.active else " (off)") for e in member.reached_by)


@app.command("list")
def list_members(database: str | None = DATABASE) -> None:
    """Every member: code, tier, parent, insurance code, name and how it is reached."""
    registry = _registry(database)
    typer.echo("code\ttier\tparent\tinsurance\tname\treached by")
    for member in sorted(registry, key=lambda m: (m.tier or "", m.code)):
        row = [member.code, member.tier or "-", member.parent or "-", member.insurance_code or "-", member.name]
        typer.echo("\t".join([*row, _reached(member)]))


async def _check_all(members: list[Member], timeout: float) -> list[tuple[Member, bool, float, str]]:
    client = MemberClient(timeout, views=get_settings().federation_views)
    try:
        results = await asyncio.gather(*(client.check(m, timeout) for m in members))
    finally:
        await client.aclose()
    return [(m, *r) for m, r in zip(members, results, strict=True)]


@app.command("check")
def check(
    timeout: float = typer.Option(2.0, "--timeout", help="Seconds each member has to answer."),
    database: str | None = DATABASE,
) -> None:
    """Ask every live member for its CapabilityStatement (a view member: SELECT 1), all at once:
    up or down, and how fast."""
    registry = _registry(database)
    live = registry.live()
    for member in sorted(registry, key=lambda m: m.code):
        if member.live_endpoint is None:
            typer.echo(f"{member.code}\tnot live\t-\tits data is pushed to the gateway (no live endpoint)")
    failed = 0
    for member, ok, seconds, said in asyncio.run(_check_all(live, timeout)) if live else []:
        failed += not ok
        typer.echo(f"{member.code}\t{'up' if ok else 'DOWN'}\t{seconds * 1000:.0f} ms\t{said}")
    if failed:
        raise typer.Exit(1)


COMMAND = FeatureCommand("members", "The member registry: add, list, check (issue 13).", app)
