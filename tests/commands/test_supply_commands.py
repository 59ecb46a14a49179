"""The supply commands refuse bad input with an OperationOutcome naming where (POL-15, POL-11)."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from gateway.cli import app


def test_pol15_bad_alert_lines_print_an_operation_outcome_and_store_nothing(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'lines.db'}"
    bad = tmp_path / "lines.csv"
    bad.write_text("tier_or_member,nhsa_code,line\nvillage,XB01ACL052A001010103120,5\nvillage,XB01,many\n", "utf-8")
    result = CliRunner().invoke(app, ["stock", "alert-lines", "import", str(bad), "--database", database])
    assert result.exit_code == 1
    outcome = orjson.loads(result.stderr)
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["expression"][0] for i in outcome["issue"]] == [
        "lines.csv line 3 column 2 (nhsa_code)",
        "lines.csv line 3 column 3 (line)",
    ]
    assert all(i["details"]["text"] and i["diagnostics"] for i in outcome["issue"])  # Chinese and English
    exported = CliRunner().invoke(app, ["stock", "alert-lines", "export", "--database", database])
    assert "village,XB01ACL052A001010103120,14" in exported.stdout  # the shipped default, not the file's 5


def test_pol11_a_period_that_is_no_month_is_refused(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'plan.db'}"
    result = CliRunner().invoke(app, ["supply", "aggregate", "--period", "2025-13", "--database", database])
    assert result.exit_code == 1 and "YL-1202" in result.stderr
