"""``MedicationRequest/{id}/$insurance-status`` and ``yaolian deliveries insurance-status``
(POL-18: the insurance platform's view of a prescription shared through the gateway), against
the stub platform of the feed's tests: it checks the 7105/7106 fields, answers in camelCase as
some provinces do, can refuse and can fail. The prescription is first uploaded by the feed."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.demo import load_demo
from gateway.events.insurance.platform import HI_RXNO
from tests.events.conftest import wait_for
from tests.events.test_durable_delivery import _settings, gateway, write
from tests.events.test_insurance_feed import (
    CTX,
    DUTY_PHARMACIST,
    REFUSED_PATIENT,
    Platform,
    _findings,
    _identifiers,
    _insurance_sub,
    _pharmacists,
    _rx,
)


def _client(database: str, role: str) -> tuple[str, str]:
    result = CliRunner().invoke(
        cli, ["clients", "add", f"{role} client", "--role", role, "--secret", "--database", database]
    )
    assert result.exit_code == 0, result.output
    found = dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)
    return found["client_id"].strip(), found["client_secret"].strip()


def _bearer(client: TestClient, database: str, role: str) -> dict[str, str]:
    client_id, secret = _client(database, role)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = client.post(
        "/auth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@contextmanager
def _secure(database: str) -> Iterator[TestClient]:
    from gateway.app import create_app
    from gateway.settings import Settings

    with TestClient(create_app(Settings(database=database, insecure_dev=False)), raise_server_exceptions=False) as c:
        yield c


def _code(outcome: dict[str, Any]) -> str:
    return str(outcome["issue"][0]["details"]["coding"][0]["code"])


def _param(parameters: dict[str, Any], name: str) -> Any:
    found = [p for p in parameters["parameter"] if p["name"] == name]
    assert len(found) == 1, (name, parameters)
    return found[0]


@pytest.fixture
def uploaded(database_url: str, platform: Platform) -> Iterator[tuple[str, str, str]]:
    """(uploaded prescription id, prescription the platform refused at 7101: never uploaded, the
    医保处方编号 the feed recorded on the first)."""
    load_demo(database_url)
    with gateway(_settings(database_url, insurance_review_pharmacist=DUTY_PHARMACIST)) as (service, _, _):
        _pharmacists(service)  # 7103 names the reviewing pharmacist
        write(service, _insurance_sub(platform.url, "prescription-created"))
        rx_id = write(service, _rx("a", "xy-pat-zhang-guifang"))
        assert wait_for(lambda: HI_RXNO in _identifiers(service, rx_id)), _findings(service)
        patient = orjson.loads(service.read("Patient", REFUSED_PATIENT, CTX).body or b"{}")
        platform.refuse_certno = next(i["value"] for i in patient["identifier"] if "2.16.156.10011.1.3" in i["system"])
        refused = write(service, _rx("b", REFUSED_PATIENT))
        assert wait_for(
            lambda: any(f["implicated"][0]["reference"] == f"MedicationRequest/{refused}" for f in _findings(service))
        )
        hi_rxno = _identifiers(service, rx_id)[HI_RXNO]
    yield rx_id, refused, hi_rxno


def test_who_may_read_a_prescription_asks_the_platform_its_status_and_dispensing(
    database_url: str, platform: Platform, uploaded: tuple[str, str, str]
) -> None:
    """POL-18: an insurer reads the platform's status (7105) and dispensing result (7106) of an
    uploaded prescription as a Parameters resource; the messages pass the platform's field checks."""
    rx_id, _, recorded = uploaded
    with _secure(database_url) as client:
        insurer = _bearer(client, database_url, "insurance")
        answer = client.get(f"/fhir/MedicationRequest/{rx_id}/$insurance-status", headers=insurer)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["resourceType"] == "Parameters"
        queries = [m for m in platform.messages if m["infno"] in ("7105", "7106")]
        assert [m["infno"] for m in queries] == ["7105", "7106"]
        assert platform.problems == []
        hi_rxno = queries[0]["input"]["hi_rxno"]
        assert hi_rxno == recorded == queries[1]["input"]["hi_rxno"] and queries[0]["input"]["psn_name"] == "张桂芳"
        assert _param(result, "hiRxno")["valueIdentifier"]["value"] == hi_rxno
        assert _param(result, "rxTraceCode")["valueIdentifier"]["value"].startswith("TRC")
        assert _param(result, "status")["valueCoding"] == {
            "system": "http://yaolian.org/fhir/CodeSystem/nhsa-rx-status", "code": "1", "display": "有效",
        }  # fmt: skip
        assert _param(result, "usedStatus")["valueCoding"]["display"] == "已使用"
        assert _param(result, "dispensedAt")["valueDateTime"] == "2026-12-02T10:15:00+08:00"
        place = _param(result, "dispensedBy")["valueReference"]
        assert place["identifier"]["value"] == "P61010200001" and place["display"] == "西乡县康民大药房"
        line = {p["name"]: p for p in _param(result, "dispensed")["part"]}
        assert line["drug"]["valueCoding"]["display"] == "依那普利" and line["quantity"]["valueDecimal"] == 28
        assert line["taken"]["valueBoolean"] is True

        capability = client.get("/fhir/metadata", headers=insurer).json()
        ops = {
            o["name"]
            for r in capability["rest"][0]["resource"]
            if r["type"] == "MedicationRequest"
            for o in r.get("operation", [])
        }
        assert "insurance-status" in ops

        # a regulator may not read prescriptions: refused before the platform is asked
        sent = len(platform.messages)
        regulator = _bearer(client, database_url, "regulator")
        denied = client.get(f"/fhir/MedicationRequest/{rx_id}/$insurance-status", headers=regulator)
        assert denied.status_code == 403 and _code(denied.json()) == "YL-0270"
        assert len(platform.messages) == sent


