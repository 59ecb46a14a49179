"""The demo alliance: loads idempotently, is searchable, conforms to the alliance profiles."""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.demo import demo_resources, load_demo, resident_id, synthetic_prescriptions
from gateway.settings import Settings

ID_CARD = "urn:oid:2.16.156.10011.1.3"
ID_CARD_RE = re.compile(r"^[1-9]\d{5}(18|19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[\dX]$")


def _check_char(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    load_demo(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="module")
def client(demo_db: Path) -> Iterator[TestClient]:
    app = create_app(Settings(database=f"sqlite:///{demo_db}", validation_mode="lenient"))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _counts(path: Path) -> tuple[int, int]:
    """Rows of the demo's own resources (the stock alerts the gateway raises on loading them -
    DetectedIssue, issue 15 - are counted by the test that wants them)."""
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("SELECT count(*) FROM resources WHERE res_type != 'DetectedIssue'").fetchone()[0],
            conn.execute("SELECT count(*) FROM resource_history WHERE res_type != 'DetectedIssue'").fetchone()[0],
        )


def test_resident_id_check_char() -> None:
    # the worked example of GB 11643-1999
    assert resident_id("110105", "1949-12-31", 2) == "11010519491231002X"


def test_demo_alliance_shape() -> None:
    resources = demo_resources()
    counts = Counter(r["resourceType"] for r in resources)
    assert counts["Organization"] == 9 and counts["Patient"] == 10 and counts["Medication"] == 15
    assert counts["MedicationRequest"] >= 30
    assert {"MedicationDispense", "SupplyRequest", "InventoryReport", "Location", "PractitionerRole"} <= set(counts)
    assert len({(r["resourceType"], r["id"]) for r in resources}) == len(resources)
    for patient in (r for r in resources if r["resourceType"] == "Patient"):
        number = next(i["value"] for i in patient["identifier"] if i["system"] == ID_CARD)
        assert ID_CARD_RE.match(number) and number[17] == _check_char(number[:17])
        assert number[6:14] == patient["birthDate"].replace("-", "")
        assert int(number[16]) % 2 == (1 if patient["gender"] == "male" else 0)


def test_load_twice_changes_nothing(demo_db: Path) -> None:
    before = _counts(demo_db)
    assert before == (len(demo_resources()), len(demo_resources()))
    assert load_demo(f"sqlite:///{demo_db}") == len(demo_resources())
    assert _counts(demo_db) == before


def test_demo_is_searchable(client: TestClient) -> None:
    resources = demo_resources()
    patient = "xy-pat-zhang-guifang"
    expected = sum(
        1 for r in resources if r["resourceType"] == "MedicationRequest" and r["subject"]["reference"].endswith(patient)
    )
    bundle = client.get("/fhir/MedicationRequest", params={"patient": f"Patient/{patient}"}).json()
    assert bundle["total"] == expected == 4
    villages = client.get("/fhir/Organization", params={"partof": "Organization/xy-wangqiao"}).json()
    assert sorted(e["resource"]["id"] for e in villages["entry"]) == ["xy-dongpo", "xy-nanhan"]
    read = client.get("/fhir/Medication/metformin-0-5g")
    assert read.status_code == 200 and read.json()["code"]["coding"][0]["code"] == "XA10BAE054A001010102770"


@pytest.mark.parametrize("resource", demo_resources(), ids=lambda r: f"{r['resourceType']}/{r['id']}")
def test_demo_resource_validates(client: TestClient, resource: dict) -> None:
    if client.app.state.profile_validator is None:  # type: ignore[attr-defined]
        pytest.skip("the profile validator (gateway.validation) is not present")
    outcome = client.post(f"/fhir/{resource['resourceType']}/$validate", json=resource).json()
    errors = [i for i in outcome.get("issue", []) if i["severity"] in ("error", "fatal")]
    assert errors == []


def test_synthetic_prescriptions_are_deterministic_and_valid() -> None:
    first = list(synthetic_prescriptions(25, seed=7))
    assert first == list(synthetic_prescriptions(25, seed=7))
    kinds = Counter(r["resourceType"] for r in first)
    assert kinds == {"MedicationRequest": 25, "Patient": 3}
    from gateway import validation

    for resource in itertools.islice(first, 12):
        issues = validation.validate(resource, validation.profiles_for(resource))
        assert [i for i in issues if i.severity in ("error", "fatal")] == []


def test_the_demo_loads_where_access_control_is_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``yaolian demo`` is the operator's own loader: it runs with no client, also on a gateway
    whose settings turn access control on (it did refuse every write there)."""
    monkeypatch.setenv("YAOLIAN_INSECURE_DEV", "0")
    database = f"sqlite:///{tmp_path / 'secure.sqlite'}"
    assert load_demo(database) == len(demo_resources())
    connection = sqlite3.connect(tmp_path / "secure.sqlite")
    try:
        stored = connection.execute("SELECT count(*) FROM resources WHERE res_type != 'DetectedIssue'").fetchone()[0]
        alerts = connection.execute("SELECT count(*) FROM resources WHERE res_type = 'DetectedIssue'").fetchone()[0]
    finally:
        connection.close()
    assert stored == len(demo_resources())
    assert alerts >= 1  # the county's zero clopidogrel raises a stock alert (issue 15, POL-15)
