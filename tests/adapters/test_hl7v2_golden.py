"""Golden tests: every HL7 v2 case under tests/golden/hl7v2/<message type>/ (the shared samples
plus our own: GB18030, escapes, repeats, missing segments, v2.3, v2.5.1, cancel/discontinue/hold).

Each golden file also lists the alliance-profile findings of its resources (``profile_findings``,
from ``gateway.validation``): the complete messages have none but the drug's formulary flags;
the sparse ones (the shared samples carry no diagnosis, no prescription category, local
prescriber ids) list exactly what the source lacks, so a mapping change that loses or gains
conformance shows in the diff."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fhir.resources import get_fhir_model_class
from fhir.resources.bundle import Bundle

from adapters.hl7v2 import VOLATILE_PATHS, HL7v2Adapter

sys.path.insert(0, str(Path(__file__).parent))
from golden import GOLDEN, compare, profile_findings, snapshot

CASES = sorted((GOLDEN / "hl7v2").glob("*/*.hl7"))
#: Messages that carry everything the alliance profiles ask for: no profile error allowed.
COMPLETE = {"complete-extended-longterm"}
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
    actual = snapshot(result, VOLATILE_PATHS)
    actual["profile_findings"] = profile_findings(result.bundle)
    compare(actual, case.with_suffix(".expected.json"))


def test_complete_cases_exist() -> None:
    assert {c.stem for c in CASES} >= COMPLETE


@pytest.mark.parametrize("case", [c for c in CASES if c.stem in COMPLETE], ids=lambda c: c.stem)
def test_complete_messages_conform_to_the_alliance_profiles(adapter: HL7v2Adapter, case: Path) -> None:
    result = adapter.to_fhir(case.read_bytes())
    assert [i for i in result.issues if i.severity != "information"] == []
    errors = [f for f in profile_findings(result.bundle) if f["severity"] in ("fatal", "error")]
    # 基药 / 集采 / 规格 are formulary attributes no order message carries: the drug profile's
    # required flags (three slices of Medication.extension) come from the formulary, not HL7 v2.
    formulary_only = [
        f for f in errors if f["entry"].endswith(":Medication") and f["expression"] == "Medication.extension"
    ]
    assert len(formulary_only) == 3
    assert [f for f in errors if f not in formulary_only] == []


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_every_resource_validates_against_r5(adapter: HL7v2Adapter, case: Path) -> None:
    bundle = adapter.to_fhir(case.read_bytes()).bundle
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
