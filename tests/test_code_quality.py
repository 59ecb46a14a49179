"""The repository stays ruff-clean (lint and format), checked by the same test run CI makes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(executable).exists():
        pytest.fail("ruff is not installed: it is part of the test extras (pip install -e '.[test]')")
    return subprocess.run([executable, *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint_is_clean() -> None:
    result = _ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
