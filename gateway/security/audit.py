"""The audit trail: an AuditEvent for every read, search, write, operation and MLLP message.

What is recorded (IHE Basic Audit Log Patterns where they fit, FHIR R5 AuditEvent): the
client (``agent.who.identifier``), its role, its member organisation, its network address,
the interaction (``code``, ``action``), the patients the answer showed or the write touched
(``entity`` with role Patient), the query of a search (``entity.query``, base64), the outcome
and when. The records live in the store's hash-chained ``audit_log``
(:mod:`gateway.store.sql_audit`), never in the ordinary resource tables.

When a record commits:

* **writes** — an ``AFTER_WRITE_IN_TX`` hook appends the record in the transaction that
  commits the write: both commit or neither does.
* **MLLP / $ingest messages** — one record per message (control id, outcome, the patients of
  its writes) in the message's own savepoint of the group transaction, beside its journal row
  (:meth:`AuditTrail.message`); the writes of a message are listed in that record.
* **reads, searches, history, operations, refused requests** — the read hook points collect
  what is shown into the request's :class:`RequestAudit`; the HTTP layer
  (:mod:`gateway.api.audit`) hands the record to the :class:`GroupCommitter` when the response
  starts and sends it only once that record is committed. A crash therefore never loses the
  record of a look that was answered. Concurrent requests share one commit.

Hash chain: each row stores ``prev_hash`` and ``hash = sha256(prev_hash, seq, recorded, the
searchable columns, event bytes)`` (:func:`gateway.store.base.audit_hash`); :func:`verify`
walks it and names the first record that was edited, deleted or moved.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import orjson

from gateway.clock import instant_of, now_instant
from gateway.errors import BadRequest, Forbidden, Unauthorized
from gateway.hooks import HistoryPage, Hooks, Pointcut, RequestContext, SearchResults
from gateway.principal import Principal, Role
from gateway.search.values import ValueFormatError, date_range
from gateway.security.audit_spool import AuditSpool, spawn_chainer
from gateway.service.bundles import Entry, render_bundle
from gateway.store.base import (
    AUDIT_GENESIS,
    AuditAnchor,
    AuditCriteria,
    AuditRecord,
    AuditRow,
    Store,
    StoredResource,
    StoreTransaction,
    audit_hash,
)

log = logging.getLogger("yaolian.audit")

AUDITORS = frozenset({Role.ADMIN, Role.REGULATOR})
ANONYMOUS = "anonymous"

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"
_OUTCOME_DISPLAY = {SUCCESS: "Success", MINOR_FAILURE: "Minor failure", SERIOUS_FAILURE: "Serious failure"}

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
_IMPORT = {"system": _DCM, "code": "110107", "display": "Import"}
_ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "mllp": "C",
}  # everything else (search-*, operation, transaction, batch): E

#: ``Patient/ID`` ending a reference's value (relative or absolute, with or without ``_history``)
_PATIENT_AT = re.compile(rb'Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^"]*)?"')
_SPACE = b" \t\r\n"


def patient_refs(body: bytes) -> list[str]:
    """The patients a resource is about (subject, patient, beneficiary, ...): the ID of every
    ``"reference"`` value ending in ``Patient/ID``, found from each ``Patient/`` outward
    (``bytes.find`` to the few places, a regex match there, a look back at the key). A regex
    ``findall`` over the whole body was 20,000 of the ~130,000 instructions audit added to a
    read; tests/security/test_audit_patients.py keeps that regex as the oracle."""
    found: list[str] = []
    start = body.find(b"Patient/")
    while start >= 0:
        m = _PATIENT_AT.match(body, start)
        if m is None:
            start = body.find(b"Patient/", start + 1)
            continue
        if _is_reference_value(body, start):
            found.append(m.group(1).decode())
        start = body.find(b"Patient/", m.end())
    return found


def _is_reference_value(body: bytes, start: int) -> bool:
    """``"reference" : "[anything without a quote, ending in /]`` stands before ``start``."""
    quote = body.rfind(b'"', 0, start)
    if quote < 0 or (quote + 1 != start and body[start - 1] != ord("/")):
        return False
    k = quote - 1
    while k >= 0 and body[k] in _SPACE:
        k -= 1
    if k < 0 or body[k] != ord(":"):
        return False
    k -= 1
    while k >= 0 and body[k] in _SPACE:
        k -= 1
    return body.endswith(b'"reference"', 0, k + 1)


