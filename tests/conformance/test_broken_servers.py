"""A kit that cannot fail is worthless: each deliberately broken server makes the expected test fail,
while the tests that the breakage does not touch still pass."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conformance.cli import app
from conformance.model import Outcome
from conformance.runner import run

from .conftest import Rewrite, ServerThread, drop_element, ignore_parameter, no_outcome, status_swap, yaolian_app

BREAKAGES: dict[str, tuple[Callable[[Any], Any], str, set[str], set[str]]] = {
    # name: (wrapper, --only, tests that must fail, tests that must still pass)
    "search ignores a parameter": (
        lambda a: Rewrite(a, request=ignore_parameter("generic-name")),
        "search/Medication",
        {"search/Medication/generic-name", "search/Medication/generic-name/or"},
        {"search/Medication/insurance-code", "search/Medication/_id"},
    ),
    "read drops an element": (
        lambda a: Rewrite(a, response=drop_element("Patient", "birthDate")),
        "interaction/Patient,must-support/Patient",
        {"interaction/Patient/read", "must-support/Patient"},
        {"interaction/Patient/create", "interaction/Patient/update"},
    ),
    "200 instead of 201 on create": (
        lambda a: Rewrite(a, response=status_swap("POST", 201, 200)),
        "interaction/MedicationRequest",
        {"interaction/MedicationRequest/create"},
        {"interaction/MedicationRequest/read", "interaction/MedicationRequest/vread"},
    ),
    "404 instead of 410 after delete": (
        lambda a: Rewrite(a, response=status_swap("GET", 410, 404)),
        "negative/SupplyRequest",
        {"negative/SupplyRequest/read-deleted-410"},
        {"negative/SupplyRequest/read-missing-404", "negative/SupplyRequest/stale-if-match-412"},
    ),
    "no OperationOutcome on errors": (
        lambda a: Rewrite(a, response=no_outcome),
        "negative/Patient,negative/unknown-type-404,validation/yl-patient",
        {
            "negative/Patient/read-missing-404",
            "negative/Patient/bad-parameter-400",
            "negative/unknown-type-404",
            "validation/yl-patient.invalid.bad-checksum",
        },
        set(),
    ),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_breakage_is_caught(name: str, broken_server: Callable[[Any], ServerThread]) -> None:
    wrapper, only, must_fail, must_pass = BREAKAGES[name]
    server = broken_server(wrapper)
    outcome = run(server.base_url, only=only)
    by_id = {r.check.id: r for r in outcome.results}
    for test_id in must_fail:
        assert by_id[test_id].outcome == Outcome.FAIL, (test_id, by_id[test_id].outcome, by_id[test_id].message)
        assert by_id[test_id].exchanges, "a failure shows its evidence"
    for test_id in must_pass:
        assert by_id[test_id].outcome == Outcome.PASS, (test_id, by_id[test_id].message)
    assert not outcome.passed


def test_unvalidated_profile_is_caught(conformance_tmp: Path) -> None:
    """A server that stores whatever it gets (validation off) fails the validation group."""
    with ServerThread(yaolian_app(conformance_tmp, "unvalidated", validation_mode="off")) as server:
        outcome = run(server.base_url, only="validation/yl-prescription,validation/yl-drug")
    failed = {r.check.id for r in outcome.results if r.outcome == Outcome.FAIL}
    assert "validation/yl-prescription.invalid.missing-category" in failed
    assert "validation/yl-drug.invalid.bad-insurance-code" in failed
    assert not outcome.passed


def test_missing_authentication_is_caught(yaolian: ServerThread) -> None:
    """With a token configured, a server that answers without one fails the security group."""
    outcome = run(yaolian.base_url, token="alliance-issued-token", only="security")
    assert {r.check.id: r.outcome for r in outcome.results} == {
        "security/no-token-401": Outcome.FAIL,
        "security/wrong-token-401": Outcome.FAIL,
    }


def test_cli_exit_code_is_non_zero_on_a_required_failure(broken_server: Callable[[Any], ServerThread]) -> None:
    server = broken_server(partial(Rewrite, response=status_swap("POST", 201, 200)))
    result = CliRunner().invoke(
        app, ["run", "--base-url", server.base_url, "--only", "interaction/Patient/create", "-q"]
    )
    assert result.exit_code == 1, result.output
