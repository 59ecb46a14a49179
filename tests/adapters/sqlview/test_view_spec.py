"""The ``view:`` section of a database-view mapping is checked when it loads (POL-08): every
name that reaches SQL is a plain identifier, key columns are among the columns read, and a
dialect may extend the generic file and change only what differs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapters.errors import AdapterLookupError, MappingSyntaxError
from adapters.sqlview import SqlViewAdapter, load_view

GENERIC = Path(__file__).resolve().parents[3] / "mappings" / "sqlview" / "generic-his.yaml"


def test_pol08_the_generic_dialect_loads() -> None:
    view = load_view(GENERIC)
    assert (view.schema, view.name, view.records) == (None, "v_yl_prescription", "MedicationRequest")
    assert (view.patient.column, view.patient.system) == ("SFZH", "urn:oid:2.16.156.10011.1.3")
    assert (view.prescription.column, view.newest_first) == ("CFH", "KFRQ")
    assert view.dispenses == "generic-his-dispense"
    dispense = load_view(GENERIC.with_name("generic-his-dispense.yaml"))
    assert (dispense.name, dispense.records, dispense.newest_first) == ("v_yl_dispense", "MedicationDispense", "FYRQ")


def with_view(tmp_path: Path, old: str, new: str) -> Path:
    text = GENERIC.read_text(encoding="utf-8")
    assert old in text
    file = tmp_path / "his.yaml"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")
    return file


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("name: v_yl_prescription", 'name: "v; DROP TABLE x"', "not a plain SQL identifier"),
        ("name: v_yl_prescription", 'name: "his.v\\"x"', "not a plain SQL identifier"),
        ("columns: [JGDM,", 'columns: ["JGDM--",', "not a plain SQL identifier"),
        ("{column: SFZH,", "{column: SFZH2,", "not among view.columns"),
        ("newest_first: KFRQ", "newest_first: RQ", "not among view.columns"),
        ("records: MedicationRequest", "records: Patient", "view.records"),
        ("columns: [JGDM,", "columns: [JGDM, JGDM,", "twice"),
    ],
)
def test_pol08_a_name_that_is_not_an_identifier_stops_the_load(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(MappingSyntaxError, match=message) as raised:
        load_view(with_view(tmp_path, old, new))
    assert "his.yaml" in str(raised.value)


def test_pol08_schema_qualified_and_chinese_names_are_identifiers(tmp_path: Path) -> None:
    view = load_view(with_view(tmp_path, "name: v_yl_prescription", "name: his.处方视图"))
    assert (view.schema, view.name, view.qualified_name) == ("his", "处方视图", "his.处方视图")


def test_pol08_a_dialect_extends_the_generic_view(tmp_path: Path) -> None:
    """A member whose view has another name only says so; columns and rules are inherited."""
    folder = tmp_path / "sqlview"
    shutil.copytree(GENERIC.parent, folder)
    (folder / "wq-his.yaml").write_text(
        "extends: generic-his.yaml\nmapping: sqlview/wq-his\nview:\n  name: mz.v_cf\n", encoding="utf-8"
    )
    adapter = SqlViewAdapter(mapping_dir=folder)
    dialect = adapter.dialect("wq-his")
    assert (dialect.view.schema, dialect.view.name, dialect.view.patient.column) == ("mz", "v_cf", "SFZH")
    assert dialect.mapping.name == "sqlview/wq-his"
    assert adapter.mappings() == ["generic-his", "generic-his-dispense", "wq-his"]
    assert [d.view.name for d in adapter.family("wq-his")] == ["v_cf", "v_yl_dispense"]


def test_pol08_view_dispenses_must_name_a_dispense_mapping(tmp_path: Path) -> None:
    folder = tmp_path / "sqlview"
    shutil.copytree(GENERIC.parent, folder)
    text = (folder / "generic-his.yaml").read_text(encoding="utf-8")
    (folder / "odd.yaml").write_text(
        text.replace("dispenses: generic-his-dispense", "dispenses: generic-his"), encoding="utf-8"
    )
    with pytest.raises(AdapterLookupError, match="not MedicationDispense"):
        SqlViewAdapter(mapping_dir=folder).family("odd")
    with pytest.raises(MappingSyntaxError, match="not a mapping name"):
        load_view(with_view(tmp_path, "dispenses: generic-his-dispense", "dispenses: ../x"))


@pytest.mark.parametrize("name", ["nope", "../hl7v2/rde_o11", "Generic-HIS"])
def test_pol08_only_mapping_files_of_the_folder_are_found(name: str) -> None:
    with pytest.raises(AdapterLookupError, match="generic-his"):
        SqlViewAdapter().dialect(name)
