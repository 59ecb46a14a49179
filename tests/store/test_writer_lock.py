"""SQLite writers take turns on a lock beside the database file, across threads and processes,
so a waiting writer starts as soon as the holder commits (instead of polling SQLite's lock)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway.store.sql import SqliteStore

HOLD = """
import sys, time
from gateway.store.sql import SqliteStore
store = SqliteStore.from_url(sys.argv[1])
with store.write_connection():
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore.from_url(f"sqlite:///{tmp_path / 'w.sqlite'}")
    store.create_schema()
    return store


def test_the_lock_file_lies_beside_the_database(store: SqliteStore, tmp_path: Path) -> None:
    assert (tmp_path / "w.sqlite-writer.lock").exists()


def test_a_second_thread_waits_for_the_first_writer(store: SqliteStore) -> None:
    order: list[str] = []
    entered = threading.Event()

    def first() -> None:
        with store.write_connection():
            entered.set()
            time.sleep(0.2)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(5)
    with store.write_connection():
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


def test_a_writer_in_another_process_is_waited_for(store: SqliteStore, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    with subprocess.Popen([sys.executable, "-c", HOLD, url, "0.5"], stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with store.write_connection():
            waited = time.monotonic() - started
    assert holder.returncode == 0
    assert waited >= 0.3  # the holder slept 0.5 s with the lock before letting go


def test_readers_do_not_wait_for_writers(store: SqliteStore) -> None:
    with store.write_connection():
        assert store.read("Patient", "nobody") is None
