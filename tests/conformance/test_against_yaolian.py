"""The full kit against a freshly started Yaolian over real HTTP: every required test passes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fhir.resources import testreport
from typer.testing import CliRunner

from conformance.cli import app
from conformance.model import Outcome
from conformance.reports import write_all
from conformance.runner import Run, run


@pytest.fixture(scope="module")
def full_run(yaolian) -> Run:  # type: ignore[no-untyped-def]
    return run(yaolian.base_url, suite="full")


def test_every_required_test_passes(full_run: Run) -> None:
    blocking = [f"{r.check.id}: {r.message}" for r in full_run.blocking]
    assert not blocking, "\n".join(blocking)
    assert full_run.passed


def test_results_are_meaningful(full_run: Run) -> None:
    counts = full_run.counts
    assert counts["pass"] > 300
    assert counts["error"] == 0
    # no token configured: authentication is not applicable, never "passed"
    by_id = {r.check.id: r for r in full_run.results}
    assert by_id["security/no-token-401"].outcome == Outcome.NOT_APPLICABLE
    # the CapabilityStatement lists the SubscriptionTopics (issue 16): the handshake is tested
    assert by_id["workflow/subscription-handshake"].outcome == Outcome.PASS
    # required search tests compare with what was written, and were all applicable
    search = [r for r in full_run.results if r.check.group == "search" and r.check.required]
    assert search and all(r.outcome == Outcome.PASS for r in search)
    assert all(r.exchanges for r in full_run.results if r.outcome == Outcome.PASS and r.check.group != "capability")


def test_reports(full_run: Run, tmp_path: Path) -> None:
    paths = write_all(full_run, tmp_path)
    testreport.TestReport.model_validate(json.loads(paths["testreport"].read_text()))
    suites = ET.parse(paths["junit"]).getroot()
    assert int(suites.get("tests", 0)) == len(full_run.results)
    assert not suites.findall(".//failure")
    data = json.loads(paths["json"].read_text())
    assert data["passed"] is True and data["requirements"]["POL-06"]["tests"] > 0
    page = paths["html"].read_text()
    assert "一致性测试报告" in page and "conformance report" in page and "依据 Requirement" in page


def test_cli_run_and_exit_code(yaolian, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--base-url",
            yaolian.base_url,
            "--suite",
            "core",
            "--only",
            "capability",
            "--report",
            str(tmp_path),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.html").exists() and (tmp_path / "junit.xml").exists()


def test_seed_then_run_without_writing(yaolian) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["seed", "--base-url", yaolian.base_url])
    assert result.exit_code == 0, result.output
    seeded = run(yaolian.base_url, only="search/MedicationRequest,search/Patient,profile", seed_only=True)
    assert seeded.passed and seeded.counts["pass"] > 40, [
        r.message for r in seeded.results if r.outcome != Outcome.PASS
    ]
    assert seeded.counts["insufficient-data"] == 0
