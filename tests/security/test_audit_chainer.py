"""The chainer process chains what the gateway spools, without the gateway's CPU, and goes
away with the gateway that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.security import audit_spool
from gateway.settings import Settings
from gateway.store.sql import open_store


def _wait(predicate: object, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_the_chainer_process_chains_reads_while_the_gateway_runs(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'gw.sqlite'}"
    app = create_app(Settings(database=database, audit_chainer="process"))
    store = open_store(database)
    try:
        with TestClient(app) as client:
            chainer = app.state.audit._chainer
            assert chainer is not None and chainer.poll() is None
            created = client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "male"})
            pid = created.json()["id"]
            for _ in range(5):
                assert client.get(f"/fhir/Patient/{pid}").status_code == 200

            def chained() -> bool:
                return sum(r.action == "read" for r in store.audit_rows(0, 100)) == 5

            assert _wait(chained)  # nobody in this process flushed: the chainer did
        assert chainer.poll() is not None  # stopped with the gateway
        event = orjson.loads(store.audit_rows(0, 100)[-1].event)
        assert event["entity"][0]["what"] == {"reference": f"Patient/{pid}"}
    finally:
        store.dispose()


@pytest.mark.parametrize("waiting", [False, True])
def test_a_chainer_exits_when_its_gateway_is_gone(tmp_path: Path, waiting: bool) -> None:
    """Also one still waiting for its turn (another chainer holds the directory's lock)."""
    spool = tmp_path / "spool"
    spool.mkdir()
    holder = None
    if waiting:
        holder = os.open(spool / audit_spool.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        import fcntl

        fcntl.flock(holder, fcntl.LOCK_EX)
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom gateway.security import audit_spool\n"
            "p = audit_spool.spawn_chainer(Path(sys.argv[1]), sys.argv[2]); print(p.pid, flush=True); time.sleep(60)",
            str(spool),
            f"sqlite:///{tmp_path / 'gw.sqlite'}",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert gateway.stdout is not None
        chainer_pid = int(gateway.stdout.readline())
        time.sleep(0.5)
        assert Path(f"/proc/{chainer_pid}").exists()
        gateway.kill()
        gateway.wait()

        def gone() -> bool:
            try:
                state = Path(f"/proc/{chainer_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                return True
            return state == "Z"

        assert _wait(gone, 10)
    finally:
        gateway.kill()
        gateway.wait()
        if gateway.stdout is not None:
            gateway.stdout.close()
        if holder is not None:
            os.close(holder)
