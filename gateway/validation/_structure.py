"""Base structure of a resource through the fhir.resources R5 models.

Well-formed input is recognised by :mod:`._fastpath` without building the model tree; anything
else goes through ``model_validate``, whose errors are the findings, and through a walk for the
base invariant ele-1 (every element has a value or children other than ``id``), which the models
do not check: ``{}`` or ``{"id": "x"}`` as an element is accepted by them. The fast path never
accepts such an object, so well-formed writes pay nothing for ele-1.

Pydantic error locations are turned into FHIRPath: ``('dosageInstruction', 0, 'timing')`` on a
MedicationRequest becomes ``MedicationRequest.dosageInstruction[0].timing``.
"""

from __future__ import annotations

import functools
from typing import Any

from fhir.resources import get_fhir_model_class
from pydantic import ValidationError

from gateway.errors import Issue
from gateway.validation._fastpath import certainly_valid
from gateway.validation._issues import issue

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


def check_structure(resource: dict[str, Any]) -> list[Issue]:
    resource_type = resource["resourceType"]
    cls = model_class(resource_type)
    if cls is None:
        return [issue("YL-3004", resource_type, detail=f"unknown resourceType {resource_type}")]
    if certainly_valid(cls, resource):
        return []
    out = _model_findings(cls, resource)
    _empty_elements(resource, resource_type, out)
    return out


def _empty_elements(node: dict[str, Any], expr: str, out: list[Issue]) -> None:
    """ele-1 for every element object under ``node`` (resources, which carry ``resourceType``,
    are exempt). ``_name`` objects (a primitive's id and extensions) belong to the element
    ``name``, which also has the primitive's value when that is present."""
    for key, child in node.items():
        if key.startswith("_"):
            name, values = key[1:], node.get(key[1:])
        else:
            name, values = key, None
        if isinstance(child, dict):
            _element(child, f"{expr}.{name}", values is not None, out)
        elif isinstance(child, list):
            for i, item in enumerate(child):
                if isinstance(item, dict):
                    has_value = isinstance(values, list) and i < len(values) and values[i] is not None
                    _element(item, f"{expr}.{name}[{i}]", has_value, out)


def _element(node: dict[str, Any], expr: str, has_value: bool, out: list[Issue]) -> None:
    if not has_value and "resourceType" not in node and all(key == "id" for key in node):
        out.append(issue("YL-3060", expr, key="ele-1", human=_ELE_1))
    _empty_elements(node, expr, out)


_ELE_1 = "All FHIR elements must have a @value or children"


def _model_findings(cls: Any, resource: dict[str, Any]) -> list[Issue]:
    resource_type = resource["resourceType"]
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
            found.code = kind
            out.append(found)
        return out
    return []
