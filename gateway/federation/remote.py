"""Asking one live member for a patient's prescriptions and dispenses, and judging its answer.

Whatever a member does — answers late, refuses the connection, answers 500, HTML, a Bundle of
the wrong kind, or entries without ids — becomes an :class:`Issue` naming the member (never its
address) in the outcome of the federated answer; nothing a member sends escapes as an
exception. R4 answers are translated to R5 here (:mod:`.r4`), so everything above sees R5.

A ``sql-view`` member is not a FHIR server: its read-only database view is read by the
adapter registered as ``sqlview`` (found through the adapters registry, a
:class:`adapters.contract.QueryableAdapter`) in a worker thread, under the same deadline and
judgement, so a slow or broken database is the same YL-1000/YL-1001 as a slow or dead server.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import orjson
from pydantic import SecretStr

from adapters import registry as adapters
from adapters.contract import QueryableAdapter, QueryResult
from adapters.errors import AdapterError, SourceQueryError
from gateway.errors import Issue, issue
from gateway.federation.auth import TokenError, TokenSource
from gateway.federation.endpoints import MemberEndpoint
from gateway.federation.r4 import to_r5
from gateway.federation.registry import Member
from gateway.fhir.json_text import dumps_keeping_numbers, loads_keeping_numbers

#: What a member may contribute to a prescription answer.
ACCEPTED = frozenset({"MedicationRequest", "MedicationDispense", "Medication", "Organization"})
#: The record types a federated query asks for, and their ``_include`` of the medication.
INCLUDE = {
    "MedicationRequest": "MedicationRequest:medication",
    "MedicationDispense": "MedicationDispense:medication",
}
FHIR_JSON = "application/fhir+json"
T = TypeVar("T")
#: The adapter that reads a ``sql-view`` member's database view.
SQLVIEW_ADAPTER = "sqlview"
#: What each criterion of :meth:`MemberClient.ask` asks a view for.
_VIEW_CRITERIA: dict[str, Literal["patient", "prescription"]] = {
    "patient.identifier": "patient",
    "subject.identifier": "patient",
    "identifier": "prescription",
}
#: The largest answer read from a member (a page of a patient's records is kilobytes): a
#: member sending more is cut off rather than allowed to fill the gateway's memory.
MAX_ANSWER_BYTES = 32 * 1024 * 1024


class AnswerTooLarge(aiohttp.ClientError):
    """A member's answer exceeded :data:`MAX_ANSWER_BYTES`."""


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The body, at most :data:`MAX_ANSWER_BYTES` of it."""
    if response.content_length is not None:
        if response.content_length > MAX_ANSWER_BYTES:
            raise AnswerTooLarge()
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise AnswerTooLarge()
    return bytes(body)


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
        return dumps_keeping_numbers({"matches": self.matches, "included": self.included})

    @classmethod
    def from_json(cls, member: Member, raw: bytes) -> MemberAnswer:
        data = loads_keeping_numbers(raw)
        return cls(member, list(data["matches"]), list(data["included"]), cached=True)


def _failure(found: Issue) -> MemberFailure:
    return MemberFailure(found)


@dataclass(frozen=True)
class Reply:
    """A member's HTTP answer, read in full (the answers are small searchsets)."""

    status: int
    content: bytes


def _body(member: Member, response: Reply) -> Any:
    """A member's 200 answer as JSON, or the failure naming what is wrong."""
    code, name = member.code, member.name
    if response.status != 200:
        raise _failure(issue("YL-1003", severity="warning", member=code, name=name, status=response.status))
    try:  # a member's decimals are passed on as it wrote them (0.50 stays 0.50)
        return loads_keeping_numbers(response.content)
    except ValueError:
        raise _failure(
            issue("YL-1002", severity="warning", member=code, name=name, reason="the body is not JSON")
        ) from None


def _entries(member: Member, response: Reply) -> tuple[list[Any], Any]:
    """The entries and links of a member's searchset, or the failure naming what is wrong."""
    return _searchset(member, _body(member, response), "searchset")


