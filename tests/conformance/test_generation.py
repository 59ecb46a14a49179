"""Offline: the tests are generated from the definitions, cite requirements, and the kit stays HTTP-only."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from conformance import fixtures
from conformance.definitions import load
from conformance.profile_check import ProfileChecker
from conformance.runner import all_checks, select


def test_checks_come_from_the_definitions() -> None:
    defs = load()
    checks = all_checks()
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids))
    assert all(c.requirement for c in checks)
    for req in defs.resources:
        for p in req.search_params:
            if req.type in fixtures.BUILDERS:
                assert f"search/{req.type}/{p.name}" in ids
        for inc in req.includes:
            assert f"search/{req.type}/_include/{inc.value}" in ids
        for chain in req.chains:
            assert f"search/{req.type}/chain/{chain.value}" in ids
    invalid = [e for e in defs.examples if not e["valid"] and any(i["severity"] == "error" for i in e["issues"])]
    assert sum(c.group == "validation" for c in checks) == len(invalid)
    groups = Counter(c.group for c in checks)
    assert set(groups) >= {"capability", "interaction", "search", "profile", "must-support", "reference", "negative"}


def test_suites_and_only() -> None:
    checks = all_checks()
    assert all(c.required for c in select(checks, "core"))
    assert {c.group for c in select(checks, "full", "search")} == {"search"}
    assert all(c.id.startswith("search/Patient/") for c in select(checks, "full", "search/Patient"))


def test_test_data_conforms_to_the_profiles() -> None:
    checker = ProfileChecker()
    for type_ in fixtures.ORDER:
        for i in range(fixtures.VARIANTS):
            resource = fixtures.build(type_, i, "t1", lambda t, j: f"{t}/x{j}")
            assert checker.check(resource) == [], (type_, i)


def test_profile_checker_agrees_with_the_examples() -> None:
    defs, checker = load(), ProfileChecker()
    disagreements = []
    for example in defs.examples:
        problems = checker.check(defs.example(example["file"]), [example["profile"]])
        errors = any(i["severity"] == "error" for i in example["issues"])
        if bool(problems) != errors:
            disagreements.append(example["file"])
    # core-terminology bindings (Patient.gender, MedicationRequest.status) are not checked offline
    assert set(disagreements) <= {"yl-patient.invalid.bad-gender-code.json", "yl-prescription.invalid.bad-status.json"}


def test_the_kit_does_not_import_the_gateway() -> None:
    code = (
        "import sys, conformance.cli, conformance.pytest_plugin, conformance.reports, conformance.runner;"
        "import conformance.adapter_group, conformance.recorder, conformance.auth, conformance.bundle_check;"
        "conformance.runner.all_checks();"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('gateway', 'adapters')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
