"""Search: run the query, then ``_include``/``_revinclude`` (with ``:iterate``), then page links."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from gateway.search.parameters import parameters_for
from gateway.search.query import IncludeSpec, SearchQuery
from gateway.store.base import Store, StoredResource

MAX_INCLUDE_ROUNDS = 4
MAX_INCLUDED = 1000


def _targets_of(spec: IncludeSpec) -> list[str | None]:
    if spec.param is None or spec.source_type == "*":
        return [None]
    return [spec.param]


def run_includes(
    store: Store,
    query: SearchQuery,
    matches: list[StoredResource],
    screen: Callable[[list[StoredResource]], list[StoredResource]] | None = None,
    *,
    rounds: int = MAX_INCLUDE_ROUNDS,
    most: int = MAX_INCLUDED,
) -> list[StoredResource]:
    """The resources ``_include``/``_revinclude`` add to ``matches``, round by round
    (``:iterate`` follows from the last round). ``screen`` keeps what the caller may see of each
    round, before the next round follows references from it."""
    seen = {(m.res_type, m.res_id) for m in matches}
    included: list[StoredResource] = []
    frontier = list(matches)
    for round_number in range(rounds):  # settings max_include_depth, max_included
        found: list[tuple[str, str]] = []
        for spec in query.includes:
            if round_number > 0 and not spec.iterate:
                continue
            sources = [r for r in frontier if spec.source_type in ("*", r.res_type)]
            by_type: dict[str, list[str]] = {}
            for r in sources:
                by_type.setdefault(r.res_type, []).append(r.res_id)
            for res_type, ids in by_type.items():
                for param in _targets_of(spec):
                    found.extend(store.references_from(res_type, ids, param, spec.target_type))
        for spec in query.revincludes:
            if round_number > 0 and not spec.iterate:
                continue
            targets = [(r.res_type, r.res_id) for r in frontier]
            if not targets:
                continue
            if spec.param is not None and spec.param not in parameters_for(spec.source_type):
                continue
            found.extend((spec.source_type, rid) for rid in store.references_to(spec.source_type, spec.param, targets))
        new_keys = [k for k in dict.fromkeys(found) if k not in seen]
        if not new_keys:
            break
        fetched = [r for r in store.read_many(new_keys[: most - len(included)]) if not r.deleted]
        if screen is not None and fetched:
            fetched = screen(fetched)
        seen.update(new_keys)
        included.extend(fetched)
        frontier = fetched
        if len(included) >= most:
            break
    return included


def page_links(
    base: str,
    resource_type: str,
    params: list[tuple[str, str]],
    query: SearchQuery,
    total: int | None,
    returned: int,
    *,
    more: bool | None = None,
    last_id: str | None = None,
) -> list[tuple[str, str]]:
    """self/first/previous/next/last. ``more`` set means keyset paging (results in id order):
    next is ``_after=<last id>``, stable when resources are written between pages; previous and
    last (offsets) are given only for pages reached by offset."""
    # the links state the search as performed: parameters ignored under lenient handling are left out
    kept = [(k, v) for k, v in params if k not in ("_offset", "_count", "_after") and k not in query.ignored]

    def url(offset: int, after: str | None = None) -> str:
        position = ("_after", after) if after is not None else ("_offset", str(offset))
        items = [*kept, ("_count", str(query.count)), position]
        return f"{base}/{resource_type}?{urlencode(items)}"

    links = [("self", url(query.offset, query.after))]
    if query.summary == "count":  # only the total is asked for: there are no pages to link
        return links
    if more is not None:
        if query.count:
            links.append(("first", url(0)))
            if query.offset > 0 and query.after is None:
                links.append(("previous", url(max(0, query.offset - query.count))))
            if more and last_id is not None:
                links.append(("next", url(0, last_id)))
            if total is not None and total > 0 and query.after is None:
                links.append(("last", url(((total - 1) // query.count) * query.count)))
        return links
    if query.count:
        links.append(("first", url(0)))
        if query.offset > 0:
            links.append(("previous", url(max(0, query.offset - query.count))))
        has_more = (total is not None and query.offset + returned < total) or (
            total is None and returned == query.count
        )
        if has_more:
            links.append(("next", url(query.offset + query.count)))
        if total is not None and total > 0:
            last = ((total - 1) // query.count) * query.count
            links.append(("last", url(last)))
    return links
