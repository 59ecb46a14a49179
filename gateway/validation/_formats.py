"""Apply :data:`identifiers.FORMATS` to every Identifier and Coding of a resource."""

from __future__ import annotations

from typing import Any

from gateway.errors import Issue
from gateway.validation._issues import issue
from gateway.validation.identifiers import FORMATS, IdentifierFormat, resident_id_problem

__all__ = ["check_formats"]


def check_formats(node: Any, expr: str, issues: list[Issue]) -> None:
    """Walk ``node``; an object with a ``system`` of a known format has its ``value`` (an
    Identifier) or ``code`` (a Coding) checked, including resident ID checksums.

    Most resources have no finding, so a first walk only looks; the walk that spells each
    element's expression runs only when there is something to report."""
    if not isinstance(node, dict) or _clean(node):
        return
    _report(node, expr, issues)


def _clean(node: dict[str, Any]) -> bool:
    system = node.get("system")
    if isinstance(system, str) and system in FORMATS:
        value = node.get("value" if "value" in node else "code")
        if isinstance(value, str) and not _passes(FORMATS[system], value):
            return False
    for child in node.values():
        if type(child) is str:  # most values; spares the isinstance tests
            continue
        if isinstance(child, dict):
            if not _clean(child):
                return False
        elif isinstance(child, list):
            for item in child:
                if isinstance(item, dict) and not _clean(item):
                    return False
    return True


def _passes(fmt: IdentifierFormat, value: str) -> bool:
    return (
        fmt.pattern.match(value) is not None
        and not (fmt.resident_id and resident_id_problem(value) is not None)
        and not (fmt.warn_unless_prefix and not value.startswith(fmt.warn_unless_prefix))
    )


def _report(node: Any, expr: str, issues: list[Issue]) -> None:
    if isinstance(node, dict):
        system = node.get("system")
        if isinstance(system, str) and system in FORMATS:
            key = "value" if "value" in node else "code"
            value = node.get(key)
            if isinstance(value, str):
                _check(system, value, f"{expr}.{key}", issues)
        for key, child in node.items():
            if isinstance(child, dict):
                _report(child, f"{expr}.{key}", issues)
            elif isinstance(child, list):
                for i, item in enumerate(child):
                    if isinstance(item, dict):
                        _report(item, f"{expr}.{key}[{i}]", issues)


def _check(system: str, value: str, expr: str, issues: list[Issue]) -> None:
    fmt = FORMATS[system]
    if not fmt.pattern.match(value):
        issues.append(
            issue("YL-3040", expr, element=expr, value=value, system_name=fmt.name_en, system_name_zh=fmt.name_zh)
        )
        return
    if fmt.resident_id:
        problem = resident_id_problem(value)
        if problem is not None:
            code, expected = problem
            issues.append(issue(code, expr, element=expr, value=value, expected=expected))
    if fmt.warn_unless_prefix and not value.startswith(fmt.warn_unless_prefix):
        issues.append(issue("YL-3043", expr, element=expr, value=value))