def _searchset(member: Member, bundle: Any, kind: str) -> tuple[list[Any], Any]:
    """The entries and links of a Bundle of type ``kind`` a member sent."""
    code, name = member.code, member.name
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _failure(issue("YL-1002", severity="warning", member=code, name=name, reason="the body is not a Bundle"))
    if bundle.get("type") != kind:
        found = f"Bundle.type is {str(bundle.get('type'))[:40]!r}, not {kind}"
        raise _failure(issue("YL-1002", severity="warning", member=code, name=name, reason=found))
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


def _usable(
    member: Member, endpoint: MemberEndpoint, n: int, entry: Any, accepted: frozenset[str], issues: list[Issue]
) -> dict[str, Any] | None:
    """Entry ``n``'s resource in R5 when it is one of ``accepted`` with an id; else None, and
    the reason in ``issues`` (a member's own OperationOutcome is skipped without one)."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        issues.append(issue("YL-1005", severity="warning", member=member.code, reason=f"entry {n} has no resource"))
        return None
    rtype = resource["resourceType"]
    if rtype == "OperationOutcome":
        return None
    if rtype not in accepted or not isinstance(resource.get("id"), str):
        reason = f"entry {n} ({rtype[:40]}) is not usable"
        issues.append(issue("YL-1005", severity="warning", member=member.code, reason=reason))
        return None
    if endpoint.kind == "fhir-r4":
        try:
            resource, _dropped = to_r5(resource)
        except (TypeError, KeyError, AttributeError, ValueError, IndexError):  # R4 of an odd shape
            reason = f"entry {n} ({rtype}) is not R4 this gateway can translate"
            issues.append(issue("YL-1005", severity="warning", member=member.code, reason=reason))
            return None
    return resource


def _collect(
    member: Member,
    endpoint: MemberEndpoint,
    resource_type: str,
    entries: list[Any],
    found: list[dict[str, Any]],
    issues: list[Issue],
    patient: str | None = None,
) -> int:
    """Usable entries of one searchset page into ``found`` (R4 translated), unusable ones
    reported in ``issues``; the number of matches. Asked for ``patient`` (``SYSTEM|VALUE``),
    a match whose included subject is someone else is left out and reported (a member that
    ignored the criterion must not show another patient's prescriptions as this one's)."""
    subjects = _whose(entries) if patient else {}
    matches = 0
    for n, entry in enumerate(entries):
        if patient and _resource_type(entry) == "Patient":
            continue  # included to tell whose the records are; not passed on
        resource = _usable(member, endpoint, n, entry, ACCEPTED, issues)
        if resource is None:
            continue
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else None
        is_match = resource["resourceType"] == resource_type and mode != "include"
        if is_match and patient and not _belongs(resource, subjects, patient):
            reason = f"entry {n} ({resource_type}) is another patient's record"
            issues.append(issue("YL-1005", severity="warning", member=member.code, reason=reason))
            continue
        matches += is_match
        found.append({"mode": "match" if is_match else "include", "resource": resource})
    return matches


def _patient(criteria: Sequence[tuple[str, str]]) -> str | None:
    """The patient (``SYSTEM|VALUE``) a member is asked about, if it is asked by patient."""
    return next((value for name, value in criteria if name == "patient.identifier"), None)


def _resource_type(entry: Any) -> Any:
    resource = entry.get("resource") if isinstance(entry, dict) else None
    return resource.get("resourceType") if isinstance(resource, dict) else None


def _whose(entries: list[Any]) -> dict[str, set[str]]:
    """The identifiers (``SYSTEM|VALUE``) of each Patient on a page, under ``Patient/id`` and
    its full URL (how a record's subject may name it)."""
    found: dict[str, set[str]] = {}
    for entry in entries:
        if _resource_type(entry) != "Patient":
            continue
        resource = entry["resource"]
        names = {f"{i.get('system')}|{i.get('value')}" for i in resource.get("identifier") or () if isinstance(i, dict)}
        found[f"Patient/{resource.get('id')}"] = names
        if isinstance(entry.get("fullUrl"), str):
            found[entry["fullUrl"]] = names
    return found


def _belongs(resource: dict[str, Any], subjects: dict[str, set[str]], patient: str) -> bool:
    """Whether a record is ``patient``'s: False only when its subject is on the page and does not
    carry the identifier (a subject the member did not include cannot be told, and is kept)."""
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str):
        return True
    known = subjects.get(reference)
    if known is None and "/Patient/" in reference:
        known = subjects.get("Patient/" + reference.rsplit("/Patient/", 1)[1].split("/_history", 1)[0])
    return known is None or patient in known


