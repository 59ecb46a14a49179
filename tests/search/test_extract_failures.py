"""A search parameter expression that fails to evaluate does not block the write, but is not silent
either: the first failure of each parameter is logged and every one is counted."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Any

import pytest

from gateway.search import extract as extract_module
from gateway.search.extract import EVALUATION_FAILURES, extract
from gateway.search.parameters import SearchParam, parameters_for


def _broken(_node: Any) -> list[Any]:
    raise ZeroDivisionError("fhirpath engine failure")


def test_a_failing_expression_is_logged_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = parameters_for("Patient")
    family = real["family"]
    broken = dataclasses.replace(family, branches=[dataclasses.replace(b, evaluate=_broken) for b in family.branches])
    params: dict[str, SearchParam] = {**real, "family": broken}
    monkeypatch.setattr(extract_module, "parameters_for", lambda _rtype: params)
    monkeypatch.setattr(extract_module, "EVALUATION_FAILURES", Counter[str]())
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "王", "given": ["芳"]}]}

    with caplog.at_level(logging.WARNING, logger="yaolian.search.extract"):
        rows = extract(patient)
        extract(patient)

    assert not any(code == "family" for code, *_ in rows.string)  # the rows it would have made are missing...
    assert any(code == "given" for code, *_ in rows.string)  # ...and only those
    assert extract_module.EVALUATION_FAILURES == {"Patient.family": 2}  # ...counted every time
    warnings = [r for r in caplog.records if "Patient.family" in r.getMessage()]
    assert len(warnings) == 1, caplog.text  # ...and logged once per parameter
    assert "ZeroDivisionError" in warnings[0].getMessage()


def test_the_official_parameters_evaluate_on_a_plain_resource() -> None:
    before = sum(EVALUATION_FAILURES.values())
    extract({"resourceType": "Patient", "id": "p2", "name": [{"family": "李"}], "birthDate": "1980-02-03"})
    assert sum(EVALUATION_FAILURES.values()) == before
