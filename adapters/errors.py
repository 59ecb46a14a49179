"""Adapter-side errors and issue codes.

Every failure an adapter can report carries a stable code ``YL-2xxx`` that ends up in
``OperationOutcome.issue.details`` (HTTP), in ``ERR-5`` (MLLP ACK) or on the CLI. The
hierarchy is small on purpose; callers catch ``AdapterError`` at a boundary and turn it into
an OperationOutcome in exactly one place::

    AdapterError                      YL-2000  any adapter-side failure
    ├── AdapterLookupError            YL-2001  no adapter registered under that name
    ├── DuplicateAdapterError         YL-2002  two adapters claim the same name
    ├── MappingError                  YL-2010  a mapping file or ConceptMap is unusable
    │   ├── MappingSyntaxError        YL-2011  YAML/JSON does not parse, or unknown rule keys
    │   ├── MappingTargetError        YL-2012  a rule targets a FHIR element that does not exist
    │   │                                      or whose type does not fit
    │   ├── MappingCoverageError      YL-2013  a required FHIR element has no rule
    │   └── ConceptMapError           YL-2014  a ConceptMap file is not a valid R5 ConceptMap
    ├── ConversionError               YL-2100  raw input could not be turned into FHIR;
    │   │                                      carries the list of issues
    │   ├── DecodeError               YL-2101  bytes do not decode in the declared charset
    │   ├── StructureError            YL-2102  the wire format is broken (no MSH, bad delimiters)
    │   └── UnsupportedMessageError   YL-2103  message type/version this adapter does not read
    ├── WriteBackError                YL-2200  FHIR could not be rendered in the source format
    │   └── NotWritableError          YL-2201  this adapter is read-only
    └── SourceQueryError              YL-2400  a queryable source (a database view) could not be
                                               asked: unreachable, refused, or too slow

Issue codes that are not exceptions (they ride in ``ConversionResult.issues``) are listed in
``ISSUE_CODES``; a test checks that no code is used twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.issues import Issue

__all__ = [
    "ISSUE_CODES",
    "AdapterError",
    "AdapterLookupError",
    "ConceptMapError",
    "ConversionError",
    "DecodeError",
    "DuplicateAdapterError",
    "MappingCoverageError",
    "MappingError",
    "MappingSyntaxError",
    "MappingTargetError",
    "NotWritableError",
    "SourceQueryError",
    "StructureError",
    "UnsupportedMessageError",
    "WriteBackError",
]

# Codes carried by issues (not raised on their own). Keep in sync with docs/adapters.md.
ISSUE_CODES: dict[str, str] = {
    "YL-2301": "input element not read by any mapping rule",
    "YL-2302": "code has no translation in the ConceptMap",
    "YL-2303": "required input element missing",
    "YL-2304": "value has the wrong format (date, number)",
    "YL-2305": "character set not declared or unknown; decoded by fallback",
    "YL-2306": "unknown HL7 escape sequence kept as text",
    "YL-2307": "reference to a resource the message does not produce",
    "YL-2308": "identifier check failed (e.g. resident ID card check digit)",
    "YL-2309": "a row of a database view could not be mapped and was left out",
}


class AdapterError(Exception):
    """Base of every adapter-side failure."""

    code = "YL-2000"

    def __init__(self, message: str, *, message_zh: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh or message

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


class AdapterLookupError(AdapterError, LookupError):
    code = "YL-2001"


class DuplicateAdapterError(AdapterError):
    code = "YL-2002"


class MappingError(AdapterError):
    """A mapping file is unusable; ``file`` and ``line`` point at the offending rule."""

    code = "YL-2010"

    def __init__(self, message: str, *, file: str = "", line: int | None = None) -> None:
        where = f"{file}:{line}: " if line else (f"{file}: " if file else "")
        super().__init__(where + message)
        self.file = file
        self.line = line


class MappingSyntaxError(MappingError):
    code = "YL-2011"


class MappingTargetError(MappingError):
    code = "YL-2012"


class MappingCoverageError(MappingError):
    code = "YL-2013"


class ConceptMapError(MappingError):
    code = "YL-2014"


class ConversionError(AdapterError):
    """Input could not be converted; ``issues`` says where and why (never empty)."""

    code = "YL-2100"

    def __init__(self, message: str, issues: Sequence[Issue] = (), **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        self.issues: list[Issue] = list(issues)
        if not self.issues:
            self.issues.append(
                Issue(severity="error", code="processing", en=message, zh=self.message_zh, error_code=self.code)
            )


class DecodeError(ConversionError):
    code = "YL-2101"


class StructureError(ConversionError):
    code = "YL-2102"


class UnsupportedMessageError(ConversionError):
    code = "YL-2103"


class WriteBackError(AdapterError):
    code = "YL-2200"


class NotWritableError(WriteBackError):
    code = "YL-2201"


class SourceQueryError(AdapterError):
    """A queryable source could not be asked. The message says what went wrong in general
    terms (the driver's exception type, a timeout) and never the connection string: the
    gateway shows it to callers as the member's failure. ``timed_out``: the source's own
    statement timeout stopped the query (the gateway reports it as a late member)."""

    code = "YL-2400"

    def __init__(self, message: str, *, timed_out: bool = False, message_zh: str | None = None) -> None:
        super().__init__(message, message_zh=message_zh)
        self.timed_out = timed_out
