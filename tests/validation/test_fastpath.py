"""The fast structural pre-check never passes what the fhir.resources model rejects."""

from __future__ import annotations

import copy
import json
import random
from importlib import resources
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from gateway.validation._fastpath import certainly_valid
from gateway.validation._primitives import quick_check
from gateway.validation._structure import model_class

EXAMPLES = resources.files("profiles").joinpath("examples")
FILES = sorted(e.name for e in EXAMPLES.iterdir() if e.name.endswith(".json") and e.name != "index.json")
REPLACEMENTS = [
    None, "", "x", 1, -1, 1.5, True, [], {}, ["x"], [{}], {"x": 1}, "2025-13-01", "not a code",
    " leading space", "2025-02-29", "2025-03-01T09:05:00", "1.5", 2**31, 10**400, False, 0, "a  b",
]  # fmt: skip


def _model_accepts(resource: dict) -> bool:
    try:
        model_class(resource["resourceType"]).model_validate(resource)
    except (ValidationError, ValueError):
        return False
    return True


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _mutations(resource: dict, rng: random.Random, n: int) -> list[dict]:
    out = []
    paths = [p for p in _paths(resource) if p != ("resourceType",)]
    for _ in range(n):
        path = rng.choice(paths)
        mutated = copy.deepcopy(resource)
        node = mutated
        for step in path[:-1]:
            node = node[step]
        if rng.random() < 0.3 and isinstance(node, dict):
            del node[path[-1]]
        else:
            node[path[-1]] = copy.deepcopy(rng.choice(REPLACEMENTS))
        out.append(mutated)
    return out


@pytest.mark.parametrize("name", FILES)
def test_fast_path_is_sound(name: str) -> None:
    resource = json.loads(EXAMPLES.joinpath(name).read_text("utf-8"))
    rng = random.Random(name)
    cls = model_class(resource["resourceType"])
    for candidate in [resource, *_mutations(resource, rng, 60)]:
        if certainly_valid(cls, candidate):
            assert _model_accepts(candidate), candidate


@pytest.mark.parametrize("name", [n for n in FILES if ".valid." in n])
def test_fast_path_recognises_valid_examples(name: str) -> None:
    resource = json.loads(EXAMPLES.joinpath(name).read_text("utf-8"))
    assert certainly_valid(model_class(resource["resourceType"]), resource)


# ------------------------------------------------------------------------------------------
# the direct primitive checks never accept what the fhir.resources type rejects

EDGE_VALUES = [
    "", " ", " leading space", "trailing ", "a  b", "a b", "a\nb", "\n", "\t", "\x0b", "\x0bx", "\u3000x",
    "\u00a0", "x\u00a0", "普通处方", "x" * 255, "x" * 256, "A-1.b", "a_b", "a/b",
    "2025", "2025-03", "2025-13", "2025-13-01", "2025-02-29", "2024-02-29", "1900-02-29", "0000-01-01",
    "2025-03-01T09:05:00+08:00", "2025-03-01T09:05:00Z", "2025-03-01T09:05:00", "2025-03-01T24:00:00Z",
    "2025-03-01T09:05:60Z", "2025-03-01T09:05:00.123456Z", "2025-03-01T09:05:00.1234567Z",
    "2025-03-01T09:05:00+14:00", "2025-03-01T09:05:00+14:30", "2025-03-01T09:05", "2025-03-01 09:05:00Z",
    "09:05:00", "23:59:59.999999", "24:00:00", "09:05", "09:05:60",
    "urn:oid:2.16.156", "urn:oid:3.1", "urn:oid:1.01", "http://x.org/a b",
    "0", "01", "-0", "1.5", "1.50", "-1.5e3", "1e", ".5", "NaN", "Infinity", "true", "yes",
    0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, 10**400, True, False,
    0.0, 1.5, -2.25, 1e16, 1e-7, 1e300, float("inf"), float("nan"),
    None, [], {}, ["x"], {"x": 1},
]  # fmt: skip


