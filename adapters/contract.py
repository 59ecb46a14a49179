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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "Adapter",
    "AdapterDescriptor",
    "ConversionResult",
    "Issue",
    "Severity",
    "issues_to_operation_outcome",
]

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding about the input, shaped like an ``OperationOutcome.issue``.

    ``location`` names the place in the *source*: ``RXE-2.1``, ``PID[1]-3[2]``, a CSV column,
    an XPath. ``yl_code`` is the stable Yaolian code (``YL-2xxx``).
    """

    severity: Severity
    code: str
    yl_code: str
    message: str
    message_zh: str = ""
    location: str = ""

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "details": {
                "coding": [{"system": "http://yaolian.org/fhir/CodeSystem/error-code", "code": self.yl_code}],
                "text": self.message,
            },
            "diagnostics": self.message_zh or self.message,
        }
        if self.location:
            issue["location"] = [self.location]
        return issue


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


def issues_to_operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """The OperationOutcome shape of a list of issues (an empty list yields one 'informational')."""
    if not issues:
        return {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "ok"}],
        }
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}
