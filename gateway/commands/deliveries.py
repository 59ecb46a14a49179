"""``yaolian deliveries list|retry|counts``: the subscription deliveries and their dead letters.

A delivery that failed for longer than ``delivery_retry_hours`` is a dead letter: it stays
stored with its eventNumber, last error and attempts. ``retry`` puts dead letters back in line
(with a fresh retry budget), once the receiver is repaired; a receiver can also fetch them by
number itself with ``GET Subscription/{id}/$events``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from gateway.commands import FeatureCommand, operator_service

app = typer.Typer(help="Subscription deliveries: list them, retry dead letters.", no_args_is_help=True)
DATABASE = typer.Option(help="sqlite:///FILE or postgresql://… [env YAOLIAN_DATABASE]")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if epoch else "-"


@app.command("list")
def list_(
    subscription: Annotated[str | None, typer.Option(help="Only this Subscription id")] = None,
    status: Annotated[str | None, typer.Option(help="pending | delivered | dead")] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 50,
    database: Annotated[str | None, DATABASE] = None,
) -> None:
    """Deliveries in (subscription, eventNumber) order, with their state and last error."""
    with operator_service(database) as (service, ctx):
        if subscription is not None:
            service.read("Subscription", subscription, ctx)  # a missing one says so (404 outcome)
        rows = service.store.deliveries_list(subscription, status, limit)
    typer.echo("subscription\tevent\tstatus\tattempts\tnext_attempt\tfocus\tlast_error")
    for d in rows:
        focus = f"{d.res_type}/{d.res_id}/_history/{d.version}"
        next_try = _when(d.next_attempt) if d.status == "pending" else "-"
        typer.echo(f"{d.sub_id}\t{d.event_number}\t{d.status}\t{d.attempts}\t{next_try}\t{focus}\t{d.last_error or ''}")


@app.command()
def retry(
    subscription: Annotated[str | None, typer.Option(help="Only this Subscription id")] = None,
    event: Annotated[list[int] | None, typer.Option(help="Only these eventNumbers (repeatable)")] = None,
    database: Annotated[str | None, DATABASE] = None,
) -> None:
    """Put dead letters back in line, due now, with a fresh retry budget."""
    with operator_service(database) as (service, ctx):
        if subscription is not None:
            service.read("Subscription", subscription, ctx)
        elif event:
            raise typer.BadParameter("--event needs --subscription (eventNumbers are per subscription)")
        count = service.store.deliveries_retry(subscription, event or None, time.time())
    typer.echo(f"{count} dead letter(s) put back in line")


@app.command()
def counts(database: Annotated[str | None, DATABASE] = None) -> None:
    """How many deliveries are pending, delivered and dead."""
    with operator_service(database) as (service, _ctx):
        found = service.store.deliveries_counts()
    for status in ("pending", "delivered", "dead"):
        typer.echo(f"{status}\t{found.get(status, 0)}")


COMMAND = FeatureCommand("deliveries", "Subscription deliveries: list, retry dead letters, counts.", app)
