"""End-to-end HL7 v2 over MLLP: messages/s and ACK latency, with a profile of where the time goes.

    python benchmarks/bench_mllp.py [--messages 4000] [--senders 32] [--workers 2] [--profile | --py-spy]
                                    [--backend sqlite|postgresql]

The defaults are the issue's setting: 2 cores, so 2 gateway workers, and enough senders to keep
both busy.

A real gateway (``yaolian serve --mllp-port``, SQLite file or a fresh PostgreSQL schema,
validation lenient) runs in a subprocess; N concurrent senders (asyncio, one TCP connection each) send distinct RDE^O11
messages (the complete alliance prescription with a fresh MSH-10 and placer/prescription
number each) and wait for each ACK before sending the next, as an HIS interface engine does.
Every message is journalled, converted, validated against the alliance profiles, stored with
its search index and ACKed - durable before acknowledged. Printed: messages/s, p50/p99 ACK
latency, AA count.

``--profile`` also runs the same messages in-process through ``MllpServer.handle_group`` in
groups of ``--senders`` (the listener's code path without the socket: one commit per group):
first each phase alone with plain timers (split, convert, validation / index extraction /
JSON-form check of the written resources, prepare = convert + stage, store_group under the
write lock), then all of it under cProfile, with the time summed by stage:
HL7 parse, mapping, validation, search index, SQL, fsync/commit, JSON. ``--py-spy`` records
the server subprocess with py-spy instead (all threads; needs ptrace permission).

Not a test: figures depend on the machine. The issue's target is >= 300 messages/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = (ROOT / "tests" / "golden" / "hl7v2" / "RDE_O11" / "complete-extended-longterm.hl7").read_bytes()
START, END = b"\x0b", b"\x1c\r"


def message(n: int, run: str) -> bytes:
    """The complete prescription with its own control id, placer order, prescription and visit number."""
    return (
        TEMPLATE.replace(b"|GH0010|", f"|B{run}{n:07d}|".encode())
        .replace(b"RX9101^", f"RXB{run}{n:07d}^".encode())
        .replace(b"RX20251107000101", f"RXN{run}{n:07d}".encode())
        .replace(b"MZ2025110700101", f"MZB{run}{n:07d}".encode())  # a visit of its own
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def sender(port: int, messages: list[bytes], latencies: list[float], codes: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for raw in messages:
            started = time.perf_counter()
            writer.write(START + raw + END)
            await writer.drain()
            await reader.readuntil(START)
            ack = await reader.readuntil(END)
            latencies.append(time.perf_counter() - started)
            msa = ack.split(b"\rMSA|", 1)[1][:2] if b"\rMSA|" in ack else b"??"
            codes.append(msa.decode())
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def drive(port: int, total: int, senders: int, run: str) -> tuple[float, list[float], list[str]]:
    batches = [[message(n, run) for n in range(i, total, senders)] for i in range(senders)]
    latencies: list[float] = []
    codes: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(sender(port, batch, latencies, codes) for batch in batches))
    return time.perf_counter() - started, latencies, codes


def wait_for_port(port: int, proc: subprocess.Popen[bytes], workers: int = 1, seconds: float = 60) -> None:
    """Until every worker listens: with SO_REUSEPORT each has a listening socket of its own,
    and connections opened while only the first one listens all go to it for good (one run
    measured one busy worker and one idle one that way)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        if listeners(port) >= workers:
            return
        time.sleep(0.1)
    raise SystemExit(f"gateway did not open its MLLP port in {workers} worker(s)")


