"""Passing on JSON someone else wrote without rewriting its numbers (``gateway.fhir.json_text``)."""

from __future__ import annotations

import enum

import pytest

from gateway.fhir.json_text import RawNumber, dumps_keeping_numbers, loads_keeping_numbers


@pytest.mark.parametrize("number", ["0.50", "-0.10", "28.0", "1e3", "2.5E-2", "12345678901234567890", "100.00"])
def test_numbers_a_float_would_rewrite_come_back_as_written(number: str) -> None:
    raw = f'{{"a": {number}, "b": [1, {number}], "c": {{"d": {number}}}}}'.encode()
    data = loads_keeping_numbers(raw)
    assert data["a"] == number and isinstance(data["a"], RawNumber)
    assert dumps_keeping_numbers(data) == f'{{"a":{number},"b":[1,{number}],"c":{{"d":{number}}}}}'.encode()


def test_plain_json_takes_the_fast_parse_and_is_unchanged() -> None:
    raw = b'{"id":"140423195603071234","value":2.5,"n":10,"ok":true,"none":null,"s":"1.50 in text"}'
    data = loads_keeping_numbers(raw)
    assert isinstance(data["value"], float)  # an 18-digit string is not a number
    assert dumps_keeping_numbers(data) == raw


def test_malformed_json_is_a_value_error_either_way() -> None:
    for raw in (b'{"a": 0.50', b"{'a': 1}", b"<html>"):
        with pytest.raises(ValueError):
            loads_keeping_numbers(raw)


def test_other_subclasses_are_written_as_their_plain_value() -> None:
    class Kind(enum.StrEnum):
        A = "a"

    class Level(enum.IntEnum):
        ONE = 1

    assert dumps_keeping_numbers({"k": Kind.A, "l": Level.ONE, "r": RawNumber("0.50")}) == b'{"k":"a","l":1,"r":0.50}'
    with pytest.raises(TypeError):
        dumps_keeping_numbers({"x": object()})
