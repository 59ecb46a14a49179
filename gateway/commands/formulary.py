"""``yaolian formulary``: import and export the committee's spreadsheet, diff two versions of a
list, and run the linkage checks (docs/formulary.md)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.alliance import catalogue_io, linkage
from gateway.alliance.formulary import ALLIANCE, diff, drugs_of
from gateway.alliance.formulary_check import run_check
from gateway.alliance.stored import ImportReport, import_catalogue, import_formulary, load_catalogue, load_formularies
from gateway.commands import FeatureCommand, operator_service
from gateway.errors import FhirError
from gateway.federation.registry import load_registry

app = typer.Typer(help="Drug catalogue and formularies (药品目录): import, export, diff, linkage check.")
Database = Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")]


def _print_report(report: ImportReport) -> None:
    for found in report.issues:
        typer.echo(f"{found.severity}: {found.en} | {found.zh}", err=True)
    typer.echo(
        f"{report.rows} row(s) read, {report.drugs_written} drug(s) written"
        + (f", {report.listed} listed in {report.version}" if report.version else "")
        + (f", retired {', '.join(report.retired)}" if report.retired else "")
        + f", {report.errors} row error(s)"
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV (UTF-8/GB18030) or XLSX")],
    member: Annotated[
        str | None, typer.Option(help=f"Member code whose list this is ('{ALLIANCE}': the alliance's)")
    ] = None,
    catalogue: Annotated[bool, typer.Option("--catalogue", help="FILE holds drug attributes, not a list")] = False,
    effective: Annotated[str | None, typer.Option(help="Adjustment date YYYY-MM-DD (default today)")] = None,
    decision: Annotated[str, typer.Option(help="The committee's decision (会议决定)")] = "",
    database: Database = None,
) -> None:
    """Import a member's list (--member CODE) or the catalogue (--catalogue); bad rows are named
    by line and column, good rows still go in (exit 1 when any row was refused)."""
    if catalogue == (member is not None):
        raise typer.BadParameter("give exactly one of --member CODE or --catalogue")
    day = dt.date.fromisoformat(effective) if effective else None
    sheet = catalogue_io.parse_sheet(file.read_bytes(), file.name, need_attributes=catalogue)
    with operator_service(database) as (service, ctx):
        try:
            if catalogue:
                report = import_catalogue(service, ctx, sheet)
            else:
                assert member is not None
                registry = load_registry(service, ctx)
                report = import_formulary(
                    service, ctx, sheet, member=member, registry=registry, effective=day, decision=decision
                )
        except FhirError as exc:
            for found in exc.issues:
                typer.echo(f"error: {found.en} | {found.zh}", err=True)
            raise typer.Exit(2) from None
    _print_report(report)
    if report.errors:
        raise typer.Exit(1)


@app.command("export")
def export(
    file: Annotated[Path, typer.Argument(dir_okay=False, help=".csv or .xlsx")],
    member: Annotated[str | None, typer.Option(help="A member's current list (default: the whole catalogue)")] = None,
    language: Annotated[str, typer.Option(help="Headers: zh or en")] = "zh",
    encoding: Annotated[str, typer.Option(help="CSV encoding: utf-8 or gb18030")] = "utf-8",
    database: Database = None,
) -> None:
    """Write the catalogue or a member's current list in the committee's spreadsheet form."""
    with operator_service(database) as (service, ctx):
        catalogue = load_catalogue(service, ctx)
        if member is None:
            drugs = sorted(catalogue, key=lambda d: d.nhsa_code)
        else:
            version = load_formularies(service, ctx).current(member)
            if version is None:
                raise typer.BadParameter(f"member {member} has no formulary")
            drugs = drugs_of(version, catalogue)
    catalogue_io.write_file(file, drugs, language=language, encoding=encoding)
    typer.echo(f"{len(drugs)} drug(s) written to {file}")


@app.command("diff")
def diff_(
    member: Annotated[str, typer.Argument(help="Member code")],
    old: Annotated[
        str | None, typer.Option(help="Older version's adjustment date (default: the one before --new)")
    ] = None,
    new: Annotated[str | None, typer.Option(help="Newer version's adjustment date (default: current)")] = None,
    database: Database = None,
) -> None:
    """What was added to and removed from a member's list between two versions (JSON)."""
    with operator_service(database) as (service, ctx):
        catalogue = load_catalogue(service, ctx)
        history = list(load_formularies(service, ctx).history(member))
    by_day = {v.effective: v for v in history}
    newer = by_day.get(new) if new else (history[-1] if history else None)
    if newer is None:
        raise typer.BadParameter(f"member {member} has no version {new or '(any)'}")
    older = by_day.get(old) if old else next((v for v in reversed(history) if v.effective < newer.effective), None)
    if older is None:
        raise typer.BadParameter(f"member {member} has no version {old or 'before ' + newer.effective}")
    typer.echo(json.dumps(diff(older, newer).as_json(catalogue), ensure_ascii=False, indent=2))


@app.command("check")
def check(
    format: Annotated[str, typer.Option("--format", help="json or html")] = "json",
    output: Annotated[Path | None, typer.Option(help="Write here instead of standard output")] = None,
    today: Annotated[str | None, typer.Option(help="Check as of this day (YYYY-MM-DD)")] = None,
    database: Database = None,
) -> None:
    """The linkage checks over the current lists (POL-02..05, POL-10, POL-13, POL-21)."""
    with operator_service(database) as (service, ctx):
        from gateway.settings import get_settings

        findings = run_check(service, ctx, get_settings(), dt.date.fromisoformat(today) if today else None)
    text = (
        linkage.as_html(findings)
        if format == "html"
        else json.dumps(linkage.as_json(findings), ensure_ascii=False, indent=2)
    )
    if output:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"{len(findings)} finding(s) written to {output}")
    else:
        typer.echo(text)


COMMAND = FeatureCommand("formulary", "Drug catalogue and formularies (药品目录)", app)
