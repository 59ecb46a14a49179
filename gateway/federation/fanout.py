"""The federated prescription query: the gateway's store and every live member, asked at once.

One query (``Patient/$prescriptions``, or a ``MedicationRequest``/``MedicationDispense`` search
on ``patient.identifier`` once live members exist) becomes:

1. the local part — ``service.search`` with the caller's own context, so access control and
   audit apply exactly as to any search (run in a worker thread);
2. one task per live member (:class:`.remote.MemberClient`), all started together with the
   local part on one event loop and one connection pool, each bounded by
   ``federation_timeout``, skipped while its circuit breaker is open, answered from the cache
   when a fresh answer is there (``Cache-Control: no-cache`` skips it);
3. the caller's rights applied to what members sent (the same role and scope rules as the
   policy: a member client sees other members' prescriptions only in a patient's context,
   which this query always is);
4. :mod:`.merge` — de-duplicated, ordered newest first, one page cut after the cursor;
5. a searchset: the page's records, each with ``meta.source`` naming its member, their
   Medications and the members' Organizations included, one Provenance per member, and one
   OperationOutcome (``search.mode = outcome``) naming every member that did not answer usably.

The local path is untouched when no member is live: the route only branches here when the
registry has one (:meth:`Federation.has_live_members`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
from redis.exceptions import RedisError

from gateway.clock import now_instant
from gateway.errors import BadRequest, Forbidden, Issue, issue, operation_outcome
from gateway.federation.breaker import BreakerBoard, Breakers, RedisBoard
from gateway.federation.cache import AnswerCache, open_cache
from gateway.federation.match import Candidate, match, match_bundle, member_searches, only_certain, ranked, score
from gateway.federation.merge import Record, decode_token, deduplicate, encode_token, ordered, page
from gateway.federation.recognition import Origin
from gateway.federation.registry import Member, MemberRegistry, load_registry
from gateway.federation.remote import INCLUDE, MemberAnswer, MemberClient
from gateway.fhir.json_text import dumps_keeping_numbers, loads_keeping_numbers
from gateway.hooks import Pointcut, RequestContext
from gateway.principal import Principal, Role, parse_scopes
from gateway.security.policy import MEMBER_SYSTEM, member_claims, owner_tag, role_allows
from gateway.service.bundles import Entry, render_bundle
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
RECORD_TYPES = ("MedicationRequest", "MedicationDispense")
#: Search parameters that name the patient by identifier (what members can be asked by).
PATIENT_IDENTIFIER_PARAMS = frozenset(
    {"patient.identifier", "subject.identifier", "patient:Patient.identifier", "subject:Patient.identifier"}
)
#: Who reads the registry for the federation (shared master data only).
REGISTRY_READER = Principal(
    "federation",
    "member registry reader (federation)",
    Role.ADMIN,
    None,
    parse_scopes("system/Organization.rs system/Endpoint.rs"),
)
T = TypeVar("T")
log = logging.getLogger("yaolian.federation")
_REGISTRY_SECONDS = 10.0
#: How often the shared breaker board is read when this process has nothing to post.
_BOARD_SECONDS = 1.0
#: The store's ``$match`` candidates weighed with the members' before the answer is cut to
#: ``count`` (cut first, the store's own order could drop a certain match behind an equal score).
LOCAL_CANDIDATES = 100
_CHANGED = "federation.registry_changed"


def member_source(code: str) -> str:
    """``meta.source`` of a record from member ``code``."""
    return f"urn:yaolian:member:{code}"


@dataclass
class FederatedQuery:
    """What a federated search asks for, parsed from the request."""

    types: tuple[str, ...]
    identifier: str | None
    patient_id: str | None
    count: int
    after: tuple[str, str] | None
    local_params: list[tuple[str, str]]
    link_params: list[tuple[str, str]]
    descending: bool = True


SORTS = {"-authoredon": True, "-date": True, "authoredon": False, "date": False}


def _sort(params: list[tuple[str, str]]) -> bool:
    """Whether newest first (the default): ``_sort`` may be ``-authoredon`` or ``authoredon``."""
    descending = True
    for name, value in params:
        if name == "_sort":
            if value not in SORTS:
                raise BadRequest("YL-0403", key=value, expression=["_sort"])
            descending = SORTS[value]
    return descending


def parse_prescriptions(
    params: list[tuple[str, str]], settings: Settings, types: Sequence[str] = RECORD_TYPES
) -> FederatedQuery:
    """``Patient/$prescriptions`` parameters: ``identifier`` or ``patient``, ``_count``,
    ``_sort=-authoredon`` (the only order), ``_page`` (a token from a ``next`` link)."""
    values = dict(params)
    identifier = values.get("identifier") or None
    patient_id = (values.get("patient") or "").removeprefix("Patient/") or None
    if identifier is None and patient_id is None:
        raise BadRequest("YL-1010", operation="Patient/$prescriptions")
    if identifier is not None and "|" not in identifier:
        raise BadRequest("YL-1010", operation="Patient/$prescriptions", expression=["identifier"])
    descending = _sort(params)
    count = _count(values.get("_count"), settings)
    after = decode_token(values["_page"]) if values.get("_page") else None
    link = [(k, v) for k, v in params if k in ("identifier", "patient", "_sort")]
    return FederatedQuery(tuple(types), identifier, patient_id, count, after, [], link, descending)


def parse_type_search(resource_type: str, params: list[tuple[str, str]], settings: Settings) -> FederatedQuery | None:
    """A ``MedicationRequest``/``MedicationDispense`` search that federates: one naming the
    patient by identifier; None for every other search (it stays local)."""
    if resource_type not in RECORD_TYPES:
        return None
    named = [v for k, v in params if k in PATIENT_IDENTIFIER_PARAMS]
    if len(named) != 1 or "|" not in named[0] or "," in named[0]:
        return None
    if any(k == "_sort" and v not in SORTS for k, v in params):
        return None  # another order: the local search answers it as before
    descending = _sort(params)
    values = dict(params)
    count = _count(values.get("_count"), settings)
    after = decode_token(values["_page"]) if values.get("_page") else None
    local = [(k, v) for k, v in params if k not in ("_count", "_page", "_sort", "_offset", "_format", "_pretty")]
    link = [(k, v) for k, v in params if k not in ("_count", "_page", "_offset")]
    return FederatedQuery((resource_type,), named[0], None, count, after, local, link, descending)


def _count(value: str | None, settings: Settings) -> int:
    if value is None:
        return settings.default_count
    if not value.isdigit():
        raise BadRequest("YL-0404", name="_count", value=value[:40], reason="not a whole number", expression=["_count"])
    return max(1, min(int(value), settings.max_count))


def visible(principal: Principal | None, resource_type: str) -> bool:
    """Whether the caller may see a record of ``resource_type`` a member sent, in a patient's
    context (the policy's rule for searches naming a patient: role and scopes decide, member
    isolation does not apply to mutually recognised types and shared master data)."""
    if principal is None:
        return False
    return role_allows(principal, resource_type, "s") or role_allows(principal, resource_type, "r")


class Federation:
    """The federated query engine of one gateway process (one connection pool, one breaker
    set, one cache)."""

    def __init__(
        self,
        service: FhirService,
        settings: Settings,
        *,
        cache: AnswerCache | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.breakers = Breakers(settings.federation_breaker_failures, settings.federation_breaker_reset)
        self.board: BreakerBoard | None = RedisBoard(settings.redis) if settings.redis else None
        self._board_read = 0.0
        self._board_task: asyncio.Task[None] | None = None
        self.cache = cache or open_cache(settings.redis, settings.federation_cache_seconds)
        self.members = MemberClient(settings.federation_timeout, views=settings.federation_views)
        self.latency = Latency()
        self._registry: tuple[float, MemberRegistry] | None = None

    # -- wiring -------------------------------------------------------------------------
    def install(self) -> None:
        """Hooks: a write of an Organization or Endpoint reloads the registry after commit;
        any commit by a member's client makes the cached answers of that member stale."""
        hooks = self.service.hooks
        hooks.register(Pointcut.BEFORE_WRITE, self._before_write)
        hooks.register(Pointcut.AFTER_COMMIT, self._after_commit)

    def _before_write(self, ctx: RequestContext, resource_type: str, data: Any, existing: Any) -> None:
        if resource_type in ("Organization", "Endpoint"):
            ctx.extra[_CHANGED] = True

    def _after_commit(self, ctx: RequestContext, stored: Any) -> None:
        if ctx.extra.pop(_CHANGED, False):
            self._registry = None
        principal = ctx.principal
        if principal is not None and principal.member:
            self.cache.invalidate(principal.member)

    async def close(self) -> None:
        await self.members.aclose()
        await self.cache.close()
        if self._board_task is not None:
            await asyncio.gather(self._board_task, return_exceptions=True)
        if self.board is not None:
            await self.board.close()

    def _share_breakers(self) -> None:
        """Post this process's opened and closed breakers on the board and read the others',
        in the background (a query never waits for it): at once when there is news, else at
        most every second."""
        task = self._board_task
        running = task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()
        if self.board is None or running:
            return
        posts = self.breakers.posts()
        if not posts and time.monotonic() - self._board_read < _BOARD_SECONDS:
            return
        self._board_read = time.monotonic()
        self._board_task = asyncio.ensure_future(self._exchange(self.board, posts))

    async def _exchange(self, board: BreakerBoard, posts: dict[str, float | None]) -> None:
        try:
            self.breakers.adopt(await board.exchange(posts))
        except (OSError, RedisError) as exc:  # Redis away: each process judges alone until it is back
            log.warning("federation: the breaker board is unavailable (%s)", type(exc).__name__)
            self.breakers.repost(posts)

    # -- the registry -------------------------------------------------------------------
    def registry(self) -> MemberRegistry:
        """The registry, re-read at most every few seconds (and after a change to it)."""
        cached = self._registry
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        ctx = RequestContext(
            base_url=self.settings.base_url or "", interaction="search-type", principal=REGISTRY_READER
        )
        registry = load_registry(self.service, ctx, endpoints=True)
        self._registry = (time.monotonic() + _REGISTRY_SECONDS, registry)
        return registry

    async def _current_registry(self) -> MemberRegistry:
        """The registry without a thread hop when it is fresh (most queries)."""
        cached = self._registry
        return cached[1] if cached and cached[0] > time.monotonic() else await asyncio.to_thread(self.registry)

    async def has_live_members(self) -> bool:
        return bool((await self._current_registry()).live())

    # -- the query ----------------------------------------------------------------------
    async def search(self, ctx: RequestContext, query: FederatedQuery, *, no_cache: bool = False, path: str) -> bytes:
        """The searchset Bundle of ``query`` across the alliance (``path``: the request's path
        below the FHIR base, for the page links)."""
        deadline = time.monotonic() + self.settings.federation_timeout  # the members' budget, from now
        principal = ctx.principal
        types = tuple(t for t in query.types if principal is not None and role_allows(principal, t, "s"))
        if not types:
            role = principal.role.value if principal else "none"
            raise Forbidden("YL-0270", role=role, interaction="search", type=" and ".join(query.types))
        registry = await self._current_registry()
        identifier = query.identifier
        if identifier is None:
            assert query.patient_id is not None
            identifier = await asyncio.to_thread(self._patient_identifier, query.patient_id, ctx)
        live = self.latency.slowest_first(registry.live()) if identifier else []
        remote_includes: dict[tuple[str, str], bytes] = {}
        wanted = identifier or ""
        remote_tasks = await started_one_by_one(
            self._member_records(m, wanted, types, no_cache, deadline, principal, remote_includes, query.count)
            for m in live
        )
        # the members' requests first: they all go out before the store's search starts a thread
        # that takes the interpreter lock (a thread keeps it up to 5 ms, delaying each send)
        remote = asyncio.gather(*remote_tasks)
        local_task = asyncio.ensure_future(
            asyncio.to_thread(self._local_and_organizations, ctx, query, types, registry, live)
        )
        answers, local = await asyncio.gather(remote, local_task)
        records, includes, issues, organizations = local
        includes.update(remote_includes)
        if identifier is None and registry.live():
            issues.append(issue("YL-1006", severity="information", id=query.patient_id or ""))
        for member_issues, member_records in answers:
            issues.extend(member_issues)
            records.extend(member_records)
        merged = ordered(deduplicate(records), query.descending)
        shown, cursor = page(merged, query.count, query.after, query.descending)
        on_page = {r.member for r in shown}
        organizations = {code: org for code, org in organizations.items() if code in on_page}
        return self._bundle(ctx, query, path, merged, shown, cursor, includes, organizations, registry, issues)

    async def find_prescription(self, ctx: RequestContext, identifier: str, patient: str | None) -> Origin | None:
        """The prescription with business identifier ``identifier``: stored here (searched as
        the caller, in the context of ``patient`` when given), else on a live member (all
        asked at once, the first that has it wins)."""
        params = [("identifier", identifier), ("_count", "1")]
        if patient:
            params.append(("patient", patient))
        find_ctx = replace(ctx, interaction="search-type", resource_type="MedicationRequest")
        found = await asyncio.to_thread(self.service.find, "MedicationRequest", params, find_ctx)
        if found and found[0].body:
            resource = loads_keeping_numbers(found[0].body)
            return Origin(resource, _local_member(resource), local=True)
        registry = await asyncio.to_thread(self.registry)
        answers = await asyncio.gather(
            *(
                self.members.ask(
                    m,
                    identifier,
                    ("MedicationRequest",),
                    timeout=self.settings.federation_timeout,
                    most=1,
                    criterion="identifier",
                )
                for m in registry.live()
            )
        )
        for answer in answers:
            for resource in answer.matches:
                if not visible(ctx.principal, "MedicationRequest"):
                    continue
                wanted = _medication_references(resource)
                medication = next(
                    (m for m in answer.included if wanted and f"Medication/{m.get('id')}" == wanted[0]), None
                )
                _stamp(resource, answer.member.code)
                return Origin(resource, answer.member.code, local=False, medication=medication)
        return None

    async def match_patients(
        self, ctx: RequestContext, wanted: dict[str, Any], *, count: int, certain_only: bool, no_cache: bool = False
    ) -> bytes:
        """``Patient/$match`` (POL-09: mutual recognition needs the patient found, and many
        members' records lack the resident ID number): the gateway's patient index and every
        live member asked at once, under the same deadline, breakers and cache as a
        prescription query; every candidate weighed by the one scorer. Nothing is merged or
        linked: the answer proposes, a person decides."""
        deadline = time.monotonic() + self.settings.federation_timeout
        principal = ctx.principal
        if principal is None or not role_allows(principal, "Patient", "s"):  # before any member is asked
            role = principal.role.value if principal else "none"
            raise Forbidden("YL-0270", role=role, interaction="search", type="Patient")
        threshold = self.settings.match_threshold
        registry = await asyncio.to_thread(self.registry)
        searches = member_searches(wanted)
        live = registry.live() if searches else []
        asked = asyncio.gather(*(self._ask_patients(m, searches, no_cache, deadline) for m in live))
        local, answers = await asyncio.gather(
            asyncio.to_thread(match, self.service, ctx, wanted, threshold, LOCAL_CANDIDATES), asked
        )
        candidates: list[Candidate] = list(local)
        issues: list[Issue] = []
        for answer in answers:
            issues.extend(answer.issues)
            candidates.extend(self._remote_candidates(answer, principal, wanted, threshold))
        chosen = ranked([c for c in candidates if c.score > 0])
        if certain_only:
            chosen = only_certain(chosen)
        return match_bundle(ctx.base_url, chosen[:count], issues)

    async def _ask_patients(
        self, member: Member, searches: list[list[tuple[str, str]]], no_cache: bool, deadline: float
    ) -> MemberAnswer:
        """One member's candidates: from the cache, else asked unless its breaker is open."""
        key = "Patient$match?" + " ".join(urlencode(s) for s in searches)

        def asked(timeout: float) -> Awaitable[MemberAnswer]:
            nominal = self.settings.federation_timeout
            return self.members.find_patients(member, searches, timeout=timeout, nominal=nominal)

        return await self._guarded(member, key, no_cache, deadline, asked)

    def _remote_candidates(
        self, answer: MemberAnswer, principal: Principal | None, wanted: dict[str, Any], threshold: float
    ) -> list[Candidate]:
        """A member's Patients weighed, stamped with their member, at the member's base."""
        member = answer.member
        endpoint = member.live_endpoint
        base = endpoint.address if endpoint else member_source(member.code)
        found = []
        for resource in answer.matches:
            if not visible(principal, "Patient"):
                continue
            _stamp(resource, member.code)
            weighed = score(wanted, resource, threshold)
            found.append(replace(weighed, member=member.code, full_url=f"{base}/Patient/{resource['id']}"))
        return found

    def _patient_identifier(self, patient_id: str, ctx: RequestContext) -> str | None:
        """The identifier members know the patient by: the resident ID card number first."""
        patient_ctx = replace(ctx, interaction="read", resource_type="Patient")
        stored = self.service.read("Patient", patient_id, patient_ctx)
        data = orjson.loads(stored.body or b"{}")
        identifiers = [
            i for i in data.get("identifier") or () if isinstance(i, dict) and i.get("system") and i.get("value")
        ]
        identifiers.sort(key=lambda i: i["system"] != RESIDENT_ID)
        return f"{identifiers[0]['system']}|{identifiers[0]['value']}" if identifiers else None

    def _local_and_organizations(
        self,
        ctx: RequestContext,
        query: FederatedQuery,
        types: tuple[str, ...],
        registry: MemberRegistry,
        live: list[Member],
    ) -> tuple[list[Record], dict[tuple[str, str], bytes], list[Issue], dict[str, tuple[str, bytes]]]:
        """The store's part and the Organizations of every member that may be on the page,
        both read while the members are still answering (not after: that would add a search
        to every answer's time)."""
        records, includes, issues = self._local(ctx, query, types)
        codes = [m.code for m in live] + [r.member for r in records if r.member]
        return records, includes, issues, self._organizations(registry, codes, ctx)

    def _local(
        self, ctx: RequestContext, query: FederatedQuery, types: tuple[str, ...]
    ) -> tuple[list[Record], dict[tuple[str, str], bytes], list[Issue]]:
        """The store's part, through ``service.search`` with the caller's context."""
        records: list[Record] = []
        includes: dict[tuple[str, str], bytes] = {}
        most = str(self.settings.federation_max_per_member)
        for resource_type in types:
            if query.local_params:
                params = [*query.local_params, ("_count", most)]
            elif query.identifier is not None:
                params = [("patient.identifier", query.identifier), ("_count", most)]
            else:
                params = [("patient", f"Patient/{query.patient_id}"), ("_count", most)]
            if not any(k == "_include" and v == INCLUDE[resource_type] for k, v in params):
                params.append(("_include", INCLUDE[resource_type]))
            search_ctx = replace(ctx, interaction="search-type", resource_type=resource_type)
            bundle = loads_keeping_numbers(self.service.search(resource_type, params, search_ctx))
            for entry in bundle.get("entry") or ():
                resource = entry.get("resource") or {}
                mode = (entry.get("search") or {}).get("mode")
                if mode == "match" and resource.get("resourceType") == resource_type:
                    member = _local_member(resource)
                    if member:
                        resource.setdefault("meta", {})["source"] = member_source(member)
                    records.append(Record(resource, member, str(entry.get("fullUrl")), local=True))
                elif mode == "include":
                    includes[("", f"{resource.get('resourceType')}/{resource.get('id')}")] = dumps_keeping_numbers(
                        resource
                    )
        return records, includes, []

    async def _member_records(
        self,
        member: Member,
        identifier: str,
        types: tuple[str, ...],
        no_cache: bool,
        deadline: float,
        principal: Principal | None,
        includes: dict[tuple[str, str], bytes],
        count: int,
    ) -> tuple[list[Issue], list[Record]]:
        """One member's answer made into records as soon as it arrives: the work is done while
        slower members are still awaited, so less of it stands between the last answer and the
        caller's (a page's worth is rendered to JSON here too; larger answers are rendered
        only for the records the page shows)."""
        answer = await self._ask(member, identifier, types, no_cache, deadline)
        records = self._remote_records(answer, principal, includes)
        if len(records) <= count:
            for record in records:
                record.text()
        return answer.issues, records

    async def _ask(
        self, member: Member, identifier: str, types: tuple[str, ...], no_cache: bool, deadline: float
    ) -> MemberAnswer:
        """One member's records of the patient: from the cache, else asked unless its breaker is open."""

        def asked(timeout: float) -> Awaitable[MemberAnswer]:
            return self.members.ask(
                member,
                identifier,
                types,
                timeout=timeout,
                most=self.settings.federation_max_per_member,
                nominal=self.settings.federation_timeout,
            )

        return await self._guarded(member, f"{','.join(types)}?{identifier}", no_cache, deadline, asked)

    async def _guarded(
        self,
        member: Member,
        key: str,
        no_cache: bool,
        deadline: float,
        asked: Callable[[float], Awaitable[MemberAnswer]],
    ) -> MemberAnswer:
        """The cached answer under ``key`` (unless ``no_cache``), else the breaker's refusal
        when it is open, else ``asked`` with what is left until ``deadline``; the outcome
        feeds the breaker and a good answer the cache."""
        if not no_cache:
            cached = await self.cache.get(member.code, key)
            if cached is not None:
                return MemberAnswer.from_json(member, cached)
        self._share_breakers()
        if not self.breakers.allow(member.code):
            found = issue(
                "YL-1004",
                severity="warning",
                member=member.code,
                name=member.name,
                failures=self.breakers.failures,
                reset=f"{self.breakers.reset:g}",
            )
            return MemberAnswer(member, issues=[found], ok=False)
        answer = await asked(max(0.0, deadline - time.monotonic()))
        self.latency.observed(member.code, answer.seconds)
        if answer.ok:
            self.breakers.succeeded(member.code)
            await self.cache.put(member.code, key, answer.to_json())
        else:
            self.breakers.failed(member.code)
        self._share_breakers()
        return answer

    def _remote_records(
        self, answer: MemberAnswer, principal: Principal | None, includes: dict[tuple[str, str], bytes]
    ) -> list[Record]:
        """A member's records as the caller may see them, stamped with their source."""
        member = answer.member
        endpoint = member.live_endpoint
        base = endpoint.address if endpoint else f"urn:yaolian:member:{member.code}"
        records = []
        for resource in answer.matches:
            if not visible(principal, str(resource.get("resourceType"))):
                continue
            _stamp(resource, member.code)
            full_url = f"{base}/{resource['resourceType']}/{resource['id']}"
            records.append(Record(resource, member.code, full_url, local=False))
        for resource in answer.included:
            if visible(principal, str(resource.get("resourceType"))):
                _stamp(resource, member.code)  # rendered now, while slower members are awaited
                includes[(member.code, f"{resource['resourceType']}/{resource['id']}")] = dumps_keeping_numbers(
                    resource
                )
        return records

    def _organizations(
        self, registry: MemberRegistry, codes: list[str], ctx: RequestContext
    ) -> dict[str, tuple[str, bytes]]:
        """The Organization (id, stored JSON) of each member in ``codes`` (one search, as the caller)."""
        members = [m for m in (registry.get(c) for c in dict.fromkeys(codes)) if m]
        if not members:
            return {}
        code_of = {m.organization_id: m.code for m in members}
        params = [("_id", ",".join(code_of)), ("_count", str(len(code_of)))]
        find_ctx = replace(ctx, interaction="search-type", resource_type="Organization")
        try:
            found = self.service.find("Organization", params, find_ctx)
        except Forbidden:  # a caller without Organization rights sees the records without them
            return {}
        return {code_of[s.res_id]: (s.res_id, s.body) for s in found if s.body and s.res_id in code_of}

    def _bundle(
        self,
        ctx: RequestContext,
        query: FederatedQuery,
        path: str,
        merged: list[Record],
        shown: list[Record],
        cursor: tuple[str, str] | None,
        includes: dict[tuple[str, str], bytes],
        organizations: dict[str, tuple[str, bytes]],
        registry: MemberRegistry,
        issues: list[Issue],
    ) -> bytes:
        base = ctx.base_url
        entries = [Entry(r.full_url, r.text(), "match") for r in shown]
        added: set[str] = set()
        for record in shown:  # the medications the page's records name, from the same source
            source = "" if record.local else record.member
            for reference in _medication_references(record.resource):
                included = includes.get((source, reference))
                if included is None:
                    continue
                url = f"{base}/{reference}" if record.local else record.full_url.rsplit("/", 2)[0] + f"/{reference}"
                if url not in added:
                    added.add(url)
                    entries.append(Entry(url, included, "include"))
        for org_id, org in organizations.values():
            entries.append(Entry(f"{base}/Organization/{org_id}", org, "include"))
        recorded = now_instant()
        by_member: dict[str, list[Record]] = {}
        for record in shown:
            by_member.setdefault(record.member, []).append(record)
        for code, records in by_member.items():
            provenance = _provenance(code, records, registry.get(code), recorded)
            entries.append(Entry(f"urn:uuid:{provenance['id']}", orjson.dumps(provenance), "include"))
        if issues:
            entries.append(Entry(resource=orjson.dumps(operation_outcome(issues)), search_mode="outcome"))
        count = [("_count", str(query.count))]
        links = [("self", f"{base}/{path}?{urlencode([*query.link_params, *count, *_page(query.after)])}")]
        if cursor is not None:
            links.append(("next", f"{base}/{path}?{urlencode([*query.link_params, *count, *_page(cursor)])}"))
        return render_bundle("searchset", entries, total=len(merged), links=links)


