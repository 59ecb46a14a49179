"""``yaolian deliveries list|retry|counts|prune|insurance-status``: the subscription deliveries and
their dead letters, and what the insurance platform says of a prescription the feed uploaded.

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

from gateway.clock import instant_of
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


@app.command()
def prune(
    older_than: Annotated[
        float, typer.Option("--older-than", min=1.0, help="Days: delivered events older than this are forgotten")
    ] = 30.0,
    database: Annotated[str | None, DATABASE] = None,
) -> None:
    """Forget delivered events (and the outbox rows they came from) older than --older-than days.

    Retention: without it both tables keep a row per change for ever. Dead letters and pending
    events stay whatever their age; ``$events`` can no longer replay what was pruned. At least
    one day is kept, so a delivery still being retried never loses the row that de-duplicates it."""
    before = instant_of(time.time() - older_than * 86400)
    with operator_service(database) as (service, _ctx):
        deliveries, rows = service.store.deliveries_prune(before)
    typer.echo(f"{deliveries} delivered event(s) and {rows} outbox row(s) created before {before} removed")


@app.command("insurance-status")
def insurance_status_(
    rx_id: Annotated[str, typer.Argument(help="MedicationRequest id")],
    database: Annotated[str | None, DATABASE] = None,
) -> None:
    """Ask the insurance platform (7105, 7106) about an uploaded prescription: a Parameters resource."""
    from gateway.commands._supply import outcome_on_error, print_json
    from gateway.events.insurance.status import insurance_status
    from gateway.settings import get_settings

    with outcome_on_error(), operator_service(database) as (service, ctx):
        print_json(insurance_status(service, rx_id, ctx, timeout=get_settings().delivery_timeout_seconds))


#: The health commission's monitoring feed: prescriptions and stock alerts, as counts only.
HEALTH_COMMISSION_TOPICS = ("prescription-created", "stock-alert-raised", "shortage-registered")


def health_commission_subscriptions(endpoint: str, headers: list[str]) -> list[dict[str, object]]:
    """The preset Subscriptions (channel ``aggregate``: MeasureReports of counts, up to 100
    events each), one per topic, tagged so a second run finds them instead of adding more."""
    parameters = []
    for header in headers:
        name, _, value = header.partition(":")
        parameters.append({"name": name.strip(), "value": value.strip()})
    return [
        {
            "resourceType": "Subscription",
            "identifier": [
                {"system": "http://yaolian.org/fhir/sid/preset-subscription", "value": f"health-commission-{t}"}
            ],
            "name": f"health-commission-{t}",
            "status": "requested",
            "topic": f"http://yaolian.org/fhir/SubscriptionTopic/{t}",
            "channelType": {
                "system": "http://yaolian.org/fhir/CodeSystem/subscription-channel-type",
                "code": "aggregate",
            },
            "endpoint": endpoint,
            "content": "empty",
            "maxCount": 100,
            **({"parameter": parameters} if parameters else {}),
        }
        for t in HEALTH_COMMISSION_TOPICS
    ]


@app.command("preset-health-commission")
def preset_health_commission(
    endpoint: Annotated[str, typer.Option(help="Where the commission's feed receives MeasureReports")],
    header: Annotated[list[str] | None, typer.Option(help='"Name: value" sent with each report (repeatable)')] = None,
    database: Annotated[str | None, DATABASE] = None,
) -> None:
    """Create (or update) the health commission's preset subscriptions: counts only."""
    import orjson

    from gateway.fhir.json_text import ResourceText

    with operator_service(database) as (service, ctx):
        for data in health_commission_subscriptions(endpoint, header or []):
            ident = data["identifier"][0]  # type: ignore[index]
            criteria = f"identifier={ident['system']}|{ident['value']}"
            body = ResourceText.parse(orjson.dumps(data))

            def put(tx: object, body: ResourceText = body, criteria: str = criteria) -> str:
                found = service.writer.matching_ids(tx, ctx, "Subscription", criteria)  # type: ignore[arg-type]
                if found:
                    with_id = ResourceText.parse(orjson.dumps({**body.data, "id": found[0]}))
                    result = service.writer.update(tx, ctx, "Subscription", found[0], with_id)  # type: ignore[arg-type]
                else:
                    result = service.writer.create(tx, ctx, "Subscription", body)  # type: ignore[arg-type]
                return result.stored.res_id

            typer.echo(f"Subscription/{service.write(ctx, put)}\t{data['name']}")


COMMAND = FeatureCommand(
    "deliveries", "Subscription deliveries: list, retry dead letters, counts; insurance-status of a prescription.", app
)
