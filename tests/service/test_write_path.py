"""The write path's oracle: work prepared outside the lock and applied under it (staged) stores
exactly the rows that the same work run inside the transaction (unstaged) stores - resources,
history, index, outbox and journal - on SQLite and PostgreSQL, for every golden HL7 v2
message and a generated set (new prescriptions for the same patients, resends, messages that
are rejected).

Clock and random ids are made deterministic so the two runs can be compared byte for byte.
The surrogate ``seq`` columns are compared by order, not value: a PostgreSQL sequence is not
rolled back, so a run that rolls a write back leaves a gap the other run does not.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from adapters.hl7v2 import build_ack
from gateway.app import _profile_validator
from gateway.errors import Unprocessable, issue
from gateway.hooks import Hooks, Pointcut, RequestContext
from gateway.ingest.journal import Journal
from gateway.ingest.pipeline import IngestPipeline, IngestResult
from gateway.service.fhir_service import FhirService
from gateway.service.write_path import findings_key
from gateway.settings import Settings
from gateway.store.schema import metadata
from gateway.store.sql import SqlStore, open_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))
from ingest_support import GOLDEN, SAMPLES

CTX = RequestContext(base_url="http://oracle/fhir", interaction="mllp")
NOW = "2026-12-03T08:00:00.000000Z"
ACK_TIME = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)


def reply(raw: bytes, result: IngestResult) -> bytes:
    return build_ack(raw, result.status == "accepted", result.issues, now=ACK_TIME)


def golden_messages() -> list[bytes]:
    files = sorted(GOLDEN.glob("*/*.hl7")) + sorted(SAMPLES.glob("*.hl7"))
    assert len(files) >= 11
    return [f.read_bytes() for f in files]


def renumbered(raw: bytes, tag: str) -> bytes:
    """The message as a new one: its own control id (MSH-10) and order numbers (ORC-2, ORC-3)."""
    segments = raw.replace(b"\n", b"\r").split(b"\r")
    separator = segments[0][3:4]
    out = []
    for segment in segments:
        fields = segment.split(separator)
        if fields[0] == b"MSH" and len(fields) > 9:
            fields[9] = fields[9] + tag.encode()
        elif fields[0] == b"ORC":
            for i in (2, 3):
                if len(fields) > i and fields[i]:
                    fields[i] = tag.encode() + fields[i]
        out.append(separator.join(fields))
    return b"\r".join(out)


def generated_messages() -> list[bytes]:
    """New prescriptions of the same patients (conditional creates that now match), resends
    of messages already stored (duplicates), and copies made invalid (rejected)."""
    golden = golden_messages()
    out = [renumbered(raw, f"G{n}C{copy}") for copy in range(2) for n, raw in enumerate(golden)]
    out.extend(golden[:3])
    out.extend(renumbered(raw, f"BAD{n}").replace(b"|||||2025", b"|||||2025-13-45", 1) for n, raw in enumerate(golden))
    return out


class Ids:
    """``uuid.uuid4`` as a counter, so two runs hand out the same ids in the same order."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> uuid.UUID:
        self.n += 1
        return uuid.UUID(int=self.n)


@pytest.fixture
def ids(monkeypatch: pytest.MonkeyPatch) -> Ids:
    made = Ids()
    monkeypatch.setattr(uuid, "uuid4", made)
    for module in ("gateway.service.writes", "gateway.store.sql", "gateway.service.bundles"):
        monkeypatch.setattr(f"{module}.now_instant", lambda: NOW)
    return made


@pytest.fixture(params=["sqlite", "postgresql"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SqlStore, SqlStore]]:
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'staged.sqlite'}", f"sqlite:///{tmp_path / 'unstaged.sqlite'}"]
    else:
        new_url: Callable[[], str] = request.getfixturevalue("new_postgres_url")
        urls = [new_url(), new_url()]
    stores = [open_store(u) for u in urls]
    for s in stores:
        s.create_schema()
    yield stores[0], stores[1]
    for s in stores:
        s.dispose()


PROFILE_VALIDATOR = _profile_validator()[0]


class CountingValidator:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: dict[str, Any], profiles: list[str] | None = None) -> list[Any]:
        self.calls += 1
        return PROFILE_VALIDATOR(data, profiles)  # type: ignore[no-any-return]


VALIDATOR = CountingValidator()


def refuse_one_prescription(_ctx: RequestContext, resource_type: str, data: Any, _existing: Any) -> None:
    """A rule that rejects a message at write time, after some of its resources were written."""
    if resource_type == "MedicationRequest" and "G2C1" in str(data):
        raise Unprocessable([issue("YL-0207", reason="refused by the oracle's rule")])