def patients_of(stored: StoredResource) -> list[str]:
    found = patient_refs(stored.body or b"")
    if stored.res_type == "Patient":
        found.insert(0, stored.res_id)
    return found


# -- what one HTTP request showed and did --------------------------------------------------
@dataclass
class RequestAudit:
    """Collected while a request runs (the hooks add to it, from any thread of the request)."""

    method: str
    path: str
    query: str
    client_ip: str | None
    ctx: RequestContext | None = None
    patients: dict[str, None] = field(default_factory=dict)  # ordered set
    entities: dict[str, None] = field(default_factory=dict)  # Type/id read (read, vread)
    shown: bool = False  # a read hook point ran
    written: int = 0  # write records appended in the write's own transaction
    outcome_detail: str | None = None


#: The request being served, set by the HTTP layer; hooks running for it add to it.
CURRENT: ContextVar[RequestAudit | None] = ContextVar("yaolian_audit_request", default=None)


@dataclass
class _MessageScope:
    patients: dict[str, None] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)


_MESSAGE: ContextVar[_MessageScope | None] = ContextVar("yaolian_audit_message", default=None)


# -- the AuditEvent -----------------------------------------------------------------------
def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def audit_event(
    *,
    interaction: str,
    recorded: str,
    outcome: str,
    principal: Principal | None,
    source_ip: str | None,
    patients: list[str],
    entities: Sequence[str] = (),
    query: str | None = None,
    detail: str | None = None,
    message: tuple[str, str | None] | None = None,
) -> dict[str, Any]:
    """The R5 AuditEvent of one interaction (BALP: rest category, restful-interaction code)."""
    action = _ACTIONS.get(interaction, "E")
    mllp = interaction == "mllp"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "category": [{"coding": [_IMPORT if mllp else _REST]}],
        "code": {
            "coding": [
                _coding("urn:yaolian:audit", "hl7v2-message")
                if mllp
                else _coding("http://hl7.org/fhir/restful-interaction", interaction or "operation")
            ]
        },
        "action": action,
        "recorded": recorded,
        "outcome": {
            "code": _coding(
                "http://terminology.hl7.org/CodeSystem/audit-event-outcome", outcome, _OUTCOME_DISPLAY.get(outcome)
            )
        },
    }
    if detail:
        event["outcome"]["detail"] = [{"text": detail}]
    client: dict[str, Any] = {
        "type": {"coding": [_coding(_DCM, "110153", "Source Role ID")]},
        "who": {
            "identifier": {"system": "urn:yaolian:client", "value": principal.client_id if principal else ANONYMOUS}
        },
        "requestor": True,
    }
    if principal is not None:
        client["who"]["display"] = principal.name
        client["role"] = [{"coding": [_coding("urn:yaolian:role", principal.role.value)]}]
    if source_ip:
        client["networkString"] = source_ip
    agents = [client]
    if principal is not None and principal.member:
        agents.append(
            {
                "type": {
                    "coding": [
                        _coding("http://terminology.hl7.org/CodeSystem/v3-RoleClass", "PROV", "healthcare provider")
                    ]
                },
                "who": {"identifier": {"system": "urn:yaolian:member", "value": principal.member}},
                "requestor": False,
            }
        )
    agents.append(
        {
            "type": {"coding": [_coding(_DCM, "110152", "Destination Role ID")]},
            "who": {"display": "Yaolian FHIR gateway"},
            "requestor": False,
        }
    )
    event["agent"] = agents
    event["source"] = {
        "observer": {"display": "Yaolian FHIR gateway"},
        "type": [
            {
                "coding": [
                    _coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")
                ]
            }
        ],
    }
    entity: list[dict[str, Any]] = [
        {"what": {"reference": f"Patient/{p}"}, "role": {"coding": [_coding(_OBJECT_ROLE, "1", "Patient")]}}
        for p in patients
    ]
    entity.extend(
        {"what": {"reference": e}, "role": {"coding": [_coding(_OBJECT_ROLE, "4", "Domain Resource")]}}
        for e in entities
        if not e.startswith("Patient/") or e.split("/")[1] not in patients
    )
    if query:
        entity.append(
            {
                "role": {"coding": [_coding(_OBJECT_ROLE, "24", "Query")]},
                "query": base64.b64encode(query.encode()).decode(),
            }
        )
    if message is not None:
        adapter, control_id = message
        entity.append(
            {
                "what": {"identifier": {"system": f"urn:yaolian:{adapter}:control-id", "value": control_id or ""}},
                "role": {"coding": [_coding(_OBJECT_ROLE, "20", "Job")]},
                "detail": [{"type": {"text": "MSH-10"}, "valueString": control_id or ""}],
            }
        )
    if entity:
        event["entity"] = entity
    return event


