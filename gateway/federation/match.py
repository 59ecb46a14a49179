"""Patient matching across members (``Patient/$match``): the resident ID card number
(居民身份证号) is the key; where a record lacks it, name, birth date, gender and phone are
weighed into an explicit score.

Nothing is ever merged here: ``$match`` only proposes candidates with their score and grade
(``certain`` for the same ID number; ``probable`` at or above ``settings.match_threshold``;
``possible`` below it). Linking two records is a person's decision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
#: What each agreeing element adds to the score (they sum to 1.0).
WEIGHTS = {"name": 0.35, "birthDate": 0.3, "phone": 0.25, "gender": 0.1}
_CANDIDATES = 50


@dataclass(frozen=True)
class Candidate:
    patient: dict[str, Any]
    score: float
    grade: str  # certain | probable | possible
    agreed: tuple[str, ...]


def resident_id(patient: dict[str, Any]) -> str | None:
    for identifier in patient.get("identifier") or ():
        if isinstance(identifier, dict) and identifier.get("system") == RESIDENT_ID and identifier.get("value"):
            return str(identifier["value"]).upper()
    return None


def _names(patient: dict[str, Any]) -> set[str]:
    found = set()
    for name in patient.get("name") or ():
        if not isinstance(name, dict):
            continue
        text = name.get("text") or (str(name.get("family") or "") + "".join(name.get("given") or ()))
        if text:
            found.add(str(text).replace(" ", ""))
    return found


def _phones(patient: dict[str, Any]) -> set[str]:
    return {
        "".join(ch for ch in str(t.get("value")) if ch.isdigit())[-11:]
        for t in patient.get("telecom") or ()
        if isinstance(t, dict) and t.get("system") in (None, "phone", "sms") and t.get("value")
    }


def score(wanted: dict[str, Any], candidate: dict[str, Any], threshold: float) -> Candidate:
    """How well ``candidate`` fits ``wanted``: the same ID number is certain, a different one
    rules it out; otherwise the weights of the elements that agree (a gender that disagrees
    takes its weight off)."""
    mine, theirs = resident_id(wanted), resident_id(candidate)
    if mine and theirs:
        same = mine == theirs
        return Candidate(
            candidate, 1.0 if same else 0.0, "certain" if same else "certainly-not", ("identifier",) * same
        )
    agreed = []
    total = 0.0
    if _names(wanted) & _names(candidate):
        agreed.append("name")
    if wanted.get("birthDate") and wanted.get("birthDate") == candidate.get("birthDate"):
        agreed.append("birthDate")
    if _phones(wanted) & _phones(candidate):
        agreed.append("phone")
    if wanted.get("gender") and candidate.get("gender"):
        if wanted["gender"] == candidate["gender"]:
            agreed.append("gender")
        else:
            total -= WEIGHTS["gender"]
    total = max(0.0, min(1.0, total + sum(WEIGHTS[a] for a in agreed)))
    grade = "probable" if total >= threshold else "possible"
    return Candidate(candidate, round(total, 2), grade, tuple(agreed))


def match(
    service: FhirService, ctx: RequestContext, wanted: dict[str, Any], threshold: float, count: int
) -> list[Candidate]:
    """Candidates for ``wanted`` among the Patients the caller may see, best first (through
    ``service.find``: access control and audit apply)."""
    search_ctx = replace(ctx, interaction="search-type", resource_type="Patient")
    searches: list[list[tuple[str, str]]] = []
    number = resident_id(wanted)
    if number:
        searches.append([("identifier", f"{RESIDENT_ID}|{number}")])
    for name in wanted.get("name") or ():
        if isinstance(name, dict) and name.get("family"):
            searches.append([("family", str(name["family"]))])
    if wanted.get("birthDate"):
        searches.append([("birthdate", str(wanted["birthDate"]))])
    for phone in _phones(wanted):
        searches.append([("phone", phone)])
    found: dict[str, dict[str, Any]] = {}
    for params in searches:
        for stored in service.find("Patient", [*params, ("_count", str(_CANDIDATES))], search_ctx):
            if stored.body:
                found.setdefault(stored.res_id, orjson.loads(stored.body))
        if number and found and any(resident_id(p) == number for p in found.values()):
            break  # the key found its record: no need to weigh names
    scored = [score(wanted, p, threshold) for p in found.values()]
    kept = [c for c in scored if c.score > 0]
    kept.sort(key=lambda c: (-c.score, str(c.patient.get("id"))))
    return kept[:count]
