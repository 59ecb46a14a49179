"""The packages stay mypy-strict clean (configuration in pyproject.toml, [tool.mypy])."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_is_clean() -> None:
    executable = shutil.which("mypy") or str(Path(sys.executable).with_name("mypy"))
    if not Path(executable).exists():
        pytest.fail("mypy is not installed: it is part of the test extras (pip install -e '.[test]')")
    result = subprocess.run([executable], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
