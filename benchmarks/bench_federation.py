#!/usr/bin/env python
"""The federated prescription query against 30 live members on loopback.

Runnable script, not a test::

    python benchmarks/bench_federation.py                  # 30 members, 200 queries
    python benchmarks/bench_federation.py --members 30 --queries 300 --delay 0.05 --jitter 0.005

Each member is a real HTTP server (its own port; a minimal HTTP/1.1 server, all 30 in one
event loop of a separate process) answering ``MedicationRequest``/``MedicationDispense`` searches after ``delay`` ±
``jitter`` seconds with a small searchset. The gateway is the real app (uvicorn in its own
process on uvloop, as ``yaolian serve`` runs it; SQLite, audit off, answer cache off), asked
``GET /fhir/Patient/$prescriptions`` over HTTP by this process, one query at a time. Printed:

1. p50/p90/p99 of the federated query with every member healthy (targets: p50 <= 1.2 x the
   member delay = 60 ms, p99 <= 80 ms);
2. the same with one member that accepts the connection and never answers: every answer must
   come within ``federation_timeout`` + 20 ms, with an outcome naming that member (its
   breaker is set so it never opens here, to measure the timeout itself);
3. the floor: the same members asked all at once by the gateway's client code alone (no
   gateway, no HTTP in front of it), and asked one after another, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.app import create_app
from gateway.federation.endpoints import endpoint_resource
from gateway.federation.fanout import started_one_by_one
from gateway.federation.registry import MemberRegistry
from gateway.federation.remote import MemberClient
from gateway.settings import Settings

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
ID_NUMBER = "140423195603071234"
TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"
MEMBER = "http://yaolian.org/fhir/sid/member"


def member_bundle(code: str, resource_type: str) -> bytes:
    entries: list[dict[str, Any]] = [
        {
            "resource": {"resourceType": "Medication", "id": "m1", "code": {"text": "苯磺酸氨氯地平片"}},
            "search": {"mode": "include"},
        }
    ]
    for n in range(2):
        record: dict[str, Any] = {
            "resourceType": resource_type,
            "id": f"{code}-{n}",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.20", "value": f"{code}-{resource_type[10:]}-{n}"}],
            "status": "active" if resource_type == "MedicationRequest" else "completed",
            "subject": {"reference": "Patient/p1"},
            "medication": {"reference": {"reference": "Medication/m1"}},
            "meta": {"lastUpdated": "2026-11-01T00:00:00Z"},
        }
        if resource_type == "MedicationRequest":
            record.update(intent="order", authoredOn=f"2026-11-{1 + n:02d}T09:00:00+08:00")
        else:
            record["whenHandedOver"] = f"2026-11-{1 + n:02d}T10:00:00+08:00"
        entries.insert(0, {"resource": record, "search": {"mode": "match"}})
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": 2, "entry": entries})


def batch_answer(answers: dict[bytes, bytes]) -> bytes:
    """The batch-response to the gateway's batch of both searches (R5 members get one)."""
    entries = [
        {"resource": orjson.loads(answers[t]), "response": {"status": "200 OK"}}
        for t in (b"MedicationRequest", b"MedicationDispense")
    ]
    return orjson.dumps({"resourceType": "Bundle", "type": "batch-response", "entry": entries})


class MemberProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 server (keep-alive, GET only) answering each search after ``delay``
    ± ``jitter``: a member's server whose own cost stays out of the gateway's figures on a
    shared box (uvicorn here would spend more CPU than the gateway it is measuring)."""

    def __init__(self, answers: dict[bytes, bytes], delay: float, jitter: float, dead: bool) -> None:
        self.answers, self.delay, self.jitter, self.dead = answers, delay, jitter, dead
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, rest = self.buffer.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(rest) < length:
                return  # the body is still coming
            self.buffer = rest[length:]
            if self.dead:
                continue  # accepts and reads, never answers
            method, target = head.split(b" ", 2)[:2]
            path = b"batch" if method == b"POST" else target.split(b"?", 1)[0].rsplit(b"/", 1)[-1]
            body = self.answers.get(path, b'{"resourceType":"CapabilityStatement"}')
            response = (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            wait = max(0.0, self.delay + random.uniform(-self.jitter, self.jitter))
            asyncio.get_running_loop().call_later(wait, self._send, response)

    def _send(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)


def _serve_members(n: int, delay: float, jitter: float, dead: int, spread: float, ports: Any) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        servers = []
        for i in range(n):
            answers = {t.encode(): member_bundle(f"m{i:02d}", t) for t in ("MedicationRequest", "MedicationDispense")}
            answers[b"batch"] = batch_answer(answers)
            own = delay + spread * (i / max(1, n - 1) - 0.5)  # with a spread, the last registered is slowest

            def protocol(a: dict[bytes, bytes] = answers, d: bool = i < dead, w: float = own) -> MemberProtocol:
                return MemberProtocol(a, w, jitter, d)

            servers.append(await loop.create_server(protocol, "127.0.0.1", 0))
        ports.put([s.sockets[0].getsockname()[1] for s in servers])
        await asyncio.Event().wait()

    asyncio.run(serve())


class Members:
    """``n`` member servers (one port each) in one event loop, in their own process (not
    sharing the gateway's interpreter lock: a member is another machine)."""

    def __init__(self, n: int, delay: float, jitter: float, dead: int = 0, spread: float = 0.0) -> None:
        ports: Any = multiprocessing.Queue()
        args = (n, delay, jitter, dead, spread, ports)
        self.process = multiprocessing.Process(target=_serve_members, args=args, daemon=True)
        self.process.start()
        self.bases = [f"http://127.0.0.1:{port}/fhir" for port in ports.get(timeout=60)]

    def stop(self) -> None:
        self.process.kill()
        self.process.join(10)


def registry_resources(bases: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, base in enumerate(bases):
        code = f"m{i:02d}"
        out.append(endpoint_resource(f"{code}-ep", "fhir-r5", base, name=code, organization=f"Organization/{code}"))
        out.append(
            {
                "resourceType": "Organization",
                "id": code,
                "identifier": [{"system": MEMBER, "value": code}],
                "type": [{"coding": [{"system": TIER, "code": "village"}]}],
                "name": f"村卫生室 {code}",
                "endpoint": [{"reference": f"Endpoint/{code}-ep"}],
            }
        )
    return out


def _serve_gateway(database: str, timeout: float, ports: Any) -> None:
    settings = Settings(
        database=database,
        insecure_dev=True,
        audit=False,
        federation_timeout=timeout,
        federation_cache_seconds=0,
        federation_breaker_failures=10**6,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="error", ws="none")
    )

    async def serve() -> None:
        task = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        ports.put(server.servers[0].sockets[0].getsockname()[1])
        await task

    uvloop.run(serve())  # what `yaolian serve` runs on (uvicorn's loop "auto" picks uvloop)


class Gateway:
    """The gateway app under uvicorn in its own process."""

    def __init__(self, database: str, timeout: float) -> None:
        ports: Any = multiprocessing.Queue()
        self.process = multiprocessing.Process(target=_serve_gateway, args=(database, timeout, ports), daemon=True)
        self.process.start()
        self.base = f"http://127.0.0.1:{ports.get(timeout=60)}/fhir"

    def stop(self) -> None:
        self.process.kill()
        self.process.join(10)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def run_queries(base: str, n: int) -> tuple[list[float], dict[str, Any]]:
    times: list[float] = []
    last: dict[str, Any] = {}
    with httpx.Client(timeout=30) as client:
        params = {"identifier": f"{RESIDENT_ID}|{ID_NUMBER}", "_count": "100"}
        for _ in range(3):  # warm-up: connections to members, registry cache
            client.get(f"{base}/Patient/$prescriptions", params=params)
        for _ in range(n):
            started = time.perf_counter()
            response = client.get(
                f"{base}/Patient/$prescriptions", params=params, headers={"Cache-Control": "no-cache"}
            )
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            last = response.json()
    return times, last


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux ``/proc``): the gateway's own cost per
    query, a figure the other jobs on a shared box do not move the way they move latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(label: str, times: list[float]) -> None:
    ms = [t * 1000 for t in times]
    print(
        f"{label}: n={len(ms)} p50={percentile(ms, 50):.1f} ms p90={percentile(ms, 90):.1f} ms "
        f"p99={percentile(ms, 99):.1f} ms max={max(ms):.1f} ms mean={statistics.mean(ms):.1f} ms"
    )