def _ignored(links: Any, criterion: str, sent: Sequence[str]) -> bool:
    """Whether a member's first page says it ignored ``criterion``: its ``self`` link (the
    parameters a server actually used, FHIR search) names others of the parameters ``sent``
    but not this one. A self link naming none of them (an opaque paging URL) tells nothing."""
    for link in links or ():
        if isinstance(link, dict) and link.get("relation") == "self" and isinstance(link.get("url"), str):
            used = {name for name, _ in parse_qsl(urlsplit(link["url"]).query, keep_blank_values=True)}
            return criterion not in used and bool(used & set(sent))
    return False


_PATIENT = frozenset({"Patient"})


def _collect_patients(
    member: Member, endpoint: MemberEndpoint, entries: list[Any], found: dict[str, dict[str, Any]], issues: list[Issue]
) -> None:
    """The Patients of one searchset page into ``found`` by id (R4 translated; the same record
    found by two searches counts once), unusable entries reported in ``issues``."""
    for n, entry in enumerate(entries):
        resource = _usable(member, endpoint, n, entry, _PATIENT, issues)
        if resource is not None:
            found.setdefault(resource["id"], resource)


async def _all_finished(work: Iterable[Awaitable[T]]) -> list[T]:
    """Every piece of ``work`` ended before the first failure is raised: nothing is left running
    against a member after its answer has been judged."""
    done = await asyncio.gather(*work, return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], done)


