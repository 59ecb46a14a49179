"""Members reached through a read-only database view of their HIS (Endpoint kind ``sql-view``):
``Patient/$prescriptions`` finds their records beside the store's, and a database that is down,
slow or holds rows that do not map is named in the outcome while the rest is answered (POL-08,
real-time prescription lookup)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.cli import app as cli
from gateway.commands import operator_service
from gateway.federation.endpoints import SQLVIEW_MAPPING_EXTENSION, endpoint_resource
from gateway.federation.registry import load_registry
from gateway.settings import Settings, get_settings
from tests.adapters.sqlview.his_view import OTHER_PATIENT, PATIENT, TABLES, build_his
from tests.conftest import postgres_schema
from tests.federation.conftest import RESIDENT_ID, RX_NUMBER, medication, organization, patient, put, r5_request

IDENT = f"{RESIDENT_ID}|{PATIENT}"


@pytest.fixture
def view_gateway(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """The gateway under test with the given view connections (name -> URL)."""
    clients: list[TestClient] = []

    def start(views: dict[str, str], timeout: float = 1.0) -> TestClient:
        settings = Settings(
            database=f"sqlite:///{tmp_path / f'gateway{len(clients)}.sqlite'}",
            insecure_dev=True,
            audit=False,
            federation_timeout=timeout,
            federation_cache_seconds=0,
            federation_views={k: SecretStr(v) for k, v in views.items()},
        )
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def his(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'township-his.sqlite'}"
    build_his(url)
    return url


def register_view(client: TestClient, code: str, connection: str, mapping: str = "generic-his") -> None:
    org = organization(code, f"{code} 卫生院", "township")
    endpoint = endpoint_resource(
        f"{code}-ep", "sql-view", f"yaolian-sqlview:{connection}", name=code, organization=f"Organization/{code}",
        mapping=mapping,
    )  # fmt: skip
    put(client, endpoint)
    org["endpoint"] = [{"reference": f"Endpoint/{code}-ep"}]
    put(client, org)


def store_county_record(client: TestClient) -> None:
    put(client, organization("county", "县人民医院", "county"))
    put(client, patient("cp", PATIENT))
    put(client, medication("nif", "硝苯地平缓释片"))
    local = r5_request("c-rx1", "C-001", "cp", "2026-11-10T08:00:00+08:00", "nif")
    local["meta"] = {"tag": [{"system": "http://yaolian.org/fhir/sid/member", "code": "county"}]}
    put(client, local)


def prescriptions(client: TestClient) -> dict[str, Any]:
    response = client.get("/fhir/Patient/$prescriptions", params={"identifier": IDENT})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def entries(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [e for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def outcome(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for e in entries(bundle, "outcome") for i in e["resource"]["issue"]]


def line_numbers(bundle: dict[str, Any], resource_type: str = "MedicationRequest") -> list[str]:
    """The identifiers of the page's records of ``resource_type``, in the answer's order."""
    return [
        e["resource"]["identifier"][0]["value"]
        for e in entries(bundle, "match")
        if e["resource"]["resourceType"] == resource_type
    ]


def codes(issues: list[dict[str, Any]]) -> list[str]:
    return [i["details"]["coding"][0]["code"] for i in issues]


def check_view_member_beside_store(client: TestClient) -> None:
    store_county_record(client)
    register_view(client, "ljx", "ljx-his")
    bundle = prescriptions(client)
    assert outcome(bundle) == []
    found = [e["resource"] for e in entries(bundle, "match")]
    # newest first across both sources: the view's 11-15 and 11-02 lines around the county's 11-10
    found_lines = line_numbers(bundle)
    assert found_lines[:2] == ["CF20261115003-1", "C-001"]
    assert sorted(found_lines[2:4]) == ["CF20261102007-1", "CF20261102007-2"]  # one time: tie broken by id
    assert found_lines[4:] == ["CF20261002001-1"]
    # the view's dispenses too, newest first, each naming the line it dispensed
    dispensed = line_numbers(bundle, "MedicationDispense")
    assert sorted(dispensed[:2]) == ["FY20261102031-1", "FY20261102031-2"] and dispensed[2:] == ["FY20261002015-1"]
    sources = {r["identifier"][0]["value"]: r["meta"]["source"] for r in found}
    assert sources.pop("C-001") == "urn:yaolian:member:county"
    assert set(sources.values()) == {"urn:yaolian:member:ljx"}
    view_record = found[0]
    assert {"system": "http://yaolian.org/fhir/sid/member", "code": "ljx"} in view_record["meta"]["tag"]
    # the Medications the view's lines name are included, from the same member
    medications = {
        e["resource"]["code"]["text"]
        for e in entries(bundle, "include")
        if e["resource"]["resourceType"] == "Medication"
    }
    assert {"盐酸二甲双胍片", "硝苯地平缓释片", "苯磺酸氨氯地平片"} <= medications
    provenance = [e["resource"] for e in entries(bundle, "include") if e["resource"]["resourceType"] == "Provenance"]
    asked = next(p for p in provenance if p["agent"][0]["who"].get("reference") == "Organization/ljx")
    assert asked["activity"]["coding"][0]["code"] == "EXECUTE"
    assert len(asked["target"]) == 7  # four lines, three dispenses


def test_pol08_view_member_records_beside_stored_ones_sqlite(view_gateway, his: str) -> None:  # type: ignore[no-untyped-def]
    """POL-08: one query finds the county's stored record and a township's view lines, each
    with ``meta.source`` naming its member, newest first, the view's Medications included."""
    check_view_member_beside_store(view_gateway({"ljx-his": his}))


