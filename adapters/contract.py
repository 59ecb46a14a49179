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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from adapters.issues import Issue, Severity, operation_outcome

__all__ = [
    "Adapter",
    "AdapterDescriptor",
    "ConversionResult",
    "Issue",
    "QueryResult",
    "QueryableAdapter",
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


@dataclass(slots=True)
class QueryResult:
    """What an adapter that can answer queries found: the records asked for (``matches``:
    plain R5 resources with ids, references between them as ``Type/id``), the resources they
    name (``included``: their Medications) and the rows it had to leave out (``issues``)."""

    matches: list[dict[str, Any]] = field(default_factory=list)
    included: list[dict[str, Any]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


@runtime_checkable
class QueryableAdapter(Adapter, Protocol):
    """An adapter a member's system can be *asked* through (a read-only database view, POL-08):
    besides converting one raw record, it looks records up where they live.

    ``source`` says where (a SQLAlchemy URL for :mod:`adapters.sqlview`), ``mapping`` which
    mapping file describes it. ``criterion`` ``patient``: the records of the patient whose
    identifier is ``identifier`` (``SYSTEM|VALUE``); ``prescription``: the records whose
    prescription number it is. At most ``most`` records, within ``timeout`` seconds where the
    source can enforce it. A record that does not map is an issue, never an exception; a source
    that cannot be asked raises :class:`adapters.errors.SourceQueryError`."""

    def query(
        self,
        source: str,
        mapping: str,
        *,
        identifier: str,
        types: Sequence[str],
        most: int,
        criterion: Literal["patient", "prescription"] = "patient",
        timeout: float | None = None,
    ) -> QueryResult: ...

    def check(self, source: str, mapping: str, *, timeout: float | None = None) -> None:
        """Raise :class:`adapters.errors.SourceQueryError` unless ``source`` answers (``SELECT 1``)."""
        ...
