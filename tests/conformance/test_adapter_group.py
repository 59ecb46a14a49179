"""The adapter group: the built-in hl7v2 adapter on the shared samples, and a deliberately broken
vendor adapter installed in the test (a real distribution with a `yaolian.adapters` entry point)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conformance.adapter_group import adapter_checks
from conformance.cli import app
from conformance.model import Outcome
from conformance.runner import run

SAMPLES = Path(__file__).parent / "samples" / "hl7v2"

BROKEN = '''
"""A vendor adapter with two bugs: it drops Patient.gender (1..1 in yl-patient) and it reports an
issue without a source location; its write-back also loses birthDate."""

import json
import uuid

from adapters.contract import AdapterDescriptor, ConversionResult, Issue


class BrokenAdapter:
    descriptor = AdapterDescriptor(
        name="broken-his", version="0.1", media_types=("application/json",), bidirectional=True
    )

    def to_fhir(self, raw):
        record = json.loads(raw)
        patient = {
            "resourceType": "Patient",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, record["certno"])),
            "meta": {"profile": ["http://yaolian.org/fhir/StructureDefinition/yl-patient"]},
            "identifier": [
                {"system": "urn:oid:2.16.156.10011.1.3", "value": record["certno"]},
                {"system": "http://yaolian.org/fhir/sid/nhsa-psn-no", "value": record["psn_no"]},
            ],
            "name": [{"text": record["name"]}],
            "birthDate": record["brdy"],
        }
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:" + patient["id"],
                    "resource": patient,
                    "request": {"method": "PUT", "url": "Patient/" + patient["id"]},
                }
            ],
        }
        issues = [Issue("information", "informational", en="field gend was not read", error_code="YL-2301")]
        return ConversionResult(bundle, issues)

    def from_fhir(self, resource):
        ident = {i["system"]: i["value"] for i in resource["identifier"]}
        record = {
            "certno": ident["urn:oid:2.16.156.10011.1.3"],
            "psn_no": ident["http://yaolian.org/fhir/sid/nhsa-psn-no"],
            "name": resource["name"][0]["text"],
            "brdy": "",
        }
        return json.dumps(record).encode()
'''


@pytest.fixture
def broken_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install `broken-his` the way a vendor would: a package with samples/ and an entry point."""
    package = tmp_path / "yl_broken_his"
    (package / "samples").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(BROKEN), encoding="utf-8")
    record = {
        "certno": "140423194912312265",
        "psn_no": "14008254525384196819",
        "name": "张桂芳",
        "gend": "2",
        "brdy": "1949-12-31",
    }
    (package / "samples" / "patient-1.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    dist = tmp_path / "yl_broken_his-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: yl-broken-his\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[yaolian.adapters]\nbroken-his = yl_broken_his:BrokenAdapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    sys.modules.pop("yl_broken_his", None)


def outcomes(checks: list) -> dict[str, tuple[Outcome, str]]:
    return {r.check.id: (r.outcome, r.message) for r in run("adapter:test", checks=checks).results}


def test_hl7v2_on_the_shared_samples() -> None:
    results = outcomes(adapter_checks("hl7v2", SAMPLES))
    names = sorted(p.name for p in SAMPLES.glob("*.hl7"))
    assert len(results) == 4 * len(names)
    for name in names:
        base = f"adapter/hl7v2/{name}"
        # every sample converts into a well-formed transaction Bundle, every issue has its location
        assert results[f"{base}/convert"][0] == Outcome.PASS, results[f"{base}/convert"]
        assert results[f"{base}/issue-location"][0] == Outcome.PASS, results[f"{base}/issue-location"]
        # profile and round trip are judged (pass or a reasoned fail), never skipped
        for kind in ("profile", "round-trip"):
            outcome, message = results[f"{base}/{kind}"]
            assert outcome in (Outcome.PASS, Outcome.FAIL), (kind, outcome, message)
            assert message
    # the cancel message round-trips its MedicationRequest unchanged
    assert results["adapter/hl7v2/rde-o11-cancel.hl7/round-trip"][0] == Outcome.PASS
    profile = results["adapter/hl7v2/rde-o11-new-amlodipine.hl7/profile"]
    if profile[0] == Outcome.FAIL:  # the shared samples lack data the profiles require
        assert "required" in profile[1]


def test_hl7v2_without_samples_is_insufficient_data() -> None:
    results = outcomes(adapter_checks("hl7v2"))
    assert list(results) == ["adapter/hl7v2/samples"]
    outcome, message = results["adapter/hl7v2/samples"]
    assert outcome == Outcome.INSUFFICIENT_DATA and "--samples" in message


def test_unknown_adapter_fails() -> None:
    results = outcomes(adapter_checks("no-such-adapter"))
    assert results["adapter/no-such-adapter/load"][0] == Outcome.FAIL


def test_broken_adapter_fails(broken_package: Path) -> None:
    results = outcomes(adapter_checks("broken-his"))  # found through its entry point, samples from its package
    base = "adapter/broken-his/patient-1.json"
    assert set(results) == {f"{base}/{k}" for k in ("convert", "profile", "issue-location", "round-trip")}
    assert results[f"{base}/convert"][0] == Outcome.PASS
    outcome, message = results[f"{base}/profile"]
    assert outcome == Outcome.FAIL and "Patient.gender: at least 1 required, found 0" in message
    outcome, message = results[f"{base}/issue-location"]
    assert outcome == Outcome.FAIL and "without a source location" in message and "YL-2301" in message
    outcome, message = results[f"{base}/round-trip"]
    assert outcome == Outcome.FAIL and "birthDate changed" in message


def test_read_only_adapter_round_trip_is_not_applicable(broken_package: Path) -> None:
    from yl_broken_his import BrokenAdapter  # type: ignore[import-not-found]

    text = (broken_package / "__init__.py").read_text(encoding="utf-8").replace("bidirectional=True", "")
    (broken_package / "__init__.py").write_text(text, encoding="utf-8")
    sys.modules.pop("yl_broken_his", None)
    del BrokenAdapter
    results = outcomes(adapter_checks("broken-his"))
    assert results["adapter/broken-his/patient-1.json/round-trip"][0] == Outcome.NOT_APPLICABLE


def test_cli_adapter_run_writes_reports(broken_package: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = CliRunner().invoke(app, ["run", "--adapter", "broken-his", "-q", "--report", str(report)])
    assert result.exit_code == 1, result.output
    data = json.loads((report / "conformance.json").read_text(encoding="utf-8"))
    assert data["baseUrl"] == "adapter:broken-his" and not data["passed"]
    assert "adapter/broken-his/patient-1.json/profile" in data["requiredFailures"]
    assert (report / "junit.xml").exists() and (report / "TestReport.json").exists()
    ok = CliRunner().invoke(app, ["run", "--adapter", "hl7v2", "-q"])
    assert ok.exit_code == 1 and "nothing was tested" in ok.output  # no samples: not a pass
