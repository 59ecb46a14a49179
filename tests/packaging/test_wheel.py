"""The wheel carries the data the gateway needs at run time, not only the editable checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_definitions_profiles_and_mappings(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("yaolian-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "gateway/fhir/data/search-parameters.json" in names
    assert "gateway/fhir/data/types.json" in names
    assert any(n.startswith("profiles/StructureDefinition-") and n.endswith(".json") for n in names)
    assert any(n.startswith("mappings/conceptmaps/") and n.endswith(".json") for n in names)
    # the database-view mappings and their shared part (POL-08: view members are asked with them)
    assert {"mappings/sqlview/generic-his.yaml", "mappings/sqlview/shared/drug.yaml"} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "yaolian = gateway.cli:app" in text
    assert "sqlview = adapters.sqlview:SqlViewAdapter" in text
