"""The database-view adapter asked for a patient's prescriptions (POL-08, real-time
prescription lookup) against a HIS-like table pair and view, in SQLite and in the real
PostgreSQL (a schema of its own, dropped after): the same rows give the same resources."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.contract import QueryableAdapter
from adapters.errors import AdapterLookupError, SourceQueryError
from adapters.registry import get
from adapters.sqlview import SqlViewAdapter
from tests.adapters.sqlview.his_view import OTHER_PATIENT, PATIENT, TABLES, build_his, numbers
from tests.conftest import postgres_schema

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
RX_NUMBER = "urn:oid:2.16.156.10011.1.20"
TYPES = ("MedicationRequest", "MedicationDispense")


@pytest.fixture
def adapter() -> Iterator[SqlViewAdapter]:
    found = SqlViewAdapter()
    yield found
    found.close()


@pytest.fixture
def sqlite_his(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'his.sqlite'}"
    build_his(url)
    return url


@pytest.fixture
def postgres_his(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url) as url:
        build_his(url)
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def his(request: pytest.FixtureRequest) -> str:
    """The HIS database in each backend."""
    name = "sqlite_his" if request.param == "sqlite" else "postgres_his"
    return str(request.getfixturevalue(name))


def ask(adapter: SqlViewAdapter, url: str, identifier: str, **kw: Any) -> Any:
    return adapter.query(url, "generic-his", identifier=identifier, types=TYPES, most=kw.pop("most", 100), **kw)


def test_pol08_the_registry_offers_a_queryable_sqlview_adapter() -> None:
    """POL-08: the federation finds the view adapter by name, and it can answer queries."""
    assert isinstance(get("sqlview"), QueryableAdapter)
    assert not isinstance(get("hl7v2"), QueryableAdapter)


def test_pol08_a_patients_lines_newest_first_with_their_medications(adapter: SqlViewAdapter, his: str) -> None:
    """POL-08: every drug line of the patient, one MedicationRequest each, newest first."""
    found = ask(adapter, his, f"{RESIDENT_ID}|{PATIENT}")
    assert numbers(found.matches)[0] == "CF20261115003-1"
    assert sorted(numbers(found.matches)[1:3]) == ["CF20261102007-1", "CF20261102007-2"]
    assert numbers(found.matches)[3] == "CF20261002001-1"
    assert found.issues == []
    revoked = found.matches[0]
    assert revoked["status"] == "cancelled"
    assert revoked["authoredOn"] == "2026-11-15T10:05:00+08:00"
    assert revoked["groupIdentifier"] == {"system": RX_NUMBER, "value": "CF20261115003"}
    assert {r["subject"]["identifier"]["value"] for r in found.matches} == {PATIENT}
    # two lines name amlodipine: one Medication, referenced as Medication/id by both
    names = sorted(m["code"]["text"] for m in found.included)
    assert names == ["盐酸二甲双胍片", "硝苯地平缓释片", "苯磺酸氨氯地平片"]
    by_id = {f"Medication/{m['id']}": m for m in found.included}
    for request in found.matches:
        assert request["medication"]["reference"]["reference"] in by_id
    metformin = next(r for r in found.matches if r["identifier"][0]["value"] == "CF20261102007-1")
    assert metformin["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 0.5
    assert metformin["dispenseRequest"]["quantity"]["value"] == 90


def test_pol08_sqlite_and_postgresql_give_the_same_resources(
    adapter: SqlViewAdapter, sqlite_his: str, postgres_his: str
) -> None:
    """POL-08: the row values each driver returns (text dates vs datetime, int vs Decimal) map alike."""
    wanted = f"{RESIDENT_ID}|{PATIENT}"
    lite, pg = ask(adapter, sqlite_his, wanted), ask(adapter, postgres_his, wanted)
    key = lambda r: r["id"]  # noqa: E731
    assert sorted(lite.matches, key=key) == sorted(pg.matches, key=key)
    assert sorted(lite.included, key=key) == sorted(pg.included, key=key)


def test_pol08_most_caps_the_rows_read(adapter: SqlViewAdapter, his: str) -> None:
    """POL-08: the federation's per-member maximum is the statement's LIMIT (newest kept)."""
    found = ask(adapter, his, f"{RESIDENT_ID}|{PATIENT}", most=1)
    assert numbers(found.matches) == ["CF20261115003-1"]


def test_pol08_by_prescription_number(adapter: SqlViewAdapter, his: str) -> None:
    """POL-08/POL-09: a prescription found by its number (what $continue asks members)."""
    found = ask(adapter, his, f"{RX_NUMBER}|CF20261120011", criterion="prescription")
    assert numbers(found.matches) == ["CF20261120011-1"]
    assert found.matches[0]["subject"]["identifier"]["value"] == OTHER_PATIENT


@pytest.mark.parametrize(
    "identifier",
    [
        f"http://example.org/other-system|{PATIENT}",  # a system the view does not hold
        f"{RESIDENT_ID}|' OR '1'='1",  # a value is a bound parameter, never SQL
        f"{RESIDENT_ID}|{PATIENT}' --",
        f"{RESIDENT_ID}|",
    ],
)
def test_pol08_identifiers_the_view_cannot_match_find_nothing(
    adapter: SqlViewAdapter, his: str, identifier: str
) -> None:
    """POL-08: another system, an injection attempt or an empty value: no rows, no error."""
    found = ask(adapter, his, identifier)
    assert (found.matches, found.included, found.issues) == ([], [], [])


def test_pol08_only_the_types_asked_for_are_read(adapter: SqlViewAdapter, sqlite_his: str) -> None:
    """POL-08: asked for dispenses only, only the dispense view is read (and the reverse)."""
    wanted = f"{RESIDENT_ID}|{PATIENT}"
    found = adapter.query(sqlite_his, "generic-his", identifier=wanted, types=("MedicationDispense",), most=10)
    assert {r["resourceType"] for r in found.matches} == {"MedicationDispense"}
    found = adapter.query(sqlite_his, "generic-his", identifier=wanted, types=("MedicationRequest",), most=10)
    assert {r["resourceType"] for r in found.matches} == {"MedicationRequest"}


def test_pol08_dispenses_come_with_the_prescriptions(adapter: SqlViewAdapter, his: str) -> None:
    """POL-08: the dispense view named by the mapping is read in the same query: each dispense
    names the prescription line it dispensed and the same Medication as that line."""
    found = ask(adapter, his, f"{RESIDENT_ID}|{PATIENT}")
    assert numbers(found.matches, "MedicationDispense")[0].startswith("FY20261102031-")
    assert sorted(numbers(found.matches, "MedicationDispense")) == [
        "FY20261002015-1",
        "FY20261102031-1",
        "FY20261102031-2",
    ]
    lines = {r["identifier"][0]["value"]: r for r in found.matches if r["resourceType"] == "MedicationRequest"}
    for dispense in (r for r in found.matches if r["resourceType"] == "MedicationDispense"):
        assert dispense["status"] == "completed"
        line = lines[dispense["authorizingPrescription"][0]["identifier"]["value"]]
        assert dispense["medication"] == line["medication"]
    first = next(r for r in found.matches if r["identifier"][0]["value"] == "FY20261002015-1")
    assert first["whenHandedOver"] == "2026-10-02T09:02:00+08:00"
    assert first["quantity"]["value"] == 30
    assert len(found.included) == 3  # each drug once, whether named by lines or dispenses


def test_pol08_a_row_that_does_not_map_is_an_issue_naming_its_number_and_column(
    adapter: SqlViewAdapter, tmp_path: Path
) -> None:
    """POL-08: a row whose date no parser reads is left out with an issue; the others come."""
    url = f"sqlite:///{tmp_path / 'bad.sqlite'}"
    build_his(url, bad_date="CF20261102007")
    found = ask(adapter, url, f"{RESIDENT_ID}|{PATIENT}")
    assert numbers(found.matches) == ["CF20261115003-1", "CF20261002001-1"]
    assert [i.error_code for i in found.issues] == ["YL-2309", "YL-2309"]
    assert all("CF20261102007" in i.en and "KFRQ" in i.en for i in found.issues)
    assert found.issues[0].expression == ("v_yl_prescription.KFRQ",)


def test_pol08_the_view_is_read_only(adapter: SqlViewAdapter, sqlite_his: str) -> None:
    """POL-08: a query leaves the member's database as it was, and the pooled connection
    refuses writes while it is the adapter's (SQLite query_only)."""
    engine = adapter._engine(sqlite_his)
    with adapter._read_only(sqlite_his, 1.0) as connection, pytest.raises(Exception, match="readonly"):
        connection.exec_driver_sql('DELETE FROM "HIS_MZ_CF"')
    with engine.connect() as connection:
        assert connection.exec_driver_sql('SELECT count(*) FROM "HIS_MZ_CF"').scalar() == 4


