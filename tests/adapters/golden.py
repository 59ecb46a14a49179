"""Golden-file comparison shared by adapter tests: drop volatile paths, diff, regenerate on purpose.

``YAOLIAN_REGEN_GOLDEN=1 pytest tests/adapters`` rewrites the ``*.expected.json`` files; review
the git diff before committing them.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from adapters.contract import ConversionResult

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
REGENERATE = os.environ.get("YAOLIAN_REGEN_GOLDEN") == "1"


def drop_paths(document: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``document`` without the dotted ``paths`` (top-level Bundle keys here)."""
    out = json.loads(json.dumps(document))
    for path in paths:
        node = out
        *parents, last = path.split(".")
        for name in parents:
            node = node.get(name, {})
        node.pop(last, None)
    return out


def snapshot(result: ConversionResult, volatile: tuple[str, ...]) -> dict[str, Any]:
    return {
        "bundle": drop_paths(result.bundle, volatile),
        "issues": [
            {"severity": i.severity, "code": i.error_code, "location": i.where, "message": i.en} for i in result.issues
        ],
    }


def compare(actual: dict[str, Any], expected_file: Path) -> None:
    text = json.dumps(actual, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if REGENERATE or not expected_file.exists():
        if not REGENERATE:
            pytest.fail(f"{expected_file} is missing; run with YAOLIAN_REGEN_GOLDEN=1 to create it")
        expected_file.write_text(text, encoding="utf-8")
        return
    expected = expected_file.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=str(expected_file),
                tofile="actual",
            )
        )
        pytest.fail(f"golden mismatch (YAOLIAN_REGEN_GOLDEN=1 regenerates):\n{diff}", pytrace=False)


def profile_findings(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """Errors and warnings of each entry of a converted Bundle against its alliance profiles
    (``meta.profile`` and the defaults): what the golden files record beside the resources."""
    from gateway.validation import profiles_for, validate

    out = []
    for n, entry in enumerate(bundle["entry"]):
        resource = entry["resource"]
        for finding in validate(resource, profiles_for(resource)):
            if finding.severity in ("fatal", "error", "warning"):
                out.append(
                    {
                        "entry": f"{n}:{resource['resourceType']}",
                        "severity": finding.severity,
                        "code": finding.error_code,
                        "expression": finding.where,
                    }
                )
    return out
