"""The facts a review rule's condition reads as ``%facts``: computed once per prescription from
the prescription, its drug, the patient, the formularies in force and the patient's active
prescriptions anywhere in the alliance. Rules compare these with their thresholds; the
computing stays here so a rule file stays one line of FHIRPath."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.alliance.catalogue import Catalogue, Dose, Drug
from gateway.alliance.formulary import Formularies
from gateway.alliance.prescriptions import (
    authored_day,
    category,
    days_supply,
    diagnoses,
    dispensing_member_reference,
    long_term,
    parse_day,
    tagged_member,
)
from gateway.alliance.review.rules import RuleSet
from gateway.federation.registry import MemberRegistry
from gateway.security.policy import MEMBER_SYSTEM

LOINC = "http://loinc.org"
PREGNANCY_STATUS = "82810-3"
PREGNANT = "LA15173-0"
_PER_DAY = {"s": 86400.0, "min": 1440.0, "h": 24.0, "d": 1.0, "wk": 1 / 7, "mo": 1 / 30, "a": 1 / 365}
#: Frequency abbreviations (HL7 v3 GTSAbbreviation and the Latin ones Chinese HIS use) -> times a day.
TIMES_A_DAY = {
    "QD": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "QN": 1.0,
    "QOD": 0.5,
    "QW": 1 / 7,
    "Q12H": 2.0,
    "Q8H": 3.0,
    "Q6H": 4.0,
    "Q4H": 6.0,
    "AM": 1.0,
    "PM": 1.0,
    "HS": 1.0,
}
_COUNTABLE = {"片", "粒", "丸", "袋", "支", "瓶", "tablet", "tab", "capsule", "cap", "{tbl}", "{cap}"}


@dataclass(frozen=True)
class AllianceSnapshot:
    """What the review reads of the alliance: members, catalogue, lists."""

    registry: MemberRegistry
    catalogue: Catalogue
    formularies: Formularies


@dataclass(frozen=True)
class ActivePrescription:
    """An active prescription of the patient, as the duplicate and interaction checks see it."""

    id: str
    member: str | None
    atc: str
    drug_name: str
    authored: str | None
    days: float | None

    @property
    def atc5(self) -> str:
        return self.atc[:7]

    def covers(self, day: dt.date | None) -> bool:
        """Still being taken on ``day`` (written then or earlier, supply not yet used up)."""
        start = parse_day(self.authored)
        if day is None or start is None:
            return True
        if start > day:
            return False
        return self.days is None or start + dt.timedelta(days=self.days) > day


def member_of_reference(registry: MemberRegistry, value: Mapping[str, Any] | None) -> str | None:
    """The member code an Organization Reference names (by ``reference`` or member identifier)."""
    if not value:
        return None
    reference = value.get("reference")
    if isinstance(reference, str) and reference.startswith("Organization/"):
        member = registry.by_organization(reference)
        if member is not None:
            return member.code
    ident = value.get("identifier") or {}
    if isinstance(ident, dict) and ident.get("system") == MEMBER_SYSTEM and ident.get("value"):
        return str(ident["value"])
    if isinstance(reference, str) and reference.startswith("Organization/"):
        return reference.removeprefix("Organization/")
    return None


def member_named_by(rx: Mapping[str, Any], registry: MemberRegistry) -> str | None:
    """The prescribing member a prescription names by itself: its owner tag, a requester
    Organization, the assigner of its number, the performer, the dispenser."""
    tagged = tagged_member(rx)
    if tagged:
        return tagged
    candidates: list[Any] = [rx.get("requester")]
    candidates += [(i or {}).get("assigner") for i in rx.get("identifier") or ()]
    candidates += list(rx.get("performer") or ())
    candidates.append((rx.get("dispenseRequest") or {}).get("dispenser"))
    for value in candidates:
        if not isinstance(value, dict):
            continue
        reference = value.get("reference")
        names_org = isinstance(reference, str) and reference.startswith("Organization/")
        if names_org or isinstance(value.get("identifier"), dict):
            found = member_of_reference(registry, value)
            if found:
                return found
    return None


def _daily_dose(rx: Mapping[str, Any], drug: Drug) -> float | None:
    """The prescribed amount a day in the unit of the drug's maximum (None if not comparable)."""
    maximum = drug.max_daily_dose
    if maximum is None:
        return None
    total = 0.0
    found = False
    for dosage in rx.get("dosageInstruction") or ():
        repeat = ((dosage or {}).get("timing") or {}).get("repeat") or {}
        per_day: float | None = None
        timing_code = next(
            (
                str(c.get("code")).upper()
                for c in ((dosage or {}).get("timing") or {}).get("code", {}).get("coding") or ()
                if c.get("code")
            ),
            None,
        )
        if timing_code in TIMES_A_DAY:
            per_day = TIMES_A_DAY[timing_code]
        elif repeat:
            frequency = repeat.get("frequency") or 1
            period = repeat.get("period") or 1
            per_day = float(frequency) / float(period) * _PER_DAY.get(str(repeat.get("periodUnit") or "d"), 1.0)
        for rate in (dosage or {}).get("doseAndRate") or ():
            quantity = (rate or {}).get("doseQuantity") or {}
            value = quantity.get("value")
            if not isinstance(value, int | float) or per_day is None:
                continue
            unit = str(quantity.get("code") or quantity.get("unit") or "")
            amount = Dose(float(value), unit.lower() if unit.isascii() else unit).in_unit_of(maximum)
            if amount is None and unit in _COUNTABLE:  # tablets: the specification says how much each holds
                strength = Dose.parse(drug.specification.split("*")[0].split("×")[0])
                each = strength.in_unit_of(maximum) if strength else None
                amount = each * float(value) if each is not None else None
            if amount is None:
                return None
            total += amount * per_day
            found = True
    return round(total, 6) if found else None


