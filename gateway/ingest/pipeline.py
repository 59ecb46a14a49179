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
from gateway.ingest.journal import ACCEPTED, REJECTED, Journal, JournalEntry
from gateway.service.fhir_service import FhirService


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
        entry, new = self.journal.record(adapter_name, channel, message_id(adapter, raw), raw)
        if not new and entry.status == ACCEPTED:
            stored = entry.reply
            if entry.channel != channel:
                # First seen on another channel (HTTP, then a resend over MLLP): answer in this
                # channel's terms, never with the other channel's reply (a Bundle is no ACK).
                builder = reply or reply_for(channel)
                stored = builder(raw, IngestResult(ACCEPTED, [], seq=entry.seq)) if builder else entry.outcome
            return IngestResult(ACCEPTED, [], None, duplicate=True, reply=stored, seq=entry.seq)
        return self._process(entry, raw, ctx, reply, retry=not new)

    def replay(self, entry: JournalEntry, ctx: RequestContext, reply: ReplyBuilder | None = None) -> IngestResult:
        """Re-run a journalled message; the stored reply is built for the channel it came in on
        (``yaolian replay`` of an MLLP message stores an ACK, which a resend then gets)."""
        return self._process(entry, entry.raw, ctx, reply or reply_for(entry.channel), retry=True)

    def _process(
        self, entry: JournalEntry, raw: bytes, ctx: RequestContext, reply: ReplyBuilder | None, *, retry: bool
    ) -> IngestResult:
        try:
            bundle, issues = convert(entry.adapter, raw)
        except Exception as exc:  # a crashing mapping must not lose the message
            bundle, issues = None, [issue("YL-0207", reason=f"{type(exc).__name__}: {exc}")]
        result = IngestResult(REJECTED, issues, seq=entry.seq)
        if bundle is not None:
            try:
                result.response = self.service.process_bundle(orjson.dumps(bundle), ctx)
                result.status = ACCEPTED
            except FhirError as exc:
                result.issues = [*issues, *exc.issues]
        result.reply = (
            reply(raw, result) if reply else (result.response if result.status == ACCEPTED else result.outcome())
        )
        self.journal.finish(entry.seq, result.status, result.outcome(), result.reply, retry=retry)
        return result