def test_pol08_view_member_records_beside_stored_ones_postgresql(view_gateway, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    """POL-08: the same with the township HIS's view in PostgreSQL (a schema of its own)."""
    with postgres_schema(postgres_url) as url:
        build_his(url)
        check_view_member_beside_store(view_gateway({"ljx-his": url}))


def test_pol08_a_database_that_is_down_is_named_and_the_rest_answered(view_gateway, his: str) -> None:  # type: ignore[no-untyped-def]
    """POL-08: a view member whose database refuses connections is YL-1001 naming the member,
    never its connection string; the store's records and a healthy view member still come."""
    dead = "postgresql+psycopg://his_reader:s3cret@127.0.0.1:1/his"
    client = view_gateway({"ljx-his": his, "dead-his": dead})
    store_county_record(client)
    register_view(client, "ljx", "ljx-his")
    register_view(client, "dead", "dead-his")
    bundle = prescriptions(client)
    assert "C-001" in line_numbers(bundle) and "CF20261102007-1" in line_numbers(bundle)
    issues = outcome(bundle)
    assert codes(issues) == ["YL-1001"]
    assert "dead" in issues[0]["diagnostics"] and "dead" in issues[0]["details"]["text"]
    said = str(issues)
    assert "s3cret" not in said and "his_reader" not in said and "127.0.0.1" not in said


@pytest.mark.parametrize(
    ("connection", "mapping", "named"),
    [("nowhere", "generic-his", "'nowhere'"), ("ljx-his", "no-such-his", "'no-such-his'")],
)
def test_pol08_a_connection_or_mapping_the_gateway_does_not_have_is_named(  # type: ignore[no-untyped-def]
    view_gateway, his: str, connection: str, mapping: str, named: str
) -> None:
    """POL-08: an Endpoint naming a connection missing from the settings, or a mapping file
    that does not exist, is YL-1001 naming it, not a 500."""
    client = view_gateway({"ljx-his": his})
    register_view(client, "lost", connection, mapping)
    bundle = prescriptions(client)
    issues = outcome(bundle)
    assert codes(issues) == ["YL-1001"] and named in issues[0]["diagnostics"]
    assert his not in str(issues)


def test_pol08_a_slow_view_is_a_late_member(view_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """POL-08: a view slower than ``federation_timeout`` is YL-1000; the answer comes in time."""
    path = tmp_path / "slow.sqlite"
    build_his(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute(TABLES[2].replace('"v_yl_prescription"', '"v_fast"'))
        conn.execute('DROP VIEW "v_yl_prescription"')
        conn.execute(
            'CREATE VIEW "v_yl_prescription" AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n '
            'WHERE i < 1000000000) SELECT v.* FROM "v_fast" v WHERE (SELECT max(i) FROM n) > 0'
        )
    client = view_gateway({"slow-his": f"sqlite:///{path}"}, timeout=0.5)
    store_county_record(client)
    register_view(client, "slow", "slow-his")
    import time

    started = time.monotonic()
    bundle = prescriptions(client)
    assert time.monotonic() - started < 3.0
    assert line_numbers(bundle) == ["C-001"]
    issues = outcome(bundle)
    assert codes(issues) == ["YL-1000"] and "slow" in issues[0]["diagnostics"]


def test_pol08_rows_that_do_not_map_are_issues_not_a_crash(view_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """POL-08: lines whose date no parser reads are left out, each a YL-1005 naming the member,
    the prescription number and the column; the member's other lines are shown."""
    url = f"sqlite:///{tmp_path / 'bad.sqlite'}"
    build_his(url, bad_date="CF20261102007")
    client = view_gateway({"ljx-his": url})
    register_view(client, "ljx", "ljx-his")
    bundle = prescriptions(client)
    assert line_numbers(bundle) == ["CF20261115003-1", "CF20261002001-1"]
    issues = outcome(bundle)
    assert codes(issues) == ["YL-1005", "YL-1005"]
    assert all("ljx" in i["diagnostics"] and "CF20261102007" in i["diagnostics"] for i in issues)
    assert all("KFRQ" in i["diagnostics"] for i in issues)


def test_pol08_view_members_are_not_asked_for_patients_by_match(view_gateway, his: str) -> None:  # type: ignore[no-untyped-def]
    """POL-09: ``$match`` asks view members nothing (a prescription view holds no Patient) and
    names no failure for them."""
    client = view_gateway({"ljx-his": his})
    register_view(client, "ljx", "ljx-his")
    put(client, patient("cp", PATIENT))
    response = client.post("/fhir/Patient/$match", json=patient("q", PATIENT))
    assert response.status_code == 200, response.text
    assert [e["search"]["mode"] for e in response.json()["entry"]] == ["match"]


def run(*args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "300", **(env or {})})
    assert result.exit_code == code, result.output
    return result.output


def test_pol08_members_add_and_check_a_view_member(tmp_path: Path, his: str) -> None:
    """POL-08: ``members add --kind sql-view --mapping`` registers the connection's *name*;
    ``members check`` asks its database ``SELECT 1`` (up), and a dead one is DOWN (exit 1)."""
    database = f"sqlite:///{tmp_path / 'm.db'}"
    run("members", "add", "ljx", "--name", "李家镇卫生院", "--tier", "township",
        "--endpoint", "yaolian-sqlview:ljx-his", "--kind", "sql-view", "--mapping", "generic-his",
        "--database", database)  # fmt: skip
    with operator_service(database) as (service, ctx):
        registry = load_registry(service, ctx, endpoints=True)
        stored = service.read("Endpoint", "ljx-sql-view", ctx)
    endpoint = registry.get("ljx").live_endpoint  # type: ignore[union-attr]
    assert endpoint is not None and endpoint.kind == "sql-view"
    assert endpoint.connection == "ljx-his" and endpoint.mapping == "generic-his"
    assert SQLVIEW_MAPPING_EXTENSION.encode() in (stored.body or b"")
    try:
        views = '{"ljx-his": "' + his + '"}'
        said = run("members", "check", "--database", database, env={"YAOLIAN_FEDERATION_VIEWS": views})
        assert "ljx\tup\t" in said and "database view (generic-his)" in said
        dead = '{"ljx-his": "postgresql+psycopg://u:pw@127.0.0.1:1/his"}'
        said = run("members", "check", "--database", database, code=1, env={"YAOLIAN_FEDERATION_VIEWS": dead})
        assert "ljx\tDOWN\t" in said and "pw@" not in said
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("endpoint", "mapping"),
    [
        ("postgresql+psycopg://reader:pw@10.1.2.3/his", "generic-his"),  # a DSN is never registered
        ("yaolian-sqlview:ljx-his", None),
        ("yaolian-sqlview:ljx his", "generic-his"),
        ("yaolian-sqlview:ljx-his", "../etc/passwd"),
    ],
)
def test_pol08_members_add_refuses_a_view_member_without_name_or_mapping(
    tmp_path: Path, endpoint: str, mapping: str | None
) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    args = ["members", "add", "ljx", "--name", "李家镇卫生院", "--tier", "township", "--endpoint", endpoint,
            "--kind", "sql-view", "--database", database]  # fmt: skip
    if mapping is not None:
        args += ["--mapping", mapping]
    said = run(*args, code=1)
    assert "YL-1012" in said


def test_pol08_mapping_is_only_for_view_members(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    said = run("members", "add", "x", "--name", "x", "--tier", "township", "--endpoint", "http://127.0.0.1:1/fhir",
               "--kind", "fhir-r5", "--mapping", "generic-his", "--database", database, code=1)  # fmt: skip
    assert "YL-1012" in said


def test_pol09_a_view_members_prescription_is_continued_by_its_number(view_gateway, his: str) -> None:  # type: ignore[no-untyped-def]
    """POL-08/POL-09: ``$continue`` finds a prescription in a view member's HIS by its number
    (处方号) and continues it here; the prior one is named by its line identifier."""
    client = view_gateway({"ljx-his": his})
    register_view(client, "ljx", "ljx-his")
    put(client, organization("county", "县人民医院", "county"))
    put(client, patient("op", OTHER_PATIENT))
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "prescription", "valueIdentifier": {"system": RX_NUMBER, "value": "CF20261120011"}},
            {"name": "patient", "valueReference": {"reference": "Patient/op"}},
            {"name": "member", "valueString": "county"},
        ],
    }
    continued = client.post("/fhir/MedicationRequest/$continue", json=parameters)
    assert continued.status_code == 201, continued.text
    new = continued.json()
    assert new["priorPrescription"]["identifier"]["value"] == "CF20261120011-1"
    assert new["medication"]["concept"]["text"] == "噻托溴铵粉吸入剂"
