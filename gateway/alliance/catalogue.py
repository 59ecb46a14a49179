"""The drug catalogue: one :class:`Drug` per national insurance drug code, stored as a
``Medication`` of the ``yl-drug`` profile.

The attributes a pharmacy committee keeps beside each drug (chronic-disease group, ATC code,
control class, maximum daily dose, essential and volume-procurement flags) live on the
Medication itself, so the formulary Lists, the linkage checks and the pre-review all read one
resource per drug: the ATC code as a second ``code.coding``, the rest in the
``yl-drug-attributes`` extension (POL-01, POL-05).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.fhir.elements import extension

NHSA_SYSTEM = "http://yaolian.org/fhir/sid/nhsa-drug-code"
ATC_SYSTEM = "http://www.whocc.no/atc"
DOSE_FORM_SYSTEM = "urn:oid:2.16.156.10011.2.3.1.211"
SD = "http://yaolian.org/fhir/StructureDefinition/"
DRUG_PROFILE = SD + "yl-drug"
SPEC_URL = SD + "yl-drug-specification"
ESSENTIAL_URL = SD + "yl-essential-medicine"
VBP_URL = SD + "yl-volume-based-procurement"
ATTRIBUTES_URL = SD + "yl-drug-attributes"
CHRONIC_SYSTEM = "http://yaolian.org/fhir/CodeSystem/chronic-disease-group"

CHRONIC_GROUPS = ("hypertension", "diabetes", "copd")
CONTROL_CLASSES = ("narcotic", "psychotropic-1", "psychotropic-2", "toxic", "radioactive")
VBP_SCOPES = ("none", "national", "inter-provincial")
NHSA_CODE = re.compile(r"^[XZ][A-Z0-9]{22}$")

#: Mass units to milligrams; a dose in another unit is compared only with the same unit.
_MG = {"g": 1000.0, "mg": 1.0, "ug": 0.001, "µg": 0.001, "μg": 0.001, "mcg": 0.001, "kg": 1_000_000.0}
_ML = {"ml": 1.0, "l": 1000.0}
_DOSE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([^\d\s].*?)\s*$")


@dataclass(frozen=True)
class Dose:
    """An amount with its unit ("2 g", "500 mg", "10 ml", "4 片")."""

    value: float
    unit: str

    @classmethod
    def parse(cls, text: str) -> Dose | None:
        match = _DOSE.match(text or "")
        if not match:
            return None
        unit = match.group(2).strip()
        return cls(float(match.group(1)), unit.lower() if unit.isascii() else unit)

    def in_unit_of(self, other: Dose) -> float | None:
        """This amount in ``other``'s unit, None when the two cannot be compared."""
        for table in (_MG, _ML):
            if self.unit in table and other.unit in table:
                return self.value * table[self.unit] / table[other.unit]
        return self.value if self.unit == other.unit else None

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


def route_kind(dose_form: str) -> str:
    """``oral``, ``injectable`` or ``other``: 一品两规 counts oral and injectable forms apart."""
    text = dose_form.lower()
    if "注射" in text or "inject" in text or "输液" in text:
        return "injectable"
    oral = ("片", "胶囊", "颗粒", "口服", "丸", "散", "糖浆", "滴丸", "tablet", "capsule", "granule", "oral", "syrup")
    if any(word in text for word in oral):
        return "oral"
    return "other"


@dataclass(frozen=True)
class Drug:
    """One catalogue entry: the columns of the committee's spreadsheet."""

    nhsa_code: str
    generic_name: str
    dose_form: str = ""
    specification: str = ""
    chronic_group: str | None = None
    atc: str | None = None
    control_class: str | None = None
    max_daily_dose: Dose | None = None
    essential: bool = False
    vbp: str = "none"
    medication_id: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        return self.medication_id or medication_id(self.nhsa_code)

    @property
    def atc5(self) -> str | None:
        """The ATC level-5 group (chemical substance, 7 characters) duplicate therapy compares."""
        return self.atc[:7].upper() if self.atc and len(self.atc) >= 7 else None

    @property
    def route(self) -> str:
        return route_kind(self.dose_form)

    def facts(self) -> dict[str, Any]:
        """The drug as the review rules see it (``%drug``)."""
        return {
            "nhsaCode": self.nhsa_code,
            "genericName": self.generic_name,
            "doseForm": self.dose_form,
            "specification": self.specification,
            "chronicGroup": self.chronic_group or "",
            "atc": self.atc or "",
            "controlClass": self.control_class or "",
            "essential": self.essential,
            "vbp": self.vbp,
            "route": self.route,
        }


def medication_id(nhsa_code: str) -> str:
    """The Medication id of a drug: deterministic, so re-importing a catalogue updates it."""
    safe = re.sub(r"[^A-Za-z0-9.\-]", "-", nhsa_code)[:58]
    return f"drug-{safe}"


