"""profiles/ is what scripts/build_profiles.py writes: rebuilt into a temporary folder from the part
of the R5 core package it reads (tests/fixtures/r5-core-subset, made by scripts/core_subset.py),
every generated file equals the committed one, and nothing generated is missing or left over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
CORE_SUBSET = ROOT / "tests" / "fixtures" / "r5-core-subset"
HAND_KEPT = {"__init__.py", "CapabilityStatement-alliance-server.json"}


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_committed_profiles_equal_the_build_script_output(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "build_profiles.py"),
            "--core",
            str(CORE_SUBSET),
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        done.stderr[-3000:] + "\n(a core definition missing from tests/fixtures/r5-core-subset? "
        "rerun scripts/core_subset.py)"
    )
    built = _files(tmp_path)
    committed = {
        name: data
        for name, data in _files(PROFILES).items()
        if name not in HAND_KEPT and not name.startswith("rules/")  # review rule sets: kept by hand (issue 14)
    }
    assert sorted(built) == sorted(committed), "files generated but not committed, or committed but not generated"
    stale = sorted(name for name in built if built[name] != committed[name])
    assert not stale, f"rerun scripts/build_profiles.py: {len(stale)} files differ from its output: {stale[:5]}"