_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _record(
    interaction: str,
    outcome: str,
    principal: Principal | None,
    source_ip: str | None,
    patients: list[str],
    recorded: str | None = None,
    **event: Any,
) -> AuditRecord:
    """One record, its AuditEvent built now (``recorded``: when it happened, default now)."""
    recorded = recorded or now_instant()
    patients = [p for p in patients if _ID.match(p)]  # what a client typed may be no id at all
    body = audit_event(
        interaction=interaction,
        recorded=recorded,
        outcome=outcome,
        principal=principal,
        source_ip=source_ip,
        patients=patients,
        **event,
    )
    return AuditRecord(
        recorded=recorded,
        client_id=principal.client_id if principal else ANONYMOUS,
        member=principal.member if principal else None,
        action=interaction or "operation",
        outcome=outcome,
        patients=tuple(patients),
        event=orjson.dumps(body, option=orjson.OPT_SORT_KEYS),
    )


def record_of_facts(facts: list[Any]) -> AuditRecord:
    """The record of :meth:`AuditTrail.request_facts` (in the chainer: the AuditEvent, its JSON)."""
    when, interaction, outcome, who, ip, patients, entities, query, detail = facts
    # the request path keeps the clock reading (strftime was 19,000 instructions of a read)
    recorded = instant_of(when) if isinstance(when, float) else when
    principal = Principal(who[0], who[1], Role(who[2]), who[3]) if who else None
    return _record(
        interaction, outcome, principal, ip, patients, recorded, entities=entities, query=query, detail=detail
    )


def record_of_line(line: bytes) -> AuditRecord:
    """A spool line (:meth:`AuditTrail.commit_read`) as the record chained."""
    return record_of_facts(orjson.loads(line))


# -- group commit of read records ----------------------------------------------------------
class GroupCommitter:
    """One thread appending the records of concurrent requests, a batch per transaction; each
    request waits on its record's future (resolved once its batch committed)."""

    def __init__(self, store: Store, *, max_batch: int = 256, durable: bool = True) -> None:
        self.store = store
        self.max_batch = max_batch
        self.durable = durable
        self._queue: queue.SimpleQueue[tuple[AuditRecord, Future[None]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.commits = 0  # transactions committed (the batches), for the benchmark

    def submit(self, record: AuditRecord) -> Future[None]:
        future: Future[None] = Future()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="yaolian-audit", daemon=True)
                    self._thread.start()
        self._queue.put((record, future))
        return future

    def commit(self, record: AuditRecord) -> None:
        self.submit(record).result()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._append(batch, retry_alone=len(batch) > 1)
            if stop:
                return

    def _append(self, batch: list[tuple[AuditRecord, Future[None]]], *, retry_alone: bool) -> None:
        try:
            self.store.audit_commit([record for record, _ in batch], durable=self.durable)
        except Exception as exc:
            if retry_alone:  # one bad record must not fail the requests it was batched with
                for item in batch:
                    self._append([item], retry_alone=False)
                return
            log.exception("audit record could not be stored")
            for _, future in batch:
                future.set_exception(exc)
        else:
            self.commits += 1
            for _, future in batch:
                future.set_result(None)

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)


