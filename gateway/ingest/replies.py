"""How each channel answers a message: MLLP with an HL7 v2 ACK, HTTP with the FHIR response.

Its own module so the listener and the pipeline both use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.errors import Issue


class Outcome(Protocol):
    """What a reply says of a processed message (:class:`~gateway.ingest.pipeline.IngestResult`)."""

    @property
    def status(self) -> str: ...

    @property
    def issues(self) -> Sequence[Issue]: ...


ReplyBuilder = Callable[[bytes, Outcome], bytes]


def hl7_reply(raw: bytes, result: Outcome) -> bytes:
    """The ACK for a processed message: AA, or AE/AR with ERR segments naming the place."""
    from adapters.hl7v2 import build_ack

    return build_ack(raw, result.status == "accepted", result.issues)


def reply_for(channel: str) -> ReplyBuilder | None:
    """The reply builder of a channel (None: the raw transaction-response / OperationOutcome)."""
    return hl7_reply if channel == "mllp" else None
