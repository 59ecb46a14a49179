"""The FHIR service: interactions independent of HTTP, shared by REST, Bundles and adapters."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from gateway.errors import BadRequest, Gone, NotFound, operation_outcome
from gateway.hooks import Hidden, HistoryPage, Hooks, Pointcut, RequestContext, SearchResults
from gateway.search.query import SearchLimits, SearchQuery, _int, parse_search
from gateway.search.values import ValueFormatError, date_range
from gateway.service.bundles import Entry, render_bundle
from gateway.service.ports import Validator
from gateway.service.projection import project
from gateway.service.searching import page_links, run_includes
from gateway.service.served import ServedDefinitions
from gateway.service.transactions import BundleProcessor
from gateway.service.write_path import WritePath
from gateway.service.writes import Writer, require_id, require_type
from gateway.settings import Settings
from gateway.store.base import Cancellation, QueryTimeout, Store, StoredResource, StoreTransaction, cancellable

T = TypeVar("T")
__all__ = ["Cancellation", "FhirService", "cancellable"]  # the api cancels reads through the service


@dataclass
class _Page:
    """One page of search matches as shown, with what its links need."""

    results: SearchResults
    returned: int  # ids the store gave for the page (hooks may show fewer)
    more: bool | None  # keyset paging: whether a next page exists
    last: str | None  # keyset paging: the id the next page starts after


@contextmanager
def _within_time() -> Iterator[None]:
    """A read the store cancelled at ``statement_timeout_ms`` is the client's 400 (issue 12)."""
    try:
        yield
    except QueryTimeout as exc:
        raise BadRequest("YL-0802", limit=exc.limit_ms, setting="statement_timeout_ms") from None


