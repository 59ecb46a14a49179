"""JSON Patch (RFC 6902) on the exact-number tree: the RFC's Appendix A examples, plus the
FHIR-specific promise that numbers keep the text the client wrote."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.errors import BadRequest, Unprocessable
from gateway.fhir.json_text import dumps_exact, loads_exact
from gateway.service.json_patch import apply_patch


def run(document: str, patch: str) -> Any:
    return json.loads(dumps_exact(apply_patch(loads_exact(document), loads_exact(patch))))


RFC_EXAMPLES = [
    ("A.1", '{"foo":"bar"}', '[{"op":"add","path":"/baz","value":"qux"}]', {"baz": "qux", "foo": "bar"}),
    ("A.2", '{"foo":["bar","baz"]}', '[{"op":"add","path":"/foo/1","value":"qux"}]', {"foo": ["bar", "qux", "baz"]}),
    ("A.3", '{"baz":"qux","foo":"bar"}', '[{"op":"remove","path":"/baz"}]', {"foo": "bar"}),
    ("A.4", '{"foo":["bar","qux","baz"]}', '[{"op":"remove","path":"/foo/1"}]', {"foo": ["bar", "baz"]}),
    (
        "A.5",
        '{"baz":"qux","foo":"bar"}',
        '[{"op":"replace","path":"/baz","value":"boo"}]',
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6",
        '{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}',
        '[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]',
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7",
        '{"foo":["all","grass","cows","eat"]}',
        '[{"op":"move","from":"/foo/1","path":"/foo/3"}]',
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8",
        '{"baz":"qux","foo":["a",2,"c"]}',
        '[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]',
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10",
        '{"foo":"bar"}',
        '[{"op":"add","path":"/child","value":{"grandchild":{}}}]',
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    ("A.11", '{"foo":"bar"}', '[{"op":"add","path":"/baz","value":"qux","xyz":123}]', {"foo": "bar", "baz": "qux"}),
    ("A.14", '{"/":9,"~1":10}', '[{"op":"test","path":"/~01","value":10}]', {"/": 9, "~1": 10}),
    (
        "A.16",
        '{"foo":["bar"]}',
        '[{"op":"add","path":"/foo/-","value":["abc","def"]}]',
        {"foo": ["bar", ["abc", "def"]]},
    ),
    ("copy", '{"a":{"b":[1]}}', '[{"op":"copy","from":"/a/b","path":"/c"}]', {"a": {"b": [1]}, "c": [1]}),
    ("replace-root", '{"a":1}', '[{"op":"replace","path":"","value":{"b":2}}]', {"b": 2}),
    ("test-number-value", '{"a":1.0}', '[{"op":"test","path":"/a","value":1}]', {"a": 1.0}),
    (
        "test-object-order",
        '{"a":{"x":1,"y":2}}',
        '[{"op":"test","path":"/a","value":{"y":2,"x":1}}]',
        {"a": {"x": 1, "y": 2}},
    ),
]


@pytest.mark.parametrize(("name", "document", "patch", "expected"), RFC_EXAMPLES, ids=[e[0] for e in RFC_EXAMPLES])
def test_rfc6902_examples(name: str, document: str, patch: str, expected: Any) -> None:
    assert run(document, patch) == expected


FAILURES = [
    ("A.9", '{"baz":"qux"}', '[{"op":"test","path":"/baz","value":"bar"}]'),
    ("A.12", '{"foo":"bar"}', '[{"op":"add","path":"/baz/bat","value":"qux"}]'),
    ("A.15", '{"/":9,"~1":10}', '[{"op":"test","path":"/~01","value":"10"}]'),
    ("test-string-vs-number", '{"a":"1"}', '[{"op":"test","path":"/a","value":1}]'),
    ("test-bool-vs-number", '{"a":true}', '[{"op":"test","path":"/a","value":1}]'),
    ("test-list-length", '{"a":[1,2]}', '[{"op":"test","path":"/a","value":[1]}]'),
    ("remove-missing", '{"a":1}', '[{"op":"remove","path":"/b"}]'),
    ("replace-missing", '{"a":1}', '[{"op":"replace","path":"/b","value":2}]'),
    ("array-index-too-big", '{"a":[1]}', '[{"op":"add","path":"/a/5","value":2}]'),
    ("array-index-not-a-number", '{"a":[1]}', '[{"op":"add","path":"/a/x","value":2}]'),
    ("bad-pointer", '{"a":1}', '[{"op":"add","path":"a","value":2}]'),
    ("unknown-op", '{"a":1}', '[{"op":"merge","path":"/a","value":2}]'),
    ("missing-value", '{"a":1}', '[{"op":"add","path":"/b"}]'),
    ("move-into-itself", '{"a":{"b":1}}', '[{"op":"move","from":"/a","path":"/a/b/c"}]'),
]


@pytest.mark.parametrize(("name", "document", "patch"), FAILURES, ids=[f[0] for f in FAILURES])
def test_rfc6902_failures_are_unprocessable(name: str, document: str, patch: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        apply_patch(loads_exact(document), loads_exact(patch))
    assert caught.value.issues[0].error_code == "YL-0600"


def test_a_patch_must_be_an_array() -> None:
    with pytest.raises(BadRequest):
        apply_patch(loads_exact('{"a":1}'), loads_exact('{"op":"remove","path":"/a"}'))


def test_numbers_keep_their_text() -> None:
    patched = apply_patch(
        loads_exact('{"dose":{"value":6.10},"count":1.0e2}'),
        loads_exact('[{"op":"add","path":"/strength","value":0.50},{"op":"copy","from":"/dose","path":"/copy"}]'),
    )
    text = dumps_exact(patched)
    assert b'"value":6.10' in text
    assert b'"count":1.0e2' in text
    assert b'"strength":0.50' in text
    assert text.count(b"6.10") == 2
