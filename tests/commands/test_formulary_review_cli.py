"""``yaolian formulary`` and ``yaolian review`` from the console, on a database of our own
(POL-01, POL-02, POL-03, POL-06, POL-07, POL-27)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from gateway.alliance.catalogue_io import write_xlsx
from gateway.cli import app
from gateway.commands import operator_service
from gateway.fhir.json_text import ResourceText

TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"
MEMBER = "http://yaolian.org/fhir/sid/member"
HEAD = "医保药品编码,通用名,剂型,规格,慢病分组,ATC,管制类别,每日最大剂量,基药,集采\n"
METF = "XA10BAE054A001010102770"
GLIC = "XA10BBE001A001010100009"
ROWS = [
    f"{METF},二甲双胍,片剂,0.5g,diabetes,A10BA02,,2.55 g,Y,national",
    f"{GLIC},格列齐特,片剂,80mg,diabetes,A10BB09,,320 mg,Y,none",
]


def _alliance(database: str) -> None:
    with operator_service(database) as (service, ctx), service.store.transaction() as tx:
        for oid, tier, parent in (("C1", "county", None), ("T1", "township", "C1"), ("V1", "village", "T1")):
            org: dict[str, object] = {
                "resourceType": "Organization",
                "id": oid.lower(),
                "name": oid,
                "identifier": [{"system": MEMBER, "value": oid}],
                "type": [{"coding": [{"system": TIER, "code": tier}]}],
            }
            if parent:
                org["partOf"] = {"reference": f"Organization/{parent.lower()}"}
            service.writer.update(tx, ctx, "Organization", oid.lower(), ResourceText.parse(orjson.dumps(org)))


def test_pol27_import_catalogue_and_lists_diff_versions_and_check(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'f.db'}"
    _alliance(database)
    runner = CliRunner()
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_bytes((HEAD + "\n".join([*ROWS, "XBAD,,片剂,1mg,sugar,,,,Y,none"]) + "\n").encode("gb18030"))
    result = runner.invoke(app, ["formulary", "import", "--catalogue", str(catalogue), "--database", database])
    assert result.exit_code == 1  # one bad row, named; the good rows are in
    assert "line 4, column 慢病分组" in result.output.lower() and "2 drug(s) written, 1 row error(s)" in result.output
    village = tmp_path / "v1.xlsx"
    from gateway.alliance.catalogue_io import parse_sheet

    drugs = [d for _, d in parse_sheet((HEAD + "\n".join(ROWS)).encode(), "x.csv", need_attributes=True).drugs]
    village.write_bytes(write_xlsx(drugs, language="en"))
    args = ["formulary", "import", "--member", "V1", "--effective", "2026-01-05", str(village), "--database", database]
    assert runner.invoke(app, args).exit_code == 0
    township_v1 = tmp_path / "t1-a.csv"
    township_v1.write_text(HEAD + "\n".join(ROWS) + "\n", encoding="utf-8")
    township_v2 = tmp_path / "t1-b.csv"
    township_v2.write_text(HEAD + ROWS[0] + "\n", encoding="utf-8")
    for day, path in (("2026-01-01", township_v1), ("2026-06-01", township_v2)):
        args = [
            "formulary",
            "import",
            "--member",
            "T1",
            "--effective",
            day,
            "--decision",
            "药事会 2026-1",
            str(path),
            "--database",
            database,
        ]
        assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, ["formulary", "diff", "T1", "--database", database])
    changes = json.loads(result.output)
    assert changes["from"] == "2026-01-01" and changes["to"] == "2026-06-01"
    assert [d["nhsa_code"] for d in changes["removed"]] == [GLIC] and changes["added"] == []
    result = runner.invoke(app, ["formulary", "check", "--today", "2026-07-01", "--database", database])
    findings = json.loads(result.output)
    assert {"rule": "village-chronic-not-in-township", "member": "V1", "drug": GLIC} in [
        {k: f[k] for k in ("rule", "member", "drug")} for f in findings
    ]
    page = tmp_path / "check.html"
    runner.invoke(app, ["formulary", "check", "--format", "html", "--output", str(page), "--database", database])
    assert "village-chronic-not-in-township" in page.read_text(encoding="utf-8")
    out = tmp_path / "export.csv"
    result = runner.invoke(app, ["formulary", "export", str(out), "--member", "T1", "--database", database])
    assert result.exit_code == 0 and out.read_text(encoding="utf-8-sig").splitlines()[1].startswith(METF)


def test_pol07_review_sample_writes_html_and_csv(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 's.db'}"
    _alliance(database)
    with operator_service(database) as (service, ctx), service.store.transaction() as tx:
        for n in range(20):
            rx = {
                "resourceType": "MedicationRequest",
                "id": f"rx{n}",
                "status": "active",
                "intent": "order",
                "subject": {"reference": f"Patient/p{n}"},
                "requester": {"reference": "Practitioner/d1"},
                "authoredOn": f"2025-11-{n + 1:02d}",
                "medication": {"concept": {"text": "x"}},
                "dispenseRequest": {"expectedSupplyDuration": {"value": 10 if n % 4 == 0 else 5, "code": "d"}},
            }
            service.writer.update(tx, ctx, "MedicationRequest", f"rx{n}", ResourceText.parse(orjson.dumps(rx)))
    runner = CliRunner()
    args = [
        "review",
        "sample",
        "--period",
        "2025-11",
        "--rate",
        "0.5",
        "--seed",
        "3",
        "--out",
        str(tmp_path),
        "--database",
        database,
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "10 of 20 prescription(s) sampled" in first.output
    csv_text = (tmp_path / "post-review-2025-11.csv").read_text(encoding="utf-8-sig")
    assert "rule,days-supply-over-limit,10," in csv_text and "prescriber,Practitioner/d1,10," in csv_text
    assert runner.invoke(app, args).exit_code == 0
    assert (tmp_path / "post-review-2025-11.csv").read_text(encoding="utf-8-sig") == csv_text  # same seed, same sample
    assert "<table" in (tmp_path / "post-review-2025-11.html").read_text(encoding="utf-8")


def test_pol06_review_check_of_a_file_exits_1_when_rejected(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'c.db'}"
    _alliance(database)
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text(HEAD + "\n".join(ROWS) + "\n", encoding="utf-8")
    runner = CliRunner()
    assert (
        runner.invoke(app, ["formulary", "import", "--catalogue", str(catalogue), "--database", database]).exit_code
        == 0
    )
    rx = {
        "resourceType": "MedicationRequest",
        "id": "rx-file",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-11-10",
        "medication": {"concept": {"coding": [{"code": METF}]}},
        "extension": [
            {
                "url": "http://yaolian.org/fhir/StructureDefinition/yl-long-term-prescription",
                "extension": [{"url": "chronicGroup", "valueCoding": {"code": "diabetes"}}],
            }
        ],
        "reason": [{"concept": {"coding": [{"code": "E11.900"}]}}],
        "dispenseRequest": {"expectedSupplyDuration": {"value": 85, "code": "d"}},
    }
    path = tmp_path / "rx.json"
    path.write_bytes(orjson.dumps(rx))
    result = runner.invoke(app, ["review", "check", str(path), "--database", database])
    assert result.exit_code == 1 and "long-term-over-12-weeks" in result.output and "reject" in result.output
    rx["dispenseRequest"]["expectedSupplyDuration"]["value"] = 84
    path.write_bytes(orjson.dumps(rx))
    result = runner.invoke(app, ["review", "check", str(path), "--database", database])
    assert result.exit_code == 0 and ": pass" in result.output
