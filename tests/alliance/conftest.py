"""A small alliance of our own for the formulary and review tests: one county hospital, two
townships, one village; a catalogue written as the committee's CSV; each member's list; and a
builder of yl-prescription MedicationRequests with known findings."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.alliance.catalogue import Catalogue, medication_id
from gateway.alliance.catalogue_io import parse_sheet
from gateway.alliance.formulary import Formularies, FormularyVersion
from gateway.alliance.review.facts import AllianceSnapshot
from gateway.federation.registry import MemberRegistry

TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"
MEMBER = "http://yaolian.org/fhir/sid/member"
SD = "http://yaolian.org/fhir/StructureDefinition/"


def code(name: str) -> str:
    """A 23-character national insurance drug code for a test drug."""
    return ("X" + name.upper() + "0" * 22)[:23]


#: name -> spreadsheet row after the code (generic, form, spec, chronic, ATC, control, max/day, essential, vbp)
DRUGS: dict[str, list[str]] = {
    "METF": ["二甲双胍", "片剂", "0.5g", "diabetes", "A10BA02", "", "2.55 g", "Y", "national"],
    "GLIC": ["格列齐特", "片剂", "80mg", "diabetes", "A10BB09", "", "320 mg", "Y", "none"],
    "CAPT": ["卡托普利", "片剂", "25mg", "hypertension", "C09AA01", "", "150 mg", "Y", "none"],
    "AMLO": ["氨氯地平", "片剂", "5mg", "hypertension", "C08CA01", "", "10 mg", "Y", "national"],
    "AMLOB": ["苯磺酸氨氯地平", "片剂", "10mg", "hypertension", "C08CA01", "", "10 mg", "N", "none"],
    "NIFE1": ["硝苯地平", "缓释片", "10mg", "hypertension", "C08CA05", "", "120 mg", "Y", "none"],
    "NIFE2": ["硝苯地平", "缓释片", "20mg", "hypertension", "C08CA05", "", "120 mg", "Y", "none"],
    "NIFE3": ["硝苯地平", "缓释片", "30mg", "hypertension", "C08CA05", "", "120 mg", "Y", "none"],
    "AMOX1": ["阿莫西林", "胶囊", "0.125g", "", "J01CA04", "", "4 g", "Y", "none"],
    "AMOX2": ["阿莫西林", "胶囊", "0.25g", "", "J01CA04", "", "4 g", "Y", "none"],
    "AMOX3": ["阿莫西林", "胶囊", "0.5g", "", "J01CA04", "", "4 g", "Y", "none"],
    "AMOXI": ["阿莫西林", "注射剂", "0.5g", "", "J01CA04", "", "4 g", "N", "none"],
    "AMOXJ": ["阿莫西林", "注射剂", "1g", "", "J01CA04", "", "4 g", "N", "none"],
    "MORP": ["吗啡", "注射剂", "10mg", "", "N02AA01", "narcotic", "60 mg", "Y", "none"],
    "DIAZ": ["地西泮", "片剂", "2.5mg", "", "N05BA01", "psychotropic-2", "30 mg", "Y", "none"],
    "LEVO": ["左氧氟沙星", "片剂", "0.5g", "", "J01MA12", "", "0.75 g", "Y", "national"],
    "WARF": ["华法林", "片剂", "2.5mg", "", "B01AA03", "", "15 mg", "Y", "none"],
    "IBUP": ["布洛芬", "片剂", "0.2g", "", "M01AE01", "", "2.4 g", "Y", "none"],
    "ATOR": ["阿托伐他汀", "片剂", "20mg", "", "C10AA05", "", "80 mg", "Y", "national"],
    "SALB": ["沙丁胺醇", "气雾剂", "100ug", "copd", "R03AC02", "", "1.6 mg", "Y", "none"],
    "TIOT": ["噻托溴铵", "吸入粉雾剂", "18ug", "copd", "R03BB04", "", "18 ug", "Y", "none"],
}

LISTS: dict[str, list[str]] = {
    # three oral amoxicillin specs (一品两规 broken); TIOT at no primary level (sinking-candidate)
    "C1": [
        "METF",
        "CAPT",
        "NIFE1",
        "MORP",
        "DIAZ",
        "LEVO",
        "WARF",
        "IBUP",
        "ATOR",
        "AMOX1",
        "AMOX2",
        "AMOX3",
        "AMOXI",
        "SALB",
        "TIOT",
    ],
    # AMLO is not at the county (township-chronic-not-in-county); two oral + two injectable
    # amoxicillin (counted apart: no finding); three nifedipine specs (chronic: exempt)
    "T1": ["METF", "CAPT", "AMLO", "NIFE1", "NIFE2", "NIFE3", "AMOX1", "AMOX2", "AMOXI", "AMOXJ", "IBUP", "WARF"],
    # GLIC is not at the township (village-chronic-not-in-township)
    "V1": ["METF", "CAPT", "GLIC", "IBUP"],
    "T2": ["METF", "CAPT", "AMLO", "AMLOB", "SALB"],
}

HEADER_ZH = "医保药品编码,通用名,剂型,规格,慢病分组,ATC,管制类别,每日最大剂量,基药,集采"
HEADER_EN = (
    "nhsa_code,generic_name,dose_form,specification,chronic_group,atc,control_class,max_daily_dose,essential,vbp"
)


def catalogue_csv(names: list[str] | None = None, header: str = HEADER_ZH) -> str:
    rows = [header] + [",".join([code(n), *DRUGS[n]]) for n in (names or list(DRUGS))]
    return "\r\n".join(rows) + "\r\n"


def organizations() -> list[dict[str, Any]]:
    def org(oid: str, tier: str, parent: str | None) -> dict[str, Any]:
        found: dict[str, Any] = {
            "resourceType": "Organization",
            "id": f"org-{oid.lower()}",
            "name": oid,
            "identifier": [{"system": MEMBER, "value": oid}],
            "type": [{"coding": [{"system": TIER, "code": tier}]}],
        }
        if parent:
            found["partOf"] = {"reference": f"Organization/org-{parent.lower()}"}
        return found

    return [
        org("C1", "county", None),
        org("T1", "township", "C1"),
        org("T2", "township", "C1"),
        org("V1", "village", "T1"),
    ]


def prescription(
    drug: str = "METF",
    *,
    rx_id: str = "rx-1",
    patient: str = "Patient/p1",
    days: float = 7,
    category: str = "general",
    long_term: str | None = None,
    diagnosis: str = "E11.900",
    dose: tuple[float, str] | None = (0.5, "g"),
    per_day: int = 2,
    authored: str = "2026-11-10T09:00:00+08:00",
    extended_to: str | None = None,
    member: str | None = None,
    status: str = "active",
) -> dict[str, Any]:
    """A yl-prescription MedicationRequest; each keyword sets one thing a rule looks at."""
    extensions: list[dict[str, Any]] = [
        {
            "url": SD + "yl-prescription-category",
            "valueCoding": {"system": "http://yaolian.org/fhir/CodeSystem/prescription-category", "code": category},
        }
    ]
    if long_term:
        extensions.append(
            {
                "url": SD + "yl-long-term-prescription",
                "extension": [
                    {
                        "url": "chronicGroup",
                        "valueCoding": {
                            "system": "http://yaolian.org/fhir/CodeSystem/chronic-disease-group",
                            "code": long_term,
                        },
                    }
                ],
            }
        )
    if extended_to:
        extensions.append(
            {
                "url": SD + "yl-extended-prescription",
                "extension": [
                    {
                        "url": "dispensingMember",
                        "valueReference": {"reference": f"Organization/org-{extended_to.lower()}"},
                    }
                ],
            }
        )
    dosage: dict[str, Any] = {
        "text": "as prescribed",
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
    }
    if dose is not None:
        dosage["doseAndRate"] = [
            {
                "doseQuantity": {
                    "value": dose[0],
                    "unit": dose[1],
                    "system": "http://unitsofmeasure.org",
                    "code": dose[1],
                }
            }
        ]
    rx: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rx_id,
        "meta": {"profile": [SD + "yl-prescription"]},
        "extension": extensions,
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.20", "value": f"RX-{rx_id}"}],
        "status": status,
        "intent": "order",
        "medication": {"reference": {"reference": f"Medication/{medication_id(code(drug))}"}},
        "subject": {"reference": patient},
        "authoredOn": authored,
        "requester": {"reference": "Practitioner/dr-li"},
        "reason": [{"concept": {"coding": [{"system": "urn:oid:2.16.156.10011.2.3.3.11.1", "code": diagnosis}]}}],
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "quantity": {"value": 14, "unit": "片"},
            "expectedSupplyDuration": {"value": days, "unit": "天", "system": "http://unitsofmeasure.org", "code": "d"},
        },
    }
    if member:
        rx["meta"]["tag"] = [{"system": MEMBER, "code": member}]
    return rx


@dataclass
class Alliance:
    registry: MemberRegistry
    catalogue: Catalogue
    formularies: Formularies
    csv: str

    @property
    def snapshot(self) -> AllianceSnapshot:
        return AllianceSnapshot(self.registry, self.catalogue, self.formularies)

    @staticmethod
    def code(name: str) -> str:
        return code(name)

    @staticmethod
    def prescription(drug: str = "METF", **kw: Any) -> dict[str, Any]:
        return prescription(drug, **kw)

    @staticmethod
    def organizations() -> list[dict[str, Any]]:
        return organizations()


@pytest.fixture
def alliance() -> Alliance:
    text = catalogue_csv()
    sheet = parse_sheet(text.encode(), "catalogue.csv", need_attributes=True)
    assert not sheet.issues
    catalogue = Catalogue.of(d for _, d in sheet.drugs)
    versions = [
        FormularyVersion(member, "2026-03-01", frozenset(code(n) for n in names)) for member, names in LISTS.items()
    ]
    return Alliance(MemberRegistry.from_organizations(organizations()), catalogue, Formularies.of(versions), text)


@pytest.fixture
def lists_csv() -> Callable[[str], str]:
    """A member's list in the committee's CSV form (English headers, only the codes filled)."""

    def make(member: str) -> str:
        return catalogue_csv(LISTS[member], HEADER_EN)

    return make


@pytest.fixture
def written(tmp_path: Path) -> Iterator[Callable[[str, str | bytes], Path]]:
    def write(name: str, data: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    yield write


def copy_of(data: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(orjson.loads(orjson.dumps(data)))
