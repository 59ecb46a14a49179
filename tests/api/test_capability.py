"""``GET /fhir/metadata``: generated from what the server really supports, and valid R5."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from fhir.resources.capabilitystatement import CapabilityStatement

from gateway.fhir.registry import resource_types
from gateway.fhir.structure import json_form_issues
from gateway.fhir.xml_format import xml_to_json
from gateway.search.parameters import parameters_for
from gateway.service.capability import READ_ONLY


def empty_members(node: Any, path: str = "") -> list[str]:
    """FHIR JSON forbids empty arrays, objects and strings."""
    if isinstance(node, dict):
        found = [path] if not node else []
        for key, value in node.items():
            found.extend(empty_members(value, f"{path}.{key}"))
        return found
    if isinstance(node, list):
        found = [path] if not node else []
        for index, item in enumerate(node):
            found.extend(empty_members(item, f"{path}[{index}]"))
        return found
    return [path] if node == "" else []


def test_metadata_is_a_valid_r5_capability_statement(module_client: TestClient) -> None:
    response = module_client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/fhir+json;charset=utf-8"
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert json_form_issues(statement) == []
    assert empty_members(statement) == []
    assert statement["fhirVersion"] == "5.0.0"
    assert statement["kind"] == "instance"
    assert statement["implementation"]["url"] == "http://testserver/fhir"
    assert set(statement["format"]) >= {"application/fhir+json", "application/fhir+xml"}
    assert statement["patchFormat"] == ["application/json-patch+json"]
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}


def test_metadata_lists_every_served_type_with_its_search_parameters(module_client: TestClient) -> None:
    rest = module_client.get("/fhir/metadata").json()["rest"][0]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert set(by_type) == set(resource_types())
    for rtype, entry in by_type.items():
        if rtype in READ_ONLY:  # only ever the gateway's files (the SubscriptionTopics): read, vread, search
            assert [i["code"] for i in entry["interaction"]] == ["read", "vread", "search-type"]
            listed = {p["name"] for p in entry["searchParam"]}
            assert listed == {code for code, p in parameters_for(rtype).items() if p.url}, rtype
            continue
        assert {i["code"] for i in entry["interaction"]} == {
            "read",
            "vread",
            "update",
            "patch",
            "delete",
            "history-instance",
            "history-type",
            "create",
            "search-type",
        }
        listed = {p["name"]: p for p in entry.get("searchParam", [])}
        assert set(listed) == {code for code, p in parameters_for(rtype).items() if p.url}, rtype
        names = [op["name"] for op in entry.get("operation", [])]
        assert len(names) == len(set(names)), rtype
    patient = {p["name"]: p for p in by_type["Patient"]["searchParam"]}
    assert patient["birthdate"] == {
        "name": "birthdate",
        "definition": "http://hl7.org/fhir/SearchParameter/individual-birthdate",
        "type": "date",
    }
    assert patient["identifier"]["type"] == "token"
    assert patient["name"]["type"] == "string"
    assert patient["general-practitioner"]["type"] == "reference"
    request = {p["name"]: p for p in by_type["MedicationRequest"]["searchParam"]}
    assert request["dispense-quantity"]["definition"] == (
        "http://yaolian.org/fhir/SearchParameter/medicationrequest-dispense-quantity"
    )
    assert request["dispense-quantity"]["type"] == "quantity"
    inventory = {p["name"]: p for p in by_type["InventoryReport"]["searchParam"]}
    assert inventory["item-code-quantity"]["type"] == "composite"
    assert "MedicationRequest:subject" in by_type["MedicationRequest"]["searchInclude"]
    assert "MedicationRequest:subject" in by_type["Patient"]["searchRevInclude"]
    assert [op["name"] for op in by_type["Patient"]["operation"]] == ["match", "prescriptions", "validate"]  # issue 13
    assert {"validate", "hl7v2", "continue"} <= {op["name"] for op in by_type["MedicationRequest"]["operation"]}
    assert "lookup" in {op["name"] for op in by_type["CodeSystem"]["operation"]}


def test_operations_are_served_only_where_the_statement_says(module_client: TestClient) -> None:
    response = module_client.get("/fhir/Patient/p1/$hl7v2")
    assert response.status_code == 404
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "YL-0204"
    assert module_client.get("/fhir/Patient/$lookup").status_code == 404


def test_metadata_in_xml(module_client: TestClient) -> None:
    as_json = module_client.get("/fhir/metadata").json()
    response = module_client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/fhir+xml;charset=utf-8"
    assert json.loads(xml_to_json(response.content)) == as_json
