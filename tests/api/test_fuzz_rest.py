"""Property tests: whatever a client sends, the REST core answers with a FHIR status (never a
5xx), and whatever it accepts it can give back as JSON and as XML."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.search.parameters import parameters_for

FHIR_JSON = {"Content-Type": "application/fhir+json"}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["1950-03-15", "2024-03-01T09:00:00+08:00", "urn:uuid:x", "Patient/p1", "<div/>", "", "|"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["value", "system", "code", "reference", "family", "given", "url", "div", "status", "_x"]),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=8,
)
PATIENT_KEYS = [
    "id", "meta", "text", "contained", "extension", "identifier", "active", "name", "telecom", "gender",
    "birthDate", "_birthDate", "deceasedBoolean", "deceasedDateTime", "address", "multipleBirthInteger",
    "managingOrganization", "generalPractitioner", "link", "unknownElement",
]  # fmt: skip
patients = st.dictionaries(st.sampled_from(PATIENT_KEYS), values, max_size=5).map(
    lambda d: {"resourceType": "Patient", **d}
)


@FUZZ
@given(patients)
def test_any_patient_body_is_answered_and_what_is_stored_renders(module_client: TestClient, body: Any) -> None:
    response = module_client.post("/fhir/Patient", content=json.dumps(body), headers=FHIR_JSON)
    assert response.status_code in (201, 400, 422), response.text
    outcome_or_resource = response.json()
    if response.status_code != 201:
        assert outcome_or_resource["resourceType"] == "OperationOutcome"
        return
    url = f"/fhir/Patient/{outcome_or_resource['id']}"
    assert module_client.get(url).status_code == 200
    assert module_client.get(url, params={"_format": "xml"}).status_code == 200


SEARCH_PARAMS = sorted(f"{t}?{code}" for t in ("Patient", "MedicationRequest") for code in parameters_for(t))
MODIFIERS = ["", ":missing", ":not", ":exact", ":contains", ":text", ":below", ":above", ":identifier", ":Patient"]


@FUZZ
@given(
    st.sampled_from(SEARCH_PARAMS),
    st.sampled_from(MODIFIERS),
    st.text(alphabet=st.sampled_from("ab19-:|,$\\.TZ+eglt%_ 王"), max_size=14),
)
def test_any_search_value_is_answered(module_client: TestClient, param: str, modifier: str, value: str) -> None:
    response = module_client.get(f"/fhir/{param}{modifier}={quote(value, safe='')}")
    assert response.status_code in (200, 400), response.text
    assert response.json()["resourceType"] in ("Bundle", "OperationOutcome")