def pipeline(store: SqlStore, *, staged: bool) -> IngestPipeline:
    settings = Settings(database="sqlite://", validation_mode="lenient")
    hooks = Hooks()
    hooks.register(Pointcut.BEFORE_WRITE, refuse_one_prescription)
    service = FhirService(store, settings, hooks, VALIDATOR, stage_writes=staged)
    return IngestPipeline(service, Journal(store))


def rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows: in ``seq`` order without the ``seq`` value where there is one,
    sorted where there is none."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if "seq" in table.c:
                columns = [c for c in table.c if c.name != "seq"]
                found[table.name] = [tuple(r) for r in conn.execute(select(*columns).order_by(table.c.seq))]
            else:
                found[table.name] = sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
    return found


def assert_same_rows(staged: SqlStore, unstaged: SqlStore) -> None:
    mine, theirs = rows(staged), rows(unstaged)
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert mine[name] == theirs[name], f"table {name} differs"


def ingest_one_by_one(store: SqlStore, messages: list[bytes], ids: Ids, *, staged: bool) -> list[bytes]:
    ids.n = 0
    run = pipeline(store, staged=staged)
    return [run.ingest("hl7v2", raw, channel="mllp", ctx=CTX, reply=reply).reply or b"" for raw in messages]


def test_staged_and_unstaged_store_the_same_rows_for_every_golden_message(
    two_stores: tuple[SqlStore, SqlStore], ids: Ids
) -> None:
    staged, unstaged = two_stores
    messages = golden_messages() + generated_messages()
    acks = ingest_one_by_one(staged, messages, ids, staged=True)
    assert acks == ingest_one_by_one(unstaged, messages, ids, staged=False)
    codes = [ack.split(b"MSA|")[1][:2] for ack in acks]
    assert codes.count(b"AA") > len(messages) // 2 and len(messages) - codes.count(b"AA") >= 4
    assert b"refused by the oracle" in b"".join(acks)  # rejected under the lock, after writes
    assert_same_rows(staged, unstaged)
    counts = rows(staged)
    assert len(counts["resources"]) > 20 and len(counts["ingest_messages"]) > 40


def canonical_ids(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    """:func:`rows` with every server-assigned id (a counter UUID) replaced by the order in
    which it first appears in the history: a group hands out ids in another order."""
    found = rows(store)
    order: dict[str, str] = {}
    for row in found["resource_history"]:
        rid = row[1]
        if rid.startswith("00000000-0000-0000-0000-") and rid not in order:
            order[rid] = f"id-{len(order)}"

    def swap(value: Any) -> Any:
        if isinstance(value, bytes):
            for old, new in order.items():
                value = value.replace(old.encode(), new.encode())
        elif isinstance(value, str):
            for old, new in order.items():
                value = value.replace(old, new)
        return value

    return {name: sorted((tuple(swap(v) for v in r) for r in table), key=repr) for name, table in found.items()}


def test_a_group_whose_reads_changed_while_staging_stores_what_one_by_one_stores(
    two_stores: tuple[SqlStore, SqlStore], ids: Ids
) -> None:
    """MLLP's way: every message of a group staged before any is applied, so later messages
    find under the lock that earlier ones created their patient and run again - with the ids
    and findings of their first run - and still store what the unstaged one-by-one run does."""
    staged, unstaged = two_stores
    messages = golden_messages() + generated_messages()
    group = pipeline(staged, staged=True)
    prepared = [group.prepare("hl7v2", raw, CTX) for raw in messages]
    assert sum(p.write is not None and p.write.staged is not None for p in prepared) > len(messages) // 2
    VALIDATOR.calls = 0
    acks = [r.reply for r in group.store_group("hl7v2", prepared, channel="mllp", ctx=CTX, reply=reply)]
    # the messages run again under the lock validated nothing again
    assert VALIDATOR.calls == 0
    assert acks == ingest_one_by_one(unstaged, messages, ids, staged=False)
    assert canonical_ids(staged) == canonical_ids(unstaged)


def test_validation_is_blind_to_the_ids_references_carry() -> None:
    """What lets a second run reuse the first run's findings (:func:`findings_key`): every
    official example validates the same with the ids of its references changed."""
    examples = sorted((Path(__file__).resolve().parent.parent / "fixtures" / "r5-examples").glob("*.json"))
    compared = 0
    for path in examples:
        text = path.read_bytes()
        if b'"reference"' not in text:
            continue
        data = orjson.loads(text)
        moved = orjson.loads(re.sub(rb'("reference"\s*:\s*"[A-Za-z]+/)[^"/]+"', rb'\1moved-elsewhere-1"', text))
        if moved == data:
            continue
        assert findings_key(moved) == findings_key(data), path.name
        found, found_moved = PROFILE_VALIDATOR(data), PROFILE_VALIDATOR(moved)
        assert [(i.error_code, i.severity, i.expression) for i in found] == [
            (i.error_code, i.severity, i.expression) for i in found_moved
        ], path.name
        compared += 1
    assert compared > 100
