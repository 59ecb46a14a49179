"""Oracle: ``SqlTransaction.match_token`` (the prebuilt statement conditional create/update use for
``identifier=system|code``) answers exactly what the general search answers for the same parsed
criterion, ``search_ids``. Checked on SQLite and PostgreSQL over every token every official example
indexed, near misses of them, and made-up tricky ones: pipes, commas, ``$`` and backslashes escaped
in the query, LIKE wildcards, case, identifiers without a system or with an empty one, an id shared
by two types, several matches, and resources deleted since they were indexed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.search.extract import extract
from gateway.search.query import SearchQuery, parse_search
from gateway.service.writes import _single_token
from gateway.store.base import StoredResource
from gateway.store.sql import SqlStore, open_store

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "r5-examples"
LIMIT = 1000

TRICKY: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("Patient", "t-pipe", [{"system": "urn:sys|with|pipes", "value": "v|1"}]),
    ("Patient", "t-escapes", [{"system": "urn:esc,a$b\\c", "value": "a,b$c\\d"}]),
    ("Patient", "t-nosys", [{"value": "nosys"}]),
    ("Patient", "t-empty-system", [{"system": "", "value": "emptysys"}]),
    ("Patient", "t-dup-1", [{"system": "urn:dup", "value": "same"}]),
    ("Patient", "t-dup-2", [{"system": "urn:dup", "value": "same"}, {"system": "urn:dup", "value": "other"}]),
    ("Patient", "t-dup-3", [{"system": "urn:dup", "value": "same"}]),
    ("Patient", "t-dup-deleted", [{"system": "urn:dup", "value": "same"}]),
    ("Patient", "t-like-1", [{"system": "urn:x_y", "value": "u_1"}]),
    ("Patient", "t-like-2", [{"system": "urn:xzy", "value": "u_1"}, {"system": "urn:x%", "value": "%"}]),
    ("Patient", "t-case-1", [{"system": "urn:case", "value": "abc"}]),
    ("Patient", "t-case-2", [{"system": "urn:CASE", "value": "ABC"}]),
    ("Patient", "t-shared", [{"system": "urn:shared", "value": "patient"}]),
    ("Practitioner", "t-shared", [{"system": "urn:shared", "value": "p"}]),
    ("Patient", "t-resident", [{"system": "urn:oid:2.16.156.10011.1.3", "value": "11010519491231002X"}]),
    ("Patient", "t-space", [{"system": "urn:pad", "value": "pad "}, {"system": "urn:pad", "value": "居民 身份"}]),
]
DELETED = {("Patient", "t-dup-deleted")}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")


def _fast_path(query: SearchQuery) -> tuple[str, str, str] | None:
    """When the writer's conditional match takes ``match_token`` without an owner tag (the
    writer's own test, ``gateway.service.writes._single_token``)."""
    token = _single_token(query)
    if token is None or token[3] is not None:
        return None
    return token[0], token[1], token[2]


