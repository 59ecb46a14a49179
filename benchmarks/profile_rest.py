#!/usr/bin/env python
"""Where a gateway read and a patient search spend their time, in process, layer by layer.

    python benchmarks/profile_rest.py --database sqlite:///tmp/bench-rest-100000.sqlite [--cprofile]

Times (mean per call, one thread, no network) the store call alone, the service call, and the
whole ASGI application (routing, context, thread-pool hop, response), so the differences are the
cost of each layer; ``--cprofile`` adds the top functions of the service calls. Use a database
built by ``bench_rest.py --keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(label: str, fn: Callable[[], Any], repeat: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    per_call = (time.perf_counter() - started) / repeat * 1000
    print(f"  {label:<44} {per_call:8.3f} ms")
    return per_call


def asgi_get(app: Any, path: str, query: str = "") -> Callable[[], None]:
    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"bench"), (b"accept", b"application/fhir+json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        status = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        assert status == [200], status

    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(call())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()

    from gateway.app import create_app
    from gateway.hooks import RequestContext
    from gateway.settings import Settings

    app = create_app(Settings(database=args.database, insecure_dev=True))  # the FHIR work, not token checks
    service, store = app.state.service, app.state.store
    ctx = RequestContext(base_url="http://bench/fhir", interaction="read", resource_type="MedicationRequest")
    with store.engine.connect() as conn:
        from sqlalchemy import text

        ids = [r[0] for r in conn.execute(text("SELECT res_id FROM resources WHERE res_type='MedicationRequest'"))]
        patients = [r[0] for r in conn.execute(text("SELECT res_id FROM resources WHERE res_type='Patient'"))]
    rng = random.Random(1)

    print("read-by-id")
    timed("store.read", lambda: store.read("MedicationRequest", rng.choice(ids)), args.repeat)
    timed("service.read", lambda: service.read("MedicationRequest", rng.choice(ids), ctx), args.repeat)
    rid = rng.choice(ids)
    timed("ASGI app GET /fhir/MedicationRequest/{id}", asgi_get(app, f"/fhir/MedicationRequest/{rid}"), args.repeat)

    print("patient search (first page)")

    def params() -> list[tuple[str, str]]:
        return [("patient", f"Patient/{rng.choice(patients)}")]

    query = service.parse_query("MedicationRequest", params(), ctx)
    timed("service.parse_query", lambda: service.parse_query("MedicationRequest", params(), ctx), args.repeat)
    timed(
        "store.search (ids)",
        lambda: store.search(
            service.parse_query("MedicationRequest", params(), ctx), count=20, offset=0, total=True, base_url=None
        ),
        args.repeat,
    )
    page = store.search(query, count=20, offset=0, total=True, base_url=None)
    keys = [("MedicationRequest", i) for i in page.ids]
    timed(f"store.read_many ({len(keys)} ids)", lambda: store.read_many(keys), args.repeat)
    timed("service.search (whole Bundle)", lambda: service.search("MedicationRequest", params(), ctx), args.repeat)
    patient = rng.choice(patients)
    timed(
        "ASGI app GET /fhir/MedicationRequest?patient=",
        asgi_get(app, "/fhir/MedicationRequest", f"patient=Patient/{patient}"),
        args.repeat,
    )
    if args.cprofile:
        for label, fn in (
            ("service.read", lambda: service.read("MedicationRequest", rng.choice(ids), ctx)),
            ("service.search", lambda: service.search("MedicationRequest", params(), ctx)),
        ):
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.repeat):
                fn()
            profiler.disable()
            print(f"\n== cProfile {label} ({args.repeat} calls), by own time")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
    store.dispose()


if __name__ == "__main__":
    main()
