"""Every official R5 example of the served types is created and read back losslessly.

JSON is compared with numbers kept as their source text (``6.10`` != ``6.1``, a number != a
string); the only differences allowed are the server-owned ``id``, ``meta.versionId`` and
``meta.lastUpdated``. Through XML the narrative ``div`` is compared as canonical XML (C14N 2.0),
because XML keeps the XHTML infoset, not its spelling (see tests/fhir/test_xml_format.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from gateway.fhir.xml_format import json_to_xml, xml_to_json
from gateway.validation import structure_issues

EXAMPLES = sorted((Path(__file__).parent.parent / "fixtures" / "r5-examples").glob("*.json"))
REQUIRED_TYPES = {
    "MedicationRequest",
    "Medication",
    "MedicationDispense",
    "SupplyRequest",
    "SupplyDelivery",
    "InventoryReport",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Endpoint",
    "Provenance",
}
JSON_HEADERS = {"Content-Type": "application/fhir+json"}
XML_HEADERS = {"Content-Type": "application/fhir+xml"}


def exact(text: bytes | str) -> Any:
    """JSON with numbers as ``("number", source text)``: tuples never equal lists or strings."""
    return json.loads(text, parse_float=lambda s: ("number", s), parse_int=lambda s: ("number", s))


def without_server_members(resource: dict[str, Any]) -> dict[str, Any]:
    out = dict(resource)
    out.pop("id", None)
    meta = {k: v for k, v in (out.pop("meta", None) or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    return out


def canonical_narratives(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: etree.tostring(etree.fromstring(value.encode()), method="c14n2")
            if key == "div" and isinstance(value, str)
            else canonical_narratives(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [canonical_narratives(item) for item in node]
    return node


def resource_type_of(path: Path) -> str:
    return path.name.split("-", 1)[0]


def create(client: TestClient, path: Path, body: bytes, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
    response = client.post(f"/fhir/{resource_type_of(path)}", content=body, headers=headers)
    assert response.status_code == 201, response.text
    created = exact(response.content)
    assert created["id"] != exact(path.read_bytes()).get("id")  # create assigns the id
    location = response.headers["Location"]
    assert location.endswith(f"/fhir/{resource_type_of(path)}/{created['id']}/_history/1")
    assert created["meta"]["versionId"] == "1"
    return f"/fhir/{resource_type_of(path)}/{created['id']}", created


def test_examples_cover_every_required_type() -> None:
    found = {resource_type_of(p) for p in EXAMPLES}
    assert found == REQUIRED_TYPES
    assert len(EXAMPLES) == 187


# Findings of the one structure check (which includes the base invariants) that the official
# examples really have: med0301's identifier is ``{"id": "123456789"}``, an element with neither a
# value nor children other than id (ele-1, an error); it and f001's second identifier have no
# value (ident-1, a warning in R5: "Identifier with no value has limited utility").
KNOWN_FINDINGS = {
    "Medication-med0301": [
        ("YL-3060", "error", ("Medication.identifier[0]",)),
        ("YL-3060", "warning", ("Medication.identifier[0]",)),
    ],
    "Patient-f001": [("YL-3060", "warning", ("Patient.identifier[1]",))],
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_structurally_valid(path: Path) -> None:
    found = [(i.error_code, i.severity, i.expression) for i in structure_issues(json.loads(path.read_bytes()))]
    assert found == KNOWN_FINDINGS.get(path.stem, [])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_json_round_trip(module_client: TestClient, path: Path) -> None:
    raw = path.read_bytes()
    url, created = create(module_client, path, raw, JSON_HEADERS)
    expected = without_server_members(exact(raw))
    assert without_server_members(created) == expected
    read = module_client.get(url)
    assert read.status_code == 200
    assert read.headers["content-type"] == "application/fhir+json;charset=utf-8"
    assert read.headers["ETag"] == 'W/"1"'
    assert without_server_members(exact(read.content)) == expected
    assert exact(read.content)["meta"] == created["meta"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_read_as_xml(module_client: TestClient, path: Path) -> None:
    raw = path.read_bytes()
    url, created = create(module_client, path, raw, JSON_HEADERS)
    read = module_client.get(url, params={"_format": "xml"})
    assert read.status_code == 200
    assert read.headers["content-type"] == "application/fhir+xml;charset=utf-8"
    from_xml = exact(xml_to_json(read.content))
    assert from_xml["id"] == created["id"]
    assert canonical_narratives(without_server_members(from_xml)) == canonical_narratives(
        without_server_members(exact(raw))
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_created_from_xml(module_client: TestClient, path: Path) -> None:
    raw = path.read_bytes()
    url, _ = create(module_client, path, json_to_xml(raw), XML_HEADERS)
    read = module_client.get(url, headers={"Accept": "application/fhir+json"})
    assert read.status_code == 200
    assert canonical_narratives(without_server_members(exact(read.content))) == canonical_narratives(
        without_server_members(exact(raw))
    )