def test_pol08_postgresql_transaction_is_read_only(adapter: SqlViewAdapter, postgres_his: str) -> None:
    """POL-08: on PostgreSQL every query runs in a READ ONLY transaction."""
    with (
        pytest.raises(SourceQueryError, match=r"refused the query \(ReadOnlySqlTransaction\)"),
        adapter._read_only(postgres_his, 1.0) as connection,
    ):
        connection.exec_driver_sql('DELETE FROM "HIS_MZ_CF"')


def test_pol08_postgresql_statement_timeout_stops_a_slow_view(adapter: SqlViewAdapter, postgres_his: str) -> None:
    """POL-08: a view slower than the time left is cancelled by the database itself
    (statement_timeout), reported as a timeout, not left running."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_his)
    with engine.begin() as conn:
        conn.execute(text('ALTER VIEW "v_yl_prescription" RENAME TO "v_fast"'))
        conn.execute(text('CREATE VIEW "v_yl_prescription" AS SELECT v.* FROM "v_fast" v, pg_sleep(5) s'))
    engine.dispose()
    with pytest.raises(SourceQueryError) as raised:
        ask(adapter, postgres_his, f"{RESIDENT_ID}|{PATIENT}", timeout=0.3)
    assert raised.value.timed_out


def test_pol08_sqlite_progress_handler_stops_a_slow_view(adapter: SqlViewAdapter, tmp_path: Path) -> None:
    """POL-08: SQLite has no statement timeout; the adapter's progress handler interrupts."""
    url = f"sqlite:///{tmp_path / 'slow.sqlite'}"
    build_his(url)
    with sqlite3.connect(tmp_path / "slow.sqlite") as conn:
        conn.execute(TABLES[2].replace('"v_yl_prescription"', '"v_fast"'))
        conn.execute('DROP VIEW "v_yl_prescription"')
        conn.execute(
            'CREATE VIEW "v_yl_prescription" AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n '
            'WHERE i < 100000000) SELECT v.* FROM "v_fast" v WHERE (SELECT max(i) FROM n) > 0'
        )
    with pytest.raises(SourceQueryError) as raised:
        ask(adapter, url, f"{RESIDENT_ID}|{PATIENT}", timeout=0.2)
    assert raised.value.timed_out


