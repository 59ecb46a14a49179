#!/usr/bin/env python
"""Server CPU per request with access control and audit on vs ``--insecure-dev``, in process.

Runnable script, not a test::

    python benchmarks/bench_audit_cpu.py                       # SQLite, read and search, 3 rounds
    python benchmarks/bench_audit_cpu.py --backend postgresql --requests 2000

Why beside ``bench_audit.py``: req/s over sockets on this 2-core box moves by 2x when anything
else runs (the load generator shares the cores with the server), so its on/off ratio is only as
good as the quiet of the box. Here the gateway's ASGI app is called directly, one request at a
time, and the figure is the gateway process's CPU time per request (all its threads), the
minimum over alternating rounds: what each mode costs, not what the neighbours did. The audit
chainer process's CPU (chaining the spooled records) is shown beside it. The modes:
``insecure`` (``--insecure-dev``, audit off), ``auth`` (bearer token and access policy, audit
off), ``audit`` (insecure, audit on), ``auth+audit`` (production).
Target of issue 11: auth+audit at most 15% lower throughput, i.e. at most 1/0.85 = 1.18x the
CPU of ``insecure``.

``--instructions`` counts instructions instead (valgrind callgrind, switched on only around the
requests): the same every run whatever else the box does.

Figures go to stdout and to ``benchmarks/results/audit-cpu-<date>.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_audit  # the insurance client of the socket benchmark
import bench_rest  # the database of the REST benchmark

MODES = ("insecure", "auth", "audit", "auth+audit")


async def _call(app: Any, path: str, query: str, headers: list[tuple[bytes, bytes]]) -> int:
    """One GET through the whole ASGI stack (middleware, routes, hooks), no socket."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"application/fhir+json"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "root_path": "",
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _measure(
    db: Any, mode: str, paths: list[str], client: tuple[str, str], requests: int, callgrind: bool = False
) -> tuple[float, float]:
    from gateway.app import create_app
    from gateway.settings import Settings

    settings = Settings(
        database=db.gateway_url,
        insecure_dev=not mode.startswith("auth"),
        audit=mode.endswith("audit"),
        rate_limit_per_second=1e9,
        rate_limit_burst=1_000_000_000,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        headers: list[tuple[bytes, bytes]] = []
        if mode.startswith("auth"):
            authority = app.state.authenticator.authority
            answer = authority.token({"grant_type": "client_credentials"}, client, "http://127.0.0.1/auth/token")
            token = answer["access_token"]
            headers.append((b"authorization", f"Bearer {token}".encode()))
        for p in paths[:100]:  # warm caches (token, client, pages)
            path, _, query = p.partition("?")
            assert await _call(app, path, query, headers) == 200
        trail = app.state.audit
        chainer = trail._chainer if trail is not None else None
        if callgrind:  # count the instructions of the requests only (valgrind --instr-atstart=no)
            subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True, check=False)
        started, chainer_started = time.process_time(), _cpu_of(chainer)
        for i in range(requests):
            path, _, query = paths[i % len(paths)].partition("?")
            status = await _call(app, path, query, headers)
            assert status == 200, (mode, paths[i % len(paths)], status)
        gateway = time.process_time() - started
        if callgrind:
            subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], capture_output=True, check=False)
        if chainer is not None and not callgrind:  # let it finish this round's records, count its CPU
            while trail.spool is not None and any(trail.spool.directory.glob("*.spool")) and _pending(trail):
                await asyncio.sleep(0.05)
        return gateway / requests * 1e6, (_cpu_of(chainer) - chainer_started) / requests * 1e6


