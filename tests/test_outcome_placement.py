"""One Issue, one OperationOutcome builder (adapters/issues.py): the same field placement at every
boundary. Chinese in ``details.text``, English in ``diagnostics``, the stable YL code in
``details.coding``, the location in ``expression`` - over HTTP, in the MLLP ACK's ERR segment
(ERR-2 location, ERR-5 code, ERR-7 English, ERR-8 Chinese) and on the CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from adapters import contract
from adapters.hl7v2 import build_ack
from adapters.issues import ERROR_CODE_SYSTEM, Issue, operation_outcome
from gateway import errors
from gateway.app import create_app
from gateway.ingest.mllp import hl7_reply
from gateway.ingest.pipeline import IngestResult
from gateway.settings import Settings

CJK = re.compile(r"[\u4e00-\u9fff]")
MESSAGE = (Path(__file__).parent / "golden" / "hl7v2" / "RDE_O11" / "rde-o11-new-amlodipine.hl7").read_bytes()
BAD_BIRTH_DATE = MESSAGE.replace(b"|19670315|", b"|1967-99|")  # PID-7 is not a date: YL-2304
FINDING = Issue(
    "error", "value", en="birth date is not a date", zh="出生日期无效", expression=("PID-7",), error_code="YL-2304"
)


def assert_placed(entry: dict[str, Any], code: str, expression: str | None = None) -> None:
    """An OperationOutcome.issue built by the one builder."""
    assert entry["details"]["coding"] == [{"system": ERROR_CODE_SYSTEM, "code": code}], entry
    assert CJK.search(entry["details"]["text"]), entry  # Chinese in details.text
    assert entry["diagnostics"] and not CJK.search(entry["diagnostics"]), entry  # English in diagnostics
    if expression is not None:
        assert expression in entry["expression"], entry
    assert "location" not in entry  # the source location is an expression too


def test_one_issue_type_and_one_builder_everywhere() -> None:
    assert errors.Issue is contract.Issue is Issue
    assert errors.operation_outcome is contract.operation_outcome is operation_outcome
    assert operation_outcome([FINDING])["issue"] == [
        {
            "severity": "error",
            "code": "value",
            "details": {"coding": [{"system": ERROR_CODE_SYSTEM, "code": "YL-2304"}], "text": "出生日期无效"},
            "diagnostics": "birth date is not a date",
            "expression": ["PID-7"],
        }
    ]


def test_the_old_adapter_issue_form_fails_loudly() -> None:
    with pytest.raises(TypeError):
        Issue("warning", "code-invalid", "YL-2302", "x", "代码无对应", "RXE-2.1")  # type: ignore[misc]


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(database=f"sqlite:///{tmp_path / 'yaolian.sqlite'}", validation_mode="lenient"))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_http_boundary(http: TestClient) -> None:
    # a REST core error
    missing = http.get("/fhir/Patient/nobody")
    assert missing.status_code == 404
    assert_placed(missing.json()["issue"][0], "YL-0201")
    # a validation finding (the one structure check)
    invalid = http.post(
        "/fhir/Patient",
        content=b'{"resourceType": "Patient", "birthDate": "x"}',
        headers={"Content-Type": "application/fhir+json"},
    )
    assert invalid.status_code in (400, 422)
    assert_placed(invalid.json()["issue"][0], "YL-3070", "Patient.birthDate")  # the R5 date grammar
    # an adapter finding, at its place in the source
    converted = http.post(
        "/fhir/$convert?adapter=hl7v2", content=BAD_BIRTH_DATE, headers={"Content-Type": "application/hl7-v2"}
    )
    assert converted.status_code == 422
    [entry] = [i for i in converted.json()["issue"] if i["severity"] == "error"]
    assert_placed(entry, "YL-2304", "PID-7")


def _err(ack: bytes) -> list[str]:
    [err] = [line for line in ack.decode().split("\r") if line.startswith("ERR|")]
    return err.split("|")


def test_mllp_boundary() -> None:
    for ack in (build_ack(MESSAGE, False, [FINDING]), hl7_reply(MESSAGE, IngestResult("rejected", [FINDING]))):
        err = _err(ack)
        assert err[2] == "PID^1^7^1"  # ERR-2 from the expression
        assert err[5].split("^")[0] == "YL-2304"  # ERR-5 the code
        assert err[7] == "birth date is not a date"  # ERR-7 English
        assert err[8] == "出生日期无效"  # ERR-8 Chinese


def test_cli_boundary(tmp_path: Path) -> None:
    from gateway.cli import app

    bad = tmp_path / "bad.hl7"
    bad.write_bytes(BAD_BIRTH_DATE)
    result = CliRunner().invoke(app, ["adapters", "convert", "--adapter", "hl7v2", str(bad)])
    assert result.exit_code == 1
    outcome = json.loads(result.stdout)
    [entry] = [i for i in outcome["issue"] if i["severity"] == "error"]
    assert_placed(entry, "YL-2304", "PID-7")
