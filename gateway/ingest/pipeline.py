"""Raw HIS message -> adapter -> transaction Bundle -> store, journalled before it is answered.

Used by the MLLP listener, ``POST /fhir/$ingest`` and ``yaolian replay`` alike, so all three
keep the same promises: durable before acknowledged, idempotent on the message id, and
rejected input kept for replay.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from adapters.contract import Adapter
from gateway.errors import FhirError, Issue, NotFound, issue, operation_outcome
from gateway.hooks import RequestContext
from gateway.ingest.journal import ACCEPTED, REJECTED, Journal, MessageFields
from gateway.ingest.replies import ReplyBuilder, reply_for
from gateway.security.audit import AuditTrail
from gateway.service.fhir_service import FhirService
from gateway.service.write_path import PreparedWrite
from gateway.store.base import DuplicateMessage, JournalEntry, StoreTransaction

log = logging.getLogger("yaolian.ingest")


@dataclass
class IngestResult:
    status: str  # accepted | rejected
    issues: list[Issue] = field(default_factory=list)
    response: bytes | None = None  # transaction-response Bundle when accepted
    duplicate: bool = False
    reply: bytes | None = None  # channel reply as sent (ACK, Bundle or OperationOutcome)
    seq: int | None = None
    duplicate_of: JournalEntry | None = None  # lost a race with a copy of the same message

    def outcome(self) -> bytes:
        return orjson.dumps(operation_outcome(self.issues))


class Prepared(NamedTuple):
    """A message converted and named, its Bundle's write prepared, waiting for its group's commit."""

    raw: bytes
    control_id: str
    bundle: dict[str, Any] | None
    issues: list[Issue]
    write: PreparedWrite[bytes] | None = None
    ctx: RequestContext | None = None  # whom the message runs for (its sender's member)
    refused: bool = False  # refused before conversion: never run, whatever happens


def get_adapter(name: str) -> Adapter:
    try:
        from adapters import registry
    except ImportError:  # pragma: no cover - adapters ship with the gateway
        raise NotFound("YL-0204", op=f"$ingest?adapter={name}") from None
    try:
        return registry.get(name)
    except LookupError:
        raise NotFound("YL-0206", adapter=name, known=", ".join(registry.names())) from None


def message_id(adapter: Adapter, raw: bytes) -> str:
    """The sender's message id when the format has one (MSH-10), else a content hash."""
    finder = getattr(adapter, "message_id", None)
    if callable(finder):
        try:
            found = finder(raw)
        except Exception:
            found = None
        if found:
            return str(found)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def convert(adapter_name: str, raw: bytes) -> tuple[dict[str, Any] | None, list[Issue]]:
    """Run an adapter without storing anything (``$convert``, ``yaolian convert``)."""
    from adapters.errors import ConversionError

    adapter = get_adapter(adapter_name)
    try:
        result = adapter.to_fhir(raw)
    except ConversionError as exc:
        return None, list(exc.issues)
    return (result.bundle if result.ok else None), list(result.issues)


def _convert_safely(adapter_name: str, raw: bytes, per_code: int) -> tuple[dict[str, Any] | None, list[Issue]]:
    """:func:`convert`, with a crashing mapping turned into a rejection (the message is kept),
    its findings bounded (:func:`bound_findings`)."""
    try:
        bundle, issues = convert(adapter_name, raw)
    except Exception as exc:
        return None, [issue("YL-0207", reason=f"{type(exc).__name__}: {exc}")]
    return bundle, bound_findings(issues, per_code)


def bound_findings(issues: list[Issue], per_code: int) -> list[Issue]:
    """The first ``per_code`` findings of each code and, for each code with more, one finding
    saying how many were left out (setting ``max_findings_per_code``; issue 12: a message of a
    million unused fields made a 375 MB OperationOutcome). Order is kept."""
    counts: dict[str, int] = {}
    severity: dict[str, str] = {}
    kept: list[Issue] = []
    for found in issues:
        key = found.error_code or found.code or "-"
        counts[key] = counts.get(key, 0) + 1
        if counts[key] <= per_code:
            kept.append(found)
            severity[key] = found.severity
    for key, count in counts.items():
        if count > per_code:
            kept.append(
                issue(
                    "YL-0804",
                    severity=severity[key],  # as the findings it counts (an ACK leaves out information)
                    count=count - per_code,
                    finding=key,
                    limit=per_code,
                    setting="max_findings_per_code",
                )
            )
    return kept


