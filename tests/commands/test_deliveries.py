"""``yaolian deliveries list|retry|counts`` on stored dead letters."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from typer.testing import CliRunner

from gateway.cli import app
from gateway.commands import operator_service
from gateway.fhir.json_text import ResourceText
from gateway.store.base import DeliveryOutcome, FanOut
from tests.events.conftest import prescription, subscription


def test_list_shows_dead_letters_and_retry_puts_them_back(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'd.db'}"
    with operator_service(database) as (service, ctx):

        def create(data: dict[str, object]) -> str:
            body = ResourceText.parse(orjson.dumps(data))
            with service.store.transaction() as tx:
                return service.writer.create(tx, ctx, str(data["resourceType"]), body).stored.res_id

        sub_id = create(subscription("http://127.0.0.1:9/x"))
        rx = create(prescription())
        store = service.store
        events = store.outbox_pending(10)
        store.outbox_fan_out([FanOut(events[0].seq, starts=((sub_id, "t"),)), FanOut(events[1].seq, (sub_id,))], "now")
        assert store.deliveries_claim("me", time.time(), 60, 1) == [sub_id]
        store.deliveries_record(sub_id, "me", [DeliveryOutcome(1, "dead", 7, 0, 1.0, "HTTP 503: down")], time.time())
        store.deliveries_release(sub_id, "me")
    runner = CliRunner()
    listed = runner.invoke(app, ["deliveries", "list", "--status", "dead", "--database", database])
    assert listed.exit_code == 0, listed.output
    assert f"{sub_id}\t1\tdead\t7\t-\tMedicationRequest/{rx}/_history/1\tHTTP 503: down" in listed.output
    counted = runner.invoke(app, ["deliveries", "counts", "--database", database])
    assert "dead\t1" in counted.output
    retried = runner.invoke(
        app, ["deliveries", "retry", "--subscription", sub_id, "--event", "1", "--database", database]
    )
    assert retried.exit_code == 0 and "1 dead letter(s)" in retried.output, retried.output
    listed = runner.invoke(app, ["deliveries", "list", "--subscription", sub_id, "--database", database])
    assert f"{sub_id}\t1\tpending\t0" in listed.output
    missing = runner.invoke(app, ["deliveries", "list", "--subscription", "nope", "--database", database])
    assert missing.exit_code != 0


def test_the_health_commission_preset_sends_counts_only(tmp_path: Path) -> None:
    """POL-14/POL-17: the commission's feed carries aggregates, no patient and no resource id."""
    from fastapi.testclient import TestClient

    from gateway.app import create_app
    from gateway.settings import Settings
    from tests.events.conftest import Receiver

    database = f"sqlite:///{tmp_path / 'hc.db'}"
    receiver = Receiver()
    try:
        runner = CliRunner()
        for _ in range(2):  # a second run updates, it does not add
            made = runner.invoke(app, ["deliveries", "preset-health-commission", "--endpoint", receiver.url,
                                       "--header", "X-Feed: hc", "--database", database])  # fmt: skip
            assert made.exit_code == 0, made.output
        settings = Settings(database=database, delivery_poll_seconds=0.1)
        with TestClient(create_app(settings)) as client:
            assert client.get("/fhir/Subscription").json()["total"] == 3
            ids = [
                client.post("/fhir/MedicationRequest", json=prescription(patient=f"secret-{i}")).json()["id"]
                for i in range(4)
            ]
            assert receiver.wait_for(
                lambda: sum(r["group"][0]["population"][0]["count"] for r in receiver.bundles()) >= 4
            )
        reports = receiver.bundles()
        assert all(r["resourceType"] == "MeasureReport" and r["type"] == "summary" for r in reports)
        assert sum(r["group"][0]["population"][0]["count"] for r in reports) == 4
        text = orjson.dumps(reports).decode()
        assert "secret-" not in text and not any(i in text for i in ids)
        drugs = {s["valueCodeableConcept"]["text"] for r in reports for s in r["group"][0]["stratifier"][2]["stratum"]}
        assert drugs == {"X001"}
        assert all(h["x-feed"] == "hc" for h, _ in receiver.received)
    finally:
        receiver.close()


def test_prune_forgets_old_delivered_events_and_keeps_dead_letters_and_recent_ones(database_url: str) -> None:
    """Retention: only delivered events (and relayed outbox rows) older than the cut-off go."""
    from sqlalchemy import create_engine, update

    from gateway.clock import instant_of
    from gateway.store.schema import outbox

    long_ago = instant_of(time.time() - 40 * 86400)
    with operator_service(database_url) as (service, ctx):
        store = service.store
        with store.transaction() as tx:
            body = ResourceText.parse(orjson.dumps(subscription("http://127.0.0.1:9/x")))
            sub_id = service.writer.create(tx, ctx, "Subscription", body).stored.res_id
        for _ in range(4):
            with store.transaction() as tx:
                service.writer.create(tx, ctx, "MedicationRequest", ResourceText.parse(orjson.dumps(prescription())))
        events = store.outbox_pending(10)
        assert len(events) == 5
        engine = create_engine(database_url)  # the first four changes happened 40 days ago
        with engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.seq.in_([e.seq for e in events[:4]])).values(created=long_ago))
        engine.dispose()
        old = [FanOut(events[0].seq, starts=((sub_id, "t"),)), *(FanOut(e.seq, (sub_id,)) for e in events[1:4])]
        store.outbox_fan_out(old, long_ago)  # events 1-3 of the subscription, 40 days old
        store.outbox_fan_out([FanOut(events[4].seq, (sub_id,))], instant_of(time.time()))  # event 4: today
        assert store.deliveries_claim("me", time.time(), 60, 1) == [sub_id]
        outcomes = [
            DeliveryOutcome(1, "delivered", 1, 0, 0.0, None),
            DeliveryOutcome(2, "dead", 9, 0, 1.0, "HTTP 503: down"),
            DeliveryOutcome(4, "delivered", 1, 0, 0.0, None),
        ]  # event 3 stays pending
        store.deliveries_record(sub_id, "me", outcomes, time.time())
        store.deliveries_release(sub_id, "me")
    runner = CliRunner()
    pruned = runner.invoke(app, ["deliveries", "prune", "--older-than", "30", "--database", database_url])
    assert pruned.exit_code == 0, pruned.output
    assert pruned.output.startswith("1 delivered event(s) and 4 outbox row(s)"), pruned.output
    with operator_service(database_url) as (service, _ctx):
        kept = {(d.event_number, d.status) for d in service.store.deliveries_list(sub_id, None, 10)}
        assert kept == {(2, "dead"), (3, "pending"), (4, "delivered")}
        assert [e.seq for e in service.store.outbox_pending(10)] == []
    too_short = runner.invoke(app, ["deliveries", "prune", "--older-than", "0.5", "--database", database_url])
    assert too_short.exit_code != 0  # at least a day is always kept
