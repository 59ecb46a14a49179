"""Formulary linkage checks over an alliance of our own with known findings (POL-02, POL-03,
POL-04, POL-05, POL-10, POL-13, POL-21)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gateway.alliance.formulary import Formularies, FormularyVersion
from gateway.alliance.linkage import LinkageSettings, as_html, check

TODAY = dt.date(2026, 12, 1)


def _found(alliance: Any, **kw: Any) -> set[tuple[str, str, str]]:
    settings = LinkageSettings(today=kw.pop("today", TODAY), **{k: v for k, v in kw.items() if k != "usage"})
    findings = check(alliance.registry, alliance.catalogue, alliance.formularies, settings, kw.get("usage"))
    return {(f.rule, f.member, f.drug) for f in findings}


def test_pol03_village_and_township_chronic_drugs_must_be_in_the_parent_list(alliance: Any) -> None:
    found = _found(alliance)
    assert ("village-chronic-not-in-township", "V1", alliance.code("GLIC")) in found
    assert ("township-chronic-not-in-county", "T1", alliance.code("AMLO")) in found
    # T2's amlodipine 10 mg has another name and another code: the county lacks it too
    assert ("township-chronic-not-in-county", "T2", alliance.code("AMLOB")) in found
    # the village's metformin and captopril are at the township: no finding for them
    assert not {f for f in found if f[0] == "village-chronic-not-in-township" and f[2] != alliance.code("GLIC")}


def test_pol05_one_generic_two_specs_counts_oral_and_injectable_apart_and_exempts_chronic(alliance: Any) -> None:
    found = {f for f in _found(alliance) if f[0] == "one-generic-two-specs"}
    assert found == {("one-generic-two-specs", "C1", "阿莫西林")}  # three oral capsules at the county
    # T1: two oral + two injectable amoxicillin (apart: fine); three nifedipine specs (hypertension: exempt)


def test_pol04_variety_below_the_average_of_known_townships_or_the_configured_figure(alliance: Any) -> None:
    found = {f for f in _found(alliance) if f[0] == "variety-below-average"}
    assert found == {("variety-below-average", "T2", "")}  # T2 lists 5 generic names, T1 lists 7: average 6
    assert {f for f in _found(alliance, variety_average=100.0) if f[0] == "variety-below-average"} == {
        ("variety-below-average", "T1", ""),
        ("variety-below-average", "T2", ""),
    }


def test_pol21_alliance_level_essential_count(alliance: Any) -> None:
    assert ("variety-below-average", "alliance", "") in _found(alliance, alliance_essential_min=500)
    assert ("variety-below-average", "alliance", "") not in _found(alliance, alliance_essential_min=5)


def test_pol02_lists_not_adjusted_within_a_year(alliance: Any) -> None:
    assert not {f for f in _found(alliance) if f[0] == "not-adjusted-within-year"}
    stale = {f[1] for f in _found(alliance, today=dt.date(2027, 3, 2)) if f[0] == "not-adjusted-within-year"}
    assert stale == {"C1", "T1", "T2", "V1"}


def test_pol13_low_use_with_a_substitute_in_the_same_atc5_group(alliance: Any) -> None:
    c = alliance.code
    usage = {("T2", c("AMLO")): 40, ("T2", c("AMLOB")): 1}
    found = {f for f in _found(alliance, usage=usage) if f[0] == "low-use-removal-candidate"}
    # T2's two amlodipines share C08CA01: the little-used one is a candidate, the used one is not.
    assert ("low-use-removal-candidate", "T2", c("AMLOB")) in found
    assert ("low-use-removal-candidate", "T2", c("AMLO")) not in found
    # a drug without a substitute in its member's list is never proposed
    assert ("low-use-removal-candidate", "V1", c("GLIC")) not in found


def test_pol10_sinking_candidates_are_county_chronic_drugs_no_primary_level_lists(alliance: Any) -> None:
    found = {f for f in _found(alliance) if f[0] == "sinking-candidate"}
    assert found == {("sinking-candidate", "C1", alliance.code("TIOT"))}


def test_a_clean_alliance_has_no_linkage_findings(alliance: Any) -> None:
    c = alliance.code
    same = frozenset(c(n) for n in ("METF", "CAPT"))
    clean = Formularies.of(FormularyVersion(m, "2026-06-01", same) for m in ("C1", "T1", "T2", "V1"))
    settings = LinkageSettings(today=TODAY)
    assert check(alliance.registry, alliance.catalogue, clean, settings, {}) == []


def test_html_report_names_rule_member_and_drug(alliance: Any) -> None:
    findings = check(alliance.registry, alliance.catalogue, alliance.formularies, LinkageSettings(today=TODAY))
    page = as_html(findings)
    assert "village-chronic-not-in-township" in page and "V1" in page and alliance.code("GLIC") in page