def _cpu_of(process: Any) -> float:
    """CPU seconds (user + system) of a child process so far (0 without one)."""
    if process is None:
        return 0.0
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pending(trail: Any) -> bool:
    """Whether the spool holds records the chainer has not chained yet."""
    spool = trail.spool
    return sum(p.stat().st_size - trail.store.audit_spool_chained(p.name) for p in spool.directory.glob("*.spool")) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="synthetic MedicationRequests (default 10000)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=3000, help="requests per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default="read,search")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--data-dir", default=tempfile.gettempdir())
    parser.add_argument("--output", help="markdown file (default benchmarks/results/audit-cpu-<date>.md)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instead of CPU time: instructions per request of each mode under valgrind callgrind "
        "(deterministic, whatever else the box runs; ~30 s per mode)",
    )
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)  # one mode, run under callgrind
    args = parser.parse_args()
    args.reuse, args.keep, args.load_workers, args.workers, args.scale = True, True, 2, 1, 1
    if args.instructions:
        _instructions(args)
        return
    os.environ.setdefault("YAOLIAN_LOG_LEVEL", "warning")
    db = bench_rest.prepare_sqlite(args) if args.backend == "sqlite" else bench_rest.prepare_postgres(args)
    rng = random.Random(bench_rest.SEED)
    seed = bench_rest.SEED
    patients = -(-args.n // bench_rest.PER_PATIENT)
    paths = {
        "read": [f"/fhir/MedicationRequest/syn{seed}-rx-{rng.randrange(args.n):08d}" for _ in range(5000)],
        "search": [
            f"/fhir/MedicationRequest?patient=Patient/syn{seed}-pat-{rng.randrange(patients):07d}" for _ in range(5000)
        ],
    }
    client = bench_audit.insurance_client(db.gateway_url)
    if args.one:
        scenario = args.scenarios.split(",")[0]
        asyncio.run(_measure(db, args.one, paths[scenario], client, args.requests, callgrind=True))
        return
    cpu: dict[tuple[str, str], list[float]] = {}
    chained: dict[tuple[str, str], list[float]] = {}
    for round_no in range(args.rounds):
        for scenario in args.scenarios.split(","):
            requests = args.requests if scenario == "read" else max(200, args.requests // 6)
            for mode in MODES:
                micros, chainer = asyncio.run(_measure(db, mode, paths[scenario], client, requests))
                cpu.setdefault((scenario, mode), []).append(micros)
                chained.setdefault((scenario, mode), []).append(chainer)
                print(
                    f"  round {round_no + 1} {scenario:<7} {mode:<11} {micros:8.0f} µs CPU/request"
                    f" (+ chainer process {chainer:5.0f})",
                    flush=True,
                )
    lines = [
        f"# Access control and audit: server CPU per request ({date.today().isoformat()})",
        "",
        f"`python benchmarks/bench_audit_cpu.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"{args.backend}, {args.n:,} synthetic MedicationRequests; in process (ASGI called directly, no socket), "
        f"one request at a time; process CPU per request (all threads), minimum of {args.rounds} alternating "
        "rounds. Throughput ratio = insecure CPU / mode CPU (target for auth+audit: at least 0.85).",
        "",
        "| scenario | mode | gateway µs CPU/request | throughput vs insecure | chainer process µs CPU/record |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for scenario in args.scenarios.split(","):
        base = min(cpu[(scenario, "insecure")])
        for mode in MODES:
            best = min(cpu[(scenario, mode)])
            side = min(chained[(scenario, mode)])
            lines.append(f"| {scenario} | {mode} | {best:,.0f} | {base / best:.2f} | {side:,.0f} |")
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    out = Path(args.output) if args.output else Path(__file__).parent / "results" / f"audit-cpu-{date.today()}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(f"written to {out}")


def _instructions(args: argparse.Namespace) -> None:
    """Each mode in a process of its own under callgrind, instructions collected only around
    the timed requests; per request, and against ``insecure``."""
    figures: dict[tuple[str, str], float] = {}
    for scenario in args.scenarios.split(","):
        for mode in MODES:
            command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null"]
            command += [sys.executable, __file__, "--one", mode, "--scenarios", scenario, "--n", str(args.n)]
            command += ["--requests", str(args.requests), "--backend", args.backend, "--data-dir", args.data_dir]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            found = re.search(r"Collected : (\d+)", done.stderr)
            assert found, done.stderr[-2000:]
            figures[(scenario, mode)] = int(found.group(1)) / args.requests
            base = figures[(scenario, "insecure")]
            per = figures[(scenario, mode)]
            print(f"  {scenario:<7} {mode:<11} {per:12,.0f} instructions/request  {per / base - 1:+.1%}", flush=True)
    lines = [
        f"# Access control and audit: instructions per request ({date.today().isoformat()})",
        "",
        f"`python benchmarks/bench_audit_cpu.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"{args.backend}, {args.n:,} synthetic MedicationRequests; valgrind callgrind, instructions of the gateway "
        f"process counted only around {args.requests} requests (ASGI called directly); the audit chainer "
        "process is not counted (it chains on the other core).",
        "",
        "| scenario | mode | instructions/request | vs insecure |",
        "| --- | --- | ---: | ---: |",
    ]
    for (scenario, mode), per in figures.items():
        lines.append(f"| {scenario} | {mode} | {per:,.0f} | {per / figures[(scenario, 'insecure')] - 1:+.1%} |")
    out = Path(args.output) if args.output else Path(__file__).parent / "results" / f"audit-instr-{date.today()}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