class MemberClient:
    """Asks members over one aiohttp session (at most eight connections to each member),
    with tokens from ``tokens``.

    aiohttp rather than httpx: thirty members asked at once cost 27 ms of CPU per query through
    httpx (0.91 ms a request, most of it httpcore's pool and h11) and 5.5 ms through aiohttp's
    C parser (0.18 ms), measured on loopback (``benchmarks/bench_federation.py``), and that CPU
    is what a federated answer waits for beyond the slowest member. The session belongs to the
    event loop that first used it; a client used from a new loop opens a new one."""

    def __init__(
        self, timeout: float, tokens: TokenSource | None = None, views: Mapping[str, SecretStr] | None = None
    ) -> None:
        self.timeout = timeout
        self.tokens = tokens or TokenSource()
        self.views = dict(views or {})
        """Connection name -> SQLAlchemy URL of the ``sql-view`` members (settings)."""
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            if self._session is not None and not self._session.closed:
                self._session.detach()  # its loop is gone: nothing left to close there
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=8, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # each ask runs under asyncio.timeout
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "yaolian-federation"},
            )
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None
        if self.views:  # the view adapter's pooled connections (opened again when next asked)
            try:
                view_adapter = adapters.get(SQLVIEW_ADAPTER)
            except AdapterError:  # not installed: nothing was opened
                return
            close = getattr(view_adapter, "close", None)
            if callable(close):
                await asyncio.to_thread(close)

    # -- view members ----------------------------------------------------------------------
    def _view(self, member: Member, endpoint: MemberEndpoint) -> tuple[QueryableAdapter, str, str]:
        """The adapter, connection URL and mapping a view member is asked with, or the
        failure naming what is missing (the URL itself is never named)."""
        code, name = member.code, member.name

        def fails(reason: str) -> MemberFailure:
            return _failure(issue("YL-1001", severity="warning", member=code, name=name, reason=reason))

        connection = endpoint.connection
        url = self.views.get(connection) if connection else None
        if url is None:
            raise fails(f"the gateway has no database connection {connection!r} (YAOLIAN_FEDERATION_VIEWS)")
        if not endpoint.mapping:
            raise fails("its Endpoint names no database-view mapping")
        try:
            adapter = adapters.get(SQLVIEW_ADAPTER)
        except AdapterError:
            raise fails(f"no adapter {SQLVIEW_ADAPTER!r} is installed") from None
        if not isinstance(adapter, QueryableAdapter):
            raise fails(f"the adapter {SQLVIEW_ADAPTER!r} cannot answer queries")
        return adapter, url.get_secret_value(), endpoint.mapping

    async def _ask_view(
        self,
        member: Member,
        endpoint: MemberEndpoint,
        identifier: str,
        types: Sequence[str],
        criterion: str,
        most: int,
        timeout: float,
        nominal: float | None,
    ) -> list[tuple[list[dict[str, Any]], list[Issue]]]:
        """A view member's records, read in a worker thread (the database's own statement
        timeout is what is left of the deadline); rows that did not map are YL-1005."""
        code, name = member.code, member.name
        wanted = _VIEW_CRITERIA.get(criterion)
        if wanted is None:
            return [([], [])]
        adapter, url, mapping = self._view(member, endpoint)
        try:
            result: QueryResult = await asyncio.to_thread(
                adapter.query,
                url,
                mapping,
                identifier=identifier,
                types=types,
                most=most,
                criterion=wanted,
                timeout=timeout,
            )
        except SourceQueryError as exc:
            if exc.timed_out:
                waited = f"{nominal if nominal is not None else timeout:g}"
                raise _failure(issue("YL-1000", severity="warning", member=code, name=name, timeout=waited)) from None
            raise _failure(issue("YL-1001", severity="warning", member=code, name=name, reason=exc.message)) from None
        except AdapterError as exc:  # the mapping named by the Endpoint is missing or broken
            raise _failure(issue("YL-1001", severity="warning", member=code, name=name, reason=exc.message)) from None
        found = [{"mode": "match", "resource": r} for r in result.matches]
        found += [{"mode": "include", "resource": r} for r in result.included]
        issues = [issue("YL-1005", severity="warning", member=code, reason=i.en) for i in result.issues]
        return [(found, issues)]

    async def _send(self, method: str, endpoint: MemberEndpoint, url: str, body: bytes | None) -> Reply:
        headers = {"Accept": FHIR_JSON}
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
        http = self._http()
        if endpoint.smart is not None:
            headers["Authorization"] = f"Bearer {await self.tokens.token(http, endpoint.smart)}"
        async with http.request(method, url, data=body, headers=headers) as response:
            reply = Reply(response.status, await _read(response))
        if reply.status == 401 and endpoint.smart is not None:  # a token the member forgot
            self.tokens.forget(endpoint.smart)
            headers["Authorization"] = f"Bearer {await self.tokens.token(http, endpoint.smart)}"
            async with http.request(method, url, data=body, headers=headers) as response:
                reply = Reply(response.status, await _read(response))
        return reply

    async def _get(self, endpoint: MemberEndpoint, url: str) -> Reply:
        return await self._send("GET", endpoint, url, None)

    async def _post(self, endpoint: MemberEndpoint, body: bytes) -> Reply:
        return await self._send("POST", endpoint, endpoint.address, body)

    @staticmethod
    def _query(resource_type: str, criteria: list[tuple[str, str]], most: int) -> str:
        """The search of ``resource_type``; asked by patient, the subject comes along (see :func:`_whose`)."""
        includes = [("_include", INCLUDE[resource_type])]
        if _patient(criteria):
            includes.append(("_include", f"{resource_type}:subject"))
        return urlencode([*criteria, *includes, ("_count", str(min(most, 1000)))])

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _batch_body(types: tuple[str, ...], criteria: tuple[tuple[str, str], ...], most: int) -> bytes:
        """The batch Bundle of a query: the same for every member asked, so built once."""
        requests = [
            {"request": {"method": "GET", "url": f"{t}?{MemberClient._query(t, list(criteria), most)}"}} for t in types
        ]
        return orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": requests})

    async def _search(
        self, member: Member, endpoint: MemberEndpoint, resource_type: str, criteria: list[tuple[str, str]], most: int
    ) -> tuple[list[dict[str, Any]], list[Issue]]:
        """One search, its pages followed (``GET``, as every FHIR server answers)."""
        url = f"{endpoint.address}/{resource_type}?{self._query(resource_type, criteria, most)}"
        entries, links = _entries(member, await self._get(endpoint, url))
        return await self._pages(member, endpoint, resource_type, criteria, most, entries, links)

    async def _pages(
        self,
        member: Member,
        endpoint: MemberEndpoint,
        resource_type: str,
        criteria: list[tuple[str, str]],
        most: int,
        entries: list[Any],
        links: Any,
    ) -> tuple[list[dict[str, Any]], list[Issue]]:
        """A search's first page (its entries and links) judged and collected, then its
        further pages followed."""
        criterion = criteria[0][0]
        if _ignored(links, criterion, [criterion, "_include", "_count"]):
            reason = f"its answer to {resource_type} ignored the search criterion {criterion}"
            raise _failure(issue("YL-1002", severity="warning", member=member.code, name=member.name, reason=reason))
        found: list[dict[str, Any]] = []
        issues: list[Issue] = []
        patient = _patient(criteria)
        matches = _collect(member, endpoint, resource_type, entries, found, issues, patient)
        more = _next_link(links, endpoint)
        await self._follow(member, endpoint, resource_type, more, matches, most, found, issues, patient)
        return found, issues

    async def _follow(
        self,
        member: Member,
        endpoint: MemberEndpoint,
        resource_type: str,
        url: str | None,
        matches: int,
        most: int,
        found: list[dict[str, Any]],
        issues: list[Issue],
        patient: str | None,
    ) -> None:
        """Pages from ``url`` on (``GET``), until none is left or ``most`` matches are in."""
        while url is not None and matches < most:
            entries, links = _entries(member, await self._get(endpoint, url))
            matches += _collect(member, endpoint, resource_type, entries, found, issues, patient)
            url = _next_link(links, endpoint)

    async def _batch(
        self, member: Member, endpoint: MemberEndpoint, types: Sequence[str], criteria: list[tuple[str, str]], most: int
    ) -> list[tuple[list[dict[str, Any]], list[Issue]]]:
        """Every search of ``types`` in one batch Bundle (one round trip, half the HTTP work of
        a search per type: what keeps thirty members within budget); further pages by GET."""
        body = self._batch_body(tuple(types), tuple(criteria), most)
        results, _ = _searchset(member, _body(member, await self._post(endpoint, body)), "batch-response")
        code, name = member.code, member.name
        if len(results) != len(types):
            reason = f"{len(results)} batch answers for {len(types)} searches"
            raise _failure(issue("YL-1002", severity="warning", member=code, name=name, reason=reason))
        parts = []
        for resource_type, result in zip(types, results, strict=True):
            status = str(((result or {}).get("response") or {}).get("status", "")) if isinstance(result, dict) else ""
            if not status.startswith("200"):
                raise _failure(issue("YL-1003", severity="warning", member=code, name=name, status=status[:40] or "?"))
            entries, links = _searchset(member, result.get("resource"), "searchset")
            parts.append(await self._pages(member, endpoint, resource_type, criteria, most, entries, links))
        return parts

    async def ask(
        self,
        member: Member,
        identifier: str,
        types: Sequence[str],
        *,
        timeout: float,
        most: int,
        criterion: str = "patient.identifier",
        nominal: float | None = None,
    ) -> MemberAnswer:
        """The member's records of the patient ``identifier`` (``SYSTEM|VALUE``; with
        ``criterion="identifier"``: the records with that business identifier), or an answer
        with ``ok`` False and the issue naming why; never longer than ``timeout`` seconds
        (``nominal``: the configured timeout the outcome names, when ``timeout`` is what is
        left of it)."""
        endpoint = member.live_endpoint
        assert endpoint is not None, "only live members are asked"

        async def asked() -> list[tuple[list[dict[str, Any]], list[Issue]]]:
            if endpoint.kind == "sql-view":
                return await self._ask_view(member, endpoint, identifier, types, criterion, most, timeout, nominal)
            if endpoint.kind == "fhir-r5" and len(types) > 1:
                return await self._batch(member, endpoint, types, [(criterion, identifier)], most)
            criteria = [(criterion, identifier)]
            return await _all_finished(self._search(member, endpoint, t, criteria, most) for t in types)

        return await self._judged(member, asked, timeout, nominal)

    async def _judged(
        self,
        member: Member,
        asked: Callable[[], Awaitable[list[tuple[list[dict[str, Any]], list[Issue]]]]],
        timeout: float,
        nominal: float | None,
    ) -> MemberAnswer:
        """What ``asked`` got from the member as its answer, or an answer with ``ok`` False
        and the issue naming why (late, refused, garbage): nothing a member does escapes as an
        exception, and nothing takes longer than ``timeout``."""
        started = time.perf_counter()
        answer = MemberAnswer(member)
        try:
            async with asyncio.timeout(timeout):
                parts = await asked()
        except TimeoutError:
            answer.ok = False
            waited = f"{nominal if nominal is not None else timeout:g}"
            answer.issues.append(
                issue("YL-1000", severity="warning", member=member.code, name=member.name, timeout=waited)
            )
        except MemberFailure as failure:
            answer.ok = False
            answer.issues.append(failure.issue)
        except (aiohttp.ClientError, TokenError, OSError) as exc:
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

    async def find_patients(
        self,
        member: Member,
        searches: Sequence[Sequence[tuple[str, str]]],
        *,
        timeout: float,
        nominal: float | None = None,
    ) -> MemberAnswer:
        """The member's Patients found by ``searches`` (``Patient?…`` GETs, all at once; only
        the first page of each: the searches carry their own ``_count``) as the answer's
        ``matches``, or an answer with ``ok`` False and the issue naming why; never longer than
        ``timeout`` seconds (``nominal`` as in :meth:`ask`). For ``Patient/$match`` (POL-09)."""
        endpoint = member.live_endpoint
        assert endpoint is not None, "only live members are asked"
        if endpoint.kind == "sql-view":  # a prescription view holds no Patient records to weigh
            return MemberAnswer(member)

        async def asked() -> list[tuple[list[dict[str, Any]], list[Issue]]]:
            found: dict[str, dict[str, Any]] = {}
            issues: list[Issue] = []

            async def one(criteria: Sequence[tuple[str, str]]) -> None:
                url = f"{endpoint.address}/Patient?{urlencode(list(criteria))}"
                entries, _links = _entries(member, await self._get(endpoint, url))
                _collect_patients(member, endpoint, entries, found, issues)

            await _all_finished(one(criteria) for criteria in searches)
            return [([{"mode": "match", "resource": r} for r in found.values()], issues)]

        return await self._judged(member, asked, timeout, nominal)

    async def check(self, member: Member, timeout: float) -> tuple[bool, float, str]:
        """``members check``: whether the member's server answers its CapabilityStatement,
        how fast, and what it said."""
        endpoint = member.live_endpoint
        assert endpoint is not None
        if endpoint.kind == "sql-view":
            return await self._check_view(member, endpoint, timeout)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                response = await self._get(endpoint, f"{endpoint.address}/metadata")
        except TimeoutError:
            return False, time.perf_counter() - started, f"no answer within {timeout:g} s"
        except (aiohttp.ClientError, TokenError, OSError) as exc:
            return False, time.perf_counter() - started, _reason(exc)
        seconds = time.perf_counter() - started
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if response.status != 200 or not isinstance(body, dict):
            return False, seconds, f"HTTP {response.status}"
        if body.get("resourceType") != "CapabilityStatement":
            return False, seconds, "not a CapabilityStatement"
        return True, seconds, f"FHIR {body.get('fhirVersion', '?')}"

    async def _check_view(self, member: Member, endpoint: MemberEndpoint, timeout: float) -> tuple[bool, float, str]:
        """``members check`` of a view member: ``SELECT 1`` over its connection."""
        started = time.perf_counter()
        try:
            adapter, url, mapping = self._view(member, endpoint)
            async with asyncio.timeout(timeout):
                await asyncio.to_thread(adapter.check, url, mapping, timeout=timeout)
        except MemberFailure as failure:
            return False, time.perf_counter() - started, failure.issue.en
        except TimeoutError:
            return False, time.perf_counter() - started, f"no answer within {timeout:g} s"
        except AdapterError as exc:
            return False, time.perf_counter() - started, exc.message
        return True, time.perf_counter() - started, f"database view ({endpoint.mapping})"


def _reason(exc: BaseException) -> str:
    """What went wrong, without the member's address (aiohttp messages carry the URL)."""
    if isinstance(exc, AnswerTooLarge):
        return f"the answer is larger than {MAX_ANSWER_BYTES // (1024 * 1024)} MiB"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "the connection was refused or could not be made"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return "the connection timed out"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "the connection broke off mid-answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "the answer was not valid HTTP"
    if isinstance(exc, TokenError):
        return f"no access token ({exc})"
    return type(exc).__name__