class IngestPipeline:
    def __init__(self, service: FhirService, journal: Journal) -> None:
        """Messages take the service's one write path: each Bundle is prepared as the message
        arrives, outside the write lock (on SQLite, time the other workers can write in: 2
        workers 85 -> 179 msg/s, stop 7; on PostgreSQL, shorter transactions: 126-128 ->
        167-223 msg/s, stop 8), and applied in its group's transaction."""
        self.service = service
        self.journal = journal
        #: the audit trail: one record per message, in the message's savepoint (None: off)
        self.audit: AuditTrail | None = None
        self.per_code = service.settings.max_findings_per_code

    def ingest(
        self, adapter_name: str, raw: bytes, *, channel: str, ctx: RequestContext, reply: ReplyBuilder | None = None
    ) -> IngestResult:
        adapter = get_adapter(adapter_name)
        control_id = message_id(adapter, raw)
        previous = self.journal.find(adapter_name, control_id)
        if previous is not None and previous.status == ACCEPTED:
            self._audit_resend(None, ctx, adapter_name, control_id)
            return self._duplicate(previous, raw, channel, reply)
        result = self._process(adapter_name, channel, control_id, raw, ctx, reply, previous)
        if result.duplicate_of is not None:
            self._audit_resend(None, ctx, adapter_name, control_id)
            return self._duplicate(result.duplicate_of, raw, channel, reply)
        return result

    def _audit_resend(
        self, tx: StoreTransaction | None, ctx: RequestContext, adapter_name: str, control_id: str | None
    ) -> None:
        """A resend is answered from the journal and writes nothing, but a sender did send it:
        recorded like any message (in ``tx`` when there is one, else committed before the answer)."""
        if self.audit is not None:
            self.audit.resend(tx, ctx, adapter_name, control_id)

    def prepare(self, adapter_name: str, raw: bytes, ctx: RequestContext | None = None) -> Prepared:
        """The part of ingesting that needs no write lock: message id, conversion and, given a
        ``ctx``, the Bundle's write prepared (:meth:`gateway.service.write_path.WritePath.prepare`).
        The MLLP listener runs it as each message arrives, so this work overlaps the group being
        written, in this process or in another worker."""
        bundle, issues = _convert_safely(adapter_name, raw, self.per_code)
        write = self._prepare_write(bundle, ctx) if bundle is not None and ctx is not None else None
        return Prepared(raw, message_id(get_adapter(adapter_name), raw), bundle, issues, write, ctx)

    def refuse(self, adapter_name: str, raw: bytes, issues: list[Issue]) -> Prepared:
        """A message refused before conversion (a sender that may not send it): it is journalled
        as rejected with these issues, and answered like any rejected message."""
        return Prepared(raw, message_id(get_adapter(adapter_name), raw), None, issues, refused=True)

    def _prepare_write(self, bundle: dict[str, Any], ctx: RequestContext) -> PreparedWrite[bytes]:
        return self.service.writes.prepare(self._bundle_work(bundle, ctx))

    def _bundle_work(self, bundle: dict[str, Any], ctx: RequestContext) -> Callable[[StoreTransaction], bytes]:
        service = self.service
        return lambda tx: service.process_bundle(bundle, ctx, tx=tx)

    def ingest_many(
        self, adapter_name: str, raws: list[bytes], *, channel: str, ctx: RequestContext, reply: ReplyBuilder
    ) -> list[IngestResult]:
        """:meth:`ingest` for messages that arrived together, made durable by one commit."""
        prepared = [self.prepare(adapter_name, raw, ctx) for raw in raws]
        return self.store_group(adapter_name, prepared, channel=channel, ctx=ctx, reply=reply)

    def store_group(
        self,
        adapter_name: str,
        prepared: list[Prepared],
        *,
        channel: str,
        ctx: RequestContext,
        reply: ReplyBuilder,
    ) -> list[IngestResult]:
        """Store converted messages with one commit (group commit).

        Each message still gets its own outcome, because each runs inside a savepoint that a
        rejection rolls back, and the journal row of every message, accepted or rejected, is
        in the commit that precedes its ACK. A message that fails for a reason that is no
        :class:`FhirError` (a bug, not bad input) is rolled back to its savepoint and run again
        alone after the group, where it fails exactly as :meth:`ingest` would.
        """
        results: list[IngestResult | None] = [None] * len(prepared)
        committed = False
        alone: list[int] = []
        with self.service.store.transaction() as tx:
            for n, (raw, control_id, bundle, issues, write, own_ctx, _) in enumerate(prepared):
                previous = tx.journal_find(adapter_name, control_id)
                if previous is not None and previous.status == ACCEPTED:
                    self._audit_resend(tx, own_ctx or ctx, adapter_name, control_id)
                    results[n] = self._duplicate(previous, raw, channel, reply)
                    continue
                fields = MessageFields(
                    adapter=adapter_name, channel=channel, control_id=control_id, raw=raw, previous=previous
                )
                try:
                    results[n] = self._write(tx, bundle, issues, fields, own_ctx or ctx, reply, write)
                except Exception:  # incl. DuplicateMessage: another process saved it first (PostgreSQL)
                    alone.append(n)  # its savepoint was rolled back
                else:
                    committed = True
        if committed:
            self.service.after_commit(ctx)
        for n in alone:
            try:
                again = prepared[n]
                if again.refused:  # its journal row failed (a copy saved first): answer, never run it
                    refusal = IngestResult(REJECTED, again.issues)
                    refusal.reply = reply(again.raw, refusal)
                    results[n] = refusal
                    continue
                results[n] = self.ingest(adapter_name, again.raw, channel=channel, ctx=again.ctx or ctx, reply=reply)
            except Exception:  # not journalled, so no reply: the sender sends it again
                log.exception("%s message %s could not be processed", adapter_name, prepared[n].control_id)
                results[n] = IngestResult(REJECTED, [issue("YL-0207", reason="internal error")])
        return [r for r in results if r is not None]

    def _write(
        self,
        tx: StoreTransaction,
        bundle: dict[str, Any] | None,
        issues: list[Issue],
        fields: MessageFields,
        ctx: RequestContext,
        reply: ReplyBuilder | None,
        write: PreparedWrite[bytes] | None = None,
    ) -> IngestResult:
        """Store one converted message and journal it with its outcome, inside a savepoint of
        ``tx``: a rejected Bundle is rolled back to it and the message itself is kept; any
        other exception undoes the whole message, journal row included, and propagates."""
        raw = fields["raw"]
        result = IngestResult(REJECTED, issues)
        with tx.savepoint() as savepoint, self.audit.message_scope() if self.audit else nullcontext():
            if bundle is not None:
                if write is None:  # not prepared beforehand: it runs inside the transaction
                    write = PreparedWrite(self._bundle_work(bundle, ctx))
                try:
                    result.response = self.service.writes.apply(write, tx)
                except FhirError as exc:
                    savepoint.rollback()
                    result = IngestResult(REJECTED, bound_findings([*issues, *exc.issues], self.per_code))
                else:
                    result.status = ACCEPTED
            if reply is not None:
                result.reply = reply(raw, result)
            else:
                result.reply = result.response if result.status == ACCEPTED else result.outcome()
            result.seq = tx.journal_save(status=result.status, outcome=result.outcome(), reply=result.reply, **fields)
            if self.audit is not None:
                self.audit.message(tx, ctx, fields["adapter"], fields["control_id"], result.status == ACCEPTED)
        return result

    def replay(self, entry: JournalEntry, ctx: RequestContext, reply: ReplyBuilder | None = None) -> IngestResult:
        """Re-run a journalled message; the stored reply is built for the channel it came in on
        (``yaolian replay`` of an MLLP message stores an ACK, which a resend then gets)."""
        return self._process(
            entry.adapter, entry.channel, entry.control_id, entry.raw, ctx, reply or reply_for(entry.channel), entry
        )

    def _duplicate(self, entry: JournalEntry, raw: bytes, channel: str, reply: ReplyBuilder | None) -> IngestResult:
        stored = entry.reply
        if entry.channel != channel:
            # First seen on another channel (HTTP, then a resend over MLLP): answer in this
            # channel's terms, never with the other channel's reply (a Bundle is no ACK).
            builder = reply or reply_for(channel)
            stored = builder(raw, IngestResult(ACCEPTED, [], seq=entry.seq)) if builder else entry.outcome
        return IngestResult(ACCEPTED, [], None, duplicate=True, reply=stored, seq=entry.seq)

    def _process(
        self,
        adapter_name: str,
        channel: str,
        control_id: str | None,
        raw: bytes,
        ctx: RequestContext,
        reply: ReplyBuilder | None,
        previous: JournalEntry | None,
    ) -> IngestResult:
        """Convert, store and journal; exactly one commit makes message, outcome and resources durable."""
        bundle, issues = _convert_safely(adapter_name, raw, self.per_code)
        write = self._prepare_write(bundle, ctx) if bundle is not None else None
        fields = MessageFields(adapter=adapter_name, channel=channel, control_id=control_id, raw=raw, previous=previous)
        try:
            with self.service.store.transaction() as tx:
                result = self._write(tx, bundle, issues, fields, ctx, reply, write)
        except DuplicateMessage:
            result = IngestResult(REJECTED, issues)
            result.duplicate_of = self.journal.find(adapter_name, control_id)
            return result
        if result.status == ACCEPTED:
            self.service.after_commit(ctx)
        return result
