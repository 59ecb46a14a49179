"""The audit spool: a read's record is durable in a file before its answer and reaches the
hash-chained table exactly once, whoever chains it (a thread, a chainer process, an auditor's
search, ``yaolian audit verify``), whether its writer closes or is killed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.security import audit, audit_spool
from gateway.store.sql import open_store

WHO = ["clinic-7", "clinic", "member", "M007"]


def _facts(n: int) -> list[Any]:
    return ["2026-12-03T10:00:00.000000Z", "read", "0", WHO, "10.0.0.7", [f"p{n}"], [f"Patient/p{n}"], None, None]


def _line(n: int) -> bytes:
    return orjson.dumps(_facts(n)) + b"\n"


@pytest.fixture(autouse=True)
def _no_background_chaining(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chainer thread waits an hour: what a test flushes is exactly what it says."""
    monkeypatch.setattr(audit_spool, "CHAIN_INTERVAL", 3600.0)


@pytest.fixture
def store(database_url: str) -> Iterator[Any]:
    opened = open_store(database_url)
    opened.create_schema()
    yield opened
    opened.dispose()


def _patients(store: Any) -> list[str]:
    return [row.patients[0] for row in store.audit_rows(0, 100_000)]


def _chain(store: Any, directory: Path) -> int:
    return audit_spool.chain(store, directory, audit.record_of_line)


def test_a_line_becomes_the_record_the_request_path_would_have_built() -> None:
    record = audit.record_of_line(_line(1))
    assert record == audit.record_of_facts(_facts(1))
    event = orjson.loads(record.event)
    assert record.client_id == "clinic-7" and record.member == "M007" and record.patients == ("p1",)
    assert event["agent"][0]["who"]["identifier"]["value"] == "clinic-7" and event["action"] == "R"
    assert {"reference": "Patient/p1"} in [e.get("what") for e in event["entity"]]


def test_close_chains_everything_once_and_removes_the_file(store: Any, tmp_path: Path) -> None:
    spool = audit_spool.AuditSpool(store, tmp_path / "spool", audit.record_of_line)
    for n in range(30):
        spool.append(_line(n))
        if n == 9:
            assert spool.flush() == 10  # an auditor's search chains what is there so far
    assert spool.flush() == 20
    assert spool.flush() == 0
    spool.close()
    assert _patients(store) == [f"p{n}" for n in range(30)]
    assert list((tmp_path / "spool").iterdir()) == []
    assert audit.verify(store).ok
    spool.append(_line(30))  # its app started again: a new file
    spool.close()
    assert _patients(store)[-1] == "p30"


def test_the_spool_is_owner_only(store: Any, tmp_path: Path) -> None:
    spool = audit_spool.AuditSpool(store, tmp_path / "spool", audit.record_of_line)
    spool.append(_line(1))
    try:
        assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "spool" / spool.name).stat().st_mode & 0o777 == 0o600
    finally:
        spool.close()


_DIE = """
import os, signal, sys
from pathlib import Path
import orjson
from gateway.security import audit, audit_spool
from gateway.store.sql import open_store
audit_spool.CHAIN_INTERVAL = 3600  # nothing chained by a thread before the kill
store = open_store(sys.argv[1]); store.create_schema()
spool = audit_spool.AuditSpool(store, Path(sys.argv[2]), audit.record_of_line)
who = ["clinic-7", "clinic", "member", "M007"]
def line(n):
    return orjson.dumps(["2026-12-03T10:00:00.000000Z", "read", "0", who, None, [f"p{n}"], [], None, None]) + b"\\n"
for n in range(int(sys.argv[3])):
    spool.append(line(n))
if len(sys.argv) > 4:
    spool.flush()  # some chained, the mark moved with them
    for n in range(int(sys.argv[3]), int(sys.argv[4])):
        spool.append(line(n))
os.kill(os.getpid(), signal.SIGKILL)
"""


def _die_after(database_url: str, directory: Path, *counts: int) -> None:
    script = textwrap.dedent(_DIE)
    result = subprocess.run([sys.executable, "-c", script, database_url, str(directory), *map(str, counts)])
    assert result.returncode == -9


