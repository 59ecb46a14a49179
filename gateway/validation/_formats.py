"""Apply :data:`identifiers.FORMATS` to every Identifier and Coding of a resource."""

from __future__ import annotations

from typing import Any

from gateway.validation._issues import ValidationIssue, issue
from gateway.validation.identifiers import FORMATS, resident_id_problem

__all__ = ["check_formats"]


def check_formats(node: Any, expr: str, issues: list[ValidationIssue]) -> None:
    """Walk ``node``; an object with a ``system`` of a known format has its ``value`` (an
    Identifier) or ``code`` (a Coding) checked, including resident ID checksums."""
    if isinstance(node, dict):
        system = node.get("system")
        if isinstance(system, str) and system in FORMATS:
            key = "value" if "value" in node else "code"
            value = node.get(key)
            if isinstance(value, str):
                _check(system, value, f"{expr}.{key}", issues)
        for key, child in node.items():
            if isinstance(child, dict):
                check_formats(child, f"{expr}.{key}", issues)
            elif isinstance(child, list):
                for i, item in enumerate(child):
                    if isinstance(item, dict):
                        check_formats(item, f"{expr}.{key}[{i}]", issues)


def _check(system: str, value: str, expr: str, issues: list[ValidationIssue]) -> None:
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
