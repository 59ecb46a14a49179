"""Resident ID card numbers (GB 11643-1999, ISO 7064 MOD 11-2) and the other identifier formats."""

from __future__ import annotations

import pytest

from gateway.validation import validate
from gateway.validation.identifiers import FORMATS, resident_id_check_char, resident_id_problem

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",  # the GB 11643-1999 example, check character X
        "440524188001010014",  # born 1880, check character 4
        "140423198507150037",  # Shanxi area code (Pingshun), a male sequence
        "140423199002280025",
        "110101200002290018",  # a leap day
    ],
)
def test_valid_numbers(number: str) -> None:
    assert FORMATS[RESIDENT_ID].pattern.match(number)
    assert resident_id_problem(number) is None
    assert resident_id_check_char(number[:17]) == number[17]


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("110105194912310021", ("YL-3041", "X")),
        ("140423198507150036", ("YL-3041", "7")),
        ("110101190002290011", ("YL-3042", "")),  # 1900 is not a leap year
    ],
)
def test_invalid_numbers(number: str, problem: tuple[str, str]) -> None:
    assert resident_id_problem(number) == problem


def _patient(value: str) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": RESIDENT_ID, "value": value}]}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("11010519491231002x", "YL-3040"),  # lower-case x is not allowed
        ("1101051949123100", "YL-3040"),
        ("110105194913310020", "YL-3040"),  # month 13
        ("110105194912310021", "YL-3041"),
        ("110101190002290011", "YL-3042"),
    ],
)
def test_validate_reports_resident_id_problems(value: str, code: str) -> None:
    issues = validate(_patient(value))
    assert [(i.error_code, i.where) for i in issues] == [(code, "Patient.identifier[0].value")]


@pytest.mark.parametrize(
    ("system", "good", "bad"),
    [
        ("http://yaolian.org/fhir/sid/fixmedins-code", "H14042300011", "H1404230001"),
        ("http://yaolian.org/fhir/sid/fixmedins-code", "P14042300011", "Q14042300011"),
        ("http://yaolian.org/fhir/sid/nhsa-drug-code", "XA10BAE054A001010102770", "YA10BAE054A001010102770"),
        ("http://yaolian.org/fhir/sid/drug-standard-code", "86900234000123", "8690023400012"),
        ("http://yaolian.org/fhir/sid/drug-trace-code", "81234560012345678901", "8123456001234567890X"),
        ("urn:oid:2.16.156.10011.2.3.3.11.1", "I10.x00x002", "I10.x00x02"),
        ("urn:oid:2.16.156.10011.2.3.3.11.1", "E11.900", "e11.900"),
        ("http://yaolian.org/fhir/sid/nhsa-physician-code", "D140423000123", "D" * 21),
    ],
)
def test_formats(system: str, good: str, bad: str) -> None:
    assert FORMATS[system].pattern.match(good)
    assert not FORMATS[system].pattern.match(bad)


def test_standard_code_check_digit_is_not_checked() -> None:
    # any 14-digit 869… number passes: the GB 18937 algorithm is not confirmed
    med = {
        "resourceType": "Medication",
        "code": {"coding": [{"system": "http://yaolian.org/fhir/sid/drug-standard-code", "code": "86900234000129"}]},
    }
    assert validate(med) == []


def test_traceability_code_not_starting_with_8_is_a_warning() -> None:
    med = {
        "resourceType": "Medication",
        "identifier": [{"system": "http://yaolian.org/fhir/sid/drug-trace-code", "value": "61234560012345678901"}],
    }
    [found] = validate(med)
    assert (found.error_code, found.severity, found.where) == (
        "YL-3043",
        "warning",
        "Medication.identifier[0].value",
    )