def _resources() -> list[dict[str, Any]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.json")):
        data = orjson.loads(path.read_bytes())
        if isinstance(data, dict) and isinstance(data.get("resourceType"), str) and data.get("id"):
            found.append(data)
    for rtype, rid, identifiers in TRICKY:
        found.append({"resourceType": rtype, "id": rid, "identifier": identifiers})
    return found


@pytest.fixture(scope="module")
def loaded(module_database_url: str) -> Iterator[tuple[SqlStore, set[tuple[str, str, str, str]]]]:
    """Every example and tricky resource written through ``put`` (every 7th example, and
    t-dup-deleted, deleted again); returns the store and every token the writes indexed."""
    store = open_store(module_database_url)
    store.create_schema()
    tokens: set[tuple[str, str, str, str]] = set()
    resources = _resources()
    with store.transaction() as tx:
        for n, data in enumerate(resources):
            rtype, rid = data["resourceType"], data["id"]
            index = extract(data)
            for param, system, code, _text, grp in index.token:
                if code is not None and grp is None:
                    tokens.add((rtype, param, system if system is not None else "\0", code))
            stored = StoredResource(rtype, rid, 1, "2025-01-01T00:00:00.000000Z", False, orjson.dumps(data), "PUT")
            tx.put(stored, index, expected_version=None)
            if (n % 7 == 3 and not rid.startswith("t-")) or (rtype, rid) in DELETED:
                gone = StoredResource(rtype, rid, 2, "2025-01-02T00:00:00.000000Z", True, None, "DELETE")
                tx.put(gone, None, expected_version=1)
    yield store, tokens
    store.dispose()


def _queries(tokens: set[tuple[str, str, str, str]]) -> list[tuple[str, str, str]]:
    """(type, param, search value) for every indexed token and a few near misses of each."""
    values: set[tuple[str, str, str]] = set()
    for rtype, param, system, code in tokens:
        sys_text = "" if system == "\0" else _escape(system)
        values.add((rtype, param, f"{sys_text}|{_escape(code)}"))
        values.add((rtype, param, f"{sys_text}|{_escape(code.swapcase())}"))
        values.add((rtype, param, f"{sys_text}x|{_escape(code)}"))
        values.add((rtype, param, _escape(code)))  # no system at all: not the fast path
    values.add(("Patient", "identifier", "urn:x?y|u?1"))
    values.add(("Patient", "identifier", "urn:x%|u%"))
    values.add(("Practitioner", "identifier", "urn:shared|patient"))
    return sorted(values)


def test_match_token_answers_what_the_general_search_answers(
    loaded: tuple[SqlStore, set[tuple[str, str, str, str]]],
) -> None:
    store, tokens = loaded
    queries = _queries(tokens)
    assert len(tokens) > 300  # every official example's tokens are in
    fast = declined = matched = several = 0
    with store.transaction() as tx:
        for rtype, param, value in queries:
            query = parse_search(rtype, [(param, value)], strict=True, default_count=LIMIT, max_count=LIMIT)
            token = _fast_path(query)
            if token is None:
                declined += 1
                continue
            fast += 1
            expected = tx.search_ids(query, LIMIT)
            assert tx.match_token(rtype, *token, limit=LIMIT) == expected, (rtype, param, value)
            assert tx.match_token(rtype, *token, limit=2) == tx.search_ids(query, 2), (rtype, param, value)
            matched += bool(expected)
            several += len(expected) > 1
    assert fast > 500 and declined > 300 and matched > 150 and several > 20, (fast, declined, matched, several)


def test_the_tricky_tokens_match_as_meant(loaded: tuple[SqlStore, set[tuple[str, str, str, str]]]) -> None:
    store, _ = loaded
    with store.transaction() as tx:
        assert tx.match_token("Patient", "identifier", "urn:dup", "same", limit=LIMIT) == [
            "t-dup-1",
            "t-dup-2",
            "t-dup-3",
        ]
        assert tx.match_token("Patient", "identifier", "urn:sys|with|pipes", "v|1", limit=LIMIT) == ["t-pipe"]
        assert tx.match_token("Patient", "identifier", "urn:esc,a$b\\c", "a,b$c\\d", limit=LIMIT) == ["t-escapes"]
        assert tx.match_token("Patient", "identifier", "urn:x_y", "u_1", limit=LIMIT) == ["t-like-1"]
        assert tx.match_token("Patient", "identifier", "urn:case", "ABC", limit=LIMIT) == []
        assert tx.match_token("Patient", "identifier", "urn:shared", "p", limit=LIMIT) == []
        assert tx.match_token("Practitioner", "identifier", "urn:shared", "p", limit=LIMIT) == ["t-shared"]


def test_tokens_without_a_system_are_left_to_the_general_search(
    loaded: tuple[SqlStore, set[tuple[str, str, str, str]]],
) -> None:
    """``|code`` means "no system" (absent or empty) to the search; the prebuilt statement compares
    ``system = ?`` and would miss the absent ones, so the fast path must not take them."""
    store, _ = loaded
    with store.transaction() as tx:
        for value, expected in (("|emptysys", ["t-empty-system"]), ("|nosys", ["t-nosys"]), ("nosys", ["t-nosys"])):
            query = parse_search("Patient", [("identifier", value)], strict=True, default_count=9, max_count=9)
            assert _fast_path(query) is None, value
            assert tx.search_ids(query, LIMIT) == expected, value
        assert tx.match_token("Patient", "identifier", "", "nosys", limit=LIMIT) == []  # why it must not


def test_match_token_with_an_owner_tag_answers_what_the_general_search_answers(
    loaded: tuple[SqlStore, set[tuple[str, str, str, str]]],
) -> None:
    """The conditional create of a member's record (``identifier=S|V&_tag=member|CODE``, the
    access policy's restriction) on the prebuilt statement, against the general search."""
    store, tokens = loaded
    tags = sorted({(rtype, system, code) for rtype, param, system, code in tokens if param == "_tag"})
    plain = sorted(t for t in tokens if t[1] not in ("_tag", "_id") and t[2] not in ("\0", ""))
    assert len(tags) > 3
    compared = matched = 0
    with store.transaction() as tx:
        for n, (rtype, param, system, code) in enumerate(plain[::2]):
            candidates = [t for t in tags if t[0] == rtype] + [(rtype, "urn:none", "nobody")]
            _, tag_system, tag_code = candidates[n % len(candidates)]
            params = [
                (param, f"{_escape(system)}|{_escape(code)}"),
                ("_tag", f"{_escape(tag_system)}|{_escape(tag_code)}"),
            ]
            query = parse_search(rtype, params, strict=True, default_count=LIMIT, max_count=LIMIT)
            token = _single_token(query)
            assert token is not None and token[3] == (tag_system, tag_code), params
            found = tx.match_token(rtype, token[0], token[1], token[2], limit=LIMIT, tag=token[3])
            assert found == tx.search_ids(query, LIMIT), (rtype, params)
            compared += 1
            matched += bool(found)
    assert compared > 80 and matched > 30, (compared, matched)
