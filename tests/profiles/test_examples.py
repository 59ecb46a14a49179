"""Every profile's valid examples pass; every invalid example yields exactly its expected errors
at the expected FHIRPath (profiles/examples/index.json, written by scripts/build_profiles.py)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from gateway.validation import known_profiles, validate

EXAMPLES = resources.files("profiles").joinpath("examples")
INDEX = json.loads(EXAMPLES.joinpath("index.json").read_text("utf-8"))


def _load(name: str) -> dict:
    return json.loads(EXAMPLES.joinpath(name).read_text("utf-8"))


@pytest.mark.parametrize("case", [c for c in INDEX if c["valid"]], ids=lambda c: c["file"])
def test_valid_example_has_no_issues(case: dict) -> None:
    assert validate(_load(case["file"]), [case["profile"]]) == []


@pytest.mark.parametrize("case", [c for c in INDEX if not c["valid"]], ids=lambda c: c["file"])
def test_invalid_example_reports_expected_issue(case: dict) -> None:
    found = validate(_load(case["file"]), [case["profile"]])
    got = {(i.error_code, i.where, i.severity) for i in found}
    expected = {(i["error_code"], i["expression"], i["severity"]) for i in case["issues"]}
    assert expected <= got
    # no false alarm: every error reported is one the case expects
    assert {g for g in got if g[2] == "error"} <= expected
    for i in found:
        assert i.en and i.zh


def test_every_resource_profile_has_valid_and_invalid_examples() -> None:
    resource_profiles = [u for u in known_profiles() if "/yl-" in u and _is_resource_profile(u)]
    assert len(resource_profiles) == 7
    for url in resource_profiles:
        kinds = {c["valid"] for c in INDEX if c["profile"] == url}
        assert kinds == {True, False}, url


def _is_resource_profile(url: str) -> bool:
    name = url.rsplit("/", 1)[1]
    sd = json.loads(resources.files("profiles").joinpath(f"StructureDefinition-{name}.json").read_text("utf-8"))
    return sd["kind"] == "resource"


@pytest.mark.parametrize(
    "error_code",
    [
        "YL-3001",
        "YL-3010",
        "YL-3011",
        "YL-3013",
        "YL-3020",
        "YL-3021",
        "YL-3030",
        "YL-3040",
        "YL-3041",
        "YL-3043",
        "YL-3050",
        "YL-3060",
    ],
)
def test_each_rule_has_an_invalid_example(error_code: str) -> None:
    assert any(i["error_code"] == error_code for c in INDEX for i in c["issues"])