class AsyncGroupCommitter:
    """The group commit of the HTTP layer, on its event loop: a request adds its record and
    awaits a future; while a batch commits (in one thread of its own) the next batch gathers,
    and it commits as soon as the first is done. Per request this costs an asyncio future:
    no thread is woken and no cross-thread callback made for each record (the thread-queue
    committer above cost 30% of read throughput in those hand-offs alone)."""

    def __init__(self, store: Store, *, durable: bool = True) -> None:
        self.store = store
        self.durable = durable
        self._pending: list[tuple[AuditRecord, asyncio.Future[None]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.commits = 0

    async def commit(self, record: AuditRecord) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((record, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:  # started again after close() (a second lifespan of the app)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yaolian-audit")
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                records = [record for record, _ in batch]
                try:
                    await loop.run_in_executor(self._executor, self._append, records)
                except Exception:
                    # one bad record must not fail the requests it was batched with
                    for record, future in batch:
                        try:
                            await loop.run_in_executor(self._executor, self._append, [record])
                        except Exception as exc:
                            log.exception("audit record could not be stored")
                            if not future.done():
                                future.set_exception(exc)
                        else:
                            if not future.done():
                                future.set_result(None)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._draining = False

    def _append(self, records: list[AuditRecord]) -> None:
        self.store.audit_commit(records, durable=self.durable)
        self.commits += 1

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


# -- the trail: hooks, request records, message records, search ----------------------------
def _interaction_of(method: str, segments: list[str]) -> tuple[str, str | None]:
    """What a request is, from its method and path (when no handler said it: a refused one)."""
    rtype = segments[0] if segments and segments[0][:1].isupper() else None
    if any(s.startswith("$") for s in segments):
        return "operation", rtype
    if "_history" in segments:
        if len(segments) == 4:
            return "vread", rtype
        return ("history-instance" if len(segments) == 3 else "history-type" if rtype else "history-system"), rtype
    if method in ("GET", "HEAD"):
        return ("read" if len(segments) >= 2 else "search-type" if rtype else "search-system"), rtype
    if not segments:
        return "transaction", None
    if segments[-1] == "_search":
        return "search-type", rtype
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "operation"), rtype


def _patients_of_request(segments: list[str], query: str) -> list[str]:
    found: list[str] = []
    if len(segments) >= 2 and segments[0] == "Patient" and not segments[1].startswith(("$", "_")):
        found.append(unquote(segments[1]))
    for key, value in parse_qsl(query, keep_blank_values=True):
        name = key.split(":")[0].split(".")[0]
        if name in ("patient", "subject", "beneficiary", "_id") and value:
            if name == "_id" and not (segments and segments[0] == "Patient"):
                continue
            for v in value.split(","):
                ref = v.rsplit("Patient/", 1)[-1] if "Patient/" in v else v
                if ref and "/" not in ref:
                    found.append(ref)
    return found


class AuditTrail:
    def __init__(
        self,
        store: Store,
        *,
        retention_days: int = 183,
        reads_fsync: bool = False,
        spool_dir: Path | None = None,
        chainer: str = "thread",
        database: str | None = None,
    ) -> None:
        """Where the records of reads become durable before their answer: with ``spool_dir``
        (``audit_read_durability = "commit"``, the default) in this process's write-ahead spool
        file there (:mod:`gateway.security.audit_spool`: a gateway crash loses none), chained
        into the table by a chainer process (``chainer = "process"``, for ``database``) or a
        thread of this one; without it, or with ``reads_fsync`` (``audit_read_durability =
        "fsync"``), each waits for a group commit of the database (flushed to disk too)."""
        self.store = store
        self.retention_days = retention_days
        self.committer = GroupCommitter(store, durable=reads_fsync)  # for callers without an event loop
        self.async_committer = AsyncGroupCommitter(store, durable=reads_fsync)  # the HTTP layer's
        self.spool: AuditSpool | None = None
        if spool_dir is not None and not reads_fsync:
            self.spool = AuditSpool(store, spool_dir, record_of_line, thread=chainer != "process")
        self._chainer_process = chainer == "process" and self.spool is not None
        self._database = database
        self._chainer: Any = None

    def start(self) -> None:
        """Chain what stopped gateways left in the spool; start the chainer process."""
        if self.spool is None:
            return
        self.spool.flush()
        if self._chainer_process and self._chainer is None:
            self._chainer = spawn_chainer(self.spool.directory, self._database)

    async def commit_read(self, facts: list[Any]) -> None:
        """Make a read's record durable; returns once it is (raises when it cannot be)."""
        if self.spool is not None:
            self.spool.append(orjson.dumps(facts) + b"\n")
        else:
            await self.async_committer.commit(record_of_facts(facts))

    def submit_read(self, facts: list[Any]) -> None:
        """The same without an event loop (the record of a request that crashed)."""
        if self.spool is not None:
            self.spool.append(orjson.dumps(facts) + b"\n")
        else:
            self.committer.submit(record_of_facts(facts))

    def flush(self) -> None:
        """Every answered read of any gateway of this spool is in the table (before an
        auditor's search)."""
        if self.spool is not None:
            self.spool.flush()

    # -- registration
    def install(self, hooks: Hooks) -> None:
        """Register the audit hooks. Register them after access-control hooks at the same
        points, so what is recorded is what was shown."""
        hooks.register(Pointcut.REQUEST_RECEIVED, self._on_request)
        hooks.register(Pointcut.BEFORE_WRITE, self._no_audit_event_writes)
        hooks.register(Pointcut.BEFORE_READ_RESPONSE, self._on_read)
        hooks.register(Pointcut.BEFORE_SEARCH_RESPONSE, self._on_search)
        hooks.register(Pointcut.BEFORE_HISTORY_RESPONSE, self._on_history)
        hooks.register(Pointcut.AFTER_WRITE_IN_TX, self._on_write)

    def close(self) -> None:
        self.committer.close()
        self.async_committer.close()
        if self.spool is not None:
            self.spool.close()
        if self._chainer is not None:
            chainer, self._chainer = self._chainer, None
            chainer.terminate()
            chainer.wait(timeout=10)

    # -- hooks
    @staticmethod
    def _no_audit_event_writes(
        ctx: RequestContext, resource_type: str, data: dict[str, Any] | None, existing: StoredResource | None
    ) -> None:
        if resource_type == "AuditEvent":  # also inside Bundles: the trail is the gateway's to write
            raise Forbidden("YL-0953")

    @staticmethod
    def _on_request(ctx: RequestContext) -> None:
        seen = CURRENT.get()
        if seen is not None and seen.ctx is None:
            seen.ctx = ctx

    @staticmethod
    def _saw(ctx: RequestContext, resources: Iterable[StoredResource], *, by_id: bool = False) -> None:
        """What the request showed: its patients (and, read by id, the resources themselves)."""
        seen = CURRENT.get()
        if seen is None:
            return
        seen.shown = True
        if seen.ctx is None:
            seen.ctx = ctx
        for stored in resources:
            if by_id:
                seen.entities[f"{stored.res_type}/{stored.res_id}"] = None
            for p in patients_of(stored):
                seen.patients[p] = None

    @classmethod
    def _on_read(cls, ctx: RequestContext, stored: StoredResource) -> None:
        cls._saw(ctx, (stored,), by_id=True)

    @classmethod
    def _on_search(cls, ctx: RequestContext, results: SearchResults) -> None:
        cls._saw(ctx, (*results.matches, *results.included))

    @classmethod
    def _on_history(cls, ctx: RequestContext, page: HistoryPage) -> None:
        cls._saw(ctx, page.entries)

    def _on_write(self, ctx: RequestContext, tx: StoreTransaction, stored: StoredResource) -> None:
        patients = list(dict.fromkeys(patients_of(stored)))
        scope = _MESSAGE.get()
        if scope is not None:  # an ingested message: one record for the message, with its writes
            for p in patients:
                scope.patients[p] = None
            scope.writes.append(f"{stored.res_type}/{stored.res_id}/_history/{stored.version}")
            return
        if ctx.interaction in ("create", "update", "patch", "delete"):
            interaction = ctx.interaction
        else:
            interaction = "delete" if stored.deleted else "create" if stored.version == 1 else "update"
        principal = ctx.principal
        seen = CURRENT.get()
        ip = (principal.source_ip if principal else None) or (seen.client_ip if seen else None)
        tx.audit_append(
            [
                _record(
                    interaction,
                    SUCCESS,
                    principal,
                    ip,
                    patients,
                    entities=[f"{stored.res_type}/{stored.res_id}/_history/{stored.version}"],
                )
            ]
        )
        if seen is not None:
            seen.written += 1

    # -- messages (MLLP, $ingest, replay)
    @contextmanager
    def message_scope(self) -> Iterator[None]:
        """Around one message's writes: they are listed in its one record instead of one each."""
        token = _MESSAGE.set(_MessageScope())
        try:
            yield
        finally:
            _MESSAGE.reset(token)

    def message(
        self, tx: StoreTransaction, ctx: RequestContext, adapter: str, control_id: str | None, accepted: bool
    ) -> None:
        """Append the record of one ingested message in ``tx`` (inside :meth:`message_scope`)."""
        scope = _MESSAGE.get() or _MessageScope()
        principal = ctx.principal
        seen = CURRENT.get()
        ip = (principal.source_ip if principal else None) or (seen.client_ip if seen else None)
        tx.audit_append(
            [
                _record(
                    "mllp",
                    SUCCESS if accepted else MINOR_FAILURE,
                    principal,
                    ip or ctx.extra.get("peer"),
                    list(scope.patients),
                    entities=scope.writes if accepted else (),  # a rejected message's writes were undone
                    message=(adapter, control_id),
                    detail=None if accepted else "rejected",
                )
            ]
        )
        if seen is not None:
            seen.written += 1

    def resend(self, tx: StoreTransaction | None, ctx: RequestContext, adapter: str, control_id: str | None) -> None:
        """The record of a message sent again after it was accepted (answered from the journal,
        nothing written): in ``tx``, or committed before the answer when there is none."""
        principal = ctx.principal
        seen = CURRENT.get()
        ip = (principal.source_ip if principal else None) or (seen.client_ip if seen else None)
        record = _record(
            "mllp",
            SUCCESS,
            principal,
            ip or ctx.extra.get("peer"),
            [],
            message=(adapter, control_id),
            detail="resent after it was accepted: answered from the journal, nothing written",
        )
        if tx is not None:
            tx.audit_append([record])
        else:
            self.committer.commit(record)
        if seen is not None:
            seen.written += 1

    # -- the record of an HTTP request, when its response starts
    @staticmethod
    def request_facts(seen: RequestAudit, status: int) -> list[Any] | None:
        """What a request's record says, as plain values (the spool line; the AuditEvent is
        built from them when the record is chained, off the request path). None when the
        request's writes already recorded it in their transaction."""
        if seen.written and not seen.shown and status < 400:
            return None
        segments = [s for s in seen.path.removeprefix("/fhir").split("/") if s]
        ctx = seen.ctx
        interaction, _ = _interaction_of(seen.method, segments)
        if ctx is not None and ctx.interaction:
            interaction = ctx.interaction
        principal = ctx.principal if ctx is not None else None
        patients = dict(seen.patients)
        if seen.query or (segments and segments[0] == "Patient"):
            for p in _patients_of_request(segments, seen.query):
                patients.setdefault(p, None)
        search = interaction.startswith("search") or segments[-1:] == ["_search"]
        query = None
        if search or interaction == "operation":
            query = "/".join(segments) + (f"?{seen.query}" if seen.query else "")
        outcome = SUCCESS if status < 400 else MINOR_FAILURE if status < 500 else SERIOUS_FAILURE
        ip = (principal.source_ip if principal else None) or seen.client_ip
        entities = list(seen.entities)
        if not entities and interaction in ("read", "vread") and len(segments) >= 2:
            entities = ["/".join(segments)]
        who = [principal.client_id, principal.name, principal.role.value, principal.member] if principal else None
        detail = None if status < 400 else f"HTTP {status}"
        return [time.time(), interaction, outcome, who, ip, list(patients), entities, query, detail]

    # -- auditors' search (GET /fhir/AuditEvent)
    def search(
        self, params: list[tuple[str, str]], ctx: RequestContext, *, default_count: int, max_count: int
    ) -> bytes:
        require_auditor(ctx.principal)
        criteria, count, offset = parse_audit_search(params, default_count, max_count)
        self.flush()
        rows, total = self.store.audit_search(criteria, count=count, offset=offset)
        base = ctx.base_url
        entries = [Entry(f"{base}/AuditEvent/{row.seq}", render_row(row), "match") for row in rows]
        kept = [(k, v) for k, v in params if k not in ("_count", "_offset")]

        def link(off: int) -> str:
            return f"{base}/AuditEvent?{urlencode([*kept, ('_count', str(count)), ('_offset', str(off))])}"

        links = [("self", link(offset))]
        if offset + len(rows) < total and count:
            links.append(("next", link(offset + count)))
        if offset > 0:
            links.append(("previous", link(max(0, offset - count))))
        return render_bundle("searchset", entries, total=total, links=links)

    def read(self, seq: str, ctx: RequestContext) -> bytes | None:
        require_auditor(ctx.principal)
        self.flush()
        if not seq.isdigit():
            return None
        rows = self.store.audit_rows(int(seq) - 1, 1)
        return render_row(rows[0]) if rows and rows[0].seq == int(seq) else None


def require_auditor(principal: Principal | None) -> None:
    if principal is None:
        raise Unauthorized("YL-0951")
    if principal.role not in AUDITORS:
        raise Forbidden("YL-0950", role=principal.role.value)


def render_row(row: AuditRow) -> bytes:
    """The stored event with its id: the record's ``seq``."""
    event = orjson.loads(row.event)
    event.pop("resourceType", None)
    return orjson.dumps({"resourceType": "AuditEvent", "id": str(row.seq), **event})


def parse_audit_search(
    params: list[tuple[str, str]], default_count: int, max_count: int
) -> tuple[AuditCriteria, int, int]:
    patient = client = since = before = None
    count, offset = default_count, 0
    for key, value in params:
        if key == "patient" or key == "entity" or key == "patient:Patient":
            patient = value.rsplit("Patient/", 1)[-1]
        elif key in ("agent", "agent:identifier", "agent.identifier", "client"):
            client = value.split("|", 1)[-1]
        elif key == "date":
            prefix, text = (value[:2], value[2:]) if value[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", value)
            try:
                low, high = date_range(text)
            except ValueFormatError as exc:
                raise BadRequest("YL-0404", name="date", value=value, reason=str(exc)) from None
            low, high = low + "Z", high + "Z~"  # "~" sorts after any instant ending in Z
            if prefix in ("ge", "eq"):
                since = max(since or low, low)
            if prefix == "gt":
                since = max(since or high, high)
            if prefix in ("lt",):
                before = min(before or low, low)
            if prefix in ("le", "eq"):
                before = min(before or high, high)
        elif key == "_count":
            count = _number(key, value, max_count)
        elif key == "_offset":
            offset = _number(key, value, 10**9)
        elif key in ("_format", "_pretty", "_total"):
            continue
        else:
            raise BadRequest("YL-0404", name=key, value=value, reason="AuditEvent is searched by patient, agent, date")
    return AuditCriteria(patient, client, since, before), count, offset


def _number(name: str, value: str, most: int) -> int:
    if not value.isdigit():
        raise BadRequest("YL-0404", name=name, value=value, reason="not a whole number")
    return min(int(value), most)


# -- verify and prune ----------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.reason}"


@dataclass
class VerifyReport:
    checked: int = 0
    anchor: AuditAnchor | None = None
    head_seq: int = 0
    head_hash: str = AUDIT_GENESIS
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    store: Store, *, batch: int = 2000, progress: Callable[[int], None] | None = None, max_problems: int = 20
) -> VerifyReport:
    """Walk the chain from the anchor (or the genesis) in ``seq`` order, in batches.

    * a gap in ``seq``: the missing records were deleted;
    * ``prev_hash`` not the previous record's hash: records were re-ordered, or the previous
      record was replaced with a recomputed hash;
    * ``hash`` not the hash of the record's content: the record was edited;
    * its rows in the patient index differ from its (hashed) patients: hidden from, or
      planted in, auditors' searches by patient.

    The chain cannot tell that its newest records were removed (nothing follows them): keep
    the head (``head_seq``/``head_hash``, printed by ``yaolian audit verify``) elsewhere.
    """
    report = VerifyReport(anchor=store.audit_anchor())
    start = report.anchor.seq if report.anchor else 0
    last, prev = start, report.anchor.hash if report.anchor else AUDIT_GENESIS
    after = -(2**62)
    while len(report.problems) < max_problems:
        rows = store.audit_rows(after, batch)
        if not rows:
            break
        for row in rows:
            report.checked += 1
            problem = None
            if row.seq <= start:
                problem = f"older than the prune anchor (seq {start}): inserted, or left behind by a prune"
            elif row.seq != last + 1:
                missing = f"{last + 1}" if row.seq == last + 2 else f"{last + 1}..{row.seq - 1}"
                problem = f"record(s) {missing} before it are missing: deleted"
            elif row.prev_hash != prev:
                problem = (
                    f"its prev_hash is not the hash of record {last}: records were re-ordered, or record "
                    f"{last} was replaced"
                )
            elif audit_hash(row.prev_hash, row.seq, row) != row.hash:
                problem = "its hash does not match its content: the record was edited"
            elif row.indexed is not None and sorted(row.indexed) != sorted(set(row.patients)):
                problem = (
                    f"its patient index rows {sorted(row.indexed)} are not its patients {sorted(set(row.patients))}: "
                    "the index auditors search by was edited"
                )
            if problem is not None:
                report.problems.append(Problem(row.seq, problem))
            if row.seq > start:
                last, prev = row.seq, row.hash
        after = rows[-1].seq
        if progress is not None:
            progress(len(rows))
    report.head_seq, report.head_hash = last, prev
    return report


def prune(store: Store, before: str, *, retention_days: int, now: datetime | None = None) -> AuditAnchor | None:
    """Delete records recorded before ``before`` (a FHIR date or instant); refused when that
    would delete anything younger than the retention. The chain stays verifiable: the anchor
    keeps the last pruned record's seq and hash, and verify starts there."""
    try:
        cut = date_range(before)[0] + "Z"
    except ValueFormatError as exc:
        raise ValueError(str(exc)) from None
    oldest_kept = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    limit = oldest_kept.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if cut > limit:
        raise ValueError(
            f"refusing to prune records younger than the retention of {retention_days} days: "
            f"--before must be on or before {limit[:10]}"
        )
    return store.audit_prune(cut)
