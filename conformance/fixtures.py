"""Test data: three variants of every alliance resource, valid against the alliance profiles.

Each variant differs from the others in every searchable element (status, codes, dates,
quantities, references), so a search can always be checked against what the kit wrote: the
expected matches are computed from the variants, and two of the three must not come back.
Identifiers are unique per `tag` (a run, or "seed" for the loadable seed set) and satisfy the
NamingSystem formats (resident ID with its MOD 11-2 check character, fixmedins `H` + 11 digits …).

`build(type, i, tag, ref)` returns one resource; `ref(type, i)` gives the literal reference of the
i-th variant of another type, so the same builders serve server-assigned ids (create) and fixed
ids (seed).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Json = dict[str, Any]
Ref = Callable[[str, int], str]

YL = "http://yaolian.org/fhir/StructureDefinition/"
SID = "http://yaolian.org/fhir/sid/"
CS = "http://yaolian.org/fhir/CodeSystem/"
ICD10 = "urn:oid:2.16.156.10011.2.3.3.11.1"

# Types in dependency order: a type only refers to types before it.
ORDER = [
    "Organization",
    "Practitioner",
    "Patient",
    "Medication",
    "MedicationRequest",
    "SupplyRequest",
    "InventoryReport",
]
VARIANTS = 3


def _rng(tag: str, *parts: object) -> random.Random:
    return random.Random("|".join([tag, *map(str, parts)]))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def resident_id(area: str, birth: str, seq: str) -> str:
    """GB 11643-1999 number with its ISO 7064 MOD 11-2 check character."""
    body = area + birth.replace("-", "") + seq
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def _profile(name: str) -> Json:
    return {"profile": [YL + name]}


def organization(i: int, tag: str, ref: Ref) -> Json:
    rng = _rng(tag, "org", i)
    tier = ["county", "township", "village"][i]
    org: Json = {
        "resourceType": "Organization",
        "meta": _profile("yl-organization"),
        "identifier": [{"system": SID + "fixmedins-code", "value": "H140423" + _digits(rng, 5)}],
        "active": True,
        "type": [{"coding": [{"system": CS + "alliance-tier", "code": tier}]}],
        "name": ["县人民医院", "镇卫生院", "村卫生室"][i] + f" {tag}-{i}",
    }
    if i > 0:
        org["partOf"] = {"reference": ref("Organization", i - 1)}
    return org


def practitioner(i: int, tag: str, ref: Ref) -> Json:
    rng = _rng(tag, "prac", i)
    return {
        "resourceType": "Practitioner",
        "meta": _profile("yl-practitioner"),
        "identifier": [{"system": SID + "nhsa-physician-code", "value": "D140423" + _digits(rng, 8)}],
        "name": [{"text": ["李明", "赵强", "孙丽"][i], "family": f"{['李', '赵', '孙'][i]}{tag}"}],
        "gender": ["male", "male", "female"][i],
        "qualification": [{"code": {"text": "执业医师"}, "issuer": {"reference": ref("Organization", i)}}],
    }


BIRTH = ["1949-12-31", "1962-07-15", "1975-11-20"]


def patient(i: int, tag: str, ref: Ref) -> Json:
    rng = _rng(tag, "pat", i)
    return {
        "resourceType": "Patient",
        "meta": _profile("yl-patient"),
        "identifier": [
            {"system": "urn:oid:2.16.156.10011.1.3", "value": resident_id("140423", BIRTH[i], _digits(rng, 3))},
            {"system": SID + "nhsa-psn-no", "value": "1400" + _digits(rng, 16)},
        ],
        "name": [{"text": ["张桂芳", "王建国", "李秀英"][i], "family": f"{['张', '王', '李'][i]}{tag}"}],
        "gender": ["female", "male", "female"][i],
        "birthDate": BIRTH[i],
        "managingOrganization": {"reference": ref("Organization", i)},
    }


DRUGS = [
    ("XA10BAE054A001010102770"[:9], "盐酸二甲双胍片", "0.5g*20片", "01"),
    ("XC08CAA046A001010100937"[:9], "苯磺酸氨氯地平片", "5mg*28片", "01"),
    ("XR03AKS123A001010300123"[:9], "沙美特罗替卡松粉吸入剂", "50μg/250μg*60吸", "29"),
]


def insurance_code(i: int, tag: str) -> str:
    return DRUGS[i][0] + "".join(_rng(tag, "drug", i).choice("0123456789ABCDEFGHJK") for _ in range(14))


def medication(i: int, tag: str, ref: Ref) -> Json:
    rng = _rng(tag, "std", i)
    _, name, spec, form = DRUGS[i]
    return {
        "resourceType": "Medication",
        "meta": _profile("yl-drug"),
        "extension": [
            {"url": YL + "yl-drug-specification", "valueString": spec},
            {"url": YL + "yl-essential-medicine", "valueBoolean": i != 1},
            {"url": YL + "yl-volume-based-procurement", "valueBoolean": i != 2},
        ],
        "identifier": [
            {
                "system": SID + "member-drug-code",
                "value": f"YP{tag}{i}",
                "assigner": {"reference": ref("Organization", 0)},
            }
        ],
        "code": {
            "coding": [
                {"system": SID + "nhsa-drug-code", "code": insurance_code(i, tag), "display": name},
                {"system": SID + "drug-standard-code", "code": "869" + _digits(rng, 11)},
            ],
            "text": name,
        },
        "status": ["active", "active", "inactive"][i],
        "doseForm": {"coding": [{"system": "urn:oid:2.16.156.10011.2.3.1.211", "code": form}]},
    }


def medication_request(i: int, tag: str, ref: Ref) -> Json:
    category = ["general", "emergency", "pediatric"][i]
    days, qty = [(28, 56), (3, 6), (60, 120)][i]
    diagnosis = [("E11.900", "2型糖尿病"), ("J06.900", "急性上呼吸道感染"), ("I10.x00x002", "高血压")][i]
    extensions: list[Json] = [
        {
            "url": YL + "yl-prescription-category",
            "valueCoding": {"system": CS + "prescription-category", "code": category},
        }
    ]
    if i != 1:
        extensions.append(
            {
                "url": YL + "yl-long-term-prescription",
                "extension": [
                    {
                        "url": "chronicGroup",
                        "valueCoding": {
                            "system": CS + "chronic-disease-group",
                            "code": ["diabetes", "", "hypertension"][i],
                        },
                    },
                    {"url": "maxWeeks", "valuePositiveInt": [4, 0, 12][i]},
                ],
            }
        )
        extensions.append(
            {
                "url": YL + "yl-extended-prescription",
                "extension": [
                    {"url": "dispensingMember", "valueReference": {"reference": ref("Organization", 2 - i // 2)}}
                ],
            }
        )
    extensions.append(
        {
            "url": YL + "yl-central-review-result",
            "extension": [
                {"url": "result", "valueCode": ["pass", "warn", "reject"][i]},
                {"url": "reviewer", "valueReference": {"reference": ref("Practitioner", 0)}},
                {"url": "date", "valueDateTime": f"2025-03-0{1 + 4 * i}T12:30:00+08:00"},
            ],
        }
    )
    return {
        "resourceType": "MedicationRequest",
        "meta": _profile("yl-prescription"),
        "extension": extensions,
        "identifier": [
            {"system": "urn:oid:2.16.156.10011.1.20", "value": f"RX{tag}{i}"},
            {"system": SID + "hi-rxno", "value": f"HI{tag}{i}"},
        ],
        "status": ["active", "on-hold", "completed"][i],
        "intent": "order",
        "medication": {"reference": {"reference": ref("Medication", i)}},
        "subject": {"reference": ref("Patient", i)},
        "authoredOn": f"2025-03-{1 + 4 * i:02d}T12:05:00+08:00",
        "requester": {"reference": ref("Practitioner", i)},
        "reason": [{"concept": {"coding": [{"system": ICD10, "code": diagnosis[0], "display": diagnosis[1]}]}}],
        "dosageInstruction": [
            {
                "text": "每次1片，每日2次，口服",
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [{"system": "urn:oid:2.16.156.10011.2.3.1.158", "code": "1", "display": "口服"}]},
            }
        ],
        "dispenseRequest": {
            "quantity": {"value": qty, "unit": "片"},
            "expectedSupplyDuration": {"value": days, "unit": "天", "system": "http://unitsofmeasure.org", "code": "d"},
        },
    }


def supply_request(i: int, tag: str, ref: Ref) -> Json:
    kind = ["demand-plan", "shortage", "transfer"][i]
    sr: Json = {
        "resourceType": "SupplyRequest",
        "meta": _profile("yl-supply-request"),
        "identifier": [{"system": "http://yaolian.org/fhir/sid/supply-request", "value": f"SR{tag}{i}"}],
        "status": ["active", "draft", "completed"][i],
        "category": {"coding": [{"system": CS + "supply-request-kind", "code": kind}]},
        "item": {"reference": {"reference": ref("Medication", i)}},
        "quantity": {"value": [200, 28, 500][i], "unit": "片"},
        "requester": {"reference": ref("Organization", [2, 1, 2][i])},
        "authoredOn": f"2025-03-{2 + 4 * i:02d}T12:00:00+08:00",
    }
    if kind == "shortage":
        sr["deliverFor"] = {"reference": ref("Patient", i)}
    if kind == "transfer":
        sr["deliverFrom"] = {"reference": ref("Organization", 0)}
        sr["deliverTo"] = {"reference": ref("Organization", 2)}
    return sr


def inventory_report(i: int, tag: str, ref: Ref) -> Json:
    rng = _rng(tag, "inv", i)
    return {
        "resourceType": "InventoryReport",
        "meta": _profile("yl-inventory-report"),
        "identifier": [{"system": "http://yaolian.org/fhir/sid/inventory-report", "value": f"INV{tag}{i}"}],
        "status": ["active", "draft", "requested"][i],
        "countType": "snapshot",
        "reportedDateTime": f"2025-03-{1 + 4 * i:02d}T18:00:00+08:00",
        "reporter": {"reference": ref("Practitioner", i)},
        "inventoryListing": [
            {
                "countingDateTime": f"2025-03-{1 + 4 * i:02d}T17:30:00+08:00",
                "item": [
                    {
                        "extension": [
                            {"url": YL + "yl-lot-number", "valueString": f"L{tag}{i}"},
                            {"url": YL + "yl-expiration-date", "valueDate": f"{2026 + i}-0{1 + 3 * i}-28"},
                            {
                                "url": YL + "yl-traceability-code",
                                "valueIdentifier": {"system": SID + "drug-trace-code", "value": "8" + _digits(rng, 19)},
                            },
                        ],
                        "quantity": {"value": [120, 15, 300][i], "unit": "片"},
                        "item": {
                            "concept": {"coding": [{"system": SID + "nhsa-drug-code", "code": insurance_code(i, tag)}]},
                            "reference": {"reference": ref("Medication", i)},
                        },
                    }
                ],
            }
        ],
    }


BUILDERS: dict[str, Callable[[int, str, Ref], Json]] = {
    "Organization": organization,
    "Practitioner": practitioner,
    "Patient": patient,
    "Medication": medication,
    "MedicationRequest": medication_request,
    "SupplyRequest": supply_request,
    "InventoryReport": inventory_report,
}


def build(type_: str, i: int, tag: str, ref: Ref) -> Json:
    return BUILDERS[type_](i, tag, ref)


def seed_id(type_: str, i: int, tag: str = "seed") -> str:
    return f"ylc-{tag}-{type_.lower()}-{i}"


def seed_bundle(tag: str = "seed") -> Json:
    """The seed set as one transaction Bundle of PUTs with fixed ids (load it with any FHIR tool)."""
    entries = []
    for type_ in ORDER:
        for i in range(VARIANTS):
            resource = build(type_, i, tag, lambda t, j: f"{t}/{seed_id(t, j, tag)}")
            resource["id"] = seed_id(type_, i, tag)
            entries.append(
                {
                    "fullUrl": f"{type_}/{resource['id']}",
                    "resource": resource,
                    "request": {"method": "PUT", "url": f"{type_}/{resource['id']}"},
                }
            )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