def test_pol08_an_unreachable_database_names_no_address_or_password(adapter: SqlViewAdapter) -> None:
    """POL-08: the error a member's caller may see carries neither host nor password."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://his_reader:s3cret@127.0.0.1:{port}/his"
    with pytest.raises(SourceQueryError) as raised:
        ask(adapter, url, f"{RESIDENT_ID}|{PATIENT}", timeout=1.0)
    said = f"{raised.value} {raised.value.message_zh}"
    assert "s3cret" not in said and str(port) not in said and "his_reader" not in said
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no driver text in a trace
    assert not raised.value.timed_out


def test_pol08_check_answers_select_1(adapter: SqlViewAdapter, his: str) -> None:
    """POL-08: ``members check`` asks the view member's database ``SELECT 1``."""
    adapter.check(his, "generic-his", timeout=1.0)


def test_pol08_check_of_an_unknown_mapping_fails(adapter: SqlViewAdapter, sqlite_his: str) -> None:
    with pytest.raises(AdapterLookupError, match="generic-his"):
        adapter.check(sqlite_his, "no-such-his", timeout=1.0)


def test_pol08_engines_are_pooled_per_url(adapter: SqlViewAdapter, sqlite_his: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    build_his(other)
    assert adapter._engine(sqlite_his) is adapter._engine(sqlite_his)
    assert adapter._engine(sqlite_his) is not adapter._engine(other)