def to_medication(drug: Drug) -> dict[str, Any]:
    """The ``yl-drug`` Medication of a catalogue entry."""
    attributes: list[dict[str, Any]] = []
    if drug.chronic_group:
        attributes.append(
            {"url": "chronicGroup", "valueCoding": {"system": CHRONIC_SYSTEM, "code": drug.chronic_group}}
        )
    if drug.control_class:
        attributes.append({"url": "controlClass", "valueCode": drug.control_class})
    if drug.max_daily_dose is not None:
        attributes.append(
            {
                "url": "maxDailyDose",
                "valueQuantity": {"value": drug.max_daily_dose.value, "unit": drug.max_daily_dose.unit},
            }
        )
    attributes.append({"url": "vbpScope", "valueCode": drug.vbp})
    codings: list[dict[str, Any]] = [{"system": NHSA_SYSTEM, "code": drug.nhsa_code, "display": drug.generic_name}]
    if drug.atc:
        codings.append({"system": ATC_SYSTEM, "code": drug.atc})
    medication: dict[str, Any] = {
        "resourceType": "Medication",
        "id": drug.id,
        "meta": {"profile": [DRUG_PROFILE]},
        "extension": [
            {"url": SPEC_URL, "valueString": drug.specification or "-"},
            {"url": ESSENTIAL_URL, "valueBoolean": drug.essential},
            {"url": VBP_URL, "valueBoolean": drug.vbp != "none"},
            {"url": ATTRIBUTES_URL, "extension": attributes},
        ],
        "code": {"coding": codings, "text": drug.generic_name},
        "status": "active",
    }
    if drug.dose_form:
        medication["doseForm"] = {"text": drug.dose_form}
    return medication


def _coding(resource: Mapping[str, Any], system: str) -> str | None:
    for coding in (resource.get("code") or {}).get("coding") or ():
        if isinstance(coding, dict) and coding.get("system") == system and coding.get("code"):
            return str(coding["code"])
    return None


def from_medication(resource: Mapping[str, Any]) -> Drug | None:
    """The catalogue entry a Medication carries; None without a national insurance code."""
    nhsa = _coding(resource, NHSA_SYSTEM)
    if nhsa is None:
        return None
    attributes = {e.get("url"): e for e in (extension(resource, ATTRIBUTES_URL) or {}).get("extension") or ()}
    chronic = (attributes.get("chronicGroup") or {}).get("valueCoding", {}).get("code")
    quantity = (attributes.get("maxDailyDose") or {}).get("valueQuantity")
    dose = None
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
        dose = Dose(float(quantity["value"]), str(quantity.get("unit") or quantity.get("code") or ""))
    form = resource.get("doseForm") or {}
    form_text = form.get("text") or next((c.get("display") for c in form.get("coding") or () if c.get("display")), "")
    vbp_flag = (extension(resource, VBP_URL) or {}).get("valueBoolean")
    vbp = (attributes.get("vbpScope") or {}).get("valueCode") or ("national" if vbp_flag else "none")
    return Drug(
        nhsa_code=nhsa,
        generic_name=str((resource.get("code") or {}).get("text") or ""),
        dose_form=str(form_text or ""),
        specification=str((extension(resource, SPEC_URL) or {}).get("valueString") or ""),
        chronic_group=chronic,
        atc=_coding(resource, ATC_SYSTEM),
        control_class=(attributes.get("controlClass") or {}).get("valueCode"),
        max_daily_dose=dose,
        essential=bool((extension(resource, ESSENTIAL_URL) or {}).get("valueBoolean")),
        vbp=str(vbp),
        medication_id=str(resource.get("id") or ""),
    )


def _richness(drug: Drug) -> tuple[bool, int]:
    """Which of two entries of one code to believe: the committee's import, then the fuller."""
    filled = sum(1 for v in (drug.atc, drug.chronic_group, drug.control_class, drug.max_daily_dose) if v)
    return drug.medication_id == medication_id(drug.nhsa_code), filled


@dataclass(frozen=True)
class Catalogue:
    """The drugs by national insurance code, with a look-up by Medication id."""

    drugs: Mapping[str, Drug] = field(default_factory=dict)
    by_id: Mapping[str, Drug] = field(default_factory=dict)

    @classmethod
    def of(cls, drugs: Iterable[Drug]) -> Catalogue:
        """The catalogue of ``drugs``. Two Medications may carry one national code (the
        committee's import and one a member stored itself): the code stands for the one the
        committee imported (its id, else the one with the most attributes), and either id
        finds that entry, so a prescription pointing at a member's own Medication is reviewed
        with the committee's attributes."""
        every = list(drugs)
        by_code: dict[str, Drug] = {}
        for drug in every:
            known = by_code.get(drug.nhsa_code)
            if known is None or _richness(drug) > _richness(known):
                by_code[drug.nhsa_code] = drug
        return cls(by_code, {d.id: by_code[d.nhsa_code] for d in every})

    def get(self, nhsa_code: str) -> Drug | None:
        return self.drugs.get(nhsa_code)

    def by_medication(self, reference: str) -> Drug | None:
        return self.by_id.get(reference.removeprefix("Medication/"))

    def __iter__(self) -> Iterator[Drug]:
        return iter(self.drugs.values())

    def __len__(self) -> int:
        return len(self.drugs)
