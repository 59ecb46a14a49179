"""The mapping engine refuses broken mappings at load time, with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.errors import (
    MappingCoverageError,
    MappingError,
    MappingSyntaxError,
    MappingTargetError,
)
from adapters.hl7v2.tree import V2PathSyntax
from adapters.mapping.engine import load_mapping
from adapters.mapping.transforms import fhir_datetime

HEAD = "mapping: t\nformat: hl7v2\nmessages: ['RDE^O11']\nresources:\n"


def load(tmp_path: Path, body: str):
    file = tmp_path / "m.yaml"
    file.write_text(HEAD + body, encoding="utf-8")
    return load_mapping(file, V2PathSyntax())


def test_valid_minimal(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        "  - name: p\n    type: Patient\n    rules:\n      - {target: birthDate, source: PID-7, transform: date}\n",
    )
    assert mapping.resources[0].type == "Patient"


@pytest.mark.parametrize(
    ("rule", "error", "text"),
    [
        ("{target: birthdate, source: PID-7, transform: date}", MappingTargetError, "did you mean 'birthDate'"),
        ("{target: birthDate, source: PID-7}", MappingTargetError, "Patient.birthDate is date"),
        ("{target: birthDate, source: PID-7, transform: decimal}", MappingTargetError, "is date"),
        ("{target: gender, value: man}", MappingTargetError, "not one of"),
        ("{target: 'name[].family', source: PID-5.1, colour: red}", MappingSyntaxError, "unknown rule keys"),
        ("{target: 'active[]', value: true}", MappingTargetError, "not a list"),
        ("{target: birthDate, source: 'PID/7', transform: date}", MappingSyntaxError, "bad source path"),
        ("{target: gender, source: PID-8, translate: {map: no-such-map}}", MappingSyntaxError, "no ConceptMap"),
        ("{target: managingOrganization, reference: nobody}", MappingSyntaxError, "names no earlier resource"),
    ],
)
def test_bad_rules_name_file_and_line(tmp_path: Path, rule: str, error: type, text: str) -> None:
    body = f"  - name: p\n    type: Patient\n    rules:\n      - {rule}\n"
    with pytest.raises(error, match=text) as info:
        load(tmp_path, body)
    assert isinstance(info.value, MappingError)
    assert info.value.line == 8 and info.value.file.endswith("m.yaml")
    assert ":8:" in str(info.value)


def test_required_elements_must_be_covered(tmp_path: Path) -> None:
    body = "  - name: r\n    type: MedicationRequest\n    rules:\n      - {target: intent, value: order}\n"
    with pytest.raises(MappingCoverageError, match="medication, status, subject"):
        load(tmp_path, body)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(MappingSyntaxError) as info:
        load(tmp_path, "  - name: p\n    type: Patient\n    rules: [\n")
    assert info.value.line is not None


def test_shipped_mappings_all_load() -> None:
    from adapters.hl7v2 import HL7v2Adapter

    adapter = HL7v2Adapter()
    assert set(adapter.mappings) == {"RDE^O11", "RDS^O13"}
    assert {m.name for ms in adapter.dialects.values() for m in ms} == {
        "hl7v2/dialects/winning_his/rde_o11",
        "hl7v2/dialects/winning_his/rds_o13",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20251103092500", "2025-11-03T09:25:00+08:00"),
        ("202511030925", "2025-11-03T09:25:00+08:00"),
        ("20251103092500+0000", "2025-11-03T09:25:00+00:00"),
        ("20251103", "2025-11-03"),
        ("2025-11-03 09:25", "2025-11-03T09:25:00+08:00"),
        ("2025/11/03", "2025-11-03"),
        ("2025年11月3日", "2025-11-03"),
        ("2025年11月3日 9时25分", "2025-11-03T09:25:00+08:00"),
        ("20251332", None),
        ("soon", None),
    ],
)
def test_dates(text: str, expected: str | None) -> None:
    assert fhir_datetime(text) == expected