def load_registry(database: str, bases: list[str]) -> None:
    from gateway.commands import operator_service
    from gateway.fhir.json_text import ResourceText

    with operator_service(database) as (service, ctx):

        def work(tx: Any) -> None:
            for r in registry_resources(bases):
                service.writer.update(tx, ctx, r["resourceType"], r["id"], ResourceText.parse(orjson.dumps(r)))

        service.write(ctx, work)


async def asked_directly(bases: list[str], n: int, *, at_once: bool) -> list[float]:
    """The members asked by the gateway's own client code with no gateway around it: one after
    another (what a gateway without fan-out would take), or all at once (the floor under the
    federated figure: the members' delay plus what this client and box add)."""
    resources = registry_resources(bases)
    registry = MemberRegistry.from_organizations(
        [r for r in resources if r["resourceType"] == "Organization"],
        [r for r in resources if r["resourceType"] == "Endpoint"],
    )
    times = []
    client = MemberClient(30.0)
    types = ("MedicationRequest", "MedicationDispense")

    async def ask(member: Any) -> None:
        answer = await client.ask(member, f"{RESIDENT_ID}|{ID_NUMBER}", types, timeout=2.0, most=500)
        assert answer.ok

    try:
        await asyncio.gather(*(ask(m) for m in registry.live()))  # connections opened
        for _ in range(n):
            started = time.perf_counter()
            if at_once:  # started as the gateway starts them
                await asyncio.gather(*await started_one_by_one(ask(m) for m in registry.live()))
            else:
                for member in registry.live():
                    await ask(member)
            times.append(time.perf_counter() - started)
    finally:
        await client.aclose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=30)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--jitter", type=float, default=0.005)
    parser.add_argument(
        "--spread",
        type=float,
        default=0.0,
        help="members' delays spread evenly over this many seconds around --delay, the slowest registered last",
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="federation_timeout (s)")
    parser.add_argument("--dead-queries", type=int, default=10)
    parser.add_argument("--sequential-queries", type=int, default=3)
    args = parser.parse_args()
    spread = f" (spread over {args.spread * 1000:.0f} ms)" if args.spread else ""
    print(
        f"{args.members} members answering after {args.delay * 1000:.0f} ± {args.jitter * 1000:.0f} ms{spread}; "
        f"cpu={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        members = Members(args.members, args.delay, args.jitter, spread=args.spread)
        database = f"sqlite:///{Path(tmp) / 'gw.sqlite'}"
        load_registry(database, members.bases)
        gateway = Gateway(database, args.timeout)
        try:
            assert gateway.process.pid is not None
            cpu_before = cpu_seconds(gateway.process.pid)
            times, bundle = run_queries(gateway.base, args.queries)
            cpu = (cpu_seconds(gateway.process.pid) - cpu_before) / (args.queries + 3)
            matched = sum(1 for e in bundle["entry"] if e["search"]["mode"] == "match")
            failed = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
            print(
                f"answer: {matched} records shown of {bundle['total']}, "
                f"{len(bundle['entry'])} entries, outcome: {failed}"
            )
            assert not failed and bundle["total"] == 4 * args.members
            report("federated, all healthy", times)
            print(f"  gateway CPU per query: {cpu * 1000:.1f} ms ({cpu * 1000 / args.members:.2f} ms per member)")
            floor = uvloop.run(asked_directly(members.bases, args.queries, at_once=True))
            report("the client alone, all members at once, no gateway (the floor)", floor)
            if args.sequential_queries:
                sequential = uvloop.run(asked_directly(members.bases, args.sequential_queries, at_once=False))
                report("members one after another (same client)", sequential)
        finally:
            gateway.stop()
            members.stop()

        if not args.dead_queries:
            return
        dead = Members(args.members, args.delay, args.jitter, dead=1)
        database = f"sqlite:///{Path(tmp) / 'gw-dead.sqlite'}"
        load_registry(database, dead.bases)
        gateway = Gateway(database, args.timeout)
        try:
            times, bundle = run_queries(gateway.base, args.dead_queries)
            outcome = [
                i["diagnostics"]
                for e in bundle["entry"]
                if e["search"]["mode"] == "outcome"
                for i in e["resource"]["issue"]
            ]
            report(f"federated, one member dead (timeout {args.timeout:g} s)", times)
            over = max(times) - args.timeout
            print(f"  slowest answer exceeds the timeout by {over * 1000:.1f} ms (target <= 20 ms); outcome: {outcome}")
        finally:
            gateway.stop()
            dead.stop()


if __name__ == "__main__":
    main()
