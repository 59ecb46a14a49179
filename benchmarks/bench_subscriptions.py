#!/usr/bin/env python
"""Subscriptions end to end: events per second and write->delivery latency, with and without Redis.

Runnable script, not a test::

    python benchmarks/bench_subscriptions.py                      # SQLite, direct and Redis, 600 writes
    python benchmarks/bench_subscriptions.py --n 2000 --writers 8 --database postgresql+psycopg://...

Three real HTTP receivers (``http.server`` on 127.0.0.1:0) each hold one rest-hook
subscription to ``prescription-created`` (full-resource). ``--writers`` threads create ``--n``
MedicationRequests through the service (each write its own transaction, with its outbox row);
the dispatcher runs as ``yaolian serve`` runs it (fan-out from the outbox, or through the Redis
stream and consumer group with ``--redis``; leased delivery workers). Printed: deliveries per
second (3 per write) from the first write to the last delivery, and p50/p99 of the time from a
write's commit to its arrival at a receiver.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.events.dispatcher import Dispatcher
from gateway.events.relay import OutboxRelay
from gateway.events.subscriptions import SubscriptionRules
from gateway.fhir.json_text import ResourceText
from gateway.hooks import Pointcut, RequestContext
from gateway.principal import INSECURE_DEV
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.sql import open_store

CTX = RequestContext(base_url="http://bench/fhir", principal=INSECURE_DEV)


class Receiver:
    """One receiver in the receivers' own process (see :func:`serve_receivers`): arrivals are
    wall-clock times, fetched with ``GET /arrivals`` at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrivals: dict[str, float] = {}

    def count(self) -> int:
        with urllib.request.urlopen(self.url.replace("/hook", "/count")) as answer:
            return int(answer.read())

    def fetch(self) -> None:
        with urllib.request.urlopen(self.url.replace("/hook", "/arrivals")) as answer:
            self.arrivals = json.loads(answer.read())


def serve_receivers(n: int) -> None:
    """Run ``n`` receivers in this process (a process of their own, so they do not share the
    gateway's interpreter lock); print their URLs, serve until stdin closes."""
    servers = []
    for _ in range(n):
        arrivals: dict[str, float] = {}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            seen = arrivals
            seen_lock = lock

            def do_POST(self) -> None:
                bundle = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.time()
                with self.seen_lock:
                    for entry in bundle["entry"][1:]:
                        self.seen.setdefault(entry["resource"]["id"], now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                with self.seen_lock:
                    body = json.dumps(self.seen if self.path.endswith("/arrivals") else len(self.seen)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        print(f"http://127.0.0.1:{server.server_address[1]}/hook", flush=True)
    sys.stdin.read()


@contextmanager
def receivers(n: int) -> Iterator[list[Receiver]]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-receivers", str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        yield [Receiver(proc.stdout.readline().strip()) for _ in range(n)]
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def _rx(i: int) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/p{i % 50}"},
            "medication": {
                "concept": {"coding": [{"system": "http://yaolian.org/fhir/sid/nhsa-drug-code", "code": "X1"}]}
            },
        }
    )


@contextmanager
def running(settings: Settings, stream: str) -> Iterator[FhirService]:
    store = open_store(settings.database)
    store.create_schema()
    service = FhirService(store, settings)
    SubscriptionRules().install(service)
    relay = OutboxRelay(store, settings.redis, stream=stream, republish_after=settings.outbox_republish_seconds)
    dispatcher = Dispatcher(service, settings, relay=relay, stream=stream, base_url="http://bench/fhir")
    service.hooks.register(Pointcut.AFTER_COMMIT, relay.notify)
    service.hooks.register(Pointcut.AFTER_COMMIT, dispatcher.notify)
    relay.start(interval=0.05)
    dispatcher.start()
    try:
        yield service
    finally:
        dispatcher.stop()
        relay.stop()
        store.dispose()


def create(service: FhirService, body: bytes) -> str:
    text = ResourceText.parse(body)
    return service.write(CTX, lambda tx: service.writer.create(tx, CTX, "MedicationRequest", text).stored.res_id)


def run(database: str, redis_url: str | None, n: int, writers: int, max_count: int) -> dict[str, float]:
    stream = f"yaolian:bench:{uuid.uuid4().hex}"
    settings = Settings(database=database, redis=redis_url, audit=False, delivery_poll_seconds=0.2, delivery_workers=4)
    with receivers(3) as subscribers, running(settings, stream) as service:
        for r in subscribers:
            sub = {
                "resourceType": "Subscription",
                "status": "requested",
                "topic": "http://yaolian.org/fhir/SubscriptionTopic/prescription-created",
                "channelType": {"code": "rest-hook"},
                "endpoint": r.url,
                "content": "full-resource",
                "maxCount": max_count,
            }
            text = ResourceText.parse(orjson.dumps(sub))
            service.write(CTX, lambda tx, text=text: service.writer.create(tx, CTX, "Subscription", text))
        time.sleep(1.5)  # handshakes done
        written: dict[str, float] = {}
        lock = threading.Lock()
        bodies = [_rx(i) for i in range(n)]

        def writer(k: int) -> None:
            for i in range(k, n, writers):
                rid = create(service, bodies[i])
                with lock:
                    written[rid] = time.time()

        start = time.time()
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(r.count() < n for r in subscribers):
            time.sleep(0.1)
        for r in subscribers:
            r.fetch()
        end = max(max(r.arrivals.values(), default=start) for r in subscribers)
    latencies = sorted(
        (r.arrivals[rid] - at) * 1000 for r in subscribers for rid, at in written.items() if rid in r.arrivals
    )
    delivered = sum(len(r.arrivals) for r in subscribers)
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        client.delete(stream)
        client.close()
    return {
        "writes": n,
        "delivered": delivered,
        "events_per_s": delivered / (end - start),
        "writes_per_s": n / (max(written.values()) - start),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


@contextmanager
def fresh(database: str | None, tmp: str) -> Iterator[str]:
    """An empty database per run: a SQLite file, or a new PostgreSQL schema (dropped after)."""
    if not database or not database.startswith("postgres"):
        yield database or f"sqlite:///{tmp}/bench.sqlite"
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(database)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{database}{'&' if '?' in database else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--database", default=None, help="default: a temporary SQLite file per run")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip the Redis run")
    parser.add_argument("--max-count", type=int, default=1, help="Subscription.maxCount: events per notification")
    parser.add_argument("--serve-receivers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receivers:
        serve_receivers(args.serve_receivers)
        return
    modes = [("direct (outbox)", None)] + ([("redis streams", args.redis)] if args.redis else [])
    print(
        f"{args.n} writes, {args.writers} writer threads, "
        f"3 rest-hook subscribers (full-resource, maxCount {args.max_count})"
    )
    print(f"{'mode':<18}{'database':<12}{'delivered':>10}{'events/s':>10}{'writes/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, redis_url in modes:
        with tempfile.TemporaryDirectory() as tmp, fresh(args.database, tmp) as database:
            r = run(database, redis_url, args.n, args.writers, args.max_count)
        kind = database.split(":", 1)[0].split("+")[0]
        print(
            f"{name:<18}{kind:<12}{int(r['delivered']):>10}{r['events_per_s']:>10.0f}{r['writes_per_s']:>10.0f}"
            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
        )


if __name__ == "__main__":
    main()
