"""Formularies: the alliance's list and each member's, one ``List`` per version.

A version is a snapshot (``List.mode`` = snapshot) of the drugs a member may stock and
prescribe, effective from its adjustment date (``List.date``), with the committee's decision in
``List.note``. Importing a new version retires the previous one (``status`` retired), so the
history of adjustments stays readable and a prescription is reviewed against the list that was
in force when it was written (POL-02, POL-27). See docs/formulary.md for the design.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.alliance.catalogue import NHSA_SYSTEM, Catalogue, Drug, medication_id
from gateway.security.policy import MEMBER_SYSTEM

LIST_KIND_SYSTEM = "http://yaolian.org/fhir/CodeSystem/list-kind"
FORMULARY_CODE = "formulary"
VERSION_SYSTEM = "http://yaolian.org/fhir/sid/formulary-version"
#: The member code of the alliance-wide formulary (POL-21).
ALLIANCE = "alliance"


@dataclass(frozen=True)
class FormularyVersion:
    """One version of one member's (or the alliance's) list."""

    member: str
    effective: str  # YYYY-MM-DD, the adjustment date
    drugs: frozenset[str]  # national insurance drug codes
    decision: str = ""
    status: str = "current"
    list_id: str = ""

    @property
    def id(self) -> str:
        return self.list_id or formulary_list_id(self.member, self.effective)


def formulary_list_id(member: str, effective: str) -> str:
    return f"formulary-{member}-{effective.replace('-', '')}"[:64]


def to_list(version: FormularyVersion, catalogue: Catalogue, organization_id: str | None) -> dict[str, Any]:
    """The ``List`` of one formulary version (entries point at the catalogue's Medications)."""
    entries = []
    for code in sorted(version.drugs):
        drug = catalogue.get(code)
        item: dict[str, Any] = {
            "reference": f"Medication/{drug.id if drug else medication_id(code)}",
            "identifier": {"system": NHSA_SYSTEM, "value": code},
        }
        if drug is not None:
            item["display"] = f"{drug.generic_name} {drug.specification}".strip()
        entries.append({"item": item})
    resource: dict[str, Any] = {
        "resourceType": "List",
        "id": version.id,
        "identifier": [{"system": VERSION_SYSTEM, "value": f"{version.member}|{version.effective}"}],
        "status": version.status,
        "mode": "snapshot",
        "title": f"Formulary 药品目录 {version.member} {version.effective}",
        "code": {"coding": [{"system": LIST_KIND_SYSTEM, "code": FORMULARY_CODE}]},
        "date": version.effective,
        "entry": entries,
    }
    subject: dict[str, Any] = {"identifier": {"system": MEMBER_SYSTEM, "value": version.member}}
    if organization_id:
        subject["reference"] = f"Organization/{organization_id}"
    resource["subject"] = [subject]
    if version.decision:
        resource["note"] = [{"text": version.decision}]
    return resource


def from_list(resource: Mapping[str, Any]) -> FormularyVersion | None:
    """The formulary version a List carries; None for a List that is no formulary."""
    ident = next((i.get("value") for i in resource.get("identifier") or () if i.get("system") == VERSION_SYSTEM), None)
    if not isinstance(ident, str) or "|" not in ident:
        return None
    member, effective = ident.rsplit("|", 1)
    drugs = set()
    for entry in resource.get("entry") or ():
        item = entry.get("item") or {}
        code = (item.get("identifier") or {}).get("value")
        if isinstance(code, str):
            drugs.add(code)
    note = " ".join(str(n.get("text") or "") for n in resource.get("note") or ())
    return FormularyVersion(
        member, effective, frozenset(drugs), note, str(resource.get("status") or ""), str(resource.get("id") or "")
    )


@dataclass(frozen=True)
class FormularyDiff:
    """What changed from one version to another."""

    old: FormularyVersion
    new: FormularyVersion
    added: tuple[str, ...]
    removed: tuple[str, ...]

    def as_json(self, catalogue: Catalogue) -> dict[str, Any]:
        def named(code: str) -> dict[str, str]:
            drug = catalogue.get(code)
            return {"nhsa_code": code, "generic_name": drug.generic_name if drug else ""}

        return {
            "member": self.new.member,
            "from": self.old.effective,
            "to": self.new.effective,
            "added": [named(c) for c in self.added],
            "removed": [named(c) for c in self.removed],
        }


def diff(old: FormularyVersion, new: FormularyVersion) -> FormularyDiff:
    return FormularyDiff(old, new, tuple(sorted(new.drugs - old.drugs)), tuple(sorted(old.drugs - new.drugs)))


@dataclass(frozen=True)
class Formularies:
    """Every version of every list, by member, oldest first."""

    versions: Mapping[str, tuple[FormularyVersion, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, versions: Iterable[FormularyVersion]) -> Formularies:
        by_member: dict[str, list[FormularyVersion]] = {}
        for version in versions:
            by_member.setdefault(version.member, []).append(version)
        return cls({m: tuple(sorted(v, key=lambda x: x.effective)) for m, v in by_member.items()})

    def history(self, member: str) -> tuple[FormularyVersion, ...]:
        return self.versions.get(member, ())

    def current(self, member: str) -> FormularyVersion | None:
        history = self.history(member)
        return history[-1] if history else None

    def in_force(self, member: str, day: str | None) -> FormularyVersion | None:
        """The version in force on ``day`` (YYYY-MM-DD…); the earliest when ``day`` precedes
        them all (a list imported after the fact still governs), the current without a day."""
        history = self.history(member)
        if not history:
            return None
        if not day:
            return history[-1]
        position = bisect.bisect_right([v.effective for v in history], day[:10])
        return history[max(position - 1, 0)]

    def members(self) -> list[str]:
        return sorted(self.versions)


def drugs_of(version: FormularyVersion, catalogue: Catalogue) -> list[Drug]:
    """The catalogue entries of a version (codes the catalogue lacks are left out)."""
    return [d for d in (catalogue.get(c) for c in sorted(version.drugs)) if d is not None]
