"""``yaolian supply``: demand plans, approval, export, supplier on-time rates and shortage
registrations (POL-11, POL-12, POL-16, POL-23)."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from gateway.commands import FeatureCommand, operator_service
from gateway.commands._supply import DATABASE_HELP, outcome_on_error, print_json

app = typer.Typer(help="Demand plans (需求计划), approval, export, suppliers and shortage registrations (缺药登记).")
shortage_app = typer.Typer(help="Shortage registrations tied to a reviewed prescription.")
app.add_typer(shortage_app, name="shortage")
COMMAND = FeatureCommand("supply", "Demand plans, approval, deliveries and shortages (需求计划、配送、缺药登记).", app)

Database = Annotated[str | None, typer.Option(help=DATABASE_HELP)]
PeriodOption = Annotated[str, typer.Option(help="A month (2025-11) or a year (2025)")]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@app.command("aggregate")
def aggregate(
    period: PeriodOption,
    output: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
    database: Database = None,
) -> None:
    """The county's procurement plan: totals per drug and per supplier, each with its plan lines."""
    from gateway.alliance.supply.periods import parse_period
    from gateway.alliance.supply.plans import aggregate as build

    with outcome_on_error(), operator_service(database) as (service, ctx):
        plan, world = build(service, ctx, parse_period(period))
        if output == "csv":
            csv.writer(sys.stdout, lineterminator="\n").writerows(plan.csv_rows())
        else:
            print_json(plan.as_json(world))


@app.command("approve")
def approve(
    period: PeriodOption,
    change: Annotated[
        list[str] | None, typer.Option(help="LINE_ID=QUANTITY=REASON (0 cuts the line); repeat for more")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who approves (recorded on every line)")] = None,
    database: Database = None,
) -> None:
    """Approve the period's plan as the county pharmacy; changes and cuts keep their reasons."""
    from gateway.alliance.supply.periods import parse_period
    from gateway.alliance.supply.plans import Change
    from gateway.alliance.supply.plans import approve as run
    from gateway.errors import BadRequest

    with outcome_on_error(), operator_service(database) as (service, ctx):
        changes = []
        for n, text in enumerate(change or []):
            line, _, rest = text.partition("=")
            quantity, _, reason = rest.partition("=")
            try:
                changes.append(Change(line, float(quantity), reason))
            except ValueError:
                raise BadRequest(
                    "YL-1201", where=f"--change #{n + 1}", column="quantity", value=quantity,
                    reason="a number (0 cuts the line)", expression=[f"--change #{n + 1}"],
                ) from None  # fmt: skip
        print_json(run(service, ctx, parse_period(period), changes, by))


@app.command("export")
def export_plan(
    period: PeriodOption,
    output: Annotated[str, typer.Option("--format", help="csv or xlsx")] = "csv",
    out: Annotated[Path | None, typer.Option(help="File to write (xlsx needs one)")] = None,
    database: Database = None,
) -> None:
    """The approved plan as the distribution companies take it (CSV or XLSX)."""
    from gateway.alliance.supply import export
    from gateway.alliance.supply.periods import parse_period
    from gateway.alliance.supply.plans import aggregate as build

    with outcome_on_error(), operator_service(database) as (service, ctx):
        plan, world = build(service, ctx, parse_period(period))
        if output == "xlsx":
            target = out or Path(f"procurement-plan-{period}.xlsx")
            target.write_bytes(export.as_xlsx(plan, world))
            typer.echo(str(target))
        elif out:
            out.write_text(export.as_csv(plan, world), encoding="utf-8")
        else:
            typer.echo(export.as_csv(plan, world), nl=False)


@app.command("suppliers")
def suppliers(period: PeriodOption, database: Database = None) -> None:
    """On-time delivery rates per supplier for plan lines due in the period (JSON)."""
    from gateway.alliance.supply.deliveries import on_time_rates
    from gateway.alliance.supply.periods import parse_period

    with outcome_on_error(), operator_service(database) as (service, ctx):
        print_json(on_time_rates(service, ctx, parse_period(period)))


@shortage_app.command("register")
def shortage_register(
    prescription: Annotated[str, typer.Option(help="MedicationRequest id of the reviewed prescription")],
    member: Annotated[str | None, typer.Option(help="Member code (default: the dispensing member)")] = None,
    quantity: Annotated[float | None, typer.Option(help="Quantity (default: the prescription's)")] = None,
    database: Database = None,
) -> None:
    """Register a patient's missing drug; it becomes a temporary procurement request."""
    from gateway.alliance.supply.shortages import register

    with outcome_on_error(), operator_service(database) as (service, ctx):
        typer.echo(register(service, ctx, prescription, member, _now(), quantity))


@shortage_app.command("list")
def shortage_list(
    period: PeriodOption,
    threshold: Annotated[int | None, typer.Option(help="Linkage proposal threshold (default: setting)")] = None,
    database: Database = None,
) -> None:
    """Registrations of the period, their time to fill, and the drugs proposed for the linkage list."""
    from dataclasses import asdict

    from gateway.alliance.supply.periods import parse_period
    from gateway.alliance.supply.shortages import days_to_fill, linkage_candidates, registrations

    with outcome_on_error(), operator_service(database) as (service, ctx):
        regs = registrations(service, ctx, parse_period(period))
        limit = threshold if threshold is not None else service.settings.supply_shortage_threshold
        print_json(
            {
                "registrations": [{**asdict(r), "daysToFill": days_to_fill(r)} for r in regs],
                "linkageCandidates": linkage_candidates(regs, limit),
                "threshold": limit,
            }
        )
