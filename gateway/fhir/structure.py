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

from gateway.errors import Issue


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
