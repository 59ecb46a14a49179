"""The write-ahead spool of read audit records: durable before the answer, chained after it.

Why: committing each read's record to the database before its response (even shared by a
group commit) made every read wait for a commit, and building the AuditEvent, hashing and
inserting it took the gateway's own CPU; together they halved read throughput
(benchmarks/bench_audit.py: 2,520 -> 1,325 req/s on SQLite). Here a read's record is one
``write(2)`` of one short line (the facts: who, what, which patients, outcome, when) to a file
of this process (O_APPEND, owner-only) before the response starts: once the call returns, the
record survives a crash or ``kill -9`` of the gateway (it is in the kernel's page cache, as
durable as a database commit without fsync: ``audit_read_durability = "commit"``).

Chaining - building the AuditEvent, hashing it into the chain, inserting it - is done by
:func:`chain` for every spool file of the directory, by whoever runs it: the chainer process
(:mod:`gateway.security.audit_chainer`, the default: its CPU is not the gateway's), a thread
of the gateway (``audit_chainer = "thread"``), an auditor's search (first, so it sees every
answered read), ``yaolian audit verify``. Each file's mark (how far it is chained) moves in
the transaction that chains its records, and that transaction takes the audit lock before it
reads the mark: any number of chainers may run, none chains a record twice
(:meth:`Store.audit_chain_spool`).

Each writing process holds an exclusive ``flock`` on its own file; a file whose lock is free
(its process stopped, or moved to a new file past :data:`ROTATE_BYTES`) is removed once
chained to its end.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.store.base import AuditRecord, Store

log = logging.getLogger("yaolian.audit")

SUFFIX = ".spool"
LOCK_FILE = "chainer.lock"  # the chainer process holding it is the one that chains
CHAIN_INTERVAL = 0.1  # seconds between chaining rounds
ROTATE_BYTES = 16 * 1024 * 1024  # a spool this large is closed and a new one opened
MAX_BATCH = 2000  # records per chaining transaction
_READ_BYTES = 4 * 1024 * 1024  # read per chaining transaction, at most

Decode = Callable[[bytes], AuditRecord]


def _dead(path: Path) -> int | None:
    """An open descriptor holding the file's lock when no process writes it any more, else None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _chain_file(store: Store, path: Path, decode: Decode) -> int:
    """Chain what ``path`` holds past its mark; remove it when its writer is gone. Returns
    how many records were chained."""
    chained = 0
    taken = (0, 0)  # (bytes, records) of the last take

    def take(mark: int) -> tuple[Sequence[AuditRecord], int]:
        nonlocal taken
        try:
            with open(path, "rb") as spool:
                spool.seek(mark)
                data = spool.read(_READ_BYTES)
        except FileNotFoundError:
            data = b""
        records: list[AuditRecord] = []
        end = mark
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n") or len(records) >= MAX_BATCH:
                break  # a line being written: the next round takes it
            end += len(line)
            try:
                records.append(decode(line))
            except (ValueError, TypeError, KeyError):
                log.error("audit spool %s: unreadable record before byte %d skipped", path.name, end)
        taken = (end - mark, len(records))
        return records, end

    def rounds(limit: int) -> None:
        nonlocal chained
        for _ in range(limit):  # a busy writer keeps adding: the next call goes on
            store.audit_chain_spool(path.name, take)
            chained += taken[1]
            if not taken[0]:
                return

    rounds(50)
    fd = _dead(path)
    if fd is not None:
        try:
            if path.exists():  # its writer is gone: chain to the end, then remove it
                rounds(1_000_000)
                rest = path.stat().st_size - store.audit_spool_chained(path.name)
                if rest:
                    log.error("audit spool %s ends in %d bytes of a partial record; dropped", path.name, rest)
                path.unlink()
                store.audit_spool_forget(path.name)
                if chained:
                    log.info("audit spool %s of a stopped writer: %d records chained", path.name, chained)
        finally:
            os.close(fd)
    return chained


def chain(store: Store, directory: Path, decode: Decode) -> int:
    """One chaining round over every spool in ``directory``; how many records it chained."""
    if not directory.is_dir():
        return 0
    return sum(_chain_file(store, path, decode) for path in sorted(directory.glob(f"*{SUFFIX}")))


def spawn_chainer(directory: Path, database: str | None) -> subprocess.Popen[bytes]:
    """Start a chainer for ``directory`` that exits when this process does."""
    command = [sys.executable, "-m", "gateway.security.audit_chainer", "--spool", str(directory)]
    command += ["--parent", str(os.getpid())]
    if database:
        command += ["--database", database]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


class AuditSpool:
    """This process's spool file: :meth:`append` before an answer."""

    def __init__(self, store: Store, directory: Path, decode: Decode, *, thread: bool = True) -> None:
        """``thread``: chain in a thread of this process (else a chainer process does)."""
        self.store = store
        self.directory = directory
        self.decode = decode
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._fd = -1
        self._name = ""
        self._size = 0
        self._use_thread = thread
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def name(self) -> str:
        """The file this process appends to now ("" before the first record)."""
        return self._name

    def _open(self) -> None:
        # by name, a process's files sort in the order it wrote them (chained in that order)
        name = f"{os.getpid()}-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        # locked under a name no chainer looks at, then renamed: a chainer never sees it unlocked
        # (and would take it for the file of a writer gone, and remove it)
        hidden = self.directory / f"{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, self.directory / name)
        self._fd, self._name, self._size = fd, name, 0

    # -- the request path
    def append(self, line: bytes) -> None:
        """Durable (against a crash of the process) when it returns; raises when it is not."""
        with self._lock:
            if self._fd < 0:
                self._open()
            written = os.write(self._fd, line)
            if written != len(line):  # disk full: undo the partial line, refuse the answer
                os.ftruncate(self._fd, self._size)
                raise OSError(f"audit spool: {written} of {len(line)} bytes written")
            self._size += written
            if self._size >= ROTATE_BYTES:  # the chainers remove it once chained
                os.close(self._fd)
                self._fd = -1
        if self._use_thread and self._thread is None:
            self._start()

    # -- chaining
    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="yaolian-audit-chain", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(CHAIN_INTERVAL):
            try:
                self.flush()
            except Exception:  # the database is away: the records wait in the file, retried
                log.exception("audit records not chained yet; retrying")

    def flush(self) -> int:
        """Chain every record appended so far by any process of the directory (an auditor's
        search calls it first)."""
        return chain(self.store, self.directory, self.decode)

    def close(self) -> None:
        """Stop appending and chain what is left (a failure leaves it for the next chainer)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=10)
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
        try:
            self.flush()
        except Exception:
            log.exception("audit spool %s left for the next chainer", self._name)
