"""Asking one live member for a patient's prescriptions and dispenses, and judging its answer.

Whatever a member does — answers late, refuses the connection, answers 500, HTML, a Bundle of
the wrong kind, or entries without ids — becomes an :class:`Issue` naming the member (never its
address) in the outcome of the federated answer; nothing a member sends escapes as an
exception. R4 answers are translated to R5 here (:mod:`.r4`), so everything above sees R5.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from gateway.errors import Issue, issue
from gateway.federation.auth import TokenError, TokenSource
from gateway.federation.endpoints import MemberEndpoint
from gateway.federation.r4 import to_r5
from gateway.federation.registry import Member

#: What a member may contribute to a prescription answer.
ACCEPTED = frozenset({"MedicationRequest", "MedicationDispense", "Medication", "Organization"})
#: The record types a federated query asks for, and their ``_include`` of the medication.
INCLUDE = {
    "MedicationRequest": "MedicationRequest:medication",
    "MedicationDispense": "MedicationDispense:medication",
}
FHIR_JSON = "application/fhir+json"


class MemberFailure(Exception):
    """A member's answer that cannot be used; carries the issue that names the member."""

    def __init__(self, found: Issue) -> None:
        super().__init__(found.en)
        self.issue = found


@dataclass
class MemberAnswer:
    """What one member contributed: R5 resources with their search mode, and issues."""

    member: Member
    matches: list[dict[str, Any]] = field(default_factory=list)
    included: list[dict[str, Any]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    ok: bool = True
    seconds: float = 0.0
    cached: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps({"matches": self.matches, "included": self.included})

    @classmethod
    def from_json(cls, member: Member, raw: bytes) -> MemberAnswer:
        data = orjson.loads(raw)
        return cls(member, list(data["matches"]), list(data["included"]), cached=True)


def _failure(found: Issue) -> MemberFailure:
    return MemberFailure(found)


def _entries(member: Member, response: httpx.Response) -> tuple[list[Any], Any]:
    """The entries and links of a member's searchset, or the failure naming what is wrong."""
    code, name = member.code, member.name
    if response.status_code != 200:
        raise _failure(issue("YL-1003", severity="warning", member=code, name=name, status=response.status_code))
    try:
        bundle = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise _failure(
            issue("YL-1002", severity="warning", member=code, name=name, reason="the body is not JSON")
        ) from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _failure(issue("YL-1002", severity="warning", member=code, name=name, reason="the body is not a Bundle"))
    if bundle.get("type") != "searchset":
        kind = f"Bundle.type is {str(bundle.get('type'))[:40]!r}"
        raise _failure(issue("YL-1002", severity="warning", member=code, name=name, reason=kind))
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise _failure(
            issue("YL-1002", severity="warning", member=code, name=name, reason="Bundle.entry is not a list")
        )
    return entries, bundle.get("link")


def _next_link(bundle_links: Any, endpoint: MemberEndpoint) -> str | None:
    """A member's ``next`` link, only when it points back at the member itself."""
    for link in bundle_links or ():
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url.startswith(endpoint.address + "/"):
                return url
    return None


@dataclass
class MemberClient:
    """Asks members over one shared connection pool (``http``), with tokens from ``tokens``."""

    http: httpx.AsyncClient
    tokens: TokenSource = field(default_factory=TokenSource)

    async def _get(self, endpoint: MemberEndpoint, url: str) -> httpx.Response:
        headers = {"Accept": FHIR_JSON}
        if endpoint.smart is not None:
            headers["Authorization"] = f"Bearer {await self.tokens.token(self.http, endpoint.smart)}"
        response = await self.http.get(url, headers=headers)
        if response.status_code == 401 and endpoint.smart is not None:  # a token the member forgot
            self.tokens.forget(endpoint.smart)
            headers["Authorization"] = f"Bearer {await self.tokens.token(self.http, endpoint.smart)}"
            response = await self.http.get(url, headers=headers)
        return response

    async def _search(
        self, member: Member, endpoint: MemberEndpoint, resource_type: str, criteria: list[tuple[str, str]], most: int
    ) -> tuple[list[dict[str, Any]], list[Issue]]:
        query = urlencode([*criteria, ("_include", INCLUDE[resource_type]), ("_count", str(min(most, 1000)))])
        url: str | None = f"{endpoint.address}/{resource_type}?{query}"
        found: list[dict[str, Any]] = []
        issues: list[Issue] = []
        matches = 0
        while url is not None and matches < most:
            response = await self._get(endpoint, url)
            entries, links = _entries(member, response)
            for n, entry in enumerate(entries):
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                    issues.append(
                        issue("YL-1005", severity="warning", member=member.code, reason=f"entry {n} has no resource")
                    )
                    continue
                rtype = resource["resourceType"]
                if rtype == "OperationOutcome":
                    continue
                if rtype not in ACCEPTED or not isinstance(resource.get("id"), str):
                    issues.append(
                        issue(
                            "YL-1005",
                            severity="warning",
                            member=member.code,
                            reason=f"entry {n} ({rtype[:40]}) is not usable",
                        )
                    )
                    continue
                mode = (entry.get("search") or {}).get("mode") if isinstance(entry.get("search"), dict) else None
                is_match = rtype == resource_type and mode != "include"
                if endpoint.kind == "fhir-r4":
                    resource, _dropped = to_r5(resource)
                matches += is_match
                found.append({"mode": "match" if is_match else "include", "resource": resource})
            url = _next_link(links, endpoint)
        return found, issues

    async def ask(
        self,
        member: Member,
        identifier: str,
        types: Sequence[str],
        *,
        timeout: float,
        most: int,
        criterion: str = "patient.identifier",
    ) -> MemberAnswer:
        """The member's records of the patient ``identifier`` (``SYSTEM|VALUE``; with
        ``criterion="identifier"``: the records with that business identifier), or an answer
        with ``ok`` False and the issue naming why; never longer than ``timeout`` seconds."""
        endpoint = member.live_endpoint
        assert endpoint is not None, "only live members are asked"
        started = time.perf_counter()
        answer = MemberAnswer(member)
        try:
            async with asyncio.timeout(timeout):
                parts = await asyncio.gather(
                    *(self._search(member, endpoint, t, [(criterion, identifier)], most) for t in types)
                )
        except TimeoutError:
            answer.ok = False
            waited = f"{timeout:g}"
            answer.issues.append(
                issue("YL-1000", severity="warning", member=member.code, name=member.name, timeout=waited)
            )
        except MemberFailure as failure:
            answer.ok = False
            answer.issues.append(failure.issue)
        except (httpx.HTTPError, TokenError, OSError) as exc:
            answer.ok = False
            why = _reason(exc)
            answer.issues.append(issue("YL-1001", severity="warning", member=member.code, name=member.name, reason=why))
        else:
            for found, issues in parts:
                answer.issues.extend(issues)
                for item in found:
                    (answer.matches if item["mode"] == "match" else answer.included).append(item["resource"])
        answer.seconds = time.perf_counter() - started
        return answer

    async def check(self, member: Member, timeout: float) -> tuple[bool, float, str]:
        """``members check``: whether the member's server answers its CapabilityStatement,
        how fast, and what it said."""
        endpoint = member.live_endpoint
        assert endpoint is not None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                response = await self._get(endpoint, f"{endpoint.address}/metadata")
        except TimeoutError:
            return False, time.perf_counter() - started, f"no answer within {timeout:g} s"
        except (httpx.HTTPError, TokenError, OSError) as exc:
            return False, time.perf_counter() - started, _reason(exc)
        seconds = time.perf_counter() - started
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            return False, seconds, f"HTTP {response.status_code}"
        if body.get("resourceType") != "CapabilityStatement":
            return False, seconds, "not a CapabilityStatement"
        return True, seconds, f"FHIR {body.get('fhirVersion', '?')}"


def _reason(exc: BaseException) -> str:
    """What went wrong, without the member's address (httpx messages may carry the URL)."""
    if isinstance(exc, httpx.ConnectError):
        return "the connection was refused or could not be made"
    if isinstance(exc, httpx.TimeoutException):
        return "the connection timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection broke off mid-answer"
    if isinstance(exc, TokenError):
        return f"no access token ({exc})"
    return type(exc).__name__
