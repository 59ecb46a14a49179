"""``yaolian stock``: alert lines, current stock, alerts and balancing proposals (POL-14, POL-15)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from gateway.commands import FeatureCommand, operator_service
from gateway.commands._supply import DATABASE_HELP, outcome_on_error, print_json

app = typer.Typer(help="Stock per member, drug and batch; alert lines (库存警戒线), alerts and balancing (余缺调剂).")
lines_app = typer.Typer(help="Alert lines per drug: per tier, with per-member overrides.")
app.add_typer(lines_app, name="alert-lines")
COMMAND = FeatureCommand("stock", "Stock, alert lines, alerts and balancing (库存、警戒线、调剂).", app)

Database = Annotated[str | None, typer.Option(help=DATABASE_HELP)]
AsOf = Annotated[str | None, typer.Option("--as-of", help="Evaluate as on this day (YYYY-MM-DD; default today)")]


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


@lines_app.command("import")
def lines_import(
    file: Annotated[Path, typer.Argument(help="CSV with columns tier_or_member,nhsa_code,line", exists=True)],
    replace: Annotated[bool, typer.Option(help="Replace every imported line (defaults still apply)")] = False,
    database: Database = None,
) -> None:
    """Import alert lines (a row per tier or member code and drug); bad cells are reported with line and column."""
    from gateway.alliance.supply.alert_lines import import_lines, parse_csv
    from gateway.alliance.supply.monitor import run_alerts
    from gateway.federation.registry import load_registry

    with outcome_on_error(), operator_service(database) as (service, ctx):
        lines = parse_csv(file.read_text(encoding="utf-8"), load_registry(service, ctx), file.name)
        merged = import_lines(service, ctx, lines, replace=replace)
        run_alerts(service, ctx)
        typer.echo(f"imported {len(lines.rows)} alert lines ({len(merged.rows)} stored)")


@lines_app.command("export")
def lines_export(database: Database = None) -> None:
    """The lines in force (shipped defaults under the imported ones), as CSV."""
    from gateway.alliance.supply.alert_lines import current_lines

    with outcome_on_error(), operator_service(database) as (service, ctx):
        typer.echo(current_lines(service, ctx).as_csv(), nl=False)


@app.command("show")
def show(database: Database = None) -> None:
    """Current stock per member, drug and batch (JSON)."""
    from gateway.alliance.supply.reading import SupplyWorld
    from gateway.alliance.supply.stock import load_ledger

    with outcome_on_error(), operator_service(database) as (service, ctx):
        world = SupplyWorld.load(service, ctx)
        print_json(load_ledger(service, ctx, world).as_json())


@app.command("alerts")
def alerts(
    output: Annotated[str, typer.Option("--format", help="json or text")] = "json",
    as_of: AsOf = None,
    window: Annotated[int | None, typer.Option(help="Expiry window in days (default: setting)")] = None,
    database: Database = None,
) -> None:
    """Evaluate stock against the alert lines, raise and close alerts, and list them: ``alerts``
    (stock strictly below its line), ``expiring`` (batches within the window), the DetectedIssue
    ids raised, closed and open."""
    from gateway.alliance.supply.monitor import run_alerts

    with outcome_on_error(), operator_service(database) as (service, ctx):
        findings, result = run_alerts(service, ctx, today=_day(as_of), window_days=window)
        from gateway.alliance.supply.terms import BELOW_LINE

        out = {  # stock below its line, and (apart) the batches flagged as expiring soon
            "alerts": [f.as_json() for f in findings if f.kind == BELOW_LINE],
            "expiring": [f.as_json() for f in findings if f.kind != BELOW_LINE],
            "raised": result.raised,
            "closed": result.closed,
            "open": sorted(str(a["id"]) for a in result.open),
        }
        if output == "json":
            print_json(out)
        else:
            for f in findings:
                typer.echo(" ".join(f"{k}={v}" for k, v in f.as_json().items()))


@app.command("balance")
def balance(
    output: Annotated[str, typer.Option("--format", help="json or text")] = "json",
    propose: Annotated[bool, typer.Option(help="Write the proposals as draft transfer SupplyRequests")] = False,
    as_of: AsOf = None,
    database: Database = None,
) -> None:
    """Transfers from surplus to deficit per drug: nearest expiry first, never below a giver's line,
    the county central pharmacy's reserve last."""
    from datetime import UTC, datetime

    from gateway.alliance.supply.alert_lines import current_lines
    from gateway.alliance.supply.balance import propose as plan
    from gateway.alliance.supply.balance import write_proposals
    from gateway.alliance.supply.reading import SupplyWorld
    from gateway.alliance.supply.stock import load_ledger

    with outcome_on_error(), operator_service(database) as (service, ctx):
        world = SupplyWorld.load(service, ctx)
        ledger = load_ledger(service, ctx, world)
        today = _day(as_of) or ledger.as_of()
        proposals = plan(ledger, current_lines(service, ctx), world.registry, today)
        ids = (
            write_proposals(service, ctx, world, proposals, datetime.now(UTC).isoformat(timespec="seconds"))
            if propose
            else []
        )
        rows = [t.as_json() | ({"request": f"SupplyRequest/{ids[n]}"} if ids else {}) for n, t in enumerate(proposals)]
        if output == "json":
            print_json({"transfers": rows})
        else:
            for row in rows:
                typer.echo(" ".join(f"{k}={v}" for k, v in row.items()))


transfer_app = typer.Typer(help="Approve and carry out proposed transfers (POL-26).")
app.add_typer(transfer_app, name="transfer")


@transfer_app.command("approve")
def transfer_approve(
    transfer: Annotated[str, typer.Argument(help="SupplyRequest id of the proposed transfer")],
    by: Annotated[str, typer.Option(help="Who approves")] = "county pharmacy",
    database: Database = None,
) -> None:
    """Approve a proposed transfer."""
    from datetime import UTC, datetime

    from gateway.alliance.supply.balance import approve_transfer

    with outcome_on_error(), operator_service(database) as (service, ctx):
        approve_transfer(service, ctx, transfer, by, datetime.now(UTC).isoformat(timespec="seconds"))
        typer.echo(f"SupplyRequest/{transfer} approved")


@transfer_app.command("deliver")
def transfer_deliver(
    transfer: Annotated[str, typer.Argument(help="SupplyRequest id of the approved transfer")],
    trace: Annotated[list[str], typer.Option(help="Traceability code (20 digits) of a unit moved; repeat")],
    by: Annotated[str, typer.Option(help="Who accepts at receipt")] = "receiving pharmacist",
    storage: Annotated[str, typer.Option(help="Storage condition at receipt")] = "常温 room temperature",
    database: Database = None,
) -> None:
    """Record the transfer's delivery, accepted at receipt: stock moves at both ends."""
    from datetime import UTC, datetime

    import orjson

    from gateway.alliance.supply.balance import transfer_delivery
    from gateway.fhir.json_text import ResourceText

    with outcome_on_error(), operator_service(database) as (service, ctx):
        data = orjson.loads(service.read("SupplyRequest", transfer, ctx).body or b"{}")
        when = datetime.now(UTC).isoformat(timespec="seconds")
        body = ResourceText.parse(orjson.dumps(transfer_delivery(data, transfer, trace, by, when, storage)))
        result = service.write(ctx, lambda tx: service.writer.create(tx, ctx, "SupplyDelivery", body))
        typer.echo(f"SupplyDelivery/{result.stored.res_id}")
