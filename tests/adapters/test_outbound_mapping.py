"""The outbound mapping kind's shared parts (POL-18, the insurance feed): one group of fields
written in place by one message and signed, as one base64 JSON string, by another - so what is
signed (7102) and what is uploaded (7103) cannot drift apart."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.mapping import outbound
from adapters.mapping.outbound import OutboundMapping, build, load_outbound

MAPPING = """
mapping: test/parts
kind: outbound-json
parts:
  who:
    - {name: patn_name, from: "patient.name.text", len: 10, required: true}
    - {name: hi_rxno, from: "answer.hi_rxno", len: 30, required: true}
messages:
  "S":
    fields:
      - {name: org, value: "H1", len: 12}
      - {name: original_value, part: who, format: base64_json, len: 1000, required: true}
  "U":
    fields:
      - {part: who}
      - {name: sign_digest, from: "answer.sign_digest", len: 64, required: true}
"""


@pytest.fixture
def mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OutboundMapping:
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "parts.yaml").write_text(MAPPING, encoding="utf-8")

    class Files:
        def joinpath(self, name: str) -> Path:
            return tmp_path / name

    monkeypatch.setattr(outbound.resources, "files", lambda _package: Files())
    return load_outbound("test/parts")


def _context(name: str) -> dict[str, Any]:
    return {"patient": {"name": [{"text": name}]}, "answer": {"hi_rxno": "HI1", "sign_digest": "d" * 64}}


def test_a_named_part_is_signed_as_the_base64_of_its_sorted_json_and_a_bare_part_is_inlined(
    mapping: OutboundMapping,
) -> None:
    signed, problems = build(mapping, "S", _context("张三"))
    assert problems == []
    decoded = base64.b64decode(signed["original_value"]).decode()
    assert decoded == json.dumps({"hi_rxno": "HI1", "patn_name": "张三"}, ensure_ascii=False, separators=(",", ":"))
    uploaded, problems = build(mapping, "U", _context("张三"))
    assert problems == [] and list(uploaded) == ["patn_name", "hi_rxno", "sign_digest"]
    assert {k: v for k, v in uploaded.items() if k != "sign_digest"} == json.loads(decoded)


def test_a_field_of_a_part_too_long_stops_both_messages_naming_where(mapping: OutboundMapping) -> None:
    _, signing = build(mapping, "S", _context("x" * 11))
    _, upload = build(mapping, "U", _context("x" * 11))
    assert [p.path for p in signing] == ["input.original_value.patn_name"]
    assert [p.path for p in upload] == ["input.patn_name"]


def test_a_part_the_mapping_lacks_is_refused_when_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "bad.yaml").write_text(
        'mapping: test/bad\nkind: outbound-json\nmessages:\n  "U":\n    fields:\n      - {part: nowhere}\n',
        encoding="utf-8",
    )

    class Files:
        def joinpath(self, name: str) -> Path:
            return tmp_path / name

    monkeypatch.setattr(outbound.resources, "files", lambda _package: Files())
    with pytest.raises(ValueError, match="nowhere"):
        load_outbound("test/bad")


def test_the_insurance_mapping_signs_at_7102_exactly_what_7103_uploads() -> None:
    insurance = load_outbound("insurance/e-prescription")
    signed = next(f for f in insurance.message("7102").fields if f.name == "original_value")
    upload = [f.name for f in insurance.message("7103").fields]
    assert [f.name for f in signed.fields] == upload[: len(signed.fields)]
    assert upload[len(signed.fields) :] == ["rx_file", "sign_digest"]
