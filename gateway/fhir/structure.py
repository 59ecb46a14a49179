"""The FHIR JSON form of a resource, which the R5 models do not check (:func:`json_form_issues`).

The base structure itself (the R5 models, ele-1) has one check, in
:mod:`gateway.validation._structure` (``gateway.validation.structure_issues``).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import Issue, issue
from gateway.fhir import definitions
from gateway.fhir.xml_format import FhirFormatError, parse_narrative

__all__ = ["json_form_issues"]


_JSON_KINDS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "xhtml": (str,),
    "boolean": (bool,),
    "number": (int, float),
}
_KIND_NAMES = {
    "string": ("a JSON string", "JSON 字符串"),
    "xhtml": ("a JSON string", "JSON 字符串"),
    "boolean": ("true or false", "true 或 false"),
    "number": ("a JSON number", "JSON 数值"),
    "integer": ("a JSON integer", "JSON 整数"),
    "null": ("a value, not null", "具体的值而不是 null"),
    "object": ("a JSON object", "JSON 对象"),
}


def json_form_issues(data: dict[str, Any]) -> list[Issue]:
    """What FHIR JSON requires beyond the models: primitives of the right JSON kind, no
    ``null`` except to align a primitive array with its ``_`` extensions, contained resources
    of a known type, and narrative that is an XHTML ``div``.

    The fhir.resources models coerce (``"active": "yes"`` passes as ``True``, ``"3"`` as the
    integer 3), accept ``null`` and any narrative string, while the gateway stores the
    client's own text, so without this check a resource could be stored that is not FHIR
    JSON and cannot be rendered as XML.
    """
    found: list[Issue] = []
    resource_type = data.get("resourceType")
    if isinstance(resource_type, str):
        _check_object(data, resource_type, resource_type, found)
    return found


def _null_allowed(node: dict[str, Any], key: str, value: Any, index: int | None) -> bool:
    """``"given": ["Li", null], "_given": [null, {...}]``: a null pairs with a value opposite."""
    partner = node.get(key[1:] if key.startswith("_") else "_" + key)
    return (
        index is not None
        and isinstance(value, list)
        and isinstance(partner, list)
        and index < len(partner)
        and partner[index] is not None
    )


def _where(path: Any) -> str:
    """A path is rendered only when an issue names it: the walk passes (parent, key, index or
    None) tuples down from the root's name, so the clean case builds no strings."""
    if isinstance(path, str):
        return path
    parent, key, index = path
    return f"{_where(parent)}.{key}" + (f"[{index}]" if index is not None else "")


def _check_object(node: dict[str, Any], context: str, path: Any, found: list[Issue]) -> None:
    elements = definitions.elements(context)
    for key, value in node.items():
        if key == "resourceType":
            continue
        extra = key[:1] == "_"
        info = elements.get(key[1:] if extra else key)
        if info is None:  # unknown elements are the models' to report
            continue
        kind = info.json_kind
        listed = isinstance(value, list)
        for index, item in enumerate(value) if listed else ((None, value),):
            # The most common case, checked inline: a string where a string belongs.
            if kind == "string" and not extra and isinstance(item, str):
                continue
            child = (path, key, index)
            if item is None:
                if not _null_allowed(node, key, value, index):
                    found.append(_issue_kind(info, _where(child), "null"))
            elif extra or kind == "object":
                if not isinstance(item, dict):
                    found.append(_issue_kind(info, _where(child), "object"))
                elif extra or info.children:
                    _check_object(item, info.type if extra else str(info.children), child, found)
            elif kind == "resource":
                _check_resource(item, child, found)
            else:
                _check_primitive(info, item, child, found)


def _check_resource(item: Any, path: Any, found: list[Issue]) -> None:
    found_type = item.get("resourceType") if isinstance(item, dict) else None
    if found_type not in definitions.resource_types():
        where = _where(path)
        found.append(issue("YL-0112", element=where, found=found_type, expression=[where]))
        return
    _check_object(item, found_type, path, found)


def _issue_kind(info: definitions.ElementInfo, where: str, kind: str) -> Issue:
    en, zh = _KIND_NAMES[kind]
    return issue("YL-0108", element=where, type=info.type, expected=en, expected_zh=zh, expression=[where])


def _check_primitive(info: definitions.ElementInfo, value: Any, path: Any, found: list[Issue]) -> None:
    kind = info.json_kind
    ok = isinstance(value, _JSON_KINDS[kind]) and not (kind == "number" and isinstance(value, bool))
    if ok and kind == "number" and info.type != "decimal" and isinstance(value, float):
        ok = False
    if not ok:
        found.append(_issue_kind(info, _where(path), kind if kind != "number" or info.type == "decimal" else "integer"))
    elif kind == "xhtml":
        where = _where(path)
        try:
            parse_narrative(value, where)
        except FhirFormatError as exc:
            found.append(issue("YL-0109", element=where, reason=str(exc), expression=[where]))
