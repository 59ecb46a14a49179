"""The conformance resources in profiles/ are well-formed R5 and hang together."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest
from fhir.resources import get_fhir_model_class

BASE = "http://yaolian.org/fhir/"
FILES = sorted(
    (e for e in resources.files("profiles").iterdir() if e.name.endswith(".json") and e.name != "core-expansions.json"),
    key=lambda e: e.name,
)
RESOURCES = {e.name: json.loads(e.read_text("utf-8")) for e in FILES}


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_resource_is_valid_r5(name: str) -> None:
    res = RESOURCES[name]
    get_fhir_model_class(res["resourceType"]).model_validate(res)
    assert res["url"] == f"{BASE}{res['resourceType']}/{res['id']}"
    assert name == f"{res['resourceType']}-{res['id']}.json"


def _of(kind: str) -> list[dict]:
    return [r for r in RESOURCES.values() if r["resourceType"] == kind]


def test_structure_definitions_have_differential_and_snapshot() -> None:
    sds = _of("StructureDefinition")
    assert len(sds) >= 17
    for sd in sds:
        assert sd["differential"]["element"] and sd["snapshot"]["element"]
        ids = [e["id"] for e in sd["snapshot"]["element"]]
        assert len(ids) == len(set(ids)), sd["id"]
        for d in sd["differential"]["element"]:
            assert d["id"] in ids, (sd["id"], d["id"])


def test_descriptions_cite_requirements() -> None:
    for res in _of("StructureDefinition") + _of("CodeSystem") + _of("SearchParameter"):
        assert re.search(r"POL-\d\d", res["description"]), res["id"]


def test_required_search_parameters() -> None:
    by_code = {(sp["base"][0], sp["code"]): sp for sp in _of("SearchParameter")}
    assert by_code[("MedicationRequest", "dispense-quantity")]["type"] == "quantity"
    assert by_code[("InventoryReport", "item-quantity")]["type"] == "quantity"
    assert by_code[("Medication", "insurance-code")]["type"] == "token"
    composite = by_code[("InventoryReport", "item-code-quantity")]
    assert composite["type"] == "composite"
    urls = {sp["url"] for sp in _of("SearchParameter")}
    assert [c["definition"] in urls for c in composite["component"]] == [True, True]


def test_chronic_groups_are_icd10_ranges() -> None:
    vs = {v["id"]: v for v in _of("ValueSet")}
    assert vs["chronic-hypertension-icd10"]["compose"]["include"][0]["system"] == "urn:oid:2.16.156.10011.2.3.3.11.1"
    assert len(vs["chronic-disease-icd10"]["compose"]["include"][0]["valueSet"]) == 3


def test_naming_systems_use_national_oids() -> None:
    ns = {n["id"]: n for n in _of("NamingSystem")}
    assert {"type": "oid", "value": "2.16.156.10011.1.3", "preferred": False} in ns["resident-id"]["uniqueId"]
