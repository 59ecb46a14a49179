"""A fast structural pre-check, equivalent to the fhir.resources models on well-formed input.

``model_validate`` builds a full object tree and costs ~1.7 ms for a prescription and its drug;
most writes are well formed. :func:`certainly_valid` walks the JSON with a per-class table taken
from the same pydantic models (field aliases, list or single, required elements, choice groups)
and checks primitives with :mod:`._primitives` (direct checks that never accept more than the
type), falling back to the models' own primitive types (one cached ``TypeAdapter`` per
annotation) for values those checks are not sure of. It only ever answers "certainly valid" or
"not sure": anything it does not model (``_field`` primitive extensions, contained/Resource-typed
elements, nulls, empty objects or lists, a second value of a choice, a nested ``resourceType``)
is "not sure", and then the caller runs the real model, which produces the findings. So a
finding can never be lost by the fast path; ``tests/validation/test_fastpath.py`` checks the two
agree on examples and mutations.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gateway.validation._primitives import Check, quick_check

__all__ = ["certainly_valid"]


@dataclass(slots=True)
class _Field:
    is_list: bool
    model: type | None = None  # a complex type or backbone element
    primitive: TypeAdapter[Any] | None = None
    quick: Check | None = None  # certainly-valid test that spares the adapter
    choice: str | None = None  # the choice group (``value`` of ``valueString``)
    spec: _Spec | None = None  # of ``model``, filled on first use (types nest recursively)


@dataclass(slots=True)
class _Spec:
    fields: dict[str, _Field] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    required_choices: tuple[str, ...] = ()
    unsupported: bool = False  # a Resource-typed field exists: fall back when it is used


def _resolve(annotation: Any) -> tuple[bool, Any]:
    """(is_list, inner annotation) of ``Optional[List[X]]`` / ``X | None`` / ``List[X]``."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            return False, None
        return _resolve(inner[0])
    if origin in (list, typing.List):  # noqa: UP006
        return True, args[0]
    return False, annotation


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


@functools.cache
def _model_for(klass_path: str) -> type:
    module, _, name = klass_path.rpartition(".")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


@functools.cache
def _spec(cls: type) -> _Spec:
    spec = _Spec()
    required = []
    required_choices = set()
    for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
        extra = info.json_schema_extra or {}
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        alias = info.alias or name
        is_list, inner = _resolve(info.annotation)
        klass = getattr(inner, "_model_klass", None)
        if klass == "fhir.resources.resource.Resource" or (isinstance(klass, str) and klass.endswith(".Resource")):
            spec.unsupported = True
            continue
        prefix = extra.get("one_of_many")
        choice = prefix if isinstance(prefix, str) else None
        if isinstance(klass, str):
            spec.fields[alias] = _Field(is_list, model=_model_for(klass), choice=choice)
        elif inner is not None:
            spec.fields[alias] = _Field(is_list, primitive=_adapter(inner), quick=quick_check(inner), choice=choice)
        if extra.get("element_required") or info.is_required():
            required.append(alias)
        if choice is not None and extra.get("one_of_many_required"):
            required_choices.add(choice)
    spec.required = tuple(required)
    spec.required_choices = tuple(sorted(required_choices))
    return spec


def certainly_valid(cls: type, data: dict[str, Any], top: bool = True) -> bool:
    """True only if ``cls.model_validate(data)`` is certain to succeed."""
    return _valid(_spec(cls), data, cls.__name__ if top else None)


def _valid(spec: _Spec, data: dict[str, Any], resource_type: str | None) -> bool:
    """``resource_type``: the ``resourceType`` the data may carry (top level only).

    Types are tested with ``type(x) is``: a subclass of dict or list (never produced by a JSON
    parser) is "not sure", which is always allowed."""
    if not data or (len(data) == 1 and "id" in data):  # ele-1 is checked on the model path
        return False
    fields = spec.fields
    choices: set[str] | None = None
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            if key == "resourceType" and resource_type is not None and value == resource_type:
                continue
            return False
        if f.choice is not None:  # at most one element of a choice group
            if choices is None:
                choices = {f.choice}
            elif f.choice in choices:
                return False
            else:
                choices.add(f.choice)
        if f.is_list:
            if type(value) is not list or not value:
                return False
            if f.model is not None:
                sub = f.spec or _model_spec(f)
                for item in value:
                    if type(item) is not dict or not _valid(sub, item, None):
                        return False
            else:
                quick = f.quick
                for item in value:
                    if (quick is None or not quick(item)) and not _adapter_accepts(f, item):
                        return False
        elif f.model is not None:
            if type(value) is not dict or not _valid(f.spec or _model_spec(f), value, None):
                return False
        elif (f.quick is None or not f.quick(value)) and not _adapter_accepts(f, value):
            return False
    for name in spec.required:
        if name not in data:
            return False
    if not spec.required_choices:  # the usual case; spares a generator per object
        return True
    return choices is not None and all(prefix in choices for prefix in spec.required_choices)


def _model_spec(f: _Field) -> _Spec:
    f.spec = _spec(f.model)
    return f.spec


def _adapter_accepts(f: _Field, item: Any) -> bool:
    if item is None or isinstance(item, dict | list):
        return False
    try:
        f.primitive.validate_python(item)  # type: ignore[union-attr]
    except (ValidationError, ValueError, TypeError):
        return False
    return True
