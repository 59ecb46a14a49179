"""A small alliance dataset with known values, written once per module and backend.

Every search test states its expected matches against these resources, so the values here
are chosen to separate cases: the same MRN code under two systems, an identifier without a
system, accented and Chinese names, dates of day/month/year precision and with time zones
that move them across a UTC day or year boundary, quantities with and without UCUM, and
inventory items whose codes and quantities only match together in one report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

MRN = "http://example.org/mrn"
OTHER_MRN = "http://example.org/other-mrn"
PRACTITIONER_CODE = "http://example.org/practitioner"
INSTITUTION = "http://yaolian.org/fhir/sid/institution"
DRUG = "http://yaolian.org/fhir/sid/drug-standard-code"
LOCAL_DRUG = "http://example.org/local-drug"
FORM = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"
UCUM = "http://unitsofmeasure.org"
TAGS = "http://yaolian.org/tags"
OTHER_TAGS = "http://example.org/other-tags"
YL_PATIENT = "http://yaolian.org/fhir/StructureDefinition/yl-patient"

AMLODIPINE = {"coding": [{"system": DRUG, "code": "XC08CAA001", "display": "Amlodipine besylate tablets"}]}
METFORMIN = {"coding": [{"system": DRUG, "code": "XA10BAA001", "display": "Metformin hydrochloride tablets"}]}
ASPIRIN = {"coding": [{"system": LOCAL_DRUG, "code": "ASP100", "display": "Aspirin"}]}


def tablets(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "tablet", "system": FORM, "code": "TAB"}


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


ORGANIZATIONS = [
    {
        "resourceType": "Organization",
        "id": "org-county",
        "meta": {"source": "http://his.county.example/fhir/v2"},
        "identifier": [{"system": INSTITUTION, "value": "H001"}],
        "active": True,
        "name": "County People's Hospital",
        "alias": ["县人民医院"],
    },
    {
        "resourceType": "Organization",
        "id": "org-township",
        "meta": {"source": "http://his.county.example/fhir"},
        "identifier": [{"system": INSTITUTION, "value": "H002"}],
        "active": True,
        "name": "Qingshan Township Health Centre",
        "partOf": ref("Organization/org-county"),
    },
    {
        "resourceType": "Organization",
        "id": "org-village",
        "meta": {"source": "http://his.county.example/fhirx"},
        "identifier": [{"system": INSTITUTION, "value": "H003"}],
        "active": False,
        "name": "Xiaohe Village Clinic",
        "partOf": ref("Organization/org-township"),
    },
]

PRACTITIONERS = [
    {
        "resourceType": "Practitioner",
        "id": "prac-li",
        "identifier": [{"system": PRACTITIONER_CODE, "value": "D001"}],
        "name": [{"family": "Li", "given": ["Wei"]}],
        "gender": "male",
    },
    {
        "resourceType": "Practitioner",
        "id": "prac-zhang",
        "identifier": [{"system": PRACTITIONER_CODE, "value": "D002"}],
        "name": [{"family": "Zhang", "given": ["Min"]}],
        "gender": "female",
    },
]

PATIENTS = [
    {
        "resourceType": "Patient",
        "id": "pat-wang",
        "meta": {"profile": [YL_PATIENT], "tag": [{"system": TAGS, "code": "chronic"}]},
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">王芳</div>'},
        "identifier": [{"system": MRN, "value": "M001"}],
        "name": [{"text": "王芳", "family": "Wang", "given": ["Fang"]}],
        "telecom": [{"system": "phone", "value": "13800000001"}],
        "gender": "female",
        "birthDate": "1950-03-15",
        "generalPractitioner": [ref("Practitioner/prac-li")],
        "managingOrganization": ref("Organization/org-county"),
    },
    {
        "resourceType": "Patient",
        "id": "pat-muller",
        "identifier": [{"system": MRN, "value": "M002"}],
        "name": [{"family": "Müller", "given": ["José"]}],
        "gender": "male",
        "birthDate": "1950-03",
        "generalPractitioner": [ref("Practitioner/prac-zhang")],
        "managingOrganization": ref("Organization/org-township"),
    },
    {
        "resourceType": "Patient",
        "id": "pat-zhao",
        "meta": {"tag": [{"system": TAGS, "code": "chronic"}, {"system": OTHER_TAGS, "code": "vip"}]},
        "identifier": [{"value": "M003"}],
        "name": [{"family": "赵", "given": ["丽"]}],
        "gender": "female",
        "birthDate": "1988",
        "managingOrganization": ref("Organization/org-village"),
    },
    {
        "resourceType": "Patient",
        "id": "pat-chen",
        "identifier": [{"system": OTHER_MRN, "value": "M001"}],
        "name": [{"family": "Chen", "given": ["Ming"]}],
        "gender": "male",
        "birthDate": "2001-12-31",
        "deceasedDateTime": "2023-06-01T08:30:00+08:00",
    },
    {
        "resourceType": "Patient",
        "id": "pat-lin",
        "identifier": [{"system": MRN, "value": "M005"}, {"system": "http://example.org/legacy", "value": "L,7|x"}],
        "active": False,
        "name": [{"family": "Lin", "given": ["Ling", "Wangmei"]}],
        "birthDate": "1975-07-04",
    },
]


def _medication(rid: str, code: dict[str, Any], text: str, status: str) -> dict[str, Any]:
    return {"resourceType": "Medication", "id": rid, "code": {**code, "text": text}, "status": status}


MEDICATIONS = [
    _medication("med-amlo", AMLODIPINE, "苯磺酸氨氯地平片", "active"),
    _medication("med-metf", METFORMIN, "盐酸二甲双胍片", "active"),
    _medication("med-aspi", ASPIRIN, "阿司匹林肠溶片", "inactive"),
]


def _request(rid: str, subject: str, medication: dict[str, Any], authored: str, status: str, **extra: Any) -> Any:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "medication": medication,
        "subject": ref(subject),
        "authoredOn": authored,
        **extra,
    }


MEDICATION_REQUESTS = [
    _request(
        "mr1",
        "Patient/pat-wang",
        {"reference": ref("Medication/med-amlo")},
        "2024-03-01T09:00:00+08:00",
        "active",
        requester=ref("Practitioner/prac-li"),
        dispenseRequest={"quantity": tablets(28)},
    ),
    _request(
        "mr2",
        "Patient/pat-wang",
        {"reference": ref("Medication/med-metf")},
        "2024-03-15",
        "completed",
        requester=ref("Practitioner/prac-zhang"),
        dispenseRequest={"quantity": tablets(60)},
    ),
    _request(
        "mr3",
        "Patient/pat-muller",
        {"reference": ref("Medication/med-amlo")},
        "2024-04-02T23:30:00Z",
        "active",
        requester=ref("Practitioner/prac-li"),
        dispenseRequest={"quantity": tablets(14.5)},
    ),
    _request(
        "mr4",
        "Patient/pat-zhao",
        {"concept": METFORMIN},
        "2023-12-31T16:30:00-08:00",
        "active",
        requester=ref("Practitioner/prac-zhang"),
        dispenseRequest={"quantity": {"value": 100, "unit": "mg", "system": UCUM, "code": "mg"}},
    ),
    _request("mr5", "Patient/pat-chen", {"reference": ref("Medication/med-aspi")}, "2022-05", "cancelled"),
    _request(
        "mr6",
        "Patient/pat-lin",
        {"reference": ref("Medication/med-metf")},
        "2024-03-01T23:59:59Z",
        "on-hold",
        requester={
            "reference": "Practitioner/prac-li",
            "identifier": {"system": PRACTITIONER_CODE, "value": "D001"},
        },
        dispenseRequest={"quantity": tablets(30)},
    ),
]


def _stock(code: dict[str, Any], quantity: float) -> dict[str, Any]:
    return {"item": {"concept": code}, "quantity": tablets(quantity)}


INVENTORY_REPORTS = [
    {
        "resourceType": "InventoryReport",
        "id": "inv1",
        "status": "active",
        "countType": "snapshot",
        "reportedDateTime": "2024-03-31T18:00:00+08:00",
        "inventoryListing": [{"item": [_stock(AMLODIPINE, 120), _stock(METFORMIN, 30)]}],
    },
    {
        "resourceType": "InventoryReport",
        "id": "inv2",
        "status": "active",
        "countType": "snapshot",
        "reportedDateTime": "2024-03-31T18:00:00+08:00",
        "inventoryListing": [{"item": [_stock(AMLODIPINE, 20)]}, {"item": [_stock(METFORMIN, 500)]}],
    },
    {
        "resourceType": "InventoryReport",
        "id": "inv3",
        "status": "draft",
        "countType": "snapshot",
        "reportedDateTime": "2024-04-01",
        "inventoryListing": [{"item": [_stock(ASPIRIN, 100)]}],
    },
]


@dataclass
class Dataset:
    client: TestClient
    before_update: str
    """An instant after every resource was first written and before ``pat-lin`` was updated."""


def put(client: TestClient, resource: dict[str, Any]) -> dict[str, Any]:
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(url, content=json.dumps(resource), headers={"Content-Type": "application/fhir+json"})
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def load(client: TestClient) -> Dataset:
    for resource in [*ORGANIZATIONS, *PRACTITIONERS, *PATIENTS, *MEDICATIONS, *MEDICATION_REQUESTS, *INVENTORY_REPORTS]:
        first_round = put(client, resource)["meta"]["lastUpdated"]
    time.sleep(0.002)
    updated = put(client, {**PATIENTS[4], "telecom": [{"system": "email", "value": "lin@example.org"}]})
    assert updated["meta"]["versionId"] == "2"
    assert updated["meta"]["lastUpdated"] > first_round
    return Dataset(client, first_round)
