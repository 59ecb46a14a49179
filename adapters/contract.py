"""The adapter contract: what every format adapter offers the gateway.

An adapter turns raw bytes from a member's HIS into a FHIR R5 *transaction* Bundle (a plain
JSON dict) and, where the format allows writes, renders FHIR back into the wire format. It
knows nothing of storage: the Bundle's entries carry deterministic ids (uuid5 of the source
identifier) and conditional ``request`` entries so that storing a resent message creates
nothing new.

Writing an adapter::

    class MyAdapter:
        descriptor = AdapterDescriptor(name="my-his", version="1.0",
                                       media_types=("application/json",),
                                       description="…")

        def to_fhir(self, raw: bytes) -> ConversionResult: ...
        def from_fhir(self, resource: dict) -> bytes: ...   # raise NotWritableError if read-only

and register it under the entry-point group ``yaolian.adapters``.

Findings are :class:`adapters.issues.Issue` values (the one issue type of Yaolian, re-exported
here): ``Issue(severity, code, en, zh, expression=("RXE-2.1",), error_code="YL-2302")`` where
``expression`` names the place in the *source* (``RXE-2.1``, ``PID[1]-3[2]``, a CSV column, an
XPath) and ``error_code`` is the stable Yaolian code (``YL-2xxx``). ``operation_outcome(issues)``
gives the OperationOutcome (Chinese in ``details.text``, English in ``diagnostics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from adapters.issues import Issue, Severity, operation_outcome

__all__ = [
    "Adapter",
    "AdapterDescriptor",
    "ConversionResult",
    "Issue",
    "Severity",
    "operation_outcome",
]


@dataclass(slots=True)
class ConversionResult:
    """A transaction Bundle plus what the conversion noticed (warnings, unused input)."""

    bundle: dict[str, Any]
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(i.severity in ("fatal", "error") for i in self.issues)


@dataclass(frozen=True, slots=True)
class AdapterDescriptor:
    name: str
    version: str
    media_types: tuple[str, ...]
    description: str = ""
    bidirectional: bool = False
    message_types: tuple[str, ...] = ()


@runtime_checkable
class Adapter(Protocol):
    """Raw HIS format <-> FHIR R5. ``from_fhir`` raises ``NotWritableError`` when read-only."""

    descriptor: AdapterDescriptor

    def to_fhir(self, raw: bytes) -> ConversionResult: ...

    def from_fhir(self, resource: dict[str, Any]) -> bytes: ...
