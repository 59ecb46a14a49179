"""The import contracts of pyproject.toml ([tool.importlinter]) hold: gateway -> adapters and never
back, the conformance kit imports neither, the gateway's layers point one way (api -> service ->
store -> search -> fhir), only the api speaks HTTP, the store raises its own errors, and sibling
modules have no import cycles."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    executable = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(executable).exists():
        pytest.fail("lint-imports is not installed: it is part of the test extras (pip install -e '.[test]')")
    result = subprocess.run(
        [executable, "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    summary = re.search(r"Contracts: (\d+) kept, (\d+) broken", output)
    assert summary is not None, output
    assert (int(summary[1]), int(summary[2])) == (len(declared), 0), output


def test_every_gateway_package_is_seen_by_the_contracts() -> None:
    """import-linter (grimp) skips directories without ``__init__.py``: a package added without one
    would sit outside every contract."""
    for directory in (ROOT / "gateway").rglob("*"):
        if directory.is_dir() and any(directory.glob("*.py")):
            assert (directory / "__init__.py").exists(), f"{directory.relative_to(ROOT)} has no __init__.py"
