"""The one ``Issue`` and the one OperationOutcome builder of Yaolian.

Every finding - an adapter's note about its input, a validation result, a REST error - is an
:class:`Issue`, and every boundary (HTTP, MLLP ACK, CLI) turns issues into an OperationOutcome
with :func:`operation_outcome`, so the fields are placed the same way everywhere:

=====================  =====================================================================
``severity``           ``issue.severity`` (fatal | error | warning | information)
``code``               ``issue.code`` (FHIR issue type: structure, required, value, ...)
``error_code``         ``issue.details.coding`` (system :data:`ERROR_CODE_SYSTEM`): the stable
                       Yaolian code, ``YL-0xxx`` REST core, ``YL-2xxx`` adapters, ``YL-3xxx``
                       validation
``zh``                 ``issue.details.text`` (Chinese)
``en``                 ``issue.diagnostics`` (English)
``expression``         ``issue.expression``: the FHIRPath of the element
                       (``MedicationRequest.dosageInstruction[0].timing``) or, for an adapter,
                       the place in the *source* (``RXE-2.1``, ``PID[1]-3[2]``, an XPath, a CSV
                       line)
=====================  =====================================================================

Why it lives in ``adapters``: the layer rule is that ``gateway`` may import ``adapters`` but
``adapters`` never imports ``gateway``. Adapters must hand findings to the gateway and build
their own OperationOutcome on the ``yaolian adapters`` CLI and in ``build_ack``; the gateway
needs the same type for everything else. The one place both can import is here.
``gateway.errors`` re-exports :class:`Issue`, :func:`operation_outcome` and
:data:`ERROR_CODE_SYSTEM`, and ``adapters.contract`` re-exports :class:`Issue` for adapter
authors. The module imports nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal

__all__ = ["ERROR_CODE_SYSTEM", "Issue", "Severity", "operation_outcome"]

ERROR_CODE_SYSTEM = "http://yaolian.org/fhir/CodeSystem/error-code"

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(slots=True)
class Issue:
    """One ``OperationOutcome.issue``: bilingual, with a stable code and where it is.

    ``Issue("error", "value", en="birth date is not a date", zh="出生日期无效",
    expression=("PID-7",), error_code="YL-2304")``. Everything after the FHIR ``severity`` and
    issue ``code`` is keyword-only, so an adapter written against the earlier contract
    (``Issue(severity, code, yl_code, message, message_zh, location)``) fails loudly instead of
    putting its code where the English text belongs. Mutable on purpose: a boundary may
    re-anchor ``expression`` (a transaction prefixes ``Bundle.entry[3].resource``) or raise
    ``severity`` (a profile asked for by name).
    """

    severity: str  # a Severity value
    code: str
    _: KW_ONLY
    en: str
    zh: str = ""
    expression: tuple[str, ...] = ()
    error_code: str | None = None

    @property
    def where(self) -> str:
        """The first expression (the place an MLLP ``ERR-2`` or a log line names); '' if none."""
        return self.expression[0] if self.expression else ""

    def to_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        details: dict[str, Any] = {}
        if self.error_code:
            details["coding"] = [{"system": ERROR_CODE_SYSTEM, "code": self.error_code}]
        if self.zh:
            details["text"] = self.zh
        if details:
            out["details"] = details
        out["diagnostics"] = self.en
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """The OperationOutcome of ``issues`` (none: one ``informational`` issue, "All OK")."""
    issue_list = [i.to_fhir() for i in issues]
    if not issue_list:
        issue_list = [{"severity": "information", "code": "informational", "diagnostics": "All OK"}]
    return {"resourceType": "OperationOutcome", "issue": issue_list}
