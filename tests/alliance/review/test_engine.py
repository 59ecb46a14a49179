"""The pre-review rules over prescriptions of our own with known findings (POL-06, POL-09,
POL-20): each rule fires where it should, at the edge it should, and never on a clean one."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.alliance.review.engine import Review, detected_issues, outcome_issues, review
from gateway.alliance.review.facts import ActivePrescription
from gateway.alliance.review.rules import load_rule_set

RULES = load_rule_set()


def _review(alliance: Any, rx: dict[str, Any], member: str | None = "T1", **kw: Any) -> Review:
    drug = alliance.catalogue.by_medication(rx["medication"]["reference"]["reference"])
    return review(
        kw.pop("rules", RULES),
        alliance.snapshot,
        rx,
        drug,
        patient=kw.pop("patient", {"resourceType": "Patient", "birthDate": "1970-05-01"}),
        member=member,
        active=kw.pop("active", []),
        is_pregnant=kw.pop("is_pregnant", False),
        today=dt.date(2026, 11, 10),
    )


def _rules(found: Review) -> dict[str, str]:
    return {f.rule: f.severity for f in found.findings}


def test_pol06_clean_prescriptions_raise_no_finding(alliance: Any) -> None:
    clean = [
        alliance.prescription("METF", days=7),
        alliance.prescription("CAPT", days=3, diagnosis="I10.x00x002", dose=(25, "mg"), per_day=3),
        alliance.prescription("METF", days=84, long_term="diabetes"),
        alliance.prescription("IBUP", days=3, category="emergency", diagnosis="M54.500", dose=(0.2, "g"), per_day=3),
        alliance.prescription("METF", days=28, long_term="diabetes", extended_to="V1"),
    ]
    for rx in clean:
        found = _review(alliance, rx)
        assert found.findings == [], (rx["dispenseRequest"], found.findings)
        assert found.result == "pass"


def test_pol20_drug_not_in_the_prescribing_members_list(alliance: Any) -> None:
    rx = alliance.prescription("LEVO", diagnosis="J18.900", dose=(0.5, "g"), per_day=1)
    assert _rules(_review(alliance, rx, member="T1")) == {"not-in-formulary": "moderate"}
    assert _rules(_review(alliance, rx, member="C1")) == {}  # the county lists it
    assert _rules(_review(alliance, rx, member=None)) == {}  # no member known: no list to hold it to


@pytest.mark.parametrize(
    ("days", "category", "fires"),
    [
        (7, "general", False),
        (8, "general", True),
        (3, "emergency", False),
        (4, "emergency", True),
        (90, "general", True),
    ],
)
def test_pol06_days_of_supply_over_7_or_3_for_emergency_without_long_term(
    alliance: Any, days: int, category: str, fires: bool
) -> None:
    found = _rules(_review(alliance, alliance.prescription("METF", days=days, category=category)))
    assert ("days-supply-over-limit" in found) is fires
    if fires:
        assert found["days-supply-over-limit"] == "moderate"


@pytest.mark.parametrize(("days", "fires"), [(28, False), (84, False), (85, True), (90, True)])
def test_pol09_long_term_12_week_edge(alliance: Any, days: int, fires: bool) -> None:
    """84 days (12 weeks) is allowed, 85 is not; a long-term one is never held to 7 days."""
    found = _rules(_review(alliance, alliance.prescription("METF", days=days, long_term="diabetes")))
    assert ("long-term-over-12-weeks" in found) is fires
    assert "days-supply-over-limit" not in found
    if fires:
        assert found["long-term-over-12-weeks"] == "high"


def test_pol09_long_term_for_a_diagnosis_outside_the_chronic_groups(alliance: Any) -> None:
    rx = alliance.prescription("IBUP", days=28, long_term="hypertension", diagnosis="M54.500", dose=(0.2, "g"))
    assert _rules(_review(alliance, rx)) == {"long-term-diagnosis-not-chronic": "high"}
    for diagnosis in ("I10.x00x002", "E11.900", "J44.100"):  # hypertension, diabetes, COPD
        rx = alliance.prescription("IBUP", days=28, long_term="hypertension", diagnosis=diagnosis, dose=(0.2, "g"))
        assert "long-term-diagnosis-not-chronic" not in _rules(_review(alliance, rx))


def test_pol09_long_term_narcotic_or_psychotropic(alliance: Any) -> None:
    for drug in ("MORP", "DIAZ"):
        rx = alliance.prescription(drug, days=28, long_term="hypertension", diagnosis="I10.x00x002", dose=None)
        assert _rules(_review(alliance, rx, member="C1")) == {"long-term-controlled-drug": "high"}
    short = alliance.prescription("DIAZ", days=3, diagnosis="F41.100", dose=(2.5, "mg"), per_day=2)
    assert _rules(_review(alliance, short, member="C1")) == {}


def test_pol06_daily_dose_above_the_maximum(alliance: Any) -> None:
    # metformin max 2.55 g a day: 0.5 g x 5 = 2.5 g fine, 1 g x 3 = 3 g not, 1000 mg x 3 likewise
    assert _rules(_review(alliance, alliance.prescription("METF", dose=(0.5, "g"), per_day=5))) == {}
    assert _rules(_review(alliance, alliance.prescription("METF", dose=(1, "g"), per_day=3))) == {
        "daily-dose-over-max": "high"
    }
    assert "daily-dose-over-max" in _rules(
        _review(alliance, alliance.prescription("METF", dose=(1000, "mg"), per_day=3))
    )
    # tablets: the specification (0.5 g) says how much each holds: 2 tablets x 3 = 3 g
    assert "daily-dose-over-max" in _rules(_review(alliance, alliance.prescription("METF", dose=(2, "片"), per_day=3)))


def test_pol06_daily_dose_from_frequency_codes(alliance: Any) -> None:
    rx = alliance.prescription("METF", dose=(1, "g"))
    rx["dosageInstruction"][0]["timing"] = {"code": {"coding": [{"code": "TID"}]}}
    assert _rules(_review(alliance, rx)) == {"daily-dose-over-max": "high"}  # 3 g a day
    rx["dosageInstruction"][0]["timing"] = {"code": {"coding": [{"code": "BID"}]}}
    assert _rules(_review(alliance, rx)) == {}  # 2 g a day


def test_pol06_emergency_category_may_also_come_as_medicationrequest_category(alliance: Any) -> None:
    rx = alliance.prescription("IBUP", days=5, diagnosis="M54.500", dose=(0.2, "g"), per_day=3)
    rx["extension"] = []
    assert _rules(_review(alliance, rx)) == {}
    rx["category"] = [
        {"coding": [{"system": "http://yaolian.org/fhir/CodeSystem/prescription-category", "code": "emergency"}]}
    ]
    assert _rules(_review(alliance, rx)) == {"days-supply-over-limit": "moderate"}


def test_pol06_duplicate_therapy_with_an_active_prescription_of_another_member(alliance: Any) -> None:
    elsewhere = ActivePrescription("rx-t2", "T2", "C08CA01", "氨氯地平", "2026-11-01T08:00:00+08:00", 28)
    rx = alliance.prescription("AMLO", diagnosis="I10.x00x002", dose=(5, "mg"), per_day=1)
    found = _review(alliance, rx, active=[elsewhere])
    assert _rules(found) == {"duplicate-therapy": "high"}
    assert "T2" in found.findings[0].en
    used_up = ActivePrescription("rx-old", "T2", "C08CA01", "氨氯地平", "2026-10-01T08:00:00+08:00", 28)
    other_group = ActivePrescription("rx-t2b", "T2", "C09AA01", "卡托普利", "2026-11-01T08:00:00+08:00", 28)
    assert _rules(_review(alliance, rx, active=[used_up, other_group])) == {}


def test_pol06_listed_interactions(alliance: Any) -> None:
    warfarin = ActivePrescription("rx-w", "C1", "B01AA03", "华法林", "2026-11-05", 30)
    rx = alliance.prescription("IBUP", diagnosis="M54.500", dose=(0.2, "g"), per_day=3, days=3)
    assert _rules(_review(alliance, rx, active=[warfarin])) == {"interaction-major": "high"}


def test_pol06_age_and_pregnancy_cautions(alliance: Any) -> None:
    rx = alliance.prescription("LEVO", diagnosis="J18.900", dose=(0.5, "g"), per_day=1)
    child = {"resourceType": "Patient", "birthDate": "2015-01-01"}
    assert _rules(_review(alliance, rx, member="C1", patient=child)) == {"age-caution": "moderate"}
    diazepam = alliance.prescription("DIAZ", days=3, diagnosis="F41.100", dose=(2.5, "mg"), per_day=2)
    elderly = {"resourceType": "Patient", "birthDate": "1950-01-01"}
    assert _rules(_review(alliance, diazepam, member="C1", patient=elderly)) == {"age-caution": "moderate"}
    statin = alliance.prescription("ATOR", diagnosis="E78.000", dose=(20, "mg"), per_day=1)
    assert _rules(_review(alliance, statin, member="C1")) == {}
    assert _rules(_review(alliance, statin, member="C1", is_pregnant=True)) == {"pregnancy-caution": "moderate"}


def test_pol09_extended_prescription_whose_dispensing_member_lacks_the_drug(alliance: Any) -> None:
    rx = alliance.prescription(
        "AMLO", days=28, long_term="hypertension", diagnosis="I10.x00x002", dose=(5, "mg"), per_day=1, extended_to="V1"
    )
    assert _rules(_review(alliance, rx, member="T1")) == {"extended-not-in-dispensing-formulary": "high"}
    rx = alliance.prescription(
        "CAPT", days=28, long_term="hypertension", diagnosis="I10.x00x002", dose=(25, "mg"), per_day=2, extended_to="V1"
    )
    assert _rules(_review(alliance, rx, member="T1")) == {}


def test_pol06_findings_as_detected_issues_and_outcome_naming_rule_and_version(alliance: Any) -> None:
    found = _review(alliance, alliance.prescription("METF", days=90, long_term="diabetes"))
    (issue,) = detected_issues(found)
    assert issue["resourceType"] == "DetectedIssue" and issue["severity"] == "high"
    coding = issue["code"]["coding"][0]
    assert coding["code"] == "long-term-over-12-weeks" and coding["version"] == RULES.version
    assert issue["implicated"] == [{"reference": "MedicationRequest/rx-1"}]
    (outcome,) = outcome_issues(found)
    assert outcome.severity == "error" and "long-term-over-12-weeks" in outcome.en and RULES.version in outcome.en
    assert outcome.zh and outcome.error_code == "YL-1111"
    assert found.result == "reject"


def test_pol06_a_rule_added_as_a_data_file_changes_the_outcome_without_code(alliance: Any, tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(load_rule_set.__globals__["default_folder"](), folder)
    rx = alliance.prescription("METF", days=7)
    rx["reason"] = []
    before = _review(alliance, rx, rules=load_rule_set(folder))
    assert before.findings == []
    (folder / "rules" / "missing-diagnosis.json").write_bytes(
        orjson.dumps(
            {
                "id": "missing-diagnosis",
                "severity": "moderate",
                "title": {"en": "No diagnosis", "zh": "缺少诊断"},
                "condition": "%rx.reason.empty()",
            }
        )
    )
    manifest = orjson.loads((folder / "ruleset.json").read_bytes())
    manifest["version"] = "2026.12.2-test"
    (folder / "ruleset.json").write_bytes(orjson.dumps(manifest))
    after = _review(alliance, rx, rules=load_rule_set(folder))
    assert _rules(after) == {"missing-diagnosis": "moderate"} and after.version == "2026.12.2-test"
    # a threshold changed in data moves the edge: 7 days now too many at 5
    days_rule = folder / "rules" / "days-supply-over-limit.json"
    data = orjson.loads(days_rule.read_bytes())
    data["params"]["maxDays"] = 5
    days_rule.write_bytes(orjson.dumps(data))
    assert "days-supply-over-limit" in _rules(
        _review(alliance, alliance.prescription("METF", days=7), rules=load_rule_set(folder))
    )


def test_a_rule_file_that_does_not_parse_is_refused_with_its_name(tmp_path: Path) -> None:
    from gateway.errors import Unprocessable

    folder = tmp_path / "rules"
    shutil.copytree(load_rule_set.__globals__["default_folder"](), folder)
    (folder / "rules" / "broken.json").write_bytes(
        orjson.dumps({"id": "broken", "severity": "high", "condition": "%facts.(("})
    )
    with pytest.raises(Unprocessable) as raised:
        load_rule_set(folder)
    assert "broken" in raised.value.issues[0].en
