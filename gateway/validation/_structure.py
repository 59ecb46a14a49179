"""Base structure of a resource through the fhir.resources R5 models.

Well-formed input is recognised by :mod:`._fastpath` without building the model tree; anything
else goes through ``model_validate``, whose errors are the findings.

Pydantic error locations are turned into FHIRPath: ``('dosageInstruction', 0, 'timing')`` on a
MedicationRequest becomes ``MedicationRequest.dosageInstruction[0].timing``.
"""

from __future__ import annotations

import functools
from typing import Any

from fhir.resources import get_fhir_model_class
from pydantic import ValidationError

from gateway.validation._fastpath import certainly_valid
from gateway.validation._issues import ValidationIssue, issue

__all__ = ["check_structure", "loc_to_fhirpath", "model_class"]


@functools.cache
def model_class(resource_type: str) -> Any:
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None


def loc_to_fhirpath(resource_type: str, loc: tuple[int | str, ...]) -> str:
    parts = [resource_type]
    for step in loc:
        if isinstance(step, int):
            parts[-1] += f"[{step}]"
        elif step.isidentifier() and step not in ("root", "__root__"):
            parts.append(step)
        # pydantic's own tokens (function-after[...], union tags) are not elements
    return ".".join(parts)


def check_structure(resource: dict[str, Any]) -> list[ValidationIssue]:
    resource_type = resource["resourceType"]
    cls = model_class(resource_type)
    if cls is None:
        return [issue("YL-3004", resource_type, detail=f"unknown resourceType {resource_type}")]
    if certainly_valid(cls, resource):
        return []
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        out = []
        seen = set()
        for err in exc.errors():
            expr = loc_to_fhirpath(resource_type, err["loc"])
            detail = err["msg"]
            if (expr, detail) in seen:
                continue
            seen.add((expr, detail))
            kind = "required" if err["type"] == "missing" else "structure"
            found = issue("YL-3001", expr, detail=detail)
            out.append(
                ValidationIssue(found.severity, kind, expr, found.message_en, found.message_zh, found.error_code)
            )
        return out
    return []
