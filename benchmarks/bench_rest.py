#!/usr/bin/env python
"""REST core benchmark: read-by-id, patient-scoped search and create, gateway vs fhirstarter vs floor.

Runnable script, not a test::

    python benchmarks/bench_rest.py                          # 100k MedicationRequests, SQLite and PostgreSQL
    python benchmarks/bench_rest.py --n 1000000 --backends postgresql --scenarios search --targets gateway

For each backend it builds a database with the demo alliance (``load_demo``, through the write path)
plus ``--n`` synthetic MedicationRequests and their patients (``gateway.store.bulk``: same rendering
and index extraction as the write path, no validation). Then, one at a time, it starts each target
under the same uvicorn settings (``--workers``, loop/http ``auto`` = uvloop/httptools when installed,
access log off) on the same database and drives it with wrk (or, without wrk, a Python asyncio
load generator; the table says which):

* ``gateway``      — ``gateway.asgi:app``, what ``yaolian serve`` runs (validation ``lenient``);
* ``fhirstarter``  — ``benchmarks/apps/fhirstarter_app.py``: a minimal fhirstarter 4.2 R5 provider
  reading the same rows from the same database and returning fhir.resources models;
* ``floor``        — ``benchmarks/apps/floor_app.py``: bare Starlette, stored bytes by primary key.

Figures go to stdout and to ``benchmarks/results/rest-<date>.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
RESULTS = Path(__file__).resolve().parent / "results"
SEED = 1
PER_PATIENT = 10

sys.path.insert(0, str(ROOT))


# -- data -------------------------------------------------------------------------------------
@dataclass
class Database:
    backend: str
    gateway_url: str  # for YAOLIAN_DATABASE
    bench_env: dict[str, str]  # for the comparison apps
    cleanup: list[str] = field(default_factory=list)
    load_seconds: float | None = None


def _count(url: str) -> int:
    from sqlalchemy import text

    from gateway.store.sql import open_store

    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM resources WHERE res_type = 'MedicationRequest' AND res_id LIKE 'syn%'")
                ).scalar_one()
            )
    except Exception:
        return -1
    finally:
        store.dispose()


def _load(url: str, n: int, workers: int) -> float:
    from gateway.demo import load_demo, synthetic_prescriptions
    from gateway.store.bulk import bulk_load
    from gateway.store.sql import open_store

    started = time.perf_counter()
    load_demo(url)
    store = open_store(url)
    done = 0
    step = max(n // 20, 1000)
    items = synthetic_prescriptions(n, seed=SEED, per_patient=PER_PATIENT)

    def progress() -> Iterator[dict]:
        nonlocal done
        for item in items:
            if item["resourceType"] == "MedicationRequest":
                done += 1
                if done % step == 0:
                    rate = done / (time.perf_counter() - started)
                    print(f"    loaded {done:>9,} / {n:,} MedicationRequests ({rate:,.0f}/s)", flush=True)
            yield item

    bulk_load(store, progress(), batch=2000, workers=workers)
    if store.dialect == "postgresql":
        from sqlalchemy import text

        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    store.dispose()
    return time.perf_counter() - started


def prepare_sqlite(args: argparse.Namespace) -> Database:
    path = Path(args.data_dir) / f"bench-rest-{args.n}.sqlite"
    url = f"sqlite:///{path}"
    db = Database("sqlite", url, {"BENCH_DATABASE": url})
    if args.reuse and path.exists() and _count(url) >= args.n:
        print(f"  reusing {path}")
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        print(f"  loading {args.n:,} MedicationRequests into {path}")
        db.load_seconds = _load(url, args.n, args.load_workers)
    if not args.keep:
        db.cleanup.append(f"sqlite:{path}")
    return db


def clone_postgres(url: str, copies: int) -> float:
    """Grow the loaded ``syn1-…`` rows ``copies - 1`` times in SQL: ids renamed ``syn1c<k>-…`` in
    resources, history, bodies and every index table (references to patients too), so each copy
    is the same data under other ids. Much faster than extracting index rows again."""
    from sqlalchemy import create_engine, text

    from gateway.store.schema import INDEX_COLUMNS, INDEX_TABLES

    started = time.perf_counter()
    engine = create_engine(url)

    def rename(column: str, k: int) -> str:
        return f"replace({column}, 'syn{SEED}-', 'syn{SEED}c{k}-')"

    with engine.begin() as conn:
        for k in range(2, copies + 1):
            body = f"convert_to({rename('convert_from(body, ' + chr(39) + 'UTF8' + chr(39) + ')', k)}, 'UTF8')"
            for table, extra in (("resources", ""), ("resource_history", ", method")):
                conn.execute(
                    text(
                        f"INSERT INTO {table} (res_type, res_id, version, last_updated, deleted, body{extra}) "
                        f"SELECT res_type, {rename('res_id', k)}, version, last_updated, deleted, {body}{extra} "
                        f"FROM {table} WHERE res_id LIKE 'syn{SEED}-%'"
                    )
                )
            for name, columns in INDEX_COLUMNS.items():
                cols = ", ".join(columns)
                picked = ", ".join(rename(c, k) if c == "target_id" else c for c in columns)
                conn.execute(
                    text(
                        f"INSERT INTO {INDEX_TABLES[name].name} (res_type, res_id, {cols}) "
                        f"SELECT res_type, {rename('res_id', k)}, {picked} FROM {INDEX_TABLES[name].name} "
                        f"WHERE res_id LIKE 'syn{SEED}-%'"
                    )
                )
            print(f"    copy {k}/{copies} done ({time.perf_counter() - started:.0f} s)", flush=True)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def prepare_postgres(args: argparse.Namespace) -> Database:
    from sqlalchemy import create_engine, text

    schema = f"bench_rest_{args.n}" + (f"x{args.scale}" if args.scale > 1 else "")
    base = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}?options=-csearch_path%3D{schema}"
    libpq = args.postgres.replace("postgresql+psycopg://", "postgresql://", 1)
    db = Database("postgresql", url, {"BENCH_DATABASE": libpq, "BENCH_SCHEMA": schema})
    engine = create_engine(base)
    if args.reuse and _count(url) >= args.n * args.scale:
        print(f"  reusing schema {schema}")
    else:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        print(f"  loading {args.n:,} MedicationRequests into schema {schema}")
        db.load_seconds = _load(url, args.n, args.load_workers)
        if args.scale > 1:
            print(f"  cloning to {args.n * args.scale:,} MedicationRequests in SQL")
            db.load_seconds += clone_postgres(url, args.scale)
    engine.dispose()
    if not args.keep:
        db.cleanup.append(f"postgresql:{schema}")
    return db


def drop(db: Database, args: argparse.Namespace) -> None:
    from sqlalchemy import create_engine, text

    for item in db.cleanup:
        kind, name = item.split(":", 1)
        if kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{name}{suffix}").unlink(missing_ok=True)
        else:
            engine = create_engine(args.postgres.replace("postgresql://", "postgresql+psycopg://", 1))
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            engine.dispose()


# -- servers ----------------------------------------------------------------------------------
TARGETS = {
    # name: (uvicorn app, app dir, FHIR base path)
    "gateway": ("gateway.asgi:app", None, "/fhir"),
    "fhirstarter": ("fhirstarter_app:app", APPS, ""),
    "floor": ("floor_app:app", APPS, "/fhir"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(
    target: str, db: Database, args: argparse.Namespace, probe: str, client: tuple[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """``client`` (id, secret): the gateway runs with access control on (its caller fetches a
    token for the client); without one it runs as the servers it is compared with do."""
    app, app_dir, base = TARGETS[target]
    port = _free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(args.workers), "--no-access-log", "--log-level", "warning"]
    if app_dir:
        cmd += ["--app-dir", str(app_dir)]
    # No tokens: the servers compared here run without authentication too (docs/security.md).
    env = {**os.environ, "YAOLIAN_DATABASE": db.gateway_url, **db.bench_env, "PYTHONWARNINGS": "ignore"}
    env["YAOLIAN_INSECURE_DEV"] = "0" if client is not None else "1"
    if client is not None:
        probe = "/metadata"  # public: the probe carries no token
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url + base + probe, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"{target} did not start:\n{log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield url + base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# -- load generation --------------------------------------------------------------------------
@dataclass
class Measure:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str


WRK_SCRIPT = r"""
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local body = nil
local body_file = os.getenv("BENCH_BODY")
if body_file and body_file ~= "" then
  local f = io.open(body_file, "rb"); body = f:read("*a"); f:close()
