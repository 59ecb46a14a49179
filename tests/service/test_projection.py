"""``_summary`` and ``_elements`` cut the stored text without re-encoding what stays."""

from __future__ import annotations

import json

from gateway.service.projection import SUBSETTED, project

REQUEST = (
    b'{"resourceType":"MedicationRequest","id":"mr","meta":{"versionId":"2","tag":[{"code":"mine"}]},'
    b'"text":{"status":"generated","div":"<div xmlns=\\"http://www.w3.org/1999/xhtml\\">x</div>"},'
    b'"status":"active","statusReason":{"text":"paused"},"statusChanged":"2024-01-01","intent":"order",'
    b'"reportedBoolean":true,'
    b'"medication":{"concept":{"text":"amlodipine"}},"subject":{"reference":"Patient/p"},'
    b'"note":[{"text":"after food"}],'
    b'"dispenseRequest":{"quantity":{"value":28.50,"unit":"tablet"}}}'
)


def keys(body: bytes) -> list[str]:
    return list(json.loads(body))


def test_no_projection_returns_the_same_bytes() -> None:
    assert project(REQUEST, "MedicationRequest", None, None) is REQUEST
    assert project(REQUEST, "MedicationRequest", None, []) is REQUEST


def test_summary_true_keeps_summary_and_mandatory_elements_only() -> None:
    body = project(REQUEST, "MedicationRequest", "true", None)
    assert keys(body) == ["resourceType", "id", "meta", "status", "intent", "medication", "subject"]
    meta = json.loads(body)["meta"]
    assert meta["tag"] == [{"code": "mine"}, SUBSETTED]
    assert meta["versionId"] == "2"


def test_summary_text_and_data() -> None:
    assert keys(project(REQUEST, "MedicationRequest", "text", None)) == [
        "resourceType",
        "id",
        "meta",
        "text",
        "status",
        "intent",
        "medication",
        "subject",
    ]
    data = project(REQUEST, "MedicationRequest", "data", None)
    assert "text" not in keys(data)
    assert b'"quantity":{"value":28.50,"unit":"tablet"}' in data


def test_elements_keep_named_members_verbatim() -> None:
    body = project(REQUEST, "MedicationRequest", None, ["dispenseRequest", "status", "nonsense"])
    assert keys(body) == ["resourceType", "id", "meta", "status", "intent", "medication", "subject", "dispenseRequest"]
    assert b'"dispenseRequest":{"quantity":{"value":28.50,"unit":"tablet"}}' in body


def test_elements_keep_choice_elements_by_base_name_only() -> None:
    patient = b'{"resourceType":"Patient","id":"p","deceasedDateTime":"2020","_deceasedDateTime":{"id":"d"}}'
    assert keys(project(patient, "Patient", None, ["deceased"])) == [
        "resourceType",
        "id",
        "meta",
        "deceasedDateTime",
        "_deceasedDateTime",
    ]
    assert "statusReason" not in keys(project(REQUEST, "MedicationRequest", None, ["status"]))


def test_subsetted_meta_added_once_and_created_when_missing() -> None:
    once = project(REQUEST, "MedicationRequest", "true", None)
    twice = project(once, "MedicationRequest", "true", None)
    assert json.loads(twice)["meta"]["tag"].count(SUBSETTED) == 1
    bare = b'{"resourceType":"Patient","id":"p","gender":"female","birthDate":"1950"}'
    projected = json.loads(project(bare, "Patient", None, ["gender"]))
    assert projected == {"resourceType": "Patient", "id": "p", "meta": {"tag": [SUBSETTED]}, "gender": "female"}
