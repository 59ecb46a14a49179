"""Golden tests: every HL7 v2 case under tests/golden/hl7v2/<message type>/ (the shared samples
plus our own: GB18030, escapes, repeats, missing segments, v2.3, v2.5.1, cancel/discontinue/hold)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fhir.resources import get_fhir_model_class
from fhir.resources.bundle import Bundle

from adapters.hl7v2 import VOLATILE_PATHS, HL7v2Adapter

sys.path.insert(0, str(Path(__file__).parent))
from golden import GOLDEN, compare, snapshot

CASES = sorted((GOLDEN / "hl7v2").glob("*/*.hl7"))
SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "hl7v2"


@pytest.fixture(scope="module")
def adapter() -> HL7v2Adapter:
    return HL7v2Adapter()


def test_every_shared_sample_is_a_golden_case() -> None:
    if not SAMPLES.exists():
        pytest.skip(f"{SAMPLES} not present")
    names = {c.name for c in CASES}
    missing = [s.name for s in SAMPLES.glob("*.hl7") if s.name not in names]
    assert not missing, f"copy these samples into tests/golden/hl7v2/: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_golden(adapter: HL7v2Adapter, case: Path) -> None:
    result = adapter.to_fhir(case.read_bytes())
    compare(snapshot(result, VOLATILE_PATHS), case.with_suffix(".expected.json"))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_every_resource_validates_against_r5(adapter: HL7v2Adapter, case: Path) -> None:
    bundle = adapter.to_fhir(case.read_bytes()).bundle
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
