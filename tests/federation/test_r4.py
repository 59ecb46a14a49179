"""R4 -> R5 translation of the resources a federated prescription query uses."""

from __future__ import annotations

from gateway.federation.r4 import to_r5
from gateway.validation import structure_issues


def test_medication_request_choice_types_become_codeable_references() -> None:
    r4 = {
        "resourceType": "MedicationRequest",
        "id": "a",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"text": "阿司匹林肠溶片"},
        "reportedBoolean": False,
        "reasonCode": [{"text": "冠心病"}],
        "reasonReference": [{"reference": "Condition/c"}],
        "performer": {"reference": "Practitioner/d"},
        "dispenseRequest": {"performer": {"reference": "Organization/o"}, "numberOfRepeatsAllowed": 2},
        "dosageInstruction": [
            {
                "asNeededCodeableConcept": {"text": "疼痛时"},
                "maxDosePerPeriod": {"numerator": {"value": 3}, "denominator": {"value": 1}},
            }
        ],
        "detectedIssue": [{"reference": "DetectedIssue/x"}],
        "supportingInformation": [{"reference": "Observation/bp"}],
        "futureR4Thing": True,
    }
    r5, dropped = to_r5(r4)
    assert r5["medication"] == {"concept": {"text": "阿司匹林肠溶片"}}
    assert r5["reported"] is False and "reportedBoolean" not in r5
    assert r5["reason"] == [{"concept": {"text": "冠心病"}}, {"reference": {"reference": "Condition/c"}}]
    assert r5["performer"] == [{"reference": "Practitioner/d"}]
    assert r5["dispenseRequest"] == {"dispenser": {"reference": "Organization/o"}, "numberOfRepeatsAllowed": 2}
    dosage = r5["dosageInstruction"][0]
    assert dosage["asNeeded"] is True and dosage["asNeededFor"] == [{"text": "疼痛时"}]
    assert dosage["maxDosePerPeriod"] == [{"numerator": {"value": 3}, "denominator": {"value": 1}}]
    assert dropped == ["MedicationRequest.detectedIssue", "MedicationRequest.futureR4Thing"]
    assert r5["supportingInformation"] == [{"reference": "Observation/bp"}]
    assert "medicationCodeableConcept" in r4  # the input is not changed
    assert [i for i in structure_issues(r5) if i.severity == "error"] == []


def test_medication_request_reference_and_reported_reference() -> None:
    r5, _ = to_r5(
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p"},
            "medicationReference": {"reference": "Medication/m"},
            "reportedReference": {"reference": "Practitioner/x"},
        }
    )
    assert r5["medication"] == {"reference": {"reference": "Medication/m"}}
    assert r5["informationSource"] == [{"reference": "Practitioner/x"}]
    assert [i for i in structure_issues(r5) if i.severity == "error"] == []


def test_medication_dispense() -> None:
    r4 = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "medicationReference": {"reference": "Medication/m"},
        "statusReasonCodeableConcept": {"text": "缺药"},
        "context": {"reference": "Encounter/e"},
        "category": {"text": "门诊"},
        "substitution": {"wasSubstituted": False, "responsibleParty": [{"reference": "Practitioner/ph"}]},
        "whenHandedOver": "2026-11-01T10:00:00+08:00",
        "performer": [{"actor": {"reference": "Practitioner/ph"}}],
    }
    r5, _ = to_r5(r4)
    assert r5["medication"] == {"reference": {"reference": "Medication/m"}}
    assert r5["notPerformedReason"] == {"concept": {"text": "缺药"}}
    assert r5["encounter"] == {"reference": "Encounter/e"} and "context" not in r5
    assert r5["category"] == [{"text": "门诊"}]
    assert r5["substitution"]["responsibleParty"] == {"reference": "Practitioner/ph"}
    assert [i for i in structure_issues(r5) if i.severity == "error"] == []


def test_medication_and_organization() -> None:
    med, dropped = to_r5(
        {
            "resourceType": "Medication",
            "code": {"text": "二甲双胍片"},
            "manufacturer": {"display": "某药厂"},
            "form": {"text": "片剂"},
            "amount": {"numerator": {"value": 1}},
            "ingredient": [
                {
                    "itemCodeableConcept": {"text": "盐酸二甲双胍"},
                    "strength": {"numerator": {"value": 500}, "denominator": {"value": 1}},
                }
            ],
        }
    )
    assert med["marketingAuthorizationHolder"] == {"display": "某药厂"} and med["doseForm"] == {"text": "片剂"}
    assert med["ingredient"] == [
        {
            "item": {"concept": {"text": "盐酸二甲双胍"}},
            "strengthRatio": {"numerator": {"value": 500}, "denominator": {"value": 1}},
        }
    ]
    assert dropped == ["Medication.amount"]
    assert [i for i in structure_issues(med) if i.severity == "error"] == []
    org, _ = to_r5(
        {
            "resourceType": "Organization",
            "name": "村卫生室",
            "telecom": [{"system": "phone", "value": "0355-1"}],
            "address": [{"city": "长治市"}],
        }
    )
    assert org["contact"] == [{"telecom": [{"system": "phone", "value": "0355-1"}], "address": {"city": "长治市"}}]
    assert [i for i in structure_issues(org) if i.severity == "error"] == []


def test_untranslated_types_pass_through() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": []}
    assert to_r5(outcome) == (outcome, [])
