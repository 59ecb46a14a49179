"""The committee's spreadsheet (POL-01, POL-27): CSV in UTF-8 or GB18030 and XLSX, Chinese or
English headers; bad cells named by line and column while good rows are kept."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.alliance.catalogue import Dose
from gateway.alliance.catalogue_io import parse_sheet, write_csv, write_xlsx


def test_pol01_chinese_headers_utf8_with_every_attribute(alliance: Any) -> None:
    sheet = parse_sheet(alliance.csv.encode("utf-8-sig"), "c.csv", need_attributes=True)
    assert sheet.issues == [] and sheet.rows == len(sheet.drugs) > 10
    metformin = dict((d.nhsa_code, d) for _, d in sheet.drugs)[alliance.code("METF")]
    assert metformin.generic_name == "二甲双胍" and metformin.chronic_group == "diabetes"
    assert metformin.atc == "A10BA02" and metformin.max_daily_dose == Dose(2.55, "g")
    assert metformin.essential and metformin.vbp == "national"
    morphine = dict((d.nhsa_code, d) for _, d in sheet.drugs)[alliance.code("MORP")]
    assert morphine.control_class == "narcotic" and morphine.route == "injectable"


def test_gb18030_and_english_headers_read_the_same(alliance: Any) -> None:
    utf8 = parse_sheet(alliance.csv.encode(), "c.csv", need_attributes=True)
    english = alliance.csv.replace(
        alliance.csv.splitlines()[0],
        "nhsa_code,generic_name,dose_form,specification,chronic_group,atc,control_class,max_daily_dose,essential,vbp",
    )
    gb = parse_sheet(english.encode("gb18030"), "c.csv", need_attributes=True)
    assert [d for _, d in gb.drugs] == [d for _, d in utf8.drugs]


def test_xlsx_round_trip(alliance: Any) -> None:
    drugs = [d for _, d in parse_sheet(alliance.csv.encode(), "c.csv", need_attributes=True).drugs]
    for language in ("zh", "en"):
        again = parse_sheet(write_xlsx(drugs, language=language), "c.xlsx", need_attributes=True)
        assert again.issues == [] and [d for _, d in again.drugs] == drugs
    assert [
        d for _, d in parse_sheet(write_csv(drugs, encoding="gb18030"), "x.csv", need_attributes=True).drugs
    ] == drugs


def test_bad_rows_are_named_by_line_and_column_and_good_rows_still_go_in(alliance: Any) -> None:
    lines = alliance.csv.splitlines()
    lines.insert(2, "XBAD0000000000000000000,,片剂,1mg,sugar,A10BA02,,two g,maybe,none")
    lines.insert(4, "XBAD1000000000000000000,某药,片剂,1mg,,,opium,,Y,somewhere")
    sheet = parse_sheet("\n".join(lines).encode(), "c.csv", need_attributes=True)
    assert len(sheet.drugs) == len(lines) - 3  # header and the two bad rows
    where = sorted(i.where for i in sheet.issues if i.severity == "error")
    assert where == [
        "line 3, column 基药",
        "line 3, column 慢病分组",
        "line 3, column 每日最大剂量",
        "line 3, column 通用名",
        "line 5, column 管制类别",
        "line 5, column 集采",
    ]
    assert all(i.error_code == "YL-1100" and i.zh.startswith("第 ") for i in sheet.issues)


def test_chinese_values_are_understood() -> None:
    text = "医保药品编码,通用名,剂型,规格,慢病分组,ATC,管制类别,每日最大剂量,基药,集采\n"
    text += "XA1,某药,片剂,1mg,高血压,,精二,3 mg,是,国家\n"
    ((line, drug),) = parse_sheet(text.encode("gb18030"), "c.csv", need_attributes=True).drugs
    assert line == 2 and drug.chronic_group == "hypertension" and drug.control_class == "psychotropic-2"
    assert drug.essential and drug.vbp == "national"


def test_a_sheet_without_the_code_column_is_refused_at_line_1() -> None:
    sheet = parse_sheet("通用名,规格\n某药,1mg\n".encode(), "c.csv", need_attributes=True)
    assert [i.where for i in sheet.issues] == ["line 1"] and sheet.drugs == []


@pytest.mark.parametrize(("text", "mg"), [("2 g", 2000.0), ("500mg", 500.0), ("0.5 g", 500.0), ("250 ug", 0.25)])
def test_doses_compare_across_mass_units(text: str, mg: float) -> None:
    dose = Dose.parse(text)
    assert dose is not None and dose.in_unit_of(Dose(1, "mg")) == pytest.approx(mg)


def test_a_members_own_medication_of_a_catalogue_code_reads_as_the_committees_entry(alliance: Any) -> None:
    from gateway.alliance.catalogue import Catalogue, from_medication

    own = from_medication(
        {
            "resourceType": "Medication",
            "id": "his-0001",
            "code": {
                "text": "二甲双胍片",
                "coding": [{"system": "http://yaolian.org/fhir/sid/nhsa-drug-code", "code": alliance.code("METF")}],
            },
        }
    )
    assert own is not None and own.atc is None
    for order in ([own, *alliance.catalogue], [*alliance.catalogue, own]):
        catalogue = Catalogue.of(order)
        assert catalogue.by_medication("Medication/his-0001") == alliance.catalogue.get(alliance.code("METF"))
        assert catalogue.get(alliance.code("METF")).atc == "A10BA02"  # type: ignore[union-attr]
