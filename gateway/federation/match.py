"""Patient matching across members (``Patient/$match``): the resident ID card number
(居民身份证号) is the key; where a record lacks it, name, birth date, gender and phone are
weighed into an explicit score.

Mutual recognition needs the patient found first (POL-09: a prescription is continued at
another member only for the same person), and many members' records lack the ID number: so
the gateway's own patient index and every live member's server are asked
(:meth:`.fanout.Federation.match_patients`), and every candidate is weighed by the one
:func:`score` below, wherever it came from.

Nothing is ever merged here: ``$match`` only proposes candidates with their score and grade
(``certain`` for the same ID number; ``probable`` at or above ``settings.match_threshold``;
``possible`` below it). Linking two records is a person's decision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from gateway.errors import Issue, operation_outcome
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
#: What each agreeing element adds to the score (they sum to 1.0).
WEIGHTS = {"name": 0.35, "birthDate": 0.3, "phone": 0.25, "gender": 0.1}
_CANDIDATES = 50
#: Candidates one member may send for one search (a plain search's ``_count``): enough for a
#: birth date and a family name shared by a few people, few enough to weigh in microseconds.
MEMBER_CANDIDATES = 20


@dataclass(frozen=True)
class Candidate:
    patient: dict[str, Any]
    score: float
    grade: str  # certain | probable | possible
    agreed: tuple[str, ...]
    member: str = ""  # the live member that holds it; "" for the gateway's own index
    full_url: str = ""


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
    ``service.find``: access control and audit apply). The names, birth date and phone are
    searched even when the ID number found its record: a record pushed without the number is
    the same person's too (POL-09), as at a live member (:func:`member_searches`)."""
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
    scored = [score(wanted, p, threshold) for p in found.values()]
    kept = [c for c in scored if c.score > 0]
    kept.sort(key=lambda c: (-c.score, str(c.patient.get("id"))))
    return kept[:count]


def member_searches(wanted: dict[str, Any]) -> list[list[tuple[str, str]]]:
    """The plain searches a member's server is asked for candidates of ``wanted`` (every FHIR
    server answers them, R4 or R5, with or without ``$match`` of its own).

    Members lacking the ID number are the reason to ask, so the demographic searches go out
    even when the ID number is given (in parallel: one round trip). Birth date with a name is
    narrow and both carry most of the weight; the phone finds the records whose birth date or
    name was mistyped. Birth date or name alone only when neither of those is possible."""
    searches: list[list[tuple[str, str]]] = []
    number = resident_id(wanted)
    if number:
        searches.append([("identifier", f"{RESIDENT_ID}|{number}")])
    name = _name_query(wanted)
    born = str(wanted.get("birthDate") or "")
    if born and name:
        searches.append([("birthdate", born), ("name", name)])
    phones = sorted(p for p in _phones(wanted) if p)[:2]
    searches.extend([("phone", p)] for p in phones)
    if not (born and name) and not phones:
        if born:
            searches.append([("birthdate", born)])
        elif name:
            searches.append([("name", name)])
    return [[*s, ("_count", str(MEMBER_CANDIDATES))] for s in searches]


def _name_query(wanted: dict[str, Any]) -> str:
    """What a ``name`` search (starts-with on any part of the name) is asked: the family name,
    which finds ``王`` / ``建国`` records and ``王建国`` texts alike; else the name's text."""
    for name in wanted.get("name") or ():
        if isinstance(name, dict) and name.get("family"):
            return str(name["family"]).strip()
    for name in wanted.get("name") or ():
        if isinstance(name, dict) and name.get("text"):
            return str(name["text"]).strip()
    return ""


def ranked(candidates: list[Candidate]) -> list[Candidate]:
    """Best first, as the spec asks: by score, a ``certain`` grade before an equal score
    without the ID number, the gateway's own before a member's, then by member and id (a
    stable order for the same answer)."""
    return sorted(
        candidates,
        key=lambda c: (-c.score, c.grade != "certain", c.member != "", c.member, str(c.patient.get("id"))),
    )


def only_certain(candidates: list[Candidate]) -> list[Candidate]:
    """``onlyCertainMatches``: the spec returns nothing where several candidates are possible.
    Here only the ID number makes a match certain, and every record with the same number is
    the same person (held by several members), so those are kept and nothing else is."""
    return [c for c in candidates if c.grade == "certain"]


def match_bundle(base_url: str, candidates: list[Candidate], issues: list[Issue]) -> bytes:
    """The ``$match`` searchset: each candidate with ``search.score`` and the ``match-grade``
    extension (the spec's two musts), a member's at its own base; one outcome entry naming
    the members that did not answer usably (partial results, never silent loss)."""
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": c.full_url or f"{base_url}/Patient/{c.patient.get('id')}",
            "resource": c.patient,
            "search": {
                "mode": "match",
                "score": c.score,
                "extension": [{"url": MATCH_GRADE, "valueCode": c.grade}],
            },
        }
        for c in candidates
    ]
    if issues:
        entries.append({"resource": operation_outcome(issues), "search": {"mode": "outcome"}})
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(candidates), "entry": entries}
    return orjson.dumps(bundle)