def _primitive_annotations() -> dict[str, Any]:
    from gateway.validation._fastpath import _model_for, _resolve, _spec

    out: dict[str, Any] = {}
    todo = [model_class(t) for t in ("MedicationRequest", "Medication", "Patient", "Organization",
                                      "Practitioner", "SupplyRequest", "InventoryReport")]  # fmt: skip
    done: set[type] = set()
    while todo:
        cls = todo.pop()
        if cls in done:
            continue
        done.add(cls)
        _spec(cls)
        for info in cls.model_fields.values():
            _, inner = _resolve(info.annotation)
            klass = getattr(inner, "_model_klass", None)
            if isinstance(klass, str):
                if not klass.endswith(".Resource"):
                    todo.append(_model_for(klass))
            elif inner is not None:
                out[repr(inner)] = inner
    return out


ANNOTATIONS = _primitive_annotations()


@pytest.mark.parametrize("name", sorted(ANNOTATIONS))
def test_primitive_checks_are_sound(name: str) -> None:
    annotation = ANNOTATIONS[name]
    check = quick_check(annotation)
    if check is None:
        pytest.skip("left to the adapter")
    adapter = TypeAdapter(annotation)
    rng = random.Random(name)
    values = [*EDGE_VALUES, *(_random_string(rng) for _ in range(300))]
    for value in values:
        if check(value):
            adapter.validate_python(value)  # raises if the check was too generous


def _random_string(rng: random.Random) -> str:
    alphabet = "aZ09-._: \t\n\r\x0b\x1c\u00a0\u2028\u3000处T+Z"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def test_primitive_checks_accept_the_usual_values() -> None:
    """Typical values need no adapter (else the fast path would not be fast)."""
    from fhir.resources import fhirtypes

    usual: list[tuple[Any, Any]] = [
        (fhirtypes.StringType, "普通处方"), (fhirtypes.CodeType, "active"), (fhirtypes.IdType, "rx-1"),
        (fhirtypes.UriType, "http://unitsofmeasure.org"), (fhirtypes.DecimalType, 0.5),
        (fhirtypes.DecimalType, 56), (fhirtypes.PositiveIntType, 4), (fhirtypes.BooleanType, True),
        (fhirtypes.DateTimeType, "2025-03-01T09:05:00+08:00"), (fhirtypes.DateType, "1949-12-31"),
        (fhirtypes.InstantType, "2025-03-01T01:05:00.123Z"), (fhirtypes.CanonicalType, "http://x.org/sd"),
    ]  # fmt: skip
    for annotation, value in usual:
        check = quick_check(annotation)
        assert check is not None and check(value), (annotation, value)


def test_primitive_checks_refuse_what_the_type_refuses() -> None:
    from fhir.resources import fhirtypes

    refused: list[tuple[Any, Any]] = [
        (fhirtypes.DateType, "2025-13-01"), (fhirtypes.DateType, "2025-02-29"),
        (fhirtypes.StringType, ""), (fhirtypes.CodeType, " leading space"), (fhirtypes.IntegerType, True),
        (fhirtypes.IntegerType, 2**31), (fhirtypes.UnsignedIntType, -1), (fhirtypes.PositiveIntType, 0),
        (fhirtypes.DecimalType, True), (fhirtypes.DecimalType, float("inf")), (fhirtypes.DecimalType, "01"),
        (fhirtypes.BooleanType, "true"), (fhirtypes.DateTimeType, "2025-03-01T09:05:00"),
    ]  # fmt: skip
    for annotation, value in refused:
        check = quick_check(annotation)
        assert check is not None and not check(value), (annotation, value)


def test_python_whitespace_covers_unicode_white_space() -> None:
    """The checks rely on Python's whitespace including Unicode White_Space (Rust's \\s)."""
    white_space = [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
                   0x202F, 0x205F, 0x3000]  # fmt: skip
    assert all(chr(c).isspace() for c in white_space)
