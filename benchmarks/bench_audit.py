#!/usr/bin/env python
"""What the audit trail costs: read and search throughput with audit on vs off, in one run.

Runnable script, not a test::

    python benchmarks/bench_audit.py                        # 20k MedicationRequests, SQLite and PostgreSQL
    python benchmarks/bench_audit.py --backends sqlite --duration 20 --rounds 3

It builds the same database as ``bench_rest.py`` (the demo alliance plus ``--n`` synthetic
MedicationRequests) and then starts ``gateway.asgi:app`` with ``YAOLIAN_AUDIT=false`` and with
``YAOLIAN_AUDIT=true`` in turn (``--rounds`` times, alternating, so drift of the shared box hits
both alike), drives read-by-id and patient-scoped search the same way each time and prints
req/s both ways and the ratio (target: audit on at most 15% lower). With audit on every answered
request commits its AuditEvent before the response leaves (group commit: concurrent requests
share one transaction). ``--env KEY=VALUE`` is passed to both servers (e.g. the settings that
turn authentication on, so "on" is auth + audit against ``--insecure-dev``).

Figures go to stdout and to ``benchmarks/results/audit-<date>.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_rest  # the database, server and load generator of the REST benchmark


def audit_rows(url: str) -> int:
    from sqlalchemy import text

    from gateway.store.sql import open_store

    store = open_store(url)
    try:
        store.create_schema()
        with store.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one())
    finally:
        store.dispose()


def insurance_client(url: str) -> tuple[str, str]:
    """An insurance client (reads every member's prescriptions: the policy's checks run on each
    result, none of its restrictions empties them), registered in the benchmark database."""
    from gateway.principal import Role
    from gateway.security.clients import register
    from gateway.store.sql import open_store

    store = open_store(url)
    try:
        store.create_schema()
        done = register(store, "bench insurance", Role.INSURANCE, secret=True)
    finally:
        store.dispose()
    assert done.secret is not None
    return done.client.client_id, done.secret


def bearer(url: str, client: tuple[str, str]) -> str:
    import httpx

    base = url.split("/fhir")[0]
    answer = httpx.post(f"{base}/auth/token", data={"grant_type": "client_credentials"}, auth=client, timeout=10)
    answer.raise_for_status()
    return f"Bearer {answer.json()['access_token']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="synthetic MedicationRequests (default 20000)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--scenarios", default="read,search")
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured load before each")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs per backend (alternating)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--load-workers", type=int, default=2, help="processes for bulk render/index")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--data-dir", default=tempfile.gettempdir())
    parser.add_argument("--reuse", action="store_true", help="reuse a database of at least --n rows if present")
    parser.add_argument("--keep", action="store_true", help="keep the databases (for --reuse)")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for both servers")
    parser.add_argument(
        "--secure",
        action="store_true",
        help="'on' is the production setting - a bearer token, access policy and audit - and 'off' is "
        "--insecure-dev with audit off (issue 11's comparison); the per-client rate limit is lifted",
    )
    parser.add_argument("--output", help="markdown file (default benchmarks/results/audit-<date>.md)")
    args = parser.parse_args()
    args.scale = 1
    tool = ("wrk" if shutil.which("wrk") else "python") if args.tool == "auto" else args.tool
    rng = random.Random(bench_rest.SEED)
    patients = math.ceil(args.n / bench_rest.PER_PATIENT)
    seed = bench_rest.SEED
    paths = {
        "read": [f"/MedicationRequest/syn{seed}-rx-{rng.randrange(args.n):08d}" for _ in range(5000)],
        "search": [
            f"/MedicationRequest?patient=Patient/syn{seed}-pat-{rng.randrange(patients):07d}" for _ in range(5000)
        ],
    }
    scenarios = args.scenarios.split(",")
    for item in args.env:
        key, _, value = item.partition("=")
        os.environ[key] = value
    print(f"load generator: {tool}; {args.connections} connections, {args.duration:g}s per figure")

    # (backend, scenario, mode) -> req/s of each round
    figures: dict[tuple[str, str, str], list[float]] = {}
    latency: dict[tuple[str, str, str], list[float]] = {}
    recorded: dict[str, int] = {}
    for backend in args.backends.split(","):
        print(f"\n== {backend}")
        db = bench_rest.prepare_sqlite(args) if backend == "sqlite" else bench_rest.prepare_postgres(args)
        try:
            before = audit_rows(db.gateway_url)
            for _ in range(args.rounds):
                for mode in ("off", "on"):
                    os.environ["YAOLIAN_AUDIT"] = "true" if mode == "on" else "false"
                    client = None
                    if args.secure:
                        os.environ["YAOLIAN_INSECURE_DEV"] = "false" if mode == "on" else "true"
                        os.environ["YAOLIAN_RATE_LIMIT_PER_SECOND"] = "1000000"
                        os.environ["YAOLIAN_RATE_LIMIT_BURST"] = "1000000"
                        client = insurance_client(db.gateway_url) if mode == "on" else None
                    with bench_rest.server("gateway", db, args, paths["read"][0], client) as (url, _pid):
                        os.environ["BENCH_AUTHORIZATION"] = bearer(url, client) if args.secure and client else ""
                        for scenario in scenarios:
                            bench_rest.run_load(url, paths[scenario], None, args.warmup, args.connections, tool)
                            m = bench_rest.run_load(url, paths[scenario], None, args.duration, args.connections, tool)
                            figures.setdefault((backend, scenario, mode), []).append(m.rps)
                            latency.setdefault((backend, scenario, mode), []).append(m.p50_ms)
                            print(
                                f"  audit {mode:<3} {scenario:<7} {m.rps:>8,.0f} req/s  p50 {m.p50_ms:6.2f} ms  "
                                f"p99 {m.p99_ms:6.2f} ms  errors {m.errors}",
                                flush=True,
                            )
            recorded[backend] = audit_rows(db.gateway_url) - before
        finally:
            for name in ("YAOLIAN_AUDIT", "YAOLIAN_INSECURE_DEV", "BENCH_AUTHORIZATION"):
                os.environ.pop(name, None)
            bench_rest.drop(db, args)

    lines = [
        f"# Audit trail cost ({date.today().isoformat()})",
        "",
        f"`python benchmarks/bench_audit.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"{args.n:,} synthetic MedicationRequests; {tool} load generator, {args.connections} connections, "
        f"{args.workers} worker(s), {args.duration:g} s per figure, mean of {args.rounds} alternating rounds; "
        f"{os.cpu_count()} CPUs shared by server, database and load generator.",
        "",
        "| backend | scenario | audit off req/s | audit on req/s | on/off | p50 off ms | p50 on ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend in args.backends.split(","):
        for scenario in scenarios:
            off = sum(figures[(backend, scenario, "off")]) / args.rounds
            on = sum(figures[(backend, scenario, "on")]) / args.rounds
            p50_off = sum(latency[(backend, scenario, "off")]) / args.rounds
            p50_on = sum(latency[(backend, scenario, "on")]) / args.rounds
            lines.append(
                f"| {backend} | {scenario} | {off:,.0f} | {on:,.0f} | {on / off:.2f} | {p50_off:.2f} | {p50_on:.2f} |"
            )
    lines += ["", "AuditEvents recorded while audit was on: " + ", ".join(f"{b} {n:,}" for b, n in recorded.items())]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    out = Path(args.output) if args.output else bench_rest.RESULTS / f"audit-{date.today().isoformat()}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
