"""The FHIR service: interactions independent of HTTP, shared by REST, Bundles and adapters."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from gateway.errors import BadRequest, Gone, NotFound, operation_outcome
from gateway.hooks import Hooks, Pointcut, RequestContext
from gateway.search.query import SearchQuery, _int, parse_search
from gateway.search.values import ValueFormatError, date_range
from gateway.service.bundles import Entry, render_bundle
from gateway.service.projection import project
from gateway.service.searching import page_links, run_includes
from gateway.service.transactions import BundleProcessor
from gateway.service.write_path import WritePath
from gateway.service.writes import Writer, require_type
from gateway.settings import Settings
from gateway.store.base import Store, StoredResource, StoreTransaction

T = TypeVar("T")


class FhirService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        hooks: Hooks | None = None,
        validator: Any = None,
        *,
        stage_writes: bool = True,
    ) -> None:
        """``stage_writes`` off runs every write inside its transaction; the oracle tests
        compare that with the staged way (:mod:`gateway.service.write_path`)."""
        self.store = store
        self.settings = settings
        self.hooks = hooks or Hooks()
        self.writer = Writer(self.hooks, settings.validation_mode, validator)
        self.writes = WritePath(store, stage=stage_writes)

    def within(self, tx: StoreTransaction) -> FhirService:
        """This service reading inside ``tx`` (a GET entry of a transaction sees its writes)."""
        view = copy.copy(self)
        view.store = tx.reader()
        return view

    # -- reads -------------------------------------------------------------------------
    def read(self, resource_type: str, resource_id: str, ctx: RequestContext) -> StoredResource:
        require_type(resource_type)
        stored = self.store.read(resource_type, resource_id)
        if stored is None:
            raise NotFound("YL-0201", type=resource_type, id=resource_id)
        if stored.deleted:
            raise Gone("YL-0203", type=resource_type, id=resource_id, vid=stored.version)
        self.hooks.run(Pointcut.BEFORE_READ_RESPONSE, ctx, stored)
        return stored

    def vread(self, resource_type: str, resource_id: str, version: str, ctx: RequestContext) -> StoredResource:
        require_type(resource_type)
        stored = self.store.vread(resource_type, resource_id, int(version)) if version.isdigit() else None
        if stored is None:
            raise NotFound("YL-0202", type=resource_type, id=resource_id, vid=version)
        if stored.deleted:
            raise Gone("YL-0203", type=resource_type, id=resource_id, vid=version)
        self.hooks.run(Pointcut.BEFORE_READ_RESPONSE, ctx, stored)
        return stored

    def history(
        self,
        resource_type: str | None,
        resource_id: str | None,
        params: list[tuple[str, str]],
        ctx: RequestContext,
    ) -> bytes:
        if resource_type:
            require_type(resource_type)
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
        if offset + len(versions) < total and count:
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
        )

    def search(self, resource_type: str, params: list[tuple[str, str]], ctx: RequestContext) -> bytes:
        query = self.parse_query(resource_type, params, ctx)
        want_total = query.total != "none"
        count = 0 if query.summary == "count" else query.count
        # Results in id order page by keyset (``_after``): a write between two pages cannot
        # shift them. One extra row tells whether a next page exists.
        keyset = not query.sort and count > 0
        page = self.store.search(
            query,
            count=count + 1 if keyset else count,
            offset=query.offset,
            total=want_total or query.summary == "count",
            base_url=ctx.base_url,
        )
        ids = page.ids[:count]
        more = len(page.ids) > count if keyset else None
        total = page.total
        if keyset and total is not None and query.after is None and query.offset == 0 and not more:
            total = len(ids)
        matches = [r for r in self.store.read_many([(resource_type, i) for i in ids]) if not r.deleted]
        included = run_includes(self.store, query, matches) if (query.includes or query.revincludes) and matches else []
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
        links = page_links(
            base, resource_type, params, query, total, len(ids), more=more, last_id=ids[-1] if ids else None
        )
        return render_bundle("searchset", entries, total=total, links=links)

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
        parts = urlsplit(url)
        segments = [s for s in parts.path.strip("/").split("/") if s]
        params = parse_qsl(parts.query, keep_blank_values=True)
        if len(segments) == 1:
            return self.search(segments[0], params, ctx), "200 OK"
        if len(segments) == 2:
            return self.read(segments[0], segments[1], ctx).body or b"{}", "200 OK"
        if len(segments) == 4 and segments[2] == "_history":
            return self.vread(segments[0], segments[1], segments[3], ctx).body or b"{}", "200 OK"
        raise NotFound("YL-0205", what=f"GET {url} in a Bundle")

    def read_in(self, tx: StoreTransaction, url: str, ctx: RequestContext) -> tuple[bytes, str]:
        """A GET entry of a transaction Bundle: it sees the writes of ``tx``."""
        return self.within(tx).get_for_bundle(url, ctx)

    def process_bundle(
        self, raw: bytes | dict[str, Any], ctx: RequestContext, *, tx: StoreTransaction | None = None
    ) -> bytes:
        """Run a batch/transaction Bundle (the client's bytes, or a dict an adapter built); with
        ``tx`` a transaction Bundle is work inside the caller's store transaction (and the
        caller commits and calls :meth:`after_commit`)."""
        return BundleProcessor(self).process(raw, ctx, tx=tx)

    def write(self, ctx: RequestContext, action: Callable[[StoreTransaction], T]) -> T:
        """One write interaction on the write path (prepared outside the lock, applied in its
        own transaction), then the after-commit hooks."""
        result = self.writes.run(action)
        self.after_commit(ctx)
        return result

    def after_commit(self, ctx: RequestContext) -> None:
        """Runs after a commit; the events service drains the outbox from here (issue: subscriptions)."""
        self.hooks.run(Pointcut.AFTER_COMMIT, ctx, None)
