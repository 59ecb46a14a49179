"""The review with authentication on (POL-06, POL-20): a member's client reviews without
naming itself (its binding is the prescribing member), the duplicate check still sees another
member's prescription it may not read, and the decision is recorded for that member."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.cli import app as cli
from gateway.settings import Settings


def _member_token(client: TestClient, database: str, member: str) -> dict[str, str]:
    result = CliRunner().invoke(
        cli,
        ["clients", "add", f"HIS {member}", "--role", "member", "--member", member, "--secret", "--database", database],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    fields = dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)
    basic = base64.b64encode(f"{fields['client_id'].strip()}:{fields['client_secret'].strip()}".encode()).decode()
    answer = client.post(
        "/auth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_pol20_a_member_client_reviews_as_itself_and_the_decision_is_recorded_for_it(
    gateway: Callable[..., TestClient], database_url: str, alliance: Any
) -> None:
    open_client = gateway()
    at_t2 = alliance.prescription(
        "CAPT",
        rx_id="rx-sec-t2",
        patient="Patient/p1",
        diagnosis="I10.x00x002",
        dose=(25, "mg"),
        per_day=2,
        days=7,
        member="T2",
        authored="2026-11-09T08:00:00+08:00",
    )
    assert open_client.put("/fhir/MedicationRequest/rx-sec-t2", json=at_t2).status_code == 201
    app = create_app(Settings(database=database_url, insecure_dev=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        t1 = _member_token(client, database_url, "T1")
        assert client.get("/fhir/MedicationRequest/rx-sec-t2", headers=t1).status_code == 404  # not T1's to read
        rx = alliance.prescription(
            "CAPT",
            rx_id="rx-sec-t1",
            patient="Patient/p1",
            diagnosis="I10.x00x002",
            dose=(25, "mg"),
            per_day=2,
            days=7,
            authored="2026-11-10T08:00:00+08:00",
        )
        answer = client.post("/fhir/MedicationRequest/$review", json=rx, headers=t1)
        assert answer.status_code == 200, answer.text
        issues = [p["resource"] for p in answer.json()["parameter"] if p["name"] == "issue"]
        assert [i["code"]["coding"][0]["code"] for i in issues] == ["duplicate-therapy"]
        assert "T2" in issues[0]["detail"] and "rx-sec-t2" not in answer.text  # the other member, not its record
        assert client.post("/fhir/MedicationRequest/$review", json=rx).status_code == 401  # no token, no review
    # the decision is recorded for the prescribing member (owner tag T1)
    (task,) = [e["resource"] for e in open_client.get("/fhir/Task?focus=MedicationRequest/rx-sec-t1").json()["entry"]]
    assert task["businessStatus"]["coding"][0]["code"] == "reject"
    assert {"system": "http://yaolian.org/fhir/sid/member", "code": "T1"} in task["meta"]["tag"]