class FhirService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        hooks: Hooks | None = None,
        validator: Validator | None = None,
        *,
        stage_writes: bool = True,
        served: ServedDefinitions | None = None,
    ) -> None:
        """``stage_writes`` off runs every write inside its transaction; the oracle tests
        compare that with the staged way (:mod:`gateway.service.write_path`). ``served``: the
        conformance files read and searched next to the store, never written
        (:mod:`gateway.service.served`)."""
        self.store = store
        self.settings = settings
        self.hooks = hooks or Hooks()
        self.writer = Writer(self.hooks, settings.validation_mode, validator)
        self.served = served
        self.writer.served = served
        self.writes = WritePath(store, stage=stage_writes)
        self.search_limits = SearchLimits(settings.max_search_params, settings.max_search_values, settings.max_includes)

    def within(self, tx: StoreTransaction) -> FhirService:
        """This service reading inside ``tx`` (a GET entry of a transaction sees its writes)."""
        view = copy.copy(self)
        view.store = tx.reader()
        return view

    # -- reads -------------------------------------------------------------------------
    # Every read of the gateway comes through here and passes the read hook points
    # (gateway/hooks.py); nothing in gateway/api reads ``self.store`` (tests/api/test_read_hooks.py).
    def read(self, resource_type: str, resource_id: str, ctx: RequestContext) -> StoredResource:
        require_type(resource_type)
        require_id(resource_type, resource_id)
        found = self.served.read(resource_type, resource_id) if self.served is not None else None
        stored = self._shown(found or self.store.read(resource_type, resource_id), ctx)
        if stored is None:
            raise NotFound("YL-0201", type=resource_type, id=resource_id)
        if stored.deleted:
            raise Gone("YL-0203", type=resource_type, id=resource_id, vid=stored.version)
        return stored

    @_within_time()
    def vread(self, resource_type: str, resource_id: str, version: str, ctx: RequestContext) -> StoredResource:
        require_type(resource_type)
        require_id(resource_type, resource_id)
        # a version the store's integer column cannot hold is simply not there (no 500)
        number = int(version) if version.isascii() and version.isdigit() and len(version) <= 10 else -1
        found = None
        if 0 < number < 2**31:
            served = self.served.vread(resource_type, resource_id, number) if self.served is not None else None
            found = served or self.store.vread(resource_type, resource_id, number)
        stored = self._shown(found, ctx)
        if stored is None:
            raise NotFound("YL-0202", type=resource_type, id=resource_id, vid=version)
        if stored.deleted:
            raise Gone("YL-0203", type=resource_type, id=resource_id, vid=version)
        return stored

    def read_reference(self, reference: str, ctx: RequestContext) -> StoredResource | None:
        """The resource a relative reference (``Patient/123``) names, or None when it is not
        there to be read: malformed, of an unknown type, missing, deleted, or hidden by a hook."""
        resource_type, _, resource_id = reference.partition("/")
        if not resource_id or "/" in resource_id:
            return None
        try:
            return self.read(resource_type, resource_id, ctx)
        except (NotFound, Gone):
            return None

    def _shown(self, stored: StoredResource | None, ctx: RequestContext) -> StoredResource | None:
        """``stored`` after BEFORE_READ_RESPONSE: None when a hook hides it (the caller gets the
        404 of a missing resource). Deleted versions pass the hooks too, so a hook can hide that
        a resource ever existed rather than let a 410 tell."""
        if stored is None or Pointcut.BEFORE_READ_RESPONSE not in self.hooks:
            return stored
        try:
            self.hooks.run(Pointcut.BEFORE_READ_RESPONSE, ctx, stored)
        except Hidden:
            return None
        return stored

    @_within_time()
    def history(
        self,
        resource_type: str | None,
        resource_id: str | None,
        params: list[tuple[str, str]],
        ctx: RequestContext,
    ) -> bytes:
        if resource_type:
            require_type(resource_type)
        if resource_type and resource_id:
            require_id(resource_type, resource_id)
        values = dict(params)
        count = _int(
            "_count",
            values.get("_count", str(self.settings.default_count)),
            0,
            self.settings.max_count,
        )
        offset = _int("_offset", values.get("_offset", "0"), 0, 10**9)
        since = at = None
        try:
            if "_since" in values:
                since = date_range(values["_since"])[0] + "Z"
            if "_at" in values:
                low, high = date_range(values["_at"])
                at = (low + "Z", high + "Z")
        except ValueFormatError as exc:
            raise BadRequest(
                "YL-0404",
                name="_since/_at",
                value=values.get("_since") or values.get("_at"),
                reason=str(exc),
            ) from None
        if resource_type and resource_id and self.store.read(resource_type, resource_id) is None:
            raise NotFound("YL-0201", type=resource_type, id=resource_id)
        versions, total = self.store.history(resource_type, resource_id, since=since, at=at, count=count, offset=offset)
        returned = len(versions)  # the page the store gave, which hooks may thin out
        if Pointcut.BEFORE_HISTORY_RESPONSE in self.hooks:
            page = HistoryPage(resource_type, resource_id, versions, total)
            try:
                self.hooks.run(Pointcut.BEFORE_HISTORY_RESPONSE, ctx, page)
            except Hidden:
                if resource_type and resource_id:
                    raise NotFound("YL-0201", type=resource_type, id=resource_id) from None
                page.entries, page.total = [], 0
            versions, total = page.entries, page.total
        base = ctx.base_url
        entries = []
        for v in versions:
            url = f"{base}/{v.res_type}/{v.res_id}"
            request_url = f"{v.res_type}/{v.res_id}" if v.method != "POST" else v.res_type
            # version 1 was a create whether it came by POST or by create-on-update PUT
            status = "204 No Content" if v.deleted else ("201 Created" if v.version == 1 else "200 OK")
            entries.append(
                Entry(
                    full_url=url,
                    resource=None if v.deleted else v.body,
                    request={"method": v.method or "PUT", "url": request_url},
                    response={"status": status, "etag": v.etag, "lastModified": v.last_updated},
                )
            )
        path = "/".join(p for p in (resource_type, resource_id, "_history") if p)
        kept = [(k, v) for k, v in params if k not in ("_count", "_offset")]

        def link(off: int) -> str:
            return f"{base}/{path}?{urlencode([*kept, ('_count', str(count)), ('_offset', str(off))])}"

        links = [("self", link(offset))]
        if offset + returned < total and count:
            links.append(("next", link(offset + count)))
        if offset > 0:
            links.append(("previous", link(max(0, offset - count))))
        return render_bundle("history", entries, total=total, links=links)

    # -- search ------------------------------------------------------------------------
    def parse_query(self, resource_type: str, params: list[tuple[str, str]], ctx: RequestContext) -> SearchQuery:
        require_type(resource_type)
        strict = ctx.strict_handling if ctx.strict_handling is not None else self.settings.search_handling == "strict"
        return parse_search(
            resource_type,
            params,
            strict=strict,
            default_count=self.settings.default_count,
            max_count=self.settings.max_count,
            limits=self.search_limits,
        )

    @_within_time()
    def search(self, resource_type: str, params: list[tuple[str, str]], ctx: RequestContext) -> bytes:
        query = self.parse_query(resource_type, params, ctx)
        page = self._matches(query, ctx)
        matches = page.results.matches
        included = self._includes(query, matches, page.results.total, ctx)
        base = ctx.base_url
        entries = [
            Entry(
                f"{base}/{r.res_type}/{r.res_id}",
                project(r.body or b"{}", r.res_type, query.summary, query.elements),
                "match",
            )
            for r in matches
        ]
        entries.extend(Entry(f"{base}/{r.res_type}/{r.res_id}", r.body, "include") for r in included)
        warnings = query.warnings()
        if warnings:
            entries.append(Entry(resource=orjson.dumps(operation_outcome(warnings)), search_mode="outcome"))
        total = page.results.total
        links = page_links(base, resource_type, params, query, total, page.returned, more=page.more, last_id=page.last)
        return render_bundle("searchset", entries, total=total, links=links)

    @_within_time()
    def find(self, resource_type: str, params: list[tuple[str, str]], ctx: RequestContext) -> list[StoredResource]:
        """The matches of the first page of a search, as resources (no includes): for code that
        searches to work on what it finds (``$hl7v2``), through the same hook points."""
        return self._matches(self.parse_query(resource_type, params, ctx), ctx).results.matches

    def _matches(self, query: SearchQuery, ctx: RequestContext) -> _Page:
        """One page of matches: BEFORE_SEARCH may restrict the query before the store runs it
        (so totals and paging count only what is shown), BEFORE_SEARCH_RESPONSE thins out what
        it found."""
        if Pointcut.BEFORE_SEARCH in self.hooks:
            self.hooks.run(Pointcut.BEFORE_SEARCH, ctx, query)
        want_total = query.total != "none"
        count = 0 if query.summary == "count" else query.count
        # Results in id order page by keyset (``_after``): a write between two pages cannot
        # shift them. One extra row tells whether a next page exists.
        keyset = not query.sort and count > 0
        limit, counted = count + 1 if keyset else count, want_total or query.summary == "count"
        served = self.served if self.served is not None and self.served.covers(query.resource_type) else None
        if served is None:
            found = self.store.search(query, count=limit, offset=query.offset, total=counted, base_url=ctx.base_url)
        else:  # the served conformance files and the stored resources of their type, one page
            stored = self.store.search(
                query, count=query.offset + limit, offset=0, total=counted, base_url=ctx.base_url
            )
            found = served.merge(query, stored, count=limit, offset=query.offset, total=counted, base_url=ctx.base_url)
        ids = found.ids[:count]
        more = len(found.ids) > count if keyset else None
        total = found.total
        whole = keyset and total is not None and query.after is None and query.offset == 0 and not more
        if whole:  # this page is all there is
            total = len(ids)
        keys = [(query.resource_type, i) for i in ids]
        if served is not None:
            by_key = {(r.res_type, r.res_id): r for r in self.store.read_many(keys)}
            by_key.update({(r.res_type, r.res_id): r for r in served.read_many(keys)})
            matches = [by_key[k] for k in keys if k in by_key and not by_key[k].deleted]
        else:
            matches = [r for r in self.store.read_many(keys) if not r.deleted]
        results = SearchResults(query, matches, [], total)
        last = ids[-1] if ids else None
        if Pointcut.BEFORE_SEARCH_RESPONSE in self.hooks:
            self.hooks.run(Pointcut.BEFORE_SEARCH_RESPONSE, ctx, results)
            shown = {r.res_id for r in results.matches}
            if whole and results.total is not None:
                results.total = min(results.total, len(shown))
            # the next page starts after the last match shown: a link never names a hidden id
            last = next((i for i in reversed(ids) if i in shown), None)
        return _Page(results, len(ids), more, last)

    def _includes(
        self, query: SearchQuery, matches: list[StoredResource], total: int | None, ctx: RequestContext
    ) -> list[StoredResource]:
        """``_include``/``_revinclude`` of the matches shown; each round passes
        BEFORE_SEARCH_RESPONSE before anything is included (or followed) from it."""
        if not (query.includes or query.revincludes) or not matches:
            return []
        depth, most = self.settings.max_include_depth, self.settings.max_included
        if Pointcut.BEFORE_SEARCH_RESPONSE not in self.hooks:
            return run_includes(self.store, query, matches, rounds=depth, most=most)

        def screen(found: list[StoredResource]) -> list[StoredResource]:
            results = SearchResults(query, [], found, total)
            self.hooks.run(Pointcut.BEFORE_SEARCH_RESPONSE, ctx, results)
            return results.included

        return run_includes(self.store, query, matches, screen, rounds=depth, most=most)

    # -- bundles -----------------------------------------------------------------------
    def write_entry(self, stored: StoredResource, status: str, ctx: RequestContext) -> Entry:
        url = f"{ctx.base_url}/{stored.res_type}/{stored.res_id}"
        return Entry(
            full_url=url,
            resource=stored.body,
            response={
                "status": status,
                "location": f"{stored.res_type}/{stored.res_id}/_history/{stored.version}",
                "etag": stored.etag,
                "lastModified": stored.last_updated,
            },
        )

    def get_for_bundle(self, url: str, ctx: RequestContext) -> tuple[bytes, str]:
        """A GET entry of a batch or transaction: the search, read or vread it names, through the
        same hook points as over REST, with ``ctx.interaction`` and ``ctx.resource_type`` of
        that interaction (the rest of ``ctx``, ``extra`` included, is the Bundle request's)."""
        parts = urlsplit(url)
        segments = [s for s in parts.path.strip("/").split("/") if s]
        params = parse_qsl(parts.query, keep_blank_values=True)
        if len(segments) == 1:
            search_ctx = replace(ctx, interaction="search-type", resource_type=segments[0])
            return self.search(segments[0], params, search_ctx), "200 OK"
        if len(segments) == 2:
            read_ctx = replace(ctx, interaction="read", resource_type=segments[0])
            return self.read(segments[0], segments[1], read_ctx).body or b"{}", "200 OK"
        if len(segments) == 4 and segments[2] == "_history":
            vread_ctx = replace(ctx, interaction="vread", resource_type=segments[0])
            return self.vread(segments[0], segments[1], segments[3], vread_ctx).body or b"{}", "200 OK"
        raise NotFound("YL-0205", what=f"GET {url} in a Bundle")

    def read_in(self, tx: StoreTransaction, url: str, ctx: RequestContext) -> tuple[bytes, str]:
        """A GET entry of a transaction Bundle: it sees the writes of ``tx``."""
        return self.within(tx).get_for_bundle(url, ctx)

    def process_bundle(
        self,
        raw: bytes | dict[str, Any],
        ctx: RequestContext,
        *,
        tx: StoreTransaction | None = None,
        answered: Mapping[int, Entry] | None = None,
    ) -> bytes:
        """Run a batch/transaction Bundle (the client's bytes, or a dict an adapter built); with
        ``tx`` a transaction Bundle is work inside the caller's store transaction (and the
        caller commits and calls :meth:`after_commit`); ``answered``: a batch's entries already
        answered (its federated searches)."""
        return BundleProcessor(self).process(raw, ctx, tx=tx, answered=answered)

    def write(self, ctx: RequestContext, action: Callable[[StoreTransaction], T]) -> T:
        """One write interaction on the write path (prepared outside the lock, applied in its
        own transaction), then the after-commit hooks."""
        result = self.writes.run(action)
        self.after_commit(ctx)
        return result

    def after_commit(self, ctx: RequestContext) -> None:
        """Runs after a commit; the events service drains the outbox from here (issue: subscriptions)."""
        self.hooks.run(Pointcut.AFTER_COMMIT, ctx, None)
