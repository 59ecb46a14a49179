"""What the R5 models (fhir.resources) say about a FHIR element path: exists? list? type?

Used once, when a mapping file loads, so that a typo in a target path fails at start-up with
the file and line of the rule instead of deep inside a conversion.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir.resources import get_fhir_model_class

__all__ = ["ElementInfo", "element_info", "model_class", "required_elements"]

_STRINGISH = {
    "String",
    "Markdown",
    "Id",
    "Uri",
    "Url",
    "Canonical",
    "Oid",
    "Uuid",
    "Base64Binary",
    "Xhtml",
}
_KIND = {
    **dict.fromkeys(_STRINGISH, "string"),
    "Code": "code",
    "DateTime": "dateTime",
    "Instant": "dateTime",
    "Date": "date",
    "Time": "time",
    "Decimal": "decimal",
    "Integer": "integer",
    "Integer64": "integer",
    "PositiveInt": "integer",
    "UnsignedInt": "integer",
    "Boolean": "boolean",
}


@dataclass(frozen=True, slots=True)
class ElementInfo:
    name: str
    is_list: bool
    kind: str  # string|code|dateTime|date|time|decimal|integer|boolean|complex
    model: Any  # the pydantic model class for complex elements, else None
    enum: tuple[str, ...] = ()
    required: bool = False


@cache
def model_class(type_name: str) -> Any:
    return get_fhir_model_class(type_name)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - both spellings occur
            is_list = True
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, is_list


@cache
def _aliases(model: Any) -> dict[str, str]:
    """JSON name -> Python field name (``class`` -> ``class_fhir``)."""
    return {
        info.alias: name
        for name, info in model.model_fields.items()
        if info.alias and info.alias != name and not info.alias.startswith("_")
    }


def _mandatory(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return type(None) not in typing.get_args(annotation)
    return True


@cache
def element_info(model: Any, name: str) -> ElementInfo:
    """Describe ``model.name``; raise KeyError with a suggestion when it does not exist."""
    fields = model.model_fields
    name = _aliases(model).get(name, name)
    if name not in fields or name in ("resource_type", "fhir_comments") or "__ext" in name:
        close = difflib.get_close_matches(name, [f for f in fields if f[0].isalpha()], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"{model.__name__} has no element {name!r}{hint}")
    info = fields[name]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    annotation, is_list = _unwrap(info.annotation)
    enum = tuple(extra.get("enum_values") or ())
    required = bool(extra.get("element_required")) or _mandatory(info.annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        meta = typing.get_args(annotation)[1:]
        kind = _KIND.get(type(meta[0]).__name__, "string") if meta else "string"
        return ElementInfo(name, is_list, kind, None, enum, required)
    if hasattr(annotation, "get_model_klass"):
        return ElementInfo(name, is_list, "complex", annotation.get_model_klass(), enum, required)
    if annotation is str:
        return ElementInfo(name, is_list, "string", None, enum, required)
    if annotation is bool:
        return ElementInfo(name, is_list, "boolean", None, enum, required)
    return ElementInfo(name, is_list, "complex", annotation, enum, required)


@cache
def required_elements(model: Any) -> tuple[str, ...]:
    return tuple(
        name
        for name in model.model_fields
        if name not in ("resource_type", "fhir_comments") and "__ext" not in name and element_info(model, name).required
    )
