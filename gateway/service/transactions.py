"""Batch and transaction Bundles (FHIR R5 http page, "batch/transaction").

A transaction runs every entry in one store transaction: any failure rolls back all of them.
Entries are processed in the order the spec gives (DELETE, POST, PUT/PATCH, GET); ``urn:uuid:``
full URLs of created resources and conditional references (``Patient?identifier=…``) are
rewritten to the ids they got before anything is stored. A batch runs each entry on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

import orjson

from gateway.errors import BadRequest, FhirError, NotFound, issue, operation_outcome
from gateway.fhir.json_text import ResourceText, array_items, decode_utf8, object_members
from gateway.fhir.structure import json_form_issues
from gateway.hooks import Pointcut, RequestContext
from gateway.search.query import parse_search
from gateway.service.bundles import Entry, render_bundle
from gateway.service.write_path import WritePath, new_resource_id
from gateway.service.writes import Writer
from gateway.settings import Settings
from gateway.store.base import StoredResource, StoreTransaction

T = TypeVar("T")

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class BundleEntry:
    index: int
    full_url: str | None
    method: str
    url: str
    resource: ResourceText | None
    if_match: str | None
    if_none_exist: str | None
    if_none_match: str | None

    def fresh(self) -> BundleEntry:
        """This entry with a resource of its own to rewrite: each run of a Bundle's work
        starts from the entries as the client sent them."""
        return replace(self, resource=self.resource.copy() if self.resource is not None else None)


def parse_entries(raw: bytes) -> tuple[str, list[BundleEntry]]:
    """The entries of a Bundle as the client wrote it, each resource with its exact text."""
    text = decode_utf8(raw).removeprefix("\ufeff")
    members, _ = object_members(text, 0)
    spans = dict(members)
    data = orjson.loads(text)
    resources: list[ResourceText | None] = []
    if "entry" in spans and isinstance(data, dict) and isinstance(data.get("entry"), list):
        for item in array_items(text, spans["entry"].start):
            span = dict(object_members(text, item.start)[0]).get("resource")
            resources.append(ResourceText.parse(text[span.start : span.end]) if span else None)
    return _entries(data, resources)


def bundle_entries(data: dict[str, Any]) -> tuple[str, list[BundleEntry]]:
    """:func:`parse_entries` of a Bundle built in Python (an adapter's output): no client
    text to keep, so each resource's members are serialised once instead of scanned."""
    entries = data.get("entry")
    resources: list[ResourceText | None] = []
    for entry in entries if isinstance(entries, list) else ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        resources.append(ResourceText.of_plain_data(resource) if isinstance(resource, dict) else None)
    return _entries(data, resources)


def _entries(data: Any, resources: list[ResourceText | None]) -> tuple[str, list[BundleEntry]]:
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        found = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        raise BadRequest("YL-0103", found=found, expected="Bundle")
    form = json_form_issues(_shell(data))  # request, url, fullUrl… of the JSON kinds read below
    if form:
        raise BadRequest(form)
    bundle_type = data.get("type")
    if bundle_type not in ("batch", "transaction"):
        raise BadRequest("YL-0500", found=bundle_type, expression=["Bundle.type"])
    entries: list[BundleEntry] = []
    listed = data.get("entry")
    for index, (entry, resource) in enumerate(zip(listed if isinstance(listed, list) else [], resources, strict=True)):
        request = (entry.get("request") if isinstance(entry, dict) else None) or {}
        method = str(request.get("method", "")).upper()
        if method not in ORDER or not request.get("url"):
            raise BadRequest("YL-0501", index=index, expression=[f"Bundle.entry[{index}].request"])
        entries.append(
            BundleEntry(
                index,
                entry.get("fullUrl"),
                method,
                request["url"],
                resource,
                request.get("ifMatch"),
                request.get("ifNoneExist"),
                request.get("ifNoneMatch"),
            )
        )
    return bundle_type, entries


def _shell(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Bundle without its entries' resources (each is checked when it is written)."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return bundle
    shells = [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e for e in entries]
    return {**bundle, "entry": shells}


def _split_url(url: str) -> tuple[list[str], str]:
    parts = urlsplit(url)
    path = parts.path.strip("/")
    return ([p for p in path.split("/") if p], parts.query)


class BundleService(Protocol):
    """What a Bundle needs of the FHIR service: its writer and write path, and reads."""

    writer: Writer
    writes: WritePath
    settings: Settings  # max_bundle_entries

    def write(self, ctx: RequestContext, action: Callable[[StoreTransaction], T]) -> T: ...

    def write_entry(self, stored: StoredResource, status: str, ctx: RequestContext) -> Entry: ...

    def read_in(self, tx: StoreTransaction, url: str, ctx: RequestContext) -> tuple[bytes, str]:
        """A GET entry: a read or search seeing the writes of ``tx``."""
        ...

    def after_commit(self, ctx: RequestContext) -> None: ...


class BundleProcessor:
    def __init__(self, service: BundleService) -> None:
        self.service = service

    def process(
        self,
        raw: bytes | dict[str, Any],
        ctx: RequestContext,
        *,
        tx: StoreTransaction | None = None,
        answered: Mapping[int, Entry] | None = None,
    ) -> bytes:
        """Run a batch or transaction Bundle; with ``tx`` a transaction Bundle is work inside
        the caller's transaction (the caller commits and calls after_commit). ``answered``:
        a batch's entries (by index) already answered elsewhere, the federated searches
        among its GETs; a transaction's GETs see its writes, so it takes none."""
        bundle_type, entries = bundle_entries(raw) if isinstance(raw, dict) else parse_entries(raw)
        limit = self.service.settings.max_bundle_entries
        if len(entries) > limit:  # issue 12: one Bundle must not hold the writer for long
            raise BadRequest(
                "YL-0801",
                count=len(entries),
                what="Bundle entries",
                what_zh="Bundle 条目",
                limit=limit,
                setting="max_bundle_entries",
                expression=["Bundle.entry"],
            )
        if bundle_type == "transaction":
            if tx is not None:
                return self._transaction(entries, ctx, tx)
            return self.service.write(ctx, lambda in_tx: self._transaction(entries, ctx, in_tx))
        if tx is not None:
            raise BadRequest("YL-0500", found="batch (inside another transaction)", expression=["Bundle.type"])
        return self._batch(entries, ctx, answered or {})

    # -- transaction -----------------------------------------------------------------
    def _transaction(self, entries: list[BundleEntry], ctx: RequestContext, tx: StoreTransaction) -> bytes:
        """The work of a transaction Bundle, run in ``tx``."""
        full_urls = [e.full_url for e in entries if e.full_url]
        duplicates = {u for u in full_urls if full_urls.count(u) > 1}
        if duplicates:
            raise BadRequest("YL-0504", url=sorted(duplicates)[0])
        entries = [e.fresh() for e in entries]
        results: dict[int, Entry] = {}
        service = self.service
        # POSTed resources get their ids first so references can be rewritten.
        mapping: dict[str, str] = {}
        new_ids: dict[int, str] = {}
        existing: dict[int, str] = {}  # conditional creates that matched one resource
        for e in entries:
            if e.method == "POST" and e.resource is not None:
                rtype = e.resource.resource_type or ""
                if e.if_none_exist:
                    found = service.writer.matching_ids(tx, ctx, rtype, e.if_none_exist)
                    if len(found) == 1:
                        existing[e.index] = found[0]
                        if e.full_url:
                            mapping[e.full_url] = f"{rtype}/{found[0]}"
                        continue
                    if not found:  # checked once here, under the lock: create without asking again
                        e.if_none_exist = None
                new_ids[e.index] = new_resource_id()
                if e.full_url:
                    mapping[e.full_url] = f"{rtype}/{new_ids[e.index]}"
            elif e.method == "PUT" and e.resource is not None and e.full_url:
                segments, query = _split_url(e.url)
                if len(segments) == 2 and not query:
                    mapping[e.full_url] = f"{segments[0]}/{segments[1]}"
        for e in sorted(entries, key=lambda x: (ORDER[x.method], x.index)):
            with _naming(e):
                if e.resource is not None:
                    self._rewrite(e.resource, mapping, tx, ctx)
                if e.index in existing:
                    rtype = (e.resource.resource_type or "") if e.resource is not None else ""
                    current = tx.current(rtype, existing[e.index], for_update=False)
                    assert current is not None, "matched by its criteria earlier in this transaction"
                    results[e.index] = service.write_entry(current, "200 OK", ctx)
                    continue
                results[e.index] = self._run(
                    e, cast(StoreTransaction, _EntryTransaction(tx, e)), ctx, new_ids.get(e.index)
                )
        return render_bundle("transaction-response", (results[i] for i in sorted(results)))

    def _rewrite(
        self, resource: ResourceText, mapping: dict[str, str], tx: StoreTransaction, ctx: RequestContext
    ) -> None:
        text = "".join(resource.members.values())
        if '"reference"' not in text:  # nothing to rewrite; skips two walks of the resource
            return
        conditional: dict[str, str] = {}
        for ref in _conditional_references(resource.data) if "?" in text else ():
            rtype, _, criteria = ref.partition("?")
            query = parse_search(rtype, parse_qsl(criteria), strict=True, default_count=2, max_count=2)
            hooks = self.service.writer.hooks
            if Pointcut.BEFORE_SEARCH in hooks:  # a conditional reference finds only what the caller may see
                hooks.run(Pointcut.BEFORE_SEARCH, ctx, query)
            found = tx.search_ids(query, 2)
            if len(found) != 1:
                raise BadRequest("YL-0503", reference=ref)
            conditional[ref] = f"{rtype}/{found[0]}"
        resource.replace_strings({k: v for k, v in {**mapping, **conditional}.items() if k in text})
        for ref in _urn_references(resource.data) if "urn:" in text else ():
            raise BadRequest("YL-0503", reference=ref)

    def _run(self, e: BundleEntry, tx: StoreTransaction, ctx: RequestContext, new_id: str | None) -> Entry:
        service = self.service
        segments, query = _split_url(e.url)
        writer = service.writer
        if e.method == "POST":
            if e.resource is None:
                raise BadRequest("YL-0501", index=e.index)
            rtype = segments[0] if segments else ""
            result = writer.create(tx, ctx, rtype, e.resource, if_none_exist=e.if_none_exist, resource_id=new_id)
            status = "201 Created" if result.changed else "200 OK"
            return service.write_entry(result.stored, status, ctx)
        if e.method == "PUT":
            if e.resource is None or not segments:
                raise BadRequest("YL-0501", index=e.index)
            if len(segments) == 1 and query:
                result = writer.conditional_update(tx, ctx, segments[0], query, e.resource, if_match=e.if_match)
            elif len(segments) == 2 and not query:
                result = writer.update(tx, ctx, segments[0], segments[1], e.resource, if_match=e.if_match)
            else:  # ``PUT Patient`` (no id, no criteria) or a longer path
                raise BadRequest("YL-0501", index=e.index, expression=[f"Bundle.entry[{e.index}].request.url"])
            return service.write_entry(result.stored, "201 Created" if result.created else "200 OK", ctx)
        if e.method == "PATCH":
            if e.resource is None or len(segments) != 2:
                raise BadRequest("YL-0501", index=e.index)
            patch = _patch_from_parameters(e.resource)
            result = writer.patch(tx, ctx, segments[0], segments[1], patch, if_match=e.if_match)
            return service.write_entry(result.stored, "200 OK", ctx)
        if e.method == "DELETE":
            if len(segments) == 1 and query:
                writer.conditional_delete(tx, ctx, segments[0], query)
            elif len(segments) == 2:
                writer.delete(tx, ctx, segments[0], segments[1], if_match=e.if_match)
            else:
                raise BadRequest("YL-0501", index=e.index)
            return Entry(response={"status": "204 No Content"})
        # GET inside a bundle: a read or a search, seeing the writes of this transaction
        body, status = service.read_in(tx, e.url, ctx)
        return Entry(resource=body, response={"status": status})

    # -- batch -------------------------------------------------------------------------
    def _batch(self, entries: list[BundleEntry], ctx: RequestContext, answered: Mapping[int, Entry]) -> bytes:
        results: list[Entry] = []
        for e in entries:
            if e.index in answered:
                results.append(answered[e.index])
                continue
            try:
                results.append(self.service.writes.run(partial(self._batch_entry, e, ctx=ctx)))
            except FhirError as exc:
                results.append(failed_entry(exc))
        self.service.after_commit(ctx)
        return render_bundle("batch-response", results)

    def _batch_entry(self, entry: BundleEntry, tx: StoreTransaction, *, ctx: RequestContext) -> Entry:
        """The work of one batch entry, in a transaction of its own."""
        e = entry.fresh()
        if e.resource is not None:
            self._rewrite(e.resource, {}, tx, ctx)
        return self._run(e, tx, ctx, None)


def failed_entry(exc: FhirError) -> Entry:
    """A batch entry that failed: its status and the OperationOutcome saying why."""
    return Entry(response={"status": f"{exc.status}", "outcome": orjson.dumps(operation_outcome(exc.issues))})


@contextmanager
def _naming(e: BundleEntry) -> Iterator[None]:
    """An error of an entry's work names the entry (YL-0502) and places its expressions in it,
    once, wherever it is raised: in the entry's own run or in a hook applied later."""
    try:
        yield
    except FhirError as exc:
        if getattr(exc, "bundle_entry", None) is None:
            exc.bundle_entry = e.index  # type: ignore[attr-defined]
            for item in exc.issues:
                item.expression = tuple(_entry_path(e.index, x) for x in item.expression)
            reason = exc.issues[0].en if exc.issues else ""
            exc.issues.insert(0, issue("YL-0502", index=e.index, url=e.url, reason=reason))
        raise


class _EntryTransaction:
    """The transaction as one entry's work sees it: what the entry defers (its write hooks)
    is named after the entry when it runs - at once, or when staged writes are applied."""

    def __init__(self, tx: StoreTransaction, entry: BundleEntry) -> None:
        self._tx = tx
        self._entry = entry

    def defer(self, action: Callable[[StoreTransaction], None]) -> None:
        entry = self._entry

        def named(tx: StoreTransaction) -> None:
            with _naming(entry):
                action(tx)

        self._tx.defer(named)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


def _entry_path(index: int, expression: str) -> str:
    """``MedicationRequest.subject`` inside entry 3 is ``Bundle.entry[3].resource.subject``."""
    head, dot, rest = expression.partition(".")
    if head[:1].isupper() and "[" not in head:
        return f"Bundle.entry[{index}].resource" + (f".{rest}" if dot else "")
    return f"Bundle.entry[{index}].{expression}"


def _walk_strings(node: Any, pick: Callable[[str], bool]) -> list[str]:
    """``reference`` strings under ``node`` that ``pick`` accepts, in document order."""
    found: list[str] = []

    def walk(item: Any) -> None:  # descends only into objects and arrays: scalars are most nodes
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(value, str):
                    if key == "reference" and pick(value):
                        found.append(value)
                elif isinstance(value, dict | list):
                    walk(value)
        else:
            for element in item:
                if isinstance(element, dict | list):
                    walk(element)

    if isinstance(node, dict | list):
        walk(node)
    return found


def _conditional_references(data: dict[str, Any]) -> list[str]:
    return _walk_strings(data, lambda v: "?" in v and not v.startswith(("http:", "https:", "urn:")))


def _urn_references(data: dict[str, Any]) -> list[str]:
    return _walk_strings(data, lambda v: v.startswith("urn:uuid:") or v.startswith("urn:oid:"))


def _patch_from_parameters(resource: ResourceText) -> bytes:
    """A PATCH entry carries a Binary with JSON Patch content (R5 http page)."""
    data = resource.data
    if data.get("resourceType") == "Binary" and data.get("data"):
        import base64

        return base64.b64decode(data["data"])
    raise NotFound("YL-0205", what="FHIRPath Patch (Parameters); send JSON Patch as a Binary")
