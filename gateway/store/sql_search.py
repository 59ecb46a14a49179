"""Search queries as SQL over the index tables (dialect-neutral SQLAlchemy Core).

Each criterion becomes ``res_id IN (SELECT res_id FROM idx_x WHERE …)``, a form both SQLite
and PostgreSQL plan from the index side, so a patient-scoped search touches only the
patient's rows however large the table grows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement as _Col
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.sql.selectable import NamedFromClause

from gateway.search.parameters import SearchParam
from gateway.search.query import Criterion, SearchQuery, SortKey
from gateway.search.values import (
    ValueFormatError,
    date_range,
    normalise_string,
    number_range,
    split_prefix,
    split_token,
    split_values,
    unescape,
)
from gateway.store.errors import InvalidSearchValue
from gateway.store.schema import INDEX_TABLES, resources

Clause = ColumnElement[bool]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _bad(criterion: Criterion, value: str, reason: str) -> InvalidSearchValue:
    """The query parser (:func:`gateway.search.query.parse_criterion`) rejects such values before
    they get here; a query built some other way meets this store-level error instead."""
    return InvalidSearchValue(criterion.name or criterion.param.code, value, reason)


def _token_clause(t: FromClause, value: str, modifier: str | None) -> Clause:
    if modifier in ("text", "code-text"):
        norm = _like_escape(normalise_string(unescape(value)))
        clause = or_(t.c.text.like(norm + "%", escape="\\"), t.c.text.like("% " + norm + "%", escape="\\"))
        if modifier == "code-text":
            clause = or_(clause, t.c.code.like(_like_escape(unescape(value)) + "%", escape="\\"))
        return clause
    system, code = split_token(value)
    parts: list[Clause] = []
    if system == "":
        parts.append(or_(t.c.system.is_(None), t.c.system == ""))
    elif system is not None:
        parts.append(t.c.system == system)
    if code is not None:
        parts.append(t.c.code == code)
    return and_(*parts) if parts else true()


def _string_clause(t: FromClause, value: str, modifier: str | None) -> Clause:
    raw = unescape(value)
    if modifier == "exact":
        return t.c.exact == raw
    norm = _like_escape(normalise_string(raw))
    if modifier in ("contains", "text"):
        return t.c.norm.like("%" + norm + "%", escape="\\")
    return t.c.norm.like(norm + "%", escape="\\")


def _date_clause(t: FromClause, value: str, criterion: Criterion) -> Clause:
    prefix, text = split_prefix(value)
    try:
        low, high = date_range(text)
    except ValueFormatError as exc:
        raise _bad(criterion, value, str(exc)) from None
    rl, rh = t.c.low, t.c.high
    within = and_(rl >= low, rh <= high)
    if prefix == "eq":
        return within
    if prefix == "ne":
        return not_(within)
    if prefix == "gt":
        return rh > high
    if prefix == "lt":
        return rl < low
    if prefix == "ge":
        return or_(rh > high, within)
    if prefix == "le":
        return or_(rl < low, within)
    if prefix == "sa":
        return rl > high
    if prefix == "eb":
        return rh < low
    # ap: within 10% of the distance between the value and now (R5 search page)
    now = datetime.now(UTC).replace(tzinfo=None)
    start = datetime.fromisoformat(low)
    gap = abs(now - start) * 0.1
    lo = (start - gap).isoformat(timespec="microseconds") if start - gap > datetime.min + gap else low
    hi_dt = datetime.fromisoformat(high) + gap if datetime.fromisoformat(high) < datetime.max - gap else None
    hi = hi_dt.isoformat(timespec="microseconds") if hi_dt else high
    return and_(rl <= hi, rh >= lo)


def _number_compare(
    col_low: ColumnElement[Any], col_high: ColumnElement[Any], prefix: str, value: Decimal, low: Decimal, high: Decimal
) -> Clause:
    if prefix == "eq":
        return and_(col_low >= low, col_high < high)
    if prefix == "ne":
        return not_(and_(col_low >= low, col_high < high))
    if prefix in ("gt", "sa"):
        return col_low > value
    if prefix in ("lt", "eb"):
        return col_high < value
    if prefix == "ge":
        return col_high >= value
    if prefix == "le":
        return col_low <= value
    margin = abs(value) * Decimal("0.1")
    return and_(col_high >= value - margin, col_low <= value + margin)


def _number_clause(t: FromClause, value: str, criterion: Criterion) -> Clause:
    prefix, text = split_prefix(value)
    try:
        number, low, high = number_range(text)
    except ValueFormatError as exc:
        raise _bad(criterion, value, str(exc)) from None
    return _number_compare(t.c.low, t.c.high, prefix, number, low, high)


def _quantity_clause(t: FromClause, value: str, criterion: Criterion) -> Clause:
    parts = [unescape(p) for p in split_values(value, "|")]
    prefix, text = split_prefix(parts[0])
    try:
        number, low, high = number_range(text)
    except ValueFormatError as exc:
        raise _bad(criterion, value, str(exc)) from None
    clauses = [_number_compare(t.c.low, t.c.high, prefix, number, low, high)]
    system = parts[1] if len(parts) > 1 else ""
    code = parts[2] if len(parts) > 2 else ""
    if system:
        clauses.append(t.c.system == system)
    if code:
        clauses.append(t.c.code == code)
    return and_(*clauses)


def _path_clause(column: Any, raw: str, modifier: str) -> Clause:
    """``:below``/``:above`` follow the path hierarchy: ``…/fhir`` is above ``…/fhir/v2``, not ``…/fhirx``."""
    if modifier == "below":
        below = raw if raw.endswith("/") else raw + "/"
        return or_(column == raw, column.like(_like_escape(below) + "%", escape="\\"))
    return or_(column == raw, literal(raw).like(column.concat("/%")))


def _uri_clause(t: FromClause, value: str, modifier: str | None) -> Clause:
    raw = unescape(value)
    if modifier in ("below", "above"):
        return _path_clause(t.c.uri, raw, modifier)
    return t.c.uri == raw


def _reference_clause(t: FromClause, value: str, criterion: Criterion, base_url: str | None) -> Clause:
    raw = unescape(value)
    modifier = criterion.modifier
    if modifier == "identifier":
        system, code = split_token(value)
        parts: list[Clause] = []
        if system:
            parts.append(t.c.ident_system == system)
        if code is not None:
            parts.append(t.c.ident_value == code)
        return and_(*parts) if parts else false()
    if modifier in ("below", "above"):  # canonical references (``_profile``): by URL path
        return _path_clause(t.c.url, raw.split("|", 1)[0], modifier)
    type_filter = modifier if modifier and modifier not in ("missing", "type") else None
    if base_url and raw.startswith(base_url.rstrip("/") + "/"):
        raw = raw[len(base_url.rstrip("/")) + 1 :]
    if "/" not in raw:
        clause: Clause = t.c.target_id == raw
        if type_filter:
            clause = and_(clause, t.c.target_type == type_filter)
        return clause
    from gateway.search.extract import parse_reference

    ref_type, ref_id, url = parse_reference(raw)
    if ref_type and not url:
        return and_(t.c.target_type == ref_type, t.c.target_id == ref_id)
    return t.c.url == raw.split("|", 1)[0]


def _value_clause(t: FromClause, kind: str, value: str, criterion: Criterion, base_url: str | None) -> Clause:
    modifier = criterion.modifier
    if kind == "token":
        return _token_clause(t, value, modifier)
    if kind == "string":
        return _string_clause(t, value, modifier)
    if kind == "date":
        return _date_clause(t, value, criterion)
    if kind == "number":
        return _number_clause(t, value, criterion)
    if kind == "quantity":
        return _quantity_clause(t, value, criterion)
    if kind == "uri":
        return _uri_clause(t, value, modifier)
    if kind == "reference":
        return _reference_clause(t, value, criterion, base_url)
    raise _bad(criterion, value, f"parameter type {kind} is not searchable")


def _owned(t: FromClause, resource_type: str, param: str) -> list[Clause]:
    return [t.c.res_type == resource_type, t.c.param == param]


def _column_criterion(criterion: Criterion, resource_type: str) -> Clause:
    code = criterion.param.code
    clauses: list[Clause] = []
    for value in criterion.values:
        if code == "_id":
            clauses.append(resources.c.res_id == unescape(value))
        else:  # _lastUpdated: an instant, so the stored range is one point
            prefix, text = split_prefix(value)
            try:
                low, high = date_range(text)
            except ValueFormatError as exc:
                raise _bad(criterion, value, str(exc)) from None
            col = func.substr(resources.c.last_updated, 1, 26)
            clauses.append(
                {
                    "eq": and_(col >= low, col <= high),
                    "ne": or_(col < low, col > high),
                    "gt": col > high,
                    "sa": col > high,
                    "lt": col < low,
                    "eb": col < low,
                    "ge": col >= low,
                    "le": col <= high,
                    "ap": and_(col >= low, col <= high),
                }[prefix]
            )
    clause = or_(*clauses)
    return not_(clause) if criterion.modifier == "not" else clause


def criterion_clause(criterion: Criterion, resource_type: str, base_url: str | None = None) -> Clause:
    """SQL condition on ``resources`` for one criterion (its values ORed)."""
    param = criterion.param
    if param.code in ("_id", "_lastUpdated"):
        return _column_criterion(criterion, resource_type)
    if criterion.modifier == "missing":
        table = INDEX_TABLES.get(param.type if param.type != "composite" else "token")
        assert table is not None
        code = param.code if param.type != "composite" else f"{param.code}#0"
        present = resources.c.res_id.in_(select(table.c.res_id).where(*_owned(table, resource_type, code)))
        return not_(present) if criterion.values[0] == "true" else present
    if criterion.chain is not None:
        return _chain_clause(criterion, resource_type)
    if param.type == "composite":
        return or_(*(_composite_clause(criterion, resource_type, v, base_url) for v in criterion.values))
    table = INDEX_TABLES[param.type]
    alias = table.alias()
    matches = [_value_clause(alias, param.type, v, criterion, base_url) for v in criterion.values]
    sub = select(alias.c.res_id).where(*_owned(alias, resource_type, param.code), or_(*matches))
    if criterion.modifier == "not":
        return resources.c.res_id.not_in(sub)
    return resources.c.res_id.in_(sub)


def _chain_clause(criterion: Criterion, resource_type: str) -> Clause:
    assert criterion.chain is not None
    ref = INDEX_TABLES["reference"].alias()
    branches = []
    for target in criterion.chain.target_types:
        from gateway.search.query import parse_criterion

        inner = criterion.chain.criterion
        if target != inner.param.resource_type:
            reparsed = parse_criterion(target, inner.name, ",".join(criterion.values))
            if reparsed is None:
                continue
            inner = reparsed
        inner_clause = criterion_clause(inner, target)
        target_ids = select(resources.c.res_id).where(
            resources.c.res_type == target, resources.c.deleted == false(), inner_clause
        )
        branches.append(and_(ref.c.target_type == target, ref.c.target_id.in_(target_ids)))
    sub = select(ref.c.res_id).where(*_owned(ref, resource_type, criterion.param.code), or_(*branches))
    return resources.c.res_id.in_(sub)


def _composite_clause(criterion: Criterion, resource_type: str, value: str, base_url: str | None) -> Clause:
    param = criterion.param
    parts = split_values(value, "$")
    if len(parts) != len(param.components):
        raise _bad(criterion, value, f"expected {len(param.components)} components separated by $")
    aliases: list[NamedFromClause] = []
    clauses: list[Clause] = []
    for k, (component, part) in enumerate(zip(param.components, parts, strict=True)):
        assert component.param is not None
        alias = INDEX_TABLES[component.param.type].alias()
        sub_criterion = Criterion(component.param, [part], None, None, criterion.name)
        clauses.extend(_owned(alias, resource_type, f"{param.code}#{k}"))
        clauses.append(_value_clause(alias, component.param.type, part, sub_criterion, base_url))
        if aliases:
            first = aliases[0]
            clauses.append(and_(alias.c.res_id == first.c.res_id, alias.c.grp == first.c.grp))
        aliases.append(alias)
    return resources.c.res_id.in_(select(aliases[0].c.res_id).where(*clauses))


def where_clauses(query: SearchQuery, base_url: str | None = None) -> list[Clause]:
    clauses: list[Clause] = [
        resources.c.res_type == query.resource_type,
        resources.c.deleted == false(),
    ]
    clauses.extend(criterion_clause(c, query.resource_type, base_url) for c in query.criteria)
    return clauses


_SORT_COLUMN = {
    "token": "code",
    "string": "norm",
    "uri": "uri",
    "reference": "target_id",
    "number": "low",
    "quantity": "value",
}


def _sort_expression(key: SortKey, resource_type: str) -> Any:
    param: SearchParam = key.param
    if param.code == "_id":
        return resources.c.res_id
    if param.code == "_lastUpdated":
        return resources.c.last_updated
    table = INDEX_TABLES[param.type].alias()
    if param.type == "date":
        column = table.c.high if key.descending else table.c.low
    else:
        column = table.c[_SORT_COLUMN[param.type]]
    agg = func.max(column) if key.descending else func.min(column)
    # One lookup per row, by its owner: ``param || ''`` keeps the planner off the
    # (res_type, param, ...) lookup index, which SQLite without statistics chose here and then
    # scanned all of that parameter's rows for every row (issue 12: 20,000 patients sorted ran
    # past the statement timeout; 0.1 s with the owner index).
    return (
        select(agg)
        .where(
            table.c.res_type == resource_type,
            table.c.res_id == resources.c.res_id,
            table.c.param.concat("") == param.code,
        )
        .scalar_subquery()
    )


def search_select(query: SearchQuery, base_url: str | None = None) -> Select[Any]:
    stmt = select(resources.c.res_id).where(*where_clauses(query, base_url))
    if query.after is not None and not query.sort:
        stmt = stmt.where(resources.c.res_id > query.after)
    order: list[_Col[Any]] = []
    for key in query.sort:
        expression = _sort_expression(key, query.resource_type)
        # missing values last in both directions, the same on SQLite and PostgreSQL
        order.append(expression.is_(None))
        order.append(expression.desc() if key.descending else expression.asc())
    order.append(resources.c.res_id.asc())
    return stmt.order_by(*order)


def count_select(query: SearchQuery, base_url: str | None = None) -> Select[Any]:
    return select(func.count()).select_from(resources).where(*where_clauses(query, base_url))
