"""The adapters CLI: list, convert, and a scaffold whose own golden test passes on creation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from adapters.cli import app

RUNNER = CliRunner()
CASES = Path(__file__).resolve().parent.parent / "golden" / "hl7v2" / "RDE_O11"


def test_list() -> None:
    result = RUNNER.invoke(app, ["list"])
    assert result.exit_code == 0 and "hl7v2" in result.stdout and "read/write" in result.stdout


def test_convert_prints_bundle() -> None:
    result = RUNNER.invoke(app, ["convert", "--adapter", "hl7v2", str(CASES / "rde-o11-new-amlodipine.hl7")])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["type"] == "transaction"


def test_convert_failure_is_an_operation_outcome(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hl7"
    bad.write_bytes((CASES / "rde-o11-new-amlodipine.hl7").read_bytes().replace(b"|19670315|", b"|1967-99|"))
    result = RUNNER.invoke(app, ["convert", "-a", "hl7v2", str(bad)])
    assert result.exit_code == 1
    outcome = json.loads(result.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(i["expression"] == ["PID-7"] for i in outcome["issue"])


def test_new_scaffolds_a_package_whose_test_passes(tmp_path: Path) -> None:
    result = RUNNER.invoke(app, ["new", "his-json", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "yaolian-adapter-his-json"
    assert 'his-json = "yaolian_adapter_his_json:Adapter"' in (root / "pyproject.toml").read_text()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert RUNNER.invoke(app, ["new", "his-json", "--dir", str(tmp_path)]).exit_code == 2


def test_the_issue_spellings_reach_the_same_commands(tmp_path: Path) -> None:
    """``yaolian convert --adapter NAME FILE`` and ``yaolian adapter new NAME`` (the top-level CLI)."""
    from gateway.cli import app as yaolian

    converted = RUNNER.invoke(yaolian, ["convert", "--adapter", "hl7v2", str(CASES / "rde-o11-new-amlodipine.hl7")])
    assert converted.exit_code == 0, converted.output
    assert json.loads(converted.stdout)["type"] == "transaction"
    created = RUNNER.invoke(yaolian, ["adapter", "new", "his-csv", "--dir", str(tmp_path)])
    assert created.exit_code == 0, created.output
    assert (tmp_path / "yaolian-adapter-his-csv" / "pyproject.toml").is_file()