end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local auth = os.getenv("BENCH_AUTHORIZATION")
request = function()
  local p = paths[math.random(#paths)]
  if body then
    local headers = {["Content-Type"] = "application/fhir+json", ["Accept"] = "application/fhir+json"}
    if auth and auth ~= "" then headers["Authorization"] = auth end
    return wrk.format("POST", p, headers, body)
  end
  local headers = {["Accept"] = "application/fhir+json"}
  if auth and auth ~= "" then headers["Authorization"] = auth end
  return wrk.format("GET", p, headers)
end
"""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk_ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    assert match, text
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(url: str, paths: list[str], body: bytes | None, seconds: float, connections: int) -> Measure:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "paths.txt").write_text("\n".join(paths) + "\n")
        (Path(tmp) / "script.lua").write_text(WRK_SCRIPT)
        env = {**os.environ, "BENCH_PATHS": str(Path(tmp) / "paths.txt"), "BENCH_BODY": ""}
        if body is not None:
            (Path(tmp) / "body.json").write_bytes(body)
            env["BENCH_BODY"] = str(Path(tmp) / "body.json")
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
        cmd += ["-s", str(Path(tmp) / "script.lua"), url]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _wrk_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _wrk_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    return Measure(rps, p50, p99, total, errors, "wrk")


async def _python_load(
    host: str, port: int, paths: list[str], body: bytes | None, seconds: float, connections: int
) -> Measure:
    latencies: list[float] = []
    errors = 0
    method = "POST" if body is not None else "GET"
    extra = f"Content-Type: application/fhir+json\r\nContent-Length: {len(body)}\r\n" if body is not None else ""
    if os.environ.get("BENCH_AUTHORIZATION"):  # a bearer token, for a gateway with access control on
        extra += f"Authorization: {os.environ['BENCH_AUTHORIZATION']}\r\n"
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        rng = random.Random()
        while time.perf_counter() < deadline:
            request = f"{method} {rng.choice(paths)} HTTP/1.1\r\nHost: {host}\r\nAccept: application/fhir+json\r\n"
            started = time.perf_counter()
            writer.write((request + extra + "\r\n").encode() + (body or b""))
            status = int((await reader.readline()).split()[1])
            length, chunked = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "transfer-encoding" and "chunked" in value:
                    chunked = True
            if chunked:
                while size := int((await reader.readline()).strip(), 16):
                    await reader.readexactly(size + 2)
                await reader.readline()
            else:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status >= 400:
                errors += 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else math.nan

    return Measure(len(latencies) / elapsed, pct(0.50), pct(0.99), len(latencies), errors, "python")


def run_load(url: str, paths: list[str], body: bytes | None, seconds: float, connections: int, tool: str) -> Measure:
    """``url`` is the FHIR base (``http://host:port/fhir``), ``paths`` are relative to it."""
    authority, _, prefix = url.split("//", 1)[1].partition("/")
    full = [f"/{prefix}{p}" if prefix else p for p in paths]
    if tool == "wrk":
        return run_wrk(f"http://{authority}", full, body, seconds, connections)
    host, port = authority.split(":")
    return asyncio.run(_python_load(host, int(port), full, body, seconds, connections))


# -- profiling --------------------------------------------------------------------------------
def profile_summary(raw: Path, top: int = 14) -> str:
    """Own and inclusive share of samples per function from py-spy's collapsed stacks."""
    own: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [re.sub(r" \(.*?/(site-packages|main)/", " (", f) for f in stack.split(";")]
        if re.match(r"(Condition|Event)\.wait|Thread\._wait|select ", frames[-1]):
            continue  # an idle thread (thread-pool workers, the outbox relay) waiting for work
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        return "(no samples)"
    lines = [f"{total} busy samples (all threads; idle waits left out)", "", "own time:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in sorted(own.items(), key=lambda x: -x[1])[:top]]
    lines += ["", "inclusive time (gateway and library frames):"]
    keep = [
        (f, c)
        for f, c in inclusive.items()
        if re.search(r"\((gateway|sqlalchemy|starlette|fastapi|psycopg|orjson|anyio|uvicorn|fhirpathpy)", f)
    ]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in sorted(keep, key=lambda x: -x[1])[: top * 2]]
    return "\n".join(lines)


def run_profiled(pid: int, name: str, seconds: float, work: callable) -> Measure:  # type: ignore[valid-type]
    RESULTS.mkdir(exist_ok=True)
    raw = RESULTS / f"profile-{name}.txt"
    cmd = ["py-spy", "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", "250", "-f", "raw"]
    spy = subprocess.Popen(
        [*cmd, "-o", str(raw)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    measure = work()
    spy.wait(60)
    if raw.exists():
        summary = profile_summary(raw)
        (RESULTS / f"profile-{name}.summary.txt").write_text(summary + "\n")
        print(f"\n  py-spy profile of {name} (collapsed stacks in {raw.relative_to(ROOT)}):")
        print("\n".join("    " + s for s in summary.splitlines()))
    return measure


# -- main -------------------------------------------------------------------------------------
def create_body() -> bytes:
    from gateway.demo import synthetic_prescriptions

    item = next(r for r in synthetic_prescriptions(2, seed=99) if r["resourceType"] == "MedicationRequest")
    item.pop("id")
    item["subject"] = {"reference": "Patient/xy-pat-zhang-guifang"}
    return json.dumps(item, ensure_ascii=False).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="synthetic MedicationRequests (default 100000)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--targets", default="gateway,fhirstarter,floor")
    parser.add_argument("--scenarios", default="read,search,create")
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured load before each")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes per target")
    parser.add_argument("--load-workers", type=int, default=2, help="processes for bulk render/index")
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="PostgreSQL only: copy the --n loaded rows SCALE-1 times under renamed ids, in SQL (for 1M)",
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--data-dir", default=tempfile.gettempdir())
    parser.add_argument("--reuse", action="store_true", help="reuse a database of at least --n rows if present")
    parser.add_argument("--keep", action="store_true", help="keep the databases (for --reuse)")
    parser.add_argument("--load-only", action="store_true", help="build the databases and stop")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway during read and search")
    parser.add_argument("--output", help="markdown file (default benchmarks/results/rest-<date>.md)")
    parser.add_argument("--label", default="", help="note added to the markdown heading")
    args = parser.parse_args()
    tool = ("wrk" if shutil.which("wrk") else "python") if args.tool == "auto" else args.tool
    scenarios = args.scenarios.split(",")
    targets = args.targets.split(",")
    rng = random.Random(SEED)
    patients = math.ceil(args.n / PER_PATIENT)
    if args.scale > 1 and args.backends != "postgresql":
        parser.error("--scale is for --backends postgresql only")

    def prefix() -> str:
        k = rng.randrange(1, args.scale + 1)
        return f"syn{SEED}" if k == 1 else f"syn{SEED}c{k}"

    read_paths = [f"/MedicationRequest/{prefix()}-rx-{rng.randrange(args.n):08d}" for _ in range(5000)]
    search_paths = [
        f"/MedicationRequest?patient=Patient/{prefix()}-pat-{rng.randrange(patients):07d}" for _ in range(5000)
    ]
    body = create_body()
    print(f"load generator: {tool}; {args.connections} connections, {args.duration:g}s per figure")

    results: list[dict[str, object]] = []
    loads: dict[str, float | None] = {}
    for backend in args.backends.split(","):
        print(f"\n== {backend}")
        db = prepare_sqlite(args) if backend == "sqlite" else prepare_postgres(args)
        loads[backend] = db.load_seconds
        try:
            if args.load_only:
                continue
            for target in targets:
                with server(target, db, args, read_paths[0]) as (url, pid):
                    for scenario in scenarios:
                        paths = {"read": read_paths, "search": search_paths, "create": ["/MedicationRequest"]}[scenario]
                        post = body if scenario == "create" else None
                        if args.warmup:
                            run_load(url, paths, post, args.warmup, args.connections, tool)

                        def work(paths: list[str] = paths, post: bytes | None = post) -> Measure:
                            return run_load(url, paths, post, args.duration, args.connections, tool)

                        if args.profile and target == "gateway" and scenario in ("read", "search"):
                            m = run_profiled(pid, f"{backend}-{scenario}", args.duration, work)
                        else:
                            m = work()
                        row = {"backend": backend, "scenario": scenario, "target": target, **m.__dict__}
                        results.append(row)
                        print(
                            f"  {target:<12} {scenario:<7} {m.rps:>9,.0f} req/s  p50 {m.p50_ms:7.2f} ms  "
                            f"p99 {m.p99_ms:7.2f} ms  ({m.requests:,} requests, {m.errors} errors, {m.tool})",
                            flush=True,
                        )
        finally:
            drop(db, args)
    if results:
        report(results, loads, args, tool)


def report(
    results: list[dict[str, object]], loads: dict[str, float | None], args: argparse.Namespace, tool: str
) -> None:
    by_key = {(r["backend"], r["scenario"], r["target"]): r for r in results}
    head = "| backend | scenario | target | req/s | p50 ms | p99 ms | vs fhirstarter | vs floor | errors |"
    lines = [head, "|" + "---|" * 9]
    for r in results:
        fs = by_key.get((r["backend"], r["scenario"], "fhirstarter"))
        fl = by_key.get((r["backend"], r["scenario"], "floor"))
        vs_fs = f"{r['rps'] / fs['rps']:.2f}x" if fs and r["target"] != "fhirstarter" else ""  # type: ignore[operator]
        vs_fl = f"{r['rps'] / fl['rps']:.2f}x" if fl and r["target"] != "floor" else ""  # type: ignore[operator]
        lines.append(
            f"| {r['backend']} | {r['scenario']} | {r['target']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {vs_fs} | {vs_fl} | {r['errors']} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    command = "python benchmarks/bench_rest.py " + " ".join(sys.argv[1:])
    cpu = platform.processor() or platform.machine()
    meta = [
        f"- command: `{command.strip()}`",
        f"- load generator: {tool} (1 thread), {args.connections} connections, {args.duration:g} s per figure "
        f"after {args.warmup:g} s warm-up; uvicorn `--workers {args.workers}`, loop/http auto "
        "(uvloop + httptools installed), access log off",
        f"- data: demo alliance + {args.n * args.scale:,} synthetic MedicationRequests ({PER_PATIENT} per patient, "
        f"{math.ceil(args.n / PER_PATIENT) * args.scale:,} patients"
        + (f"; {args.n:,} bulk-loaded, then copied {args.scale - 1}x under new ids in SQL" if args.scale > 1 else "")
        + "); load time: "
        + ", ".join(f"{b} {s:.0f} s" if s else f"{b} reused" for b, s in loads.items()),
        f"- machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}; server and load "
        f"generator share the cores; load average at the end {os.getloadavg()[0]:.1f} (other work on the machine "
        "shows here)",
    ]
    out = Path(args.output) if args.output else RESULTS / f"rest-{date.today().isoformat()}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"## REST benchmark {date.today().isoformat()} {args.label}".rstrip()
    section = f"{title}\n\n" + "\n".join(meta) + "\n\n" + table + "\n"
    previous = out.read_text() if out.exists() else "# REST core benchmark results\n"
    out.write_text(previous.rstrip() + "\n\n" + section)
    print(f"\nwritten to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
