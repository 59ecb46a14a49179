"""Raw HIS message -> adapter -> transaction Bundle -> store, journalled before it is answered.

Used by the MLLP listener, ``POST /fhir/$ingest`` and ``yaolian replay`` alike, so all three
keep the same promises: durable before acknowledged, idempotent on the message id, and
rejected input kept for replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import FhirError, Issue, NotFound, issue, operation_outcome
from gateway.hooks import RequestContext
from gateway.ingest.journal import ACCEPTED, REJECTED, DuplicateMessage, Journal, JournalEntry, MessageFields
from gateway.service.fhir_service import FhirService
from gateway.store.sql import SqlTransaction


def adapter_issue(found: Any) -> Issue:
    """An adapter-side issue (source location such as ``RXE-2.1``) as a gateway issue."""
    location = getattr(found, "location", "") or ""
    return Issue(
        severity=found.severity,
        code=found.code,
        en=found.message + (f" (at {location})" if location else ""),
        zh=(found.message_zh or found.message) + (f"（位置 {location}）" if location else ""),
        expression=(location,) if location else (),
        error_code=getattr(found, "yl_code", None),
    )


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


ReplyBuilder = Callable[[bytes, IngestResult], bytes]


def reply_for(channel: str) -> ReplyBuilder | None:
    """The reply builder of a channel (None: the raw transaction-response / OperationOutcome)."""
    if channel == "mllp":
        from gateway.ingest.mllp import hl7_reply

        return hl7_reply
    return None


def get_adapter(name: str) -> Any:
    try:
        from adapters import registry
    except ImportError:  # pragma: no cover - adapters ship with the gateway
        raise NotFound("YL-0204", op=f"$ingest?adapter={name}") from None
    try:
        return registry.get(name)
    except LookupError:
        raise NotFound("YL-0206", adapter=name, known=", ".join(registry.names())) from None


def message_id(adapter: Any, raw: bytes) -> str:
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
        return None, [adapter_issue(i) for i in exc.issues]
    issues = [adapter_issue(i) for i in result.issues]
    return (result.bundle if result.ok else None), issues


class IngestPipeline:
    def __init__(self, service: FhirService, journal: Journal) -> None:
        self.service = service
        self.journal = journal

    def ingest(
        self, adapter_name: str, raw: bytes, *, channel: str, ctx: RequestContext, reply: ReplyBuilder | None = None
    ) -> IngestResult:
        adapter = get_adapter(adapter_name)
        control_id = message_id(adapter, raw)
        previous = self.journal.find(adapter_name, control_id)
        if previous is not None and previous.status == ACCEPTED:
            return self._duplicate(previous, raw, channel, reply)
        result = self._process(adapter_name, channel, control_id, raw, ctx, reply, previous)
        if result.duplicate_of is not None:
            return self._duplicate(result.duplicate_of, raw, channel, reply)
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
        try:
            bundle, issues = convert(adapter_name, raw)
        except Exception as exc:  # a crashing mapping must not lose the message
            bundle, issues = None, [issue("YL-0207", reason=f"{type(exc).__name__}: {exc}")]
        result = IngestResult(REJECTED, issues)
        fields: MessageFields = {
            "adapter": adapter_name,
            "channel": channel,
            "control_id": control_id,
            "raw": raw,
            "previous": previous,
        }
        if bundle is not None:
            try:
                with self.service.store.transaction() as tx:
                    if not isinstance(tx, SqlTransaction):  # the journal lives in the same SQL database
                        raise TypeError(f"the ingest journal needs an SQL store, not {type(tx).__name__}")
                    result.response = self.service.process_bundle(orjson.dumps(bundle), ctx, tx=tx)
                    result.status = ACCEPTED
                    result.reply = reply(raw, result) if reply else result.response
                    result.seq = self.journal.save(
                        tx.conn, status=ACCEPTED, outcome=result.outcome(), reply=result.reply, **fields
                    )
            except FhirError as exc:
                result = IngestResult(REJECTED, [*issues, *exc.issues])
            except DuplicateMessage:
                result.duplicate_of = self.journal.find(adapter_name, control_id)
                return result
            else:
                self.service.after_commit(ctx)
                return result
        result.reply = reply(raw, result) if reply else result.outcome()
        try:
            result.seq = self.journal.save_alone(
                status=REJECTED, outcome=result.outcome(), reply=result.reply, **fields
            )
        except DuplicateMessage:
            result.duplicate_of = self.journal.find(adapter_name, control_id)
        return result
