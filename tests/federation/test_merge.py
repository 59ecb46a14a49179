"""Merging answers: identifiers, order, pages that never repeat or skip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.federation.merge import Record, decode_token, deduplicate, encode_token, instant, ordered, page


def rx(rid: str, authored: str | None, rx_no: str | None = None, updated: str | None = None) -> dict[str, object]:
    resource: dict[str, object] = {"resourceType": "MedicationRequest", "id": rid}
    if authored:
        resource["authoredOn"] = authored
    if rx_no:
        resource["identifier"] = [{"system": "urn:oid:2.16.156.10011.1.20", "value": rx_no}]
    if updated:
        resource["meta"] = {"lastUpdated": updated}
    return resource


def test_instants_compare_across_time_zones_and_precisions() -> None:
    assert instant("2026-11-02T09:00:00+08:00") == "2026-11-02T01:00:00.000000"
    assert instant("2026-11-02T01:00:00Z") == instant("2026-11-02T09:00:00+08:00")
    assert instant("2026-11") == "2026-11-01T00:00:00.000000"
    assert instant("not a date") == "" and instant(None) == ""


def test_dedup_keeps_the_last_updated_and_the_local_on_a_tie() -> None:
    a = Record(rx("a", "2026-01-01", "R1", "2026-02-01T00:00:00Z"), "m1", "u/a", local=False)
    b = Record(rx("b", "2026-01-01", "R1", "2026-03-01T00:00:00Z"), "m2", "u/b", local=False)
    c = Record(rx("c", "2026-01-01", "R2", "2026-03-01T00:00:00Z"), "m2", "u/c", local=False)
    d = Record(rx("d", "2026-01-01", "R2", "2026-03-01T00:00:00Z"), "", "u/d", local=True)
    e = Record(rx("e", "2026-01-01"), "m1", "u/e", local=False)  # no identifier: never a duplicate
    kept = {r.full_url for r in deduplicate([a, b, c, d, e])}
    assert kept == {"u/b", "u/d", "u/e"}


def _greedy_over_all(records: list[Record]) -> set[str]:
    """The first form of the rule, every record ranked: the oracle for the one that ranks only
    records sharing an identifier."""
    ranked = sorted(enumerate(records), key=lambda p: (p[1].updated, p[1].local, -p[0]), reverse=True)
    seen: set[str] = set()
    kept = set()
    for _, record in ranked:
        if any(k in seen for k in record.keys):
            continue
        seen.update(record.keys)
        kept.add(record.full_url)
    return kept


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(["R1", "R2", "R3", "R4"]), max_size=3),
            st.sampled_from(["2026-01-01T00:00:00Z", "2026-02-01T00:00:00+08:00", "2026-03-01T00:00:00Z", None]),
            st.booleans(),
        ),
        max_size=25,
    )
)
def test_dedup_ranking_only_shared_records_agrees_with_ranking_all(
    items: list[tuple[list[str], str | None, bool]],
) -> None:
    records = []
    for n, (numbers, updated, local) in enumerate(items):
        resource = rx(f"r{n}", "2026-01-01")
        resource["identifier"] = [{"system": "urn:rx", "value": v} for v in numbers]
        if updated:
            resource["meta"] = {"lastUpdated": updated}
        records.append(Record(resource, "" if local else f"m{n % 3}", f"u{n}", local=local))
    assert {r.full_url for r in deduplicate(records)} == _greedy_over_all(records)


def test_dispense_and_prescription_sharing_a_number_are_not_duplicates() -> None:
    dispense = {"resourceType": "MedicationDispense", "id": "d", "identifier": [{"system": "s", "value": "1"}]}
    request = {"resourceType": "MedicationRequest", "id": "r", "identifier": [{"system": "s", "value": "1"}]}
    assert len(deduplicate([Record(dispense, "m", "d", False), Record(request, "m", "r", False)])) == 2


@given(
    st.lists(st.tuples(st.sampled_from(["2026-01-01", "2026-01-02", None]), st.integers(0, 3)), max_size=40),
    st.integers(1, 7),
    st.booleans(),
)
def test_paging_by_cursor_never_repeats_or_skips(
    items: list[tuple[str | None, int]], count: int, descending: bool
) -> None:
    made = (Record(rx(f"r{n}", day), f"m{member}", f"u{n}", False) for n, (day, member) in enumerate(items))
    records = ordered(made, descending)
    seen: list[str] = []
    cursor = None
    while True:
        after = decode_token(encode_token(cursor)) if cursor else None
        shown, cursor = page(records, count, after, descending)
        seen += [r.full_url for r in shown]
        if cursor is None:
            break
    assert seen == [r.full_url for r in records]


def test_a_forged_token_is_refused() -> None:
    with pytest.raises(BadRequest) as raised:
        decode_token("bm90IGpzb24")
    assert raised.value.issues[0].error_code == "YL-1011"