class Latency:
    """How long each member has lately taken to answer (a moving average), so the slowest are
    asked first: thirty requests take a few milliseconds to put on the wire, and the answer
    waits for the last member to reply; the member that replies last should not also be the
    one asked last. Per process: an ordering hint, not shared state."""

    #: Weight of the newest observation.
    WEIGHT = 0.3

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    def observed(self, member: str, seconds: float) -> None:
        before = self._seconds.get(member)
        self._seconds[member] = seconds if before is None else before + self.WEIGHT * (seconds - before)

    def slowest_first(self, members: list[Member]) -> list[Member]:
        """``members`` slowest first; a member never asked counts as slowest (it may be)."""
        return sorted(members, key=lambda m: -self._seconds.get(m.code, float("inf")))


async def started_one_by_one(work: Iterable[Coroutine[Any, Any, T]]) -> list[asyncio.Task[T]]:
    """Tasks for ``work``, each given a turn of the loop before the next is made.

    aiohttp writes a request from a task of its own, scheduled behind every task already
    waiting: started all at once, thirty members' requests stay off the wire until the last
    has been built (about 6 ms here), so every member answers that much later. One turn each
    puts each request out as soon as it is built (federated p50 71 -> 67 ms,
    benchmarks/bench_federation.py). Cancelled midway, the tasks started so far are cancelled too.
    """
    tasks: list[asyncio.Task[T]] = []
    try:
        for item in work:
            tasks.append(asyncio.ensure_future(item))
            await asyncio.sleep(0)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    return tasks


