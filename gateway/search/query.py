"""Turn search request parameters into a :class:`SearchQuery` (parsing and checking only).

AND by repeating a parameter, OR by commas, modifiers after ``:``, one or more chain levels
after ``.``. Result parameters (``_count``, ``_sort``, ``_include``…) are separated out. Unknown
parameters are errors under ``Prefer: handling=strict`` and reported back as ignored otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.errors import BadRequest, Issue, issue
from gateway.fhir.registry import resource_types
from gateway.search.parameters import SearchParam, parameters_for
from gateway.search.values import ValueFormatError, check_value, split_values

RESULT_PARAMS = frozenset(
    {
        "_count",
        "_offset",
        "_after",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_include",
        "_revinclude",
        "_format",
        "_pretty",
        "_contained",
        "_containedType",
    }
)
MODIFIERS = {
    "token": {"not", "text", "missing", "code-text"},
    "string": {"exact", "contains", "missing", "text"},
    "date": {"missing"},
    "reference": {"identifier", "missing", "type", "below", "above"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"below", "above", "missing"},
    "composite": {"missing"},
}


@dataclass
class Chain:
    target_types: tuple[str, ...]
    criterion: Criterion


@dataclass
class Criterion:
    """One occurrence of a parameter: its values are ORed; criteria of a query are ANDed."""

    param: SearchParam
    values: list[str]
    modifier: str | None = None
    chain: Chain | None = None
    name: str = ""


@dataclass(frozen=True)
class SortKey:
    param: SearchParam
    descending: bool


@dataclass(frozen=True)
class IncludeSpec:
    source_type: str
    param: str | None  # None means '*'
    target_type: str | None
    iterate: bool


@dataclass
class SearchQuery:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    includes: list[IncludeSpec] = field(default_factory=list)
    revincludes: list[IncludeSpec] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    after: str | None = None  # keyset cursor: ids after this one (only without _sort)
    total: str = "accurate"
    summary: str | None = None
    elements: list[str] | None = None
    ignored: list[str] = field(default_factory=list)

    def warnings(self) -> list[Issue]:
        return [
            issue("YL-0400", severity="warning", name=name, type=self.resource_type, expression=[name])
            for name in self.ignored
        ]


def _param(resource_type: str, name: str) -> SearchParam | None:
    return parameters_for(resource_type).get(name)


def parse_criterion(resource_type: str, key: str, value: str) -> Criterion | None:
    """One ``name[:modifier][.chain]=value`` pair; ``None`` for an unknown parameter name."""
    head, _, rest = key.partition(".")
    name, _, modifier = head.partition(":")
    param = _param(resource_type, name)
    if param is None:
        return None
    values = split_values(value)
    mod = modifier or None
    if rest:
        if param.type != "reference":
            raise BadRequest("YL-0405", name=key, reason=f"{name} is not a reference parameter")
        targets: tuple[str, ...]
        if mod and mod in resource_types():
            targets = (mod,)
        elif param.targets:
            targets = tuple(sorted(param.targets))
        else:
            raise BadRequest("YL-0405", name=key, reason="give the target type, as in subject:Patient.name")
        candidates = [t for t in targets if parse_criterion(t, rest, value) is not None]
        if not candidates:
            raise BadRequest("YL-0405", name=key, reason=f"no target of {name} has a parameter {rest}")
        inner = parse_criterion(candidates[0], rest, value)
        assert inner is not None
        return Criterion(param, values, None, Chain(tuple(candidates), inner), key)
    if mod is not None:
        allowed = MODIFIERS.get(param.type, set())
        is_type_modifier = param.type == "reference" and mod in resource_types()
        if mod not in allowed and not is_type_modifier:
            raise BadRequest("YL-0402", modifier=mod, name=name, kind=param.type, expression=[key])
        if mod == "missing" and value not in ("true", "false"):
            raise BadRequest("YL-0401", value=value, name=key, reason="use true or false")
    if mod != "missing":
        for item in values:
            _check(param, item, key)
    return Criterion(param, values, mod, None, key)


def _check(param: SearchParam, value: str, key: str) -> None:
    """A value the index cannot compare is the client's error, reported here: the store below
    raises only its own errors and must not be the one to tell a client what it sent wrong."""
    try:
        if param.type != "composite":
            check_value(param.type, value)
            return
        parts = split_values(value, "$")
        if len(parts) != len(param.components):
            raise ValueFormatError(f"expected {len(param.components)} components separated by $")
        for component, part in zip(param.components, parts, strict=True):
            if component.param is not None:
                check_value(component.param.type, part)
    except ValueFormatError as exc:
        raise BadRequest("YL-0401", value=value, name=key, reason=str(exc), expression=[key]) from None


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest("YL-0404", name=name, value=value, reason="not an integer") from None
    if number < low:
        raise BadRequest("YL-0404", name=name, value=value, reason=f"must be at least {low}")
    return min(number, high)


def _include(value: str, iterate: bool, rev: bool, resource_type: str) -> IncludeSpec:
    parts = value.split(":")
    source = parts[0]
    if source not in resource_types() and source != "*":
        raise BadRequest(
            "YL-0404",
            name="_revinclude" if rev else "_include",
            value=value,
            reason="unknown source type",
        )
    param = parts[1] if len(parts) > 1 and parts[1] != "*" else None
    if param is not None:
        sp = parameters_for(source).get(param) if source != "*" else None
        if sp is None or sp.type != "reference":
            raise BadRequest(
                "YL-0404",
                name="_include",
                value=value,
                reason=f"{param} is not a reference parameter of {source}",
            )
    target = parts[2] if len(parts) > 2 else None
    return IncludeSpec(source, param, target, iterate)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class SearchLimits:
    """What one request may ask for (settings ``max_search_params``, ``max_search_values``,
    ``max_includes``; issue 12). Counted after identical ``name=value`` pairs are merged."""

    params: int = 30
    values: int = 200
    includes: int = 10


def _over(count: int, limit: int, what: str, what_zh: str, setting: str) -> BadRequest:
    return BadRequest("YL-0801", count=count, what=what, what_zh=what_zh, limit=limit, setting=setting)


def check_limits(params: list[tuple[str, str]], limits: SearchLimits) -> list[tuple[str, str]]:
    """``params`` without repeats of an identical pair, or a 400 naming the limit it breaks
    (before any value is parsed: the check costs one pass over the query string)."""
    unique = list(dict.fromkeys(params))
    for key, value in unique:
        if _CONTROL.search(key) or _CONTROL.search(value):  # PostgreSQL text cannot hold a NUL
            found = _CONTROL.search(key + value)
            assert found is not None
            raise BadRequest("YL-0113", element=f"search parameter {key[:64]!r}", char=f"U+{ord(found.group()):04X}")
    criteria = [(k, v) for k, v in unique if v != "" and k.split(":", 1)[0] not in RESULT_PARAMS]
    if len(criteria) > limits.params:
        raise _over(len(criteria), limits.params, "search parameters", "检索参数", "max_search_params")
    values = sum(v.count(",") + 1 for _, v in criteria)
    if values > limits.values:
        raise _over(values, limits.values, "search values", "检索值", "max_search_values")
    includes = sum(v.count(",") + 1 for k, v in unique if k.split(":", 1)[0] in ("_include", "_revinclude"))
    if includes > limits.includes:
        raise _over(includes, limits.includes, "_include/_revinclude values", "_include/_revinclude 值", "max_includes")
    return unique


def parse_search(
    resource_type: str,
    params: list[tuple[str, str]],
    *,
    strict: bool,
    default_count: int,
    max_count: int,
    limits: SearchLimits = SearchLimits(),  # frozen: sharing the default is safe
) -> SearchQuery:
    query = SearchQuery(resource_type, count=default_count)
    for key, value in check_limits(params, limits):
        base = key.split(":", 1)[0]
        if base in RESULT_PARAMS:
            _result_param(query, key, value, max_count)
            continue
        if value == "":
            continue
        criterion = parse_criterion(resource_type, key, value)
        if criterion is None:
            if strict:
                raise BadRequest("YL-0400", name=key, type=resource_type, expression=[key])
            query.ignored.append(key)
            continue
        query.criteria.append(criterion)
    return query


def _result_param(query: SearchQuery, key: str, value: str, max_count: int) -> None:
    base, _, modifier = key.partition(":")
    if base == "_count":
        query.count = _int(key, value, 0, max_count)
    elif base == "_offset":
        query.offset = _int(key, value, 0, 10**9)
    elif base == "_after":  # the keyset cursor of our own next links (results in id order)
        query.after = value
    elif base == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise BadRequest("YL-0404", name=key, value=value, reason="use none, estimate or accurate")
        query.total = value
    elif base == "_summary":
        if value not in ("true", "false", "text", "data", "count"):
            raise BadRequest("YL-0404", name=key, value=value, reason="use true, false, text, data or count")
        query.summary = None if value == "false" else value
    elif base == "_elements":
        query.elements = [e.strip() for e in value.split(",") if e.strip()]
    elif base == "_sort":
        for raw in value.split(","):
            raw = raw.strip()
            descending = raw.startswith("-")
            name = raw.lstrip("-")
            param = _param(query.resource_type, name)
            if param is None or param.type in ("composite",):
                raise BadRequest("YL-0403", key=raw)
            if any(key.param.code == param.code for key in query.sort):
                continue  # a key already sorted on decides nothing more (issue 12: each costs a subquery)
            query.sort.append(SortKey(param, descending))
    elif base in ("_include", "_revinclude"):
        iterate = modifier in ("iterate", "recurse")
        for item in value.split(","):
            spec = _include(item.strip(), iterate, base == "_revinclude", query.resource_type)
            (query.revincludes if base == "_revinclude" else query.includes).append(spec)
