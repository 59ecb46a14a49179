"""XML bombs and external entities are refused without reading a file (issue 11, checks), on a
gateway that requires tokens: the caller is authenticated, the body is still hostile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from .conftest import add_secret_client, secure_client
from .test_access_matrix import token

XML = {"Content-Type": "application/fhir+xml", "Accept": "application/fhir+json"}


def bodies(secret_file: Path) -> dict[str, bytes]:
    lol = ['<!ENTITY l0 "lol">'] + [f'<!ENTITY l{n} "{("&l" + str(n - 1) + ";") * 10}">' for n in range(1, 10)]
    return {
        "external file": (
            f'<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY x SYSTEM "file://{secret_file}">]>'
            '<Patient xmlns="http://hl7.org/fhir"><gender value="&x;"/></Patient>'
        ).encode(),
        "parameter entity": (
            f'<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY % p SYSTEM "file://{secret_file}"> %p;]>'
            '<Patient xmlns="http://hl7.org/fhir"/>'
        ).encode(),
        "billion laughs": (
            '<?xml version="1.0"?><!DOCTYPE Patient [' + "".join(lol) + "]>"
            '<Patient xmlns="http://hl7.org/fhir"><gender value="&l9;"/></Patient>'
        ).encode(),
        "external DTD": (
            f'<?xml version="1.0"?><!DOCTYPE Patient SYSTEM "file://{secret_file}">'
            '<Patient xmlns="http://hl7.org/fhir"/>'
        ).encode(),
    }


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    database = f"sqlite:///{tmp_path / 'x.sqlite'}"
    client_id, secret = add_secret_client(database, role="admin")
    for http in secure_client(database):
        yield http, token(http, client_id, secret)


@pytest.mark.parametrize("attack", ["external file", "parameter entity", "billion laughs", "external DTD"])
def test_hostile_xml_is_refused_and_reads_no_file(
    gateway: tuple[TestClient, dict[str, str]], tmp_path: Path, attack: str
) -> None:
    http, auth = gateway
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("TOP-SECRET-MARKER", encoding="utf-8")
    answer = http.post("/fhir/Patient", content=bodies(secret_file)[attack], headers={**XML, **auth})
    assert answer.status_code == 400, (attack, answer.text[:300])
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert "TOP-SECRET-MARKER" not in answer.text and "lollol" not in answer.text
    assert http.get("/fhir/Patient", headers=auth).json().get("total", 0) == 0  # nothing stored