def _local_member(resource: dict[str, Any]) -> str:
    """The member a stored record belongs to: its owner tag (stamped when a member's client
    wrote it), else what the record says of its member (e.g. an HL7 v2 placer order number
    ``http://yaolian.org/fhir/sid/{MSH-4}/placer-order`` when an administrator loaded it)."""
    claims = member_claims(str(resource.get("resourceType")), resource)
    return owner_tag(resource) or (claims[0][1] if claims else "")


def _page(cursor: tuple[str, str] | None) -> list[tuple[str, str]]:
    return [("_page", encode_token(cursor))] if cursor is not None else []


def _stamp(resource: dict[str, Any], code: str) -> None:
    """``meta.source`` and the owner tag naming the member a record came from."""
    meta = resource.setdefault("meta", {})
    meta["source"] = member_source(code)
    tags = [t for t in meta.get("tag") or () if not (isinstance(t, dict) and t.get("system") == MEMBER_SYSTEM)]
    meta["tag"] = [*tags, {"system": MEMBER_SYSTEM, "code": code}]


def _medication_references(resource: dict[str, Any]) -> list[str]:
    medication = resource.get("medication")
    reference = (medication.get("reference") or {}).get("reference") if isinstance(medication, dict) else None
    return [reference] if isinstance(reference, str) and reference.startswith("Medication/") else []


def _provenance(code: str, records: list[Record], member: Member | None, recorded: str) -> dict[str, Any]:
    """Where the page's records of one member came from (store or live server) and when."""
    who: dict[str, Any] = {"identifier": {"system": MEMBER_SYSTEM, "value": code}} if code else {"display": "gateway"}
    if member is not None:
        who = {"reference": member.reference, "display": member.name}
    local = all(r.local for r in records)
    return {
        "resourceType": "Provenance",
        "id": str(uuid.uuid4()),
        "target": [{"reference": r.full_url} for r in records],
        "recorded": recorded,
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "UPDATE" if local else "EXECUTE",
                    "display": "stored by the gateway" if local else "asked live from the member",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "custodian",
                        }
                    ]
                },
                "who": who,
            }
        ],
    }
