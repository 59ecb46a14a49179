"""Base structure of a resource through the fhir.resources R5 models: the one structure check.

:func:`structure_issues` serves every caller - the write path in every validation mode
(``gateway.validation.structure_issues``), ``$validate`` and :func:`gateway.validation.validate`
- so a resource gets the same findings wherever it is judged. The models are used only to judge
the input; their serialisation is never stored (it is lossy).

Well-formed input is recognised by :mod:`._fastpath` without building the model tree; anything
else goes through ``model_validate``, whose errors are the findings, and through a walk for the
base invariant ele-1 (every element has a value or children other than ``id``), which the models
do not check: ``{}`` or ``{"id": "x"}`` as an element is accepted by them. The fast path never
accepts such an object, so well-formed writes pay nothing for ele-1.

Pydantic error locations are turned into FHIRPath by :func:`loc_to_fhirpath`, the one location
function: ``('dosageInstruction', 0, 'timing')`` on a MedicationRequest becomes
``MedicationRequest.dosageInstruction[0].timing``. Every finding of the models is ``YL-3001``
(issue type ``required``, ``structure`` for an element R5 does not have, ``value`` otherwise),
with a Chinese reading of the pydantic error type; an unknown type is ``YL-3004``; ele-1 is
``YL-3060``.
"""

from __future__ import annotations

import functools
from typing import Any

from fhir.resources import get_fhir_model_class
from pydantic import ValidationError

from gateway.errors import Issue
from gateway.validation._base import base_issues
from gateway.validation._fastpath import certainly_valid
from gateway.validation._issues import issue

__all__ = ["loc_to_fhirpath", "model_class", "structure_issues"]


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


def structure_issues(resource: dict[str, Any]) -> list[Issue]:
    """Findings of the base R5 structure for ``resource``; empty when it is valid. Never raises."""
    resource_type = resource.get("resourceType")
    cls = model_class(resource_type) if isinstance(resource_type, str) else None
    if cls is None or not isinstance(resource_type, str):
        return [issue("YL-3004", str(resource_type or ""), detail=f"unknown resourceType {resource_type}")]
    base = base_issues(resource, resource_type)
    if certainly_valid(cls, resource):
        return base
    out = _model_findings(cls, resource, resource_type)
    if base:  # one finding per bad value: the base rule's, which names the R5 grammar
        named = {i.expression for i in base if i.error_code in _BASE_VALUE_CODES}
        out = [i for i in out if not (i.code == "value" and i.expression in named)]
    _empty_elements(resource, resource_type, out)
    out.extend(base)
    return out


_BASE_VALUE_CODES = frozenset({"YL-3070", "YL-3071", "YL-3073"})


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


_MESSAGES_ZH = {
    "missing": "缺少必填元素",
    "extra_forbidden": "不允许的元素（R5 中没有此元素）",
    "string_type": "应为字符串",
    "int_parsing": "应为整数",
    "bool_parsing": "应为布尔值",
    "list_type": "应为数组",
    "dict_type": "应为对象",
    "value_error": "取值无效",
}


def _model_findings(cls: Any, resource: dict[str, Any], resource_type: str) -> list[Issue]:
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
            kind = err["type"]
            found = issue("YL-3001", expr, detail=detail, detail_zh=_MESSAGES_ZH.get(kind) or f"取值无效（{detail}）")
            found.code = "required" if kind == "missing" else "structure" if kind == "extra_forbidden" else "value"
            out.append(found)
        return out
    except (TypeError, ValueError, KeyError) as exc:  # fhir.resources raises KeyError for unknown contained types
        return [issue("YL-3001", resource_type, detail=str(exc), detail_zh=str(exc))]
    return []
