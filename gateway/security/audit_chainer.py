"""The audit chainer process: moves the spooled records of reads into the hash-chained table.

Why a process: building each AuditEvent, hashing it into the chain and inserting it is CPU
the gateway would otherwise spend under its one interpreter lock, beside the requests it
answers (``docs/security.md``, "What it costs"). Each gateway process starts one for its spool
directory (:meth:`AuditTrail.start`, :func:`gateway.security.audit_spool.spawn_chainer`); one
of them chains at a time (``chainer.lock`` in the directory), the others wait to take over,
and each exits when the gateway that started it is gone. Chaining is safe to run anywhere at
any time (:func:`gateway.security.audit_spool.chain`), so a chainer that dies loses nothing:
the next one, an auditor's search or ``yaolian audit verify`` goes on where it stopped.

    python -m gateway.security.audit_chainer --spool DIR --parent PID [--database URL]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("yaolian.audit")


def run(directory: Path, database: str, parent: int) -> None:
    from gateway.security.audit import record_of_line
    from gateway.security.audit_spool import CHAIN_INTERVAL, LOCK_FILE, chain
    from gateway.store.sql import open_store

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    store = open_store(database)
    try:
        while os.getppid() == parent:  # wait for our turn while the gateway lives
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(1.0)
        while True:
            alive = os.getppid() == parent
            try:
                chain(store, directory, record_of_line)
            except Exception:  # the database is away: the records wait in their files
                log.exception("audit records not chained yet; retrying")
            if not alive:
                return
            time.sleep(CHAIN_INTERVAL)
    finally:
        store.dispose()
        os.close(lock)


def main() -> None:  # pragma: no cover - run as a process by spawn(); tests run it that way
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spool", required=True, type=Path)
    parser.add_argument("--parent", required=True, type=int)
    parser.add_argument("--database")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.database is None:
        from gateway.settings import get_settings

        args.database = get_settings().database
    with contextlib.suppress(KeyboardInterrupt):
        run(args.spool, args.database, args.parent)


if __name__ == "__main__":  # pragma: no cover
    main()
