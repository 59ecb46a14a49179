"""Index rows for one resource, computed at write time from the search parameters' expressions.

Search never scans stored JSON: each write fills typed index tables (token, string, date,
reference, number, quantity, uri) and queries run on them. Composite parameters store each
component in its own typed table under ``code#k`` with a shared ``grp`` per matched item, so a
composite query is a join on ``grp``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.search.parameters import SearchParam, parameters_for
from gateway.search.values import ValueFormatError, date_range, index_decimal, normalise_string

_REF_RE = re.compile(
    r"^(?:(?P<base>https?://.+?)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]+)?$"
)
log = logging.getLogger("yaolian.search.extract")

#: How often each search parameter's expression failed to evaluate, by ``Type.code`` (a composite's
#: component as ``Type.code#k``). Such a failure does not block the write, but the resource then has
#: no index rows for that parameter and searches on it miss the resource: the first failure of each
#: parameter is logged as a warning, and every one is counted here (per process).
EVALUATION_FAILURES: Counter[str] = Counter()
_failures_lock = threading.Lock()

_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


@dataclass
class IndexRows:
    token: list[tuple[Any, ...]] = field(default_factory=list)
    string: list[tuple[Any, ...]] = field(default_factory=list)
    date: list[tuple[Any, ...]] = field(default_factory=list)
    reference: list[tuple[Any, ...]] = field(default_factory=list)
    number: list[tuple[Any, ...]] = field(default_factory=list)
    quantity: list[tuple[Any, ...]] = field(default_factory=list)
    uri: list[tuple[Any, ...]] = field(default_factory=list)

    def tables(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        for name in ("token", "string", "date", "reference", "number", "quantity", "uri"):
            yield name, getattr(self, name)


def parse_reference(reference: str) -> tuple[str | None, str | None, str | None]:
    """``(target_type, target_id, url)`` of a literal reference; url is kept when absolute."""
    if reference.startswith("#"):
        return None, None, None
    match = _REF_RE.match(reference)
    if match:
        url = reference if match.group("base") else None
        return match.group("type"), match.group("id"), url
    return None, None, reference


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return index_decimal(number) if number.is_finite() else None


def _token_rows(value: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    if isinstance(value, bool):
        yield None, "true" if value else "false", None
    elif isinstance(value, str | int | Decimal | float):
        yield None, str(value), None
    elif isinstance(value, dict):
        if "coding" in value or ("text" in value and "system" not in value and "value" not in value):
            # :text searches Coding.display and CodeableConcept.text alike (R5 search page)
            for coding in value.get("coding") or []:
                yield coding.get("system"), coding.get("code"), coding.get("display")
            if value.get("text"):
                yield None, None, value["text"]
        elif "value" in value and value.get("system") in _CONTACT_SYSTEMS:
            yield None, str(value["value"]), None
        elif "value" in value:  # Identifier
            type_text = (value.get("type") or {}).get("text")
            yield value.get("system"), str(value["value"]), type_text
        elif "code" in value:  # Coding
            yield value.get("system"), value.get("code"), value.get("display")


def _string_values(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        parts = _NAME_PARTS if ("family" in value or "given" in value) else _ADDRESS_PARTS
        for part in parts:
            item = value.get(part)
            if isinstance(item, list):
                yield from (x for x in item if isinstance(x, str))
            elif isinstance(item, str):
                yield item
        if not any(p in value for p in (*_NAME_PARTS, *_ADDRESS_PARTS)) and "value" in value:
            yield str(value["value"])


def _date_values(value: Any) -> Iterator[tuple[str, str]]:
    from gateway.search.values import MAX_DATE, MIN_DATE

    try:
        if isinstance(value, str):
            yield date_range(value)
        elif isinstance(value, dict):
            if "start" in value or "end" in value:  # Period
                low = date_range(value["start"])[0] if value.get("start") else MIN_DATE
                high = date_range(value["end"])[1] if value.get("end") else MAX_DATE
                yield low, high
            elif "event" in value or "repeat" in value:  # Timing
                ranges = [date_range(e) for e in value.get("event") or []]
                bounds = (value.get("repeat") or {}).get("boundsPeriod")
                if bounds:
                    ranges.extend(_date_values(bounds))
                if ranges:
                    yield min(r[0] for r in ranges), max(r[1] for r in ranges)
    except ValueFormatError:
        return


def _reference_rows(
    value: Any,
) -> Iterator[tuple[str | None, str | None, str | None, str | None, str | None]]:
    if isinstance(value, str):  # canonical / uri used as a reference
        canonical = value.split("|", 1)[0]
        ref_type, ref_id, _ = parse_reference(canonical)
        yield ref_type, ref_id, canonical, None, None
    elif isinstance(value, dict):
        if "concept" in value and "reference" not in value:
            return
        ref = value.get("reference")
        ident = value.get("identifier") or {}
        ref_type, ref_id, url = parse_reference(ref) if isinstance(ref, str) else (None, None, None)
        if ref_type is None and ref is None:
            ref_type = value.get("type")
        if ref_type or url or ident:
            yield ref_type, ref_id, url, ident.get("system"), ident.get("value")


def _quantity_rows(
    value: Any,
) -> Iterator[tuple[str | None, str | None, Decimal, Decimal, Decimal]]:
    if not isinstance(value, dict):
        return
    if "low" in value or "high" in value:  # Range
        low_q, high_q = value.get("low") or {}, value.get("high") or {}
        unit_q = low_q or high_q
        low = _as_decimal(low_q.get("value"))
        high = _as_decimal(high_q.get("value"))
        if low is None and high is None:
            return
        low_v = low if low is not None else Decimal("-1e18")
        high_v = high if high is not None else Decimal("1e18")
        yield unit_q.get("system"), unit_q.get("code") or unit_q.get("unit"), low_v, low_v, high_v
        return
    number = _as_decimal(value.get("value"))
    if number is not None:
        yield value.get("system"), value.get("code") or value.get("unit"), number, number, number


def _rows_for(
    param: SearchParam,
    kind: str,
    code: str,
    values: Iterable[Any],
    grp: int | None,
    rows: IndexRows,
    targets: frozenset[str],
) -> None:
    for value in values:
        if kind == "token":
            for system, token_code, text in _token_rows(value):
                norm_text = normalise_string(text) if isinstance(text, str) else None
                rows.token.append((code, system, token_code, norm_text, grp))
        elif kind == "string":
            for text in _string_values(value):
                rows.string.append((code, normalise_string(text)[:512], text[:512], grp))
        elif kind == "date":
            for low, high in _date_values(value):
                rows.date.append((code, low, high, grp))
        elif kind == "reference":
            for ref_type, ref_id, url, id_system, id_value in _reference_rows(value):
                if targets and ref_type is not None and ref_type not in targets:
                    continue
                rows.reference.append((code, ref_type, ref_id, url, id_system, id_value, grp))
        elif kind == "number":
            number = _as_decimal(value if not isinstance(value, dict) else value.get("value"))
            if number is not None:
                rows.number.append((code, number, number, grp))
        elif kind == "quantity":
            for system, unit_code, number, number_low, number_high in _quantity_rows(value):
                rows.quantity.append((code, system, unit_code, number, number_low, number_high, grp))
        elif kind == "uri":
            if isinstance(value, str):
                rows.uri.append((code, value[:1024], grp))


def extract(resource: dict[str, Any]) -> IndexRows:
    """All index rows of a resource (its ``meta`` must already hold the server's values)."""
    rows = IndexRows()
    params = parameters_for(resource["resourceType"])
    grp = 0
    for param in params.values():
        if param.type == "composite":
            for branch in param.branches:
                if branch.first is not None and branch.first not in resource:
                    continue
                for item in _safe_eval(branch.evaluate, resource, param):
                    grp += 1
                    for k, component in enumerate(param.components):
                        assert component.param is not None
                        values = _safe_eval(component.evaluate, item, param, f"#{k}")
                        _rows_for(
                            param,
                            component.param.type,
                            f"{param.code}#{k}",
                            values,
                            grp,
                            rows,
                            frozenset(),
                        )
            continue
        for branch in param.branches:
            if branch.first is not None and branch.first not in resource:
                continue  # most of a type's parameters read elements this resource does not have
            values = _safe_eval(branch.evaluate, resource, param)
            _rows_for(param, param.type, param.code, values, None, rows, branch.target_types)
    return rows


def _safe_eval(evaluate: Callable[[Any], list[Any]], node: Any, param: SearchParam, part: str = "") -> list[Any]:
    try:
        result = evaluate(node)
    except Exception as exc:  # a definition fhirpathpy cannot evaluate must not block a write...
        _failed(f"{param.resource_type}.{param.code}{part}", param.expression, exc)  # ...nor go unseen
        return []
    return [v for v in result if v is not None]


def _failed(key: str, expression: str, exc: Exception) -> None:
    with _failures_lock:
        EVALUATION_FAILURES[key] += 1
        first = EVALUATION_FAILURES[key] == 1
    if first:
        log.warning(
            "search parameter %s: %r could not be evaluated (%s: %s); resources get no index rows for it "
            "(counted in gateway.search.extract.EVALUATION_FAILURES, logged once per parameter)",
            key,
            expression,
            type(exc).__name__,
            exc,
        )
    else:
        log.debug("search parameter %s could not be evaluated again: %s", key, exc)
