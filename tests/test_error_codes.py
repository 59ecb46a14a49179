"""The error-code table of the REST core (gateway/errors.py): no code declared twice, every
``YL-0xxx`` used in gateway/ declared, every use given the parameters its messages need."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from string import Formatter

import pytest

from gateway import errors
from gateway.errors import CODES, Code, issue

GATEWAY = Path(errors.__file__).parent
#: the REST core (YL-0xxx) and the alliance features built on it (YL-1xxx: 10xx federation,
#: 11xx formulary and review, 12xx supply, 13xx subscriptions and deliveries)
CORE_CODE = re.compile(r"^YL-[01]\d{3}$")
ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
    "forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found",
    "deleted", "too-long", "code-invalid", "extension", "too-costly", "business-rule", "conflict",
    "limited-filter", "transient", "lock-error", "no-store", "exception", "timeout", "incomplete",
    "throttled", "informational", "success",
}  # fmt: skip


def declared_codes() -> list[str]:
    """First argument of every ``Code(...)`` in errors.py, in source order (duplicates kept)."""
    tree = ast.parse((GATEWAY / "errors.py").read_text(encoding="utf-8"))
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Code"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]


def gateway_sources() -> list[Path]:
    return sorted(GATEWAY.rglob("*.py"))


def fields(template: str) -> set[str]:
    return {name.split("!")[0].split(".")[0] for _, name, _, _ in Formatter().parse(template) if name}


def test_no_code_is_declared_twice() -> None:
    codes = declared_codes()
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    assert set(codes) == set(CODES)


def test_the_table_refuses_a_reused_code() -> None:
    with pytest.raises(ValueError, match="YL-0999"):
        errors._table(Code("YL-0999", "invalid", "a", "甲"), Code("YL-0999", "invalid", "b", "乙"))


def test_every_core_code_used_in_gateway_is_declared() -> None:
    used: dict[str, list[str]] = {}
    for path in gateway_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CORE_CODE.match(node.value):
                used.setdefault(node.value, []).append(f"{path.relative_to(GATEWAY.parent)}:{node.lineno}")
    assert len(used) > 30  # the scan sees the code base
    missing = {code: where for code, where in used.items() if code not in CODES}
    assert missing == {}


def test_every_call_passes_the_parameters_its_messages_need() -> None:
    checked = 0
    problems = []
    for path in gateway_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            if isinstance(node.func, ast.Name) and node.func.id == "Code":  # the declarations
                continue
            code = node.args[0].value
            if not (isinstance(code, str) and CORE_CODE.match(code)) or code not in CODES:
                continue
            if any(k.arg is None for k in node.keywords):  # **params: cannot tell statically
                continue
            given = {k.arg for k in node.keywords} - {"expression", "severity"}
            needed = fields(CODES[code].en) | fields(CODES[code].zh)
            checked += 1
            if not needed <= given:
                problems.append(f"{path.relative_to(GATEWAY.parent)}:{node.lineno} {code} lacks {needed - given}")
    assert checked > 50
    assert problems == []


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_code_is_a_bilingual_fhir_issue(code: str) -> None:
    spec = CODES[code]
    assert spec.code == code
    assert CORE_CODE.match(code)
    assert spec.issue_code in ISSUE_TYPES
    # both languages say the same things (a ``x_zh`` parameter is the Chinese form of ``x``)
    assert {name.removesuffix("_zh") for name in fields(spec.zh)} == fields(spec.en)
    built = issue(code, **{name: "x" for name in fields(spec.en) | fields(spec.zh)})
    assert built.to_fhir()["details"] == {
        "coding": [{"system": errors.ERROR_CODE_SYSTEM, "code": code}],
        "text": built.zh,
    }
    if spec.zh != "{reason}":
        assert re.search(r"[\u4e00-\u9fff]", spec.zh), spec.zh