def test_a_killed_writer_loses_nothing_and_is_chained_once(store: Any, database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    _die_after(database_url, directory, 40)
    assert _patients(store) == []  # nothing reached the table before the kill ...
    assert _chain(store, directory) == 40  # ... and everything is in the spool
    assert _patients(store) == [f"p{n}" for n in range(40)]
    assert list(directory.iterdir()) == []  # its writer is gone: removed once chained
    assert _chain(store, directory) == 0
    assert audit.verify(store).ok


def test_chaining_resumes_after_what_was_chained(store: Any, database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    _die_after(database_url, directory, 15, 25)
    assert len(_patients(store)) == 15
    assert _chain(store, directory) == 10
    assert _patients(store) == [f"p{n}" for n in range(25)]  # no record twice


def test_a_partial_last_line_is_dropped_and_the_rest_kept(store: Any, tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    (directory / "123-dead.spool").write_bytes(_line(0) + _line(1) + _line(2) + _line(3)[:40])
    assert _chain(store, directory) == 3
    assert _patients(store) == ["p0", "p1", "p2"]
    assert list(directory.iterdir()) == []


def test_a_living_writer_keeps_its_file(store: Any, tmp_path: Path) -> None:
    spool = audit_spool.AuditSpool(store, tmp_path / "spool", audit.record_of_line)
    try:
        spool.append(_line(1))
        assert _chain(store, tmp_path / "spool") == 1
        assert (tmp_path / "spool" / spool.name).exists()  # its lock is held: more may come
        spool.append(_line(2))
        assert _chain(store, tmp_path / "spool") == 1
    finally:
        spool.close()
    assert _patients(store) == ["p1", "p2"]


def test_concurrent_chainers_never_chain_a_record_twice(store: Any, database_url: str, tmp_path: Path) -> None:
    """Four chainers (each its own store, as processes would have) race over one spool that is
    still being written: every record once, in the order written."""
    spool = audit_spool.AuditSpool(store, tmp_path / "spool", audit.record_of_line)
    stop = threading.Event()

    def chainer() -> None:
        own = open_store(database_url)
        try:
            while not stop.is_set():
                _chain(own, tmp_path / "spool")
        finally:
            own.dispose()

    threads = [threading.Thread(target=chainer) for _ in range(4)]
    for t in threads:
        t.start()
    for n in range(300):
        spool.append(_line(n))
    spool.close()
    stop.set()
    for t in threads:
        t.join()
    assert _patients(store) == [f"p{n}" for n in range(300)]
    assert audit.verify(store).ok


def test_a_full_spool_is_replaced_and_removed_once_chained(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_spool, "ROTATE_BYTES", 500)
    spool = audit_spool.AuditSpool(store, tmp_path / "spool", audit.record_of_line)
    spool.append(_line(0))
    first = spool.name
    for n in range(1, 12):
        spool.append(_line(n))
    assert spool.name != first
    spool.flush()
    assert not (tmp_path / "spool" / first).exists()
    assert store.audit_spool_chained(first) == 0  # its mark is gone with it
    spool.close()
    assert _patients(store) == [f"p{n}" for n in range(12)]


def test_a_database_outage_loses_nothing(store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = audit_spool.AuditSpool(store, tmp_path / "spool", audit.record_of_line)
    spool.append(_line(1))

    def down(*args: object, **kwargs: object) -> int:
        raise ConnectionError("database away")

    with monkeypatch.context() as patched:
        patched.setattr(store, "audit_chain_spool", down)
        with pytest.raises(ConnectionError):
            spool.flush()
    spool.append(_line(2))
    spool.close()
    assert _patients(store) == ["p1", "p2"]


def test_a_new_spool_is_never_seen_unlocked(store: Any, tmp_path: Path) -> None:
    """A chainer racing a writer that opens its file must not take it for a dead writer's
    (it would remove it and the records written after): many opens against a busy chainer."""
    directory = tmp_path / "spool"
    directory.mkdir()
    stop = threading.Event()

    def chainer() -> None:
        while not stop.is_set():
            _chain(store, directory)

    racing = threading.Thread(target=chainer)
    racing.start()
    try:
        for n in range(60):
            spool = audit_spool.AuditSpool(store, directory, audit.record_of_line, thread=False)
            spool.append(_line(n))
            assert (directory / spool.name).exists()
            spool.close()
    finally:
        stop.set()
        racing.join()
    assert _patients(store) == [f"p{n}" for n in range(60)]


def test_each_database_has_a_spool_of_its_own(tmp_path: Path) -> None:
    """Whoever chains a spool chains it into its own database: two databases never share one."""
    from gateway.settings import Settings, audit_spool_directory

    one = audit_spool_directory(Settings(database="postgresql://h/test?options=-csearch_path%3Dt_a"))
    two = audit_spool_directory(Settings(database="postgresql://h/test?options=-csearch_path%3Dt_b"))
    assert one is not None and two is not None and one != two and one.parent == two.parent
    chosen = audit_spool_directory(Settings(database="postgresql://h/test", audit_spool_dir=tmp_path))
    assert chosen is not None and chosen.parent == tmp_path
    assert audit_spool_directory(Settings(database=f"sqlite:///{tmp_path}/a.db")) == tmp_path / "a.db.audit-spool"
    assert audit_spool_directory(Settings(database="sqlite://")) is None
