"""Linkage checks of the formularies: findings a pharmacy committee reads, each naming its rule
(stable ids below), the member, the drug (or generic name) and a severity.

========================================  ======  ========================================
rule                                      policy  finds
========================================  ======  ========================================
``village-chronic-not-in-township``       POL-03  a village's chronic drug its township lacks
``township-chronic-not-in-county``        POL-03  a township's chronic drug the county lacks
``one-generic-two-specs``                 POL-05  over two specs of a generic name and route
                                                  (oral and injectable apart; chronic exempt)
``variety-below-average``                 POL-04  a township (or the alliance, POL-21) below
                                                  the average variety count
``not-adjusted-within-year``              POL-02  a list not adjusted for over a year
``low-use-removal-candidate``             POL-13  little used, with a same-ATC-5 substitute
``sinking-candidate``                     POL-10  a county chronic drug no primary level lists
========================================  ======  ========================================
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from gateway.alliance.catalogue import Catalogue, Drug
from gateway.alliance.formulary import ALLIANCE, Formularies, FormularyVersion, drugs_of
from gateway.federation.registry import MemberRegistry

RULES = (
    "village-chronic-not-in-township",
    "township-chronic-not-in-county",
    "one-generic-two-specs",
    "variety-below-average",
    "not-adjusted-within-year",
    "low-use-removal-candidate",
    "sinking-candidate",
)


@dataclass(frozen=True)
class LinkageFinding:
    rule: str
    severity: str  # high | moderate | low
    member: str
    drug: str  # national code, or the generic name when the finding is about a name
    en: str
    zh: str


@dataclass(frozen=True)
class LinkageSettings:
    today: dt.date
    variety_average: float | None = None
    alliance_essential_min: int | None = None
    low_use_max: int = 2
    adjust_days: int = 365


def _names(drugs: Iterable[Drug]) -> set[str]:
    return {d.generic_name for d in drugs if d.generic_name}


def check(
    registry: MemberRegistry,
    catalogue: Catalogue,
    formularies: Formularies,
    settings: LinkageSettings,
    usage: Mapping[tuple[str, str], int] | None = None,
) -> list[LinkageFinding]:
    """Every finding over the current lists; ``usage`` counts prescriptions a year by
    (member, national drug code) for the low-use rule (None: that rule is not run)."""
    current: dict[str, FormularyVersion] = {}
    for member in formularies.members():
        version = formularies.current(member)
        if version is not None:
            current[member] = version
    listed = {m: drugs_of(v, catalogue) for m, v in current.items()}
    findings: list[LinkageFinding] = []
    findings += _chronic_linkage(registry, listed)
    for member, drugs in listed.items():
        findings += _two_specs(member, drugs)
    findings += _variety(registry, listed, settings)
    for member, version in current.items():
        day = dt.date.fromisoformat(version.effective[:10])
        if (settings.today - day).days > settings.adjust_days:
            findings.append(
                LinkageFinding(
                    "not-adjusted-within-year",
                    "moderate",
                    member,
                    "",
                    f"The list of {member} was last adjusted on {version.effective}, "
                    f"over {settings.adjust_days} days ago.",
                    f"{member} 的药品目录最近一次调整为 {version.effective}，已超过 {settings.adjust_days} 天。",
                )
            )
    if usage is not None:
        findings += _low_use(registry, listed, usage, settings.low_use_max)
    findings += _sinking(registry, listed)
    return findings


def _chronic_linkage(registry: MemberRegistry, listed: Mapping[str, list[Drug]]) -> list[LinkageFinding]:
    out: list[LinkageFinding] = []
    for member in registry:
        if member.tier not in ("village", "township") or member.code not in listed or not member.parent:
            continue
        parent_drugs = listed.get(member.parent, [])
        parent_codes = {d.nhsa_code for d in parent_drugs}
        parent_names = _names(parent_drugs)
        rule = "village-chronic-not-in-township" if member.tier == "village" else "township-chronic-not-in-county"
        for drug in listed[member.code]:
            if drug.chronic_group and drug.nhsa_code not in parent_codes and drug.generic_name not in parent_names:
                out.append(
                    LinkageFinding(
                        rule,
                        "moderate",
                        member.code,
                        drug.nhsa_code,
                        f"{drug.generic_name} ({drug.chronic_group}) is listed by {member.code} but not by its "
                        f"parent {member.parent}.",
                        f"{member.code} 目录中的慢病用药 {drug.generic_name} 不在上级 {member.parent} 的目录中。",
                    )
                )
    return out


def _two_specs(member: str, drugs: list[Drug]) -> list[LinkageFinding]:
    specs: dict[tuple[str, str], set[str]] = {}
    for drug in drugs:
        if drug.chronic_group:  # POL-05: hypertension, diabetes and COPD drugs are exempt
            continue
        specs.setdefault((drug.generic_name, drug.route), set()).add(drug.specification or drug.nhsa_code)
    out = []
    for (name, route), found in sorted(specs.items()):
        if len(found) > 2:
            out.append(
                LinkageFinding(
                    "one-generic-two-specs",
                    "moderate",
                    member,
                    name,
                    f"{member} lists {len(found)} {route} specifications of {name} ({', '.join(sorted(found))}); "
                    "at most two.",
                    f"{member} 目录中 {name}（{route}）有 {len(found)} 个规格"
                    f"（{'、'.join(sorted(found))}），超过一品两规。",
                )
            )
    return out


def _variety(
    registry: MemberRegistry, listed: Mapping[str, list[Drug]], settings: LinkageSettings
) -> list[LinkageFinding]:
    out: list[LinkageFinding] = []
    townships = [m.code for m in registry.of_tier("township") if m.code in listed]
    counts = {m: len(_names(listed[m])) for m in townships}
    average = settings.variety_average
    if average is None and counts:
        average = sum(counts.values()) / len(counts)
    for member, count in sorted(counts.items()):
        if average is not None and count < average:
            out.append(
                LinkageFinding(
                    "variety-below-average",
                    "moderate",
                    member,
                    "",
                    f"{member} lists {count} varieties, below the average of {average:.1f}.",
                    f"{member} 目录品种数 {count}，低于平均水平 {average:.1f}。",
                )
            )
    if settings.alliance_essential_min is not None:
        whole = listed.get(ALLIANCE) or [d for drugs in listed.values() for d in drugs]
        essential = len(_names(d for d in whole if d.essential))
        if essential < settings.alliance_essential_min:
            out.append(
                LinkageFinding(
                    "variety-below-average",
                    "moderate",
                    ALLIANCE,
                    "",
                    f"The alliance lists {essential} essential-medicine varieties, below its "
                    f"target of {settings.alliance_essential_min}.",
                    f"医共体基本药物品种数 {essential}，低于设定的 {settings.alliance_essential_min}。",
                )
            )
    return out


def _low_use(
    registry: MemberRegistry, listed: Mapping[str, list[Drug]], usage: Mapping[tuple[str, str], int], most: int
) -> list[LinkageFinding]:
    out = []
    for member in registry:
        if member.tier not in ("township", "village") or member.code not in listed:
            continue
        drugs = listed[member.code]
        by_atc = Counter(d.atc5 for d in drugs if d.atc5)
        for drug in drugs:
            used = usage.get((member.code, drug.nhsa_code), 0)
            if drug.atc5 and by_atc[drug.atc5] > 1 and used <= most:
                out.append(
                    LinkageFinding(
                        "low-use-removal-candidate",
                        "low",
                        member.code,
                        drug.nhsa_code,
                        f"{drug.generic_name} was prescribed {used} time(s) at {member.code} in a year and has a "
                        f"substitute in ATC group {drug.atc5}.",
                        f"{drug.generic_name} 在 {member.code} 一年内仅使用 {used} 次，"
                        f"且有同类（{drug.atc5}）替代品种。",
                    )
                )
    return out


def _sinking(registry: MemberRegistry, listed: Mapping[str, list[Drug]]) -> list[LinkageFinding]:
    primary = [m.code for m in registry if m.tier in ("township", "village") and m.code in listed]
    primary_names = _names(d for m in primary for d in listed[m])
    out = []
    for county in registry.of_tier("county"):
        for drug in listed.get(county.code, []):
            if drug.chronic_group and drug.generic_name not in primary_names:
                out.append(
                    LinkageFinding(
                        "sinking-candidate",
                        "low",
                        county.code,
                        drug.nhsa_code,
                        f"{drug.generic_name} ({drug.chronic_group}) is listed at the county but at no township "
                        "or village: a candidate to make available at primary level.",
                        f"县级慢病用药 {drug.generic_name} 基层均未配备，建议下沉。",
                    )
                )
    return out


def as_json(findings: list[LinkageFinding]) -> list[dict[str, str]]:
    return [asdict(f) for f in findings]


def as_html(findings: list[LinkageFinding], title: str = "Formulary linkage check 药品目录衔接检查") -> str:
    rows = "\n".join(
        "<tr>"
        + "".join(f"<td>{html.escape(v)}</td>" for v in (f.rule, f.severity, f.member, f.drug, f.en, f.zh))
        + "</tr>"
        for f in findings
    )
    return (
        f'<!doctype html><html lang="zh"><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<h1>{html.escape(title)}</h1><p>{len(findings)} finding(s) 条</p>"
        "<table border=1><tr><th>rule 规则</th><th>severity 级别</th><th>member 成员</th><th>drug 药品</th>"
        f"<th>finding</th><th>说明</th></tr>\n{rows}\n</table></html>\n"
    )
