"""Create, update, patch and delete: the write half of the FHIR RESTful API.

Each method is the work of one interaction given a store transaction; the write path
(:mod:`gateway.service.write_path`) decides whether that transaction is a staging one (outside
the lock) or the real one. Every write validates once, extracts index rows once, and commits
body, index, history and outbox event in one store transaction; the write hooks travel with
the write (``tx.defer``), so they run once, inside that transaction. The response is built
only after the commit. Methods never change the body they are given: a second run of the same
work must see what the first saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.clock import now_instant
from gateway.errors import (
    BadRequest,
    Conflict,
    FhirError,
    Gone,
    Issue,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from gateway.fhir.json_text import ResourceText, dumps_exact, loads_exact
from gateway.fhir.registry import is_supported
from gateway.fhir.structure import json_form_issues
from gateway.hooks import Hooks, Pointcut, RequestContext
from gateway.search.extract import IndexRows, extract
from gateway.search.query import Criterion, SearchQuery, parse_search
from gateway.search.values import split_token
from gateway.service.ports import OwnerTag, Validator
from gateway.service.served import ServedDefinitions
from gateway.service.write_path import new_resource_id, remembered_findings
from gateway.store.base import StoredResource, StoreTransaction, VersionConflict
from gateway.validation import structure_issues

# Findings that mean "not a valid R5 resource" (as opposed to "not conformant to a profile").
# never stored, whatever the validation mode: the base R5 structure (the models, and the R5
# rules they do not enforce: primitive grammars, empty values, narrative, contained resources,
# reference targets, duplicate properties, attachment size/hash: YL-3070..YL-3077; issue 17)
STRUCTURAL_CODES = frozenset(
    {
        "YL-0700",
        "YL-3001",
        "YL-3004",
        "YL-3070",
        "YL-3071",
        "YL-3072",
        "YL-3073",
        "YL-3074",
        "YL-3075",
        "YL-3076",
        "YL-3077",
    }
)
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
ETAG_RE = re.compile(r'^(?:W/)?"?([^"]+)"?$')


@dataclass
class WriteResult:
    stored: StoredResource
    created: bool
    issues: list[Issue]
    changed: bool = True


# A JSON-escaped control character other than tab, LF and CR, at the start of an escape (an
# even run of backslashes before it): what FHIR strings may not hold (and XML cannot carry).
_CONTROL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\(?:u00[01][0-9a-f]|[bf])")
_CONTROL_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def refuse_control_characters(data: dict[str, Any]) -> None:
    """422 YL-0113 when a string or key holds U+0000-U+001F other than tab, LF, CR - from
    any channel (REST, Bundles, adapters), the same on both backends (issue 12). One
    ``orjson.dumps`` to look; the walk that names the place runs only when something is found."""
    try:
        text = orjson.dumps(data)
    except TypeError:  # orjson's recursion limit: no FHIR resource nests 255 levels deep
        raise Unprocessable(
            "YL-0700", reason="the resource nests deeper than 254 levels", expression=[str(data.get("resourceType"))]
        ) from None
    if not _CONTROL_ESCAPE.search(text):
        return
    where, char = _find_control(data, str(data.get("resourceType") or "Resource"))
    raise Unprocessable("YL-0113", element=where, char=f"U+{ord(char):04X}", expression=[where])


def _find_control(node: Any, path: str) -> tuple[str, str]:
    if isinstance(node, str):
        found = _CONTROL_CHAR.search(node)
        return (path, found.group()) if found else ("", "")
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(key, str) and (found := _CONTROL_CHAR.search(key)):
            return path, found.group()
        inner = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
        where, char = _find_control(value, inner)
        if char:
            return where, char
    return "", ""


def require_type(resource_type: str) -> None:
    if not is_supported(resource_type):
        raise NotFound("YL-0200", type=resource_type)


def require_id(resource_type: str, resource_id: str) -> None:
    """An id no resource can have (a NUL, 65 characters…) names nothing: 404, before the
    store sees it (PostgreSQL refuses a NUL in text; issue 12)."""
    if not ID_RE.fullmatch(resource_id):
        raise NotFound("YL-0201", type=resource_type, id=resource_id[:64].encode("unicode_escape").decode())


def parse_etag(value: str) -> int:
    match = ETAG_RE.match(value.strip())
    if not match or not match.group(1).isdigit():
        raise BadRequest("YL-0301", value=value)
    return int(match.group(1))


def _system_code(criterion: Criterion) -> tuple[str, str] | None:
    """``(system, code)`` of a plain one-value ``param=system|code`` token criterion."""
    if criterion.param.type != "token" or criterion.modifier or criterion.chain or len(criterion.values) != 1:
        return None
    if criterion.param.code in ("_id", "_lastUpdated"):
        return None
    system, code = split_token(criterion.values[0])
    if not system or code is None:
        return None
    return system, code


def _single_token(query: SearchQuery) -> tuple[str, str, str, tuple[str, str] | None] | None:
    """``(param, system, code, tag)`` when the query is one ``param=system|code`` token
    criterion, optionally with one ``_tag=system|code`` (an owner restriction) beside it."""
    criteria = query.criteria
    if len(criteria) == 2 and criteria[1].param.code == "_tag" and criteria[0].param.code != "_tag":
        tag = _system_code(criteria[1])
        if tag is None:
            return None
    elif len(criteria) == 1:
        tag = None
    else:
        return None
    found = _system_code(criteria[0])
    return None if found is None else (criteria[0].param.code, *found, tag)


class Writer:
    """The write interactions, given a store transaction; used by REST and by Bundles alike."""

    def __init__(self, hooks: Hooks, validation_mode: str, validator: Validator | None = None) -> None:
        self.hooks = hooks
        self.validation_mode = validation_mode
        self.validator = validator
        #: stamps the owning member on what is written (set by the access policy)
        self.owner_tag: OwnerTag | None = None
        #: the conformance files served read-only (set by the service)
        self.served: ServedDefinitions | None = None

    # -- helpers ----------------------------------------------------------------------
    def _check_body(self, body: ResourceText, resource_type: str) -> None:
        found = body.resource_type
        if found is None:
            raise BadRequest("YL-0102")
        if found != resource_type:
            raise BadRequest("YL-0103", found=found, expected=resource_type, expression=["resourceType"])

    def _validate(self, data: dict[str, Any]) -> list[Issue]:
        """Structure always (a malformed resource is never stored); profiles per the mode."""
        refuse_control_characters(data)
        validator = self.validator
        check = validator if validator is not None and self.validation_mode != "off" else structure_issues
        issues = remembered_findings(data, check)
        errors = [i for i in issues if i.severity in ("error", "fatal")]
        structural = any(i.error_code in STRUCTURAL_CODES for i in errors)
        if errors and (structural or self.validation_mode == "strict"):
            raise Unprocessable(issues)
        return issues

    def _meta(
        self, ctx: RequestContext, resource_type: str, body: ResourceText, version: int, last_updated: str
    ) -> dict[str, Any]:
        meta = dict(body.data.get("meta") or {})
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        owner = self.owner_tag(ctx, resource_type, body.data) if self.owner_tag is not None else None
        if owner is not None:
            system = owner["system"]
            others = [t for t in meta.get("tag") or () if not (isinstance(t, dict) and t.get("system") == system)]
            meta["tag"] = [*others, owner]
        return {"versionId": str(version), "lastUpdated": last_updated, **meta}

    def _store(
        self,
        tx: StoreTransaction,
        ctx: RequestContext,
        resource_type: str,
        resource_id: str,
        body: ResourceText,
        existing: StoredResource | None,
        method: str,
    ) -> WriteResult:
        if self.served is not None:  # the files in profiles/ are the source of truth
            self.served.refuse_write(resource_type, resource_id, body.data)
        if Pointcut.BEFORE_STORE in self.hooks:  # may amend the body (review on write, issue 14)
            self.hooks.run(Pointcut.BEFORE_STORE, ctx, tx, resource_type, body)
        form = json_form_issues(body.data)  # the client's text is stored: it must be FHIR JSON
        if form:
            raise BadRequest(form)
        issues = self._validate(body.data)
        version = (existing.version + 1) if existing else 1
        last_updated = now_instant()
        meta = self._meta(ctx, resource_type, body, version, last_updated)
        raw = body.render(resource_id=resource_id, meta=meta)
        data = dict(body.data)
        data["id"] = resource_id
        data["meta"] = meta
        index = extract(data)
        stored = StoredResource(resource_type, resource_id, version, last_updated, False, raw, method)
        self._put(tx, ctx, stored, index, existing, data)
        return WriteResult(stored, existing is None or existing.deleted, issues)

    def _put(
        self,
        tx: StoreTransaction,
        ctx: RequestContext,
        stored: StoredResource,
        index: IndexRows | None,
        existing: StoredResource | None,
        data: dict[str, Any] | None,
    ) -> None:
        """The write and its hooks, in the order they run inside the committing transaction."""
        hooks = self.hooks
        if Pointcut.BEFORE_WRITE in hooks:
            tx.defer(lambda _tx: hooks.run(Pointcut.BEFORE_WRITE, ctx, stored.res_type, data, existing))
        try:
            tx.put(stored, index, expected_version=existing.version if existing else None)
        except VersionConflict:
            raise Conflict("YL-0303", type=stored.res_type, id=stored.res_id) from None
        if Pointcut.AFTER_WRITE_IN_TX in hooks:
            tx.defer(lambda in_tx: hooks.run(Pointcut.AFTER_WRITE_IN_TX, ctx, in_tx, stored))

    def matching_ids(self, tx: StoreTransaction, ctx: RequestContext, resource_type: str, criteria: str) -> list[str]:
        """Ids matching a conditional interaction's criteria (at most two: one is all that
        counts), under a lock on what the criteria mean. The criteria pass ``BEFORE_SEARCH``
        like any search: a conditional create never matches what the caller may not see."""
        params = parse_qsl(criteria, keep_blank_values=True)
        if not params:
            raise BadRequest(
                "YL-0404",
                name="criteria",
                value=criteria,
                reason="a conditional interaction needs search criteria",
            )
        query = parse_search(resource_type, params, strict=True, default_count=2, max_count=2)
        # One lock per meaning, not per spelling (issue 12): built from the parsed criteria -
        # each a parameter with its modifier or chain and its set of OR values - as a set, so a
        # repeated criterion, a repeated OR value, an escape or the order change nothing.
        meaning = sorted({(c.name, tuple(sorted(set(c.values)))) for c in query.criteria})
        tx.lock(f"{resource_type}?{meaning}")
        if Pointcut.BEFORE_SEARCH in self.hooks:
            self.hooks.run(Pointcut.BEFORE_SEARCH, ctx, query)
        token = _single_token(query)
        if token is not None:  # the common identifier=system|value match, on a prebuilt statement
            param, system, code, tag = token
            return tx.match_token(resource_type, param, system, code, limit=2, tag=tag)
        return tx.search_ids(query, 2)

    # -- interactions ----------------------------------------------------------------
    def create(
        self,
        tx: StoreTransaction,
        ctx: RequestContext,
        resource_type: str,
        body: ResourceText,
        *,
        if_none_exist: str | None = None,
        resource_id: str | None = None,
    ) -> WriteResult:
        require_type(resource_type)
        self._check_body(body, resource_type)
        if if_none_exist:
            found = self.matching_ids(tx, ctx, resource_type, if_none_exist)
            if len(found) > 1:
                raise PreconditionFailed("YL-0302", what="create", count="more than one")
            if found:
                existing = tx.current(resource_type, found[0], for_update=False)
                assert existing is not None
                return WriteResult(existing, False, [], changed=False)
        new_id = resource_id or new_resource_id()
        return self._store(tx, ctx, resource_type, new_id, body, None, "POST")

    def update(
        self,
        tx: StoreTransaction,
        ctx: RequestContext,
        resource_type: str,
        resource_id: str,
        body: ResourceText,
        *,
        if_match: str | None = None,
    ) -> WriteResult:
        require_type(resource_type)
        self._check_body(body, resource_type)
        if not ID_RE.match(resource_id):
            raise BadRequest("YL-0106", id=resource_id)
        body_id = body.data.get("id")
        if body_id is None:
            raise BadRequest("YL-0105", expression=[f"{resource_type}.id"])
        if body_id != resource_id:
            raise BadRequest("YL-0104", found=body_id, expected=resource_id, expression=[f"{resource_type}.id"])
        existing = tx.current(resource_type, resource_id)
        if existing is None:
            # A row that does not exist yet cannot be locked: serialise creates of this id so
            # concurrent create-on-update requests become one create and then updates.
            tx.lock(f"{resource_type}/{resource_id}")
            existing = tx.current(resource_type, resource_id)
        if if_match is not None:
            expected = parse_etag(if_match)
            current = existing.version if existing and not existing.deleted else 0
            if existing is None or existing.deleted or expected != existing.version:
                raise PreconditionFailed("YL-0300", expected=if_match, current=f'W/"{current}"')
        return self._store(tx, ctx, resource_type, resource_id, body, existing, "PUT")

    def conditional_update(
        self,
        tx: StoreTransaction,
        ctx: RequestContext,
        resource_type: str,
        criteria: str,
        body: ResourceText,
        *,
        if_match: str | None = None,
    ) -> WriteResult:
        require_type(resource_type)
        self._check_body(body, resource_type)
        found = self.matching_ids(tx, ctx, resource_type, criteria)
        if len(found) > 1:
            raise PreconditionFailed("YL-0302", what="update", count="more than one")
        body_id = body.data.get("id")
        if found:
            if body_id is not None and body_id != found[0]:
                raise BadRequest("YL-0104", found=body_id, expected=found[0], expression=[f"{resource_type}.id"])
            body = body.copy()
            body.data["id"] = found[0]
            return self.update(tx, ctx, resource_type, found[0], body, if_match=if_match)
        if body_id is not None:
            return self.update(tx, ctx, resource_type, str(body_id), body, if_match=if_match)
        return self.create(tx, ctx, resource_type, body)

    def patch(
        self,
        tx: StoreTransaction,
        ctx: RequestContext,
        resource_type: str,
        resource_id: str,
        patch: bytes,
        *,
        if_match: str | None = None,
    ) -> WriteResult:
        require_type(resource_type)
        require_id(resource_type, resource_id)
        if self.served is not None:
            self.served.refuse_write(resource_type, resource_id, None)
        existing = tx.current(resource_type, resource_id)
        if existing is None:
            raise NotFound("YL-0201", type=resource_type, id=resource_id)
        if existing.deleted or existing.body is None:
            raise Gone("YL-0203", type=resource_type, id=resource_id, vid=existing.version)
        if if_match is not None and parse_etag(if_match) != existing.version:
            raise PreconditionFailed("YL-0300", expected=if_match, current=existing.etag)
        from gateway.service.json_patch import apply_patch

        try:
            operations = loads_exact(patch)
        except ValueError as exc:
            raise BadRequest("YL-0100", reason=str(exc)) from None
        document = loads_exact(existing.body)
        patched = apply_patch(document, operations)
        if (
            not isinstance(patched, dict)
            or patched.get("resourceType") != resource_type
            or patched.get("id") != resource_id
        ):
            raise Unprocessable("YL-0600", index="*", reason="a patch may not change resourceType or id")
        body = ResourceText.parse(dumps_exact(patched))
        result = self._store(tx, ctx, resource_type, resource_id, body, existing, "PATCH")
        return result

    def delete(
        self,
        tx: StoreTransaction,
        ctx: RequestContext,
        resource_type: str,
        resource_id: str,
        *,
        if_match: str | None = None,
    ) -> StoredResource | None:
        require_type(resource_type)
        require_id(resource_type, resource_id)
        if self.served is not None:
            self.served.refuse_write(resource_type, resource_id, None)
        existing = tx.current(resource_type, resource_id)
        if if_match is not None:  # version-aware delete: never remove a version the client has not seen
            current = existing.version if existing and not existing.deleted else 0
            if parse_etag(if_match) != current:
                raise PreconditionFailed("YL-0300", expected=if_match, current=f'W/"{current}"')
        if existing is None or existing.deleted:
            return None
        stored = StoredResource(resource_type, resource_id, existing.version + 1, now_instant(), True, None, "DELETE")
        self._put(tx, ctx, stored, None, existing, None)
        return stored

    def conditional_delete(
        self, tx: StoreTransaction, ctx: RequestContext, resource_type: str, criteria: str
    ) -> StoredResource | None:
        found = self.matching_ids(tx, ctx, resource_type, criteria)
        if len(found) > 1:
            raise PreconditionFailed("YL-0302", what="delete", count="more than one")
        if not found and self.served is not None:
            self.served.refuse_conditional_delete(resource_type, criteria)
        return self.delete(tx, ctx, resource_type, found[0]) if found else None


__all__ = ["FhirError", "WriteResult", "Writer", "parse_etag", "require_type"]
