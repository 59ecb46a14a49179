"""Registry, contract, error codes."""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import adapters.errors as errors
from adapters import registry
from adapters.contract import Adapter, Issue, operation_outcome
from adapters.errors import AdapterLookupError, DuplicateAdapterError


def test_builtins_without_entry_points() -> None:
    reg = registry.build_registry(eps=[])
    assert "hl7v2" in reg.names()
    adapter = reg.get("hl7v2")
    assert isinstance(adapter, Adapter)
    assert adapter.descriptor.bidirectional


def test_module_level_get() -> None:
    assert registry.get("hl7v2").descriptor.name == "hl7v2"
    assert "hl7v2" in registry.names()


def test_duplicate_names_refused() -> None:
    eps = [EntryPoint(name="hl7v2", value="vendor.fake:Adapter", group=registry.ENTRY_POINT_GROUP)]
    with pytest.raises(DuplicateAdapterError, match="registered twice"):
        registry.build_registry(eps=eps)
    twice = [
        EntryPoint(name="x", value="a:A", group=registry.ENTRY_POINT_GROUP),
        EntryPoint(name="x", value="b:B", group=registry.ENTRY_POINT_GROUP),
    ]
    with pytest.raises(DuplicateAdapterError):
        registry.build_registry(eps=twice)


def test_entry_point_naming_the_builtin_itself_is_accepted() -> None:
    eps = [EntryPoint(name="hl7v2", value=registry.BUILTINS["hl7v2"], group=registry.ENTRY_POINT_GROUP)]
    assert registry.build_registry(eps=eps).names() == sorted(registry.BUILTINS)


def test_unknown_name() -> None:
    with pytest.raises(AdapterLookupError, match="no adapter named"):
        registry.build_registry(eps=[]).get("nope")


def test_error_codes_unique_and_documented() -> None:
    classes = [obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, errors.AdapterError)]
    codes = [c.code for c in classes] + list(errors.ISSUE_CODES)
    assert len(codes) == len(set(codes)), "an error code is used twice"
    assert all(re.fullmatch(r"YL-2\d{3}", c) for c in codes)
    doc = errors.__doc__ or ""
    for cls in classes:
        assert cls.__name__ in doc and cls.code in doc, f"{cls.__name__} missing from the tree"


def test_issue_codes_used_in_code_are_declared() -> None:
    root = Path(errors.__file__).parent
    used = set()
    for file in root.rglob("*.py"):
        used |= set(re.findall(r'"(YL-2\d{3})"', file.read_text(encoding="utf-8")))
    declared = {c.code for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.AdapterError)}
    assert used <= declared | set(errors.ISSUE_CODES)


def test_operation_outcome_shape() -> None:
    found = Issue("warning", "code-invalid", en="x", zh="y", expression=("RXE-2.1",), error_code="YL-2302")
    outcome = operation_outcome([found])
    assert outcome["issue"][0]["expression"] == ["RXE-2.1"]
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "YL-2302"