def test_refusal_no_answer_and_no_upload_are_outcomes_naming_the_interface(
    database_url: str, platform: Platform, uploaded: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """POL-18: the platform's refusal (422 YL-1309, its message), no answer (502 YL-1310), a
    prescription never uploaded (422 YL-1308) and no platform configured (502 YL-1311) reach the
    caller as OperationOutcomes, over REST and on the command line."""
    rx_id, never, _ = uploaded
    with _secure(database_url) as client:
        admin = _bearer(client, database_url, "admin")
        platform.refuse_query = True
        refused = client.get(f"/fhir/MedicationRequest/{rx_id}/$insurance-status", headers=admin)
        assert refused.status_code == 422, refused.text
        outcome = refused.json()
        assert _code(outcome) == "YL-1309"
        assert (
            "7106" in outcome["issue"][0]["diagnostics"] and "未查询到该医保处方" in outcome["issue"][0]["diagnostics"]
        )
        assert "电子处方取药结果查询" in outcome["issue"][0]["details"]["text"]
        platform.refuse_query = False

        platform.fail_query = True
        failed = client.get(f"/fhir/MedicationRequest/{rx_id}/$insurance-status", headers=admin)
        assert failed.status_code == 502 and _code(failed.json()) == "YL-1310"
        assert (
            "7105" in failed.json()["issue"][0]["diagnostics"]
            and "HTTP 500" in failed.json()["issue"][0]["diagnostics"]
        )
        platform.fail_query = False

        sent = len(platform.messages)
        unknown = client.get(f"/fhir/MedicationRequest/{never}/$insurance-status", headers=admin)
        assert unknown.status_code == 422 and _code(unknown.json()) == "YL-1308"
        assert len(platform.messages) == sent

        # no active insurance-rx subscription: no platform to ask
        subs = client.get("/fhir/Subscription", headers=admin).json()
        for entry in subs.get("entry", []):
            sub = {**entry["resource"], "status": "off"}
            put = client.put(f"/fhir/Subscription/{sub['id']}", json=sub, headers=admin)
            assert put.status_code == 200, put.text
        nowhere = client.get(f"/fhir/MedicationRequest/{rx_id}/$insurance-status", headers=admin)
        assert nowhere.status_code == 502 and _code(nowhere.json()) == "YL-1311"
        assert len(platform.messages) == sent
        for entry in subs.get("entry", []):
            back = client.put(f"/fhir/Subscription/{entry['resource']['id']}", json=entry["resource"], headers=admin)
            assert back.status_code == 200, back.text

    # the same from the command line: the Parameters on stdout, a refusal as an OperationOutcome, exit 1
    monkeypatch.setenv("YAOLIAN_DATABASE", database_url)
    runner = CliRunner()
    ok = runner.invoke(cli, ["deliveries", "insurance-status", rx_id])
    assert ok.exit_code == 0, ok.output
    assert _param(orjson.loads(ok.stdout), "usedStatus")["valueCoding"]["code"] == "1"
    platform.refuse_query = True
    bad = runner.invoke(cli, ["deliveries", "insurance-status", rx_id])
    assert bad.exit_code == 1 and "YL-1309" in bad.stderr
    assert os.environ["YAOLIAN_DATABASE"] == database_url
    assert platform.problems == []