def _age(patient: Mapping[str, Any] | None, on: dt.date) -> int | None:
    born = parse_day(str((patient or {}).get("birthDate") or "")) if patient else None
    if born is None:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def pregnant(resources: Iterable[Mapping[str, Any]], codes: Sequence[str]) -> bool:
    """Pregnant per an Observation of pregnancy status (LOINC 82810-3 = LA15173-0), or a
    diagnosis of pregnancy (ICD-10 Z33, O00-O9A) on the prescription or a Condition sent."""
    if any(c.startswith(("Z33", "O")) for c in codes):
        return True
    for resource in resources:
        kind = resource.get("resourceType")
        code = resource.get("code") or {}
        codings = [c for c in code.get("coding") or () if isinstance(c, dict)]
        if kind == "Observation" and any(c.get("code") == PREGNANCY_STATUS for c in codings):
            value = (resource.get("valueCodeableConcept") or {}).get("coding") or ()
            if any(v.get("code") == PREGNANT for v in value):
                return True
        if kind == "Condition" and any(str(c.get("code") or "").startswith(("Z33", "O")) for c in codings):
            return True
    return False


def compute(
    rx: Mapping[str, Any],
    drug: Drug | None,
    patient: Mapping[str, Any] | None,
    member: str | None,
    snapshot: AllianceSnapshot,
    rule_set: RuleSet,
    active: Sequence[ActivePrescription],
    *,
    is_pregnant: bool,
    today: dt.date,
) -> dict[str, Any]:
    day = authored_day(rx)
    on = parse_day(day) or today
    facts: dict[str, Any] = {"member": member or "", "authoredDay": day or on.isoformat()}
    facts["drugKnown"] = drug is not None
    facts["drugName"] = (
        drug.generic_name
        if drug
        else str(((rx.get("medication") or {}).get("reference") or {}).get("display") or "the drug")
    )
    facts["atc"] = (drug.atc or "") if drug else ""
    in_force = snapshot.formularies.in_force(member, day) if member else None
    facts["formularyKnown"] = in_force is not None
    facts["inFormulary"] = bool(in_force and drug and drug.nhsa_code in in_force.drugs)
    supply = days_supply(rx)
    if supply is not None:
        facts["daysSupply"] = int(supply) if supply.is_integer() else supply
    kind = category(rx)
    facts["category"] = kind or "general"
    facts["emergency"] = kind == "emergency"
    is_long, group, weeks = long_term(rx)
    facts["longTerm"] = is_long
    facts["longTermGroup"] = group or ""
    if weeks is not None:
        facts["longTermMaxWeeks"] = weeks
    codes = diagnoses(rx)
    facts["diagnoses"] = ", ".join(codes) or "(none)"
    groups = sorted({g for c in codes for g in rule_set.chronic_groups_of(c)})
    facts["diagnosisGroups"] = groups
    facts["chronicDiagnosis"] = bool(groups)
    if drug is not None:
        daily = _daily_dose(rx, drug)
        if daily is not None and drug.max_daily_dose is not None:
            facts["dailyDose"] = daily
            facts["maxDailyDose"] = drug.max_daily_dose.value
            facts["doseUnit"] = drug.max_daily_dose.unit
        facts["controlClass"] = drug.control_class or ""
    # duplicates and interactions: the patient's other active prescriptions, alliance-wide
    current = [a for a in active if a.covers(on) and a.id != rx.get("id")]
    atc5 = drug.atc5 if drug else None
    duplicates = [a for a in current if atc5 and a.atc5 == atc5]
    facts["duplicates"] = [{"prescription": a.id, "member": a.member or "", "atc": a.atc} for a in duplicates]
    facts["duplicateMembers"] = ", ".join(sorted({a.member or "?" for a in duplicates}))
    interactions = []
    if drug and drug.atc:
        for other in current:
            for listed in rule_set.interactions:
                if other.atc and listed.between(drug.atc, other.atc):
                    interactions.append(
                        {"with": other.drug_name, "severity": listed.severity, "en": listed.en, "zh": listed.zh}
                    )
    facts["interactions"] = interactions
    for level in ("high", "moderate"):
        chosen = [i for i in interactions if i["severity"] == level]
        name = "interactionsHigh" if level == "high" else "interactionsModerate"
        facts[name] = "; ".join(f"{i['en']} (with {i['with']})" for i in chosen)
        facts[name + "Zh"] = "；".join(f"{i['zh']}（与 {i['with']}）" for i in chosen)
    # age and pregnancy cautions
    age = _age(patient, on)
    if age is not None:
        facts["ageYears"] = age
    populations = set()
    if age is not None and age < rule_set.child_age:
        populations.add("child")
    if age is not None and age >= rule_set.elderly_age:
        populations.add("elderly")
    facts["pregnant"] = is_pregnant
    atc = (drug.atc or "") if drug else ""
    age_cautions = [c for c in rule_set.cautions if c.population in populations and atc and atc.startswith(c.atc)]
    preg_cautions = [c for c in rule_set.cautions if c.population == "pregnant" and atc and atc.startswith(c.atc)]
    facts["ageCautions"] = [c.en for c in age_cautions]
    facts["ageCautionsZh"] = "；".join(c.zh for c in age_cautions)
    facts["pregnancyCautions"] = [c.en for c in preg_cautions]
    facts["pregnancyCautionsZh"] = "；".join(c.zh for c in preg_cautions)
    # extended prescription (延伸处方): the dispensing member must list the drug
    dispensing_ref = dispensing_member_reference(rx)
    facts["extended"] = dispensing_ref is not None
    dispensing = member_of_reference(snapshot.registry, dispensing_ref)
    facts["dispensingMember"] = dispensing or ""
    dispensing_list = snapshot.formularies.in_force(dispensing, day) if dispensing else None
    facts["dispensingFormularyKnown"] = dispensing_list is not None
    facts["dispensingListed"] = bool(dispensing_list and drug and drug.nhsa_code in dispensing_list.drugs)
    return facts
