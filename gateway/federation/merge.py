"""Merging the answers of the store and the members: de-duplication, one order, pages.

- **De-duplication** by business identifier: two records of the same type sharing any
  identifier (``system|value``, e.g. the prescription number 处方号) are one prescription; the
  one last updated wins (a member that pushed it and also holds it live yields one entry).
- **Order**: ``-authoredon`` — a prescription's ``authoredOn``, a dispense's
  ``whenHandedOver`` (else ``whenPrepared``), in UTC, newest first; ties broken by type,
  member and id, so the order is total and the same on every request.
- **Pages** are cut after a *cursor* (the sort key of the last entry shown), not at an offset:
  page two starts strictly after what page one showed, so no entry is repeated or skipped
  however many members answer in whatever order. The cursor travels as an opaque token.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.errors import BadRequest
from gateway.fhir.json_text import dumps_keeping_numbers

SortKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Record:
    """A prescription or dispense from one source, ready to merge.

    Its sort key, business keys and last update are worked out once, when it is made: for a
    member's records that is as its answer arrives, while the other members are still being
    waited for, not in the merge after the last answer (which every query waits on)."""

    resource: dict[str, Any]
    member: str
    full_url: str
    local: bool
    sort_key: SortKey = field(init=False, compare=False)
    keys: tuple[str, ...] = field(init=False, compare=False)
    _text: list[bytes] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        resource = self.resource
        tiebreak = f"{resource.get('resourceType')}|{self.member}|{resource.get('id')}"
        object.__setattr__(self, "sort_key", (clinical_date(resource), tiebreak))
        object.__setattr__(self, "keys", business_keys(resource))
        object.__setattr__(self, "_text", [])

    @property
    def updated(self) -> str:
        """When the source last changed it: asked only of records that share an identifier."""
        return instant((self.resource.get("meta") or {}).get("lastUpdated"))

    def text(self) -> bytes:
        """The resource as JSON, rendered once (the resource is not changed after it is made)."""
        if not self._text:
            self._text.append(dumps_keeping_numbers(self.resource))
        return self._text[0]


def instant(value: Any) -> str:
    """A FHIR date/dateTime/instant as a sortable UTC text ('' when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return ""
    text = value.replace("Z", "+00:00")
    try:
        if len(text) <= 10:  # YYYY, YYYY-MM, YYYY-MM-DD
            parts = [*text.split("-"), "01", "01"][:3]
            parsed = datetime(int(parts[0]), int(parts[1]), int(parts[2]), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
    except ValueError:
        return ""
    # isoformat of the naive UTC time: the text strftime("%Y-%m-%dT%H:%M:%S.%f") gives, at a third of its cost
    return parsed.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def clinical_date(resource: dict[str, Any]) -> str:
    if resource.get("resourceType") == "MedicationDispense":
        return instant(resource.get("whenHandedOver") or resource.get("whenPrepared"))
    return instant(resource.get("authoredOn"))


def business_keys(resource: dict[str, Any]) -> tuple[str, ...]:
    rtype = resource.get("resourceType")
    keys = []
    for identifier in resource.get("identifier") or ():
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            keys.append(f"{rtype}|{identifier['system']}|{identifier['value']}")
    return tuple(keys)


def deduplicate(records: Iterable[Record]) -> list[Record]:
    """One record per business identifier, the last updated kept (the local one on a tie).

    Only records that share an identifier with another are ranked (most share none, and
    reading their update time would be wasted); the order of the result is not meaningful."""
    records = list(records)
    holders = Counter(key for record in records for key in set(record.keys))
    kept = [r for r in records if all(holders[k] == 1 for k in r.keys)]
    shared = [(n, r) for n, r in enumerate(records) if any(holders[k] > 1 for k in r.keys)]
    ranked = sorted(shared, key=lambda p: (p[1].updated, p[1].local, -p[0]), reverse=True)
    seen: set[str] = set()
    for _, record in ranked:
        keys = record.keys
        if any(k in seen for k in keys):
            continue
        seen.update(keys)
        kept.append(record)
    return kept


def ordered(records: Iterable[Record], descending: bool = True) -> list[Record]:
    """``-authoredon`` (newest first; ``descending`` off: ``authoredon``), a total order."""
    return sorted(records, key=lambda r: r.sort_key, reverse=descending)


def page(
    records: Sequence[Record], count: int, after: SortKey | None, descending: bool = True
) -> tuple[list[Record], SortKey | None]:
    """The ``count`` records after ``after`` (records in :func:`ordered` order), and the cursor
    of the next page (None when this is the last)."""
    start = 0
    if after is not None:
        cursor = after
        start = next(
            (i for i, r in enumerate(records) if (r.sort_key < cursor if descending else r.sort_key > cursor)),
            len(records),
        )
    shown = list(records[start : start + count])
    more = start + count < len(records)
    return shown, (shown[-1].sort_key if shown and more else None)


def encode_token(cursor: SortKey) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(cursor))).decode().rstrip("=")


def decode_token(token: str) -> SortKey:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        data = None
    if not (isinstance(data, list) and len(data) == 2 and all(isinstance(x, str) for x in data)):
        raise BadRequest("YL-1011", token=token[:40], expression=["_page"])
    return data[0], data[1]
