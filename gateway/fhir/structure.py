"""Base-structure validation with the fhir.resources R5 models, once per write.

The models are used only to judge the input; their serialisation is never stored (it is
lossy). Pydantic error locations become FHIRPath expressions so the OperationOutcome points
at the element (``MedicationRequest.dosageInstruction[0].timing.repeat.frequency``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from fhir.resources import get_fhir_model_class
from pydantic import ValidationError

from gateway.errors import Issue, issue
from gateway.fhir import definitions


@cache
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def location_to_expression(resource_type: str, loc: Sequence[str | int]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part in ("__root__",):
            continue
        else:
            path += f".{part}"
    return path


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


def structure_issues(data: dict[str, Any]) -> list[Issue]:
    """Issues found by the R5 model for ``data``; empty when the structure is valid."""
    resource_type = data.get("resourceType")
    assert isinstance(resource_type, str)
    try:
        _model(resource_type).model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            expression = location_to_expression(resource_type, loc)
            issues.append(
                Issue(
                    severity="error",
                    code="required"
                    if err["type"] == "missing"
                    else ("structure" if err["type"] == "extra_forbidden" else "value"),
                    en=f"{expression}: {err['msg']}",
                    zh=f"{expression}：{_MESSAGES_ZH.get(err['type'], err['msg'])}",
                    expression=(expression,),
                    error_code="YL-0700",
                )
            )
        return issues
    except (TypeError, ValueError) as exc:
        return [Issue("error", "structure", str(exc), f"资源结构无效：{exc}", (resource_type,), "YL-0700")]
    return []


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
}


def json_form_issues(data: dict[str, Any]) -> list[Issue]:
    """Primitive values written as the JSON kind FHIR requires (string, number or boolean).

    The fhir.resources models coerce (``"active": "yes"`` passes as ``True``, ``"3"`` as the
    integer 3) while the gateway stores the client's own text, so without this check a
    resource could be stored that is not FHIR JSON and cannot be rendered as XML.
    """
    found: list[Issue] = []
    resource_type = data.get("resourceType")
    if isinstance(resource_type, str):
        _check_object(data, resource_type, resource_type, found)
    return found


def _check_object(node: dict[str, Any], context: str, path: str, found: list[Issue]) -> None:
    for key, value in node.items():
        if key == "resourceType" or value is None:
            continue
        extra = key.startswith("_")
        info = definitions.element(context, key[1:] if extra else key)
        if info is None:  # unknown elements are the models' to report
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if item is None:
                continue
            where = f"{path}.{key}" + (f"[{index}]" if isinstance(value, list) else "")
            if extra:
                if isinstance(item, dict):
                    _check_object(item, info.type, where, found)
            elif info.json_kind == "object":
                if isinstance(item, dict) and info.children:
                    _check_object(item, info.children, where, found)
            elif info.json_kind == "resource":
                if isinstance(item, dict) and isinstance(item.get("resourceType"), str):
                    _check_object(item, item["resourceType"], where, found)
            else:
                _check_primitive(info, item, where, found)


def _check_primitive(info: definitions.ElementInfo, value: Any, where: str, found: list[Issue]) -> None:
    kind = info.json_kind
    ok = isinstance(value, _JSON_KINDS[kind]) and not (kind == "number" and isinstance(value, bool))
    if ok and kind == "number" and info.type != "decimal" and isinstance(value, float):
        ok = False
    if not ok:
        en, zh = _KIND_NAMES[kind if kind != "number" or info.type == "decimal" else "integer"]
        found.append(issue("YL-0108", element=where, type=info.type, expected=en, expected_zh=zh, expression=[where]))
