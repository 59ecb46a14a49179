"""Golden tests of the database-view mapping (POL-08, real-time prescription lookup): each
``tests/golden/sqlview/<dialect>/<case>.json`` is one view row; its transaction Bundle, the
issues and the alliance-profile findings of its resources are compared with
``<case>.expected.json`` (``YAOLIAN_REGEN_GOLDEN=1`` rewrites them; review the diff)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.errors import ConversionError
from adapters.sqlview import VOLATILE_PATHS, SqlViewAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from golden import GOLDEN, compare, profile_findings, snapshot

CASES = sorted((GOLDEN / "sqlview").glob("*/*.json"))
CASES = [c for c in CASES if not c.name.endswith(".expected.json")]


@pytest.fixture(scope="module")
def adapter() -> SqlViewAdapter:
    return SqlViewAdapter()


def test_every_shipped_dialect_has_a_golden_case(adapter: SqlViewAdapter) -> None:
    assert {c.parent.name for c in CASES} == set(adapter.mappings())


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_pol08_golden(adapter: SqlViewAdapter, case: Path) -> None:
    """POL-08: a view row becomes the Medication and MedicationRequest the lookup shows."""
    result = adapter.to_fhir(case.read_bytes(), mapping=case.parent.name)
    actual = snapshot(result, VOLATILE_PATHS)
    actual["profile_findings"] = profile_findings(result.bundle)
    compare(actual, case.with_name(case.stem + ".expected.json"))


@pytest.mark.parametrize(
    ("change", "column"),
    [({"KFRQ": "下午两点"}, "KFRQ"), ({"SFZH": None}, "SFZH"), ({"CFH": ""}, "CFH")],
)
def test_pol08_a_row_that_does_not_map_is_refused_naming_the_column(
    adapter: SqlViewAdapter, change: dict[str, Any], column: str
) -> None:
    """POL-08: a bad date, no patient number or no prescription number: an error at that column."""
    row = orjson.loads((GOLDEN / "sqlview" / "generic-his" / "complete-line.json").read_bytes())
    row.update(change)
    with pytest.raises(ConversionError) as raised:
        adapter.to_fhir(orjson.dumps(row))
    assert column in [i.where for i in raised.value.issues if i.severity == "error"]