def listeners(port: int) -> int:
    """Listening sockets on ``port`` (Linux ``/proc/net/tcp``); elsewhere, whether one answers."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(t.exists() for t in tables):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return 1 << 16
        return 0
    wanted = f":{port:04X}"
    count = 0
    for table in tables:
        for line in table.read_text().splitlines()[1:] if table.exists() else ():
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] == "0A":  # local address, state LISTEN
                count += 1
    return count


#: The member the benchmark's messages come from (MSH-4 and ORC-2.2 of the template), bound to
#: this machine's address: access control runs as in production unless --insecure-dev.
SENDER = "XHZXWSY"
INSECURE = False


def serve(database: str, mllp_port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "YAOLIAN_VALIDATION_MODE": "lenient", "YAOLIAN_LOG_LEVEL": "warning"}
    env["YAOLIAN_INSECURE_DEV"] = "1" if INSECURE else "0"
    env["YAOLIAN_MLLP_SENDERS"] = f"{SENDER}=127.0.0.1"
    cmd = [
        sys.executable, "-m", "gateway.cli", "serve",
        "--port", str(free_port()), "--database", database, "--mllp-port", str(mllp_port), "--workers", str(workers),
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@contextlib.contextmanager
def database_for(backend: str, folder: Path, postgres: str) -> Iterator[str]:
    """A fresh database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'bench.sqlite'}"
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_mllp_{os.getpid()}"
    engine = create_engine(postgres.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def end_to_end(total: int, senders: int, workers: int, py_spy: bool, backend: str, postgres: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-mllp-"))
    with database_for(backend, folder, postgres) as database:
        run_gateway(database, backend, folder, total, senders, workers, py_spy)
    shutil.rmtree(folder, ignore_errors=True)


def run_gateway(
    database: str, backend: str, folder: Path, total: int, senders: int, workers: int, py_spy: bool
) -> None:
    port = free_port()
    proc = serve(database, port, workers)
    spy = None
    try:
        wait_for_port(port, proc, workers)
        asyncio.run(drive(port, min(100, total), senders, "W"))  # warm-up: imports, caches
        if py_spy:
            out = folder / "py-spy.txt"
            spy = subprocess.Popen(
                ["py-spy", "record", "--pid", str(proc.pid), "--subprocesses", "--format", "raw",
                 "--output", str(out), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)
        elapsed, latencies, codes = asyncio.run(drive(port, total, senders, "M"))
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT, not on SIGTERM
            spy.wait()
        proc.terminate()
        proc.wait(timeout=30)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    aa = codes.count("AA")
    print(f"end-to-end over MLLP ({backend}, {workers} worker(s), {senders} senders, {total} messages)")
    print(f"  {total / elapsed:8.1f} messages/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   AA {aa}/{total}")
    if aa != total:
        print(f"  WARNING: {total - aa} messages not accepted: {sorted(set(codes))}")
    if py_spy and (folder / "py-spy.txt").exists():
        summarise_py_spy(folder / "py-spy.txt")


STAGES = [
    # (stage, substrings of "file:function" - first match wins, checked in order)
    ("fsync/commit", ("commit", "fsync", "sqlite3.Connection.commit")),
    ("validate (profiles)", ("gateway/validation/",)),
    ("search index", ("gateway/search/", "index_rows", "/indexing")),
    ("SQL (sqlalchemy/sqlite)", ("sqlalchemy/", "sqlite3")),
    ("HL7 parse", ("adapters/hl7v2/tree.py", "hl7/", "adapters/hl7v2/ack.py")),
    ("mapping", ("adapters/mapping/",)),
    ("FHIR model checks", ("fhir/resources", "pydantic")),
    ("JSON", ("orjson", "json_text", "json/")),
]


def stage_of(frames: list[str]) -> str:
    """The innermost listed stage on a stack (frames outermost first)."""
    for frame in reversed(frames):
        for stage, needles in STAGES:
            if any(n in frame for n in needles):
                return stage
    return "other (gateway, threads, event loop)"


def summarise_py_spy(path: Path) -> None:
    totals: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        if "idle" in stack or "select" in stack.rsplit(";", 1)[-1] or "epoll" in stack:
            continue
        totals[stage_of(stack.split(";"))] = totals.get(stage_of(stack.split(";")), 0) + int(count)
    print_stages(totals, "py-spy samples of the server process (busy only)")


def print_stages(totals: dict[str, float], title: str) -> None:
    whole = sum(totals.values()) or 1
    print(f"  {title}:")
    for stage, value in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"    {stage:<40} {100 * value / whole:5.1f} %")


def in_process_profile(total: int, group: int) -> None:
    """cProfile of ``MllpServer.handle_group`` (journal, convert, validate, store, ACK)."""
    from gateway.app import create_app
    from gateway.ingest.mllp import MllpServer
    from gateway.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="bench-mllp-prof-"))
    from gateway.security.senders import Sender, SenderAllowList, SenderBinding

    settings = Settings(database=f"sqlite:///{folder / 'p.sqlite'}", validation_mode="lenient", insecure_dev=INSECURE)
    app = create_app(settings)
    binding = None if INSECURE else SenderBinding(SenderAllowList.parse(f"{SENDER}=127.0.0.1"))
    server = MllpServer(app.state.ingest, "http://bench/fhir", binding=binding)
    sender = Sender("127.0.0.1", frozenset({SENDER}))
    server.handle_group = lambda raws: server.store_group([server.prepare(r, sender) for r in raws])  # type: ignore[method-assign]
    server.prepare_one = lambda raw: server.prepare(raw, sender)  # type: ignore[attr-defined]
    warm = [message(n, "W") for n in range(48)]
    for start in range(0, len(warm), group):
        server.handle_group(warm[start : start + group])
    messages = [message(n, "P") for n in range(total)]
    started = time.perf_counter()
    for start in range(0, total, group):
        server.handle_group(messages[start : start + group])
    elapsed = time.perf_counter() - started
    print(f"in-process, one thread, no socket, groups of {group}: {total / elapsed:8.1f} messages/s")
    phase_table(app, server, total, group)
    messages = [message(n, "Q") for n in range(total)]
    profiler = cProfile.Profile()
    profiler.enable()
    for start in range(0, total, group):
        server.handle_group(messages[start : start + group])
    profiler.disable()
    stats = pstats.Stats(profiler)
    totals: dict[str, float] = {}
    for (file, _line, func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        totals[stage_of([f"{file}:{func}"])] = totals.get(stage_of([f"{file}:{func}"]), 0.0) + tottime
    print_stages(totals, "self time by stage")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    print("\n".join(line for line in text.getvalue().splitlines()[6:40] if line.strip()))
    shutil.rmtree(folder, ignore_errors=True)


def phase_table(app: Any, server: Any, total: int, group: int) -> None:
    """Wall time per message of each phase of the listener's path, run one phase at a time on
    fresh messages with the collector off (cProfile's per-call overhead skews its shares
    toward code that makes many small calls; these are the plain figures)."""
    from adapters.hl7v2 import tree
    from gateway.fhir.structure import json_form_issues
    from gateway.ingest.pipeline import get_adapter
    from gateway.search.extract import extract

    adapter, validator = get_adapter("hl7v2"), app.state.profile_validator
    raws = [message(n, "T") for n in range(total)]
    rows: list[tuple[str, float]] = []

    def timed(label: str, run: Callable[[], object], per: int) -> None:
        gc.collect()
        gc.disable()
        started = time.perf_counter()
        run()
        rows.append((label, (time.perf_counter() - started) / per * 1e6))
        gc.enable()

    timed("split into the neutral tree", lambda: [tree.parse(r) for r in raws], total)
    bundles = [adapter.to_fhir(r).bundle for r in raws]
    timed("convert (split + mapping)", lambda: [adapter.to_fhir(r) for r in raws], total)
    written = [
        e["resource"]
        for b in bundles
        for e in b["entry"]
        if e["request"]["method"] == "PUT" and e["resource"]["resourceType"] != "Patient"
    ]
    timed("  validation of the written resources", lambda: [validator(r) for r in written], total)
    timed("  index extraction of them", lambda: [extract(r) for r in written], total)
    timed("  JSON-form check of them", lambda: [json_form_issues(r) for r in written], total)
    prepared: list[Any] = []
    timed("prepare (convert + stage)", lambda: prepared.extend(server.prepare_one(r) for r in raws), total)
    timed(
        "store_group, under the write lock",
        lambda: [server.store_group(prepared[i : i + group]) for i in range(0, total, group)],
        total,
    )
    print(f"  phases, µs per message ({len(written) / total:.0f} resources written per message):")
    for label, micros in rows:
        print(f"    {label:<40} {micros:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="for --backend postgresql"
    )
    parser.add_argument("--profile", action="store_true", help="also profile in-process with cProfile")
    parser.add_argument("--py-spy", action="store_true", help="record the server with py-spy")
    parser.add_argument(
        "--insecure-dev", action="store_true", help="access control off (default: on, the sender bound by address)"
    )
    args = parser.parse_args()
    global INSECURE
    INSECURE = args.insecure_dev
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        "access control off (--insecure-dev)" if INSECURE else f"access control on, sender {SENDER} bound to 127.0.0.1"
    )
    end_to_end(args.messages, args.senders, args.workers, args.py_spy, args.backend, args.postgres)
    if args.profile:
        in_process_profile(min(args.messages, 500), args.senders)


if __name__ == "__main__":
    main()
